"""Faults from outside: a download stage stopped mid-way, a corrupt or truncated checkpoint.

The download tests run the real download_laion stage against a loopback server that holds
every request open, so img2dataset's workers are busy when the stage is signalled.
Subprocesses import the `pipeline` this module imported (PYTHONPATH), so the file can be
run against another checkout: `cd <checkout> && PYTHONPATH=. pytest <this file>`.
"""
from __future__ import annotations

import http.server
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

import pipeline
from pipeline.core.errors import PipelineError
from pipeline.models.architecture import build_model
from pipeline.models.checkpoint import WEIGHTS_FILE, load_model, save_checkpoint
from tests.test_download import laion_params, leftovers

CODE = Path(pipeline.__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(CODE), "HF_HUB_OFFLINE": "1", "NO_ALBUMENTATIONS_UPDATE": "1",
       "DVC_NO_ANALYTICS": "1"}


# ---------------------------------------------------------------- a download stopped mid-way

@pytest.fixture
def stalling_server():
    """(base URL, event set at the first request) of a loopback server that answers nothing
    until the test ends."""
    requested, release = threading.Event(), threading.Event()

    class Stall(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            requested.set()
            release.wait(120)
            self.send_error(404)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Stall)
    server.daemon_threads = True
    server.handle_error = lambda *args: None  # clients killed mid-request: expected here
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", requested
    release.set()
    server.shutdown()
    server.server_close()


def start_laion_stage(tmp_path: Path, base: str, log) -> subprocess.Popen:
    world = tmp_path / "world"
    world.mkdir()
    n = 8
    pq.write_table(pa.table({"URL": [f"{base}/{i}.jpg" for i in range(n)],
                             "TEXT": [f"photo {i}" for i in range(n)]}), world / "laion.parquet")
    # img2dataset's timeout is longer than the test: a worker left behind would still be waiting
    params = laion_params("world/laion.parquet", processes=1, threads=2, shard_size=2, timeout=90)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    return subprocess.Popen([sys.executable, "-m", "pipeline.stages.download_laion"], cwd=tmp_path,
                            env=ENV, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def running(pids) -> list[int]:
    alive = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.append(pid)
        except psutil.NoSuchProcess:
            pass
    return alive


def in_groups(groups: set[int]) -> list[int]:
    """Running processes whose process group or session is one of `groups`."""
    found = []
    for pid in psutil.pids():
        try:
            if os.getpgid(pid) in groups or os.getsid(pid) in groups:
                found.append(pid)
        except OSError:
            pass
    return running(found)


def wait_until(condition, timeout: float, step: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return condition()


def busy_download(tmp_path: Path, stalling_server, log,
                  seen: list[int]) -> tuple[subprocess.Popen, list[int], set[int]]:
    """The stage, started and waiting on the server: (stage, its descendants, their groups).
    `seen` collects every pid as it appears, for the test's cleanup."""
    base, requested = stalling_server
    stage = start_laion_stage(tmp_path, base, log)
    seen.append(stage.pid)

    def downloading():
        if stage.poll() is not None:
            return True
        children = psutil.Process(stage.pid).children(recursive=True)
        seen.extend(p.pid for p in children if p.pid not in seen)
        workers = [p for p in children if "spawn_main" in " ".join(p.cmdline())]
        return requested.is_set() and len(workers) >= 2  # img2dataset's pool worker and logger

    assert wait_until(downloading, 180), "img2dataset never started"
    assert stage.poll() is None, (tmp_path / "stage.log").read_text()[-3000:]
    time.sleep(1)  # all workers have their tasks
    family = [stage.pid] + [p.pid for p in psutil.Process(stage.pid).children(recursive=True)]
    seen.extend(pid for pid in family if pid not in seen)
    groups = set()
    for pid in family:
        try:
            groups |= {os.getpgid(pid), os.getsid(pid)}
        except OSError:
            pass
    return stage, family, groups


def kill_all(pids) -> None:
    for pid in running(pids):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def test_sigterm_of_a_download_stage_ends_its_workers_and_leaves_nothing(tmp_path, stalling_server):
    seen = []
    with (tmp_path / "stage.log").open("w") as log:
        try:
            stage, family, groups = busy_download(tmp_path, stalling_server, log, seen)
            os.kill(stage.pid, signal.SIGTERM)
            start = time.monotonic()
            code = stage.wait(timeout=60)
            took = time.monotonic() - start
            assert code != 0
            # the stage waits for its group: the slack is for the reaping of orphans
            assert wait_until(lambda: not running(family) and not in_groups(groups), 5), (
                f"still running after SIGTERM: {running(family) or in_groups(groups)}")
            assert took < 15, took
        finally:
            kill_all(seen)  # what a failing run left behind
    text = (tmp_path / "stage.log").read_text()
    assert "Traceback" not in text, text[-3000:]
    assert "error: stopped by SIGTERM" in text.splitlines()
    laion = tmp_path / "data" / "laion"
    assert not (laion / "shards").exists() and leftovers(laion) == []
    assert not (tmp_path / "metrics").exists()


def test_sigkill_of_a_download_stage_ends_its_workers(tmp_path, stalling_server):
    seen = []
    with (tmp_path / "stage.log").open("w") as log:
        try:
            stage, family, groups = busy_download(tmp_path, stalling_server, log, seen)
            os.kill(stage.pid, signal.SIGKILL)
            assert stage.wait(timeout=10) == -signal.SIGKILL
            assert wait_until(lambda: not running(family) and not in_groups(groups), 10), (
                f"still running 10 s after SIGKILL: {running(family) or in_groups(groups)}")
        finally:
            kill_all(seen)  # what a failing run left behind
    # the temporary a SIGKILL leaves is removed by the next run's atomic_dir (remove_leftovers)
    laion = tmp_path / "data" / "laion"
    assert not (laion / "shards").exists()


# ---------------------------------------------------------------- a corrupt checkpoint

TINY_CFG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}
_arch_ids = itertools.count()


def write_checkpoint(folder: Path) -> str:
    arch = f"faults-tiny-{os.getpid()}-{next(_arch_ids)}"  # open_clip's registry is process-global
    save_checkpoint(build_model(arch, TINY_CFG, seed=0), folder, arch, TINY_CFG)
    return arch


def one_line_error(folder: Path) -> str:
    with pytest.raises(PipelineError) as info:
        load_model(folder)
    message = str(info.value)
    assert "\n" not in message, message
    return message


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_corrupt_weights_are_one_line_naming_the_file_and_the_rebuild(tmp_path, damage):
    folder = tmp_path / "data" / "base_model"
    write_checkpoint(folder)
    weights = folder / WEIGHTS_FILE
    data = weights.read_bytes()
    weights.write_bytes({"truncated": data[: len(data) // 2], "garbage": os.urandom(4096) + data[4096:],
                         "empty": b""}[damage])
    message = one_line_error(folder)
    assert str(weights) in message and "corrupt or truncated" in message
    assert "Error while deserializing header" in message   # the underlying error, short
    assert message.endswith("`dvc repro -f -s base_model`")


def test_corrupt_config_is_one_line_naming_the_stage_from_the_folder(tmp_path):
    folder = tmp_path / "data" / "defended" / "both-k4"
    arch = write_checkpoint(folder)
    config = folder / f"{arch}.json"
    config.write_text(config.read_text()[:40])
    message = one_line_error(folder)
    assert str(config) in message and "corrupt model config" in message
    assert "dvc repro -f -s combine@4" in message
    config.write_text("[1, 2]")
    message = one_line_error(folder)
    assert str(config) in message and "dvc repro -f -s combine@4" in message


def test_weights_not_matching_the_config_are_one_line(tmp_path):
    folder = tmp_path / "elsewhere"
    arch = write_checkpoint(folder)
    (folder / f"{arch}.json").write_text(json.dumps({**TINY_CFG, "embed_dim": 64}))
    message = one_line_error(folder)
    assert str(folder / WEIGHTS_FILE) in message and "size mismatch" in message
    assert f"dvc repro -f -s <stage>` for the stage that writes {folder}" in message


def test_a_stage_on_a_truncated_checkpoint_exits_with_one_line(tmp_path):
    write_checkpoint(tmp_path / "data" / "base_model")
    write_checkpoint(tmp_path / "data" / "defended" / "text-k1")
    weights = tmp_path / "data" / "defended" / "text-k1" / WEIGHTS_FILE
    weights.write_bytes(weights.read_bytes()[:-100])
    result = subprocess.run([sys.executable, "-m", "pipeline.stages.combine", "--k", "1"], cwd=tmp_path,
                            env=ENV, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr[-3000:]
    assert lines[0].startswith(f"error: data/defended/text-k1/{WEIGHTS_FILE}: corrupt or truncated")
    assert lines[0].endswith("`dvc repro -f -s defend_text@1`")
