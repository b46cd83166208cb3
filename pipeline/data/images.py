"""Image files as uint8 tensors, the form the defenses train on."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from pipeline.core.errors import PipelineError


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


class FileImages:
    """Image files as a lazy uint8 [N, 3, size, size] source: a slice or index tensor reads
    only those files. Lets e_avg run over every FaceScrub photo (about 100k at paper scale,
    15 GB decoded) without holding them all in memory."""

    dtype = torch.uint8

    def __init__(self, paths, size: int):
        self.paths = [Path(p) for p in paths]
        self.size = size

    def __len__(self) -> int:
        return len(self.paths)

    def dim(self) -> int:
        return 4

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.paths), 3, self.size, self.size)

    def prefetch(self, indices) -> None:
        """Nothing to do: files are read when indexed (kept for the lazy-source interface)."""

    def __getitem__(self, index) -> torch.Tensor:
        rows = range(len(self.paths))[index] if isinstance(index, slice) else torch.as_tensor(index).tolist()
        if isinstance(rows, int):
            return read_uint8(self.paths[rows], self.size)
        if len(rows) == 0:
            return torch.zeros(0, 3, self.size, self.size, dtype=torch.uint8)
        return torch.stack([read_uint8(self.paths[i], self.size) for i in rows])
