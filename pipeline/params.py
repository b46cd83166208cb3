"""Reading params.yaml: one section per stage, validated when a stage starts."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from pipeline.errors import ParamError, PipelineError

PARAMS_FILE = Path("params.yaml")


def load_params(section: str | None = None, path: Path | str = PARAMS_FILE) -> dict[str, Any]:
    """Return the whole params file, or one stage's section of it."""
    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"params file not found: {path} (run stages from the repository root)")
    with path.open() as fh:
        params = yaml.safe_load(fh) or {}
    if section is None:
        return params
    if section not in params:
        raise ParamError(section, None, f"a '{section}:' section in {path}")
    return params[section]


def require(section: dict, prefix: str, key: str, kind: type | tuple[type, ...],
            *, low=None, high=None, choices=None):
    """Fetch section[key], checking its type and range; raise ParamError naming `prefix.key`."""
    name = f"{prefix}.{key}"
    if key not in section:
        raise ParamError(name, None, f"a value of type {_kind_name(kind)}")
    value = section[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise ParamError(name, value, f"a value of type {_kind_name(kind)}")
    if choices is not None and value not in choices:
        raise ParamError(name, value, "one of " + ", ".join(map(repr, choices)))
    if low is not None and value < low:
        raise ParamError(name, value, f">= {low}")
    if high is not None and value > high:
        raise ParamError(name, value, f"<= {high}")
    return value


def _kind_name(kind) -> str:
    if isinstance(kind, tuple):
        return " or ".join(k.__name__ for k in kind)
    return kind.__name__
