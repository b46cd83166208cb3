"""Stage `defend_image`: the image-encoder defense removing K identities.

    python -m pipeline.stages.defend_image --k 4

Writes data/defended/image-k<K>/ (checkpoint, removed.csv, defense.yaml), a few poisoned
images for the report in data/examples/image-k<K>/, the loss curve
plots/defend/image-k<K>.csv and metrics/defend/image-k<K>.json. The recipe is
`defend.image_recipes[defend.image_recipe]`.
"""
from __future__ import annotations

import argparse

from pipeline.core.atomic import atomic_dir
from pipeline.core.defense_params import image_config_from_dict
from pipeline.core.params import load_params
from pipeline.core.stage_runner import run_stage
from pipeline.defenses.image_defense import train_image_defense
from pipeline.defenses.image_inputs import image_defense_inputs
from pipeline.models.image_encoding import model_image_size
from pipeline.defenses.examples import write_image_examples
from pipeline.defenses.records import removal_inputs, write_defense
from pipeline.defenses.towers import build_defended_model
from pipeline.core.paths import (BASE_MODEL, DEFENDED, EXAMPLES, FACESCRUB_INDEX, IDIA_BEFORE,
                                 SHARDS, SPLITS, metrics_file, plot_file, run_name)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--k", type=int, required=True)
    k = ap.parse_args().k
    p = load_params("defend")  # the schema also checks that text_ks has K, for the combined model
    device, names, loaded, train = removal_inputs(p, k, identities=IDIA_BEFORE / "identities.csv",
                                                  pools=SPLITS / "identities.csv", base=BASE_MODEL,
                                                  clean_captions=SPLITS / "clean_captions.parquet")
    recipe = p["image_recipe"]
    cfg = image_config_from_dict(p["image_recipes"][recipe], prefix=f"defend.image_recipes.{recipe}")
    size = model_image_size(loaded.model)
    inputs = image_defense_inputs(cfg, names, train, size, shards=SHARDS,
                                  trigger_faces=SPLITS / "trigger_faces.csv", facescrub_index=FACESCRUB_INDEX,
                                  retain_pattern=p["retain_caption_pattern"])
    run = train_image_defense(loaded.model, cfg=cfg, device=device, **inputs)
    defended = build_defended_model(loaded.model, visual_student=run.student)
    name = run_name("image", k)
    write_defense(run, defended, loaded, names, cfg, encoder="image", k=k, seed=p["seed"],
                  out_dir=DEFENDED / name, plot=plot_file("defend", name),
                  metrics=metrics_file("defend", name))
    with atomic_dir(EXAMPLES / name) as tmp:
        write_image_examples(tmp, inputs["clean_images"], inputs["trigger_faces"], names, cfg,
                             p["examples"]["images"], p["seed"], size, inputs["trigger_photos"])


if __name__ == "__main__":
    run_stage(main)
