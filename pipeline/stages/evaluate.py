"""Stage `evaluate`: the attack, utility and similarity metrics of one defended model.

    python -m pipeline.stages.evaluate --encoder text --k 4

The tower a defense did not train is not encoded again: its embeddings come from
`idia_before` (attack) and `utility_before` (zero-shot benchmark images).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd
import torch
import yaml

from pipeline.atomic import atomic_dir, write_json
from pipeline.attack.image_encoding import encode_images
from pipeline.attack.run import load_embeddings, run_idia
from pipeline.attack.text_encoding import encode_texts
from pipeline.defenses.image_defense import ImageInput
from pipeline.defenses.poisoned_captions import sample_poisoned_pairs
from pipeline.evaluation.collateral import compare
from pipeline.evaluation.similarity import image_similarities, text_similarities
from pipeline.evaluation.zeroshot import load_benchmark, zero_shot
from pipeline.models.checkpoint import load_model
from pipeline.models.device import resolve_device
from pipeline.models.shards import ShardImages
from pipeline.params import load_params, require
from pipeline.stages._main import run_stage

SPLITS = Path("data/splits")
BEFORE = Path("data/idia_before")
UTILITY = Path("data/utility_before")
FACESCRUB_INDEX = Path("data/facescrub/index.parquet")
SHARDS = Path("data/laion/shards")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--encoder", choices=["text", "image", "both"], required=True)
    ap.add_argument("--k", type=int, required=True)
    args = ap.parse_args()
    name = f"{args.encoder}-k{args.k}"

    p = load_params("evaluate")
    tau = require(load_params("idia_before"), "idia_before", "tau", int, low=1)
    batch = require(p, "evaluate", "batch_size", int, low=1)
    n_sim = require(p, "evaluate", "similarity_samples", int, low=1)
    device = resolve_device(require(p, "evaluate", "device", str), "evaluate.device")
    # optional keys (older params files lack them): in-process decoding, fp32
    workers = require({"workers": 0, **p}, "evaluate", "workers", int, low=0)
    bf16 = require({"bf16": False, **p}, "evaluate", "bf16", bool)

    model_dir = Path("data/defended") / name
    defended = load_model(model_dir, device)
    base = load_model(Path("data/base_model"), device)
    removed = list(pd.read_csv(model_dir / "removed.csv")["name"])
    defense = yaml.safe_load((model_dir / "defense.yaml").read_text())
    text_trained = args.encoder in ("text", "both")
    image_trained = args.encoder in ("image", "both")

    identities = pd.read_csv(SPLITS / "identities.csv")
    photos = pd.read_csv(SPLITS / "idia_photos.csv")
    candidates = pd.read_csv(SPLITS / "candidates.csv")
    after = run_idia(defended, identities, photos, candidates, tau, batch, device,
                     text_emb=None if text_trained else load_embeddings(BEFORE / "text_embeddings.safetensors"),
                     image_emb=None if image_trained else load_embeddings(BEFORE / "image_embeddings.safetensors"),
                     bf16=bf16, workers=workers)
    table, metrics = compare(pd.read_csv(BEFORE / "identities.csv"), after.table, removed)
    metrics["encoder"] = args.encoder

    metrics["zeroshot"] = zeroshot_against_base(defended, image_trained, batch, device, bf16, workers)

    clean = pd.read_parquet(SPLITS / "clean_captions.parquet")
    heldout = clean[clean["split"] == "heldout"].head(n_sim)
    if text_trained:
        metrics["text_similarity"] = text_metrics(base, defended, list(heldout["caption"]), removed,
                                                  defense["text"]["target"], batch, device, n_sim)
    if image_trained:
        metrics["image_similarity"] = image_metrics(base, defended, list(heldout["key"]), photos,
                                                    removed, batch, device, workers)

    with atomic_dir(Path("data/evaluate") / name) as tmp:
        table.to_csv(tmp / "identities.csv", index=False)
    write_json(Path("metrics/evaluate") / f"{name}.json", metrics)
    print(f"evaluate {name}: tpr_removed {metrics['tpr_removed']:.2f}, wrongfully unlearned "
          f"{metrics['wrongfully_unlearned']} ({metrics['wrongfully_unlearned_pct']:.1f} %)")


def text_metrics(base, defended, captions, removed, target, batch, device, n) -> dict:
    pairs = sample_poisoned_pairs(captions, removed, target, n, torch.Generator().manual_seed(0))
    trig, tgt = [q.trigger for q in pairs], [q.target for q in pairs]

    def enc(loaded, texts):
        return encode_texts(loaded.model, loaded.tokenizer, texts, batch, device, progress=None,
                            normalize=False)
    return text_similarities(enc(base, captions), enc(defended, captions), enc(defended, trig),
                             enc(defended, tgt), enc(base, trig), enc(base, tgt))


def image_metrics(base, defended, heldout_keys, photos, removed, batch, device, workers: int = 0) -> dict:
    # only the held-out images are decoded: the whole corpus need not fit in memory
    heldout = ShardImages(SHARDS, heldout_keys).all()
    face_paths = [Path(p) for p in pd.read_parquet(FACESCRUB_INDEX)["image"]]
    removed_paths = [Path(p) for p in photos.loc[photos["name"].isin(removed), "path"]]

    def enc_paths(loaded, paths):
        return encode_images(loaded.model, loaded.preprocess, paths, batch, device, progress=None,
                             normalize=False, workers=workers)

    def enc_tensor(loaded, uint8):
        prep = ImageInput(loaded.model, device)
        out = []
        with torch.no_grad():
            for s in range(0, len(uint8), batch):
                out.append(loaded.model.encode_image(prep(uint8[s:s + batch])).float().cpu())
        return torch.cat(out)

    return image_similarities(enc_tensor(base, heldout), enc_tensor(defended, heldout),
                              enc_paths(base, face_paths), enc_paths(defended, face_paths),
                              enc_paths(base, removed_paths), enc_paths(defended, removed_paths))


def zeroshot_against_base(defended, image_trained: bool, batch: int, device, bf16: bool = False,
                          workers: int = 0) -> dict:
    """Per benchmark of utility_before: top-1/top-5 of `defended`, the base model's, and the change.
    The benchmark images' embeddings are reused when the image tower was not trained."""
    base_zs = json.loads(Path("metrics/utility_before.json").read_text())
    benches = json.loads((UTILITY / "benchmarks.json").read_text())
    settings = UTILITY / "zeroshot.json"
    max_templates = json.loads(settings.read_text())["max_templates"] if settings.is_file() else 0
    out = {}
    for bench_name, folder in sorted(benches.items()):
        bench = load_benchmark(folder, max_templates)
        reuse = None if image_trained else load_embeddings(UTILITY / f"{bench_name}_images.safetensors")
        acc, _ = zero_shot(defended, bench, batch, device, image_emb=reuse, bf16=bf16, workers=workers)
        out[bench_name] = {**acc, **{f"{k}_base": v for k, v in base_zs[bench_name].items()},
                           **{f"{k}_change": acc[k] - base_zs[bench_name][k] for k in acc}}
    return out


if __name__ == "__main__":
    run_stage(main)
