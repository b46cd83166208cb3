"""Try defense settings quickly: train in-process on the pipeline's current outputs and print
the attack's numbers, without writing any DVC output.

    python scripts/defense_trial.py K --image '{"beta": 1.5}' [--text '{"target": "human"}']
    python scripts/defense_trial.py K --image-from data/defended/image-kK --text '{"target": "human"}'

Removes development-pool people only (`--seed` picks which; docs/method.md §6): settings are
never chosen by scoring the test pool that the README and the report present.
Needs `dvc repro idia_before` first (base model, splits, attack before). --image / --text take
JSON overrides of the image recipe in use (defend.image_recipes.<defend.image_recipe>) and of
defend.text; give one or both ('{}' = the params as they are). With both, the combined model
is attacked too. One JSON line per model: tpr_removed, wrongfully unlearned %, and the mean
correct templates of the removed after. Settings that help become params and a
`dvc exp run -S ...`; docs/defense_trials.csv records the ones measured.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import pandas as pd
import torch

from pipeline.attack.run import load_embeddings, run_idia
from pipeline.core.defense_params import image_config_from_dict, text_config_from_dict
from pipeline.defenses.image_defense import train_image_defense
from pipeline.defenses.targets import check_text_target, tuning_removal_set
from pipeline.defenses.text_defense import train_text_defense
from pipeline.defenses.trigger_photos import trigger_photo_embeddings
from pipeline.defenses.towers import build_defended_model
from pipeline.evaluation.collateral import compare
from pipeline.models.checkpoint import load_model
from pipeline.models.device import resolve_device, select_attention_kernel
from pipeline.core.params import load_params
from pipeline.defenses.image_inputs import image_defense_inputs
from pipeline.models.image_encoding import model_image_size
from pipeline.evaluation.defended import zeroshot_against_base

SPLITS, BEFORE = Path("data/splits"), Path("data/idia_before")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("k", type=int)
    ap.add_argument("--image", type=json.loads, help="JSON overrides of the image recipe")
    ap.add_argument("--text", type=json.loads, help="JSON overrides of defend.text")
    ap.add_argument("--image-from", type=Path,
                    help="take the image tower of this defended model (data/defended/image-kK) instead of training one")
    ap.add_argument("--zeroshot", action="store_true",
                    help="also the zero-shot top-1 change on each benchmark, in points (about 10 s a model)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--pool", default="dev", help="whom to remove: only 'dev' is allowed (docs/method.md §6)")
    ap.add_argument("--seed", type=int, default=None, help="removal seed (default: defend.seed)")
    args = ap.parse_args()
    if args.image is None and args.text is None:
        ap.error("give --image and/or --text")
    if args.image_from is not None and (args.image is not None or args.image_from.name != f"image-k{args.k}"):
        ap.error(f"--image-from {args.image_from}: give it alone (no --image) and for the same K (image-k{args.k})")
    p = load_params("defend")
    device = resolve_device(args.device, "--device")
    select_attention_kernel(device)
    torch.set_num_threads(p.get("threads", 2))
    before = pd.read_csv(BEFORE / "identities.csv")
    seed = p["seed"] if args.seed is None else args.seed
    names = tuning_removal_set(before, pd.read_csv(SPLITS / "identities.csv"), args.k, seed, args.pool)
    if args.image_from is not None:
        removed = list(pd.read_csv(args.image_from / "removed.csv")["name"])
        if removed != names:
            ap.error(f"--image-from {args.image_from} removed other people than this trial's development-pool "
                     "set; train it with `dvc exp run -S defend.pool=dev` (same defend.seed) first")
    loaded = load_model(Path("data/base_model"), device)
    clean = pd.read_parquet(SPLITS / "clean_captions.parquet")
    train = clean[clean["split"] == "train"]
    identities, photos = pd.read_csv(SPLITS / "identities.csv"), pd.read_csv(SPLITS / "idia_photos.csv")
    candidates = pd.read_csv(SPLITS / "candidates.csv")

    def attack(model, tag, **reuse):
        defended = dataclasses.replace(loaded, model=model.eval())
        result = run_idia(defended, identities, photos, candidates, 1, 256, device, **reuse)
        _, m = compare(before, result.table, names)
        row = {"model": tag, "k": args.k, "tpr_removed": m["tpr_removed"],
               "wrongfully_unlearned_pct": round(m["wrongfully_unlearned_pct"], 1),
               "correct_templates_removed_after": m["correct_templates_removed_after"]}
        if args.zeroshot:
            zs = zeroshot_against_base(defended, "image_emb" not in reuse, 256, device, Path("data/utility_before"))
            row["zeroshot_top1_change_points"] = {b: round(100 * v["top1_change"], 2) for b, v in zs.items()}
        print(json.dumps(row), flush=True)

    visual = text = None
    if args.image is not None:
        recipe = p["image_recipe"]
        cfg = image_config_from_dict({**p["image_recipes"][recipe], **args.image})
        inputs = image_defense_inputs(cfg, names, train, model_image_size(loaded.model),
                                      shards=Path("data/laion/shards"), trigger_faces=SPLITS / "trigger_faces.csv",
                                      facescrub_index=Path("data/facescrub/index.parquet"),
                                      retain_pattern=p["retain_caption_pattern"])
        t = time.perf_counter()
        run = train_image_defense(loaded.model, cfg=cfg, device=device, **inputs)
        visual = run.student
        print(f"image defense ({recipe} + {json.dumps(args.image)}): {time.perf_counter() - t:.0f} s", flush=True)
        attack(build_defended_model(loaded.model, visual_student=visual), "image",
               text_emb=load_embeddings(BEFORE / "text_embeddings.safetensors"))
    if args.image_from is not None:
        visual = load_model(args.image_from, device).model.visual
    if args.text is not None:
        cfg = text_config_from_dict({**p["text"], **args.text})
        check_text_target(cfg.target, list(candidates["name"]))
        t = time.perf_counter()
        faces = (trigger_photo_embeddings(loaded.model, loaded.preprocess, names, SPLITS / "trigger_faces.csv",
                                          Path("data/facescrub/index.parquet"), device) if cfg.face_push else None)
        run = train_text_defense(loaded.model, loaded.tokenizer, list(train["caption"]), names, cfg, device,
                                 faces=faces)
        text = run.student
        print(f"text defense ({json.dumps(args.text)}): {time.perf_counter() - t:.0f} s", flush=True)
        attack(build_defended_model(loaded.model, text_student=text), "text",
               image_emb=load_embeddings(BEFORE / "image_embeddings.safetensors"))
    if visual is not None and text is not None:
        attack(build_defended_model(loaded.model, text_student=text, visual_student=visual), "both")


if __name__ == "__main__":
    main()
