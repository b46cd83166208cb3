"""The report's figures (matplotlib, Agg backend, PNG).

Each function draws one figure from the loaded inputs, saves it and returns a short
summary of what it drew (e.g. the fitted run-time slopes), or None when there was
nothing to draw. Legends sit outside the axes so they never cover data.
"""
from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Callable, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import (FixedLocator, FuncFormatter, LogLocator, NullFormatter,  # noqa: E402
                               NullLocator, PercentFormatter)

from pipeline.reports.inputs import ENCODER_TITLES, ENCODERS, Inputs, Run  # noqa: E402

ENCODER_COLORS = {"text": "#1f77b4", "image": "#d62728", "both": "#2ca02c"}
ENCODER_MARKERS = {"text": "o", "image": "s", "both": "D"}
# Drawn in this order, later encoders smaller, so coinciding points stay visible as rings.
ENCODER_SIZES = {"text": 9.0, "image": 6.5, "both": 4.5}
STYLES = ["-", "--", ":", "-."]
MARKERS = ["o", "s", "^", "D", "v", "P"]

plt.rcParams.update({"font.size": 10, "axes.titlesize": 11, "axes.labelsize": 10,
                     "legend.fontsize": 9, "axes.grid": True, "grid.alpha": 0.3,
                     "figure.dpi": 100, "savefig.facecolor": "white"})


def _save(fig, path: Path, dpi: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, format="png")
    plt.close(fig)
    return path


def _color(encoder: str) -> str:
    return ENCODER_COLORS.get(encoder, "#7f7f7f")


def encoder_title(encoder: str) -> str:
    """'Text encoder (names)' etc.: how the report names a defended encoder."""
    return ENCODER_TITLES.get(encoder, encoder).capitalize()


def k_axis(ax, ks: Sequence[int]) -> None:
    """K on a log2 axis (the sweeps double K) with a tick at every K that was run."""
    ks = sorted(set(int(k) for k in ks))
    if len(ks) > 1:
        ax.set_xscale("log", base=2)
        lo, hi = ks[0], ks[-1]
        pad = (hi / lo) ** 0.08
        ax.set_xlim(lo / pad, hi * pad)
    else:
        ax.set_xlim(ks[0] - 1, ks[0] + 1)
    ax.xaxis.set_major_locator(FixedLocator(ks))
    ax.xaxis.set_major_formatter(matplotlib.ticker.FixedFormatter([str(k) for k in ks]))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel("K (identities removed at once)")


def dodge(ks: Sequence[int], i: int, n: int, log: bool) -> list[float]:
    """Shift series i of n a little sideways so that equal values do not hide each other."""
    off = (i - (n - 1) / 2) * 0.035
    return [k * 2 ** off if log else k + off for k in ks]


def spaced_ticks(ks: Sequence[int], min_gap: float = 0.07) -> list[int]:
    """The K values as ticks on a linear axis, skipping those too close to the previous
    tick (min_gap as a fraction of the range), always keeping the largest."""
    ks = sorted(set(ks))
    if len(ks) < 3:
        return ks
    gap = min_gap * (ks[-1] - ks[0])
    out = [ks[0]]
    for k in ks[1:-1]:
        if k - out[-1] >= gap and ks[-1] - k >= gap:
            out.append(k)
    return out + [ks[-1]]


def series(runs: Sequence[Run], value: Callable[[Run], float | None]):
    """{variant: (ks, means, all points)} over the runs, one mean per K."""
    groups: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in runs:
        v = value(r)
        if v is not None and not (isinstance(v, float) and math.isnan(v)):
            groups[r.variant][r.k].append(float(v))
    out = {}
    for variant in sorted(groups):
        ks = sorted(groups[variant])
        out[variant] = (ks, [float(np.mean(groups[variant][k])) for k in ks],
                        [(k, v) for k in ks for v in groups[variant][k]])
    return out


def _outside_legend(fig, handles, labels, ncol: int | None = None) -> None:
    seen, h2, l2 = set(), [], []
    for h, lab in zip(handles, labels):
        if lab not in seen:
            seen.add(lab)
            h2.append(h)
            l2.append(lab)
    if h2:
        fig.legend(h2, l2, loc="outside lower center", ncol=ncol or min(len(l2), 3), frameon=False)


def attack_before(inp: Inputs, path: Path, dpi: int, removed: Sequence[str] = ()) -> Path | None:
    """Correct templates per identity vs its occurrence count; members and non-members."""
    t = inp.identities_before
    if t is None or not {"member", "count", "correct_templates"} <= set(t.columns):
        return None
    meta = inp.idia_before or {}
    tau, templates = meta.get("tau", 1), meta.get("templates", 21)
    member = t["member"].astype(str).str.lower().isin(["true", "1"])
    members, nonmembers = t[member], t[~member]
    rng = np.random.default_rng(0)
    fig, (a0, a1) = plt.subplots(1, 2, figsize=(8.5, 4.2), sharey=True, layout="constrained",
                                 gridspec_kw={"width_ratios": [1, 4]})
    jitter = rng.uniform(-0.25, 0.25, len(nonmembers))
    a0.scatter(jitter, nonmembers["correct_templates"], s=22, color="#ff7f0e", alpha=0.7,
               edgecolor="none", label="non-member (count 0)")
    a0.set_xlim(-0.6, 0.6)
    a0.set_xticks([0])
    a0.set_xticklabels(["0"])
    a0.set_xlabel("count")
    a0.set_title(f"non-members ({len(nonmembers)})")
    a0.set_ylabel(f"correct templates (of {templates})")
    counts = members["count"].astype(float).clip(lower=1)
    a1.scatter(counts, members["correct_templates"], s=22, color="#1f77b4", alpha=0.7,
               edgecolor="none", label="member")
    if removed:
        rem = members[members["name"].isin(set(removed))]
        a1.scatter(rem["count"].astype(float).clip(lower=1), rem["correct_templates"], s=70,
                   facecolor="none", edgecolor="black", linewidth=1.2,
                   label=f"removed by the largest-K defense ({len(rem)})")
    if len(counts):
        a1.set_xscale("log")
        lo, hi = counts.min(), counts.max()
        a1.set_xlim(lo / 1.3, hi * 1.3)
        a1.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        a1.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
        a1.xaxis.set_minor_formatter(NullFormatter())
    a1.set_xlabel("occurrences of the name in the pretraining captions (log scale)")
    a1.set_title(f"members ({len(members)})")
    for ax in (a0, a1):
        ax.axhline(tau - 0.5, color="gray", linestyle="--", linewidth=1,
                   label=f"threshold: identified with ≥ {tau} correct")
        ax.set_ylim(-1, templates + 1)
    h0, l0 = a0.get_legend_handles_labels()
    h1, l1 = a1.get_legend_handles_labels()
    _outside_legend(fig, h1 + h0, l1 + l0, ncol=2)
    return _save(fig, path, dpi)


def _panels(n: int, width: float = 4.0, height: float = 3.4, rows: int = 1, sharey=True):
    fig, axes = plt.subplots(rows, n, figsize=(max(width * n, 5.5), height * rows + 0.6),
                             squeeze=False, sharey=sharey, layout="constrained")
    return fig, axes


def idia_vs_k(inp: Inputs, path: Path, dpi: int) -> Path | None:
    """IDIA TPR and FNR on the removed identities vs K, one panel per encoder."""
    encoders = inp.encoders()
    if not encoders:
        return None
    multi = any(len({r.variant for r in inp.runs_of(e)}) > 1 for e in encoders)
    fig, axes = _panels(len(encoders))
    for ax, enc in zip(axes[0], encoders):
        runs = inp.runs_of(enc)
        tpr = series(runs, lambda r: r.evaluation.get("tpr_removed"))
        fnr = series(runs, lambda r: r.evaluation.get("fnr_removed"))
        log = len({r.k for r in runs}) > 1
        ax.axhline(1.0, color="gray", linestyle=":", linewidth=1.5, label="no defense (TPR before = 1)")
        for i, variant in enumerate(tpr):
            ks, ys, pts = tpr[variant]
            ls, mk = STYLES[i % 4], MARKERS[i % 6]
            suffix = f", {variant}" if multi else ""
            ax.plot(dodge(ks, i, len(tpr), log), ys, ls, marker=mk, color="#1f3c88", label=f"TPR after{suffix}")
            if len(pts) > len(ks):
                ax.scatter(*zip(*pts), color="#1f3c88", s=10, alpha=0.4)
            if variant in fnr:
                ks2, ys2, _ = fnr[variant]
                ax.plot(dodge(ks2, i, len(tpr), log), ys2, ls, marker=mk, color="#f28e2b",
                        markerfacecolor="none", label=f"FNR after{suffix}")
        k_axis(ax, [r.k for r in runs])
        ax.set_ylim(-0.06, 1.08)
        only = sorted({r.variant for r in runs})
        ax.set_title(encoder_title(enc) + (f"\n{only[0]}" if not multi and only and only[0] else ""))
        ax.set_ylabel("rate on the removed identities")
    if multi:
        for ax in axes[0]:
            ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), frameon=False)
    else:
        handles, labels = axes[0][0].get_legend_handles_labels()
        _outside_legend(fig, handles, labels, ncol=3)
    return _save(fig, path, dpi)


def zeroshot_vs_k(inp: Inputs, path: Path, dpi: int) -> Path | None:
    """Zero-shot top-1 and top-5 accuracy vs K per benchmark, with the base model's line."""
    benches = inp.benchmarks()
    encoders = inp.encoders()
    if not benches or not encoders:
        return None
    fig, axes = plt.subplots(len(benches), 2, figsize=(9, 3.1 * len(benches) + 0.9), squeeze=False,
                             layout="constrained")
    all_ks = [r.k for r in inp.runs]
    for row, bench in enumerate(benches):
        for col, metric in enumerate(("top1", "top5")):
            ax = axes[row][col]
            base = (inp.utility_before or {}).get(bench, {}).get(metric)
            if base is None:
                bases = [r.evaluation.get("zeroshot", {}).get(bench, {}).get(f"{metric}_base") for r in inp.runs]
                base = next((b for b in bases if b is not None), None)
            if base is not None:
                ax.axhline(100 * base, color="black", linestyle="--", linewidth=1.2, label="base model (no defense)")
            lines = []
            for enc in encoders:
                s = series(inp.runs_of(enc),
                           lambda r: 100 * r.evaluation["zeroshot"][bench][metric]
                           if metric in r.evaluation.get("zeroshot", {}).get(bench, {}) else None)
                lines += [(enc, i, variant, ks, ys) for i, (variant, (ks, ys, _)) in enumerate(s.items())]
            log = len(set(all_ks)) > 1
            for j, (enc, i, variant, ks, ys) in enumerate(lines):
                ax.plot(dodge(ks, j, len(lines), log), ys, STYLES[i % 4], marker=ENCODER_MARKERS.get(enc, "o"),
                        markersize=ENCODER_SIZES.get(enc, 6), color=_color(enc), label=f"{enc}, {variant}")
            k_axis(ax, all_ks)
            ax.set_title(f"{bench}: top-{metric[3:]}")
            ax.set_ylabel("accuracy")
            ax.yaxis.set_major_formatter(PercentFormatter())
            lo, hi = ax.get_ylim()
            ax.set_ylim(max(0, lo - 3), min(100, hi + 3))
    handles, labels = [], []
    for ax in axes.flat:
        h, lab = ax.get_legend_handles_labels()
        handles += h
        labels += lab
    _outside_legend(fig, handles, labels)
    return _save(fig, path, dpi)


def fit_line(ks: Sequence[float], seconds: Sequence[float]) -> tuple[float, float] | None:
    """Least-squares slope and intercept; None with fewer than two distinct K."""
    if len(set(ks)) < 2:
        return None
    slope, intercept = np.polyfit(np.asarray(ks, float), np.asarray(seconds, float), 1)
    return float(slope), float(intercept)


def runtime_vs_k(inp: Inputs, path: Path, dpi: int) -> tuple[Path, dict] | None:
    """Training-loop wall time vs K per encoder with the least-squares line (paper Fig. 5)."""
    by_enc: dict[str, list] = defaultdict(list)
    for t in inp.trainings:
        if t.metrics.get("train_seconds") is not None:
            by_enc[t.encoder].append(t)
    encoders = [e for e in ENCODERS if e in by_enc] + sorted(set(by_enc) - set(ENCODERS))
    if not encoders:
        return None
    fits = {}
    fig, axes = _panels(len(encoders), width=4.4, height=3.5, sharey=False)
    for ax, enc in zip(axes[0], encoders):
        variants = sorted({t.variant for t in by_enc[enc]})
        for i, variant in enumerate(variants):
            ts = sorted((t for t in by_enc[enc] if t.variant == variant), key=lambda t: t.k)
            ks = [t.k for t in ts]
            secs = [float(t.metrics["train_seconds"]) for t in ts]
            ax.scatter(ks, secs, color=_color(enc), marker=MARKERS[i % 6], zorder=3,
                       label=f"measured, {variant}")
            fit = fit_line(ks, secs)
            fits[(enc, variant)] = {"slope": None if fit is None else fit[0],
                                    "intercept": None if fit is None else fit[1], "runs": len(ts),
                                    "ks": ks, "seconds": secs}
            if fit is not None:
                xs = np.linspace(min(ks), max(ks), 50)
                ax.plot(xs, fit[1] + fit[0] * xs, STYLES[i % 4], color="black", linewidth=1,
                        label=f"fit, {variant}: {fit[0]:+.3g} s per identity")
        ax.set_title(encoder_title(enc))
        ax.set_xlabel("K (identities removed at once)")
        ax.set_ylabel("training loop wall time [s]")
        ax.set_xticks(spaced_ticks(sorted({t.k for t in by_enc[enc]})))
        ax.set_ylim(bottom=0, top=ax.get_ylim()[1] * 1.1)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), frameon=False)
    return _save(fig, path, dpi), fits


def base_loss(inp: Inputs, path: Path, dpi: int) -> Path | None:
    df = inp.base_loss
    if df is None or not {"step", "loss"} <= set(df.columns) or df.empty:
        return None
    fig, ax = plt.subplots(figsize=(7, 3.6), layout="constrained")
    ax.plot(df["step"], df["loss"], color="#1f77b4", linewidth=1, alpha=0.45, label="per step")
    if len(df) >= 10:
        window = max(3, len(df) // 25)
        ax.plot(df["step"], df["loss"].rolling(window, min_periods=1, center=True).mean(),
                color="#1f77b4", linewidth=2, label=f"moving mean ({window} steps)")
    ax.set_xlabel("training step")
    ax.set_ylabel("contrastive loss (CLIP)")
    ax.set_title("Base model pretraining")
    ax.legend(loc="upper right")
    return _save(fig, path, dpi)


def defense_loss(inp: Inputs, path: Path, dpi: int) -> Path | None:
    """Loss curves of the defenses: one column per encoder, one line per K."""
    curves = [t for t in inp.trainings if t.loss is not None and {"step", "loss"} <= set(t.loss.columns)]
    encoders = [e for e in ENCODERS if any(t.encoder == e for t in curves)] + \
        sorted({t.encoder for t in curves} - set(ENCODERS))
    if not encoders:
        return None
    has_bd = any("backdoor" in t.loss.columns for t in curves)
    rows = 2 if has_bd else 1
    fig, axes = plt.subplots(rows, len(encoders), figsize=(max(4.6 * len(encoders), 6), 3.1 * rows + 1.0),
                             squeeze=False, layout="constrained", sharex="col")
    cmap = plt.get_cmap("viridis")
    for col, enc in enumerate(encoders):
        ts = sorted((t for t in curves if t.encoder == enc), key=lambda t: (t.variant, t.k))
        ks = sorted({t.k for t in ts})
        variants = sorted({t.variant for t in ts})
        for t in ts:
            color = cmap(0.85 * ks.index(t.k) / max(1, len(ks) - 1))
            ls = STYLES[variants.index(t.variant) % 4]
            axes[0][col].plot(t.loss["step"], t.loss["loss"], ls, color=color, linewidth=1.3)
            if has_bd and "backdoor" in t.loss.columns:
                axes[1][col].plot(t.loss["step"], t.loss["backdoor"], ls, color=color, linewidth=1.3)
        axes[0][col].set_title(encoder_title(enc) + (f"\n{variants[0]}" if len(variants) == 1 and variants[0] else ""))
        axes[0][col].set_ylabel("total loss")
        if has_bd:
            axes[1][col].set_ylabel("backdoor term (−cos to target)")
        axes[-1][col].set_xlabel("training step")
        handles = [plt.Line2D([], [], color=cmap(0.85 * i / max(1, len(ks) - 1)), linewidth=2) for i in range(len(ks))]
        labels = [f"K={k}" for k in ks]
        if len(variants) > 1:
            handles += [plt.Line2D([], [], color="black", linestyle=STYLES[i % 4]) for i in range(len(variants))]
            labels += variants
        axes[-1][col].legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, -0.28),
                             frameon=False, ncol=min(4, len(ks)), fontsize=8)
    return _save(fig, path, dpi)


def tradeoff(inp: Inputs, path: Path, dpi: int) -> Path | None:
    """TPR on the removed identities vs wrongfully unlearned %, one point per run.

    One panel per encoder; colour = K, marker = recipe; the runs of one recipe are joined
    in order of K. No text labels on the points, so nothing can overlap.
    """
    pts = [(r, r.evaluation.get("wrongfully_unlearned_pct"), r.evaluation.get("tpr_removed")) for r in inp.runs]
    pts = [(r, float(x), float(y)) for r, x, y in pts if x is not None and y is not None]
    if not pts:
        return None
    encoders = [e for e in inp.encoders() if any(r.encoder == e for r, _, _ in pts)]
    all_ks = sorted({r.k for r, _, _ in pts})
    cmap = plt.get_cmap("viridis")

    def k_color(k):
        return cmap(0.9 * all_ks.index(k) / max(1, len(all_ks) - 1))

    xmax = max(x for _, x, _ in pts)
    right = max(5.0, xmax * 1.1 + 1)
    fig, axes = _panels(len(encoders), width=4.3, height=3.9)
    for ax, enc in zip(axes[0], encoders):
        mine = [(r, x, y) for r, x, y in pts if r.encoder == enc]
        variants = sorted({r.variant for r, _, _ in mine})
        for i, variant in enumerate(variants):
            line = sorted(((r, x, y) for r, x, y in mine if r.variant == variant), key=lambda t: t[0].k)
            ax.plot([x for _, x, _ in line], [y for _, _, y in line], STYLES[i % 4], color=_color(enc),
                    alpha=0.5, linewidth=1, zorder=2)
            # Later recipes and larger K drawn smaller on top: coinciding points show as rings.
            size = 90 - 25 * min(i, 2)
            sizes = [size * (1 - 0.55 * all_ks.index(r.k) / max(1, len(all_ks) - 1)) for r, _, _ in line]
            ax.scatter([x for _, x, _ in line], [y for _, _, y in line], s=sizes, marker=MARKERS[i % 6],
                       c=[k_color(r.k) for r, _, _ in line], edgecolor="black", linewidth=0.5, zorder=3)
            ax.scatter([], [], s=size, marker=MARKERS[i % 6], color="lightgray", edgecolor="black",
                       linewidth=0.5, label=f"{variant}" if variant else enc)
        ax.set_xlim(-0.04 * right, right)
        ax.set_ylim(-0.1, 1.1)
        ax.set_title(encoder_title(enc))
        ax.set_xlabel("wrongfully unlearned [%]")
        ax.set_ylabel("IDIA TPR on the removed identities")
        ax.xaxis.set_major_formatter(PercentFormatter())
        ax.legend(title="recipe (line joins K in order)", loc="upper center", bbox_to_anchor=(0.5, -0.2),
                  frameon=False, fontsize=8, title_fontsize=8)
    handles = [plt.Line2D([], [], linestyle="", marker="o", markersize=9 - 4 * j / max(1, len(all_ks) - 1),
                          markerfacecolor=k_color(k),
                          markeredgecolor="black", markeredgewidth=0.5) for j, k in enumerate(all_ks)]
    fig.legend(handles, [f"K={k}" for k in all_ks], loc="outside upper center", ncol=min(len(all_ks), 8),
               frameon=False, title="colour and size = K (identities removed)", title_fontsize=9)
    return _save(fig, path, dpi)


def example_grid(images: np.ndarray, titles: Sequence[str], path: Path, dpi: int,
                 cols: int = 4) -> Path | None:
    """A grid of uint8 images [n, H, W, 3] with one title each."""
    n = len(images)
    if n == 0:
        return None
    cols = min(cols, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.1 * cols, 2.35 * rows), squeeze=False,
                             layout="constrained")
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(images[i], interpolation="nearest")
            ax.set_title(titles[i], fontsize=9)
    return _save(fig, path, dpi)


def trials_tradeoff(trials: pd.DataFrame, path: Path, dpi: int) -> Path | None:
    """Settings tried during development: TPR on the removed vs wrongfully unlearned %.

    One row per encoder, one marker per setting with its legend to the right (a row grows
    with its number of settings), so long setting names never cover the data or the axes.
    """
    if trials is None or trials.empty:
        return None
    encoders = [e for e in ENCODERS if e in set(trials["encoder"])]
    counts = [trials.loc[trials["encoder"] == e, "setting"].nunique() for e in encoders]
    heights = [max(2.6, 0.24 * n + 0.8) for n in counts]
    fig, axes = plt.subplots(len(encoders), 1, figsize=(12.5, sum(heights) + 0.3), squeeze=False,
                             gridspec_kw={"height_ratios": heights}, layout="constrained")
    for ax, enc in zip(axes[:, 0], encoders):
        mine = trials[trials["encoder"] == enc]
        for i, (setting, rows) in enumerate(mine.groupby("setting", sort=False)):
            rows = rows.sort_values("k")
            color = plt.get_cmap("tab20")(i % 20)
            ax.plot(rows["wrongfully_unlearned_pct"], rows["tpr_removed"], STYLES[i % 4],
                    color=color, alpha=0.6, linewidth=1)
            ax.scatter(rows["wrongfully_unlearned_pct"], rows["tpr_removed"],
                       s=[30 + 12 * np.log2(k) * 4 for k in rows["k"]], marker=MARKERS[i % 6],
                       color=color, edgecolor="black", linewidth=0.5,
                       label=f"{setting} (K={', '.join(str(k) for k in rows['k'])})")
        ax.set_title(encoder_title(enc), loc="left")
        ax.set_xlabel("wrongfully unlearned [%]")
        ax.set_ylabel("IDIA TPR on\nthe removed")
        ax.set_ylim(-0.1, 1.1)
        ax.set_xlim(left=min(-1.0, float(mine["wrongfully_unlearned_pct"].min()) - 1))
        ax.xaxis.set_major_formatter(PercentFormatter())
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False, fontsize=7)
    return _save(fig, path, dpi)


def audit_residuals(rows: Sequence[tuple[str, str, dict[str, float | None]]], families: Sequence[str],
                    path: Path, dpi: int) -> Path | None:
    """Residual per probe family (its worst probe) for every audited model: one group of bars
    per model (label, encoder), one bar per family; a family the base model never identified
    anyone on is left out and marked n/a."""
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(rows) + 2), 3.6))
    width = 0.8 / max(1, len(families))
    hatches = ["", "//", ".."]
    x = np.arange(len(rows))
    for j, family in enumerate(families):
        values = [r[2].get(family) for r in rows]
        offs = x - 0.4 + width * (j + 0.5)
        ax.bar([o for o, v in zip(offs, values) if v is not None], [v for v in values if v is not None],
               width=width * 0.95, color=[_color(r[1]) for r, v in zip(rows, values) if v is not None],
               hatch=hatches[j % 3], edgecolor="black", linewidth=0.5)
        for o, v in zip(offs, values):   # the value on every bar: a residual of 0 draws no bar
            ax.text(o, (v or 0) + 0.02, "n/a" if v is None else f"{v:.2f}".rstrip("0").rstrip("."),
                    ha="center", va="bottom", fontsize=7, rotation=90)
        ax.bar([], [], color="white", hatch=hatches[j % 3], edgecolor="black", label=family)
    ax.set_xticks(x, [r[0] for r in rows], rotation=30, ha="right")
    ax.set_ylim(0, 1.15)
    ax.set_ylabel("residual (worst probe)")
    ax.set_title("Residual per probe family (0 = removed)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), title="probe family")
    fig.tight_layout()
    return _save(fig, path, dpi)

