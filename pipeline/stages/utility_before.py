"""Stage `utility_before`: zero-shot accuracy of the base model on each benchmark.

Keeps the benchmark image embeddings so `evaluate` reuses them when a defense leaves
the image tower untouched.
"""
from __future__ import annotations

import json

from pipeline.core.atomic import atomic_dir, write_json
from pipeline.attack.run import save_embeddings
from pipeline.evaluation.zeroshot import load_benchmark, zero_shot
from pipeline.models.checkpoint import load_model
from pipeline.models.device import resolve_device
from pipeline.core.params import load_params
from pipeline.core.stage_runner import run_stage
from pipeline.core.paths import BASE_MODEL, UTILITY_BEFORE, metrics_file


def main() -> None:
    p = load_params("utility_before")
    folders = p["benchmarks"]
    batch_size = p["batch_size"]
    device = resolve_device(p["device"], "utility_before.device")
    workers, bf16, max_templates = p["workers"], p["bf16"], p["max_templates"]
    benches = [load_benchmark(f, max_templates) for f in folders]
    loaded = load_model(BASE_MODEL, device)
    metrics = {}
    with atomic_dir(UTILITY_BEFORE) as tmp:
        for folder, bench in zip(folders, benches):
            acc, emb = zero_shot(loaded, bench, batch_size, device, bf16=bf16, workers=workers)
            metrics[bench.name] = acc
            save_embeddings(tmp / f"{bench.name}_images.safetensors", emb)
        (tmp / "benchmarks.json").write_text(json.dumps(
            {b.name: str(f) for f, b in zip(folders, benches)}, indent=2, sort_keys=True) + "\n")
        # the numbers evaluate compares against: from this data out, not from a metrics file
        (tmp / "accuracy.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
        if max_templates:  # evaluate must score defended models on the same templates
            (tmp / "zeroshot.json").write_text(json.dumps({"max_templates": max_templates}) + "\n")
    write_json(metrics_file("utility_before"), metrics)
    print("zero-shot before:", json.dumps(metrics))


if __name__ == "__main__":
    run_stage(main)
