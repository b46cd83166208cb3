"""Image embeddings for the attack, in the order of the given paths."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError
from torch import Tensor, nn
from tqdm import tqdm

from pipeline.attack.text_encoding import encoding_autocast, inference_mode
from pipeline.core.errors import PipelineError


def load_image(path: Path, preprocess: Callable) -> Tensor:
    """One preprocessed RGB image; a missing or unreadable file is a user-fixable error."""
    try:
        with Image.open(path) as img:
            return preprocess(img.convert("RGB"))
    except FileNotFoundError:
        raise PipelineError(f"image not found: {path}") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise PipelineError(f"cannot read image {path}: {exc}") from None


class _ImageFiles(torch.utils.data.Dataset):
    """Preprocessed images by index, for a DataLoader whose workers decode in parallel."""

    def __init__(self, paths: list[Path], preprocess: Callable):
        self.paths, self.preprocess = [Path(p) for p in paths], preprocess

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> Tensor:
        return load_image(self.paths[i], self.preprocess)


def _batches(paths: list[Path], preprocess: Callable, batch_size: int, workers: int, pin: bool):
    if workers <= 0:  # in-process, in order: the exact behaviour without a DataLoader
        for start in range(0, len(paths), batch_size):
            yield torch.stack([load_image(Path(p), preprocess) for p in paths[start:start + batch_size]])
        return
    loader = torch.utils.data.DataLoader(_ImageFiles(paths, preprocess), batch_size=batch_size, shuffle=False,
                                         num_workers=workers, pin_memory=pin, persistent_workers=False)
    try:
        yield from loader
    except PipelineError as exc:  # a worker's error arrives with its traceback: keep the one line
        raise PipelineError(str(exc).strip().splitlines()[-1].split("PipelineError: ", 1)[-1]) from None


def encode_images(model: nn.Module, preprocess: Callable, paths: list[Path], batch_size: int,
                  device: torch.device | str, *, progress: str | None = "images",
                  normalize: bool = True, workers: int = 0, bf16: bool = False) -> Tensor:
    """Float32 image embeddings [n, d] (on CPU), row i for paths[i]; L2-normalised unless
    normalize=False (the image defense's target is a mean of raw embeddings).

    workers > 0 decodes and preprocesses in that many DataLoader processes (same order, same
    pixels); bf16=True encodes under bf16 autocast when `device` is CUDA.
    """
    if not paths:
        raise ValueError("encode_images needs at least one path")
    device = torch.device(device)
    chunks = []
    with inference_mode(model):
        batches = _batches(list(paths), preprocess, batch_size, workers, pin=device.type == "cuda")
        total = -(-len(paths) // batch_size)
        for batch in tqdm(batches, total=total, desc=progress, unit="batch", disable=progress is None):
            with encoding_autocast(device, bf16):
                emb = model.encode_image(batch.to(device, non_blocking=True))
            emb = emb.float()
            chunks.append((F.normalize(emb, dim=-1) if normalize else emb).cpu())
    return torch.cat(chunks)
