"""The process that runs img2dataset for run_img2dataset (`python -m pipeline.data.download_worker SPEC`).

SPEC is the JSON of img2dataset.download's keyword arguments. run_img2dataset starts this
process as the leader of a new session, so img2dataset's workers (all in its process group)
can be ended together with os.killpg, and waits for the group whenever the stage ends.

If the stage dies without cleaning up (SIGKILL), two things end the group:
- stdin is a pipe whose only writer is the stage: EOF means the stage is gone, and a
  watchdog thread then SIGTERMs the whole group (and SIGKILLs it if this process outlives that).
  One killpg reaches every member, also those that never run this module (pyspark's JVM);
  multiprocessing's resource tracker ignores SIGTERM, outlives the others and removes their
  semaphores. The leader itself has no PR_SET_PDEATHSIG: the kernel's SIGKILL would beat
  its watchdog.
- img2dataset's workers re-import this module as `__mp_main__` (spawn start method); there
  a watchdog thread ends the worker once this leader is gone, so none outlives it.
  (Not PR_SET_PDEATHSIG: the kernel ties it to the *thread* that started the child, and
  multiprocessing's pool starts replacement workers from a helper thread. When the pool
  ends that thread, its workers were SIGKILLed while one held the task queue's lock, and
  Pool.terminate then waited on that lock for ever: the demo's download hung after its
  last shard.)

Keep the imports here light: every worker imports this module.
"""
from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time

LEADER_ENV = "PIPELINE_DOWNLOAD_LEADER"   # the leader's pid, for its workers
INTERRUPTED = 130                         # img2dataset's own Ctrl-C handler ran (it exits 0)
SPARK_MASTER_KEY = "_spark_master"        # in SPEC: start a Spark session there (not img2dataset's argument)


def die_with_parent(parent: int, every: float = 1.0) -> None:
    """End this process (exit 1) once `parent` is no longer its parent: polled by a daemon thread."""
    def watch():
        while os.getppid() == parent:
            time.sleep(every)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="leader-watch").start()


def _watch_lifeline(fd: int) -> None:
    try:
        while os.read(fd, 4096):
            pass
    except OSError:
        pass
    # the stage is gone: the whole group, this process included (SIGTERM kills it at once,
    # unless a library gave it a handler: then SIGKILL after a grace)
    os.killpg(0, signal.SIGTERM)
    time.sleep(3)
    os.killpg(0, signal.SIGKILL)


def main(argv: list[str]) -> int:
    spec = json.loads(argv[1])
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the group's SIGTERM must end this process
    os.environ[LEADER_ENV] = str(os.getpid())
    threading.Thread(target=_watch_lifeline, args=(sys.stdin.fileno(),), daemon=True,
                     name="lifeline").start()
    import img2dataset  # heavy (cv2, albumentations)

    spark = start_spark(spec.pop(SPARK_MASTER_KEY)) if SPARK_MASTER_KEY in spec else None
    try:
        img2dataset.download(**spec)
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise
        # Its Ctrl-C handler exits with status 0, which would look like success.
        return INTERRUPTED
    finally:
        if spark is not None:
            spark.stop()
    return 0


def start_spark(master: str):
    """The Spark session img2dataset's pyspark distributor then finds and uses (it creates its
    own local one only when none is active). No web UI: a stage needs no port. Spark's Python
    workers run this interpreter (it has img2dataset; Spark's default, `python3` on PATH, may
    not) unless PYSPARK_PYTHON names the executors' own, as on a cluster."""
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)   # read when the SparkContext starts
    return (SparkSession.builder.master(master).appName("img2dataset")
            .config("spark.ui.enabled", "false")
            .getOrCreate())


if __name__ == "__main__":
    sys.exit(main(sys.argv))
elif __name__ == "__mp_main__" and os.environ.get(LEADER_ENV, "").isdigit():
    die_with_parent(int(os.environ[LEADER_ENV]))
