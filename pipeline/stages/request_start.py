"""Stage `request_start`: data/requests/base, where every chain of removal requests starts.

    python -m pipeline.stages.request_start

It names the base model (with its checkpoint's sha256) and holds the empty tables a request
reads from its predecessor: nobody removed yet, no request photos yet.
"""
from __future__ import annotations

import pandas as pd
import yaml

from pipeline.core.atomic import atomic_dir
from pipeline.core.paths import BASE_MODEL, REQUESTS
from pipeline.core.stage_runner import run_stage
from pipeline.world.paper.sources import sha256_file

WEIGHTS = BASE_MODEL / "model.safetensors"   # pipeline.models.checkpoint.WEIGHTS_FILE, without importing torch


def main() -> None:
    with atomic_dir(REQUESTS / "base") as tmp:
        (tmp / "start.yaml").write_text(yaml.safe_dump({"model": str(BASE_MODEL), "sha256": sha256_file(WEIGHTS)}))
        pd.DataFrame(columns=["name", "request"]).to_csv(tmp / "removed.csv", index=False)
        pd.DataFrame(columns=["name", "path"]).to_csv(tmp / "attack_photos.csv", index=False)
    print(f"request chain starts from {BASE_MODEL}")


if __name__ == "__main__":
    run_stage(main)
