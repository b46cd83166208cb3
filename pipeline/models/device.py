"""Where the models run, and in which precision."""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch

from pipeline.errors import ParamError

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def resolve_device(name: str, key: str = "device") -> torch.device:
    """Turn a params device name into a torch.device ("auto" = CUDA when present, else CPU)."""
    if name not in DEVICE_CHOICES:
        raise ParamError(key, name, "one of " + ", ".join(map(repr, DEVICE_CHOICES)))
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ParamError(key, name, "'auto' or 'cpu' on a machine without a CUDA GPU")
    return torch.device(name)


@contextlib.contextmanager
def autocast(device: torch.device | str, enabled: bool = True) -> Iterator[None]:
    """bf16 autocast on CUDA and CPU (on AVX-512-bf16 CPUs it is the faster path for training)."""
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        enabled = False  # older GPUs: fp32 is slower but never wrong
    if not enabled or device.type not in ("cuda", "cpu"):
        yield
        return
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
        yield
