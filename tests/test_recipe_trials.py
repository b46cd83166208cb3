"""The recipe-trial summaries (pipeline/reports/recipe_trials.py) and their report section."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from pipeline.reports.build import ReportOptions, build_report
from pipeline.reports.recipe_trials import BASE, reference_counts, sum_trials
from test_report import _check_report, make_fake_repo

REPO = Path(__file__).parents[1]


def _row(seed, k, recipe, exact, exact_base, typo, typo_base, pool="test", loss=3.1, unlearned=2.0):
    return {"tower": "text", "pool": pool, "removal_seed": seed, "k": k, "recipe": recipe, "seconds": 1.0,
            "base_final_loss": loss, "tpr_removed": exact / k, "wrongfully_unlearned_pct": unlearned,
            "heldout_prompts_wrongfully_unlearned_pct": 0.0, "name_sharers_lost": 0, "name_sharers_before": 1,
            "fpr": 0.0, "zeroshot_hair_change_points": 0.5, "zeroshot_scenes_change_points": -0.25,
            "exact_removed_identified": exact, "exact_removed_identified_base": exact_base, "exact_residual": 0.0,
            "name_typo_removed_identified": typo, "name_typo_removed_identified_base": typo_base,
            "name_typo_residual": 0.0}


def _trials(loss=3.1) -> pd.DataFrame:
    return pd.DataFrame([
        _row(0, 4, "paper", 0, 4, 1, 2, loss=loss), _row(0, 4, "hardened", 0, 4, 0, 2, loss=loss, unlearned=4.0),
        _row(1, 4, "paper", 1, 3, 2, 3, loss=loss), _row(1, 4, "hardened", 0, 3, 1, 3, loss=loss, unlearned=6.0),
        _row(0, 4, "paper", 4, 4, 4, 4, pool="dev", loss=loss)])


def test_counts_are_summed_over_seeds_with_the_base_model_once_per_k():
    t = sum_trials(_trials(), "test")
    assert t.probes == ["exact", "name_typo"]
    assert t.sums.loc[(4, BASE)].to_list() == [7, 5]            # 4 + 3 and 2 + 3: once, not once per recipe
    assert t.sums.loc[(4, "paper")].to_list() == [1, 3]
    assert t.sums.loc[(4, "hardened")].to_list() == [0, 1]
    assert t.seeds[(4, "paper")] == "0,1"
    assert t.costs.loc[(4, "hardened"), ("wrongfully_unlearned_pct", "mean")] == 5.0
    assert t.costs.loc[(4, "hardened"), ("wrongfully_unlearned_pct", "max")] == 6.0
    assert t.base_losses == [3.1]
    assert sum_trials(_trials(), "dev").sums.loc[(4, "paper")].to_list() == [4, 4]   # the dev row stays out
    assert sum_trials(_trials()[lambda d: d["pool"] == "dev"], "test") is None


def test_reference_counts_are_people_not_rates():
    audit = {"probes": {"exact": {"tpr_removed": 0.25, "removed_probed": 4}, "name_typo": {"tpr_removed": None}}}
    assert reference_counts(audit, ["exact", "name_typo", "photo_unseen"]) == {"exact": 1, "name_typo": None,
                                                                               "photo_unseen": None}


@pytest.mark.parametrize("loss, same", [(3.1, True), (1.9, False)])
def test_report_shows_recipes_beside_r_and_says_when_the_base_model_differs(tmp_path, loss, same):
    make_fake_repo(tmp_path)          # its base model: final loss 3.1
    (tmp_path / "metrics/audit").mkdir(parents=True, exist_ok=True)
    (tmp_path / "metrics/audit/reference-k4.json").write_text(json.dumps({"probes": {
        "exact": {"tpr_removed": 0.0, "removed_probed": 4}, "name_typo": {"tpr_removed": 0.25, "removed_probed": 4}},
        "families": {}}))
    csv = tmp_path / "trials.csv"
    _trials(loss).to_csv(csv, index=False)
    result = build_report(tmp_path, tmp_path / "reports", ReportOptions(dpi=50, recipe_trials={"text": csv}))
    md = _check_report(tmp_path / "reports")
    assert "recipe_trials_text" in {p.stem for p in result.figures}
    section = md[md.index("### Hardened recipes beside"):]
    section = re.split(r"\n## ", section)[0]
    lines = [[c.strip() for c in line.strip("|").split("|")] for line in section.splitlines() if line.startswith("|")]
    assert lines[0] == ["probe", "base model", "hardened", "paper", "R (one seed)"]
    assert lines[2] == ["exact", "7", "0", "1", "0"]
    assert lines[3] == ["name_typo", "5", "1", "3", "1"]
    assert ["hardened", "5.0 %", "0.0 %", "0.00", "0.50", "-0.25"] in lines
    assert ("Not the same base model" in section) is not same


def test_a_missing_trial_file_leaves_the_section_out(tmp_path):
    make_fake_repo(tmp_path)
    build_report(tmp_path, tmp_path / "reports", ReportOptions(dpi=50, recipe_trials={"text": tmp_path / "none.csv"}))
    assert "Hardened recipes beside" not in _check_report(tmp_path / "reports")


@pytest.mark.parametrize("name", ["hardening_trials.csv", "hardening_trials_image.csv", "hardening_trials_both.csv",
                                  "hardening_trials_image_lookalike_dev.csv"])
def test_committed_trial_tables_take_the_rows_the_script_appends(name):
    """scripts/hardening_trial.py appends under the file's own header and refuses a row with
    columns the header lacks: every committed table must have the ones it writes."""
    header = pd.read_csv(REPO / "docs" / name, nrows=0).columns
    assert {"tower", "pool", "removal_seed", "k", "recipe", "seconds", "base_final_loss"} <= set(header)
    rows = pd.read_csv(REPO / "docs" / name)
    assert sum_trials(rows, rows["pool"].iloc[0]) is not None
