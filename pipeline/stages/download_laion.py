"""Stage download_laion: LAION-style parquet -> webdataset shards, with a download report."""
from __future__ import annotations


from pipeline.core.atomic import write_json
from pipeline.data.downloading import check_distributor
from pipeline.data.laion import download_laion
from pipeline.core.params import load_params
from pipeline.core.stage_runner import run_stage
from pipeline.core.paths import SHARDS, metrics_file

SECTION = "download_laion"


def main() -> None:
    params = load_params(SECTION)
    source = params["parquet"]
    distributor = params["distributor"]
    check_distributor(distributor, f"{SECTION}.distributor")
    report = download_laion(
        source, SHARDS,
        url_col=params["url_col"],
        caption_col=params["caption_col"],
        image_size=params["image_size"],
        resize_mode=params["resize_mode"],
        distributor=distributor,
        spark_master=params["spark_master"],
        processes=params["processes"],
        threads=params["threads"],
        shard_size=params["shard_size"],
        timeout=params["timeout"],
    )
    write_json(metrics_file("download_laion"), report)
    print(f"download_laion: {report['downloaded']} of {report['rows_read']} images "
          f"in {report['shards']} shard(s)")


if __name__ == "__main__":
    run_stage(main)
