"""Stage `combine`: the defended text tower and the defended image tower of the same K and
seed in one CLIP (docs/method.md §4), with no extra training.

    python -m pipeline.stages.combine --k 4
"""
from __future__ import annotations

import argparse
import shutil

import pandas as pd
import yaml

from pipeline.core.atomic import atomic_dir
from pipeline.defenses.towers import build_defended_model, text_tower_keys, visual_keys
from pipeline.core.errors import PipelineError
from pipeline.models.checkpoint import load_model, save_checkpoint
from pipeline.core.stage_runner import run_stage
from pipeline.core.paths import BASE_MODEL, DEFENDED, run_name


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--k", type=int, required=True)
    k = ap.parse_args().k
    text_run, image_run = DEFENDED / run_name("text", k), DEFENDED / run_name("image", k)
    base = load_model(BASE_MODEL)
    text = load_model(text_run)
    image = load_model(image_run)
    removed_text = pd.read_csv(text_run / "removed.csv")
    removed_image = pd.read_csv(image_run / "removed.csv")
    if list(removed_text["name"]) != list(removed_image["name"]):
        raise PipelineError(f"{text_run.name} and {image_run.name} removed different identities; "
                            "rerun both with the same defend.seed")
    text_state = {key: v for key, v in text.model.state_dict().items()
                  if key in set(text_tower_keys(base.model))}
    visual_state = {key: v for key, v in image.model.state_dict().items()
                    if key in set(visual_keys(base.model))}
    model = build_defended_model(base.model, text_student=text_state, visual_student=visual_state)
    both_run = DEFENDED / run_name("both", k)
    with atomic_dir(both_run) as tmp:
        save_checkpoint(model, tmp, base.arch, base.model_cfg)
        shutil.copy(text_run / "removed.csv", tmp / "removed.csv")
        both = {**yaml.safe_load((image_run / "defense.yaml").read_text()),
                **yaml.safe_load((text_run / "defense.yaml").read_text())}
        (tmp / "defense.yaml").write_text(yaml.safe_dump(both, sort_keys=True))
    print(f"combine {both_run.name}: text tower from {text_run.name}, image tower from {image_run.name}")


if __name__ == "__main__":
    run_stage(main)
