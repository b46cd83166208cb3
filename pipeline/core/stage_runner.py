"""Shared wrapper for stage entry points: user errors become one line, exit code 2."""
from __future__ import annotations

import os
import signal
import sys
from typing import Callable

from pipeline.core.errors import PipelineError


class Terminated(SystemExit):
    """SIGTERM as an exception: `with atomic_dir(...)` and `finally` blocks (download workers)
    clean up before the stage exits with 128 + 15, as a shell reports a SIGTERM."""


_HANDLER_PID = None


def _on_sigterm(signum, frame) -> None:
    if os.getpid() != _HANDLER_PID:
        # a forked child inherited the handler: it dies of the signal as it did before
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    signal.signal(signum, signal.SIG_IGN)  # a second SIGTERM must not cut the cleanup short
    raise Terminated(128 + signum)


def run_stage(fn: Callable[[], None]) -> None:
    global _HANDLER_PID
    # Offline-safe defaults: a hub lookup fails at once instead of retrying for a minute.
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")
    _HANDLER_PID = os.getpid()
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        fn()
    except PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except Terminated:
        print("error: stopped by SIGTERM", file=sys.stderr)
        raise
