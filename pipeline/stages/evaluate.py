"""Stage `evaluate`: the attack, utility and similarity metrics of one defended model.

    python -m pipeline.stages.evaluate --encoder text --k 4

The tower a defense did not train is not encoded again: its embeddings come from
`idia_before` (attack) and `utility_before` (zero-shot benchmark images).
"""
from __future__ import annotations

import argparse

import pandas as pd
import yaml

from pipeline.core.atomic import atomic_dir, write_json
from pipeline.attack.run import load_embeddings, run_idia, save_embeddings
from pipeline.evaluation.collateral import compare
from pipeline.evaluation.defended import utility_costs
from pipeline.models.checkpoint import load_model
from pipeline.models.device import resolve_device
from pipeline.core.params import load_params
from pipeline.core.stage_runner import run_stage
from pipeline.core.paths import (BASE_MODEL, DEFENDED, EVALUATE, FACESCRUB_INDEX, IDIA_BEFORE,
                                 SHARDS, SPLITS, UTILITY_BEFORE, metrics_file, run_name)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--encoder", choices=["text", "image", "both"], required=True)
    ap.add_argument("--k", type=int, required=True)
    args = ap.parse_args()
    name = run_name(args.encoder, args.k)

    p = load_params("evaluate")
    tau = load_params("idia_before")["tau"]
    batch = p["batch_size"]
    n_sim = p["similarity_samples"]
    device = resolve_device(p["device"], "evaluate.device")
    workers = p["workers"]
    bf16 = p["bf16"]

    model_dir = DEFENDED / name
    defended = load_model(model_dir, device)
    base = load_model(BASE_MODEL, device)
    removed = list(pd.read_csv(model_dir / "removed.csv")["name"])
    defense = yaml.safe_load((model_dir / "defense.yaml").read_text())
    text_trained, image_trained = args.encoder in ("text", "both"), args.encoder in ("image", "both")

    identities = pd.read_csv(SPLITS / "identities.csv")
    photos = pd.read_csv(SPLITS / "idia_photos.csv")
    candidates = pd.read_csv(SPLITS / "candidates.csv")
    after = run_idia(defended, identities, photos, candidates, tau, batch, device,
                     text_emb=None if text_trained else load_embeddings(IDIA_BEFORE / "text_embeddings.safetensors"),
                     image_emb=None if image_trained else load_embeddings(IDIA_BEFORE / "image_embeddings.safetensors"),
                     bf16=bf16, workers=workers)
    table, metrics = compare(pd.read_csv(IDIA_BEFORE / "identities.csv"), after.table, removed)
    metrics["encoder"] = args.encoder

    clean = pd.read_parquet(SPLITS / "clean_captions.parquet")
    heldout = clean[clean["split"] == "heldout"].head(n_sim)
    metrics.update(utility_costs(base, defended, args.encoder, removed, defense.get("text", {}).get("target"),
                                 heldout, photos, batch=batch, device=device, n_sim=n_sim, bf16=bf16,
                                 workers=workers, utility_before=UTILITY_BEFORE, shards=SHARDS,
                                 facescrub_index=FACESCRUB_INDEX))

    with atomic_dir(EVALUATE / name) as tmp:
        table.to_csv(tmp / "identities.csv", index=False)
        # the attack's embeddings of this model, as idia_before saves the base model's: the audit reuses them
        save_embeddings(tmp / "text_embeddings.safetensors", after.text_emb)
        save_embeddings(tmp / "image_embeddings.safetensors", after.image_emb)
    write_json(metrics_file("evaluate", name), metrics)
    print(f"evaluate {name}: tpr_removed {metrics['tpr_removed']:.2f}, wrongfully unlearned "
          f"{metrics['wrongfully_unlearned']} ({metrics['wrongfully_unlearned_pct']:.1f} %)")


if __name__ == "__main__":
    run_stage(main)
