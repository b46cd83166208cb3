""""Does this model know me?" (pipeline.requests.knows): the attack for given names and photo
folders against a saved open_clip checkpoint, checked against an independent brute force."""
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from pipeline.attack.templates import IDIA_TEMPLATES, fill_template
from pipeline.core.errors import PipelineError
from pipeline.models.architecture import build_model
from pipeline.models.checkpoint import load_model, save_checkpoint
from pipeline.requests import knows

CFG = {"embed_dim": 32,
       "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
       "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}
NAMES = ["Ann Lee", "Bob O'Stone"]
CANDIDATES = ["Dee Fill", "Ann Lee", "Eve Fill", "Cy Twombly"]   # Bob is not among them


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ckpt")
    save_checkpoint(build_model("knows-tiny", CFG, seed=3), folder, "knows-tiny", CFG)
    return folder


@pytest.fixture
def photos(tmp_path):
    rng = np.random.default_rng(0)
    for i, name in enumerate(NAMES):
        folder = tmp_path / "photos" / name.replace(" ", "_")
        folder.mkdir(parents=True)
        for j in range(3):
            base = rng.integers(0, 256, (1, 1, 3)) if i == 0 else rng.integers(0, 256, (40, 40, 3))
            Image.fromarray(np.broadcast_to(base, (40, 40, 3)).astype(np.uint8)).save(folder / f"{j}.png")
    (tmp_path / "photos" / "Bob_O'Stone" / "broken.jpg").write_bytes(b"not a jpeg")
    (tmp_path / "photos" / "Bob_O'Stone" / "notes.txt").write_text("ignored")
    return tmp_path / "photos"


def brute_force(loaded, names, photos_dir, candidates):
    """Correct templates per person, computed directly with open_clip's encode_* and a plain vote."""
    out = {}
    with torch.no_grad():
        texts = {t: F.normalize(loaded.model.encode_text(loaded.tokenizer(
            [fill_template(t, c) for c in candidates])), dim=-1) for t in IDIA_TEMPLATES}
        for name in names:
            files = sorted(p for p in (photos_dir / name.replace(" ", "_")).glob("*.png"))
            imgs = torch.stack([loaded.preprocess(Image.open(p).convert("RGB")) for p in files])
            emb = F.normalize(loaded.model.encode_image(imgs), dim=-1)
            correct = 0
            for t in IDIA_TEMPLATES:
                votes = np.bincount((emb @ texts[t].T).argmax(dim=1).numpy(), minlength=len(candidates))
                top = votes.max()
                correct += int((votes == top).sum() == 1 and votes[candidates.index(name)] == top)
            out[name] = correct
    return out


def test_knows_agrees_with_a_brute_force_attack_and_adds_missing_names(checkpoint, photos):
    loaded = load_model(checkpoint)
    answer = knows.ask(loaded, NAMES, photos, CANDIDATES, tau=1, batch_size=2)
    assert answer["added_to_candidates"] == ["Bob O'Stone"] and answer["candidates"] == 5
    expected = brute_force(loaded, NAMES, photos, CANDIDATES + ["Bob O'Stone"])
    assert {n: p["correct_templates"] for n, p in answer["people"].items()} == expected
    for name, person in answer["people"].items():
        assert person["identified"] == (expected[name] >= 1)
    bob = answer["people"]["Bob O'Stone"]
    assert bob["photos"] == 3 and len(bob["unreadable"]) == 1 and bob["unreadable"][0].startswith("broken.jpg")


def test_knows_cli_prints_one_verdict_per_person(checkpoint, photos, tmp_path, capsys):
    cands = tmp_path / "candidates.csv"
    cands.write_text("name\n" + "\n".join(CANDIDATES) + "\n")
    args = ["--model", str(checkpoint), "--photos", str(photos), "--candidates", str(cands),
            "--name", NAMES[0], "--name", NAMES[1]]
    assert knows.main(args) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("added to the 4 candidates: Bob O'Stone")
    assert lines[1].startswith("Ann Lee: ") and "/21 templates correct (3 photos)" in lines[1]
    assert "1 unreadable file(s) skipped" in lines[2] and "(rule: identified when >= 1)" in lines[2]
    assert knows.main(args + ["--json"]) == 0
    assert set(json.loads(capsys.readouterr().out)["people"]) == set(NAMES)


@pytest.mark.parametrize("names, folder, message", [
    ([], None, "give at least one --name"),
    (["Ann Lee", "Ann Lee"], None, "'Ann Lee' is given twice"),
    (["Zed Nobody"], None, "no photo folder for 'Zed Nobody'"),
    (["../.."], None, "has no letter or digit"),
])
def test_bad_requests_are_one_line(checkpoint, photos, names, folder, message):
    with pytest.raises(PipelineError, match=message):
        knows.ask(load_model(checkpoint), names, photos, CANDIDATES)


def test_a_folder_without_readable_photos_and_missing_inputs_are_one_line(checkpoint, photos, tmp_path, capsys):
    empty = photos / "Eve_Fill"
    empty.mkdir()
    (empty / "x.jpg").write_bytes(b"\x00")
    with pytest.raises(PipelineError, match=r"no readable photo of 'Eve Fill' \(1 unreadable"):
        knows.ask(load_model(checkpoint), ["Eve Fill"], photos, CANDIDATES)
    assert knows.main(["--arch", "ViT-B-32", "--photos", str(photos), "--name", "Ann Lee"]) == 1
    assert "--arch needs --pretrained" in capsys.readouterr().err
    assert knows.main(["--model", str(checkpoint), "--photos", str(photos), "--name", "Ann Lee",
                       "--candidates", str(tmp_path / "none.csv")]) == 1
    assert "candidates file" in capsys.readouterr().err
