"""Run the queued sweep on several devices and several machines.

One DVC queue worker per device. `dvc queue start -j N` gives all N workers its own
environment, so every worker (and every experiment, as `cuda:0`) would share the first GPU.
`workers` spawns the same workers (`dvc exp queue-worker`, the same names, so `dvc queue
status/stop` see them) each with its own `CUDA_VISIBLE_DEVICES`: every experiment worker i
takes sees exactly one GPU, device i. CPU workers get `CUDA_VISIBLE_DEVICES=""`.

Several machines share one git remote and one DVC remote; each queues a disjoint share of the
seeds (`share`), runs them, and pushes them (`dvc exp push origin -A`); any machine then
collects them all (`dvc exp pull origin -A`; `dvc exp show -A`).

    python -m pipeline.experiments.fleet workers --devices 0,1,2,3     # four GPUs, four workers
    python -m pipeline.experiments.fleet workers --devices cpu:2       # two CPU workers
    python -m pipeline.experiments.fleet status                        # which device each worker sees
    python -m pipeline.experiments.fleet share --machines 3 --index 0 --seeds 0-9   # -> 0 3 6 9
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Mapping

from pipeline.core.errors import PipelineError

CPU = "cpu"
_DEVICE = re.compile(r"^(?:\d+|GPU-[0-9A-Fa-f-]+|MIG-[0-9A-Za-z/-]+)$")   # index, GPU or MIG UUID


def parse_devices(spec: str) -> list[str]:
    """'0,1,3' -> ['0', '1', '3'] (one worker per GPU); 'cpu:2' -> ['cpu', 'cpu']; 'cpu' -> ['cpu']."""
    spec = spec.strip()
    if spec == CPU or spec.startswith(CPU + ":"):
        count = spec.partition(":")[2] or "1"
        if not count.isdigit() or int(count) < 1:
            raise PipelineError(f"--devices {spec!r}: expected cpu:N with N >= 1 workers")
        return [CPU] * int(count)
    devices = [d.strip() for d in spec.split(",")]
    bad = [d for d in devices if not _DEVICE.match(d)]
    if bad:
        raise PipelineError(f"--devices {spec!r}: {bad[0]!r} is not a GPU index or UUID; expected a comma-separated "
                            "list such as 0,1,2,3 (what nvidia-smi -L lists) or cpu:N")
    if len(set(devices)) != len(devices):
        raise PipelineError(f"--devices {spec!r}: a GPU listed twice would run two workers on one device")
    return devices


def worker_env(device: str, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of the worker pinned to `device`: it sees that GPU only, or none."""
    env = dict(os.environ if base is None else base)
    env["CUDA_VISIBLE_DEVICES"] = "" if device == CPU else device
    return env


def worker_command(number: int, celery_dir: str) -> list[str]:
    """What `dvc queue start` runs for worker `number` (dvc.repo.experiments.queue.celery):
    `dvc exp queue-worker` under the node name DVC would give it, so `dvc queue start/stop/status`
    treat it as one of theirs; worker 1 cleans the broker when it ends."""
    node = f"dvc-exp-{hashlib.sha256(celery_dir.encode('utf-8')).hexdigest()[:6]}-{number}@localhost"
    return [sys.executable, "-m", "dvc", "exp", "queue-worker", node, *(["--clean"] if number == 1 else [])]


_SPAWN = ("import json, sys; from dvc_task.proc.process import ManagedProcess; "
          "a = json.loads(sys.argv[1]); ManagedProcess.spawn(a['args'], env=a['env'], wdir=a['wdir'], name=a['name'])")


def _spawn(args: list[str], env: dict[str, str], wdir: str, name: str) -> None:
    """Detached, output in <wdir>/<name>.out, as `dvc queue start` does. dvc-task forks a watcher
    that lives as long as the worker and keeps every file descriptor of the process that forked
    it; forking it from a short-lived helper whose stdio is /dev/null means a caller reading this
    command's output (`$(...)`, subprocess pipes) is not kept waiting until the queue is empty."""
    with tempfile.TemporaryFile() as errors:
        done = subprocess.run([sys.executable, "-c", _SPAWN,
                               json.dumps({"args": args, "env": env, "wdir": wdir, "name": name})],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errors, close_fds=True)
        if done.returncode != 0:
            errors.seek(0)
            raise PipelineError(f"could not start queue worker {name}: "
                                f"{errors.read().decode(errors='replace').strip()[-300:]}")


def start_workers(devices: list[str], repo: Path = Path("."), spawn: Callable[..., None] = _spawn,
                  wait_s: float = 60.0) -> int:
    """Start one queue worker per device, worker i with its own environment (CUDA_VISIBLE_DEVICES
    = devices[i-1]); return how many. Spawns them the way `dvc queue start` does, but with an
    explicit environment each, instead of `dvc queue start -j i` once per device: that one decides
    which worker numbers exist from the workers that answer a broadcast within a second, and a
    worker busy starting (or a loaded machine) misses it, so it would start a second worker 1."""
    from dvc.repo import Repo

    busy = worker_devices(repo)
    if busy:
        raise PipelineError(f"queue worker(s) {', '.join(sorted(busy))} already run; stop them first "
                            "(dvc queue stop) or let them finish")
    with Repo(str(repo)) as dvc_repo:
        celery_dir = dvc_repo.experiments.celery_queue.wdir
        dvc_repo.experiments.celery_queue.celery   # creates the broker's folders, as dvc queue start does
    for i, device in enumerate(devices, start=1):
        spawn(worker_command(i, celery_dir), env=worker_env(device), wdir=celery_dir, name=f"dvc-exp-worker-{i}")
        print(f"worker {i}: device {'none (CPU)' if device == CPU else device}", file=sys.stderr)
    if spawn is _spawn:     # a detached worker writes its pid file a moment after spawn returns
        names = {f"dvc-exp-worker-{i}" for i in range(1, len(devices) + 1)}
        deadline = time.monotonic() + wait_s
        while not names <= set(worker_devices(repo)):
            if time.monotonic() > deadline:
                raise PipelineError(f"queue workers {', '.join(sorted(names - set(worker_devices(repo))))} did not "
                                    f"start within {wait_s:.0f} s; see {celery_dir}/dvc-exp-worker-*.out")
            time.sleep(0.2)
    return len(devices)


def worker_devices(repo: Path = Path(".")) -> dict[str, str | None]:
    """Per running queue worker (dvc-exp-worker-N): the CUDA_VISIBLE_DEVICES it runs with ("" = no
    GPU, "all" = unset, so every GPU; None = not readable). Reads DVC's worker files and /proc/<pid>/environ."""
    out: dict[str, str | None] = {}
    for info in sorted((repo / ".dvc/tmp/exps/celery").glob("dvc-exp-worker-*.json")):
        pid = json.loads(info.read_text()).get("pid")
        environ = Path(f"/proc/{pid}/environ")
        if not pid or not environ.is_file():
            continue                                  # a worker that has exited
        try:
            pairs = dict(v.split("=", 1) for v in environ.read_bytes().decode(errors="replace").split("\0") if "=" in v)
        except OSError:
            out[info.stem] = None
            continue
        out[info.stem] = pairs.get("CUDA_VISIBLE_DEVICES", "all")
    return out


def parse_seeds(spec: str) -> list[int]:
    """'0-9' or '0,2,5' or '0-3,7' -> sorted seeds."""
    seeds: set[int] = set()
    for part in spec.split(","):
        lo, dash, hi = part.strip().partition("-")
        if not lo.isdigit() or (dash and not hi.isdigit()):
            raise PipelineError(f"--seeds {spec!r}: expected seeds like 0-9 or 0,2,5")
        seeds.update(range(int(lo), int(hi if dash else lo) + 1))
    return sorted(seeds)


def machine_share(seeds: list[int], machines: int, index: int) -> list[int]:
    """The seeds machine `index` (0-based) of `machines` runs: every machines-th, so the shares are
    disjoint, cover all seeds, and differ in size by at most one."""
    if machines < 1 or not 0 <= index < machines:
        raise PipelineError(f"--index {index} of --machines {machines}: expected 0 <= index < machines")
    return sorted(seeds)[index::machines]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    w = sub.add_parser("workers", help="start one DVC queue worker per device")
    w.add_argument("--devices", required=True, help="GPU indices or UUIDs (0,1,2,3) or cpu:N")
    sub.add_parser("status", help="which device each running queue worker sees")
    s = sub.add_parser("share", help="print the seeds one machine of several runs")
    s.add_argument("--machines", type=int, required=True)
    s.add_argument("--index", type=int, required=True, help="this machine, 0-based")
    s.add_argument("--seeds", default="0-9", help="all seeds of the sweep (default 0-9, as the paper)")
    args = ap.parse_args(argv)
    try:
        if args.command == "workers":
            start_workers(parse_devices(args.devices))
        elif args.command == "status":
            for worker, device in worker_devices().items():
                print(f"{worker}: CUDA_VISIBLE_DEVICES={device!r}")
        else:
            print(" ".join(map(str, machine_share(parse_seeds(args.seeds), args.machines, args.index))))
    except PipelineError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
