"""Which names the attack gives a defended model's removed people and newly identified
non-members, and which candidate names lie closest to the average face e_avg.

    python scripts/nonmember_probe.py image-k4

Reads the pipeline's outputs (`dvc repro` first); writes nothing. Explains a false positive
after the image defense: faces sent towards e_avg get the names closest to e_avg
(docs/method.md §5).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F

from pipeline.attack.idia import predict_names
from pipeline.attack.run import load_embeddings
from pipeline.core.paths import BASE_MODEL, DEFENDED, EVALUATE, FACESCRUB_INDEX, IDIA_BEFORE, SPLITS
from pipeline.data.images import FileImages
from pipeline.defenses.image_defense import mean_face_embedding
from pipeline.models.checkpoint import load_model
from pipeline.models.image_encoding import ImageInput, encode_images, model_image_size


def top_names(counts: pd.Series, n: int = 3) -> str:
    return ", ".join(f"{name} {votes}" for name, votes in counts.head(n).items())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", help="a defense run, e.g. image-k4 or both-k4")
    run = ap.parse_args().run
    candidates = list(pd.read_csv(SPLITS / "candidates.csv")["name"])
    text = load_embeddings(IDIA_BEFORE / "text_embeddings.safetensors")     # [templates, names, d]
    photos = pd.read_csv(SPLITS / "idia_photos.csv")
    table = pd.read_csv(EVALUATE / run / "identities.csv")
    base = load_model(BASE_MODEL)
    faces = FileImages(pd.read_parquet(FACESCRUB_INDEX)["image"], model_image_size(base.model))
    with torch.no_grad():
        e_avg = F.normalize(mean_face_embedding(base.model.visual, faces, ImageInput(base.model, torch.device("cpu")),
                                                progress=False), dim=0)
    closest = pd.Series([candidates[i] for i in (text @ e_avg).argmax(dim=1)]).value_counts()
    print(f"candidate closest to e_avg (templates): {top_names(closest)}")
    model = load_model(DEFENDED / run)
    newly = table[~table["member"] & ~table["identified_before"] & table["identified_after"]]
    for kind, names in (("removed", table.loc[table["removed"], "name"]), ("newly identified non-member", newly["name"])):
        for name in names:
            paths = [Path(p) for p in photos.loc[photos["name"] == name, "path"]]
            emb = encode_images(model.model, model.preprocess, paths, 64, "cpu", progress=None)
            votes = pd.Series([candidates[i] for i in predict_names(emb, text).flatten()]).value_counts()
            print(f"{kind} {name}: {len(paths)} photos x {text.shape[0]} templates -> {top_names(votes)}")


if __name__ == "__main__":
    main()
