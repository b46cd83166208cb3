"""Benchmark: full-context encode_text vs encoding each IDIA prompt to its real token length.

Builds open_clip ViT-B-32 with random weights (nothing is downloaded; speed does not depend
on the weights), encodes 21 templates x N names both ways in one run, and prints both
times, the speed-up and the largest difference between the normalised embeddings.

    python benchmarks/text_encoding.py                 # the paper's 1000 names (slow on CPU)
    python benchmarks/text_encoding.py --names 20      # a subset; times are also scaled to 1000

With --names below 1000 the printed "x1000" times are a linear extrapolation: encoding cost
grows linearly with the number of prompts, and the generated names have the same length
mix in every subset size.
"""
from __future__ import annotations

import argparse
import itertools
import random
import sys
import time
from pathlib import Path

import open_clip
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.attack.templates import IDIA_TEMPLATES, idia_prompts  # noqa: E402
from pipeline.models.text_encoding import encode_texts, encode_texts_full  # noqa: E402

FIRST = ["Anna", "Ben", "Carla", "Dmitri", "Eleanor", "Frank", "Grace", "Hiroshi", "Isabella", "Jon",
         "Katherine", "Luis", "Maria", "Nathaniel", "Olivia", "Pete", "Quinn", "Rosalind", "Sam", "Tess"]
LAST = ["Abbott", "Brown", "Castellanos", "Dunn", "Eriksson", "Fitzgerald", "Gray", "Hawthorne",
        "Ito", "Jameson", "Kowalczyk", "Lee", "Montgomery", "Ng", "Oppenheimer", "Park", "Quist",
        "Rodriguez", "Smith", "Vanderbilt"]
PAPER_NAMES = 1000


def make_names(n: int, seed: int = 0) -> list[str]:
    """n distinct full names in a seeded order (a subset is a prefix of the 1000-name list)."""
    pool = [f"{f} {l}" for f, l in itertools.product(FIRST, LAST)]
    while len(pool) < PAPER_NAMES:  # middle initials keep names distinct beyond 400
        pool += [f"{f} {chr(65 + len(pool) // 400 - 1)}. {l}" for f, l in itertools.product(FIRST, LAST)]
    random.Random(seed).shuffle(pool)
    if n > len(pool):
        raise SystemExit(f"--names must be <= {len(pool)}")
    return pool[:n]


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--names", type=int, default=PAPER_NAMES, help="candidate names (default 1000)")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    ap.add_argument("--arch", default="ViT-B-32")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = open_clip.create_model(args.arch, pretrained=None).eval()
    tokenizer = open_clip.get_tokenizer(args.arch)
    prompts = idia_prompts(make_names(args.names))
    lengths = (tokenizer(prompts).argmax(dim=-1) + 1).float()
    print(f"{args.arch} (random weights), {len(IDIA_TEMPLATES)} templates x {args.names} names = "
          f"{len(prompts)} prompts, context {model.context_length}, real length mean {lengths.mean():.1f} "
          f"max {int(lengths.max())}, batch {args.batch_size}, {args.threads} threads")

    # Warm-up so neither timing pays for first-call allocations.
    encode_texts(model, tokenizer, prompts[:2], 2, "cpu", progress=None)
    encode_texts_full(model, tokenizer, prompts[:2], 2, "cpu", progress=None)
    fast, t_fast = timed(lambda: encode_texts(model, tokenizer, prompts, args.batch_size, "cpu", progress=None))
    full, t_full = timed(lambda: encode_texts_full(model, tokenizer, prompts, args.batch_size, "cpu",
                                                   progress=None))
    scale = PAPER_NAMES / args.names
    print(f"full context : {t_full:8.2f} s   (x{PAPER_NAMES} names: {t_full * scale:8.1f} s)")
    print(f"truncated    : {t_fast:8.2f} s   (x{PAPER_NAMES} names: {t_fast * scale:8.1f} s)")
    print(f"speed-up     : {t_full / t_fast:8.2f} x")
    print(f"max |diff|   : {(fast - full).abs().max().item():.2e} (L2-normalised float32 embeddings)")


if __name__ == "__main__":
    main()
