"""Build the report: load the inputs, draw the figures, render the template.

    build_report(root, out_dir, ReportOptions()) -> ReportResult

writes out_dir/report.md, out_dir/report.html (figures embedded) and out_dir/figures/*.png.
The words are in templates/report.md.j2; the values come from context.py.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pipeline.reports.context import FIGURES, Figures, report_context
from pipeline.reports.inputs import load_inputs
from pipeline.reports.pseudonyms import Pseudonymizer
from pipeline.reports.render import render_markdown, to_html

TITLE = "Defending our privacy with backdoors: pipeline report"


@dataclass
class ReportOptions:
    pseudonymize: bool = True
    salt: str = "defending-privacy-report"
    dpi: int = 110
    image_recipes: dict | None = None       # defend.image_recipes, to name the image recipes
    runs: set[str] | None = None            # defenses the params ask for ("text-k4", ...); None = all found
    trials: Path | None = None              # CSV of defense settings tried during development
    references: set[str] | None = None      # audits of R the params ask for ("reference-k4")
    recipe_trials: dict[str, Path] = field(default_factory=dict)   # tower -> scripts/hardening_trial.py CSV
    recipe_trials_pool: str = "test"


@dataclass
class ReportResult:
    markdown: Path
    html: Path
    figures: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def build_report(root: Path | str, out_dir: Path | str, options: ReportOptions = ReportOptions()) -> ReportResult:
    """Render report.md, report.html and figures/*.png from the outputs under `root` into `out_dir`."""
    root, out_dir = Path(root), Path(out_dir)
    (out_dir / FIGURES).mkdir(parents=True, exist_ok=True)
    inp = load_inputs(root, options.image_recipes, options.runs, options.references)
    anon = Pseudonymizer(sorted(inp.names), options.salt, options.pseudonymize)
    figs = Figures(out_dir, options.dpi)
    context = report_context(inp, figs, anon, pseudonymize=options.pseudonymize, trials=options.trials,
                             recipe_trials=options.recipe_trials, recipe_trials_pool=options.recipe_trials_pool)
    markdown = render_markdown(context, anon)
    md = out_dir / "report.md"
    md.write_text(markdown, encoding="utf-8")
    page = out_dir / "report.html"
    page.write_text(to_html(markdown, out_dir, anon(TITLE)), encoding="utf-8")
    notes = [line.strip("* ") for line in markdown.splitlines()
             if line.startswith("*No ") or line.endswith("is missing.*")]
    return ReportResult(md, page, figs.made, notes)
