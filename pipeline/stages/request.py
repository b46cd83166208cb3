"""Stage `request`: one removal request of the chain `requests.chain` (README "Removal requests").

    python -m pipeline.stages.request --id demo-001 --after base

A request starts from the models its predecessor produced (the base model for the first),
trains the towers it asks for on its own names only, and attacks the result: its own people,
and every person earlier requests removed (a later removal must not bring one back). Writes
data/requests/<id>/ (text/, image/, both/ open_clip checkpoints, removed.csv, the attack tables),
metrics/requests/<id>.json and the proof reports/requests/<id>.{md,json}.
"""
from __future__ import annotations

import argparse
import datetime as dt
import subprocess

from pipeline.core.atomic import atomic_dir, atomic_file, write_json
from pipeline.core.errors import PipelineError
from pipeline.core.params import load_params
from pipeline.core.paths import REPORTS, REQUESTS, metrics_file
from pipeline.core.stage_runner import run_stage
from pipeline.requests.request import load_chain


def code_version() -> str:
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True, timeout=10)
    except OSError:
        return "unknown (no git)"
    return out.stdout.strip() or "unknown (not a git checkout)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--id", required=True)
    ap.add_argument("--after", required=True)
    args = ap.parse_args()
    from pipeline.requests.fulfil import fulfil

    p = load_params("requests")
    chain = load_chain(p["chain"])
    request = next((r for r in chain if r.id == args.id), None)
    if request is None or request.after != args.after:
        raise PipelineError(f"request {args.id!r} after {args.after!r} is not in requests.chain; "
                            "dvc.yaml runs the entries of requests.chain")
    if chain[0].towers != request.towers:
        raise PipelineError(f"{request.source}: towers {list(request.towers)} differ from the chain's first request "
                            f"({list(chain[0].towers)}); the requests of one chain defend one deployed model")
    result = fulfil(request, REQUESTS / request.after, p["attack_share"],
                    defend=load_params("defend"), evaluate=load_params("evaluate"),
                    tau=load_params("idia_before")["tau"],
                    audit_seed=load_params("audit")["seed"] if p["audit"] else None)
    out = REQUESTS / request.id
    with atomic_dir(out) as tmp:
        result.write(tmp, out)
    write_json(metrics_file("requests", request.id), result.metrics)
    params = {"requests.attack_share": p["attack_share"], **result.params,
              "base_model": load_params("base_model"), "splits": load_params("splits")}
    proof = result.proof(params=params, code_version=code_version(),
                         date=dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
    folder = REPORTS / "requests"
    with atomic_file(folder / f"{request.id}.json") as fh:
        fh.write(proof.json)
    with atomic_file(folder / f"{request.id}.md") as fh:
        fh.write(proof.markdown)
    print(result.summary())


if __name__ == "__main__":
    run_stage(main)
