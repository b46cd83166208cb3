"""Stage `adaptive`: the adaptive attacks of docs/method.md §7 on the models of `audit.adaptive.models`.

    dvc exp run -S 'audit.adaptive.models=[image-k4,reference-k4]'

Each model (`text-k4`, `image-k4`, `both-k4`: data/defended/<name>; `reference-k4`:
data/reference/k4) meets two attackers who know more than the name:
- relearning: a copy fine-tuned on clean corpus pairs (the splits' clean pool, whose captions
  name no downloaded person), the exact attack at step 0 and after every checkpoint;
- a learned trigger: per removed person, one token embedding optimised on their trigger-half
  photos, then the attack with that token in place of their name on their attack photos;
- few-shot relearning: per removed person and n, n captioned photos of them in every batch,
  and how many steps until the attack identifies them again.
Writes data/adaptive/<name>/{relearn,inversion,few_shot}.csv and metrics/adaptive.json; with no models
listed (the default: outside the demo's time budget) both say so and nothing is trained.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd
import torch

from pipeline.audit.adaptive import attack_on_removed, few_shot_rows, inversion_rows
from pipeline.audit.inversion import InversionConfig
from pipeline.audit.relearn import RelearnConfig, relearn
from pipeline.core.atomic import atomic_dir, write_json
from pipeline.core.errors import PipelineError
from pipeline.core.params import load_params
from pipeline.core.paths import ADAPTIVE, DEFENDED, REFERENCE, SHARDS, SPLITS, metrics_file, parse_reference_run
from pipeline.core.stage_runner import run_stage
from pipeline.models.checkpoint import load_model
from pipeline.models.device import resolve_device
from pipeline.models.shards import ShardImages


def model_folder(name: str) -> Path:
    k = parse_reference_run(name)
    if k is not None:
        folder = REFERENCE / f"k{k}"
    else:
        folder = DEFENDED / name
    if not (folder / "removed.csv").is_file():
        raise PipelineError(f"audit.adaptive.models: no model {name!r} ({folder}/removed.csv not found); allowed: "
                            "a defended run (text-k4, image-k4, both-k4, ...) or reference-k<K> of audit.reference_k")
    return folder


def main() -> None:
    p = load_params("audit")
    a = p["adaptive"]
    tau = load_params("idia_before")["tau"]
    names = list(a["models"])
    if not names:
        with atomic_dir(ADAPTIVE) as tmp:
            (tmp / "SKIPPED.txt").write_text("no models listed in audit.adaptive.models\n")
        write_json(metrics_file("adaptive"), {"skipped": "no models listed in audit.adaptive.models"})
        print("adaptive: skipped (audit.adaptive.models is empty)")
        return
    folders = {n: model_folder(n) for n in names}   # every name checked before any training
    r, inv, fs = a["relearn"], a["inversion"], a["few_shot"]
    relearn_cfg = RelearnConfig(checkpoints=tuple(r["checkpoints"]), batch_size=r["batch_size"], lr=r["lr"],
                                seed=r["seed"])
    inversion_cfg = InversionConfig(steps=inv["steps"], lr=inv["lr"], seed=inv["seed"])
    device = resolve_device(p["device"], "audit.device")
    torch.set_num_threads(a["threads"])
    tables = {"identities": pd.read_csv(SPLITS / "identities.csv"), "photos": pd.read_csv(SPLITS / "idia_photos.csv"),
              "candidates": pd.read_csv(SPLITS / "candidates.csv"),
              "triggers": pd.read_csv(SPLITS / "trigger_faces.csv")}
    clean = pd.read_parquet(SPLITS / "clean_captions.parquet")
    clean = clean[clean["split"] == "train"]
    images = ShardImages(SHARDS, list(clean["key"]))
    caption_of = dict(zip(clean["key"], clean["caption"]))
    captions = [caption_of[k] for k in images.keys]

    results = {}
    with atomic_dir(ADAPTIVE) as tmp:
        for name, folder in folders.items():
            loaded = load_model(folder, device)
            removed = list(pd.read_csv(folder / "removed.csv")["name"])
            steps = relearn(loaded.model, images, captions, loaded.tokenizer, relearn_cfg, device,
                            attack_on_removed(loaded, removed, tables, tau, p["batch_size"], device))
            tokens = inversion_rows(loaded, removed, tables, inversion_cfg, tau, p["batch_size"], device)
            shots = few_shot_rows(loaded, removed, tables, images, captions, relearn_cfg, list(fs["shots"]),
                                  fs["every"], fs["max_steps"], tau, p["batch_size"], device)
            (tmp / name).mkdir()
            pd.DataFrame(shots).to_csv(tmp / name / "few_shot.csv", index=False)
            pd.DataFrame(steps).to_csv(tmp / name / "relearn.csv", index=False)
            pd.DataFrame(tokens).to_csv(tmp / name / "inversion.csv", index=False)
            learned = [t for t in tokens if t["correct_token"] is not None]
            results[name] = {
                "removed": len(removed),
                "relearn": {str(row["step"]): {k: row[k] for k in ("tpr_removed", "identified_removed",
                                                                   "correct_templates_removed", "tpr_kept")}
                            for row in steps},
                "inversion": {"people": len(learned),
                              "identified_token": sum(bool(t["identified_token"]) for t in learned),
                              "identified_name": sum(t["correct_name"] >= tau for t in learned),
                              "correct_token_mean": round(sum(t["correct_token"] for t in learned)
                                                          / max(1, len(learned)), 3)},
                "few_shot": {str(n): {
                    "shots_used": [r["shots_used"] for r in shots if r["shots"] == n],
                    "identified_again": sum(r["steps_to_identified"] is not None for r in shots if r["shots"] == n),
                    "steps_to_identified": [r["steps_to_identified"] for r in shots if r["shots"] == n]}
                    for n in fs["shots"]},
            }
            print(f"adaptive {name}: relearning, removed identified per step " +
                  ", ".join(f"{row['step']}: {row['identified_removed']}/{len(removed)}" for row in steps) +
                  f"; learned token identifies {results[name]['inversion']['identified_token']}/{len(learned)}")
    write_json(metrics_file("adaptive"), {"relearn": dataclasses.asdict(relearn_cfg),
                                          "inversion": dataclasses.asdict(inversion_cfg),
                                          "few_shot": dict(a["few_shot"]), "models": results})


if __name__ == "__main__":
    run_stage(main)
