"""Shared test setup: offline, quiet, deterministic."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")

import pytest


@pytest.fixture(scope="session")
def reproduced_repo(tmp_path_factory):
    """One tiny-world copy of the repository, reproduced end to end with `dvc repro`."""
    from tests.e2e_helpers import dvc, make_repo_copy

    root = make_repo_copy(tmp_path_factory.mktemp("repo"))
    dvc(["repro"], root)
    return root
