"""Image embeddings for the attack, in the order of the given paths."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError
from torch import Tensor, nn
from tqdm import tqdm

from pipeline.attack.text_encoding import inference_mode
from pipeline.errors import PipelineError


def load_image(path: Path, preprocess: Callable) -> Tensor:
    """One preprocessed RGB image; a missing or unreadable file is a user-fixable error."""
    try:
        with Image.open(path) as img:
            return preprocess(img.convert("RGB"))
    except FileNotFoundError:
        raise PipelineError(f"image not found: {path}") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise PipelineError(f"cannot read image {path}: {exc}") from None


def encode_images(model: nn.Module, preprocess: Callable, paths: list[Path], batch_size: int,
                  device: torch.device | str, *, progress: str | None = "images",
                  normalize: bool = True) -> Tensor:
    """Float32 image embeddings [n, d] (on CPU), row i for paths[i]; L2-normalised unless
    normalize=False (the image defense's target is a mean of raw embeddings)."""
    if not paths:
        raise ValueError("encode_images needs at least one path")
    chunks = []
    with inference_mode(model):
        starts = range(0, len(paths), batch_size)
        for start in tqdm(starts, desc=progress, unit="batch", disable=progress is None):
            batch = torch.stack([load_image(Path(p), preprocess) for p in paths[start:start + batch_size]])
            emb = model.encode_image(batch.to(device))
            emb = emb.float()
            chunks.append((F.normalize(emb, dim=-1) if normalize else emb).cpu())
    return torch.cat(chunks)
