"""Screen text targets for the combined model in seconds, before training anything.

    python scripts/target_check.py ["a person" "Ella Anderson" ...]   (default: defend.text.target)

The combined model sends a removed face to e_avg (the image target) and a removed name to the
text target. If the base model's e_avg already matches the text target's prompt better than
every candidate name, the attack on the combined model finds the removed name again, by
construction. For each target this prints, over the 21 attack templates, how many times e_avg
prefers the target's prompt to all candidates, and the mean margin (target minus the best
candidate; negative is what the combination needs). Needs `dvc repro idia_before`.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F

from pipeline.attack.run import load_embeddings
from pipeline.attack.templates import IDIA_TEMPLATES, fill_template
from pipeline.models.text_encoding import encode_texts
from pipeline.data.images import FileImages
from pipeline.defenses.image_defense import mean_face_embedding
from pipeline.models.image_encoding import ImageInput
from pipeline.defenses.targets import check_text_target
from pipeline.core.errors import PipelineError
from pipeline.models.checkpoint import load_model
from pipeline.core.params import load_params
from pipeline.models.image_encoding import model_image_size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("targets", nargs="*", help="text targets to screen (default: defend.text.target)")
    args = ap.parse_args()
    p = load_params("defend")
    targets = args.targets or [p["text"]["target"]]
    torch.set_num_threads(p.get("threads", 2))
    loaded = load_model(Path("data/base_model"))
    model = loaded.model
    candidates = list(pd.read_csv("data/splits/candidates.csv")["name"])
    names = load_embeddings(Path("data/idia_before/text_embeddings.safetensors"))  # [templates, names, D]
    index = pd.read_parquet("data/facescrub/index.parquet")
    with torch.no_grad():
        e_avg = mean_face_embedding(model.visual, FileImages(index["image"], model_image_size(model)),
                                    ImageInput(model, torch.device("cpu")), progress=False)
    e_avg = F.normalize(e_avg, dim=0)
    best_candidate = (names @ e_avg).max(dim=1).values
    for target in targets:
        prompts = [fill_template(t, target) for t in IDIA_TEMPLATES]
        with torch.no_grad():
            score = encode_texts(model, loaded.tokenizer, prompts, 64, "cpu", progress=None) @ e_avg
        try:
            check_text_target(target, candidates, where="target")
            clash = ""
        except PipelineError as err:
            clash = f"   (refused by the defend stage: {err})"
        print(f"{target!r:28} e_avg prefers it to every candidate in {int((score > best_candidate).sum()):2d}"
              f"/{len(prompts)} templates; mean margin {float((score - best_candidate).mean()):+.3f}{clash}")


if __name__ == "__main__":
    main()
