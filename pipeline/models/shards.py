"""Reading the image-caption webdataset shards that img2dataset writes."""
from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import torch
import webdataset as wds
from PIL import Image
from tqdm import tqdm

from pipeline.errors import PipelineError


def list_shards(shard_dir: Path) -> list[Path]:
    shards = sorted(Path(shard_dir).glob("*.tar"))
    if not shards:
        raise PipelineError(f"no webdataset shards (*.tar) in {shard_dir} (run download_laion first)")
    return shards


def _decode_rgb(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img.convert("RGB"), dtype=np.uint8)


def read_shards(shard_dir: Path) -> tuple[torch.Tensor, list[str], list[str]]:
    """All samples of the shards in memory: uint8 images [N,3,H,W], captions, keys (sorted by key).

    Samples without an image or caption, or with an undecodable image, are skipped and counted
    on stderr; images of different sizes are an error (img2dataset resizes them all alike).
    """
    shards = list_shards(shard_dir)
    dataset = wds.WebDataset([str(p) for p in shards], shardshuffle=False, empty_check=False)
    records: dict[str, tuple[np.ndarray, str]] = {}
    skipped = 0
    for sample in tqdm(dataset, desc=f"reading {len(shards)} shard(s)", unit="sample"):
        key = sample["__key__"]
        if "jpg" not in sample or "txt" not in sample:
            skipped += 1
            continue
        try:
            image = _decode_rgb(sample["jpg"])
        except (OSError, ValueError):
            skipped += 1
            continue
        records[key] = (image, sample["txt"].decode("utf-8").strip())
    if skipped:
        print(f"read_shards: skipped {skipped} incomplete or undecodable sample(s) in {shard_dir}", file=sys.stderr)
    if not records:
        raise PipelineError(f"no readable image-caption samples in the shards of {shard_dir}")
    keys = sorted(records)
    sizes = {records[k][0].shape for k in keys}
    if len(sizes) != 1:
        raise PipelineError(f"{shard_dir}: images have different sizes {sorted(sizes)[:3]}; "
                            "download them with one image_size and a resize_mode such as 'border'")
    images = torch.from_numpy(np.stack([records[k][0] for k in keys])).permute(0, 3, 1, 2).contiguous()
    return images, [records[k][1] for k in keys], keys
