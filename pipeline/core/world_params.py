"""The `world:` params, validated once, as a typed record."""
from __future__ import annotations

import dataclasses
from typing import Annotated, Literal

from pydantic import Field
from pydantic.dataclasses import dataclass

from pipeline.core.params import Rule, check
from pipeline.core.schema_types import SCHEMA, Int

MAX_SCENE_CLASSES = 16  # 4 colours x 4 shapes; pipeline.world.demo.scenes draws exactly these
MAX_COUNT = 300  # IDIA only evaluates names seen 1..300 times (docs/method.md §1)


def _range(low, high):
    return Annotated[Int, Field(ge=low, le=high)]


@dataclass(frozen=True, config=SCHEMA)
class WorldConfig:
    """What the demo world renderer needs; everything it draws follows from these and the seed."""
    seed: Annotated[Int, Field(ge=0)]
    image_size: _range(32, 1024)
    members: _range(1, 2000)
    nonmembers: _range(0, 2000)
    min_count: _range(1, MAX_COUNT)
    max_count: _range(1, MAX_COUNT)
    facescrub_photos: _range(1, 1000)
    anonymous_faces: _range(0, 1_000_000)
    scene_classes: _range(1, MAX_SCENE_CLASSES)
    scenes_per_class: _range(0, 1_000_000)
    benchmark_per_class: _range(1, 100_000)
    hair_benchmark_per_class: _range(1, 100_000)
    jpeg_quality: _range(50, 100)

    def __post_init__(self):
        if self.min_count > self.max_count:
            raise Rule("min_count", self.min_count, f"<= world.max_count ({self.max_count})")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True, config=SCHEMA)
class WorldParams(WorldConfig):
    """The `world:` section: the renderer's record, and which world to build."""
    source: Literal["demo", "paper"] = "demo"


def world_config(params: dict) -> WorldConfig:
    """Check every `world.*` value; raise ParamError naming the first bad one."""
    checked = check(WorldParams, params, "world")
    return WorldConfig(**{f.name: getattr(checked, f.name) for f in dataclasses.fields(WorldConfig)})
