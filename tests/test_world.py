"""The demo world: real input formats, seeded bytes, counts that match the corpus."""
import csv
import hashlib
import itertools
import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from PIL import Image

from pipeline.attack.templates import IDIA_TEMPLATES, fill_template
from pipeline.core.errors import ParamError
from pipeline.world.demo import captions, names
from pipeline.world.demo.build import FACESCRUB_HEADER, build_world
from pipeline.core.world_params import world_config
from pipeline.world.demo.faces import HAIR_COLOURS
from pipeline.world.demo.scenes import SCENE_COLOURS, SCENE_SHAPES, scene_classes

TINY = {"seed": 7, "image_size": 64, "members": 6, "nonmembers": 3, "min_count": 2,
        "max_count": 9, "facescrub_photos": 4, "anonymous_faces": 24, "scene_classes": 4,
        "scenes_per_class": 3, "benchmark_per_class": 2, "hair_benchmark_per_class": 2,
        "jpeg_quality": 90}


def build(root: Path, **changes) -> Path:
    out = root / "world"
    build_world({**TINY, **changes}, out, progress=False)
    return out


def file_hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    return build(tmp_path_factory.mktemp("a"))


@pytest.fixture(scope="module")
def summary(world) -> dict:
    return json.loads((world / "world.json").read_text())


@pytest.fixture(scope="module")
def corpus(world) -> pd.DataFrame:
    return pd.read_parquet(world / "laion" / "laion.parquet")


def read_lists(world: Path) -> dict[str, list[list[str]]]:
    out = {}
    for name in ("facescrub_actors.txt", "facescrub_actresses.txt"):
        lines = (world / "facescrub" / name).read_text().split("\n")
        assert lines[-1] == ""
        out[name] = [line.split("\t") for line in lines[:-1]]
    return out


def test_same_params_give_identical_bytes_and_seed_changes_them(world, tmp_path):
    again = file_hashes(build(tmp_path / "b"))
    first = file_hashes(world)
    assert again == first
    other = file_hashes(build(tmp_path / "c", seed=8))
    assert other["laion/laion.parquet"] != first["laion/laion.parquet"]
    changed = [k for k in first if k.endswith(".jpg") and other.get(k) != first[k]]
    assert len(changed) == sum(k.endswith(".jpg") for k in first)


def test_facescrub_lists_have_the_official_format(world, summary):
    lists = read_lists(world)
    image_ids, face_ids, per_name = set(), set(), {}
    for filename, rows in lists.items():
        assert rows[0] == FACESCRUB_HEADER
        for row in rows[1:]:
            assert len(row) == 6
            name, image_id, face_id, url, bbox, sha = row
            assert len(name.split(" ")) == 2 and "_" not in name
            image_ids.add(int(image_id))
            face_ids.add(int(face_id))
            per_name[name] = per_name.get(name, 0) + 1
            assert url.startswith("file:") and not url.startswith("file://")
            path = world / "facescrub" / url[len("file:"):]
            data = path.read_bytes()
            assert hashlib.sha256(data).hexdigest() == sha
            x1, y1, x2, y2 = (int(v) for v in bbox.split(","))
            with Image.open(path) as img:
                w, h = img.size
                assert img.format == "JPEG" and (w, h) == (64, 64)
            assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h
            assert (x2 - x1) >= 10 and (y2 - y1) >= 10
    n = sum(len(r) - 1 for r in lists.values())
    assert len(image_ids) == n and len(face_ids) == n
    identities = {i["name"]: i for i in summary["identities"]}
    assert set(per_name) == set(identities)
    assert set(per_name.values()) == {TINY["facescrub_photos"]}
    for filename, rows in lists.items():
        gender = "male" if filename == "facescrub_actors.txt" else "female"
        assert {identities[r[0]]["gender"] for r in rows[1:]} <= {gender}


def test_laion_parquet_columns_and_images(world, corpus):
    assert list(corpus.columns) == ["URL", "TEXT", "WIDTH", "HEIGHT", "sha256"]
    assert len(corpus) == len(list((world / "laion" / "images").iterdir()))
    for url, w, h, sha in zip(corpus["URL"], corpus["WIDTH"], corpus["HEIGHT"], corpus["sha256"]):
        assert url.startswith("file:images/")
        path = world / "laion" / url[len("file:"):]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == sha   # the parquet pins each photo
        with Image.open(path) as img:
            assert img.format == "JPEG" and img.size == (w, h) == (64, 64)
    kinds = corpus["TEXT"].str.contains("star|circle|square|triangle")
    assert kinds.sum() == TINY["scene_classes"] * TINY["scenes_per_class"]


def test_counts_match_the_captions_that_name_each_person(world, corpus, summary):
    with (world / "occurrences.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["name", "count", "membership"]
    texts = [t.casefold() for t in corpus["TEXT"]]
    listed = {r[0] for rows_ in read_lists(world).values() for r in rows_[1:]}
    assert {r["name"] for r in rows} == listed
    members = [r for r in rows if r["membership"] == "member"]
    assert len(members) == TINY["members"]
    assert len(rows) - len(members) == TINY["nonmembers"]
    for r in rows:
        count = int(r["count"])
        named = sum(r["name"].casefold() in t for t in texts)
        assert named == count
        if r["membership"] == "member":
            assert 0 < TINY["min_count"] <= count <= TINY["max_count"] <= 300
        else:
            assert r["membership"] == "non_member" and count == 0
    assert sum(int(r["count"]) for r in rows) == summary["sizes"]["member_images"]
    # Background names are one-off and never a FaceScrub name.
    bg = summary["background_names"]
    assert bg and not set(bg) & listed
    assert all(sum(n.casefold() in t for t in texts) == 1 for n in bg)


def test_attack_templates_are_never_captions(corpus, summary):
    for gender in ("male", "female"):
        assert not set(captions.name_templates(gender)) & set(IDIA_TEMPLATES)
    prompts = {fill_template(t, i["name"]) for t in IDIA_TEMPLATES for i in summary["identities"]}
    prompts |= {fill_template(t, n) for t in IDIA_TEMPLATES for n in summary["background_names"]}
    assert not prompts & set(corpus["TEXT"])


def test_benchmarks_are_imagenetv2_style_and_fresh(world):
    corpus_hashes = set(file_hashes(world / "laion").values())
    corpus_hashes |= set(file_hashes(world / "facescrub").values())
    expected = {"scenes": ([f"{c} {s}" for c, s in scene_classes(4)], TINY["benchmark_per_class"]),
                "hair": (list(HAIR_COLOURS), TINY["hair_benchmark_per_class"])}
    for task, (classnames, per_class) in expected.items():
        root = world / "benchmark" / task
        assert (root / "classnames.txt").read_text().splitlines() == classnames
        templates = (root / "templates.txt").read_text().splitlines()
        assert len(templates) >= 3 and all("{}" in t for t in templates)
        dirs = sorted((root / "images").iterdir(), key=lambda p: int(p.name))
        assert [d.name for d in dirs] == [str(i) for i in range(len(classnames))]
        for d in dirs:
            images = sorted(d.glob("*.jpg"))
            assert len(images) == per_class
            for img in images:
                assert hashlib.sha256(img.read_bytes()).hexdigest() not in corpus_hashes


def test_named_identities_differ_in_three_attributes(summary):
    keys = summary["discrete_attributes"]
    attrs = [i["attributes"] for i in summary["identities"]]
    for a, b in itertools.combinations(attrs, 2):
        assert sum(a[k] != b[k] for k in keys) >= 3


def test_scene_classes_mix_colours_and_shapes():
    four = scene_classes(4)
    assert {c for c, _ in four} == set(SCENE_COLOURS) and {s for _, s in four} == set(SCENE_SHAPES)
    assert len(set(scene_classes(16))) == 16


def test_name_lists_are_clean():
    for lst in (names.FIRST_NAMES_MALE, names.FIRST_NAMES_FEMALE, names.LAST_NAMES):
        assert len(lst) >= 100 and len(set(lst)) == len(lst)
    assert not set(names.FIRST_NAMES_MALE) & set(names.FIRST_NAMES_FEMALE)
    banned = set(HAIR_COLOURS) | set(SCENE_COLOURS) | set(SCENE_SHAPES) | {
        "brown", "white", "black", "green", "gray", "rose", "long", "short", "young", "bob"}
    words = {w.casefold() for w in names.FIRST_NAMES_MALE + names.FIRST_NAMES_FEMALE + names.LAST_NAMES}
    assert not words & banned


@pytest.mark.parametrize("change, key", [
    ({"min_count": 0}, "world.min_count"),
    ({"max_count": 301}, "world.max_count"),
    ({"min_count": 50, "max_count": 10}, "world.min_count"),
    ({"scene_classes": 17}, "world.scene_classes"),
    ({"members": "80"}, "world.members"),
])
def test_bad_params_raise_one_clear_line(change, key):
    with pytest.raises(ParamError) as err:
        world_config({**TINY, **change})
    message = str(err.value)
    assert key in message and "\n" not in message and "expected" in message


def test_stage_writes_data_world_and_nothing_on_bad_params(tmp_path, monkeypatch):
    from pipeline.stages import world as stage
    monkeypatch.chdir(tmp_path)
    Path("params.yaml").write_text(yaml.safe_dump({"world": {**TINY, "min_count": 0}}))
    with pytest.raises(ParamError):
        stage.main()
    assert not Path("data/world").exists()
    Path("params.yaml").write_text(yaml.safe_dump({"world": TINY}))
    stage.main()
    assert (tmp_path / "data/world/laion/laion.parquet").is_file()
    assert not list((tmp_path / "data").glob(".world.tmp-*"))
