"""Running img2dataset and turning its per-sample results into a download report.

Shared by the FaceScrub and LAION download stages. img2dataset is used as its users use
it (`img2dataset.download(...)`); what this module adds is what a reproducible pipeline
needs around it: URLs resolved against the list's folder, a fresh output folder for every
run, its sidecar files folded into one report, and failures counted by reason.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections import Counter
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.data.download_worker import INTERRUPTED, SPARK_MASTER_KEY
from pipeline.core.errors import PipelineError

HTTP_ERROR = "http_error"
HASH_MISMATCH = "hash_mismatch"
UNDECODABLE_IMAGE = "undecodable_image"
BAD_BBOX = "bad_bbox"
MALFORMED_ROW = "malformed_row"
OTHER = "other"

DOWNLOAD_REASONS = (HTTP_ERROR, HASH_MISMATCH, UNDECODABLE_IMAGE, OTHER)
TOP_ERRORS = 10


def resolve_url(url, base: Path | str):
    """Make a list's URL usable from anywhere.

    A relative `file:` URL (or a bare relative path) is resolved against `base`: the local
    folder of the list, or the http(s) URL of a remote list. Absolute file://, http:// and
    https:// URLs come back as given; None stays None so img2dataset reports the row.
    """
    if url is None:
        return None
    text = str(url).strip()
    parts = urllib.parse.urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme not in ("", "file"):
        return text
    if parts.netloc or parts.path.startswith("/"):
        return text if scheme == "file" else Path(parts.path).as_uri()
    relative = urllib.request.url2pathname(parts.path)
    if isinstance(base, str) and urllib.parse.urlsplit(base).scheme in ("http", "https"):
        return urllib.parse.urljoin(base, urllib.request.pathname2url(relative))
    return Path(os.path.abspath(Path(base) / relative)).as_uri()


def failure_reason(status: str | None, error_message: str | None) -> str | None:
    """Map img2dataset's per-sample status/error_message to a report reason (None = success)."""
    if status == "success":
        return None
    if status == "failed_to_download":
        if error_message == "hash mismatch":
            return HASH_MISMATCH
        if error_message and "X-Robots-Tag" in error_message:
            return OTHER  # the server refused use of the image; not a dead link
        return HTTP_ERROR
    if status == "failed_to_resize":
        return UNDECODABLE_IMAGE
    return OTHER


def find_java() -> str | None:
    """The java that pyspark would start: $JAVA_HOME/bin/java, else the first on PATH."""
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").is_file():
        return str(Path(home) / "bin" / "java")
    return shutil.which("java")


def check_distributor(name: str, key: str) -> None:
    """Fail early, in one line, when the chosen img2dataset distributor cannot run here."""
    needs = {"pyspark": "pyspark", "ray": "ray"}.get(name)
    if needs is None:
        return
    import importlib.util

    if importlib.util.find_spec(needs) is None:
        raise PipelineError(f"params.yaml: {key} = {name!r} needs the '{needs}' package, which is not "
                            f"installed; install it (pip install -r requirements.txt) or use 'multiprocessing'")
    if name == "pyspark" and find_java() is None:
        raise PipelineError(f"params.yaml: {key} = 'pyspark' needs Java 17 (Spark's JVM), found neither "
                            "$JAVA_HOME/bin/java nor java on PATH; install a JRE (Debian: apt install "
                            "openjdk-17-jre-headless) or use 'multiprocessing'")


def run_img2dataset(url_list: Path, output_folder: Path, spark_master: str | None = None, **options) -> None:
    """Run img2dataset.download on a parquet url list into a fresh `output_folder`.

    With `distributor="pyspark"` the child starts a Spark session on `spark_master` (local[N],
    spark://host:7077, ...) before img2dataset runs and stops it afterwards, so img2dataset
    uses that session instead of creating its own local one.

    img2dataset runs in a child process that leads its own process group (see
    pipeline/data/download_worker.py). However this call ends (done, failed, SIGINT, or
    SIGTERM turned into an exception by run_stage) the whole group is ended and waited
    for, so no worker goes on writing into a folder the caller is about to remove.
    """
    output_folder = Path(output_folder)
    # Its incremental mode would skip shards a killed run left behind, and its overwrite
    # mode is broken: start from nothing instead.
    if output_folder.exists():
        shutil.rmtree(output_folder)
    spec = {"url_list": str(url_list), "output_folder": str(output_folder),
            "input_format": "parquet", "enable_wandb": False, **options}
    if options.get("distributor") == "pyspark":
        spec[SPARK_MASTER_KEY] = spark_master or f"local[{options.get('processes_count', 1)}]"
    env = dict(os.environ)
    # the child must import this same `pipeline`, wherever the stage was started from
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    # stdin is the child's lifeline: it ends the group when this process dies (SIGKILL)
    proc = subprocess.Popen([sys.executable, "-m", "pipeline.data.download_worker",
                             json.dumps(spec, default=str)],
                            stdin=subprocess.PIPE, start_new_session=True, env=env)
    try:
        _wait_unreaped(proc)
    finally:
        _end_group(proc)
    if proc.returncode == INTERRUPTED:
        raise KeyboardInterrupt("img2dataset was interrupted")
    if proc.returncode < 0:
        raise PipelineError(f"img2dataset was killed by {signal.Signals(-proc.returncode).name}")
    if proc.returncode != 0:
        raise PipelineError(f"img2dataset failed with exit status {proc.returncode} (its error is above)")


def _wait_unreaped(proc: subprocess.Popen) -> None:
    """Wait for the child to exit but leave it a zombie: while it is one, its pid (the
    group's id) cannot be reused, so _end_group's killpg cannot hit another group."""
    if hasattr(os, "waitid"):
        os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
    else:
        proc.wait()


def _group_running(pgid: int) -> bool:
    """Whether a process of group `pgid` still runs (Linux /proc; zombies write nothing)."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2:].split()  # state, ppid, pgrp, ...
        if len(fields) > 2 and fields[0] != b"Z" and int(fields[2]) == pgid:
            return True
    return False


def _end_group(proc: subprocess.Popen, grace: float = 3.0, limit: float = 10.0) -> None:
    """End every process of the child's group, wait until none runs, then reap the child.

    SIGTERM first, so that multiprocessing's resource tracker (it ignores SIGTERM) outlives
    the others and removes their semaphores; SIGKILL for whatever is left after `grace`.
    """
    pgid = proc.pid
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, limit)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            break
        if not os.path.isdir("/proc"):
            continue  # no way to tell zombies apart: SIGKILL without waiting
        deadline = time.monotonic() + wait
        while _group_running(pgid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if not _group_running(pgid):
            break
    proc.wait()
    proc.stdin.close()


def read_results(output_folder: Path) -> pd.DataFrame:
    """Every sample img2dataset attempted (its per-shard parquet files), with a `shard` column.

    A shard whose parquet is unreadable (its worker died) contributes no rows; the caller
    counts rows it never sees as failed for reason `other`.
    """
    frames = []
    for path in sorted(Path(output_folder).glob("*.parquet")):
        try:
            table = pq.read_table(path)
        except (pa.ArrowException, OSError) as exc:
            print(f"warning: unreadable img2dataset result {path.name}: {exc}")
            continue
        drop = [c for c in ("exif",) if c in table.column_names]
        frame = table.drop_columns(drop).to_pandas()
        frame["shard"] = path.stem
        frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=["key", "status", "error_message", "shard"])
    return pd.concat(frames, ignore_index=True).sort_values("key", kind="stable").reset_index(drop=True)


def read_stats(output_folder: Path) -> dict:
    """Sum img2dataset's `*_stats.json` sidecars (its own tallies, kept for cross-checking)."""
    totals = {"count": 0, "successes": 0, "failed_to_download": 0, "failed_to_resize": 0}
    for path in sorted(Path(output_folder).glob("*_stats.json")):
        stats = json.loads(path.read_text())
        for key in totals:
            totals[key] += int(stats.get(key, 0))
    return totals


def count_failures(results: pd.DataFrame) -> tuple[Counter, Counter]:
    """(count per reason, count per img2dataset error message) over the failed samples."""
    reasons: Counter = Counter()
    messages: Counter = Counter()
    for status, message in zip(results["status"], results["error_message"]):
        reason = failure_reason(status, message)
        if reason is not None:
            reasons[reason] += 1
            messages[str(message)] += 1
    return reasons, messages


def top_errors(messages: Counter, limit: int = TOP_ERRORS) -> list[str]:
    """The most frequent error messages as 'N x message', most frequent first."""
    ranked = sorted(messages.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
    return [f"{count} x {message}" for message, count in ranked]


def reason_table(counts: Counter, reasons: tuple[str, ...]) -> dict[str, int]:
    """All reasons present (zeros included) so every report has the same keys."""
    unknown = set(counts) - set(reasons)
    if unknown:
        raise AssertionError(f"unexpected failure reasons {sorted(unknown)}")
    return {reason: int(counts.get(reason, 0)) for reason in reasons}


def samples_per_shard(rows: int, processes: int, cap: int = 10_000) -> int:
    """Samples per img2dataset shard so that every process gets work (a shard is one task)."""
    per_process = -(-rows // max(1, 2 * processes))
    return max(1, min(cap, per_process))
