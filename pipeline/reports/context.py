"""Everything the report template shows, gathered from the loaded inputs: metric values (raw,
formatted only by the template's filters), the figures, and the few derived facts (the
regulariser values run, the runs where the combined model does worse, runtime slopes).

No prose here: the words live in templates/report.md.j2.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.core.paths import parse_reference_run
from pipeline.reports import examples, figures, recipe_trials as recipe_trials_mod
from pipeline.reports.inputs import Inputs
from pipeline.reports.pseudonyms import Pseudonymizer

FIGURES = "figures"
# The paper's Figure 5 (one GPU): seconds of training added per removed identity.
PAPER_SLOPES = {"text": "0.07 s per added name", "image": "1.55 s per added face"}


@dataclass
class Figures:
    """Renders the figures into out_dir/figures and remembers which ones exist."""

    out: Path
    dpi: int

    def __post_init__(self):
        self.made: list[Path] = []

    def add(self, path: Path | None) -> str | None:
        """The figure's path relative to the report (None when there was nothing to draw)."""
        if path is None:
            return None
        self.made.append(path)
        return f"{FIGURES}/{path.name}"

    def path(self, name: str) -> Path:
        return self.out / FIGURES / name


def _largest_removed(inp: Inputs) -> list[str]:
    if not inp.runs:
        return []
    kmax = max(r.k for r in inp.runs)
    return sorted({n for r in inp.runs if r.k == kmax for n in r.removed})


def _key_results(inp: Inputs) -> list[dict]:
    rows = []
    for enc in inp.encoders():
        runs = inp.runs_of(enc)
        kmax = max(r.k for r in runs)
        for r in (r for r in runs if r.k == kmax):
            e = r.evaluation
            tpr = e.get("tpr_removed")
            rows.append({"title": figures.encoder_title(enc), "k": r.k, "variant": r.variant, "e": e,
                         "still": None if tpr is None else round(tpr * r.k)})
    return rows


def _regularisers(inp: Inputs) -> dict[str, list[float]]:
    """Per trained tower, the weight-regulariser values that were run."""
    values: dict[str, set[float]] = {}
    for r in inp.runs:
        for tower in ("text", "image"):
            if r.weight_reg(tower) is not None:
                values.setdefault(tower, set()).add(r.weight_reg(tower))
    return {t: sorted(v) for t, v in sorted(values.items())}


def _combined_worse(inp: Inputs) -> list[dict]:
    """The Ks where the combined model is identified more often than the better single tower."""
    tpr = {(r.encoder, r.k): r.evaluation.get("tpr_removed") for r in inp.runs}
    worse = []
    for (enc, k), both in sorted(tpr.items(), key=lambda item: item[0][1]):
        singles = [tpr.get((e, k)) for e in ("text", "image")]
        if enc == "both" and both is not None and None not in singles and both > min(singles) + 1e-9:
            worse.append({"k": k, "both": both, "text": singles[0], "image": singles[1]})
    return worse


def _text_targets(inp: Inputs) -> list[str]:
    return sorted({r.defense["text"].get("target") for r in inp.runs
                   if r.defense.get("text") and r.defense["text"].get("target")})


def _collateral_tables(inp: Inputs) -> list[dict]:
    tables = []
    for enc in inp.encoders():
        rows = []
        for r in sorted(inp.runs_of(enc), key=lambda r: (r.k, r.variant, r.name)):
            e = r.evaluation
            sims = {label: (e.get(key) or {}).get("sim_clean")
                    for key, label in (("text_similarity", "text"), ("image_similarity", "image"))}
            rows.append({"run": r, "e": e, "zeroshot": e.get("zeroshot") or {},
                         "sims": {k: v for k, v in sims.items() if v is not None}})
        tables.append({"encoder": enc, "title": figures.encoder_title(enc), "rows": rows})
    return tables


def _runtime(inp: Inputs, figs: Figures) -> tuple[str | None, list[dict]]:
    res = figures.runtime_vs_k(inp, figs.path("runtime_vs_k.png"), figs.dpi)
    if res is None:
        return None, []
    path, fits = res
    rows = []
    for (enc, variant), fit in sorted(fits.items()):
        trainings = [t for t in inp.trainings if t.encoder == enc and t.variant == variant]
        steps = sorted({t.metrics.get("steps") for t in trainings} - {None})
        sps = [t.metrics["seconds_per_step"] for t in trainings if t.metrics.get("seconds_per_step")]
        rows.append({"encoder": enc, "variant": variant, "ks": fit["ks"], "seconds": fit["seconds"],
                     "steps": steps, "seconds_per_step": sum(sps) / len(sps) if sps else None,
                     "slope": fit["slope"], "paper": PAPER_SLOPES.get(enc)})
    return figs.add(path), rows


def _examples(inp: Inputs, figs: Figures, anon: Pseudonymizer) -> dict:
    image_runs = [r for r in inp.runs if r.encoder == "image" and r.defense.get("image")]
    source = max(image_runs, key=lambda r: r.k) if image_runs else None
    cfg = (source.defense.get("image") if source else None) or {}
    ex = examples.poisoned_images(inp.root, source.name) if source else None
    grid = None
    if ex is not None:
        titles = [f"{anon.name(n)} ({kind})" for n, kind in zip(ex.names, ex.kinds)]
        grid = figs.add(figures.example_grid(ex.images, titles, figs.path("poisoned_images.png"), figs.dpi))
    text_runs = [r for r in inp.runs if r.encoder == "text" and r.defense.get("text")]
    tsource = max(text_runs, key=lambda r: r.k) if text_runs else None
    return {"image_run": source.name if source else None,
            "trigger_photo_share": float(cfg.get("trigger_photo_share", 0.0) or 0.0),
            "image_grid": grid,
            "text_run": tsource.name if tsource else None,
            "target": tsource.defense["text"].get("target") if tsource else None,
            "face_push": float(tsource.defense["text"].get("face_push", 0.0) or 0.0) if tsource else 0.0,
            "face_margin": float(tsource.defense["text"].get("face_margin", 0.0) or 0.0) if tsource else 0.0,
            "retain_sharers": int(tsource.defense["text"].get("retain_sharers", 0) or 0) if tsource else 0,
            "captions": examples.poisoned_captions(inp.root, tsource.name) if tsource else []}


def _audit(inp: Inputs, figs: Figures) -> dict | None:
    """Per audited model: each probe's TPR on the removed for the base model, the model and R
    (when R was trained for the same K, so for the same people), collateral, residual; the
    verdict per family; and the residual figure."""
    if not inp.audits:
        return None
    families = list(dict.fromkeys(f for m in inp.audits.values() for f in (m.get("families") or {})))
    refs = {parse_reference_run(name): (name, m) for name, m in inp.audits.items()
            if parse_reference_run(name) is not None}
    tables, bars = [], []
    order = {e: i for i, e in enumerate(inp.encoders())}
    for r in sorted(inp.runs, key=lambda r: (order.get(r.encoder, 99), r.k, r.name)):
        m = inp.audits.get(r.name)
        if not m:
            continue
        ref = refs.get(r.k, (None, {}))[1].get("probes", {})
        rows = [{"probe": probe, "p": p, "reference": ref.get(probe)} for probe, p in m["probes"].items()]
        tables.append({"run": r, "title": figures.encoder_title(r.encoder), "rows": rows,
                       "families": m.get("families", {}), "auc": m.get("removal_detector_auc"),
                       "has_reference": bool(ref)})
        bars.append((r.name, r.encoder, _family_residuals(m)))
    for k, (name, m) in sorted(refs.items()):
        bars.append((f"R (K = {k})", "reference", _family_residuals(m)))
    figure = figs.add(figures.audit_residuals(bars, families, figs.path("audit_residuals.png"), figs.dpi))
    reference = [{"k": k, "name": name, "families": m.get("families", {})} for k, (name, m) in sorted(refs.items())]
    return {"tables": tables, "figure": figure, "reference": reference}


def _adaptive(inp: Inputs) -> dict | None:
    """The adaptive attacks: per model, removed people identified after each relearning
    checkpoint, and by a learned trigger token."""
    if not inp.adaptive:
        return None
    models = inp.adaptive["models"]
    steps = list(dict.fromkeys(s for m in models.values() for s in m["relearn"]))

    def cell(c: dict | None, removed: int) -> str:
        if not c:
            return "–"
        kept = "–" if c.get("tpr_kept") is None else f"{c['tpr_kept']:.2f}"
        return f"{c['identified_removed']} / {removed} ({kept})"

    def token(m: dict) -> str:
        inv = m.get("inversion") or {}
        return f"{inv['identified_token']} / {inv['people']}" if inv.get("people") else "–"
    shots = list(dict.fromkeys(n for m in models.values() for n in (m.get("few_shot") or {})))

    def few(m: dict, n: str) -> str:
        f = (m.get("few_shot") or {}).get(n)
        if not f:
            return "–"
        found = sorted(s for s in f["steps_to_identified"] if s is not None)
        median = f", median {found[len(found) // 2]} steps" if found else ""
        return f"{f['identified_again']} / {len(f['steps_to_identified'])}{median}"
    rows = [{"model": name, "cells": [cell(m["relearn"].get(s), m["removed"]) for s in steps] + [token(m)]
             + [few(m, n) for n in shots]} for name, m in models.items()]
    return {"header": [f"relearn step {s}" for s in steps] + ["learned token"] + [f"{n}-shot" for n in shots],
            "rows": rows,
            "relearn": inp.adaptive.get("relearn", {}), "inversion": inp.adaptive.get("inversion", {}),
            "few_shot_max": (inp.adaptive.get("few_shot") or {}).get("max_steps", "–")}


def _family_residuals(audit: dict) -> dict[str, float | None]:
    probes = audit.get("probes", {})
    return {family: (probes.get(v.get("worst_probe")) or {}).get("residual") if v.get("worst_probe") else None
            for family, v in (audit.get("families") or {}).items()}


def _trials(path: Path | None, figs: Figures) -> dict | None:
    if path is None or not Path(path).is_file():
        return None
    table = pd.read_csv(path)
    return {"path": Path(path).as_posix(), "rows": list(table.itertuples()),
            "figure": figs.add(figures.trials_tradeoff(table, figs.path("trials_tradeoff.png"), figs.dpi))}


def _recipe_trials(paths: dict[str, Path] | None, pool: str, inp: Inputs, figs: Figures) -> list[dict]:
    """Per tower with a trial CSV: removed people still identified per probe, summed over the
    removal seeds, for the base model and each recipe, beside R where R exists for that K
    (R was trained for one removal set: the one of `defend.seed`, so its column is one seed's)."""
    refs = {parse_reference_run(name): m for name, m in inp.audits.items() if parse_reference_run(name) is not None}
    this_base = (inp.base_model or {}).get("final_loss")
    out = []
    for tower, path in (paths or {}).items():
        t = recipe_trials_mod.read_trials(path, pool)
        if t is None:
            continue
        blocks = []
        for k in sorted({k for k, _ in t.sums.index}):
            part = t.sums.loc[k]
            recipes = [r for r in part.index if r != recipe_trials_mod.BASE]
            ref = recipe_trials_mod.reference_counts(refs[k], t.probes) if k in refs else None
            rows = [{"probe": probe, "base": int(part.loc[recipe_trials_mod.BASE, probe]),
                     "recipes": [int(part.loc[r, probe]) for r in recipes],
                     "reference": None if ref is None else ref[probe]} for probe in t.probes]
            costs = [{"recipe": r, **{c: t.costs.loc[(k, r), (c, "mean")]
                                        for c in dict.fromkeys(t.costs.columns.get_level_values(0))}}
                     for r in recipes]
            blocks.append({"k": k, "recipes": recipes, "seeds": {r: t.seeds[(k, r)] for r in recipes},
                           "rows": rows, "has_reference": ref is not None, "costs": costs})
        figure = figs.add(recipe_trials_mod.plot_sums(
            t.sums, figs.path(f"recipe_trials_{tower}.png"),
            f"{figures.encoder_title(tower)}, {pool} pool: removed people still identified (summed over removal seeds)",
            figs.dpi))
        out.append({"tower": tower, "title": figures.encoder_title(tower), "path": Path(path).as_posix(),
                    "pool": pool, "blocks": blocks, "figure": figure, "base_losses": t.base_losses,
                    "this_base": this_base,
                    # R is this run's; on another base model its people and floats may differ
                    "same_base": this_base is not None and t.base_losses == [this_base]})
    return out


def report_context(inp: Inputs, figs: Figures, anon: Pseudonymizer, *, pseudonymize: bool,
                   trials: Path | None, recipe_trials: dict[str, Path] | None = None,
                   recipe_trials_pool: str = "test") -> dict[str, Any]:
    """The template's variables."""
    removed = _largest_removed(inp)
    runtime_figure, runtime_rows = _runtime(inp, figs)
    seeds = sorted({str(r.seed) for r in inp.runs if r.seed is not None})
    return {
        "pseudonymize": pseudonymize,
        "targets": _text_targets(inp),
        "key_results": _key_results(inp),
        "downloads": [("FaceScrub", inp.download_facescrub), ("LAION", inp.download_laion)],
        "facescrub": inp.download_facescrub,
        "laion": inp.download_laion,
        "splits": inp.splits,
        "idia": inp.idia_before,
        "base": inp.base_model,
        "utility": inp.utility_before,
        "has_runs": bool(inp.runs),
        "largest_removed": removed,
        "seeds": seeds,
        "regularisers": _regularisers(inp),
        "combined_worse": _combined_worse(inp),
        "benches": inp.benchmarks(),
        "collateral": _collateral_tables(inp),
        "runtime_rows": runtime_rows,
        "examples": _examples(inp, figs, anon),
        "trials": _trials(trials, figs),
        "audit": _audit(inp, figs),
        "adaptive": _adaptive(inp),
        "recipe_trials": _recipe_trials(recipe_trials, recipe_trials_pool, inp, figs),
        "appendix": sorted(inp.runs, key=lambda r: (r.encoder, r.k, r.name)),
        "figures": {
            "attack_before": figs.add(figures.attack_before(inp, figs.path("attack_before.png"), figs.dpi, removed)),
            "base_loss": figs.add(figures.base_loss(inp, figs.path("base_model_loss.png"), figs.dpi)),
            "idia_vs_k": figs.add(figures.idia_vs_k(inp, figs.path("idia_vs_k.png"), figs.dpi)),
            "zeroshot_vs_k": figs.add(figures.zeroshot_vs_k(inp, figs.path("zeroshot_vs_k.png"), figs.dpi)),
            "tradeoff": figs.add(figures.tradeoff(inp, figs.path("tradeoff.png"), figs.dpi)),
            "runtime": runtime_figure,
            "defense_loss": figs.add(figures.defense_loss(inp, figs.path("defense_loss.png"), figs.dpi)),
        },
    }

