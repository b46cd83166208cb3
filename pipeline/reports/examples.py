"""The examples each defense wrote next to its model (data/examples/<run>/): poisoned images
and poisoned caption pairs. The report shows them as they are; it runs no defense code."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

IMAGE_TABLE = "poisoned_images.csv"      # written by pipeline.defenses.examples
CAPTION_TABLE = "poisoned_captions.csv"


@dataclass
class ImageExamples:
    images: np.ndarray          # uint8 [n, H, W, 3]
    names: list[str]            # whose face or photo each image shows
    kinds: list[str]            # "pasted face" or "whole photo"
    run: str


@dataclass(frozen=True)
class CaptionPair:
    name: str
    trigger: str
    target: str


def poisoned_images(root: Path, run: str) -> ImageExamples | None:
    """The run's poisoned example images, or None when it wrote none."""
    folder = Path(root) / "data/examples" / run
    try:
        table = pd.read_csv(folder / IMAGE_TABLE)
    except (OSError, ValueError, pd.errors.EmptyDataError):
        return None
    if table.empty:
        return None
    images = [np.asarray(Image.open(folder / f).convert("RGB")) for f in table["file"]]
    return ImageExamples(np.stack(images), list(table["name"].astype(str)),
                         list(table.get("kind", pd.Series(["pasted face"] * len(table))).astype(str)), run)


def poisoned_captions(root: Path, run: str) -> list[CaptionPair]:
    """The run's (trigger caption, target caption) examples; empty when it wrote none."""
    try:
        table = pd.read_csv(Path(root) / "data/examples" / run / CAPTION_TABLE)
    except (OSError, ValueError, pd.errors.EmptyDataError):
        return []
    return [CaptionPair(str(r.name), str(r.trigger), str(r.target)) for r in table.itertuples()]
