"""Stage `audit_base`: every probe of docs/method.md §7 on the base model, the reference each
defended model's audit is read against (data/audit/base/probes.csv), and every probe's
embeddings (data/audit/base/embeddings.safetensors), which the audit of a tower that a
defense did not train reuses instead of encoding again."""
from __future__ import annotations

from safetensors.torch import save_file

from pipeline.audit.run import EMBEDDINGS_FILE, PROBES_FILE, probe_table, split_tables
from pipeline.core.atomic import atomic_dir
from pipeline.core.params import load_params
from pipeline.core.paths import AUDIT, BASE_MODEL, SPLITS
from pipeline.core.stage_runner import run_stage
from pipeline.models.checkpoint import load_model
from pipeline.models.device import resolve_device


def main() -> None:
    p = load_params("audit")
    device = resolve_device(p["device"], "audit.device")
    embeddings = {}
    table = probe_table(load_model(BASE_MODEL, device), **split_tables(SPLITS),
                        batch_size=p["batch_size"], device=device, seed=p["seed"], bf16=p["bf16"],
                        keep=embeddings)
    with atomic_dir(AUDIT / "base") as tmp:
        table.to_csv(tmp / PROBES_FILE, index=False)
        # a defended model's untrained tower gives these again: its audit reuses them
        save_file({k: v.float().contiguous().cpu() for k, v in embeddings.items()}, str(tmp / EMBEDDINGS_FILE))
    found = {c: int((table[c] >= load_params("idia_before")["tau"]).sum()) for c in table.columns[1:]}
    print("audit base: identified per probe: " + ", ".join(f"{c} {n}" for c, n in found.items()))


if __name__ == "__main__":
    run_stage(main)
