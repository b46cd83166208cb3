"""FaceScrub: parse the official lists, download the photos, cut out the faces.

The lists are tab-separated with the header `name image_id face_id url bbox sha256`;
bbox is `x1,y1,x2,y2` in pixels of the original photo and sha256 is of the raw file, so
img2dataset keeps the downloaded bytes untouched (no resize, no re-encode) and the crop
is taken from the original pixels afterwards.
"""
from __future__ import annotations

import hashlib
import io
import re
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image
from tqdm import tqdm

from pipeline.core.atomic import atomic_dir
from pipeline.data.downloading import (BAD_BBOX, HASH_MISMATCH, HTTP_ERROR, MALFORMED_ROW, OTHER,
                                       UNDECODABLE_IMAGE,
                                       failure_reason, read_results, read_stats, reason_table,
                                       resolve_url, run_img2dataset, samples_per_shard,
                                       top_errors)
from pipeline.core.errors import PipelineError
from pipeline.core.safepaths import inside, slug

LIST_HEADER = ("name", "image_id", "face_id", "url", "bbox", "sha256")
REASONS = (HTTP_ERROR, HASH_MISMATCH, UNDECODABLE_IMAGE, BAD_BBOX, MALFORMED_ROW, OTHER)
MALFORMED_LISTED = 50
JPEG_QUALITY = 95

# Misspellings in the official lists, by folder name (name with spaces -> underscores).
NAME_FIXES = {
    "Freddy_Prinze_Jr.": "Freddie_Prinze_Jr",
    "Leslie_Neilsen": "Leslie_Nielsen",
    "Robert_Di_Niro": "Robert_De_Niro",
    "Tatyana_M._Ali": "Tatyana_Ali",
}

_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
_UINT = re.compile(r"[0-9]+")
_INT = re.compile(r"-?[0-9]+")


@dataclass(frozen=True)
class ListRow:
    """One valid row of a FaceScrub list, name already fixed."""
    name: str
    folder: str
    group: str
    gender: str
    image_id: int
    face_id: int
    url: str
    bbox: tuple[int, int, int, int]
    sha256: str
    where: str          # "file:line", for the report
    renamed: str = ""   # why the folder is not the name with underscores (a slug), else ""


def list_group(path: Path | str) -> tuple[str, str]:
    """(group folder, gender) of a list, from its file name: actors -> male, actresses -> female."""
    stem = Path(path).stem
    lowered = stem.lower()
    if "actresses" in lowered:
        return "actresses", "female"
    if "actors" in lowered:
        return "actors", "male"
    return stem, "unknown"


def fix_name(name: str) -> tuple[str, str]:
    """(name with spaces, folder name with underscores), the known misspellings corrected.

    The folder is not yet safe to use as a path: `parse_row` slugs it."""
    folder = "_".join(name.split())
    folder = NAME_FIXES.get(folder, folder)
    return folder.replace("_", " "), folder


def parse_bbox(text: str) -> tuple[int, int, int, int] | None:
    """`x1,y1,x2,y2` as four ints with 0 <= x1 < x2 and 0 <= y1 < y2, else None."""
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 4 or not all(_INT.fullmatch(p) for p in parts):
        return None
    x1, y1, x2, y2 = map(int, parts)
    if min(x1, y1) < 0 or x2 <= x1 or y2 <= y1:
        return None
    return x1, y1, x2, y2


def parse_row(fields: list[str], group: str, gender: str, where: str) -> ListRow | str:
    """A ListRow, or the reason the row is malformed."""
    if len(fields) != len(LIST_HEADER):
        return f"{len(fields)} columns, expected {len(LIST_HEADER)}"
    name, image_id, face_id, url, bbox_text, sha256 = (f.strip() for f in fields)
    if not name:
        return "empty name"
    if not _UINT.fullmatch(image_id) or not _UINT.fullmatch(face_id):
        return f"image_id/face_id not a number ({image_id!r}, {face_id!r})"
    if not url:
        return "empty url"
    bbox = parse_bbox(bbox_text)
    if bbox is None:
        return f"bbox {bbox_text!r} is not x1,y1,x2,y2 with 0 <= x1 < x2, 0 <= y1 < y2"
    if not _SHA256.fullmatch(sha256):
        return f"sha256 {sha256!r} is not 64 hex digits"
    fixed, folder = fix_name(name)
    safe, why = slug(folder)
    if safe is None:
        return why
    return ListRow(fixed, safe, group, gender, int(image_id), int(face_id), url, bbox,
                   sha256.lower(), where, why)


def parse_list(path: Path | str, label: str | None = None) -> tuple[list[ListRow], list[tuple[str, str]], int]:
    """Read one list: (valid rows with URLs resolved, [(file:line, why)] malformed, data rows read).

    `label` names the file in the report (default: the path as given). Blank lines are
    skipped; a missing or wrong header is a PipelineError (it is not a FaceScrub list).
    """
    path = Path(path)
    label = label or str(path)
    group, gender = list_group(path)
    safe_group, _ = slug(group)
    if safe_group is None:
        raise PipelineError(f"{label}: the list's file name gives no usable folder name ({group!r})")
    group = safe_group
    base = path.parent.absolute()
    rows, malformed, read = [], [], 0
    with path.open(encoding="utf-8", errors="replace", newline="") as fh:
        lines = fh.read().splitlines()
    header = next((i for i, line in enumerate(lines) if line.strip()), None)
    if header is None or tuple(f.strip() for f in lines[header].split("\t")) != LIST_HEADER:
        raise PipelineError(f"{label}: not a FaceScrub list; its first line must be the header "
                            + "\\t".join(LIST_HEADER))
    for number, line in enumerate(lines[header + 1:], start=header + 2):
        if not line.strip():
            continue
        read += 1
        where = f"{label}:{number}"
        row = parse_row(line.split("\t"), group, gender, where)
        if isinstance(row, str):
            malformed.append((where, row))
        else:
            rows.append(ListRow(**{**row.__dict__, "url": resolve_url(row.url, base)}))
    return rows, malformed, read


def drop_duplicates(rows: list[ListRow]) -> tuple[list[ListRow], list[tuple[str, str]]]:
    """Keep the first row per (group, folder, image_id): later ones would overwrite its files.

    Two different names whose slugs are the same folder would mix their photos: the later
    name's rows are rejected."""
    seen: dict[tuple[str, str, int], str] = {}
    owner: dict[tuple[str, str], tuple[str, str]] = {}
    kept, dupes = [], []
    for row in rows:
        first_name, first_where = owner.setdefault((row.group, row.folder), (row.name, row.where))
        key = (row.group, row.folder, row.image_id)
        if first_name != row.name:
            dupes.append((row.where, f"name {row.name!r} gives folder {row.folder!r}, already the folder of "
                                     f"{first_name!r} (at {first_where})"))
        elif key in seen:
            dupes.append((row.where, f"duplicate image_id {row.image_id} of {row.name} (first at {seen[key]})"))
        else:
            seen[key] = row.where
            kept.append(row)
    return kept, dupes


def decode_photo(data: bytes) -> Image.Image:
    """Fully decoded RGB pixels; raises OSError/ValueError for a corrupt or truncated file."""
    with Image.open(io.BytesIO(data)) as img:
        img.load()
        return img.convert("RGB")


def crop_face(photo: Image.Image, bbox: tuple[int, int, int, int]) -> Image.Image | None:
    """The bbox region of the original pixels, or None when the bbox leaves the photo."""
    x1, y1, x2, y2 = bbox
    if x2 > photo.width or y2 > photo.height:
        return None
    return photo.crop((x1, y1, x2, y2))


def _jpeg_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    # No chroma subsampling: faces are small, and 4:2:0 would smear colour across their edges.
    img.save(buf, format="JPEG", quality=JPEG_QUALITY, subsampling=0)
    return buf.getvalue()


def _is_jpeg(data: bytes) -> bool:
    return data[:3] == b"\xff\xd8\xff"


def _write_url_list(rows: list[ListRow], path: Path) -> None:
    table = pa.table({
        "url": [r.url for r in rows],
        "sha256": [r.sha256 for r in rows],
        "row": pa.array(range(len(rows)), type=pa.int64()),
    })
    pq.write_table(table, path)


def download_facescrub(lists: list[Path | str], out_dir: Path | str, *, min_photos: int,
                       processes: int, threads: int, timeout: float,
                       labels: list[str] | None = None, distributor: str = "multiprocessing",
                       spark_master: str | None = None) -> dict:
    """Download every listed photo into `out_dir` (atomically) and return the report.

    Writes `<group>/images/<Folder>/<image_id>.jpg` (the photo; its original bytes when it
    is a JPEG), `<group>/faces/<Folder>/<image_id>.jpg` (the bbox crop) and `index.parquet`.
    Paths in the index are `out_dir`-prefixed as given (repo-relative when `out_dir` is).
    Dead URLs, hash mismatches, corrupt files, bad bboxes and malformed rows are counted;
    the stage fails only when nothing at all could be downloaded.
    """
    out_dir = Path(out_dir)
    labels = labels or [str(p) for p in lists]
    rows, malformed, rows_read = [], [], 0
    for path, label in zip(lists, labels):
        got, bad, read = parse_list(path, label)
        rows += got
        malformed += bad
        rows_read += read
    rows, dupes = drop_duplicates(rows)
    malformed += dupes
    for where, why in malformed[:20]:
        print(f"malformed row {where}: {why}")
    renamed = sorted({row.renamed for row in rows if row.renamed})
    for why in renamed[:20]:
        print(f"folder name: {why}")

    failures: Counter = Counter({MALFORMED_ROW: len(malformed)})
    messages: Counter = Counter()
    index = []
    stats = {}
    with atomic_dir(out_dir) as tmp:  # it removes a killed run's leftovers first
        if rows:
            work = tmp / "_img2dataset"
            work.mkdir()
            _write_url_list(rows, work / "urls.parquet")
            run_img2dataset(
                work / "urls.parquet", work / "out", spark_master=spark_master, distributor=distributor,
                url_col="url", save_additional_columns=["row"],
                compute_hash="sha256", verify_hash=["sha256", "sha256"],
                output_format="files", disable_all_reencoding=True, extract_exif=False,
                processes_count=processes, thread_count=threads, timeout=timeout,
                number_sample_per_shard=samples_per_shard(len(rows), processes),
            )
            results = read_results(work / "out")
            stats = read_stats(work / "out")
            index = _write_photos(rows, results, work / "out", tmp, out_dir, failures, messages)
            shutil.rmtree(work)
        table = pd.DataFrame(index, columns=["name", "folder", "group", "gender", "image_id",
                                             "face_id", "image", "face", "image_sha256", "face_sha256"])
        table = table.sort_values(["group", "folder", "image_id", "face_id"]).reset_index(drop=True)
        report = _report(rows_read, len(table), failures, messages, malformed, rows, table,
                         min_photos, stats)
        report["names_slugged"] = len(renamed)
        report["names_slugged_listed"] = renamed[:MALFORMED_LISTED]
        if table.empty:
            raise PipelineError(
                f"no FaceScrub photo could be downloaded from {', '.join(labels)} "
                f"({rows_read} rows; failed: {_nonzero(report['failed_by_reason'])}; "
                f"first error: {report['top_errors'][0] if report['top_errors'] else 'none'})")
        table.to_parquet(tmp / "index.parquet", index=False)
    return report


def _write_photos(rows: list[ListRow], results: pd.DataFrame, i2d_out: Path, tmp: Path,
                  out_dir: Path, failures: Counter, messages: Counter) -> list[dict]:
    """Per downloaded row: decode, check the bbox, write photo + face; count what fails."""
    by_row = {}
    if "row" in results:
        by_row = {int(r): (s, e, k, sh) for r, s, e, k, sh in zip(
            results["row"], results["status"], results["error_message"], results["key"], results["shard"])}
    index = []
    for i, row in enumerate(tqdm(rows, desc="faces", unit="photo")):
        if i not in by_row:
            failures[OTHER] += 1
            messages["no result from img2dataset (its worker failed)"] += 1
            continue
        status, error, key, shard = by_row[i]
        reason = failure_reason(status, error)
        if reason is not None:
            failures[reason] += 1
            messages[str(error)] += 1
            continue
        data = (i2d_out / shard / f"{key}.jpg").read_bytes()
        try:
            photo = decode_photo(data)
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            failures[UNDECODABLE_IMAGE] += 1
            messages[f"undecodable image: {exc}"] += 1
            continue
        face = crop_face(photo, row.bbox)
        if face is None:
            failures[BAD_BBOX] += 1
            messages["bbox outside the photo"] += 1
            continue
        rel_image = Path(row.group) / "images" / row.folder / f"{row.image_id}.jpg"
        rel_face = Path(row.group) / "faces" / row.folder / f"{row.image_id}.jpg"
        digests = []
        for rel, payload in ((rel_image, data if _is_jpeg(data) else _jpeg_bytes(photo)),
                             (rel_face, _jpeg_bytes(face))):
            path = inside(tmp, rel)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(payload)
            digests.append(hashlib.sha256(payload).hexdigest())
        index.append({"name": row.name, "folder": row.folder, "group": row.group,
                      "gender": row.gender, "image_id": row.image_id, "face_id": row.face_id,
                      "image": (out_dir / rel_image).as_posix(), "face": (out_dir / rel_face).as_posix(),
                      "image_sha256": digests[0], "face_sha256": digests[1]})
    return index


def _report(rows_read, downloaded, failures, messages, malformed, rows, table, min_photos, stats) -> dict:
    by_reason = reason_table(failures, REASONS)
    photos = table.groupby(["group", "folder"]).size() if not table.empty else pd.Series(dtype=int)
    report = {
        "rows_read": rows_read,
        "downloaded": downloaded,
        "failed": sum(by_reason.values()),
        "failed_by_reason": by_reason,
        "malformed_rows": [where for where, _ in malformed[:MALFORMED_LISTED]],
        "malformed_rows_total": len(malformed),
        "identities": len({(r.group, r.folder) for r in rows}),
        "identities_downloaded": int(len(photos)),
        "identities_with_min_photos": int((photos >= min_photos).sum()),
        "min_photos": min_photos,
        "top_errors": top_errors(messages),
        "img2dataset": stats,
    }
    if report["downloaded"] + report["failed"] != rows_read:
        raise AssertionError(f"report does not add up: {report}")
    return report


def _nonzero(by_reason: dict) -> str:
    parts = [f"{k} {v}" for k, v in by_reason.items() if v]
    return ", ".join(parts) or "none"
