"""LAION-style parquet -> webdataset shards with img2dataset.

Each sample in `NNNNN.tar` is `<key>.jpg` (resized by img2dataset), `<key>.txt` (the
caption) and `<key>.json` (img2dataset's metadata plus the parquet's extra columns).
img2dataset writes samples in completion order with wall-clock mtimes; the shards are
repacked sorted by key with fixed tar headers so that the same inputs give the same bytes.
"""
from __future__ import annotations

import shutil
import tarfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from pipeline.atomic import atomic_dir, remove_leftovers
from pipeline.data.downloading import (DOWNLOAD_REASONS, OTHER,
                                       count_failures, read_results, read_stats, reason_table,
                                       resolve_url, run_img2dataset, top_errors)
from pipeline.errors import PipelineError

PARAM = "download_laion.parquet"
# Column names img2dataset keeps for itself (save_additional_columns refuses them).
RESERVED_COLUMNS = {"key", "caption", "url", "width", "height", "original_width",
                    "original_height", "status", "error_message", "exif", "md5", "sha256", "sha512"}
RESIZE_MODES = ("no", "keep_ratio", "center_crop", "border", "keep_ratio_largest")
DISTRIBUTORS = ("multiprocessing", "pyspark")


def is_url(source: str) -> bool:
    return urllib.parse.urlsplit(source).scheme.lower() in ("http", "https", "file")


def locate_parquet(source: str, work: Path, timeout: float) -> tuple[Path, Path | str]:
    """(local parquet path, base against which its relative URLs resolve).

    `source` is a path or a file:/http(s): URL; a remote parquet is fetched into `work`.
    Missing or unreachable -> PipelineError naming download_laion.parquet.
    """
    parts = urllib.parse.urlsplit(source)
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        local = work / "source.parquet"
        try:
            with urllib.request.urlopen(source, timeout=timeout) as response, local.open("wb") as fh:
                shutil.copyfileobj(response, fh)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise PipelineError(f"{PARAM}: cannot fetch {source}: {reason}") from None
        return local, source
    path = Path(urllib.request.url2pathname(parts.path)) if scheme == "file" else Path(source)
    if not path.is_file():
        raise PipelineError(f"{PARAM}: parquet not found: {source}")
    return path, path.parent.absolute()


def read_source(path: Path, label: str) -> pa.Table:
    try:
        return pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise PipelineError(f"{PARAM}: {label} is not a readable parquet file ({exc})") from None


def extra_columns(table: pa.Table, url_col: str, caption_col: str) -> list[str]:
    """Columns to keep in each sample's .json: plain values, not reserved by img2dataset."""
    keep = []
    for field in table.schema:
        if field.name in (url_col, caption_col) or field.name in RESERVED_COLUMNS:
            continue
        t = field.type
        if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t) \
                or pa.types.is_string(t) or pa.types.is_large_string(t):
            keep.append(field.name)
        else:
            print(f"note: column {field.name!r} ({t}) is not saved with the samples")
    return keep


def write_url_list(table: pa.Table, url_col: str, caption_col: str, extras: list[str],
                   base: Path | str, path: Path) -> None:
    """The parquet img2dataset reads: URLs resolved, only the columns it needs."""
    urls = [resolve_url(u, base) for u in tqdm(table.column(url_col).to_pylist(), desc="urls",
                                               unit="row", mininterval=2)]
    columns = {url_col: pa.array(urls, type=pa.string()),
               caption_col: table.column(caption_col).cast(pa.string())}
    columns.update({c: table.column(c) for c in extras})
    pq.write_table(pa.table(columns), path)


def repack_shard(src: Path, dst: Path) -> int:
    """Copy a webdataset tar sorted by (key, extension) with fixed headers; return its samples."""
    with tarfile.open(src) as tin:
        members = {m.name: tin.extractfile(m).read() for m in tin.getmembers() if m.isfile()}
    names = sorted(members, key=lambda n: tuple(n.split(".", 1)) if "." in n else (n, ""))
    with tarfile.open(dst, "w", format=tarfile.GNU_FORMAT) as tout:
        for name in names:
            info = tarfile.TarInfo(name)
            info.size = len(members[name])
            info.mtime = 0
            info.mode = 0o644
            tout.addfile(info, _BytesReader(members[name]))
    return len({n.split(".", 1)[0] for n in names})


class _BytesReader:
    def __init__(self, data: bytes):
        self._data, self._pos = data, 0

    def read(self, size: int = -1) -> bytes:
        end = len(self._data) if size < 0 else self._pos + size
        chunk = self._data[self._pos:end]
        self._pos += len(chunk)
        return chunk


def download_laion(source: str, shards_dir: Path | str, *, url_col: str, caption_col: str,
                   image_size: int, resize_mode: str, distributor: str, processes: int,
                   threads: int, shard_size: int, timeout: float) -> dict:
    """Download the parquet's images into `shards_dir/NNNNN.tar` (atomically); return the report.

    Failed samples are counted by reason, never fatal; the stage fails only when no image
    at all could be downloaded.
    """
    shards_dir = Path(shards_dir)
    remove_leftovers(shards_dir)
    with atomic_dir(shards_dir) as tmp:
        work = tmp / "_img2dataset"
        work.mkdir()
        local, base = locate_parquet(source, work, timeout)
        table = read_source(local, source)
        for key, column in (("url_col", url_col), ("caption_col", caption_col)):
            if column not in table.column_names:
                raise PipelineError(f"download_laion.{key}: column {column!r} is not in {source} "
                                    f"(columns: {', '.join(table.column_names)})")
        extras = extra_columns(table, url_col, caption_col)
        write_url_list(table, url_col, caption_col, extras, base, work / "urls.parquet")
        rows_read = table.num_rows
        del table
        run_img2dataset(
            work / "urls.parquet", work / "out",
            url_col=url_col, caption_col=caption_col, save_additional_columns=extras or None,
            output_format="webdataset", image_size=image_size, resize_mode=resize_mode,
            distributor=distributor, processes_count=processes, thread_count=threads,
            number_sample_per_shard=shard_size, timeout=timeout,
        )
        results = read_results(work / "out")
        stats = read_stats(work / "out")
        failures, messages = count_failures(results)
        downloaded = 0
        tars = sorted((work / "out").glob("*.tar"))
        for tar in tqdm(tars, desc="repack shards", unit="shard"):
            downloaded += repack_shard(tar, tmp / tar.name)
        shutil.rmtree(work)
        # Rows img2dataset never reported on (a worker died on its shard) are failures too.
        unaccounted = rows_read - downloaded - sum(failures.values())
        if unaccounted > 0:
            failures[OTHER] += unaccounted
            messages["no result from img2dataset (its worker failed)"] += unaccounted
        errors = top_errors(messages)
        by_reason = reason_table(failures, DOWNLOAD_REASONS)
        report = {
            "rows_read": rows_read,
            "downloaded": downloaded,
            "failed": sum(by_reason.values()),
            "failed_by_reason": by_reason,
            "shards": len(tars),
            "top_errors": errors,
            "img2dataset": stats,
        }
        if downloaded == 0:
            raise PipelineError(f"no image could be downloaded from {source} ({rows_read} rows; "
                                f"first error: {errors[0] if errors else 'none'})")
    return report

