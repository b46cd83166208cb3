"""Shared test setup: offline, quiet, deterministic."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # two xdist workers share two cores: idle threads sleep

import pytest


@pytest.fixture(scope="session")
def reproduced_repo(tmp_path_factory):
    """One tiny-world copy of the repository, reproduced end to end with `dvc repro`."""
    from tests.e2e_helpers import dvc, make_repo_copy

    root = make_repo_copy(tmp_path_factory.mktemp("repo"))
    dvc(["repro"], root)
    return root


def pytest_collection_modifyitems(config, items):
    # The suite runs on two xdist workers (pyproject.toml): every test on the one tiny-world
    # repository stays on one worker, so the session fixture is built once; the paper profile's
    # end to end (the other long run) is a group of its own, so it can go to the other worker.
    for item in items:
        if "reproduced_repo" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("tiny-repo"))
        elif item.name.startswith("test_paper_profile_runs_end_to_end"):
            item.add_marker(pytest.mark.xdist_group("paper-e2e"))
