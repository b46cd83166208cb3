"""Image preprocessing and encoding for every caller (attack, defenses, evaluation, pretraining).

Two inputs occur: image files, preprocessed by open_clip's own validation transform
(the attack and zero-shot see photos as a user of the model would), and uint8 tensors
already in memory (shards, pasted faces), which ImageInput scales, resizes and normalises
on the device with the model's own mean and std.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import open_clip
import torch
import torch.nn.functional as F
from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
from PIL import Image, UnidentifiedImageError
from torch import Tensor, nn
from tqdm import tqdm

from pipeline.core.errors import PipelineError
from pipeline.models.precision import Purpose, autocast, inference_mode


def model_image_size(model) -> int:
    """The side of the model's square input, in pixels."""
    size = model.visual.image_size
    return int(size[0] if isinstance(size, (tuple, list)) else size)


class ImageInput:
    """uint8 [B, 3, h, w] -> normalised float [B, 3, H, W] at the model's input size."""

    def __init__(self, model: open_clip.CLIP, device: torch.device, mean=None, std=None):
        pp = getattr(model.visual, "preprocess_cfg", None) or {}
        mean = mean if mean is not None else pp.get("mean", OPENAI_DATASET_MEAN)
        std = std if std is not None else pp.get("std", OPENAI_DATASET_STD)
        self.mean = torch.tensor(mean, dtype=torch.float32, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32, device=device).view(1, 3, 1, 1)
        size = model.visual.image_size
        self.size = tuple(size) if isinstance(size, (tuple, list)) else (size, size)
        self.device = device

    def unit(self, images: Tensor) -> Tensor:
        """Float in [0, 1] on the device, resized to the model's input size when needed."""
        x = images.to(self.device, non_blocking=True).float().mul_(1 / 255)
        if tuple(x.shape[-2:]) != self.size:
            x = F.interpolate(x, size=self.size, mode="bilinear", antialias=True,
                              align_corners=False).clamp_(0, 1)
        return x

    def normalise_(self, unit_images: Tensor) -> Tensor:
        """Normalise in place (same arithmetic as (x - mean) / std). In place because at
        224 px a fresh [128, 3, 224, 224] tensor costs more in page faults than the maths."""
        return unit_images.sub_(self.mean).div_(self.std)

    def __call__(self, images: Tensor) -> Tensor:
        return self.normalise_(self.unit(images))


@torch.no_grad()
def encode_image_batches(visual: nn.Module, images: Tensor, prep: ImageInput, batch_size: int, *,
                         bf16: bool = False, purpose: Purpose = "measure", desc: str | None = None) -> Tensor:
    """Unnormalised float32 embeddings [N, D] (on prep's device) of uint8 images [N, 3, h, w]
    (a tensor, or anything sliceable into uint8 tensors such as ShardImages / FileImages)."""
    out = []
    for i in tqdm(range(0, len(images), batch_size), desc=desc, disable=desc is None, leave=False):
        with autocast(prep.device, bf16, purpose):
            out.append(visual(prep(images[i:i + batch_size])).float())
    return torch.cat(out)


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


def _file_batches(paths: list[Path], preprocess: Callable, batch_size: int, workers: int, pin: bool):
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
    """Float32 embeddings [n, d] (on the CPU) of image files, row i for paths[i];
    L2-normalised unless normalize=False.

    workers > 0 decodes and preprocesses in that many DataLoader processes (same order, same
    pixels); bf16 follows the precision policy for measurements (CUDA only)."""
    if not paths:
        raise ValueError("encode_images needs at least one path")
    device = torch.device(device)
    chunks = []
    with inference_mode(model):
        batches = _file_batches(list(paths), preprocess, batch_size, workers, pin=device.type == "cuda")
        total = -(-len(paths) // batch_size)
        for batch in tqdm(batches, total=total, desc=progress, unit="batch", disable=progress is None):
            with autocast(device, bf16, "measure"):
                emb = model.encode_image(batch.to(device, non_blocking=True))
            emb = emb.float()
            chunks.append((F.normalize(emb, dim=-1) if normalize else emb).cpu())
    return torch.cat(chunks)


def resize_images(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 images [N,3,H,W] at size x size (bilinear, antialiased, rounded), as the base model's
    training and the defenses' examples see them; unchanged when they already have that size."""
    if tuple(images.shape[-2:]) == (size, size):
        return images
    out = [F.interpolate(images[i:i + 1024].float(), size=(size, size), mode="bilinear",
                         antialias=True, align_corners=False).round().clamp(0, 255).to(torch.uint8)
           for i in range(0, len(images), 1024)]
    return torch.cat(out)
