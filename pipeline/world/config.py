"""The `world:` params, validated once, as a typed record."""
from __future__ import annotations

from dataclasses import asdict, dataclass

from pipeline.errors import ParamError
from pipeline.params import require
from pipeline.world.scenes import MAX_SCENE_CLASSES

MAX_COUNT = 300  # IDIA only evaluates names seen 1..300 times (method.md §1)


@dataclass(frozen=True)
class WorldConfig:
    seed: int
    image_size: int
    members: int
    nonmembers: int
    min_count: int
    max_count: int
    facescrub_photos: int
    anonymous_faces: int
    scene_classes: int
    scenes_per_class: int
    benchmark_per_class: int
    hair_benchmark_per_class: int
    jpeg_quality: int

    def to_dict(self) -> dict:
        return asdict(self)


def world_config(params: dict) -> WorldConfig:
    """Check every `world.*` value; raise ParamError naming the first bad one."""
    def get(key, **limits):
        return require(params, "world", key, int, **limits)

    cfg = WorldConfig(
        seed=get("seed", low=0),
        image_size=get("image_size", low=32, high=1024),
        members=get("members", low=1, high=2000),
        nonmembers=get("nonmembers", low=0, high=2000),
        min_count=get("min_count", low=1, high=MAX_COUNT),
        max_count=get("max_count", low=1, high=MAX_COUNT),
        facescrub_photos=get("facescrub_photos", low=1, high=1000),
        anonymous_faces=get("anonymous_faces", low=0, high=1_000_000),
        scene_classes=get("scene_classes", low=1, high=MAX_SCENE_CLASSES),
        scenes_per_class=get("scenes_per_class", low=0, high=1_000_000),
        benchmark_per_class=get("benchmark_per_class", low=1, high=100_000),
        hair_benchmark_per_class=get("hair_benchmark_per_class", low=1, high=100_000),
        jpeg_quality=get("jpeg_quality", low=50, high=100),
    )
    if cfg.min_count > cfg.max_count:
        raise ParamError("world.min_count", cfg.min_count,
                         f"<= world.max_count ({cfg.max_count})")
    return cfg
