"""Stage `defend`: one backdoor defense (text or image encoder) removing K identities.

    python -m pipeline.stages.defend --encoder text --k 4

Writes the defended open_clip checkpoint (and the removed names) to
data/defended/<encoder>-k<K>/, the loss curve to plots/defend/<encoder>-k<K>.csv and
the training-loop time to metrics/defend/<encoder>-k<K>.json.
"""
from __future__ import annotations

import argparse
import re
from pathlib import Path

import pandas as pd
import torch
import yaml

from pipeline.atomic import atomic_dir, atomic_file, write_json
from pipeline.data.images import FileImages, read_many
from pipeline.defenses.config import config_to_dict, image_config_from_dict, text_config_from_dict
from pipeline.defenses.image_defense import train_image_defense
from pipeline.defenses.targets import check_text_target, removal_set
from pipeline.defenses.text_defense import train_text_defense
from pipeline.defenses.towers import build_defended_model
from pipeline.errors import PipelineError
from pipeline.models.checkpoint import load_model, save_checkpoint
from pipeline.models.device import resolve_device, select_attention_kernel
from pipeline.models.shards import ShardImages
from pipeline.params import load_params, require
from pipeline.stages._main import run_stage

BASE = Path("data/base_model")
SPLITS = Path("data/splits")
IDIA_BEFORE = Path("data/idia_before/identities.csv")
FACESCRUB_INDEX = Path("data/facescrub/index.parquet")
SHARDS = Path("data/laion/shards")


def run_name(encoder: str, k: int) -> str:
    return f"{encoder}-k{k}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--encoder", choices=["text", "image"], required=True)
    ap.add_argument("--k", type=int, required=True)
    args = ap.parse_args()

    p = load_params("defend")
    seed = require(p, "defend", "seed", int)
    threads = require(p, "defend", "threads", int, low=1)
    device = resolve_device(require(p, "defend", "device", str), "defend.device")
    select_attention_kernel(device)
    torch.set_num_threads(threads)
    names = removal_set(pd.read_csv(IDIA_BEFORE), args.k, seed)
    loaded = load_model(BASE, device)
    clean = pd.read_parquet(SPLITS / "clean_captions.parquet")
    train = clean[clean["split"] == "train"]

    if args.encoder == "text":
        cfg = text_config_from_dict(p.get("text"))
        check_text_target(cfg.target, list(pd.read_csv(SPLITS / "candidates.csv")["name"]))
        run = train_text_defense(loaded.model, loaded.tokenizer, list(train["caption"]), names,
                                 cfg, device)
        defended = build_defended_model(loaded.model, text_student=run.student)
    else:
        check_combinable(p, args.k)
        recipe = require(p, "defend", "image_recipe", str, choices=sorted(p.get("image_recipes") or {}))
        cfg = image_config_from_dict(p["image_recipes"][recipe])
        inputs = image_defense_inputs(p, cfg, names, train, image_size(loaded.model))
        run = train_image_defense(loaded.model, cfg=cfg, device=device, **inputs)
        defended = build_defended_model(loaded.model, visual_student=run.student)

    name = run_name(args.encoder, args.k)
    with atomic_dir(Path("data/defended") / name) as tmp:
        save_checkpoint(defended, tmp, loaded.arch, loaded.model_cfg)
        pd.DataFrame({"name": names}).to_csv(tmp / "removed.csv", index=False)
        # YAML, not JSON: the folder's one *.json is the open_clip config stock loaders look for.
        (tmp / "defense.yaml").write_text(yaml.safe_dump(
            {"k": args.k, "seed": seed, args.encoder: config_to_dict(cfg)}, sort_keys=True))
    with atomic_file(Path("plots/defend") / f"{name}.csv") as fh:
        pd.DataFrame(run.log).to_csv(fh, index=False)
    last = run.log[-1]
    write_json(Path("metrics/defend") / f"{name}.json", {
        "encoder": args.encoder, "k": args.k, "steps": len(run.log),
        "train_seconds": round(run.train_seconds, 2),
        "seconds_per_step": round(run.seconds_per_step, 4),
        "setup_seconds": round(run.setup_seconds, 2),
        "final_loss": last["loss"], "final_clean": last["clean"], "final_backdoor": last["backdoor"],
        "config": config_to_dict(cfg),
    })
    print(f"defend {name}: removed {len(names)} identities in {run.train_seconds:.0f} s "
          f"({run.seconds_per_step:.2f} s/step)")


def image_defense_inputs(p: dict, cfg, names: list[str], train: pd.DataFrame, size: int) -> dict:
    """The image defense's data for removing `names` (keyword arguments of train_image_defense).

    train: the clean pool's training rows (key, caption); size: the model's input side."""
    # lazily decoded: only the images the run draws are read (the corpus may be 635k images)
    clean_images = ShardImages(SHARDS, list(train["key"]))
    pattern = re.compile(require(p, "defend", "retain_caption_pattern", str))
    retain_keys = [k for k, c in zip(train["key"], train["caption"]) if pattern.search(c)]
    if cfg.retain_weight > 0 and not retain_keys:
        raise PipelineError("defend.retain_caption_pattern matches no clean caption; "
                            "the retain term needs faces of people who are kept")
    faces = pd.read_csv(SPLITS / "trigger_faces.csv")
    face_paths = [list(faces.loc[faces["name"] == n, "path"]) for n in names]
    index = pd.read_parquet(FACESCRUB_INDEX)
    trigger_photos = None
    if cfg.trigger_photo_share > 0:  # the uncropped photos of the trigger half's faces
        photo_of = dict(zip(index["face"], index["image"]))
        trigger_photos = [read_many([photo_of[f] for f in paths], desc=f"photos of {n}")
                          for n, paths in zip(names, face_paths)]
    return {"clean_images": clean_images,
            "trigger_faces": [read_many(paths, desc=f"faces of {n}") for n, paths in zip(names, face_paths)],
            "face_photos": FileImages(index["image"], size),  # read batch by batch
            "retain_images": ShardImages(SHARDS, retain_keys) if cfg.retain_weight > 0 else None,
            "trigger_photos": trigger_photos}


def check_combinable(p: dict, k: int) -> None:
    """Every image-defense K also makes the combined model, which needs the text defense of
    that K: say so before a long training run rather than when `combine` misses its input.
    (A check only: text_ks is not a param of this stage, so editing it reruns nothing here.)"""
    text_ks = require(p, "defend", "text_ks", list)
    if k not in text_ks:
        raise PipelineError(f"defend.image_ks has K={k}, which defend.text_ks {text_ks} lacks; the combined "
                            f"model (both-k{k}) needs the text defense of the same K: add {k} to defend.text_ks")


def image_size(model) -> int:
    size = model.visual.image_size
    return int(size[0] if isinstance(size, (tuple, list)) else size)


if __name__ == "__main__":
    run_stage(main)
