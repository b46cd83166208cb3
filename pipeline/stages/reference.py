"""Stage `reference`: R, the model that never saw the removed people (docs/method.md §7).

The base model trained again from scratch, with the same params, seed and steps, on the corpus
minus every caption that names one of the K people the defenses remove (`audit.reference_k`;
the same `defend.seed` / `defend.pool` draw as `defend_*`). The audit reads every probe of the
base model, a defended model and R side by side: how close a removal comes to never having
seen the person. Writes data/reference/k<K>/ (checkpoint loadable by stock open_clip,
removed.csv) and metrics/reference/k<K>.json.

Only for the demo profile (a base model trained here); with a published checkpoint
(`base_model.pretrained`, the paper profile) its pretraining cannot be repeated on this corpus,
and the stage writes SKIPPED.txt and metrics that say why instead of a model.
"""
from __future__ import annotations

import os

os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")   # before CUDA initialises

import pandas as pd  # noqa: E402
import torch  # noqa: E402

from pipeline.core.atomic import atomic_dir, write_json  # noqa: E402
from pipeline.core.params import load_params  # noqa: E402
from pipeline.core.paths import IDIA_BEFORE, REFERENCE, SPLITS, metrics_file, plot_file  # noqa: E402
from pipeline.core.stage_runner import run_stage  # noqa: E402
from pipeline.data.splits import name_matcher  # noqa: E402
from pipeline.defenses.targets import pool_members, removal_set  # noqa: E402
from pipeline.models.checkpoint import save_checkpoint  # noqa: E402
from pipeline.models.device import resolve_device, select_attention_kernel  # noqa: E402
from pipeline.models.pretrain import train_from_scratch, write_log  # noqa: E402


SKIPPED = "SKIPPED.txt"   # in the output folder instead of a model: why there is no R


def main() -> None:
    p = load_params("base_model")
    audit, defend = load_params("audit"), load_params("defend")
    k = audit["reference_k"]
    out = REFERENCE / f"k{k}"
    if p["pretrained"].strip():
        # a published checkpoint's pretraining cannot be repeated here: say so, leave no model
        reason = f"base_model.pretrained = {p['pretrained']!r}: R repeats the base model's own pretraining"
        with atomic_dir(out) as tmp:
            (tmp / SKIPPED).write_text(reason + "\n")
        write_log(plot_file("reference", f"k{k}"), [])
        write_json(metrics_file("reference", f"k{k}"), {"k": k, "skipped": reason})
        print(f"reference: skipped ({reason})")
        return
    names = removal_set(pd.read_csv(IDIA_BEFORE / "identities.csv"), k, defend["seed"],
                        pool_members(pd.read_csv(SPLITS / "identities.csv"), defend["pool"]), defend["pool"])
    device = resolve_device(p["device"], key="base_model.device")
    select_attention_kernel(device)
    torch.set_num_threads(p["threads"])
    torch.use_deterministic_algorithms(True, warn_only=True)

    names_one = name_matcher(names)
    model, model_cfg, metrics = train_from_scratch(p, p["arch"], device, plot_file("reference", f"k{k}"),
                                                   keep=lambda caption: not names_one(caption))
    with atomic_dir(out) as tmp:
        save_checkpoint(model, tmp, p["arch"], model_cfg)
        pd.DataFrame({"name": names}).to_csv(tmp / "removed.csv", index=False)
    metrics.update(k=k, removed=len(names), device=device.type)
    write_json(metrics_file("reference", f"k{k}"), metrics)
    print(f"reference: R for K = {k}, trained without the {metrics['samples_dropped']} captions naming "
          f"the removed people -> {out}")


if __name__ == "__main__":
    run_stage(main)
