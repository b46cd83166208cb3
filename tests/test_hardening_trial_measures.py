"""scripts/hardening_trial.py: the measures it adds to the probe table (own votes, survivors)."""
from __future__ import annotations

import pandas as pd
import pytest
import torch

from tests.scripts_helpers import load_script


@pytest.fixture(scope="module")
def script():
    return load_script("hardening_trial")


def test_own_votes_count_photo_template_votes_on_the_own_name(script):
    names = ["Ann Lee", "Bo Marsh", "Cy Dunn"]
    photos = pd.DataFrame({"name": ["Ann Lee", "Ann Lee", "Bo Marsh", "Cy Dunn"]})
    images = torch.eye(3)[[0, 1, 1, 2]]                 # Ann's second photo looks like Bo
    texts = torch.stack([torch.eye(3),                  # template 1: every name on its own axis
                         torch.eye(3)[[1, 0, 2]]])      # template 2: Ann and Bo swapped
    # removed Ann: template 1 -> photo 1 votes Ann, photo 2 votes Bo; template 2 -> Bo, then Ann
    assert script.removed_own_votes(images, texts, photos, names, ["Ann Lee"]) == 2
    # removed Bo: template 1 -> Bo; template 2 -> Ann
    assert script.removed_own_votes(images, texts, photos, names, ["Bo Marsh"]) == 1
    assert script.removed_own_votes(images, texts, photos, names, ["Ann Lee", "Bo Marsh", "Cy Dunn"]) == 5


def test_survivors_name_their_name_sharers(script, capsys):
    joined = pd.DataFrame({"name": ["Ann Lee", "Bo Marsh"], "removed": [True, True],
                           "identified_after": [True, False], "correct_after": [2, 0],
                           "correct_before": [19, 12], "count": [57, 9]})
    script.print_survivors(joined, ["Ann Rice", "Tom Lee", "Cy Dunn"])
    out = capsys.readouterr().out
    assert "Ann Lee (2/19 templates, 57 captions; shares a name part with: Ann Rice, Tom Lee)" in out
    assert "Bo Marsh" not in out


def test_people_rows_say_who_is_found_by_which_probe_and_who_shares_the_name(script, tmp_path):
    probes = pd.DataFrame({"name": ["Ann Lee", "Bo Marsh", "Cy Dunn"], "exact": [0, 3, 20],
                           "name_last_only": [4, 0, 9], "name_first_only": [-1, 1, 9]})
    out = tmp_path / "people.csv"
    run = {"tower": "text", "pool": "test", "removal_seed": 1, "k": 2, "recipe": "r"}
    for _ in range(2):   # appended, one header
        script.write_people(out, run, probes, ["Ann Lee", "Bo Marsh"], ["Tom Lee", "Ann Rice", "Cy Dunn"], tau=2)
    rows = pd.read_csv(out, keep_default_na=False)
    assert len(rows) == 2 * 2 * 3 and list(rows.columns[:5]) == list(run)
    ann = rows[(rows["name"] == "Ann Lee")].drop_duplicates("probe").set_index("probe")
    assert ann.at["name_last_only", "identified"] == "True" and ann.at["exact", "identified"] == "False"
    assert ann.at["name_first_only", "identified"] == ""      # not applicable to her: neither found nor missed
    assert ann.at["exact", "kept_sharing_last"] == "Tom Lee" and ann.at["exact", "kept_sharing_first"] == "Ann Rice"
    bo = rows[rows["name"] == "Bo Marsh"].iloc[0]
    assert bo["kept_sharing_first"] == "" and bo["kept_sharing_last"] == ""
    assert "Cy Dunn" not in set(rows["name"])


def test_a_summary_of_a_csv_outside_docs_draws_its_figure_beside_it(script, tmp_path, monkeypatch, capsys):
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    rows = pd.read_csv(root / "docs/hardening_trials_text_face.csv")
    out = tmp_path / "mine.csv"
    rows[rows["pool"] == "test"].to_csv(out, index=False)
    monkeypatch.chdir(tmp_path)                    # no docs/ here: nothing may land in one
    script.summarise(out, "test", "text")
    assert (tmp_path / "mine_test.png").is_file() and not (tmp_path / "docs").exists()
    assert f"figure: {tmp_path / 'mine_test.png'}" in capsys.readouterr().out
