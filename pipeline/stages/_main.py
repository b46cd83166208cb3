"""Shared wrapper for stage entry points: user errors become one line, exit code 2."""
from __future__ import annotations

import os
import sys
from typing import Callable

from pipeline.errors import PipelineError


def run_stage(fn: Callable[[], None]) -> None:
    # Offline-safe defaults: a hub lookup fails at once instead of retrying for a minute.
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")
    try:
        fn()
    except PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
