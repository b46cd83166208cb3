"""Stage `audit`: every probe of docs/method.md §7 on one defended model, read against the
base model's probes (stage `audit_base`).

    python -m pipeline.stages.audit --model data/defended/text-k4 --evaluated data/evaluate/text-k4
    python -m pipeline.stages.audit --model data/reference/k4 --name reference-k4

A defended model's metrics: per probe, TPR on the removed (base and defended), the residual
and the collateral on that probe; per probe family, the verdict; for a defended text tower,
the ROC AUC of the "was this name removed?" detector.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd
import yaml
from safetensors.torch import load_file

from pipeline.attack.run import encode_idia_texts
from pipeline.audit.fingerprint import roc_auc, target_cosine
from pipeline.attack.run import load_embeddings
from pipeline.audit.run import (EMBEDDINGS_FILE, PROBES_FILE, probe_table, split_tables, template_counts,
                                tower_embeddings)
from pipeline.audit.summary import probe_summary
from pipeline.core.atomic import atomic_dir, write_json
from pipeline.core.errors import PipelineError
from pipeline.core.params import load_params
from pipeline.core.paths import AUDIT, SPLITS, metrics_file, parse_reference_run, parse_run_name
from pipeline.core.stage_runner import run_stage
from pipeline.models.checkpoint import load_model
from pipeline.models.device import resolve_device
from pipeline.models.text_encoding import encode_texts


def removal_detector_auc(model, tokenizer, members: list[str], removed: list[str], target: str,
                         batch_size: int, device, bf16: bool) -> float:
    """How well the cosine to the target phrase lists the removed among the members."""
    names = encode_idia_texts(model, tokenizer, members, batch_size, device, templates=["{}"], bf16=bf16)[0]
    target_emb = encode_texts(model, tokenizer, [target], 1, device, progress=None, bf16=bf16)[0]
    scores = target_cosine(names, target_emb)
    return roc_auc(scores, [m in set(removed) for m in members])


def reused_embeddings(encoder: str, evaluated: Path | None) -> dict:
    """What a defended model gives exactly as already computed, so it is not encoded again: the
    base model's probe embeddings for the tower its defense did not train (audit_base), and the
    exact attack's embeddings of the trained tower (its evaluate stage's folder, `evaluated`).
    R is a new model: none."""
    if encoder == "reference":
        return {}
    if evaluated is None:
        raise PipelineError("audit of a defended model needs --evaluated <its data/evaluate folder>")
    reuse = {}
    untouched = {"text": "photos", "image": "texts"}.get(encoder)
    if untouched:
        reuse.update(tower_embeddings(load_file(str(AUDIT / "base" / EMBEDDINGS_FILE)), untouched))
    if encoder in ("text", "both"):
        reuse["texts/exact"] = load_embeddings(evaluated / "text_embeddings.safetensors")
    if encoder in ("image", "both"):
        reuse["photos/exact"] = load_embeddings(evaluated / "image_embeddings.safetensors")
    return reuse


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, type=Path,
                    help="the model's folder: a defended run (data/defended/text-k4) or R (data/reference/k4)")
    ap.add_argument("--name", help="its name in data/audit/ and metrics/audit/ (default: the folder's name)")
    ap.add_argument("--evaluated", type=Path,
                    help="a defended model's evaluate folder (data/evaluate/text-k4): its attack embeddings are reused")
    args = ap.parse_args()
    p = load_params("audit")
    tau = load_params("idia_before")["tau"]
    device = resolve_device(p["device"], "audit.device")

    tables = split_tables(SPLITS)
    identities = tables["identities"]
    model_dir, name = args.model, args.name or args.model.name
    encoder = "reference" if parse_reference_run(name) is not None else parse_run_name(name)[0]
    skipped = model_dir / "SKIPPED.txt"
    if skipped.is_file():      # no model here (R of a published checkpoint): nothing to probe
        with atomic_dir(AUDIT / name) as tmp:
            (tmp / "SKIPPED.txt").write_text(skipped.read_text())
        write_json(metrics_file("audit", name), {"skipped": skipped.read_text().strip()})
        print(f"audit {name}: skipped ({skipped.read_text().strip()})")
        return
    base_file = AUDIT / "base" / PROBES_FILE
    if not base_file.is_file():
        raise PipelineError(f"{base_file} not found; run the base model's audit first (dvc repro audit_base)")
    loaded = load_model(model_dir, device)
    reuse = reused_embeddings(encoder, args.evaluated)
    start = time.perf_counter()
    table = probe_table(loaded, **tables, batch_size=p["batch_size"], device=device, seed=p["seed"],
                        bf16=p["bf16"], reuse=reuse)
    seconds = time.perf_counter() - start
    with atomic_dir(AUDIT / name) as tmp:
        table.to_csv(tmp / PROBES_FILE, index=False)
    removed = list(pd.read_csv(model_dir / "removed.csv")["name"])
    members = identities.set_index("name")["member"].astype(str).str.lower().isin(["true", "1"])
    metrics = probe_summary(pd.read_csv(base_file), table, members, removed, tau)
    metrics["templates"] = template_counts()
    metrics["removal_detector_auc"] = None
    if encoder in ("text", "both"):
        target = yaml.safe_load((model_dir / "defense.yaml").read_text())["text"]["target"]
        member_names = list(members[members].index)
        metrics["removal_detector_auc"] = removal_detector_auc(
            loaded.model, loaded.tokenizer, member_names, removed, target, p["batch_size"], device, p["bf16"])
    metrics["seconds"] = {"probes": round(seconds, 1), "embeddings_reused": len(reuse)}
    write_json(metrics_file("audit", name), metrics)
    verdicts = ", ".join(f"{f}: {v['verdict']}" for f, v in metrics["families"].items())
    print(f"audit {name}: {verdicts}")


if __name__ == "__main__":
    run_stage(main)
