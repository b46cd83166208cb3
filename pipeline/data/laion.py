"""LAION-style parquet -> webdataset shards with img2dataset.

Each sample in `NNNNN.tar` is `<key>.jpg` (resized by img2dataset), `<key>.txt` (the
caption) and `<key>.json` (img2dataset's metadata plus the parquet's extra columns).
img2dataset writes samples in completion order with wall-clock mtimes; the shards are
repacked sorted by key with fixed tar headers so that the same inputs give the same bytes.
"""
from __future__ import annotations

import json
import shutil
import tarfile
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tqdm import tqdm

from pipeline.core.atomic import atomic_dir
from pipeline.data.downloading import (DOWNLOAD_REASONS, OTHER,
                                       count_failures, read_results, read_stats, reason_table,
                                       resolve_url, run_img2dataset, top_errors)
from pipeline.core.errors import PipelineError

PARAM = "download_laion.parquet"
# Column names img2dataset keeps for itself (save_additional_columns refuses them).
RESERVED_COLUMNS = {"key", "caption", "url", "width", "height", "original_width",
                    "original_height", "status", "error_message", "exif", "md5", "sha256", "sha512"}
RESIZE_MODES = ("no", "keep_ratio", "center_crop", "border", "keep_ratio_largest")
DISTRIBUTORS = ("multiprocessing", "pyspark")
# Rows dropped before img2dataset sees them (it would download a null-caption row silently).
MISSING_URL = "missing_url"
MISSING_CAPTION = "missing_caption"


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


def blank_rows(table: pa.Table, column: str, key: str, source: str) -> np.ndarray:
    """True where `column` is null or only whitespace."""
    try:
        text = pc.cast(table.column(column), pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise PipelineError(f"download_laion.{key}: column {column!r} of {source} is not text "
                            f"({table.schema.field(column).type})") from None
    empty = pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(text)), 0)
    return np.asarray(pc.fill_null(empty, True).to_numpy(zero_copy_only=False), dtype=bool)


def write_url_list(table: pa.Table, url_col: str, caption_col: str, extras: list[str],
                   base: Path | str, path: Path) -> dict[str, str]:
    """The parquet img2dataset reads: URLs resolved, only the columns it needs.

    Returns {resolved: as given} for the URLs that resolving changed (relative ones), so the
    shards can keep the URL as the parquet gives it: a resolved relative URL holds the
    absolute path of this checkout, and outputs must not depend on where the repository lives."""
    given = table.column(url_col).to_pylist()
    urls = [resolve_url(u, base) for u in tqdm(given, desc="urls", unit="row", mininterval=2)]
    columns = {url_col: pa.array(urls, type=pa.string()),
               caption_col: table.column(caption_col).cast(pa.string())}
    columns.update({c: table.column(c) for c in extras})
    pq.write_table(pa.table(columns), path)
    return {r: g for r, g in zip(urls, given) if r != g}


def repack_shard(src: Path, dst: Path, urls: dict[str, str] | None = None) -> int:
    """Copy a webdataset tar sorted by (key, extension) with fixed headers; return its samples.

    urls: {url img2dataset saw: url to record} for each sample's .json (see write_url_list)."""
    with tarfile.open(src) as tin:
        members = {m.name: tin.extractfile(m).read() for m in tin.getmembers() if m.isfile()}
    if urls:
        for name in [n for n in members if n.endswith(".json")]:
            meta = json.loads(members[name])
            if meta.get("url") in urls:
                meta["url"] = urls[meta["url"]]
                members[name] = json.dumps(meta).encode()
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
                   threads: int, shard_size: int, timeout: float, spark_master: str | None = None) -> dict:
    """Download the parquet's images into `shards_dir/NNNNN.tar` (atomically); return the report.

    Failed samples are counted by reason, never fatal; the stage fails only when no image
    at all could be downloaded. Rows with a null or blank URL (`missing_url`) or caption
    (`missing_caption`; a row lacking both counts as missing_url) are dropped before the
    download and counted with the failures, so downloaded + failed == rows_read. These two
    reasons appear in `failed_by_reason` only when such rows exist, so a clean parquet's
    report keeps its keys. An image that does not decode is `undecodable_image`.
    """
    shards_dir = Path(shards_dir)
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
        rows_read = table.num_rows
        no_url = blank_rows(table, url_col, "url_col", source)
        no_caption = blank_rows(table, caption_col, "caption_col", source) & ~no_url
        dropped, messages = Counter(), Counter()
        for reason, mask, column in ((MISSING_URL, no_url, url_col), (MISSING_CAPTION, no_caption, caption_col)):
            if mask.any():
                dropped[reason] = int(mask.sum())
                messages[f"null or empty {column}, not downloaded (first at row {int(np.flatnonzero(mask)[0])}, "
                         "counting from 0)"] = dropped[reason]
        if dropped:
            table = table.filter(pa.array(~(no_url | no_caption)))
        if table.num_rows == 0:
            raise PipelineError(f"{PARAM}: none of the {rows_read} rows of {source} has both a {url_col} and a "
                                f"{caption_col} (missing_url {dropped[MISSING_URL]}, "
                                f"missing_caption {dropped[MISSING_CAPTION]})")
        given_urls = write_url_list(table, url_col, caption_col, extras, base, work / "urls.parquet")
        rows_kept = table.num_rows
        del table
        run_img2dataset(
            work / "urls.parquet", work / "out", spark_master=spark_master,
            url_col=url_col, caption_col=caption_col, save_additional_columns=extras or None,
            output_format="webdataset", image_size=image_size, resize_mode=resize_mode,
            distributor=distributor, processes_count=processes, thread_count=threads,
            number_sample_per_shard=shard_size, timeout=timeout,
        )
        results = read_results(work / "out")
        stats = read_stats(work / "out")
        failures, download_messages = count_failures(results)
        messages.update(download_messages)
        downloaded = 0
        tars = sorted((work / "out").glob("*.tar"))
        for tar in tqdm(tars, desc="repack shards", unit="shard"):
            downloaded += repack_shard(tar, tmp / tar.name, given_urls)
        shutil.rmtree(work)
        # Rows img2dataset never reported on (a worker died on its shard) are failures too.
        unaccounted = rows_kept - downloaded - sum(failures.values())
        if unaccounted > 0:
            failures[OTHER] += unaccounted
            messages["no result from img2dataset (its worker failed)"] += unaccounted
        errors = top_errors(messages)
        by_reason = reason_table(failures, DOWNLOAD_REASONS)
        by_reason.update(dropped)
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

