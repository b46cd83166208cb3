"""Where the models run (the precision policy is in pipeline/models/precision.py)."""
from __future__ import annotations

import torch

from pipeline.core.errors import ParamError

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


def select_attention_kernel(device: torch.device | str) -> None:
    """For training on the CPU, use PyTorch's plain (math) attention kernel, not its CPU flash
    kernel: with these short sequences (65 image / 32 text tokens) a training step is
    1.06-1.3x faster in fp32, the CPU's precision (1.5-1.7x under bf16 autocast;
    benchmarks/cpu_attention.py prints the ratio). CUDA keeps PyTorch's own choice.
    Process-wide: call it once, in a stage that trains."""
    if torch.device(device).type == "cpu":
        torch.backends.cuda.enable_flash_sdp(False)   # the flag SDPA consults on the CPU as well
