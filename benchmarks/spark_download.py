"""The LAION download on Spark (local mode) vs multiprocessing, in one run: rows per second.

Runs `pipeline.data.laion.download_laion` (img2dataset, then the repack into the stage's
shards) on the first N rows of the demo world's LAION parquet (file: URLs, so the disk and the
CPU set the pace, not a network) once with each distributor, same processes and threads, and
prints seconds, rows/s and the ratio. Spark's session start (its JVM) is part of its time, as
it is in the stage. Needs `dvc repro world` first.

    python benchmarks/spark_download.py [--rows 4000] [--processes 2] [--threads 8]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.data.downloading import check_distributor, resolve_url
from pipeline.data.laion import download_laion

PARQUET = Path("data/world/laion/laion.parquet")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=4000)
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--parquet", type=Path, default=PARQUET)
    args = ap.parse_args()
    check_distributor("pyspark", "--distributor")
    with tempfile.TemporaryDirectory() as tmp:
        table = pq.read_table(args.parquet).slice(0, args.rows)
        # the world's relative file: URLs, made absolute: the subset lives elsewhere
        urls = [resolve_url(u, args.parquet.resolve().parent) for u in table.column("URL").to_pylist()]
        subset = Path(tmp) / "subset.parquet"
        pq.write_table(table.set_column(table.column_names.index("URL"), "URL", pa.array(urls)), subset)
        seconds = {}
        for distributor in ("multiprocessing", "pyspark"):
            t = time.perf_counter()
            report = download_laion(str(subset), Path(tmp) / distributor, url_col="URL", caption_col="TEXT",
                                    image_size=64, resize_mode="border", distributor=distributor,
                                    processes=args.processes, threads=args.threads, shard_size=1000,
                                    timeout=10, spark_master=f"local[{args.processes}]")
            seconds[distributor] = time.perf_counter() - t
            print(f"{distributor:>15}: {report['downloaded']} of {report['rows_read']} rows in "
                  f"{seconds[distributor]:.1f} s = {report['rows_read'] / seconds[distributor]:.0f} rows/s")
    print(f"pyspark / multiprocessing time: {seconds['pyspark'] / seconds['multiprocessing']:.2f}x "
          f"({args.processes} processes, {args.threads} threads each)")


if __name__ == "__main__":
    main()
