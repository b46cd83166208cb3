"""The precision policy: where bf16 autocast runs, and eval-mode inference.

One rule for every caller. On CUDA, bf16 autocast whenever it is asked for and the GPU
supports it (older GPUs fall back to fp32: slower, never wrong). On the CPU it runs only
for training (`purpose="train"`, including the teacher embeddings a training loop
consumes), where AVX-512-bf16 CPUs train faster with it; every measurement (the attack,
zero-shot, the similarity metrics) stays exact fp32 on the CPU, so the reported numbers
do not depend on whether a CPU has bf16 units.
"""
from __future__ import annotations

import contextlib
from typing import Iterator, Literal

import torch
from torch import nn

Purpose = Literal["train", "measure"]


def bf16_active(device: torch.device | str, bf16: bool, purpose: Purpose) -> bool:
    """Whether `autocast(device, bf16, purpose)` runs in bf16."""
    if purpose not in ("train", "measure"):
        raise ValueError(f"purpose must be 'train' or 'measure', got {purpose!r}")
    device = torch.device(device)
    if not bf16:
        return False
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and purpose == "train"


@contextlib.contextmanager
def autocast(device: torch.device | str, bf16: bool, purpose: Purpose) -> Iterator[None]:
    """bf16 autocast where the policy above allows it, else a no-op."""
    device = torch.device(device)
    if not bf16_active(device, bf16, purpose):
        yield
        return
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
        yield


@contextlib.contextmanager
def inference_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode (no dropout) and no grad for the block; restores the model's mode after."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)
