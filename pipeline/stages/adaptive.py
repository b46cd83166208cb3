"""Stage `adaptive`: the adaptive attacks of docs/method.md §7 on the models of `audit.adaptive.models`.

    dvc exp run -S 'audit.adaptive.models=[image-k4,reference-k4]'

Each model (`text-k4`, `image-k4`, `both-k4`: data/defended/<name>; `reference-k4`:
data/reference/k4) meets two attackers who know more than the name:
- relearning: a copy fine-tuned on clean corpus pairs (the splits' clean pool, whose captions
  name no downloaded person), the exact attack at step 0 and after every checkpoint;
- a learned trigger: per removed person, one token embedding optimised on their trigger-half
  photos, then the attack with that token in place of their name on their attack photos.
Writes data/adaptive/<name>/{relearn,inversion}.csv and metrics/adaptive.json; with no models
listed (the default: outside the demo's time budget) both say so and nothing is trained.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd
import torch

from pipeline.attack.run import encode_idia_texts, image_owners, run_idia
from pipeline.audit.inversion import InversionConfig, correct_with_token, learn_token, token_templates
from pipeline.audit.relearn import RelearnConfig, relearn
from pipeline.core.atomic import atomic_dir, write_json
from pipeline.core.errors import PipelineError
from pipeline.core.params import load_params
from pipeline.core.paths import ADAPTIVE, DEFENDED, REFERENCE, SHARDS, SPLITS, metrics_file
from pipeline.core.stage_runner import run_stage
from pipeline.models.checkpoint import load_model
from pipeline.models.device import resolve_device
from pipeline.models.image_encoding import encode_images
from pipeline.models.shards import ShardImages

REFERENCE_PREFIX = "reference-k"


def model_folder(name: str) -> Path:
    if name.startswith(REFERENCE_PREFIX) and name[len(REFERENCE_PREFIX):].isdigit():
        folder = REFERENCE / f"k{name[len(REFERENCE_PREFIX):]}"
    else:
        folder = DEFENDED / name
    if not (folder / "removed.csv").is_file():
        raise PipelineError(f"audit.adaptive.models: no model {name!r} ({folder}/removed.csv not found); allowed: "
                            "a defended run (text-k4, image-k4, both-k4, ...) or reference-k<K> of audit.reference_k")
    return folder


def attack_on_removed(loaded, removed: list[str], tables: dict, tau: int, batch: int, device):
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


def inversion_rows(loaded, removed: list[str], tables: dict, cfg: InversionConfig, tau: int, batch: int,
                   device) -> list[dict]:
    """Per removed person: correct templates of the attack with their name and with a learned token."""
    names = tables["candidates"]["name"].astype(str).to_list()
    index, owner = image_owners(tables["identities"], tables["photos"], names)
    model, tok, prep = loaded.model, loaded.tokenizer, loaded.preprocess
    image_emb = encode_images(model, prep, list(map(Path, tables["photos"]["path"])), batch, device, progress=None)
    text_emb = encode_idia_texts(model, tok, names, batch, device)
    triggers = tables["triggers"]
    rows = []
    for person in removed:
        photos = [Path(p) for p in triggers.loc[triggers["name"] == person, "path"]]
        if not photos:
            rows.append({"name": person, "trigger_photos": 0, "correct_name": None, "correct_token": None})
            continue
        token = learn_token(model, tok, encode_images(model, prep, photos, batch, device, progress=None), cfg, device)
        with_token = correct_with_token(image_emb, text_emb, owner, index[person],
                                        token_templates(model, tok, token, device))
        with_name = correct_with_token(image_emb, text_emb, owner, index[person], text_emb[:, index[person]])
        rows.append({"name": person, "trigger_photos": len(photos), "correct_name": with_name,
                     "correct_token": with_token, "identified_token": with_token >= tau})
    return rows


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
    r, inv = a["relearn"], a["inversion"]
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
            (tmp / name).mkdir()
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
            }
            print(f"adaptive {name}: relearning, removed identified per step " +
                  ", ".join(f"{row['step']}: {row['identified_removed']}/{len(removed)}" for row in steps) +
                  f"; learned token identifies {results[name]['inversion']['identified_token']}/{len(learned)}")
    write_json(metrics_file("adaptive"), {"relearn": dataclasses.asdict(relearn_cfg),
                                          "inversion": dataclasses.asdict(inversion_cfg), "models": results})


if __name__ == "__main__":
    run_stage(main)
