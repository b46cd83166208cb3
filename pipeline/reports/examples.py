"""Examples of the training data the defenses poison: faces pasted into clean images, and
caption pairs with a name and with the target phrase. Both use the defenses' own code."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from pipeline.core.errors import PipelineError

PASTE_KEYS = ("paste_scale", "rotation", "flip", "color_jitter", "hue")


@dataclass
class ImageExamples:
    images: np.ndarray          # uint8 [n, H, W, 3]
    names: list[str]            # whose face is pasted into each image
    config_source: str          # where the paste settings came from


def poisoned_images(root: Path, names: Sequence[str], image_config: dict | None, n: int,
                    seed: int, config_source: str) -> ImageExamples | None:
    """Trigger faces of `names` pasted into clean training images, as the image defense does it.

    Returns None when an input is missing (no shards, no trigger faces for the names).
    """
    import torch

    from pipeline.data.images import read_many
    from pipeline.core.defense_params import image_config_from_dict
    from pipeline.defenses.image_defense import render_poisoned_examples
    from pipeline.models.shards import read_shards

    faces_csv = root / "data/splits/trigger_faces.csv"
    captions = root / "data/splits/clean_captions.parquet"
    shards = root / "data/laion/shards"
    if n <= 0 or not names or not faces_csv.is_file() or not captions.is_file() or not shards.is_dir():
        return None
    faces = pd.read_csv(faces_csv)
    names = [nm for nm in names if (faces["name"] == nm).any()]
    if not names:
        return None
    try:
        images, _, keys = read_shards(shards)
    except PipelineError:
        return None
    clean = pd.read_parquet(captions)
    train_keys = set(clean.loc[clean["split"] == "train", "key"].astype(str))
    idx = [i for i, k in enumerate(keys) if k in train_keys]
    if not idx:
        return None
    trigger = [read_many([root / p if not Path(p).is_absolute() else Path(p)
                          for p in faces.loc[faces["name"] == nm, "path"]], desc="trigger faces")
               for nm in names]
    # Only the paste settings matter here; the training keys are checked by the defend stage.
    paste = {k: v for k, v in (image_config or {}).items() if k in PASTE_KEYS}
    try:
        cfg = image_config_from_dict(paste)
    except PipelineError:
        cfg = image_config_from_dict({})
    out = render_poisoned_examples(images[torch.tensor(idx)], trigger, cfg, n=n, seed=seed)
    return ImageExamples(out.permute(0, 2, 3, 1).numpy(), [names[i % len(names)] for i in range(n)],
                         config_source)


NAME_LIKE = re.compile(r"\b[A-Z][a-z]+(?:[ '-][A-Z][a-z]+)+\b")


def poisoned_captions(root: Path, names: Sequence[str], target: str, n: int, seed: int,
                      avoid_names: bool = False):
    """A few (trigger caption, target caption) pairs from the clean training captions.

    avoid_names: draw only from captions without name-like capitalised word pairs (other
    people's names in the clean pool), unless that leaves none.
    """
    from pipeline.defenses.poisoned_captions import example_poisoned_captions

    path = root / "data/splits/clean_captions.parquet"
    if n <= 0 or not names or not path.is_file():
        return []
    clean = pd.read_parquet(path)
    train = clean.loc[clean["split"] == "train", "caption"].astype(str).tolist()
    if avoid_names:
        train = [c for c in train if not NAME_LIKE.search(c)] or train
    try:
        return example_poisoned_captions(train, list(names), target, n=n, seed=seed)
    except PipelineError:
        return []
