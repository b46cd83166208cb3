"""Stage `report`: reports/report.md, reports/report.html and reports/figures/*.png.

    python -m pipeline.stages.report

Reads the metrics and plot tables of every stage (runs are found by globbing
metrics/evaluate/*.json), renders the figures with matplotlib and writes a Markdown report
and a self-contained HTML copy (figures embedded, no external files). Everything is built
in a temporary folder (pipeline.core.atomic's staging) and moved into place at the end, so a
failed run leaves the previous report untouched.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from pipeline.core.atomic import scratch_dir
from pipeline.core.params import load_params
from pipeline.core.paths import REPORTS, reference_run, run_name
from pipeline.core.stage_runner import run_stage

OUTPUTS = ("figures", "report.md", "report.html")   # replaced in this order


def options_from_params():
    from pipeline.reports.build import ReportOptions

    p = load_params("report")
    defend = load_params("defend")
    runs = ({run_name("text", k) for k in defend["text_ks"]}
            | {run_name(enc, k) for enc in ("image", "both") for k in defend["image_ks"]})
    return ReportOptions(pseudonymize=p["pseudonymize"], salt=str(p["salt"]), dpi=p["dpi"],
                         image_recipes=defend["image_recipes"], runs=runs,
                         references={reference_run(load_params('audit')['reference_k'])},
                         trials=Path(p["trials"]) if p["trials"] else None,
                         recipe_trials={t: Path(f) for t, f in (p.get("recipe_trials") or {}).items()},
                         recipe_trials_pool=p.get("recipe_trials_pool", "test"))


def publish(tmp: Path, dest: Path) -> None:
    """Move the finished outputs from `tmp` into `dest`, replacing the old ones."""
    for name in OUTPUTS:
        target = dest / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
        os.replace(tmp / name, target)


def main() -> None:
    from pipeline.reports.build import build_report

    options = options_from_params()
    REPORTS.mkdir(exist_ok=True)
    with scratch_dir(REPORTS / "report") as tmp:
        result = build_report(Path("."), tmp, options)
        (tmp / "figures").chmod(0o755)
        publish(tmp, REPORTS)
    for note in result.notes:
        print(f"report: note: {note}")
    print(f"report: {len(result.figures)} figure(s) in {(REPORTS / 'figures').resolve()}")
    print(f"report: {(REPORTS / 'report.md').resolve()}")
    print(f"report: {(REPORTS / 'report.html').resolve()} (self-contained)")


if __name__ == "__main__":
    run_stage(main)
