"""Removal against the hair-colour cost, per image recipe and removal seed, from a trial CSV.

    python scripts/plot_removal_vs_hair.py docs/hardening_trials_image_lookalike_dev.csv \
        docs/figures/removal_vs_hair_dev.png

One point per (recipe, removal seed): x = zero-shot hair change (points), y = removed people the
attack still identifies on the exact photos; the recipe's mean is the large marker. The shaded
box is the issue's target (hair within 1 point, TPR <= 0.25); seed points are jittered a little
vertically so that equal ones stay visible.
"""
from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402


def main(csv_path: str, png_path: str) -> int:
    rows = pd.read_csv(csv_path)
    rows = rows[rows["tower"] == "image"]
    if rows.empty:
        print(f"error: {csv_path} has no image-tower rows", file=sys.stderr)
        return 2
    fig, ax = plt.subplots(figsize=(7, 4.2))
    k = int(rows["k"].max())
    ax.fill_between([-1, 1], -0.25, 0.25 * k, color="0.88", zorder=0, label="target: hair within 1, TPR <= 0.25")
    for i, (recipe, group) in enumerate(rows.groupby("recipe", sort=False)):
        colour = f"C{i}"
        jitter = (i - 1.5) * 0.06
        ax.scatter(group["zeroshot_hair_change_points"], group["exact_removed_identified"] + jitter, color=colour, s=22, alpha=0.7)
        ax.scatter(group["zeroshot_hair_change_points"].mean(), group["exact_removed_identified"].mean(),
                   color=colour, s=120, edgecolor="black", label=f"{recipe} (seeds {','.join(map(str, group['removal_seed']))})")
    ax.set_xlabel("zero-shot hair-colour top-1 change (points)")
    ax.set_ylabel(f"removed still identified (of {k})")
    ax.set_title("image defense, K = %d: removal against hair colour (small: one seed, large: mean)" % k, fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    Path(png_path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png_path, dpi=110)
    print(f"figure: {png_path}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print(__doc__.strip().splitlines()[0] + "\nusage: plot_removal_vs_hair.py TRIALS.csv OUT.png", file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1], sys.argv[2]))
