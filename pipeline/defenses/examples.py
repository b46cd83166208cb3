"""A few examples of what a defense trains on, written next to its model for the report:
trigger faces pasted into clean images (image defense), and caption pairs with a removed
name and with the target phrase (text defense). Drawn with the defenses' own sampling, so
the report shows what training saw without running defense code or reading the shards."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from PIL import Image

from pipeline.core.defense_params import ImageDefenseConfig
from pipeline.defenses.image_defense import render_poisoned_examples
from pipeline.defenses.poisoned_captions import example_poisoned_captions
from pipeline.models.image_encoding import resize_images

IMAGE_TABLE = "poisoned_images.csv"      # file, name (whose face it shows), kind
CAPTION_TABLE = "poisoned_captions.csv"  # name, trigger, target
# Capitalised word pairs look like a name: captions with one would show another person's
# name next to the removed one's, so the examples avoid them when any caption is left.
NAME_LIKE = re.compile(r"\b[A-Z][a-z]+(?:[ '-][A-Z][a-z]+)+\b")


def write_image_examples(out_dir: Path, clean_images, trigger_faces: Sequence[Sequence[torch.Tensor]],
                         names: Sequence[str], cfg: ImageDefenseConfig, n: int, seed: int, image_size: int,
                         trigger_photos: Sequence[Sequence[torch.Tensor]] | None = None) -> None:
    """n PNGs `poisoned_<i>.png` and IMAGE_TABLE into out_dir (only the table when n is 0).

    As in training, a share `cfg.trigger_photo_share` of them are whole trigger photos and
    the rest are trigger faces pasted into clean images; identities are taken in turn."""
    out_dir.mkdir(parents=True, exist_ok=True)
    n_photo = round(cfg.trigger_photo_share * n) if trigger_photos else 0
    images: list[torch.Tensor] = []
    for i in range(n_photo):
        who = trigger_photos[i % len(trigger_photos)]
        photo = who[(i // len(trigger_photos)) % len(who)]
        images.append(resize_images(photo[None], image_size)[0])
    if n - n_photo > 0:
        images += list(render_poisoned_examples(clean_images, trigger_faces, cfg, n=n - n_photo,
                                                image_size=image_size, seed=seed))
    rows = []
    for i, img in enumerate(images):
        file = f"poisoned_{i:02d}.png"
        Image.fromarray(img.permute(1, 2, 0).numpy().astype(np.uint8)).save(out_dir / file)
        who = i if i < n_photo else i - n_photo
        rows.append({"file": file, "name": names[who % len(names)],
                     "kind": "whole photo" if i < n_photo else "pasted face"})
    pd.DataFrame(rows, columns=["file", "name", "kind"]).to_csv(out_dir / IMAGE_TABLE, index=False)


def write_caption_examples(out_dir: Path, captions: Sequence[str], names: Sequence[str], target: str,
                           n: int, seed: int) -> None:
    """CAPTION_TABLE with n (name, trigger caption, target caption) rows into out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    plain = [c for c in captions if not NAME_LIKE.search(c)] or list(captions)
    pairs = example_poisoned_captions(plain, list(names), target, n=n, seed=seed) if n > 0 else []
    pd.DataFrame([{"name": p.name, "trigger": p.trigger, "target": p.target} for p in pairs],
                 columns=["name", "trigger", "target"]).to_csv(out_dir / CAPTION_TABLE, index=False)
