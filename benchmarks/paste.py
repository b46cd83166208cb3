"""Batched tensor face pasting vs a per-image PIL loop doing the same transforms.

Builds one poisoned batch (default 128 images) at 64 px and at 224 px both ways, with
the same placements and colour factors, and prints the time of each and their ratio,
plus how far the two results are apart (they differ only by interpolation details).
The PIL side starts from already-decoded PIL images, which favours it.

    python benchmarks/paste.py [--batch 128] [--sizes 64 224] [--scale 0.25 0.5]
                               [--repeats 3] [--threads 1 2] [--device cpu]

One block of rows per thread count: the tensor side uses that many torch threads, the PIL
loop is single-threaded whatever the setting (the defense stage runs with defend.threads).

--device cuda runs the tensor side on the GPU (the PIL loop always runs on the CPU).
"""
from __future__ import annotations

import argparse
import time

import torch
import torchvision.transforms.functional as TF
from PIL import Image

from pipeline.defenses.paste import PasteSpec, paste_faces, prepare_faces, sample_paste_params

MEAN = torch.tensor((0.48145466, 0.4578275, 0.40821073)).view(1, 3, 1, 1)
STD = torch.tensor((0.26862954, 0.26130258, 0.27577711)).view(1, 3, 1, 1)


def batched(backgrounds: torch.Tensor, faces: torch.Tensor, params) -> torch.Tensor:
    out = paste_faces(backgrounds.float().mul_(1 / 255), faces, params, inplace=True)
    out = out.sub_(MEAN.to(out.device)).div_(STD.to(out.device))   # in place, as the defense does
    if out.is_cuda:
        torch.cuda.synchronize()
    return out


def pil_loop(backgrounds: list[Image.Image], faces: list[Image.Image], params) -> torch.Tensor:
    rows = []
    for i, (bg, face) in enumerate(zip(backgrounds, faces)):
        img = bg.copy()
        f = TF.adjust_brightness(face, float(params.brightness[i]))
        f = TF.adjust_contrast(f, float(params.contrast[i]))
        f = TF.adjust_saturation(f, float(params.saturation[i]))
        f = TF.adjust_hue(f, float(params.hue[i]))
        if params.flip[i]:
            f = TF.hflip(f)
        side = max(1, round(float(params.side[i])))
        f = f.resize((side, side), Image.BILINEAR)
        mask = Image.new("L", (side, side), 255)
        angle = float(params.angle[i])
        f = f.rotate(angle, resample=Image.BILINEAR, expand=True)
        mask = mask.rotate(angle, resample=Image.BILINEAR, expand=True)
        x0 = round(float(params.cx[i]) - f.width / 2)
        y0 = round(float(params.cy[i]) - f.height / 2)
        img.paste(f, (x0, y0), mask)
        rows.append(TF.to_tensor(img))
    return (torch.stack(rows) - MEAN) / STD


def best_of(fn, repeats: int) -> tuple[float, torch.Tensor]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def run(size: int, batch: int, scale: tuple[float, float], repeats: int, seed: int,
        device: torch.device) -> None:
    gen = torch.Generator().manual_seed(seed)
    spec = PasteSpec(scale=scale)
    face_px = round(spec.scale[1] * size)
    backgrounds = (torch.rand(batch, 3, size, size, generator=gen) * 255).to(torch.uint8)
    crops = [(torch.rand(3, 1, 1, generator=gen) * 200 + 30
              + torch.rand(3, face_px, face_px, generator=gen) * 25).to(torch.uint8) for _ in range(batch)]
    faces = prepare_faces(crops, face_px)
    params = sample_paste_params(batch, size, size, spec, gen)
    pil_bgs = [TF.to_pil_image(b) for b in backgrounds]
    pil_faces = [TF.to_pil_image(c) for c in crops]

    dev_backgrounds, dev_faces = backgrounds.to(device), faces.to(device)
    batched(dev_backgrounds, dev_faces, params)   # warm-up (allocator, kernels)
    t_tensor, out_tensor = best_of(lambda: batched(dev_backgrounds, dev_faces, params), repeats)
    out_tensor = out_tensor.cpu()
    t_pil, out_pil = best_of(lambda: pil_loop(pil_bgs, pil_faces, params), repeats)
    diff = ((out_tensor - out_pil) * STD).abs().mean().item() * 255
    print(f"{size:>4} px, face {scale[0]:g}-{scale[1]:g}, batch {batch}: "
          f"tensor {t_tensor * 1000:8.1f} ms   PIL loop {t_pil * 1000:8.1f} ms   ratio {t_pil / t_tensor:5.1f}x   mean |difference| {diff:.2f}/255")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 224])
    ap.add_argument("--scale", type=float, nargs=2, default=[0.25, 0.5], help="face side / image side")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2],
                    help="torch CPU thread counts to measure (PIL is single-threaded)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    device = torch.device(args.device)
    for threads in args.threads:
        torch.set_num_threads(threads)
        print(f"tensor side on {device}, torch threads {torch.get_num_threads()}, best of {args.repeats}")
        for size in args.sizes:
            run(size, args.batch, tuple(args.scale), args.repeats, args.seed, device)


if __name__ == "__main__":
    main()
