"""bf16 autocast vs fp32 for training on the CPU, on the demo CLIP, in one run.

Times forward + backward of the demo model's image tower (a defense batch: 320 images of
64 px) and text tower (256 captions of 32 tokens), once in fp32 and once under bf16
autocast, with the attention kernel the stages use, and prints seconds per step and the
ratio. Where the CPU has no bf16 units (AVX2 only) autocast is emulated and far slower:
the reason `pipeline.models.precision` trains in fp32 on every CPU.

    python -m benchmarks.cpu_precision [--repeats 3] [--threads 2]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch
import yaml

from benchmarks.cpu_attention import time_step
from pipeline.models.architecture import build_model
from pipeline.models.device import select_attention_kernel


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    select_attention_kernel("cpu")
    cfg = yaml.safe_load(Path("params.yaml").read_text())["base_model"]["model_cfg"]
    model = build_model("tiny-clip-64", cfg, seed=0)
    g = torch.Generator().manual_seed(0)
    size = cfg["vision_cfg"]["image_size"]
    images = torch.randn(320, 3, size, size, generator=g)
    tokens = torch.randint(1, 49000, (256, cfg["text_cfg"]["context_length"]), generator=g)

    def step(tower, x, bf16: bool):
        def run():
            model.zero_grad(set_to_none=True)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                out = tower(x).float()
            out.square().mean().backward()
        return run

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"CPU capability {torch.backends.cpu.get_cpu_capability()}, best of {args.repeats}")
    for name, tower, x in (("image tower, 320 x 64 px", model.visual, images),
                           ("text tower, 256 x 32 tokens", model.encode_text, tokens)):
        fp32 = time_step(step(tower, x, False), args.repeats)
        bf16 = time_step(step(tower, x, True), args.repeats)
        print(f"{name:28s} fp32 {fp32 * 1000:8.1f} ms   bf16 autocast {bf16 * 1000:8.1f} ms   "
              f"ratio bf16/fp32 {bf16 / fp32:5.2f}x")


if __name__ == "__main__":
    main()
