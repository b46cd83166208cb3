"""Bad input that would write outside the repository, and temporaries that would poison a lock.

Issue 18, points 1-3: identity names from a third-party list never steer a write outside
the stage's output folder; names from params that become file names are checked; a stage
killed mid-write leaves nothing inside a folder that another stage depends on.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from pipeline.core.atomic import atomic_dir, atomic_file, remove_leftovers
from pipeline.core.errors import PipelineError
from pipeline.core.safepaths import check_name, inside, slug
from tests.test_download import HEADER, encode, photo, sha

REPO = Path(__file__).resolve().parents[1]
HOSTILE = ["../../x", "../../../../x", "/abs", "a/b", ".", "nul\x00byte", "..", "Ok Name"]


def all_files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


# ---------------------------------------------------------------- slugs (point 1)

@pytest.mark.parametrize("name, folder", [
    ("Ok Name", "Ok_Name"), ("Jane  Q. Doe", "Jane_Q._Doe"), ("Freddie_Prinze_Jr.", "Freddie_Prinze_Jr."),
    ("../../x", "x"), ("../../../../x", "x"), ("/abs", "abs"), ("a/b", "a_b"), ("..a", "a"),
    ("Zoë O'Neil", "Zoë_O'Neil"), ("a\\b", "a_b"),
])
def test_slug_keeps_plain_names_and_defuses_paths(name, folder):
    got, why = slug(name)
    assert got == folder
    assert "/" not in got and not got.startswith(".") and got not in (".", "..")
    assert bool(why) == (folder != "_".join(name.split()))


@pytest.mark.parametrize("name", [".", "..", "...", "nul\x00byte", "tab\tname", "//", "_"])
def test_slug_rejects_names_without_a_folder(name):
    got, why = slug(name)
    assert got is None and why and "\n" not in why


def test_inside_refuses_escapes_and_links(tmp_path):
    root = tmp_path / "out"
    root.mkdir()
    assert inside(root, "a/b.jpg") == root / "a/b.jpg"
    for rel in ("../x", "a/../../x", "/etc/passwd"):
        with pytest.raises(PipelineError):
            inside(root, rel)
    (root / "link").symlink_to(tmp_path)
    with pytest.raises(PipelineError):
        inside(root, "link/x")


def test_facescrub_download_writes_nothing_outside_its_folder(tmp_path):
    """Hostile names in a list: each row is slugged (logged, counted) or rejected (malformed).

    `../../../../x` slugs to the folder of `../../x`, so it is rejected as a collision."""
    work = tmp_path / "repo"
    (work / "lists" / "photos").mkdir(parents=True)
    lines = [HEADER]
    for i, name in enumerate(HOSTILE):
        data = encode(photo(i))
        (work / "lists" / "photos" / f"{i}.jpg").write_bytes(data)
        lines.append(f"{name}\t{i}\t{i}\tphotos/{i}.jpg\t8,8,40,40\t{sha(data)}")
    (work / "lists" / "facescrub_actors.txt").write_text("\n".join(lines) + "\n")
    # a sibling the first names would reach: must stay empty
    (tmp_path / "x").mkdir()
    before = all_files(tmp_path)

    from tests.test_download import facescrub_params, run_stage
    done = run_stage("download_facescrub", work, facescrub_params([work / "lists/facescrub_actors.txt"]))
    assert done.returncode == 0, done.stderr
    new = all_files(tmp_path) - before
    outside = [p for p in new if not (p.startswith("repo/data/facescrub/") or p.startswith("repo/metrics/")
                                      or p == "repo/params.yaml")]
    assert outside == []
    index = pd.read_parquet(work / "data/facescrub/index.parquet")
    # names kept as given in the table, folders are slugs
    assert set(index["name"]) == {"../../x", "/abs", "a/b", "Ok Name"}
    assert set(index["folder"]) == {"x", "abs", "a_b", "Ok_Name"}
    for path in list(index["image"]) + list(index["face"]):
        assert (work / path).resolve().is_relative_to((work / "data/facescrub").resolve())
    report = json.loads((work / "metrics/download_facescrub.json").read_text())
    assert report["failed_by_reason"]["malformed_row"] == 4      # ".", NUL byte, "..", the collision
    assert report["names_slugged"] == 3
    assert "stored in folder 'x'" in done.stdout and "control character" in done.stdout


def test_two_names_with_one_slug_do_not_share_a_folder(tmp_path):
    from pipeline.data.facescrub import drop_duplicates, parse_list
    path = tmp_path / "facescrub_actors.txt"
    path.write_text("\n".join([HEADER, f"a b\t1\t1\tp.jpg\t1,1,2,2\t{'0' * 64}",
                               f"a/b\t2\t2\tq.jpg\t1,1,2,2\t{'0' * 64}"]) + "\n")
    rows, malformed, _ = parse_list(path)
    kept, dupes = drop_duplicates(rows)
    assert [r.name for r in kept] == ["a b"]
    assert len(dupes) == 1 and "already the folder of 'a b'" in dupes[0][1]


# ---------------------------------------------------------------- names from params (point 2)

@pytest.mark.parametrize("value", ["../x", "/abs", "a/b", ".hidden", "", "a b", "x\x00"])
def test_names_from_params_that_become_files_are_checked(value):
    with pytest.raises(PipelineError) as err:
        check_name(value, "base_model.arch")
    assert "base_model.arch" in str(err.value) and "\n" not in str(err.value)


def test_checkpoint_refuses_an_arch_that_is_a_path(tmp_path):
    import open_clip

    from pipeline.models.checkpoint import save_checkpoint
    model = open_clip.CLIP(embed_dim=8, vision_cfg={"image_size": 16, "layers": 1, "width": 16,
                                                    "patch_size": 8, "head_width": 8},
                           text_cfg={"context_length": 8, "vocab_size": 100, "width": 16, "heads": 2,
                                     "layers": 1})
    with pytest.raises(PipelineError):
        save_checkpoint(model, tmp_path / "m", "../../escape", {})
    assert not (tmp_path / "escape.json").exists() and not (tmp_path.parent / "escape.json").exists()


def test_profile_and_experiment_names_are_checked():
    from pipeline.profiles import profile_path, sweep_commands
    with pytest.raises(PipelineError):
        profile_path("../params")
    with pytest.raises(PipelineError):
        sweep_commands({}, [0], [], "bad/name")


# ---------------------------------------------------------------- temporaries (point 3)

def test_temporaries_live_outside_the_output_folder(tmp_path):
    (tmp_path / ".dvc").mkdir()
    target = tmp_path / "data/defended/text-k1"
    with atomic_dir(target) as tmp:
        assert not tmp.resolve().is_relative_to((tmp_path / "data").resolve())
        assert list((tmp_path / "data/defended").iterdir()) == []
        (tmp / "w").write_text("x")
    assert all_files(tmp_path / "data") == {"defended/text-k1/w"}
    with atomic_file(tmp_path / "metrics/m.json") as fh:
        fh.write("{}")
    assert list((tmp_path / "metrics").iterdir()) == [tmp_path / "metrics/m.json"]


def test_same_names_in_two_folders_do_not_clean_each_other(tmp_path):
    (tmp_path / ".dvc").mkdir()
    with atomic_dir(tmp_path / "data/defended/text-k1") as one:
        remove_leftovers(tmp_path / "data/evaluate/text-k1")
        assert one.is_dir()


STAGE = """\
import os, sys, time
from pathlib import Path
from pipeline.core.atomic import atomic_dir
with atomic_dir(Path("data/defended/text-k1")) as tmp:
    (tmp / "model.bin").write_bytes(b"w" * 1000)
    if Path("hang").exists():
        Path("ready").write_text(str(os.getpid()))
        time.sleep(600)
    (tmp / "removed.csv").write_text("name\\n")
"""

DVC_YAML = {"stages": {
    "defend": {"cmd": "python write.py", "deps": ["write.py"], "outs": ["data/defended/text-k1"]},
    "report": {"cmd": "python -c \"import os; print(sorted(os.listdir('data/defended')))\" > listing.txt",
               "deps": ["data/defended"], "outs": ["listing.txt"]},
}}


def test_kill_9_mid_write_leaves_no_garbage_in_a_dependency(tmp_path):
    """SIGKILL of a stage while it writes, then `dvc repro`: the lock hashes only real outputs."""
    from tests.e2e_helpers import env, run
    run(["git", "init", "-q"], tmp_path)
    assert run(["dvc", "init", "-q"], tmp_path).returncode == 0
    (tmp_path / "write.py").write_text(STAGE)
    (tmp_path / ".gitignore").write_text("/data/\n/listing.txt\n")   # as the project ignores data/
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump(DVC_YAML, sort_keys=False))
    (tmp_path / "hang").write_text("")
    e = {**env(), "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(["dvc", "repro"], cwd=tmp_path, env=e, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (tmp_path / "ready").exists():
        assert proc.poll() is None and time.time() < deadline, "the stage never reached its write"
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "data/defended").exists() or list((tmp_path / "data/defended").iterdir()) == []

    (tmp_path / "hang").unlink()
    done = subprocess.run(["dvc", "repro"], cwd=tmp_path, env=e, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert sorted(os.listdir(tmp_path / "data/defended")) == ["text-k1"]
    assert (tmp_path / "listing.txt").read_text().strip() == "['text-k1']"
    lock = yaml.safe_load((tmp_path / "dvc.lock").read_text())
    dep = next(d for d in lock["stages"]["report"]["deps"] if d["path"] == "data/defended")
    assert dep["nfiles"] == 2          # model.bin + removed.csv, nothing else
    staging = tmp_path / ".dvc/tmp/staging"
    assert not staging.exists() or list(staging.iterdir()) == []
