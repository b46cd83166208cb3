"""download_facescrub / download_laion: img2dataset over file:// and a local HTTP server.

The stage runs are real (img2dataset spawns its workers); every fixture is generated here.
"""
from __future__ import annotations

import functools
import hashlib
import http.server
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import webdataset as wds
import yaml
from PIL import Image

from pipeline.data.downloading import failure_reason, resolve_url
from pipeline.data.facescrub import crop_face, fix_name, list_group, parse_list
from pipeline.data.laion import repack_shard

REPO = Path(__file__).resolve().parents[1]
HEADER = "name\timage_id\tface_id\turl\tbbox\tsha256"


# ---------------------------------------------------------------- fixtures

def photo(seed: int, width: int = 96, height: int = 80) -> np.ndarray:
    """A blocky picture: JPEG keeps it well, and a shifted crop looks clearly different."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, size=(height // 8 + 1, width // 8 + 1, 3), dtype=np.uint8)
    return np.kron(blocks, np.ones((8, 8, 1), dtype=np.uint8))[:height, :width]


def encode(pixels: np.ndarray, fmt: str = "JPEG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    return buf.getvalue()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def http_root(tmp_path):
    """(folder served, its base URL) from a server on 127.0.0.1 running in a thread."""
    root = tmp_path / "www"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             functools.partial(Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def run_stage(stage: str, cwd: Path, params: dict) -> subprocess.CompletedProcess:
    (cwd / "params.yaml").write_text(yaml.safe_dump(params))
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1",
           "NO_ALBUMENTATIONS_UPDATE": "1", "DVC_NO_ANALYTICS": "1"}
    return subprocess.run([sys.executable, "-m", f"pipeline.stages.{stage}"], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def facescrub_params(lists) -> dict:
    return {"download_facescrub": {"lists": [str(p) for p in lists], "min_photos": 2,
                                   "distributor": "multiprocessing", "spark_master": "local[2]",
                                   "processes": 1, "threads": 4, "timeout": 5}}


def laion_params(parquet, **over) -> dict:
    section = {"parquet": str(parquet), "url_col": "URL", "caption_col": "TEXT", "image_size": 32,
               "resize_mode": "border", "distributor": "multiprocessing", "spark_master": "local[2]", "processes": 1,
               "threads": 4, "shard_size": 4, "timeout": 5}
    section.update(over)
    return {"download_laion": section}


def last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".tmp-" in p.name) if folder.exists() else []


# ---------------------------------------------------------------- unit tests

def test_resolve_url_relative_file_urls_against_the_list_folder(tmp_path):
    assert resolve_url("file:photos/1.jpg", tmp_path) == (tmp_path / "photos" / "1.jpg").as_uri()
    assert resolve_url("photos/a b.jpg", tmp_path) == (tmp_path / "photos" / "a b.jpg").as_uri()
    assert resolve_url("file:///abs/x.jpg", tmp_path) == "file:///abs/x.jpg"
    assert resolve_url("https://h/x.jpg", tmp_path) == "https://h/x.jpg"
    assert resolve_url("file:p/1.jpg", "http://h/d/laion.parquet") == "http://h/d/p/1.jpg"
    assert resolve_url(None, tmp_path) is None


def test_failure_reasons_from_img2dataset_messages():
    assert failure_reason("success", None) is None
    assert failure_reason("failed_to_download", "HTTP Error 404: File not found") == "http_error"
    assert failure_reason("failed_to_download", "<urlopen error [Errno 111] Connection refused>") == "http_error"
    assert failure_reason("failed_to_download", "hash mismatch") == "hash_mismatch"
    assert failure_reason("failed_to_resize", "Image decoding error") == "undecodable_image"
    assert failure_reason(None, None) == "other"


def test_misspelt_names_and_groups():
    assert fix_name("Freddy Prinze Jr.") == ("Freddie Prinze Jr", "Freddie_Prinze_Jr")
    assert fix_name("Leslie Neilsen") == ("Leslie Nielsen", "Leslie_Nielsen")
    assert fix_name("Robert Di Niro") == ("Robert De Niro", "Robert_De_Niro")
    assert fix_name("Tatyana M. Ali") == ("Tatyana Ali", "Tatyana_Ali")
    assert fix_name("Jane  Q. Doe") == ("Jane Q. Doe", "Jane_Q._Doe")
    assert list_group("x/facescrub_actors.txt") == ("actors", "male")
    assert list_group("facescrub_actresses.txt") == ("actresses", "female")
    assert list_group("lists/extra_people.tsv") == ("extra_people", "unknown")


def test_parse_list_counts_malformed_rows_with_line_numbers(tmp_path):
    good = "0" * 64
    lines = [HEADER,
             f"Ann Lee\t1\t10\tfile:p/1.jpg\t1,2,30,40\t{good}",          # 2 ok
             f"Ann Lee\t2\t11\tfile:p/2.jpg\t1,2,30\t{good}",             # 3 bbox has 3 values
             f"Ann Lee\tx\t12\tfile:p/3.jpg\t1,2,30,40\t{good}",          # 4 non-numeric id
             "",                                                          # 5 blank: skipped
             f"Ann Lee\t4\t13\tfile:p/4.jpg\t30,2,30,40\t{good}",         # 6 x2 <= x1
             f"Ann Lee\t5\t14\tfile:p/5.jpg\t1,40,30,40\t{good}",         # 7 y2 <= y1
             f"Ann Lee\t6\t15\tfile:p/6.jpg\t-1,2,30,40\t{good}",         # 8 negative
             "Ann Lee\t7\t16\tfile:p/7.jpg\t1,2,30,40",                  # 9 five columns
             "Ann Lee\t8\t17\tfile:p/8.jpg\t1,2,30,40\tnothex",          # 10 bad sha256
             f"Tatyana M. Ali\t9\t18\thttp://h/9.jpg\t0,0,5,5\t{good.upper()}"]  # 11 ok
    path = tmp_path / "facescrub_actresses.txt"
    path.write_text("\n".join(lines) + "\n")
    rows, malformed, read = parse_list(path, "L")
    assert read == 9
    assert [where for where, _ in malformed] == ["L:3", "L:4", "L:6", "L:7", "L:8", "L:9", "L:10"]
    assert [(r.name, r.folder, r.gender, r.image_id, r.where) for r in rows] == [
        ("Ann Lee", "Ann_Lee", "female", 1, "L:2"), ("Tatyana Ali", "Tatyana_Ali", "female", 9, "L:11")]
    assert rows[0].url == (tmp_path / "p" / "1.jpg").as_uri()
    assert rows[0].bbox == (1, 2, 30, 40) and rows[1].sha256 == good


def test_crop_face_uses_original_pixels_and_rejects_outside_bbox():
    img = Image.fromarray(photo(3))
    face = crop_face(img, (8, 16, 40, 64))
    assert np.array_equal(np.asarray(face), photo(3)[16:64, 8:40])
    assert crop_face(img, (8, 16, 97, 64)) is None and crop_face(img, (0, 0, 96, 80)) is not None


def test_repack_shard_is_sorted_and_byte_stable(tmp_path):
    src = tmp_path / "src.tar"
    with tarfile.open(src, "w") as tar:
        for name in ["02.txt", "01.jpg", "02.jpg", "01.txt", "01.json"]:
            info = tarfile.TarInfo(name)
            data = name.encode()
            info.size, info.mtime = len(data), 123456
            tar.addfile(info, io.BytesIO(data))
    assert repack_shard(src, tmp_path / "a.tar") == 2
    repack_shard(src, tmp_path / "b.tar")
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()
    with tarfile.open(tmp_path / "a.tar") as tar:
        assert tar.getnames() == ["01.jpg", "01.json", "01.txt", "02.jpg", "02.txt"]
        assert {m.mtime for m in tar.getmembers()} == {0}


# ---------------------------------------------------------------- one-line errors

def test_missing_list_is_one_line(tmp_path):
    result = run_stage("download_facescrub", tmp_path, facescrub_params(["lists/nope_actors.txt"]))
    assert result.returncode != 0
    line = last_line(result.stderr)
    assert line.startswith("error: download_facescrub.lists") and "lists/nope_actors.txt" in line
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "data").exists() and not (tmp_path / "metrics").exists()


def test_missing_parquet_is_one_line(tmp_path):
    result = run_stage("download_laion", tmp_path, laion_params("world/none.parquet"))
    assert result.returncode != 0
    line = last_line(result.stderr)
    assert line.startswith("error: download_laion.parquet") and "world/none.parquet" in line
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "data" / "laion" / "shards").exists()
    assert leftovers(tmp_path / "data" / "laion") == []


def test_unreachable_parquet_url_is_one_line(tmp_path, http_root):
    _, base = http_root
    result = run_stage("download_laion", tmp_path, laion_params(f"{base}/missing.parquet"))
    assert result.returncode != 0
    line = last_line(result.stderr)
    assert line.startswith("error: download_laion.parquet: cannot fetch") and "missing.parquet" in line
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "data" / "laion" / "shards").exists()


# ---------------------------------------------------------------- real downloads

def write_facescrub_world(tmp_path: Path, www: Path, base: str) -> tuple[list[str], dict]:
    """FaceScrub lists with good rows over file: and http, and every kind of failure; returns the
    lists (relative to tmp_path) and the source bytes of the good photos."""
    world = tmp_path / "world"
    (world / "photos").mkdir(parents=True)
    def local(name, data):
        (world / "photos" / name).write_bytes(data)
        return f"file:photos/{name}"

    def served(name, data):
        (www / name).write_bytes(data)
        return f"{base}/{name}"

    jpeg1, jpeg2, jpeg8, jpeg9 = (encode(photo(s)) for s in (1, 2, 8, 9))
    png3 = encode(photo(3), "PNG")
    corrupt = b"\xff\xd8\xff\xe0 this is not a JPEG at all" * 20
    truncated = encode(photo(7))[:600]
    bbox = "8,16,40,64"
    actors = [HEADER,
              f"Freddy Prinze Jr.\t1\t101\t{local('1.jpg', jpeg1)}\t{bbox}\t{sha(jpeg1)}",      # 2 ok file:
              f"Freddy Prinze Jr.\t2\t102\t{served('2.jpg', jpeg2)}\t{bbox}\t{sha(jpeg2)}",     # 3 ok http
              f"Leslie Neilsen\t3\t103\t{local('3.png', png3)}\t{bbox}\t{sha(png3)}",           # 4 ok PNG
              f"Leslie Neilsen\t4\t104\t{base}/gone.jpg\t{bbox}\t{sha(b'x')}",                  # 5 404
              f"Robert Di Niro\t5\t105\t{served('5.jpg', jpeg1)}\t{bbox}\t{sha(jpeg2)}",        # 6 wrong sha
              f"Robert Di Niro\t6\t106\t{served('6.jpg', corrupt)}\t{bbox}\t{sha(corrupt)}",    # 7 corrupt
              f"Robert Di Niro\t7\t107\t{local('7.jpg', truncated)}\t{bbox}\t{sha(truncated)}", # 8 truncated
              f"Robert Di Niro\t8\t108\t{local('8.jpg', jpeg8)}\t8,16,97,64\t{sha(jpeg8)}",     # 9 bbox outside
              f"Robert Di Niro\t9\t109\t{local('x.jpg', jpeg8)}\t{bbox}",                       # 10 5 columns
              f"Robert Di Niro\tnine\t110\t{local('x.jpg', jpeg8)}\t{bbox}\t{sha(jpeg8)}",      # 11 non-numeric
              f"Robert Di Niro\t11\t111\t{local('x.jpg', jpeg8)}\t40,16,40,64\t{sha(jpeg8)}",   # 12 x2 <= x1
              "",
              f"Robert Di Niro\t12\t112\t{(world / 'photos' / '8.jpg').as_uri()}\t{bbox}\t{sha(jpeg8)}",  # 14 ok
              f"Robert Di Niro\t13\t113\tfile:photos/none.jpg\t{bbox}\t{sha(jpeg8)}"]            # 15 dead file
    actresses = [HEADER, f"Tatyana M. Ali\t1\t201\t{served('9.jpg', jpeg9)}\t{bbox}\t{sha(jpeg9)}"]
    (world / "facescrub_actors.txt").write_text("\n".join(actors) + "\n")
    (world / "facescrub_actresses.txt").write_text("\n".join(actresses) + "\n")
    return ["world/facescrub_actors.txt", "world/facescrub_actresses.txt"], {
        "jpeg1": jpeg1, "jpeg2": jpeg2, "jpeg8": jpeg8, "jpeg9": jpeg9, "png3": png3}


def test_download_facescrub_over_file_and_http(tmp_path, http_root):
    www, base = http_root
    lists, src = write_facescrub_world(tmp_path, www, base)
    jpeg1, jpeg2, jpeg8, jpeg9, png3 = (src[k] for k in ("jpeg1", "jpeg2", "jpeg8", "jpeg9", "png3"))

    result = run_stage("download_facescrub", tmp_path, facescrub_params(lists))
    assert result.returncode == 0, result.stderr[-3000:]

    report = json.loads((tmp_path / "metrics" / "download_facescrub.json").read_text())
    assert report["rows_read"] == 14
    assert report["failed_by_reason"] == {"http_error": 2, "hash_mismatch": 1, "undecodable_image": 2,
                                          "bad_bbox": 1, "malformed_row": 3, "other": 0}
    assert report["downloaded"] == 5 and report["failed"] == 9
    assert report["malformed_rows"] == ["world/facescrub_actors.txt:10", "world/facescrub_actors.txt:11",
                                        "world/facescrub_actors.txt:12"]
    assert report["identities"] == 4 and report["identities_downloaded"] == 4
    assert report["identities_with_min_photos"] == 1    # only Freddie has min_photos = 2

    index = pd.read_parquet(tmp_path / "data" / "facescrub" / "index.parquet")
    assert list(index.columns) == ["name", "folder", "group", "gender", "image_id", "face_id", "image", "face",
                                   "image_sha256", "face_sha256"]
    # The index pins every file's content: downstream stages depend on it, not on the folder.
    for row in index.itertuples():
        assert hashlib.sha256((tmp_path / row.image).read_bytes()).hexdigest() == row.image_sha256
        assert hashlib.sha256((tmp_path / row.face).read_bytes()).hexdigest() == row.face_sha256
    assert list(zip(index["name"], index["gender"], index["image_id"])) == [
        ("Freddie Prinze Jr", "male", 1), ("Freddie Prinze Jr", "male", 2), ("Leslie Nielsen", "male", 3),
        ("Robert De Niro", "male", 12), ("Tatyana Ali", "female", 1)]
    by_id = {(r.folder, r.image_id): r for r in index.itertuples()}
    assert by_id[("Tatyana_Ali", 1)].image == "data/facescrub/actresses/images/Tatyana_Ali/1.jpg"
    assert by_id[("Freddie_Prinze_Jr", 1)].face == "data/facescrub/actors/faces/Freddie_Prinze_Jr/1.jpg"
    # Original JPEG bytes are kept; other formats become JPEG of the same pixels.
    assert (tmp_path / by_id[("Freddie_Prinze_Jr", 2)].image).read_bytes() == jpeg2
    with Image.open(tmp_path / by_id[("Leslie_Nielsen", 3)].image) as img:
        assert img.format == "JPEG" and img.size == (96, 80)
    sources = {("Freddie_Prinze_Jr", 1): jpeg1, ("Freddie_Prinze_Jr", 2): jpeg2,
               ("Leslie_Nielsen", 3): png3, ("Robert_De_Niro", 12): jpeg8, ("Tatyana_Ali", 1): jpeg9}
    for key, data in sources.items():
        original = np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(int)
        face = np.asarray(Image.open(tmp_path / by_id[key].face).convert("RGB")).astype(int)
        assert face.shape == (48, 32, 3)
        error = np.abs(face - original[16:64, 8:40]).mean()
        shifted = np.abs(face - original[24:72, 16:48]).mean()
        assert error < 4 and shifted > 10 * error, (key, error, shifted)
    assert sorted(p.name for p in (tmp_path / "data" / "facescrub" / "actors" / "images").iterdir()) == [
        "Freddie_Prinze_Jr", "Leslie_Nielsen", "Robert_De_Niro"]
    assert leftovers(tmp_path / "data") == []


def write_laion_world(tmp_path: Path, www: Path, base: str) -> Path:
    """A LAION-style parquet: relative file:, absolute file://, http, a 404 and a corrupt image."""
    world = tmp_path / "world"
    (world / "images").mkdir(parents=True)
    urls, captions = [], []
    for i in range(9):
        data = encode(photo(20 + i, 48, 40))
        if i % 3 == 0:
            (world / "images" / f"{i}.jpg").write_bytes(data)
            urls.append(f"file:images/{i}.jpg")
        elif i % 3 == 1:
            (world / "images" / f"{i}.jpg").write_bytes(data)
            urls.append((world / "images" / f"{i}.jpg").as_uri())
        else:
            (www / f"{i}.jpg").write_bytes(data)
            urls.append(f"{base}/{i}.jpg")
        captions.append(f"a photo number {i}")
    (www / "bad.jpg").write_bytes(b"definitely not an image" * 10)
    urls += [f"{base}/gone.jpg", f"{base}/bad.jpg"]
    captions += ["lost", "broken"]
    n = len(urls)
    pq.write_table(pa.table({"URL": urls, "TEXT": captions, "WIDTH": [48] * n, "HEIGHT": [40] * n,
                             "similarity": [0.25 + i / 100 for i in range(n)]}), world / "laion.parquet")
    return world / "laion.parquet"


def test_download_laion_to_webdataset_shards(tmp_path, http_root):
    www, base = http_root
    write_laion_world(tmp_path, www, base)
    params = laion_params("world/laion.parquet")
    result = run_stage("download_laion", tmp_path, params)
    assert result.returncode == 0, result.stderr[-3000:]

    report = json.loads((tmp_path / "metrics" / "download_laion.json").read_text())
    assert report["rows_read"] == 11 and report["downloaded"] == 9 and report["failed"] == 2
    assert report["failed_by_reason"] == {"http_error": 1, "hash_mismatch": 0, "undecodable_image": 1,
                                          "other": 0}
    shard_dir = tmp_path / "data" / "laion" / "shards"
    shards = sorted(shard_dir.iterdir())
    assert [p.name for p in shards] == ["00000.tar", "00001.tar", "00002.tar"] and report["shards"] == 3

    samples = list(wds.WebDataset([str(p) for p in shards], shardshuffle=False, empty_check=False)
                   .decode("pil").to_tuple("jpg", "txt", "json"))
    assert len(samples) == 9
    assert sorted(txt for _, txt, _ in samples) == sorted(f"a photo number {i}" for i in range(9))
    for image, caption, meta in samples:
        assert image.size == (32, 32)
        assert meta["caption"] == caption and meta["WIDTH"] == 48 and "similarity" in meta
    # relative URLs are recorded as the parquet gives them, not resolved against this folder
    urls = {caption: meta["url"] for _, caption, meta in samples}
    assert [urls[f"a photo number {i}"] for i in (0, 3, 6)] == ["file:images/0.jpg", "file:images/3.jpg",
                                                                  "file:images/6.jpg"]

    assert leftovers(tmp_path / "data" / "laion") == []


def test_download_laion_shards_do_not_depend_on_the_folder(tmp_path, http_root):
    """The same world in two folders (two clones) gives byte-identical shards (issue 13)."""
    www, base = http_root
    parquet = write_laion_world(tmp_path / "a", www, base)
    table = pq.read_table(parquet)
    keep = [not u.startswith("file://") for u in table.column("URL").to_pylist()]  # absolute: used as given
    pq.write_table(table.filter(pa.array(keep)), parquet)
    shutil.copytree(tmp_path / "a", tmp_path / "elsewhere" / "b")
    shards = []
    for clone in (tmp_path / "a", tmp_path / "elsewhere" / "b"):
        result = run_stage("download_laion", clone, laion_params("world/laion.parquet"))
        assert result.returncode == 0, result.stderr[-3000:]
        shards.append({p.name: p.read_bytes() for p in sorted((clone / "data/laion/shards").iterdir())})
        assert not any(str(clone).encode() in data for data in shards[-1].values())
    assert shards[0] == shards[1] and len(shards[0]) == 2


def test_download_laion_with_replaced_workers_finishes(tmp_path, http_root):
    """img2dataset's pool replaces a worker after 5 shards, from a helper thread; the stage must
    still end (a parent-death signal tied to that thread once hung it after the last shard)."""
    www, base = http_root
    write_laion_world(tmp_path, www, base)
    params = laion_params("world/laion.parquet", processes=2, threads=2, shard_size=1)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "NO_ALBUMENTATIONS_UPDATE": "1"}
    result = subprocess.run([sys.executable, "-m", "pipeline.stages.download_laion"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "metrics" / "download_laion.json").read_text())
    assert report["downloaded"] == 9 and report["shards"] == 11  # one per row, the 2 failed ones empty


@pytest.mark.slow
def test_download_laion_rerun_gives_identical_shards(tmp_path, http_root):
    """A second run over an existing output (img2dataset's sidecars were removed) works and is byte-identical."""
    www, base = http_root
    write_laion_world(tmp_path, www, base)
    params = laion_params("world/laion.parquet", processes=2, threads=8)
    shard_dir = tmp_path / "data" / "laion" / "shards"
    outputs = []
    for _ in range(2):
        result = run_stage("download_laion", tmp_path, params)
        assert result.returncode == 0, result.stderr[-3000:]
        outputs.append({p.name: p.read_bytes() for p in sorted(shard_dir.iterdir())})
    assert outputs[0] == outputs[1] and sorted(outputs[0]) == ["00000.tar", "00001.tar", "00002.tar"]
    assert leftovers(tmp_path / "data" / "laion") == []


def test_failing_laion_run_leaves_no_output(tmp_path):
    (tmp_path / "world").mkdir()
    pq.write_table(pa.table({"URL": ["file:a.jpg"], "CAPTION": ["x"]}), tmp_path / "world" / "l.parquet")
    result = run_stage("download_laion", tmp_path, laion_params("world/l.parquet"))
    assert result.returncode != 0
    assert last_line(result.stderr).startswith("error: download_laion.caption_col: column 'TEXT' is not in")
    assert (tmp_path / "data" / "laion").is_dir() and list((tmp_path / "data" / "laion").iterdir()) == []
    assert not (tmp_path / "metrics").exists()


def test_pyspark_without_java_is_one_line(monkeypatch, tmp_path):
    from pipeline.core.errors import PipelineError
    from pipeline.data.downloading import check_distributor

    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))          # no java here
    with pytest.raises(PipelineError, match=r"download_laion.distributor = 'pyspark' needs Java 17.*openjdk-17"):
        check_distributor("pyspark", "download_laion.distributor")
    check_distributor("multiprocessing", "download_laion.distributor")   # needs nothing


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("java") is None and not os.environ.get("JAVA_HOME"), reason="Spark needs Java")
def test_pyspark_downloads_give_the_same_outputs_as_multiprocessing(tmp_path, http_root):
    """Issue 16 point 1: both download stages with `distributor: pyspark` (a Spark session in
    local mode, started and stopped by the stage) write byte-identical outputs and the same
    reports as with multiprocessing, the failed rows (404, wrong sha256, corrupt and truncated
    images, dead files) included."""
    www, base = http_root
    lists, _ = write_facescrub_world(tmp_path, www, base)
    (www / "laion").mkdir()                  # its served files apart from FaceScrub's (same names)
    write_laion_world(tmp_path / "laion", www / "laion", f"{base}/laion")
    outputs = {}
    for distributor in ("multiprocessing", "pyspark"):
        params = {**facescrub_params(lists), **laion_params("laion/world/laion.parquet", processes=2)}
        for section in params.values():
            section.update(distributor=distributor, spark_master="local[2]")
        for stage in ("download_facescrub", "download_laion"):
            result = run_stage(stage, tmp_path, params)
            assert result.returncode == 0, (distributor, stage, result.stdout[-2000:], result.stderr[-6000:])
        if distributor == "pyspark":
            assert "No pyspark session found" not in result.stdout   # the stage's session, not img2dataset's own
        outputs[distributor] = {"data": snapshot(tmp_path / "data"), "metrics": snapshot(tmp_path / "metrics")}
        shutil.rmtree(tmp_path / "data")
        shutil.rmtree(tmp_path / "metrics")
    mp, spark = outputs["multiprocessing"], outputs["pyspark"]
    for kind in ("data", "metrics"):
        differ = sorted(k for k in set(mp[kind]) | set(spark[kind]) if mp[kind].get(k) != spark[kind].get(k))
        assert not differ, (kind, differ[:10], [(mp[kind].get(k, b"")[:300], spark[kind].get(k, b"")[:300])
                                                 for k in differ[:2] if kind == "metrics"])
    facescrub = json.loads(mp["metrics"]["download_facescrub.json"])
    laion = json.loads(mp["metrics"]["download_laion.json"])
    assert facescrub["failed"] == 9 and laion["failed"] == 2            # the failures took part
    assert any(name.startswith("laion/shards/") for name in mp["data"])


@pytest.mark.slow
def test_failed_download_leaves_no_output(tmp_path, http_root):
    _, base = http_root
    world = tmp_path / "world"
    world.mkdir()
    rows = [HEADER] + [f"Ann Lee\t{i}\t{i}\t{base}/gone{i}.jpg\t0,0,5,5\t{'0' * 64}" for i in range(3)]
    (world / "facescrub_actors.txt").write_text("\n".join(rows) + "\n")
    result = run_stage("download_facescrub", tmp_path, facescrub_params(["world/facescrub_actors.txt"]))
    assert result.returncode != 0
    line = last_line(result.stderr)
    assert line.startswith("error: no FaceScrub photo could be downloaded") and "http_error 3" in line
    assert not (tmp_path / "data" / "facescrub").exists() and leftovers(tmp_path / "data") == []
    assert not (tmp_path / "metrics" / "download_facescrub.json").exists()
