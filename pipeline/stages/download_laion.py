"""Stage download_laion: LAION-style parquet -> webdataset shards, with a download report."""
from __future__ import annotations

from pathlib import Path

from pipeline.core.atomic import write_json
from pipeline.data.downloading import check_distributor
from pipeline.data.laion import DISTRIBUTORS, RESIZE_MODES, download_laion
from pipeline.core.params import load_params, require
from pipeline.core.stage_runner import run_stage

SECTION = "download_laion"
SHARDS_DIR = Path("data/laion/shards")
METRICS = Path("metrics/download_laion.json")


def main() -> None:
    params = load_params(SECTION)
    source = require(params, SECTION, "parquet", str)
    distributor = require(params, SECTION, "distributor", str, choices=DISTRIBUTORS)
    check_distributor(distributor, f"{SECTION}.distributor")
    report = download_laion(
        source, SHARDS_DIR,
        url_col=require(params, SECTION, "url_col", str),
        caption_col=require(params, SECTION, "caption_col", str),
        image_size=require(params, SECTION, "image_size", int, low=1),
        resize_mode=require(params, SECTION, "resize_mode", str, choices=RESIZE_MODES),
        distributor=distributor,
        processes=require(params, SECTION, "processes", int, low=1),
        threads=require(params, SECTION, "threads", int, low=1),
        shard_size=require(params, SECTION, "shard_size", int, low=1),
        timeout=require(params, SECTION, "timeout", (int, float), low=0.1),
    )
    write_json(METRICS, report)
    print(f"download_laion: {report['downloaded']} of {report['rows_read']} images "
          f"in {report['shards']} shard(s)")


if __name__ == "__main__":
    run_stage(main)
