"""The recipe trials of scripts/hardening_trial.py, summed for the README and the report.

A trial CSV has one row per (removal seed, K, recipe) on a pool; for every audit probe P it
holds `P_removed_identified` (the trained model) and `P_removed_identified_base` (the base
model on the same removal set). Counts are summed over the removal seeds, not averaged:
issue 17's targets are counts ("no more than R plus one, summed over the seeds").
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

BASE = "(base model)"
SUFFIX = "_removed_identified"
COSTS = ["wrongfully_unlearned_pct", "heldout_prompts_wrongfully_unlearned_pct", "name_sharers_lost",
         "name_sharers_before", "fpr"]


@dataclass
class TrialSums:
    sums: pd.DataFrame          # index (k, recipe), BASE first per K; columns: the probes
    seeds: dict                 # (k, recipe) -> "0,1": the removal seeds each column sums
    costs: pd.DataFrame         # index (k, recipe); columns (cost, mean | max)
    base_losses: list[float]    # final losses of the base models the rows were trained on ([] = not recorded)

    @property
    def probes(self) -> list[str]:
        return list(self.sums.columns)


def probes_of(df: pd.DataFrame) -> list[str]:
    return [c[:-len(SUFFIX)] for c in df.columns if c.endswith(SUFFIX)]


def sum_trials(df: pd.DataFrame, pool: str) -> TrialSums | None:
    """Removed people still identified per probe, summed over the removal seeds per (K, recipe),
    with the base model's sums on the same removal sets; None when `pool` has no rows."""
    df = df[df["pool"] == pool]
    if df.empty:
        return None
    probes = probes_of(df)
    groups = df.groupby(["k", "recipe"])
    sums = groups[[p + SUFFIX for p in probes]].sum()
    sums.columns = probes
    # every recipe of a K ran on the same removal sets, so the base model's counts are one per K
    base = groups[[p + SUFFIX + "_base" for p in probes]].sum().groupby(level="k").first()
    base.columns = probes
    base.index = pd.MultiIndex.from_tuples([(k, BASE) for k in base.index], names=["k", "recipe"])
    sums = pd.concat([base, sums]).sort_index(level="k", sort_remaining=False)
    seeds = groups["removal_seed"].apply(lambda s: ",".join(str(v) for v in sorted(s))).to_dict()
    costs = groups[[c for c in COSTS if c in df.columns]
                   + [c for c in df.columns if c.startswith("zeroshot_")]].agg(["mean", "max"])
    losses = sorted(set(df["base_final_loss"].dropna())) if "base_final_loss" in df.columns else []
    return TrialSums(sums, seeds, costs, [float(v) for v in losses])


def read_trials(path: Path | str, pool: str) -> TrialSums | None:
    path = Path(path)
    return sum_trials(pd.read_csv(path), pool) if path.is_file() else None


def reference_counts(audit: dict, probes: list[str]) -> dict[str, int | None]:
    """R's removed people identified per probe, from its audit JSON (tpr x people probed)."""
    out = {}
    for probe in probes:
        p = (audit.get("probes") or {}).get(probe)
        out[probe] = None if not p or p.get("tpr_removed") is None else round(p["tpr_removed"] * p["removed_probed"])
    return out


def plot_sums(sums: pd.DataFrame, path: Path, title: str, dpi: int = 110) -> Path:
    """One bar panel per K: each probe's count per recipe, the base model first."""
    from pipeline.reports.figures import _save, plt

    ks = sorted({k for k, _ in sums.index})
    fig, axes = plt.subplots(len(ks), 1, figsize=(11, 3.2 * len(ks)), squeeze=False)
    for ax, k in zip(axes[:, 0], ks):
        part = sums.loc[k]
        width = 0.8 / len(part.index)
        for i, recipe in enumerate(part.index):
            ax.bar([x + i * width for x in range(len(part.columns))], part.loc[recipe], width, label=recipe)
        ax.set_xticks([x + 0.4 - width / 2 for x in range(len(part.columns))])
        ax.set_xticklabels(part.columns, rotation=30, ha="right", fontsize=8)
        ax.set_ylabel(f"K = {k}: removed identified")
        ax.legend(fontsize=8)
    axes[0, 0].set_title(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path, dpi)
