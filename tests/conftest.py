"""Shared test setup: offline, quiet, deterministic."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # two xdist workers share two cores: idle threads sleep

import pytest


def _shared_root(tmp_path_factory, worker_id: str):
    """A folder every xdist worker of this run sees (its own basetemp when not distributed)."""
    base = tmp_path_factory.getbasetemp()
    return base if worker_id == "master" else base.parent


@pytest.fixture(scope="session")
def reproduced_repo(tmp_path_factory, worker_id):
    """One tiny-world copy of the repository, reproduced end to end with `dvc repro`, built once
    for the whole run (the first worker to ask builds it, the other waits on the lock).
    Read only: no test writes to it or runs dvc in it; a test that does takes `reproduced_copy`."""
    import shutil

    from filelock import FileLock

    from tests.e2e_helpers import dvc, make_repo_copy

    root = _shared_root(tmp_path_factory, worker_id)
    repo, done = root / "tiny-repo", root / "tiny-repo.done"
    with FileLock(str(root / "tiny-repo.lock")):
        if not done.is_file():
            shutil.rmtree(repo, ignore_errors=True)     # an earlier worker's failed build
            repo.mkdir()
            make_repo_copy(repo)
            result = dvc(["repro"], repo)
            assert result.returncode == 0, result.stderr[-3000:]
            done.write_text("built\n")
    return repo


@pytest.fixture
def reproduced_copy(reproduced_repo, tmp_path):
    """A private copy of the reproduced repository (git, DVC cache and outputs): a test may run
    experiments, push, delete and commit in it without touching any other test's."""
    import shutil

    copy = tmp_path / "repo"
    shutil.copytree(reproduced_repo, copy, symlinks=True)
    return copy


# the longest runs in a copy of the tiny repository (serial: 3 min, 3 min, 2 min)
LONGEST = ("test_another_world_seed_runs", "test_two_queue_workers", "test_exp_run_reruns_only")


def _rank(item) -> tuple[int, int]:
    # Longest work first, so two workers end together: one test that builds the tiny repository
    # (about 4 min), the paper profile's end to end (about 5 min) on the other worker meanwhile,
    # then the tests that run experiments in a copy of the tiny repository, then the rest.
    fixtures = getattr(item, "fixturenames", ())
    if item.name == "test_attack_metrics_written":
        return 0, 0
    if item.name.startswith("test_paper_profile_runs_end_to_end"):
        return 1, 0
    if "reproduced_copy" in fixtures:
        return 2, next((i for i, n in enumerate(LONGEST) if item.name.startswith(n)), len(LONGEST))
    return (3 if "reproduced_repo" in fixtures else 4), 0


@pytest.hookimpl(tryfirst=True)   # before pytest-xdist's own hook reads the order (and any group mark)
def pytest_collection_modifyitems(config, items):
    # Every worker collects, sorts and must agree: the sort is stable and depends on names only.
    items.sort(key=_rank)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    # SUITE_TIMELINE=<file>: one line per test (worker, start, end, test id) appended to it,
    # to see which worker's tests make the suite's wall time (README "Tests")
    timeline = os.environ.get("SUITE_TIMELINE")
    if not timeline:
        yield
        return
    import time

    start = time.time()
    yield
    with open(timeline, "a") as fh:
        fh.write(f"{os.environ.get('PYTEST_XDIST_WORKER', 'main')}\t{start:.1f}\t{time.time():.1f}\t{item.nodeid}\n")
