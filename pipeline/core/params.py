"""Reading params.yaml: one section per stage, each validated by its schema when it is loaded.

The schemas (`pipeline.core.params_schema`) are pydantic dataclasses with strict types: an unknown
key (a typo such as `evaluate.worker`), a wrong type, a value out of range, a duplicate in
a list of K, or a model shape open_clip cannot build is refused before any work starts, in
one line that names the key and what is allowed.
"""
from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any

import yaml

from pipeline.core.errors import ParamError, PipelineError

PARAMS_FILE = Path("params.yaml")


class Rule(ValueError):
    """A rule across fields broken inside a schema: which key (relative to the schema), what is allowed."""

    def __init__(self, key: str, given, allowed: str):
        super().__init__(f"{key}: {allowed}")
        self.key, self.given, self.allowed = key, given, allowed


def load_params(section: str | None = None, path: Path | str = PARAMS_FILE) -> dict[str, Any]:
    """Return the whole params file, or one stage's section of it, validated by its schema.

    Sections are returned as plain dicts with every default filled in."""
    from pipeline.core.params_schema import SECTIONS

    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"params file not found: {path} (run stages from the repository root)")
    try:
        with path.open() as fh:
            params = yaml.safe_load(fh) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise PipelineError(f"{where}: not valid YAML ({getattr(exc, 'problem', None) or exc})") from None
    if not isinstance(params, dict):
        raise PipelineError(f"{path}: expected a mapping of sections (world:, splits:, ...), got {type(params).__name__}")
    unknown = sorted(set(params) - set(SECTIONS))
    if unknown:
        raise ParamError(unknown[0], params[unknown[0]], "one of the sections " + ", ".join(SECTIONS))
    if section is None:
        return {name: validate(name, value) for name, value in params.items()}
    if section not in params:
        raise ParamError(section, None, f"a '{section}:' section in {path}")
    return validate(section, params[section])


def validate(section: str, value) -> dict[str, Any]:
    """One section checked against its schema; a plain dict with the defaults filled in."""
    from pipeline.core.params_schema import SECTIONS

    return _as_plain(check(SECTIONS[section], value, section))


def check(schema, value, prefix: str):
    """An instance of the pydantic dataclass `schema` built from a params mapping, or a ParamError."""
    from pydantic import ValidationError

    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise ParamError(prefix, value, "a mapping of key: value")
    try:
        return schema(**value)
    except ValidationError as exc:
        raise _to_param_error(exc, schema, prefix, value) from None


def require(section: dict, prefix: str, key: str, kind: type | tuple[type, ...],
            *, low=None, high=None, choices=None):
    """Fetch section[key], checking its type and range; raise ParamError naming `prefix.key`.

    (Sections from load_params are already validated; this stays for mappings built in code.)"""
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


def _as_plain(obj):
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _as_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {k: _as_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_as_plain(v) for v in obj]
    return obj


_ALLOWED = {
    "int_type": "an integer", "float_type": "a number", "bool_type": "true or false",
    "string_type": "a string", "list_type": "a list", "tuple_type": "a list",
    "dict_type": "a mapping of key: value", "dataclass_type": "a mapping of key: value",
    "missing_argument": "a value (the key is required)", "missing": "a value (the key is required)",
}


def _to_param_error(exc, schema, prefix: str, value) -> ParamError:
    err = exc.errors(include_url=False)[0]
    loc = list(err["loc"])
    kind, ctx = err["type"], err.get("ctx") or {}
    rule = ctx.get("error")
    if isinstance(rule, Rule):
        return ParamError(_dotted(prefix, loc + ([rule.key] if rule.key else [])), rule.given, rule.allowed)
    given = _lookup(value, loc)
    if kind in ("unexpected_keyword_argument", "extra_forbidden"):
        keys = _fields_at(schema, loc[:-1])
        return ParamError(_dotted(prefix, loc), given, "one of the keys " + ", ".join(keys))
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        sign = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=", "less_than": "<"}[kind]
        bound = next(iter(ctx.values()), "")
        return ParamError(_dotted(prefix, loc), given, f"{sign} {bound}")
    if kind == "literal_error":
        expected = str(ctx.get("expected", "")).replace(" or ", ", ")
        return ParamError(_dotted(prefix, loc), given, f"one of {expected}")
    if kind == "too_short":
        return ParamError(_dotted(prefix, loc), given, "a non-empty list")
    allowed = _ALLOWED.get(kind) or err["msg"].replace("Value error, ", "")
    return ParamError(_dotted(prefix, loc), given, allowed)


def _dotted(prefix: str, loc: list) -> str:
    text = prefix
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text


def _lookup(value, loc: list):
    for part in loc:
        try:
            value = value[part]
        except (KeyError, IndexError, TypeError):
            return None
    return value


def _fields_at(schema, loc: list) -> list[str]:
    """Field names of the schema reached by following `loc` (dict keys and list indexes skipped)."""
    node = schema
    for part in loc:
        fields = getattr(node, "__pydantic_fields__", None)
        if fields is None:
            return []
        if part not in fields:
            continue  # a mapping key or list index inside a container field
        node = _schema_in(fields[part].annotation)
        if node is None:
            return []
    return list(getattr(node, "__pydantic_fields__", {}))


def _schema_in(annotation):
    if hasattr(annotation, "__pydantic_fields__"):
        return annotation
    for arg in typing.get_args(annotation):
        found = _schema_in(arg)
        if found is not None:
            return found
    return None
