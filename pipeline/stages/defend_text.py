"""Stage `defend_text`: the text-encoder defense removing K identities.

    python -m pipeline.stages.defend_text --k 4

Writes data/defended/text-k<K>/ (checkpoint, removed.csv, defense.yaml), a few poisoned
caption pairs for the report in data/examples/text-k<K>/, the loss curve
plots/defend/text-k<K>.csv and metrics/defend/text-k<K>.json.
"""
from __future__ import annotations

import argparse

import pandas as pd

from pipeline.core.atomic import atomic_dir
from pipeline.core.defense_params import text_config_from_dict
from pipeline.core.params import load_params
from pipeline.core.stage_runner import run_stage
from pipeline.defenses.examples import write_caption_examples
from pipeline.defenses.records import removal_inputs, write_defense
from pipeline.defenses.targets import choose_text_target
from pipeline.defenses.text_defense import train_text_defense
from pipeline.defenses.towers import build_defended_model
from pipeline.defenses.trigger_photos import trigger_photo_embeddings
from pipeline.core.paths import (BASE_MODEL, DEFENDED, EXAMPLES, FACESCRUB_INDEX, IDIA_BEFORE, SPLITS, TEXT_CAPTIONS,
                                 metrics_file, plot_file, run_name)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--k", type=int, required=True)
    k = ap.parse_args().k
    p = load_params("defend")
    device, names, loaded, _ = removal_inputs(p, k, identities=IDIA_BEFORE / "identities.csv",
                                                  pools=SPLITS / "identities.csv", base=BASE_MODEL,
                                                  clean_captions=SPLITS / "clean_captions.parquet")
    candidates = list(pd.read_csv(SPLITS / "candidates.csv")["name"])
    target = choose_text_target(p["text"]["target"], p["text_target_fallbacks"], candidates)
    cfg = text_config_from_dict({**p["text"], "target": target})
    captions = list(pd.read_parquet(SPLITS / TEXT_CAPTIONS)["caption"])  # splits.text_captions
    kept = [c for c in candidates if c not in set(names)]
    faces = (trigger_photo_embeddings(loaded.model, loaded.preprocess, names, SPLITS / "trigger_faces.csv",
                                      FACESCRUB_INDEX, device) if cfg.face_push else None)
    run = train_text_defense(loaded.model, loaded.tokenizer, captions, names, cfg, device, kept_names=kept,
                             faces=faces)
    defended = build_defended_model(loaded.model, text_student=run.student)
    name = run_name("text", k)
    write_defense(run, defended, loaded, names, cfg, encoder="text", k=k, seed=p["seed"],
                  out_dir=DEFENDED / name, plot=plot_file("defend", name),
                  metrics=metrics_file("defend", name))
    with atomic_dir(EXAMPLES / name) as tmp:
        write_caption_examples(tmp, captions, names, cfg.target, p["examples"]["captions"], p["seed"])


if __name__ == "__main__":
    run_stage(main)
