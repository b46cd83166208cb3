"""Stage `defend_image`: the image-encoder defense removing K identities.

    python -m pipeline.stages.defend_image --k 4

Writes data/defended/image-k<K>/ (checkpoint, removed.csv, defense.yaml), the loss curve
plots/defend/image-k<K>.csv and metrics/defend/image-k<K>.json. The recipe is
`defend.image_recipes[defend.image_recipe]`.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.core.defense_params import image_config_from_dict
from pipeline.core.params import load_params
from pipeline.core.stage_runner import run_stage
from pipeline.defenses.image_defense import train_image_defense
from pipeline.defenses.image_inputs import image_defense_inputs, model_image_size
from pipeline.defenses.records import removal_inputs, run_name, write_defense
from pipeline.defenses.towers import build_defended_model

BASE = Path("data/base_model")
SPLITS = Path("data/splits")
IDIA_BEFORE = Path("data/idia_before/identities.csv")
FACESCRUB_INDEX = Path("data/facescrub/index.parquet")
SHARDS = Path("data/laion/shards")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--k", type=int, required=True)
    k = ap.parse_args().k
    p = load_params("defend")  # the schema also checks that text_ks has K, for the combined model
    device, names, loaded, train = removal_inputs(p, k, identities=IDIA_BEFORE, base=BASE,
                                                  clean_captions=SPLITS / "clean_captions.parquet")
    recipe = p["image_recipe"]
    cfg = image_config_from_dict(p["image_recipes"][recipe], prefix=f"defend.image_recipes.{recipe}")
    inputs = image_defense_inputs(cfg, names, train, model_image_size(loaded.model), shards=SHARDS,
                                  trigger_faces=SPLITS / "trigger_faces.csv", facescrub_index=FACESCRUB_INDEX,
                                  retain_pattern=p["retain_caption_pattern"])
    run = train_image_defense(loaded.model, cfg=cfg, device=device, **inputs)
    defended = build_defended_model(loaded.model, visual_student=run.student)
    name = run_name("image", k)
    write_defense(run, defended, loaded, names, cfg, encoder="image", k=k, seed=p["seed"],
                  out_dir=Path("data/defended") / name, plot=Path("plots/defend") / f"{name}.csv",
                  metrics=Path("metrics/defend") / f"{name}.json")


if __name__ == "__main__":
    run_stage(main)
