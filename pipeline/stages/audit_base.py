"""Stage `audit_base`: every probe of docs/method.md §7 on the base model, the reference each
defended model's audit is read against (data/audit/base/probes.csv)."""
from __future__ import annotations

from pipeline.audit.run import PROBES_FILE, probe_table, split_tables
from pipeline.core.atomic import atomic_dir
from pipeline.core.params import load_params
from pipeline.core.paths import AUDIT, BASE_MODEL, SPLITS
from pipeline.core.stage_runner import run_stage
from pipeline.models.checkpoint import load_model
from pipeline.models.device import resolve_device


def main() -> None:
    p = load_params("audit")
    device = resolve_device(p["device"], "audit.device")
    table = probe_table(load_model(BASE_MODEL, device), **split_tables(SPLITS),
                        batch_size=p["batch_size"], device=device, seed=p["seed"], bf16=p["bf16"])
    with atomic_dir(AUDIT / "base") as tmp:
        table.to_csv(tmp / PROBES_FILE, index=False)
    found = {c: int((table[c] >= load_params("idia_before")["tau"]).sum()) for c in table.columns[1:]}
    print("audit base: identified per probe: " + ", ".join(f"{c} {n}" for c, n in found.items()))


if __name__ == "__main__":
    run_stage(main)
