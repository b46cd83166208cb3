"""Outputs appear whole or not at all.

Every stage writes into a temporary folder/file and renames it into place at the end, so a
failed or killed stage never leaves a half-written output that DVC could cache.

Temporaries live in the DVC repository's `.dvc/tmp/staging/`, not next to their target: a
killed run's leftover next to `data/defended/text-k1` would sit inside `data/defended`,
which a later stage may hash as a dependency (a poisoned lock). Outside a DVC repository
(or on another filesystem, where a rename cannot move it) the temporary is a sibling
`.<name>.tmp-*`. Each atomic write first removes its own target's leftovers, so a rerun
after a kill starts clean.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

STAGING = Path(".dvc") / "tmp" / "staging"


def _repo_root(folder: Path) -> Path | None:
    for candidate in (folder, *folder.parents):
        if (candidate / ".dvc").is_dir():
            return candidate
    return None


def _placement(target: Path) -> tuple[Path, str]:
    """(folder for the temporaries of `target`, their name prefix)."""
    parent = target.parent.resolve()
    root = _repo_root(parent)
    if root is not None:
        staging = root / STAGING
        staging.mkdir(parents=True, exist_ok=True)
        if staging.stat().st_dev == parent.stat().st_dev:
            # one prefix per target path: data/defended/text-k1 and data/evaluate/text-k1 differ
            rel = (parent / target.name).relative_to(root).as_posix()
            tag = hashlib.sha256(rel.encode()).hexdigest()[:12]
            return staging, f"{target.name}.{tag}.tmp-"
    return parent, f".{target.name}.tmp-"


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def remove_leftovers(target: Path | str) -> None:
    """Remove what a killed run left for `target` (in the staging folder or next to it)."""
    target = Path(target)
    if not target.parent.is_dir():
        return
    folder, prefix = _placement(target)
    for path in folder.glob(f"{prefix}*"):
        _remove(path)
    for path in target.parent.glob(f".{target.name}.tmp-*"):  # the older sibling layout
        _remove(path)


@contextlib.contextmanager
def atomic_dir(target: Path | str) -> Iterator[Path]:
    """Yield an empty temporary folder that replaces `target` when the block succeeds."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(target)
    folder, prefix = _placement(target)
    tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=folder))
    tmp.chmod(0o755)  # mkdtemp makes it private; outputs should read like any other folder
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if target.exists() or target.is_symlink():
        _remove(target)
    os.replace(tmp, target)


@contextlib.contextmanager
def scratch_dir(near: Path | str) -> Iterator[Path]:
    """A temporary folder placed like atomic_dir's (for several outputs moved in one by one),
    removed when the block ends."""
    near = Path(near)
    near.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(near)
    folder, prefix = _placement(near)
    tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=folder))
    tmp.chmod(0o755)
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def atomic_file(target: Path | str, mode: str = "w") -> Iterator:
    """Open a temporary file that replaces `target` when the block succeeds."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(target)
    folder, prefix = _placement(target)
    fd, tmp = tempfile.mkstemp(prefix=prefix, dir=folder)
    try:
        with os.fdopen(fd, mode) as fh:
            yield fh
    except BaseException:
        os.unlink(tmp)
        raise
    os.chmod(tmp, 0o644)  # mkstemp makes it private
    os.replace(tmp, target)


def write_json(target: Path | str, obj) -> None:
    """Write JSON atomically, keys sorted so equal metrics give equal bytes."""
    with atomic_file(target) as fh:
        json.dump(obj, fh, indent=2, sort_keys=True)
        fh.write("\n")
