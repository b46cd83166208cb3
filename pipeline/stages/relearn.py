"""Stage `relearn`: the relearning attack (docs/method.md §7) on the models of `audit.relearn.models`.

    dvc exp run -S 'audit.relearn.models=[image-k4,reference-k4]'

Each model (`text-k4`, `image-k4`, `both-k4`: data/defended/<name>; `reference-k4`:
data/reference/k4) is fine-tuned on clean corpus pairs (the splits' clean pool, whose captions
name no downloaded person), and the exact attack runs at step 0 and at every checkpoint.
Writes data/relearn/<name>.csv (one row per checkpoint) and metrics/relearn.json; with no
models listed (the default: it is an adaptive attack, outside the demo's time budget) both
say so and nothing is trained.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd
import torch

from pipeline.attack.run import run_idia
from pipeline.audit.relearn import RelearnConfig, relearn
from pipeline.core.atomic import atomic_dir, write_json
from pipeline.core.errors import PipelineError
from pipeline.core.params import load_params
from pipeline.core.paths import DEFENDED, REFERENCE, RELEARN, SHARDS, SPLITS, metrics_file
from pipeline.core.stage_runner import run_stage
from pipeline.models.checkpoint import load_model
from pipeline.models.device import resolve_device
from pipeline.models.shards import ShardImages


def model_folder(name: str) -> Path:
    if name.startswith("reference-k") and name[len("reference-k"):].isdigit():
        return REFERENCE / f"k{name[len('reference-k'):]}"
    folder = DEFENDED / name
    if not (folder / "removed.csv").is_file():
        raise PipelineError(f"audit.relearn.models: no model {name!r} ({folder}/removed.csv not found); allowed: "
                            "a defended run (text-k4, image-k4, both-k4, ...) or reference-k<K> "
                            "(audit.reference_k)")
    return folder


def attack_on_removed(loaded, removed: list[str], tables: dict, tau: int, batch: int, device) -> callable:
    """The exact attack as a probe: TPR and mean correct templates on `removed`, TPR on the kept members."""
    def probe(model) -> dict:
        result = run_idia(dataclasses.replace(loaded, model=model), tables["identities"], tables["photos"],
                          tables["candidates"], tau, batch, device)
        t = result.table.set_index("name")
        members = t[t["member"]]
        gone, kept = members.loc[members.index.isin(removed)], members.loc[~members.index.isin(removed)]
        return {"tpr_removed": round(float(gone["identified"].mean()), 4),
                "identified_removed": int(gone["identified"].sum()),
                "correct_templates_removed": round(float(gone["correct_templates"].mean()), 3),
                "tpr_kept": round(float(kept["identified"].mean()), 4) if len(kept) else None}
    return probe


def main() -> None:
    p = load_params("audit")
    r = p["relearn"]
    tau = load_params("idia_before")["tau"]
    names = list(r["models"])
    if not names:
        with atomic_dir(RELEARN) as tmp:
            (tmp / "SKIPPED.txt").write_text("no models listed in audit.relearn.models\n")
        write_json(metrics_file("relearn"), {"skipped": "no models listed in audit.relearn.models"})
        print("relearn: skipped (audit.relearn.models is empty)")
        return
    folders = {n: model_folder(n) for n in names}   # every name checked before any training
    cfg = RelearnConfig(checkpoints=tuple(r["checkpoints"]), batch_size=r["batch_size"], lr=r["lr"], seed=r["seed"])
    device = resolve_device(p["device"], "audit.device")
    torch.set_num_threads(r["threads"])
    tables = {"identities": pd.read_csv(SPLITS / "identities.csv"), "photos": pd.read_csv(SPLITS / "idia_photos.csv"),
              "candidates": pd.read_csv(SPLITS / "candidates.csv")}
    clean = pd.read_parquet(SPLITS / "clean_captions.parquet")
    clean = clean[clean["split"] == "train"]
    images = ShardImages(SHARDS, list(clean["key"]))
    caption_of = dict(zip(clean["key"], clean["caption"]))
    captions = [caption_of[k] for k in images.keys]

    results = {}
    with atomic_dir(RELEARN) as tmp:
        for name, folder in folders.items():
            loaded = load_model(folder, device)
            removed = list(pd.read_csv(folder / "removed.csv")["name"])
            rows = relearn(loaded.model, images, captions, loaded.tokenizer, cfg, device,
                           attack_on_removed(loaded, removed, tables, tau, p["batch_size"], device))
            pd.DataFrame(rows).to_csv(tmp / f"{name}.csv", index=False)
            results[name] = {"removed": len(removed), "steps": {str(row["step"]): {
                k: row[k] for k in ("tpr_removed", "identified_removed", "correct_templates_removed", "tpr_kept")}
                for row in rows}}
            print(f"relearn {name}: identified removed per step " +
                  ", ".join(f"{row['step']}: {row['identified_removed']}/{len(removed)}" for row in rows))
    write_json(metrics_file("relearn"), {"config": dataclasses.asdict(cfg), "models": results})


if __name__ == "__main__":
    run_stage(main)
