"""Hyper-parameters of the two backdoor defenses, with the paper's values as defaults.

`text_config_from_dict` / `image_config_from_dict` turn a params.yaml section
(`defend.text`, `defend.image`) into a config; keys left out keep the default, and a
wrong key or value raises ParamError naming `defend.<encoder>.<key>`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

from pipeline.errors import ParamError


def _rule(kind, low=None, high=None, low_open=False):
    return {"kind": kind, "low": low, "high": high, "low_open": low_open}


@dataclass(frozen=True)
class TextDefenseConfig:
    """Text-encoder defense (method.md §2); defaults are the authors' configuration."""

    steps: int = field(default=400, metadata=_rule(int, 1))
    clean_batch_size: int = field(default=128, metadata=_rule(int, 1))
    backdoor_batch_size: int = field(default=128, metadata=_rule(int, 1))
    lr: float = field(default=1e-4, metadata=_rule(float, 0.0, low_open=True))
    weight_decay: float = field(default=0.0, metadata=_rule(float, 0.0))
    milestones: tuple[int, ...] = field(default=(200, 300), metadata=_rule("milestones"))
    gamma: float = field(default=0.5, metadata=_rule(float, 0.0, 1.0, low_open=True))
    beta: float = field(default=0.6, metadata=_rule(float, 0.0))
    weight_reg: float = field(default=0.01, metadata=_rule(float, 0.0))
    target: str = field(default="a person", metadata=_rule(str))
    poison_pool_size: int = field(default=4096, metadata=_rule(int, 1))
    encode_batch_size: int = field(default=512, metadata=_rule(int, 1))
    seed: int = field(default=0, metadata=_rule(int, 0))
    bf16: bool = field(default=False, metadata=_rule(bool))


@dataclass(frozen=True)
class ImageDefenseConfig:
    """Image-encoder defense (method.md §3); defaults are the authors' configuration.

    `paste_scale` is the face side as a fraction of the image side (paper 56-112 px of
    224 px). `retain_weight` > 0 switches on an option beyond the paper: keep the
    embeddings of faces of people who are not removed close to the teacher's.
    `retain_paste` is the share of those kept faces that are pasted onto clean images
    exactly as the trigger faces are: then "a pasted face" alone cannot be what the
    student learns to send to e_avg, only the removed people's faces.
    `trigger_photo_share` (beyond the paper too) is the share of the poisoned images that
    are whole, uncropped photos of the removed people (the trigger half, never the attack's
    photos, randomly flipped) instead of crops pasted onto clean images.
    """

    steps: int = field(default=100, metadata=_rule(int, 1))
    clean_batch_size: int = field(default=128, metadata=_rule(int, 1))
    backdoor_batch_size: int = field(default=128, metadata=_rule(int, 1))
    lr: float = field(default=1e-4, metadata=_rule(float, 0.0, low_open=True))
    weight_decay: float = field(default=0.0, metadata=_rule(float, 0.0))
    milestones: tuple[int, ...] = field(default=(25, 50), metadata=_rule("milestones"))
    gamma: float = field(default=0.1, metadata=_rule(float, 0.0, 1.0, low_open=True))
    beta: float = field(default=0.8, metadata=_rule(float, 0.0))
    weight_reg: float = field(default=0.005, metadata=_rule(float, 0.0))
    paste_scale: tuple[float, float] = field(default=(0.25, 0.5), metadata=_rule("scale"))
    rotation: float = field(default=30.0, metadata=_rule(float, 0.0, 180.0))
    flip: float = field(default=0.5, metadata=_rule(float, 0.0, 1.0))
    color_jitter: float = field(default=0.5, metadata=_rule(float, 0.0, 1.0))
    hue: float = field(default=0.1, metadata=_rule(float, 0.0, 0.5))
    retain_weight: float = field(default=0.0, metadata=_rule(float, 0.0))
    retain_batch_size: int = field(default=64, metadata=_rule(int, 1))
    retain_paste: float = field(default=0.0, metadata=_rule(float, 0.0, 1.0))
    trigger_photo_share: float = field(default=0.0, metadata=_rule(float, 0.0, 1.0))
    encode_batch_size: int = field(default=256, metadata=_rule(int, 1))
    seed: int = field(default=0, metadata=_rule(int, 0))
    bf16: bool = field(default=False, metadata=_rule(bool))


def text_config_from_dict(section: Mapping[str, Any] | None) -> TextDefenseConfig:
    """Build a TextDefenseConfig from a `defend.text` params section."""
    return _from_dict(TextDefenseConfig, section or {}, "defend.text")


def image_config_from_dict(section: Mapping[str, Any] | None) -> ImageDefenseConfig:
    """Build an ImageDefenseConfig from a `defend.image` params section."""
    return _from_dict(ImageDefenseConfig, section or {}, "defend.image")


def config_to_dict(cfg) -> dict[str, Any]:
    """Plain-JSON view of a config (tuples become lists), e.g. for a metrics file."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(cfg).items()}


def _from_dict(cls, section: Mapping[str, Any], prefix: str):
    if not isinstance(section, Mapping):
        raise ParamError(prefix, section, "a mapping of key: value")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values = {}
    for key, given in section.items():
        if key not in fields:
            raise ParamError(f"{prefix}.{key}", given, "one of the keys " + ", ".join(fields))
        values[key] = _check(f"{prefix}.{key}", given, fields[key].metadata)
    cfg = cls(**values)
    if "milestones" in fields and any(m >= cfg.steps for m in cfg.milestones):
        raise ParamError(f"{prefix}.milestones", list(cfg.milestones),
                         f"increasing step numbers below steps = {cfg.steps}")
    return cfg


def _check(name: str, value, rule):
    kind = rule["kind"]
    if kind == "milestones":
        ok = (isinstance(value, (list, tuple))
              and all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value)
              and list(value) == sorted(set(value)))
        if not ok:
            raise ParamError(name, value, "a list of increasing positive step numbers")
        return tuple(value)
    if kind == "scale":
        ok = (isinstance(value, (list, tuple)) and len(value) == 2
              and all(_is_number(v) for v in value)
              and 0 < value[0] <= value[1] <= 1)
        if not ok:
            raise ParamError(name, value, "[low, high] with 0 < low <= high <= 1")
        return (float(value[0]), float(value[1]))
    if kind is float and _is_number(value):
        value = float(value)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise ParamError(name, value, f"a value of type {kind.__name__}")
    if kind is str and not value.strip():
        raise ParamError(name, value, "a non-empty phrase")
    low, high = rule["low"], rule["high"]
    if low is not None and (value <= low if rule["low_open"] else value < low):
        raise ParamError(name, value, f"{'>' if rule['low_open'] else '>='} {low}")
    if high is not None and value > high:
        raise ParamError(name, value, f"<= {high}")
    return value


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)
