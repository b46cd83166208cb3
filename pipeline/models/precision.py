"""The precision policy: where bf16 autocast runs, and eval-mode inference.

One rule for every caller: bf16 autocast only on CUDA, whenever it is asked for and the GPU
supports it (older GPUs fall back to fp32: slower, never wrong). On the CPU everything, training
included, runs in fp32. On a CPU without bf16 units (AVX2 only, such as the AMD EPYC test
machines) bf16 autocast is emulated and a training step is 10-15x slower than in fp32
(`python -m benchmarks.cpu_precision`); and one precision on every CPU keeps a run's numbers
from depending on which bf16 units the machine has.
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
    return device.type == "cuda" and torch.cuda.is_bf16_supported()


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
