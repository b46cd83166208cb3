"""Stage `world` (demo profile): render the synthetic world into data/world/ as real-format inputs."""
from __future__ import annotations

import shutil
from pathlib import Path

from pipeline.atomic import atomic_dir
from pipeline.params import load_params
from pipeline.stages._main import run_stage
from pipeline.world.build import build_world
from pipeline.world.config import world_config

OUT = Path("data/world")


def main() -> None:
    params = load_params("world")
    world_config(params)  # fail on bad params before touching the output
    # Only this stage's own leftovers: other stages may be writing next to it.
    for stale in OUT.parent.glob(f".{OUT.name}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    with atomic_dir(OUT) as tmp:
        build_world(params, tmp)
    print(f"world: wrote {OUT}")


if __name__ == "__main__":
    run_stage(main)
