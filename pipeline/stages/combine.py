"""Stage `combine`: the defended text tower and the defended image tower of the same K and
seed in one CLIP (docs/method.md §4), with no extra training.

    python -m pipeline.stages.combine --k 4
"""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import pandas as pd
import yaml

from pipeline.core.atomic import atomic_dir
from pipeline.defenses.towers import build_defended_model, text_tower_keys, visual_keys
from pipeline.core.errors import PipelineError
from pipeline.models.checkpoint import load_model, save_checkpoint
from pipeline.core.stage_runner import run_stage

DEFENDED = Path("data/defended")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--k", type=int, required=True)
    k = ap.parse_args().k
    base = load_model(Path("data/base_model"))
    text = load_model(DEFENDED / f"text-k{k}")
    image = load_model(DEFENDED / f"image-k{k}")
    removed_text = pd.read_csv(DEFENDED / f"text-k{k}" / "removed.csv")
    removed_image = pd.read_csv(DEFENDED / f"image-k{k}" / "removed.csv")
    if list(removed_text["name"]) != list(removed_image["name"]):
        raise PipelineError(f"text-k{k} and image-k{k} removed different identities; "
                            "rerun both with the same defend.seed")
    text_state = {key: v for key, v in text.model.state_dict().items()
                  if key in set(text_tower_keys(base.model))}
    visual_state = {key: v for key, v in image.model.state_dict().items()
                    if key in set(visual_keys(base.model))}
    model = build_defended_model(base.model, text_student=text_state, visual_student=visual_state)
    with atomic_dir(DEFENDED / f"both-k{k}") as tmp:
        save_checkpoint(model, tmp, base.arch, base.model_cfg)
        shutil.copy(DEFENDED / f"text-k{k}" / "removed.csv", tmp / "removed.csv")
        both = {**yaml.safe_load((DEFENDED / f"image-k{k}" / "defense.yaml").read_text()),
                **yaml.safe_load((DEFENDED / f"text-k{k}" / "defense.yaml").read_text())}
        (tmp / "defense.yaml").write_text(yaml.safe_dump(both, sort_keys=True))
    print(f"combine both-k{k}: text tower from text-k{k}, image tower from image-k{k}")


if __name__ == "__main__":
    run_stage(main)
