"""The seed experiments that count, kept in git: metrics/seed_runs.json.

DVC keeps an experiment as a git ref and its outputs in the local cache; a fresh clone or a
fresh machine has neither, so a set of removal seeds that takes longer than one session to run
(about 2 h 40 min here) would be lost between sessions. Each aggregation therefore writes the
slice of `dvc exp show --json -A` that the aggregation reads (params, `pipeline/` dep hashes,
the evaluation and defense metrics) for every experiment it counted, and the next aggregation
reads those rows next to the live experiments. A recorded row passes the same code and params
check as a live one (`seeds.collect`), so rows of older code drop out by themselves.
"""
from __future__ import annotations

import json
from datetime import date
from pathlib import Path

from pipeline.core.paths import METRICS

LEDGER = METRICS / "seed_runs.json"
KEPT_METRICS = ("metrics/evaluate/", "metrics/defend/")   # what seeds.collect reads


def _cpu() -> str:
    """The CPU model as /proc/cpuinfo names it (what `lscpu` shows), or "unknown"."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def row(name: str, rev: str, data: dict) -> dict:
    """One experiment as `dvc exp show --json` gives it, cut to what the aggregation reads."""
    params = ((data.get("params") or {}).get("params.yaml") or {}).get("data") or {}
    deps = {path: {"hash": (dep or {}).get("hash")} for path, dep in (data.get("deps") or {}).items()
            if path.startswith("pipeline/")}
    metrics = {path: {"data": (entry or {}).get("data")} for path, entry in sorted((data.get("metrics") or {}).items())
               if path.startswith(KEPT_METRICS) and (entry or {}).get("data")}
    return {"name": name, "rev": rev,
            "data": {"params": {"params.yaml": {"data": params}}, "deps": deps, "metrics": metrics}}


def load(path: Path = LEDGER) -> list[dict]:
    """The recorded rows, or [] when there is no ledger yet."""
    if not path.is_file():
        return []
    rows = json.loads(path.read_text()).get("runs") or []
    return [r for r in rows if isinstance(r, dict) and r.get("data")]


def as_exp_show(rows: list[dict]) -> list[dict]:
    """Recorded rows shaped as baseline rows of `dvc exp show --json -A`, so that
    `seeds.iter_revs` and `seeds.collect` read them like live ones."""
    return [{"rev": r["rev"], "name": r["name"], "data": r["data"], "error": None, "experiments": None}
            for r in rows]


def write(counted: list[tuple[str, str, dict]], previous: list[dict], path: Path = LEDGER) -> Path:
    """The ledger with one row per counted experiment (name, rev, exp-show data); a row whose data
    was recorded before keeps its first name, rev, date and CPU (the machine that recorded it first,
    normally the one that ran it)."""
    def same(r: dict) -> str:
        return json.dumps(r["data"], sort_keys=True)

    before = {same(r): r for r in previous}
    rows = []
    for name, rev, data in counted:
        # The live workspace is "workspace" in every checkout; recorded, it is one run among others.
        new = row(name, f"workspace-{date.today().isoformat()}" if rev == "workspace" else rev, data)
        old = before.get(same(new))
        if old:
            new["name"], new["rev"] = old["name"], old["rev"]
        new["recorded"] = (old or {}).get("recorded") or {"date": date.today().isoformat(), "cpu": _cpu()}
        rows.append(new)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"runs": rows}, indent=1, sort_keys=True) + "\n")
    return path
