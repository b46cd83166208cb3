"""Outputs appear whole or not at all.

Every stage writes into a temporary sibling folder/file and renames it into place at
the end, so a failed or killed stage never leaves a half-written output that DVC
could cache, and a rerun starts clean.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def atomic_dir(target: Path | str) -> Iterator[Path]:
    """Yield an empty temporary folder that replaces `target` when the block succeeds."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; outputs should read like any other folder
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if target.exists():
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        else:
            target.unlink()
    os.replace(tmp, target)


@contextlib.contextmanager
def atomic_file(target: Path | str, mode: str = "w") -> Iterator:
    """Open a temporary file that replaces `target` when the block succeeds."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.tmp-", dir=target.parent)
    try:
        with os.fdopen(fd, mode) as fh:
            yield fh
    except BaseException:
        os.unlink(tmp)
        raise
    os.replace(tmp, target)


def write_json(target: Path | str, obj) -> None:
    """Write JSON atomically, keys sorted so equal metrics give equal bytes."""
    with atomic_file(target) as fh:
        json.dump(obj, fh, indent=2, sort_keys=True)
        fh.write("\n")


def remove_leftovers(target: Path | str) -> None:
    """Remove what a killed run left next to `target` (the `.<name>.tmp-*` of atomic_dir/file)."""
    target = Path(target)
    if not target.parent.is_dir():
        return
    for path in target.parent.glob(f".{target.name}.tmp-*"):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def clean_stale_tmp(parent: Path | str) -> None:
    """Remove temporaries a killed run left behind (`.<name>.tmp-*`)."""
    parent = Path(parent)
    if not parent.is_dir():
        return
    for p in parent.glob(".*.tmp-*"):
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
