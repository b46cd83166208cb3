"""Captions of the downloaded corpus, read straight from its webdataset shards."""
from __future__ import annotations

import tarfile
from pathlib import Path

from tqdm import tqdm

from pipeline.models.shards import list_shards


def read_shard_captions(shard_dir: Path | str) -> tuple[list[str], list[str]]:
    """Return (keys, captions) of every sample in `shard_dir/*.tar`, sorted by key.

    Only the `.txt` members are read: the caption pool needs no image decoding.
    """
    shards = list_shards(Path(shard_dir))
    pairs = []
    for shard in tqdm(shards, desc="captions", unit="shard"):
        with tarfile.open(shard) as tar:
            for member in tar:
                if member.isfile() and member.name.endswith(".txt"):
                    key = member.name[: -len(".txt")]
                    pairs.append((key, tar.extractfile(member).read().decode("utf-8").strip()))
    pairs.sort()
    return [k for k, _ in pairs], [c for _, c in pairs]
