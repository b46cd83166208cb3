"""Bad input tables: the occurrence CSV, the captions parquet, names matched on words.

Every error is one line naming the file, the line and the rule; bad parquet rows are counted.
New modules are imported inside the tests so that each test fails on its own when run
against a checkout without them.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import webdataset as wds
import yaml

import pipeline
from pipeline.core.errors import PipelineError
from tests.test_download import encode, http_root, laion_params, last_line, leftovers, photo  # noqa: F401

# The checkout under test (not necessarily this file's): stage subprocesses must run its code.
CODE = Path(pipeline.__file__).resolve().parents[1]
REAL_OCCURRENCES = Path(__file__).resolve().parents[2] / "shared/data/real/laion_membership_occurence_count.csv"
REAL_SHA256 = "9945b17e96bf2d10316dc0dc24d6dc16d5ddacba0d81d1a8df32d24da0da9942"


def run_stage(stage: str, cwd: Path, params: dict) -> subprocess.CompletedProcess:
    (cwd / "params.yaml").write_text(yaml.safe_dump(params))
    env = {**os.environ, "PYTHONPATH": str(CODE), "HF_HUB_OFFLINE": "1",
           "NO_ALBUMENTATIONS_UPDATE": "1", "DVC_NO_ANALYTICS": "1"}
    return subprocess.run([sys.executable, "-m", f"pipeline.stages.{stage}"], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


# ---------------------------------------------------------------- A: the occurrence CSV

def library(path, key):
    from pipeline.data.occurrences import read_occurrences
    return read_occurrences(path, key)


def paper_world(path, key):
    from pipeline.world.paper.build import check_occurrences
    return check_occurrences(path, key)


ENTRIES = {"library": (library, "splits.occurrences"), "paper_world": (paper_world, "sources.occurrences")}


def error_of(entry: str, path: Path) -> str:
    fn, key = ENTRIES[entry]
    with pytest.raises(PipelineError) as info:
        fn(path, key)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{key}: "), message
    return message


def write(tmp_path: Path, content: str | bytes, name: str = "occ.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


HEAD = "name,count,membership\n"

# (rule, file content, text the one-line message must contain)
BAD_FILES = [
    ("empty file", "", "is empty; expected a header line name,count[,membership]"),
    ("blank lines only", "\n \n\n", "is empty; expected a header line"),
    ("header without rows", HEAD + "\n", "has a header (line 1) but no data rows"),
    ("not UTF-8", HEAD.encode() + "Ann Lee,5,member\nZo\u00eb Fox,3,member\n".encode("latin-1"),
     "line 3: not UTF-8 text (byte 0xeb); save the file as UTF-8"),
    ("UTF-16", "name,count\nAnn Lee,5\n".encode("utf-16"), "line 1: not UTF-8 text (byte 0xff)"),
    ("too many fields", HEAD + "Ann Lee,5,member\n\nBob Ray,7,member,extra\n",
     "line 4: 4 fields but the header has 3; every line needs one value per column"),
    ("too few fields", HEAD + "Ann Lee,5\n", "line 2: 2 fields but the header has 3"),
    ("unclosed quote", HEAD + "Ann Lee,5,member\n\"Bob Ray,7,member\nCy Dow,1,member\n",
     "line 3: malformed CSV (unexpected end of data; is a quote left open?)"),
    ("NUL byte", HEAD + "Ann Lee,5,member\nBob\0Ray,7,member\n", "line 3: NUL byte (UTF-16 or binary?)"),
    ("UTF-16 without BOM", "name,count\nAnn Lee,5\n".encode("utf-16-le"), "line 1: NUL byte"),
    ("missing count column", "name,cnt,membership\nAnn Lee,5,member\n",
     "line 1: the header lacks column(s) count; expected name,count[,membership]"),
    ("missing both columns", "\nperson,n\nAnn Lee,5\n", "line 2: the header lacks column(s) name, count"),
    ("column twice", "name,count,name\nAnn Lee,5,x\n", "line 1: the header names column 'name' twice"),
    ("empty name", HEAD + "Ann Lee,5,member\n  ,7,member\n", "line 3: empty name"),
    ("duplicate name", HEAD + "Ann Lee,5,member\nBob Ray,0,non_member\nann_lee,9,member\n",
     "line 4: duplicate name 'ann_lee', already on line 2 as 'Ann Lee'"),
    ("duplicate name, spaces", HEAD + "Ann Lee,5,member\nAnn  LEE,5,member\n",
     "line 3: duplicate name 'Ann  LEE', already on line 2"),
    ("non-numeric count", HEAD + "Ann Lee,5,member\nBob Ray,many,member\n",
     "line 3: count 'many' of 'Bob Ray' is not a number; allowed: a whole number >= 0"),
    ("thousands separator", HEAD + "Ann Lee,\"1,234\",member\n", "line 2: count '1,234' of 'Ann Lee' is not a number"),
    ("nan count", HEAD + "Ann Lee,nan,member\n", "line 2: count 'nan' of 'Ann Lee' is not a number"),
    ("empty count", HEAD + "Ann Lee,,member\n", "line 2: empty count for 'Ann Lee'; allowed: a whole number >= 0"),
    ("negative count", HEAD + "Ann Lee,5,member\nBob Ray,-3,member\n",
     "line 3: count '-3' of 'Bob Ray' is negative; allowed: a whole number >= 0"),
    ("fractional count", HEAD + "Ann Lee,2.5,member\n",
     "line 2: count '2.5' of 'Ann Lee' is not a whole number; allowed: a whole number >= 0"),
]


@pytest.mark.parametrize("entry", sorted(ENTRIES))
@pytest.mark.parametrize("rule,content,expected", BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_bad_occurrence_file_is_one_line_naming_file_line_and_rule(tmp_path, entry, rule, content, expected):
    path = write(tmp_path, content)
    message = error_of(entry, path)
    assert str(path) in message and expected in message, message


@pytest.mark.parametrize("entry", sorted(ENTRIES))
def test_missing_occurrence_file(tmp_path, entry):
    message = error_of(entry, tmp_path / "none.csv")
    assert f"file not found: {tmp_path / 'none.csv'} (a CSV with columns name,count[,membership])" in message


def test_valid_occurrence_file_is_read_as_given(tmp_path):
    from pipeline.data.occurrences import read_occurrences
    path = write(tmp_path, "\ufeff,name,count,membership,bin\n0,Ann Lee, 5 ,member,\"[0, 25)\"\n\n"
                           "1,Zo\u00eb Fox,12.0,member,x\n2,\"Lee, Bob\",0,non_member,x\n")
    table = read_occurrences(path, "splits.occurrences")
    assert list(table.columns) == ["name", "count", "membership"]
    assert list(table["name"]) == ["Ann Lee", "Zo\u00eb Fox", "Lee, Bob"]
    assert list(table["count"]) == [5, 12, 0] and str(table["count"].dtype) == "int64"
    no_membership = read_occurrences(write(tmp_path, "name,count\nAnn Lee,5\n", "b.csv"), "k")
    assert list(no_membership.columns) == ["name", "count"]


def test_the_real_idia_occurrence_file_loads_unchanged():
    if not REAL_OCCURRENCES.is_file():
        pytest.skip(f"{REAL_OCCURRENCES} is absent (the shared copy of the IDIA paper's file)")
    from pipeline.data.occurrences import read_occurrences
    from pipeline.world.paper.build import check_occurrences
    data = REAL_OCCURRENCES.read_bytes()
    assert hashlib.sha256(data).hexdigest() == REAL_SHA256
    data_lines = [line for line in data.decode().splitlines()[1:] if line.strip()]
    table = read_occurrences(REAL_OCCURRENCES, "splits.occurrences")
    assert len(table) == len(data_lines) == 548
    assert table["name"].is_unique and (table["count"] >= 0).all()
    assert table.iloc[-1].tolist() == ["Jennifer Aniston", 36981, "member"]
    check_occurrences(REAL_OCCURRENCES, "sources.occurrences")


def splits_params(occurrences: str) -> dict:
    section = yaml.safe_load((CODE / "params.yaml").read_text())["splits"]
    return {"splits": {**section, "occurrences": occurrences}}


@pytest.mark.parametrize("content,expected", [
    (HEAD + "Ann Lee,5,member\nAnn Lee,6,member\n", "line 3: duplicate name 'Ann Lee', already on line 2"),
    (HEAD + "Ann Lee,five,member\n", "line 2: count 'five' of 'Ann Lee' is not a number"),
    (HEAD + "Ann Lee,-1,member\n", "line 2: count '-1' of 'Ann Lee' is negative"),
], ids=["duplicate", "non-numeric", "negative"])
def test_splits_stage_refuses_a_bad_occurrence_file_in_one_line(tmp_path, content, expected):
    write(tmp_path, content, "occ.csv")
    result = run_stage("splits", tmp_path, splits_params("occ.csv"))
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert last_line(result.stderr).startswith(f"error: splits.occurrences: occ.csv {expected}"), result.stderr


# ---------------------------------------------------------------- B: the captions parquet

def test_download_laion_counts_rows_without_caption_or_url_and_undecodable_images(tmp_path, http_root):
    www, base = http_root
    world = tmp_path / "world"
    (world / "images").mkdir(parents=True)
    for i in (0, 1, 4):
        (world / "images" / f"{i}.jpg").write_bytes(encode(photo(40 + i, 48, 40)))
    (www / "6.jpg").write_bytes(encode(photo(46, 48, 40)))
    (www / "bad.jpg").write_bytes(b"definitely not an image" * 10)
    rows = [("file:images/0.jpg", "a photo 0"),          # ok
            ("file:images/1.jpg", None),                 # missing_caption (null)
            (None, "no url"),                            # missing_url (null)
            ("   ", "blank url"),                        # missing_url (blank)
            ("file:images/4.jpg", " \t "),               # missing_caption (blank)
            (f"{base}/bad.jpg", "broken"),               # undecodable_image
            (f"{base}/6.jpg", "a photo 6"),              # ok
            (None, None)]                                # both: counted once, as missing_url
    pq.write_table(pa.table({"URL": pa.array([r[0] for r in rows], pa.string()),
                             "TEXT": pa.array([r[1] for r in rows], pa.string())}), world / "laion.parquet")
    result = run_stage("download_laion", tmp_path, laion_params("world/laion.parquet"))
    assert result.returncode == 0, result.stderr[-3000:]

    report = json.loads((tmp_path / "metrics" / "download_laion.json").read_text())
    assert report["rows_read"] == 8 and report["downloaded"] == 2 and report["failed"] == 6
    assert report["downloaded"] + report["failed"] == report["rows_read"]
    assert report["failed_by_reason"] == {"http_error": 0, "hash_mismatch": 0, "undecodable_image": 1,
                                          "other": 0, "missing_url": 3, "missing_caption": 2}
    assert "3 x null or empty URL, not downloaded (first at row 2, counting from 0)" in report["top_errors"]
    assert "2 x null or empty TEXT, not downloaded (first at row 1, counting from 0)" in report["top_errors"]
    shards = sorted((tmp_path / "data" / "laion" / "shards").iterdir())
    captions = [txt for (txt,) in wds.WebDataset([str(p) for p in shards], shardshuffle=False,
                                                 empty_check=False).decode().to_tuple("txt")]
    assert sorted(captions) == ["a photo 0", "a photo 6"]


def test_download_laion_without_any_usable_row_is_one_line(tmp_path):
    (tmp_path / "world").mkdir()
    pq.write_table(pa.table({"URL": pa.array([None, "file:a.jpg", ""], pa.string()),
                             "TEXT": pa.array(["x", None, "y"], pa.string())}), tmp_path / "world" / "l.parquet")
    result = run_stage("download_laion", tmp_path, laion_params("world/l.parquet"))
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert last_line(result.stderr) == ("error: download_laion.parquet: none of the 3 rows of world/l.parquet has "
                                        "both a URL and a TEXT (missing_url 2, missing_caption 1)")
    assert not (tmp_path / "data" / "laion" / "shards").exists() and leftovers(tmp_path / "data" / "laion") == []
    assert not (tmp_path / "metrics").exists()


# ---------------------------------------------------------------- C: names are words

@pytest.mark.parametrize("target,word", [
    ("Anderson,", "anderson"), ("ANDERSON.", "anderson"), ("Anderson's cat", "anderson"),
    ("Anderson\u2019s cat", "anderson"), ("(Pam)", "pam"), ("Tom Matten", "matten"),
    ("Ella Herbig-Smith", "herbig"), ("Ella_Anderson", "anderson"),
])
def test_text_target_sharing_a_word_despite_punctuation_is_refused(target, word):
    from pipeline.defenses.targets import check_text_target
    candidates = ["Pam Anderson", "Harriet Herbig-Matten"]
    with pytest.raises(PipelineError) as info:
        check_text_target(target, candidates)
    message = str(info.value)
    assert "\n" not in message and f"shares the word {word!r}" in message, message


@pytest.mark.parametrize("target", ["a person", "Ella Andersen", "Andersonville", "Pamela Smith", "Ella O'Neil"])
def test_text_target_sharing_only_characters_passes(target):
    from pipeline.defenses.targets import check_text_target
    check_text_target(target, ["Pam Anderson", "Conan O'Brien", "Harriet Herbig-Matten"])


def test_name_words_keep_inner_apostrophes_and_split_hyphens():
    from pipeline.defenses.targets import name_words
    assert name_words("Conan O\u2019Brien's,  HERBIG-Matten!") == {"conan", "o'brien", "herbig", "matten"}


def test_clean_caption_pool_matches_whole_words():
    from pipeline.data.splits import clean_caption_pool
    captions = ["Ann Lee at the premiere",        # 0 named
                "Ann Leeds at the premiere",      # 1 another person
                "portrait of Joann Lee",          # 2 another person
                "ann  lee's new dress",           # 3 named: possessive
                "ANN LEE, smiling",               # 4 named: punctuation
                "the annlee brand",               # 5 not a name
                "Bob Ray.",                       # 6 named at the end, underscore name
                "Bob Rayner sings",               # 7 another person
                "Ann Lee\u2019s dog",             # 8 named: typographic apostrophe
                "Zoë Fox-Hill and friends",       # 9 named (Zoë Fox), hyphen is a word boundary
                "a blue square"]                  # 10
    keys = [f"{i:05d}" for i in range(len(captions))]
    pool = clean_caption_pool(keys, captions, ["Ann Lee", "Bob_Ray", "Zo\u00eb Fox"], heldout=1, seed=0)
    assert list(pool["key"]) == ["00001", "00002", "00005", "00007", "00010"]


def test_name_matcher_agrees_with_one_regex_per_name_on_overlapping_names():
    from pipeline.data.splits import name_matcher
    names = ["Ann Lee", "Ann Leeds", "Ann Le", "Ann", "Lee Ann", "Bo", "Bob Ray", "A.J. Cook", "Ann L"]
    matcher = name_matcher(names + ["ann_lee"])
    words = ["ann", "lee", "leeds", "le", "bo", "bob", "ray", "a.j.", "cook", "l", "annle", "x", "ann-lee", "'"]
    rng = random.Random(0)
    for _ in range(3000):
        caption = " ".join(rng.choice(words) for _ in range(rng.randint(1, 6)))
        text = " ".join(caption.split()).casefold()
        expected = any(re.search(r"(?<![^\W_])" + re.escape(n.casefold()) + r"(?![^\W_])", text) for n in names)
        assert matcher(caption) == expected, caption
    assert name_matcher([])("Ann Lee") is False
