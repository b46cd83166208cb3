"""The image defense's data, read from the pipeline's files: clean LAION images, the trigger
faces and photos of the people to remove, FaceScrub photos, and kept faces for the retain term."""
from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from pipeline.core.errors import PipelineError
from pipeline.data.images import FileImages, read_many
from pipeline.defenses.trigger_photos import trigger_photo_paths
from pipeline.models.shards import ShardImages


def image_defense_inputs(cfg, names: list[str], train: pd.DataFrame, size: int, *, shards: Path,
                         trigger_faces: Path | pd.DataFrame, facescrub_index: Path, retain_pattern: str) -> dict:
    """Keyword arguments of `train_image_defense` for removing `names`.

    train: the clean pool's training rows (key, caption); size: the model's input side;
    trigger_faces: the splits' trigger_faces.csv (name, path), or a table with a `photo` column
    as well (a removal request's own photos, which have no FaceScrub face box); retain_pattern: captions whose
    images show kept people (`defend.retain_caption_pattern`)."""
    # lazily decoded: only the images the run draws are read (the corpus may be 635k images)
    clean_images = ShardImages(shards, list(train["key"]))
    pattern = re.compile(retain_pattern)
    retain_keys = [k for k, c in zip(train["key"], train["caption"]) if pattern.search(c)]
    if cfg.retain_weight > 0 and not retain_keys:
        raise PipelineError("defend.retain_caption_pattern matches no clean caption; "
                            "the retain term needs faces of people who are kept")
    faces = trigger_faces if isinstance(trigger_faces, pd.DataFrame) else pd.read_csv(trigger_faces)
    face_paths = [list(faces.loc[faces["name"] == n, "path"]) for n in names]
    index = pd.read_parquet(facescrub_index)
    trigger_photos = None
    if cfg.trigger_photo_share > 0:  # the uncropped photos of the trigger half's faces
        trigger_photos = [read_many(paths, desc=f"photos of {n}")
                          for n, paths in zip(names, trigger_photo_paths(names, faces, index))]
    return {"clean_images": clean_images,
            "trigger_faces": [read_many(paths, desc=f"faces of {n}") for n, paths in zip(names, face_paths)],
            "face_photos": FileImages(index["image"], size),  # read batch by batch
            "retain_images": ShardImages(shards, retain_keys) if cfg.retain_weight > 0 else None,
            "trigger_photos": trigger_photos}
