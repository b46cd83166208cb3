"""The removed people's trigger photos, as both defenses read them: the whole FaceScrub photos
behind the splits' trigger faces (or a removal request's own photos), never the attack's."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch

from pipeline.core.errors import PipelineError
from pipeline.models.image_encoding import encode_images

FACE_BATCH = 64   # photos per forward pass; a person has a few dozen at most


def trigger_photo_paths(names: list[str], faces: pd.DataFrame, index: pd.DataFrame) -> list[list[str]]:
    """Per name, the uncropped photos of its trigger faces. faces: trigger_faces.csv (name, path),
    with a `photo` column where a removal request brought its own photos; index: the FaceScrub
    index (face -> image)."""
    photo_of = dict(zip(index["face"], index["image"]))
    if "photo" in faces:
        photo_of.update(zip(faces["path"], faces["photo"]))
    return [[photo_of[f] for f in faces.loc[faces["name"] == n, "path"]] for n in names]


def trigger_photo_embeddings(model: torch.nn.Module, preprocess, names: list[str], trigger_faces: Path | pd.DataFrame,
                             facescrub_index: Path, device: str | torch.device) -> dict[str, torch.Tensor]:
    """Per name, the model's mean (unit) embedding of its trigger photos: the face the text
    defense's face push keeps the name's poisoned captions away from."""
    faces = trigger_faces if isinstance(trigger_faces, pd.DataFrame) else pd.read_csv(trigger_faces)
    paths = trigger_photo_paths(names, faces, pd.read_parquet(facescrub_index))
    empty = [n for n, p in zip(names, paths) if not p]
    if empty:
        raise PipelineError(f"face push: no trigger photo of {empty[0]!r} in the trigger faces "
                            f"({len(empty)} removed people without one); set defend.text.face_push: 0 to train without")
    return {n: encode_images(model, preprocess, [Path(x) for x in p], FACE_BATCH, device, progress=None).mean(dim=0)
            for n, p in zip(names, paths)}
