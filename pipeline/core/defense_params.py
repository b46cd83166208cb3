"""Hyper-parameters of the two backdoor defenses, with the paper's values as defaults.

`text_config_from_dict` / `image_config_from_dict` turn a params.yaml section
(`defend.text`, `defend.image_recipes.<name>`) into a config; keys left out keep the
default, and a wrong key or value raises ParamError naming the key (the one schema
mechanism of `pipeline.core.params`).
"""
from __future__ import annotations

import dataclasses
from typing import Annotated, Any, Literal, Mapping

from pydantic import Field, field_validator
from pydantic.dataclasses import dataclass

from pipeline.core.params import Rule, check
from pipeline.core.schema_types import SCHEMA, Bool, Float, Int, Str

Steps = Annotated[Int, Field(ge=1)]
Rate = Annotated[Float, Field(gt=0)]
NonNeg = Annotated[Float, Field(ge=0)]
Share = Annotated[Float, Field(ge=0, le=1)]
Gamma = Annotated[Float, Field(gt=0, le=1)]
Milestones = tuple[Annotated[Int, Field(ge=1)], ...]
# Spelled out here so that every stage's params do not import the audit and the defenses;
# tests/test_hardening.py checks they are pipeline/audit/variants.FAMILIES and the keys of
# pipeline/defenses/contexts.CONTEXT_FAMILIES.
VariantFamily = Literal["last_first", "first_only", "last_only", "typo", "dropped_letter", "initials_last",
                        "homoglyph"]
ContextFamily = Literal["photo", "event", "portrait", "news", "languages"]
# The audit's photo transforms (pipeline/audit/transforms.TRANSFORMS; same test).
PhotoTransform = Literal["mirrored", "crop_80", "blurred", "jpeg_q30", "grayscale", "downsampled_2x"]


def _check_milestones(cfg) -> None:
    ms = list(cfg.milestones)
    if ms != sorted(set(ms)) or any(m >= cfg.steps for m in ms):
        raise Rule("milestones", ms, f"increasing step numbers below steps = {cfg.steps}")


@dataclass(frozen=True, config=SCHEMA)
class TextDefenseConfig:
    """Text-encoder defense (docs/method.md §2); defaults are the authors' configuration."""

    steps: Steps = 400
    clean_batch_size: Steps = 128
    backdoor_batch_size: Steps = 128
    lr: Rate = 1e-4
    weight_decay: NonNeg = 0.0
    milestones: Milestones = (200, 300)
    gamma: Gamma = 0.5
    beta: NonNeg = 0.6
    weight_reg: NonNeg = 0.01
    target: Str = "a person"
    poison_pool_size: Steps = 4096
    encode_batch_size: Steps = 512
    seed: Annotated[Int, Field(ge=0)] = 0
    bf16: Bool = False
    # The hardened recipe (issue 17, README "Hardened text defense"); the defaults are the
    # paper's: the exact full name, in the clean pool's captions only.
    variant_families: tuple[VariantFamily, ...] = ()   # name-variant families also poisoned (pipeline/audit/variants.py)
    variant_share: Share = 0.5                  # of the poisoned pairs: share naming a variant instead of the name
    variants_per_name: Steps = 4                # typos / dropped letters / homoglyphs drawn per name
    context_families: tuple[ContextFamily, ...] = ()   # extra caption shapes (pipeline/defenses/contexts.py)
    context_share: Share = 0.5                  # of the poisoned pairs: share written in those shapes
    shared_name_parts: Literal["keep", "skip"] = "keep"   # skip: no first/last-only variant a kept candidate shares
    retain_sharers: Annotated[Int, Field(ge=0)] = 0       # clean-pool captions naming kept candidates who share a name part
    # Face push (issue 17): a poisoned caption must not point at the removed person's own face
    # (their trigger photos, under the teacher) more than its target caption does, less face_margin.
    face_push: NonNeg = 0.0                     # weight of that hinge; 0 = off (the paper's recipe)
    face_margin: NonNeg = 0.0                   # how much further from the face than the target

    @property
    def hardened(self) -> bool:
        return bool(self.variant_families or self.context_families or self.retain_sharers or self.face_push)

    @field_validator("target")
    @classmethod
    def _phrase(cls, value):
        if not value.strip():
            raise Rule("", value, "a non-empty phrase")
        return value

    def __post_init__(self):
        _check_milestones(self)


@dataclass(frozen=True, config=SCHEMA)
class ImageDefenseConfig:
    """Image-encoder defense (docs/method.md §3); defaults are the authors' configuration.

    `paste_scale` is the face side as a fraction of the image side (paper 56-112 px of
    224 px). `retain_weight` > 0 switches on an option beyond the paper: keep the
    embeddings of faces of people who are not removed close to the teacher's.
    `trigger_photo_share` (beyond the paper too) is the share of the poisoned images that
    are whole, uncropped photos of the removed people (the trigger half, never the attack's
    photos, randomly flipped) instead of crops pasted onto clean images.
    `photo_transforms` (issue 17 point 5, off in the paper's recipe): a share
    `photo_transform_share` of the poisoned faces and photos is drawn from copies of the
    trigger photos under these audit transforms (pipeline/defenses/photo_augment.py).
    """

    steps: Steps = 100
    clean_batch_size: Steps = 128
    backdoor_batch_size: Steps = 128
    lr: Rate = 1e-4
    weight_decay: NonNeg = 0.0
    milestones: Milestones = (25, 50)
    gamma: Gamma = 0.1
    beta: NonNeg = 0.8
    weight_reg: NonNeg = 0.005
    paste_scale: tuple[Float, Float] = (0.25, 0.5)
    rotation: Annotated[Float, Field(ge=0, le=180)] = 30.0
    flip: Share = 0.5
    color_jitter: Share = 0.5
    hue: Annotated[Float, Field(ge=0, le=0.5)] = 0.1
    retain_weight: NonNeg = 0.0
    retain_batch_size: Steps = 64
    trigger_photo_share: Share = 0.0
    photo_transforms: tuple[PhotoTransform, ...] = ()
    photo_transform_share: Share = 0.5
    encode_batch_size: Steps = 256
    seed: Annotated[Int, Field(ge=0)] = 0
    bf16: Bool = False

    def __post_init__(self):
        _check_milestones(self)
        low, high = self.paste_scale
        if not 0 < low <= high <= 1:
            raise Rule("paste_scale", list(self.paste_scale), "[low, high] with 0 < low <= high <= 1")


def text_config_from_dict(section: Mapping[str, Any] | None) -> TextDefenseConfig:
    """Build a TextDefenseConfig from a `defend.text` params section."""
    return check(TextDefenseConfig, dict(section or {}), "defend.text")


def image_config_from_dict(section: Mapping[str, Any] | None, prefix: str = "defend.image") -> ImageDefenseConfig:
    """Build an ImageDefenseConfig from a `defend.image_recipes.<name>` params section."""
    return check(ImageDefenseConfig, dict(section or {}), prefix)


HARDENING_FIELDS = ("variant_families", "variant_share", "variants_per_name", "context_families",
                    "context_share", "shared_name_parts", "retain_sharers", "face_push", "face_margin")
IMAGE_HARDENING_FIELDS = ("photo_transforms", "photo_transform_share")


def config_to_dict(cfg) -> dict[str, Any]:
    """Plain-JSON view of a config (tuples become lists), e.g. for a metrics file. A text
    config (and an image config) records the hardened recipe's fields only when it is switched
    on, so a paper-recipe run writes what it wrote before the option existed."""
    out = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(cfg).items()}
    if isinstance(cfg, TextDefenseConfig) and not cfg.hardened:
        out = {k: v for k, v in out.items() if k not in HARDENING_FIELDS}
    if isinstance(cfg, ImageDefenseConfig) and not cfg.photo_transforms:
        out = {k: v for k, v in out.items() if k not in IMAGE_HARDENING_FIELDS}
    return out
