"""Image files as uint8 tensors, the form the defenses train on."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from pipeline.errors import PipelineError


def read_uint8(path: Path | str, size: int | None = None) -> torch.Tensor:
    """[3, h, w] uint8 RGB; resized (bicubic) to size x size when given."""
    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
            if size is not None and img.size != (size, size):
                img = img.resize((size, size), Image.BICUBIC)
            return torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1)
    except FileNotFoundError:
        raise PipelineError(f"image not found: {path}") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise PipelineError(f"cannot read image {path}: {exc}") from None


def read_many(paths, size: int | None = None, desc: str = "images") -> list[torch.Tensor]:
    return [read_uint8(p, size) for p in tqdm(list(paths), desc=desc, unit="img", leave=False)]


def stack_uint8(paths, size: int, desc: str = "images") -> torch.Tensor:
    """[n, 3, size, size] uint8 for equally-sized training batches."""
    return torch.stack(read_many(paths, size, desc))
