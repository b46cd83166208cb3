"""Names from input data or params that become file names: slugged, and checked to stay inside.

Identity names come from lists that users download from third parties; a name such as
`../../x` must never steer a write outside the stage's output folder. The name itself is
kept in the tables; only the folder name is a slug of it.
"""
from __future__ import annotations

import os
import re
import unicodedata
from pathlib import Path

from pipeline.core.errors import PipelineError

# Letters and digits of any script, and . _ - ' : what real names need, nothing a path can use.
_UNSAFE = re.compile(r"[^\w.'-]+")
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
MAX_SLUG = 120


def slug(name: str) -> tuple[str | None, str]:
    """(folder name, why it differs from the name) for an identity name; (None, why) to reject it.

    Whitespace runs become one underscore (FaceScrub's own folder convention), so ordinary
    names keep the folder they always had; anything else a path could interpret becomes an
    underscore, and leading dots and underscores go (no hidden files, no `..`).
    """
    if any(unicodedata.category(c) == "Cc" for c in name):
        return None, "name contains a control character (NUL, tab, newline, ...)"
    text = unicodedata.normalize("NFC", name)
    folder = "_".join(text.split())
    folder = _UNSAFE.sub("_", folder).lstrip("._")
    folder = folder[:MAX_SLUG]
    if not folder or not any(c.isalnum() for c in folder):
        return None, f"name {name!r} has no letter or digit to make a folder name of"
    if folder == "_".join(text.split()):
        return folder, ""
    return folder, f"name {name!r} is stored in folder {folder!r} (characters a path could interpret replaced)"


def check_name(value: str, key: str) -> str:
    """A name from params or the command line that becomes one path component (arch, run, experiment)."""
    if not isinstance(value, str) or not _SAFE_NAME.fullmatch(value) or len(value) > MAX_SLUG:
        raise PipelineError(f"{key} = {value!r} is not allowed as a file name; allowed: letters, digits, "
                            f". _ - (starting with a letter or digit, at most {MAX_SLUG} characters)")
    return value


def inside(root: Path | str, relative: Path | str) -> Path:
    """root / relative, refusing any result that does not resolve under root (links included)."""
    root_real = Path(os.path.realpath(root))
    target = Path(os.path.realpath(Path(root) / relative))
    if target != root_real and root_real not in target.parents:
        raise PipelineError(f"refusing to write {relative!s}: it resolves to {target}, outside {root_real}")
    return Path(root) / relative
