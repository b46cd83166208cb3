"""scripts/plot_removal_vs_hair.py draws a committed trial table and refuses one without image rows."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from tests.scripts_helpers import load_script

REPO = Path(__file__).resolve().parents[1]


def _script():
    return load_script("plot_removal_vs_hair")


def test_it_draws_the_committed_development_pool_trials(tmp_path):
    out = tmp_path / "fig" / "removal_vs_hair.png"
    assert _script().main(str(REPO / "docs" / "hardening_trials_image_lookalike_dev.csv"), str(out)) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000


def test_a_table_without_image_rows_is_refused(tmp_path, capsys):
    text_rows = tmp_path / "text.csv"
    pd.DataFrame({"tower": ["text"], "k": [4], "recipe": ["paper"], "removal_seed": [0],
                  "zeroshot_hair_change_points": [0.0], "exact_removed_identified": [0]}).to_csv(text_rows, index=False)
    assert _script().main(str(text_rows), str(tmp_path / "x.png")) == 2
    assert "no image-tower rows" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()
