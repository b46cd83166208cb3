"""Contrastive pretraining of a small CLIP from scratch (the demo world's base model)."""
from __future__ import annotations

import csv
import math
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Callable, Iterator

import open_clip
import torch
import torch.nn.functional as F
from tqdm import tqdm

from pipeline.core.atomic import atomic_file
from pipeline.core.errors import PipelineError
from pipeline.models.architecture import build_model, count_params, validate_model_cfg
from pipeline.models.image_encoding import ImageInput, resize_images
from pipeline.models.shards import read_shards
from pipeline.models.precision import autocast
from pipeline.models.text_encoding import tokenize

LOG_COLUMNS = ("step", "loss", "lr", "logit_scale")
FINAL_LOSS_WINDOW = 20


@dataclass(frozen=True)
class PretrainConfig:
    steps: int = 500
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.1
    warmup_fraction: float = 0.05
    grad_clip: float = 1.0
    shift_px: int = 4
    seed: int = 0
    betas: tuple[float, float] = (0.9, 0.98)


def no_decay(name: str, param: torch.Tensor) -> bool:
    """Biases, norms, logit_scale and embeddings are not weight-decayed; only matrices are."""
    return param.ndim < 2 or "embedding" in name or "logit_" in name


def weight_decay_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """AdamW parameter groups: [matrices with weight_decay, everything else with 0]."""
    decay, rest = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (rest if no_decay(name, param) else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]


def lr_at(step: int, cfg: PretrainConfig) -> float:
    """Linear warm-up, then cosine to 0 at cfg.steps (a fixed step count, so runs are repeatable)."""
    warmup = round(cfg.warmup_fraction * cfg.steps)
    if step < warmup:
        return cfg.lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, cfg.steps - warmup)
    return 0.5 * cfg.lr * (1.0 + math.cos(math.pi * progress))


def batch_indices(n: int, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """Endless seeded epochs; the last partial batch of each epoch is dropped so no batch repeats a sample."""
    while True:
        order = torch.randperm(n, generator=generator)
        for start in range(0, n - batch_size + 1, batch_size):
            yield order[start:start + batch_size]


def random_shift(images: torch.Tensor, shift_px: int, generator: torch.Generator) -> torch.Tensor:
    """Translate the whole batch by one random (dy, dx) in [-shift_px, shift_px], edges replicated."""
    if shift_px <= 0:
        return images
    dy, dx = (torch.randint(-shift_px, shift_px + 1, (2,), generator=generator) + shift_px).tolist()
    h, w = images.shape[-2:]
    padded = F.pad(images, (shift_px,) * 4, mode="replicate")
    return padded[..., dy:dy + h, dx:dx + w]


def pretrain(model: open_clip.CLIP, images: torch.Tensor, captions: list[str], tokenizer: Callable,
             cfg: PretrainConfig, device: torch.device, log_path: Path | None = None) -> dict:
    """Train `model` in place with open_clip's ClipLoss; write the per-step log CSV; return metrics."""
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
        raise PipelineError(f"pretrain: images must be uint8 [N,3,H,W], got {images.dtype} {tuple(images.shape)}")
    if len(captions) != len(images):
        raise PipelineError(f"pretrain: {len(images)} images but {len(captions)} captions")
    if cfg.batch_size > len(images):
        raise PipelineError(f"base_model.batch_size = {cfg.batch_size} exceeds the {len(images)} training samples; "
                            "lower it or download more samples")
    device = torch.device(device)
    tokens = tokenize(tokenizer, captions, desc="tokenising captions").to(device)
    images = images.to(device)
    model.to(device).train()
    prep = ImageInput(model, device)
    loss_fn = open_clip.ClipLoss()
    optimizer = torch.optim.AdamW(weight_decay_groups(model, cfg.weight_decay), lr=cfg.lr, betas=cfg.betas)
    generator = torch.Generator().manual_seed(cfg.seed)
    batches = batch_indices(len(images), cfg.batch_size, generator)

    rows: list[tuple[int, float, float, float]] = []
    start = time.perf_counter()
    bar = tqdm(range(cfg.steps), desc="pretraining", unit="step")
    for step in bar:
        lr = lr_at(step, cfg)
        for group in optimizer.param_groups:
            group["lr"] = lr
        idx = next(batches).to(device)
        # divided by 255 (the defenses multiply by 1/255, one bit apart in float32): kept so
        # the committed base model reproduces bit for bit
        x = random_shift(prep.normalise_(images[idx].float() / 255.0), cfg.shift_px, generator)
        with autocast(device, True, "train"):
            image_features = model.encode_image(x, normalize=True)
            text_features = model.encode_text(tokens[idx], normalize=True)
            loss = loss_fn(image_features, text_features, model.logit_scale.exp())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        with torch.no_grad():
            # as in CLIP: a temperature above 100 makes training unstable
            model.logit_scale.clamp_(0, math.log(100))
        loss_value = loss.item()
        rows.append((step, loss_value, lr, model.logit_scale.exp().item()))
        bar.set_postfix(loss=f"{loss_value:.3f}")
    train_seconds = time.perf_counter() - start
    model.eval()

    if log_path is not None:
        write_log(log_path, rows)
    tail = [r[1] for r in rows[-FINAL_LOSS_WINDOW:]]
    return {
        "steps": cfg.steps,
        "final_loss": round(sum(tail) / len(tail), 6) if tail else None,
        "train_seconds": round(train_seconds, 3),
        "seconds_per_step": round(train_seconds / max(1, cfg.steps), 4),
        "samples": len(images),
        "params_millions": round(count_params(model) / 1e6, 3),
    }


def write_log(log_path: Path, rows: list[tuple[int, float, float, float]]) -> None:
    """The per-step training curve as a CSV (a DVC plot)."""
    with atomic_file(log_path, mode="w") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(LOG_COLUMNS)
        for step, loss, lr, scale in rows:
            writer.writerow((step, f"{loss:.6f}", f"{lr:.8g}", f"{scale:.6f}"))


def train_from_scratch(p: dict, arch: str, device: torch.device, log_path: Path,
                       keep: Callable[[str], bool] | None = None) -> tuple[open_clip.CLIP, dict, dict]:
    """The demo's base model from params section `base_model` `p`: read its shards, keep the
    samples whose caption `keep` accepts (all by default), train; (model on the CPU, model_cfg,
    metrics with `samples_dropped`)."""
    model_cfg = validate_model_cfg(p.get("model_cfg"), "base_model.model_cfg")
    cfg = PretrainConfig(**{f.name: p[f.name] for f in fields(PretrainConfig) if f.name in p})
    images, captions, _ = read_shards(Path(p["shards"]))
    dropped = 0
    if keep is not None:
        kept = [i for i, caption in enumerate(captions) if keep(caption)]
        dropped = len(captions) - len(kept)
        images, captions = images[kept], [captions[i] for i in kept]
    model = build_model(arch, model_cfg, cfg.seed)
    images = resize_images(images, model.visual.image_size[0])
    metrics = pretrain(model, images, captions, open_clip.get_tokenizer(arch), cfg, device, log_path)
    metrics["samples_dropped"] = dropped
    return model.cpu(), model_cfg, metrics

