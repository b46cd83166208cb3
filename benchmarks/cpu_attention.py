"""PyTorch's two CPU attention kernels on the demo CLIP: flash vs plain (math), in one run.

Times forward + backward of the demo model's image tower (a defense batch: 320 images of
64 px) and text tower (256 captions of 32 tokens) in fp32, as the defenses and the
pretraining run on the CPU (--bf16: under bf16 autocast), once with each kernel, and prints
seconds per step and the ratio. `pipeline.models.device.select_attention_kernel` picks the
faster one for training.

    python -m benchmarks.cpu_attention [--repeats 5] [--threads 2] [--bf16]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import yaml

from pipeline.models.architecture import build_model


def time_step(fn, repeats: int) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--bf16", action="store_true", help="under bf16 autocast (emulated on AVX2-only CPUs)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = yaml.safe_load(Path("params.yaml").read_text())["base_model"]["model_cfg"]
    model = build_model("tiny-clip-64", cfg, seed=0)
    g = torch.Generator().manual_seed(0)
    size = cfg["vision_cfg"]["image_size"]
    images = torch.randn(320, 3, size, size, generator=g)
    tokens = torch.randint(1, 49000, (256, cfg["text_cfg"]["context_length"]), generator=g)

    def step(tower, x):
        def run():
            model.zero_grad(set_to_none=True)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
                out = tower(x).float()
            out.square().mean().backward()
        return run

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{'bf16 autocast' if args.bf16 else 'fp32'}, best of {args.repeats}")
    for name, tower, x in (("image tower, 320 x 64 px", model.visual, images),
                           ("text tower, 256 x 32 tokens", model.encode_text, tokens)):
        torch.backends.cuda.enable_flash_sdp(True)
        flash = time_step(step(tower, x), args.repeats)
        torch.backends.cuda.enable_flash_sdp(False)
        math_ = time_step(step(tower, x), args.repeats)
        torch.backends.cuda.enable_flash_sdp(True)
        print(f"{name:28s} flash {flash * 1000:7.1f} ms   math {math_ * 1000:7.1f} ms   "
              f"ratio flash/math {flash / math_:4.2f}x")


if __name__ == "__main__":
    main()
