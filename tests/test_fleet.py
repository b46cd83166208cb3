"""Issue 16 point 2: one queue worker per device, a disjoint share of seeds per machine (the
multi-worker queue itself runs in tests/test_dvc_workflow.py)."""
import subprocess

import pytest

from pipeline.core.errors import PipelineError
from pipeline.experiments.fleet import machine_share, main, parse_devices, parse_seeds, start_workers, worker_env


def test_devices_are_gpu_indices_uuids_or_cpu_workers():
    assert parse_devices("0,1,3") == ["0", "1", "3"]
    assert parse_devices("GPU-8f2c1e4a-1111-2222-3333-444455556666") == ["GPU-8f2c1e4a-1111-2222-3333-444455556666"]
    assert parse_devices("cpu:3") == ["cpu"] * 3
    assert parse_devices("cpu") == ["cpu"]
    for bad in ("0,0", "cuda:0", "0;1", "cpu:0", "cpu:x", ""):
        with pytest.raises(PipelineError, match="--devices"):
            parse_devices(bad)


def test_each_worker_sees_only_its_own_device():
    base = {"PATH": "/bin", "CUDA_VISIBLE_DEVICES": "0,1,2,3"}
    assert worker_env("2", base) == {"PATH": "/bin", "CUDA_VISIBLE_DEVICES": "2"}
    assert worker_env("cpu", base)["CUDA_VISIBLE_DEVICES"] == ""     # no GPU at all
    assert base["CUDA_VISIBLE_DEVICES"] == "0,1,2,3"                  # the caller's env is not changed


def test_workers_are_dvc_queue_workers_each_spawned_with_its_own_device(tmp_path):
    from dvc.repo import Repo

    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    Repo.init(str(tmp_path))
    spawned = []
    assert start_workers(["0", "1", "3"], repo=tmp_path, spawn=lambda args, **kw: spawned.append((args, kw))) == 3
    celery_dir = str(tmp_path / ".dvc" / "tmp" / "exps" / "celery")
    assert [kw["env"]["CUDA_VISIBLE_DEVICES"] for _, kw in spawned] == ["0", "1", "3"]
    assert [kw["name"] for _, kw in spawned] == ["dvc-exp-worker-1", "dvc-exp-worker-2", "dvc-exp-worker-3"]
    assert all(kw["wdir"] == celery_dir for _, kw in spawned)
    # the node names `dvc queue start` gives its workers 1, 2, 3 (so it counts these as its own)
    nodes = [args[args.index("queue-worker") + 1] for args, _ in spawned]
    assert len(set(nodes)) == 3 and all(n.startswith("dvc-exp-") and n.endswith(f"-{i}@localhost")
                                        for i, n in enumerate(nodes, start=1))
    assert [("--clean" in args) for args, _ in spawned] == [True, False, False]   # worker 1 cleans the broker


def test_workers_refuse_to_start_next_to_running_ones(tmp_path):
    import json
    import os

    from dvc.repo import Repo

    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    Repo.init(str(tmp_path))
    info = tmp_path / ".dvc/tmp/exps/celery"
    info.mkdir(parents=True)
    (info / "dvc-exp-worker-1.json").write_text(json.dumps({"pid": os.getpid()}))   # alive: this process
    with pytest.raises(PipelineError, match="dvc-exp-worker-1 already run"):
        start_workers(["0"], repo=tmp_path, spawn=lambda *a, **k: None)
    (info / "dvc-exp-worker-1.json").write_text(json.dumps({"pid": 2 ** 22 + 12345}))  # no such process
    assert start_workers(["0"], repo=tmp_path, spawn=lambda *a, **k: None) == 1


def test_machines_take_disjoint_shares_that_cover_every_seed():
    seeds = parse_seeds("0-9")
    assert seeds == list(range(10))
    assert parse_seeds("0-2,7,5") == [0, 1, 2, 5, 7]
    shares = [machine_share(seeds, 3, i) for i in range(3)]
    assert shares == [[0, 3, 6, 9], [1, 4, 7], [2, 5, 8]]
    assert sorted(s for share in shares for s in share) == seeds
    with pytest.raises(PipelineError, match="--index 3 of --machines 3"):
        machine_share(seeds, 3, 3)
    with pytest.raises(PipelineError, match="--seeds"):
        parse_seeds("zero")


def test_share_prints_the_seeds_for_the_sweep_command(capsys):
    assert main(["share", "--machines", "2", "--index", "1", "--seeds", "0-5"]) == 0
    assert capsys.readouterr().out.split() == ["1", "3", "5"]
    assert main(["share", "--machines", "2", "--index", "2"]) == 1
    assert "error: --index 2" in capsys.readouterr().err
