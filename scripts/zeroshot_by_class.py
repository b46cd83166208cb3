"""Which zero-shot classes a defended model loses, next to what the removed people look like.

    python scripts/zeroshot_by_class.py                         # every model under data/defended
    python scripts/zeroshot_by_class.py --models image-k4 both-k4 --benchmark hair --out per_class.csv

For each defended model (data/defended/<run>) and each benchmark of utility_before: per class,
how many images the base model classifies correctly, how many the defended model does, how many
it loses and gains (paired, image by image), into which classes the lost ones go, and an exact
McNemar p-value of the whole change (a 400-image benchmark moves by a few images by chance). On
the demo world the removed people's hair colours are printed next to the hair benchmark (from
data/world/world.json), because the image defense's zero-shot cost concentrates there: the class
of a removed person's hair colour is the one that drops (README, "Where the hair-colour cost
comes from").
Reads the pipeline's outputs only (run `dvc repro` first); writes nothing unless --out is given.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from pathlib import Path

import pandas as pd
import torch

from pipeline.attack.run import load_embeddings
from pipeline.core.errors import PipelineError
from pipeline.core.paths import BASE_MODEL, DEFENDED, UTILITY_BEFORE, WORLD, parse_run_name
from pipeline.evaluation.zeroshot import class_embeddings, load_benchmark
from pipeline.models.checkpoint import load_model
from pipeline.models.image_encoding import encode_images
from pipeline.models.text_encoding import encode_texts

WORLD_SUMMARY = WORLD / "world.json"


def predictions(loaded, bench, batch: int, image_emb: torch.Tensor | None = None) -> torch.Tensor:
    """Top-1 class index of every benchmark image under `loaded`; pass image_emb to reuse an
    untouched image tower's embeddings (as `evaluate` does)."""
    classes = class_embeddings(lambda t: encode_texts(loaded.model, loaded.tokenizer, t, batch, "cpu", progress=None),
                               bench.classnames, bench.templates)
    if image_emb is None:
        image_emb = encode_images(loaded.model, loaded.preprocess, bench.paths, batch, "cpu",
                                  progress=f"{bench.name} images")
    return (image_emb.float() @ classes.float().T).argmax(dim=1)


def per_class(bench, base_pred: torch.Tensor, pred: torch.Tensor) -> list[dict]:
    """Paired per-class counts: correct before/after, lost, gained, and where the lost ones went."""
    rows = []
    for c, name in enumerate(bench.classnames):
        sel = bench.labels == c
        was, now = base_pred[sel] == c, pred[sel] == c
        lost_to = torch.bincount(pred[sel][was & ~now], minlength=len(bench.classnames)).tolist()
        rows.append({"class": name, "images": int(sel.sum()), "base_correct": int(was.sum()),
                     "defended_correct": int(now.sum()), "lost": int((was & ~now).sum()),
                     "gained": int((~was & now).sum()),
                     "lost_to": "; ".join(f"{bench.classnames[i]} {v}" for i, v in enumerate(lost_to) if v)})
    return rows


def mcnemar_p(lost: int, gained: int) -> float:
    """Exact two-sided McNemar p-value of `lost` against `gained` discordant images: is the
    change more than the images that flip either way by chance?"""
    n = lost + gained
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(lost, gained) + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def removed_looks(run_dir: Path) -> dict[str, str]:
    """name -> hair colour of the run's removed people (demo world only; empty elsewhere)."""
    removed_csv = run_dir / "removed.csv"
    if not WORLD_SUMMARY.is_file() or not removed_csv.is_file():
        return {}
    people = {p["name"]: p.get("attributes", {}) for p in json.loads(WORLD_SUMMARY.read_text()).get("identities", [])}
    return {n: people.get(n, {}).get("hair_colour", "?") for n in pd.read_csv(removed_csv)["name"]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", help="runs under data/defended (default: all)")
    ap.add_argument("--benchmark", help="one benchmark of utility_before (default: all)")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--out", type=Path, help="CSV of every (model, benchmark, class) row")
    args = ap.parse_args(argv)
    benches_file = UTILITY_BEFORE / "benchmarks.json"
    if not benches_file.is_file() or not DEFENDED.is_dir():
        raise PipelineError(f"{benches_file} or {DEFENDED} is missing: run `dvc repro` first")
    benches = json.loads(benches_file.read_text())
    if args.benchmark:
        if args.benchmark not in benches:
            raise PipelineError(f"--benchmark {args.benchmark!r}: not one of {', '.join(sorted(benches))}")
        benches = {args.benchmark: benches[args.benchmark]}
    runs = args.models or sorted(p.name for p in DEFENDED.iterdir() if p.is_dir())
    missing = [r for r in runs if not (DEFENDED / r).is_dir()]
    if missing:
        raise PipelineError(f"--models: {', '.join(missing)} not under {DEFENDED}")
    base = load_model(BASE_MODEL)
    settings = UTILITY_BEFORE / "zeroshot.json"    # the template cut utility_before used, if any
    max_templates = json.loads(settings.read_text())["max_templates"] if settings.is_file() else 0
    loaded_benches = {name: load_benchmark(folder, max_templates) for name, folder in sorted(benches.items())}
    # the base model's image embeddings as utility_before stored them: scored once, not again here
    base_emb = {name: load_embeddings(UTILITY_BEFORE / f"{name}_images.safetensors") for name in loaded_benches}
    base_pred = {name: predictions(base, b, args.batch, base_emb[name]) for name, b in loaded_benches.items()}
    out_rows = []
    for run in runs:
        model = load_model(DEFENDED / run)
        looks = removed_looks(DEFENDED / run)
        image_untouched = parse_run_name(run)[0] == "text"
        for name, bench in loaded_benches.items():
            pred = predictions(model, bench, args.batch, base_emb[name] if image_untouched else None)
            rows = per_class(bench, base_pred[name], pred)
            change = sum(r["defended_correct"] - r["base_correct"] for r in rows) / len(bench.labels) * 100
            lost, gained = sum(r["lost"] for r in rows), sum(r["gained"] for r in rows)
            print(f"\n{run} / {name}: top-1 change {change:+.2f} points (lost {lost}, gained {gained}; "
                  f"exact McNemar p = {mcnemar_p(lost, gained):.3g})"
                  + (f"; removed people's hair: {', '.join(f'{n} ({h})' for n, h in looks.items())}"
                     if looks and name == "hair" else ""))
            print("| class | base correct | defended | lost | gained | lost to |\n|---|---|---|---|---|---|")
            for r in rows:
                if r["lost"] or r["gained"]:
                    print(f"| {r['class']} | {r['base_correct']}/{r['images']} | {r['defended_correct']} | "
                          f"{r['lost']} | {r['gained']} | {r['lost_to']} |")
            out_rows += [{"model": run, "benchmark": name, **r} for r in rows]
    if args.out:
        with args.out.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(out_rows[0]))
            writer.writeheader()
            writer.writerows(out_rows)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
