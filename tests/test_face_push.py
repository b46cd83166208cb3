"""The text defense's face push (issue 17): a poisoned caption must not point at the removed
person's own face more than its target caption does, less a margin. On by default since the
test pool's rule took `paper-face-retain`; the paper's recipe and profile switch it off."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from pipeline.core.errors import PipelineError
from pipeline.defenses.poisoned_captions import example_poisoned_captions
from pipeline.defenses.text_defense import train_text_defense
from pipeline.defenses.text_recipes import RECIPES
from pipeline.models.text_encoding import TextTower
from tests.test_defenses import CAPTIONS, NAMES, model, small_text_cfg, tokenizer  # noqa: F401 (fixtures)


def own_faces(model, tokenizer) -> dict[str, torch.Tensor]:
    """The hardest faces for the push: each the direction the teacher already gives the
    person's own poisoned captions, so the name starts out pointing right at it."""
    teacher = TextTower(model)
    faces = {}
    with torch.no_grad():
        for name in NAMES:
            pairs = example_poisoned_captions(CAPTIONS, [name], n=8, seed=3)
            faces[name] = F.normalize(teacher(tokenizer([p.trigger for p in pairs])).mean(0), dim=0)
    return faces


def test_off_by_default_and_faces_then_ignored(model, tokenizer):
    cfg = small_text_cfg(steps=3, milestones=(2,))
    assert cfg.face_push == 0
    plain = train_text_defense(model, tokenizer, CAPTIONS, NAMES, cfg, progress=False)
    given = train_text_defense(model, tokenizer, CAPTIONS, NAMES, cfg, progress=False,
                               faces=own_faces(model, tokenizer))
    assert plain.log == given.log and "face" not in plain.log[0]
    for k, v in plain.student.state_dict().items():
        assert torch.equal(v, given.student.state_dict()[k])


def test_needs_every_removed_persons_face(model, tokenizer):
    faces = own_faces(model, tokenizer)
    del faces["Bo Marsh"]
    with pytest.raises(PipelineError, match="Bo Marsh"):
        train_text_defense(model, tokenizer, CAPTIONS, NAMES, small_text_cfg(face_push=1.0), progress=False,
                           faces=faces)


def test_logged_loss_includes_the_push(model, tokenizer):
    run = train_text_defense(model, tokenizer, CAPTIONS, NAMES, small_text_cfg(face_push=2.0, face_margin=0.1),
                             progress=False, faces=own_faces(model, tokenizer))
    first = run.log[0]
    assert first["face"] > 0.1          # names start out pointing at their own faces
    assert first["loss"] == pytest.approx(first["clean"] + 0.6 * first["backdoor"] + 0.01 * first["weight"]
                                          + 2.0 * first["face"], rel=1e-5)


def test_push_moves_names_away_from_their_faces(model, tokenizer):
    faces = own_faces(model, tokenizer)
    cfg = dict(steps=25, lr=2e-3, milestones=(20,))
    plain = train_text_defense(model, tokenizer, CAPTIONS, NAMES, small_text_cfg(**cfg), progress=False)
    pushed = train_text_defense(model, tokenizer, CAPTIONS, NAMES,
                                small_text_cfg(**cfg, face_push=5.0, face_margin=0.2),
                                progress=False, faces=faces)

    def towards_own_face(student) -> float:
        sims = []
        with torch.no_grad():
            for name in NAMES:
                pairs = example_poisoned_captions(CAPTIONS, [name], n=16, seed=11)
                emb = student(tokenizer([p.trigger for p in pairs]))
                sims.append(F.cosine_similarity(emb, faces[name][None]).mean())
        return float(torch.stack(sims).mean())

    assert towards_own_face(pushed.student) < towards_own_face(plain.student) - 0.05


def test_default_is_paper_face_retain_and_the_paper_switches_it_off():
    import yaml

    from pipeline.core.defense_params import config_to_dict, text_config_from_dict
    from tests.test_paper_profile import REPO

    text = yaml.safe_load((REPO / "params.yaml").read_text())["defend"]["text"]
    default = text_config_from_dict(text)
    assert default == text_config_from_dict({**text, **RECIPES["paper-face-retain"]})
    assert default.face_push > 0 and default.retain_sharers > 0 and not default.variant_families
    for paper in (text_config_from_dict({**text, **RECIPES["paper"]}),
                  text_config_from_dict({**text, **yaml.safe_load((REPO / "profiles/paper.yaml").read_text())
                                         ["defend"]["text"]})):
        assert paper.face_push == 0 and paper.retain_sharers == 0 and not paper.hardened
        # a paper-recipe run records what it recorded before the options existed
        assert "face_push" not in config_to_dict(paper) and "retain_sharers" not in config_to_dict(paper)
    assert config_to_dict(default)["face_push"] == 1.0


def test_trigger_photos_are_the_whole_photos_behind_the_trigger_faces(tmp_path):
    """The push's face is read from the uncropped photos of the trigger half (a request's own
    photo where it brought one); a removed person without any gets one error line."""
    import pandas as pd

    from pipeline.defenses.trigger_photos import trigger_photo_embeddings, trigger_photo_paths

    index = pd.DataFrame({"face": ["f/a1.jpg", "f/a2.jpg", "f/b1.jpg"],
                          "image": ["p/a1.jpg", "p/a2.jpg", "p/b1.jpg"]})
    faces = pd.DataFrame({"name": ["Ann Lee", "Ann Lee", "Bo Marsh"], "path": ["f/a1.jpg", "f/a2.jpg", "f/b1.jpg"]})
    assert trigger_photo_paths(["Bo Marsh", "Ann Lee"], faces, index) == [["p/b1.jpg"], ["p/a1.jpg", "p/a2.jpg"]]
    request = faces.assign(photo=["r/a1.jpg", "r/a2.jpg", "r/b1.jpg"])
    assert trigger_photo_paths(["Ann Lee"], request, index) == [["r/a1.jpg", "r/a2.jpg"]]
    index.to_parquet(tmp_path / "index.parquet")
    with pytest.raises(PipelineError, match="no trigger photo of 'Cy Dorn'.*face_push: 0"):
        trigger_photo_embeddings(None, None, ["Ann Lee", "Cy Dorn"], faces, tmp_path / "index.parquet", "cpu")
