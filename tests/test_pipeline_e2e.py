"""End to end: the real DVC pipeline on a tiny world, in a temporary copy of the repo."""
import json

import pandas as pd
import pytest

from tests.e2e_helpers import dvc, make_repo_copy

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    root = make_repo_copy(tmp_path_factory.mktemp("repo"))
    dvc(["repro", "idia_before"], root)
    return root


def test_attack_metrics_written(repo):
    m = json.loads((repo / "metrics/idia_before.json").read_text())
    assert m["members"] >= 5 and m["nonmembers"] >= 2
    assert 0.0 <= m["tpr"] <= 1.0 and 0.0 <= m["fpr"] <= 1.0
    assert m["identified_members"] == round(m["tpr"] * m["members"])
    table = pd.read_csv(repo / "data/idia_before/identities.csv")
    assert len(table) == m["members"] + m["nonmembers"]
    assert table["correct_templates"].between(0, 21).all()
    assert (table["identified"] == (table["correct_templates"] >= m["tau"])).all()


def test_download_reports_count_everything(repo):
    fs = json.loads((repo / "metrics/download_facescrub.json").read_text())
    assert fs["rows_read"] == 9 * 8 and fs["downloaded"] == fs["rows_read"]
    laion = json.loads((repo / "metrics/download_laion.json").read_text())
    assert laion["downloaded"] == laion["rows_read"] > 0


def test_second_repro_is_a_noop(repo):
    out = dvc(["repro", "idia_before"], repo).stdout
    assert "Running stage" not in out
    status = dvc(["status", "idia_before"], repo).stdout
    assert "up to date" in status
