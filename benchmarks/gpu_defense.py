"""Benchmark: one defense step of each encoder, and the IDIA encoding, on OpenCLIP ViT-B-32.

Random weights (nothing is downloaded; speed does not depend on the weights) and synthetic
data in the paper's shapes: 224 px images, 128 clean + 128 poisoned samples a step, 21
templates x 1000 candidate names, 20 photos per identity. For each encoder it runs the real
training function (pipeline.defenses) for a few steps at two values of K and prints seconds
per step and seconds per added identity (the slope of setup + training time in K, after one
untimed warm-up run; the paper reports about 0.07 s per name and 1.55 s per face on one GPU).

    python benchmarks/gpu_defense.py                      # CUDA when present, paper sizes
    python benchmarks/gpu_defense.py --device cpu --tiny  # smoke check: tiny batches, < 1 min
"""
from __future__ import annotations

import argparse
from dataclasses import replace
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import open_clip
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.models.image_encoding import encode_images  # noqa: E402
from pipeline.attack.templates import IDIA_TEMPLATES  # noqa: E402
from pipeline.attack.run import encode_idia_texts  # noqa: E402
from pipeline.core.defense_params import ImageDefenseConfig, TextDefenseConfig  # noqa: E402
from pipeline.defenses.image_defense import train_image_defense  # noqa: E402
from pipeline.defenses.text_defense import train_text_defense  # noqa: E402
from pipeline.models.device import resolve_device  # noqa: E402

WORDS = ("a photo of the old harbour at dusk with boats and gulls over calm water near a lighthouse "
         "seen from the hill in winter light while people walk their dogs along the pier").split()


def captions(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=int(rng.integers(6, 16)))) for _ in range(n)]


def names(n: int) -> list[str]:
    firsts = ["Anna", "Ben", "Carla", "Dmitri", "Eleanor", "Frank", "Grace", "Hiroshi", "Isabella", "Jon"]
    lasts = ["Abbott", "Castellanos", "Dunn", "Eriksson", "Fitzgerald", "Hawthorne", "Ito", "Jameson",
             "Kowalczyk", "Montgomery"]
    pool = [f"{f} {m}. {l}" for m in "ABCDEFGHIJ" for f in firsts for l in lasts]
    return pool[:n]


def images(n: int, size: int, seed: int) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def slope(ks: list[int], seconds: list[float]) -> float:
    return float(np.polyfit(ks, seconds, 1)[0]) if len(set(ks)) > 1 else float("nan")


def bench_text(model, tokenizer, device, a) -> list[str]:
    pool = captions(max(4 * a.batch, 64))
    people = names(max(a.ks))
    cfg = TextDefenseConfig(steps=a.steps, clean_batch_size=a.batch, backdoor_batch_size=a.batch,
                            milestones=(), poison_pool_size=max(2 * a.batch, 16), encode_batch_size=a.batch * 4,
                            bf16=device.type == "cuda")
    rows, totals = [], []
    train_text_defense(model, tokenizer, pool, people[:1], replace(cfg, steps=1), device, progress=False)  # warm-up
    for k in a.ks:
        sync(device)
        run = train_text_defense(model, tokenizer, pool, people[:k], cfg, device, progress=False)
        totals.append(run.setup_seconds + run.train_seconds)
        rows.append(f"text   K={k:<3d} {run.seconds_per_step:8.3f} s/step  setup {run.setup_seconds:6.2f} s  "
                    f"total {totals[-1]:7.2f} s")
    rows.append(f"text   per added name: {slope(a.ks, totals):+.3f} s (paper: about 0.07 s on one GPU)")
    return rows


def bench_image(model, device, a) -> list[str]:
    size = model.visual.image_size[0]
    clean = images(max(4 * a.batch, 32), size, 1)
    photos = images(max(2 * a.batch, 8), size, 2)
    faces_per_id = 4 if a.tiny else 10
    cfg = ImageDefenseConfig(steps=a.steps, clean_batch_size=a.batch, backdoor_batch_size=a.batch,
                             milestones=(), encode_batch_size=a.batch * 2, bf16=device.type == "cuda")
    rows, totals = [], []
    warm = [[images(1, 96, 7)[0]]]
    train_image_defense(model, clean, warm, photos, replace(cfg, steps=1), device=device, progress=False)  # warm-up
    for k in a.ks:
        faces = [[images(1, 96, 100 * i + j)[0] for j in range(faces_per_id)] for i in range(k)]
        sync(device)
        run = train_image_defense(model, clean, faces, photos, cfg, device=device, progress=False)
        totals.append(run.setup_seconds + run.train_seconds)
        rows.append(f"image  K={k:<3d} {run.seconds_per_step:8.3f} s/step  setup {run.setup_seconds:6.2f} s  "
                    f"total {totals[-1]:7.2f} s")
    rows.append(f"image  per added face: {slope(a.ks, totals):+.3f} s (paper: about 1.55 s on one GPU)")
    return rows


def bench_idia(model, tokenizer, preprocess, device, a) -> list[str]:
    candidates = names(a.names)
    sync(device)
    start = time.perf_counter()
    encode_idia_texts(model, tokenizer, candidates, a.batch * 8, device, bf16=device.type == "cuda")
    sync(device)
    text_s = time.perf_counter() - start
    with tempfile.TemporaryDirectory(prefix="idia-bench-") as tmp:
        paths = []
        for i in range(a.photos):
            path = Path(tmp) / f"{i}.jpg"
            Image.fromarray(images(1, 256, 1000 + i)[0].permute(1, 2, 0).numpy()).save(path, quality=90)
            paths.append(path)
        start = time.perf_counter()
        encode_images(model, preprocess, paths, a.batch * 2, device, progress=None, workers=a.workers,
                      bf16=device.type == "cuda")
        sync(device)
        image_s = time.perf_counter() - start
    per_identity = image_s / a.photos * 20
    return [f"IDIA   {len(IDIA_TEMPLATES)} x {a.names} prompts: {text_s:7.2f} s "
            f"({text_s / a.names * 1000:.1f} s per 1000 names)",
            f"IDIA   {a.photos} photos: {image_s:7.2f} s ({per_identity:.3f} s per identity of 20 photos, "
            f"{a.workers} workers)"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="auto", help="auto (CUDA when present), cuda or cpu")
    ap.add_argument("--arch", default="ViT-B-32")
    ap.add_argument("--tiny", action="store_true", help="smoke sizes: batch 4, 1 step, K in 1 2, 10 names")
    ap.add_argument("--steps", type=int, default=5, help="timed steps per run (default 5)")
    ap.add_argument("--batch", type=int, default=128, help="clean = poisoned batch size (paper 128)")
    ap.add_argument("--ks", type=int, nargs="+", default=[1, 8], help="numbers of identities (default 1 8)")
    ap.add_argument("--names", type=int, default=1000, help="IDIA candidate names (paper 1000)")
    ap.add_argument("--photos", type=int, default=400, help="IDIA photos encoded (20 per identity)")
    ap.add_argument("--workers", type=int, default=4, help="DataLoader workers decoding the photos")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    ap.add_argument("--only", choices=["text", "image", "idia"], nargs="+", default=["text", "image", "idia"])
    a = ap.parse_args()
    if a.tiny:
        a.steps, a.batch, a.ks, a.names, a.photos, a.workers = 1, 4, [1, 2], 10, 4, 0
    torch.set_num_threads(a.threads)
    device = resolve_device(a.device, "--device")
    start = time.perf_counter()
    model, _, preprocess = open_clip.create_model_and_transforms(a.arch, pretrained=None)
    model = model.to(device).eval()
    tokenizer = open_clip.get_tokenizer(a.arch)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"{a.arch} (random weights) on {name}; batch {a.batch}+{a.batch}, {a.steps} step(s), K in {a.ks}"
          f"{', bf16 autocast' if device.type == 'cuda' else ', fp32'}")
    rows = []
    if "text" in a.only:
        rows += bench_text(model, tokenizer, device, a)
    if "image" in a.only:
        rows += bench_image(model, device, a)
    if "idia" in a.only:
        rows += bench_idia(model, tokenizer, preprocess, device, a)
    print("\n".join(rows))
    print(f"wall time {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
