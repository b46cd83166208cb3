"""Reading the image-caption webdataset shards that img2dataset writes."""
from __future__ import annotations

import io
import sys
import tarfile
from pathlib import Path

import numpy as np
import torch
import webdataset as wds
from PIL import Image
from tqdm import tqdm

from pipeline.core.errors import PipelineError


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


class ShardImages:
    """The images of chosen samples of the shards, decoded only when asked for.

    Behaves like the uint8 tensor [N, 3, H, W] that `read_shards` would give for these keys
    (in the given order; keys without an image and a caption are left out, as there), but
    reads only the rows that are used: `prefetch(indices)` decodes them once, indexing with
    a tensor of row numbers returns them. A paper-scale corpus (635k images at 224 px,
    ~95 GB decoded) never has to fit in memory.
    """

    dtype = torch.uint8

    def __init__(self, shard_dir: Path, keys: list[str]):
        where: dict[str, tuple[Path, int, int]] = {}
        captioned: set[str] = set()
        for shard in list_shards(shard_dir):
            with tarfile.open(shard) as tar:
                for member in tar:
                    if not member.isfile() or "." not in member.name:
                        continue
                    key, ext = member.name.split(".", 1)
                    if ext == "jpg":
                        where[key] = (shard, member.offset_data, member.size)
                    elif ext == "txt":
                        captioned.add(key)
        self.shard_dir = Path(shard_dir)
        self.keys = [k for k in keys if k in where and k in captioned]
        if not self.keys:
            raise PipelineError(f"none of the {len(keys)} requested samples is in the shards of {shard_dir}")
        self._where = {k: where[k] for k in self.keys}
        self._cache: dict[int, torch.Tensor] = {}
        self._size: tuple[int, ...] | None = None

    def __len__(self) -> int:
        return len(self.keys)

    def dim(self) -> int:
        return 4

    @property
    def shape(self) -> tuple[int, ...]:
        if self._size is None:
            self.prefetch(torch.tensor([0]))
        return (len(self.keys), *self._size)

    def prefetch(self, indices: torch.Tensor) -> None:
        """Decode the rows in `indices` that are not decoded yet, one pass per shard."""
        wanted = sorted({int(i) for i in torch.as_tensor(indices).flatten().tolist()} - set(self._cache))
        by_shard: dict[Path, list[int]] = {}
        for i in wanted:
            by_shard.setdefault(self._where[self.keys[i]][0], []).append(i)
        for shard, rows in tqdm(sorted(by_shard.items()), desc=f"decoding {len(wanted)} image(s)",
                                unit="shard", disable=len(wanted) < 1000):
            with open(shard, "rb") as fh:
                for i in sorted(rows, key=lambda r: self._where[self.keys[r]][1]):
                    _, offset, size = self._where[self.keys[i]]
                    fh.seek(offset)
                    try:
                        image = _decode_rgb(fh.read(size))
                    except (OSError, ValueError):
                        raise PipelineError(f"{shard}: image {self.keys[i]}.jpg cannot be decoded") from None
                    tensor = torch.from_numpy(image.copy()).permute(2, 0, 1).contiguous()  # PIL's array is read-only
                    if self._size is None:
                        self._size = tuple(tensor.shape)
                    elif tuple(tensor.shape) != self._size:
                        raise PipelineError(f"{self.shard_dir}: images have different sizes {self._size} and "
                                            f"{tuple(tensor.shape)}; download them with one image_size and a "
                                            "resize_mode such as 'border'")
                    self._cache[i] = tensor

    def __getitem__(self, indices) -> torch.Tensor:
        idx = torch.as_tensor(indices, dtype=torch.long)
        flat = idx.flatten()
        self.prefetch(flat)
        out = torch.stack([self._cache[int(i)] for i in flat.tolist()]) if len(flat) else \
            torch.empty(0, *self.shape[1:], dtype=torch.uint8)
        return out.view(*idx.shape, *out.shape[1:])

    def all(self) -> torch.Tensor:
        """Every row as one tensor (for small selections, e.g. held-out images)."""
        return self[torch.arange(len(self.keys))]
