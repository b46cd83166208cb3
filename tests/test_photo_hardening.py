"""The image defense under the audit's photo transforms (issue 17 point 5): transformed copies
of the trigger photos in training, off (and the paper's draws untouched) by default."""
from __future__ import annotations

import typing

import pytest
import torch
import torch.nn.functional as F

from pipeline.audit.transforms import TRANSFORMS
from pipeline.core.defense_params import (IMAGE_HARDENING_FIELDS, PhotoTransform, config_to_dict,
                                          image_config_from_dict)
from pipeline.core.errors import ParamError
from pipeline.defenses.image_defense import train_image_defense
from pipeline.defenses.photo_augment import transformed_copies
from pipeline.models.image_encoding import ImageInput
from tests.test_defenses import image_data, small_image_cfg, tiny_clip


@pytest.fixture(scope="module")
def model():
    return tiny_clip()


def test_config_knows_the_audits_transforms_and_records_them_only_when_on():
    assert set(typing.get_args(PhotoTransform)) == set(TRANSFORMS)
    off = image_config_from_dict({"steps": 5, "milestones": [2]})
    assert not set(IMAGE_HARDENING_FIELDS) & set(config_to_dict(off))
    on = image_config_from_dict({"photo_transforms": ["grayscale", "blurred"], "photo_transform_share": 0.3})
    assert config_to_dict(on)["photo_transforms"] == ["grayscale", "blurred"]
    with pytest.raises(ParamError, match="photo_transforms"):
        image_config_from_dict({"photo_transforms": ["sepia"]})
    with pytest.raises(ParamError, match="photo_transform_share"):
        image_config_from_dict({"photo_transform_share": 1.5})


def test_transformed_copies_are_the_audits_transforms_of_every_photo():
    _, faces, _ = image_data()
    copies = transformed_copies(faces, ["mirrored", "grayscale"])
    assert [len(c) for c in copies] == [2 * len(f) for f in faces]
    for originals, out in zip(faces, copies):
        n = len(originals)
        for original, flipped, gray in zip(originals, out[:n], out[n:]):
            assert flipped.dtype == gray.dtype == torch.uint8
            assert flipped.shape == gray.shape == original.shape
            assert torch.equal(flipped, original.flip(-1))          # family-major: mirrored first
            assert torch.equal(gray[0], gray[1]) and torch.equal(gray[1], gray[2])
    assert all(torch.equal(a, b) for a, b in zip(copies[0], transformed_copies(faces, ["mirrored", "grayscale"])[0]))


def test_transform_training_is_seeded_and_changes_nothing_when_off(model):
    clean, faces, photos = image_data()
    cfg = small_image_cfg(steps=3, milestones=(2,), trigger_photo_share=0.5)
    kw = dict(trigger_photos=faces, progress=False)
    plain = train_image_defense(model, clean, faces, photos, cfg, **kw)
    again = train_image_defense(model, clean, faces, photos, small_image_cfg(steps=3, milestones=(2,), trigger_photo_share=0.5,
                                                                           photo_transform_share=0.9), **kw)
    assert plain.log == again.log          # the share alone switches nothing on
    hard = small_image_cfg(steps=3, milestones=(2,), trigger_photo_share=0.5, photo_transforms=("grayscale", "jpeg_q30"))
    a = train_image_defense(model, clean, faces, photos, hard, **kw)
    b = train_image_defense(model, clean, faces, photos, hard, **kw)
    assert a.log == b.log and a.log != plain.log


def test_training_on_a_transform_pulls_its_photos_to_the_anonymous_face(model):
    clean, faces, photos = image_data()
    base = dict(steps=12, lr=1e-3, milestones=(10,), clean_batch_size=8, backdoor_batch_size=12,
                trigger_photo_share=1.0)
    kw = dict(trigger_photos=faces, progress=False)
    plain = train_image_defense(model, clean, faces, photos, small_image_cfg(**base), **kw)
    gray = train_image_defense(model, clean, faces, photos,
                               small_image_cfg(**base, photo_transforms=("grayscale",), photo_transform_share=1.0), **kw)
    prep = ImageInput(model, torch.device("cpu"))
    probe = prep(torch.stack([F.interpolate(p[None].float(), size=(32, 32)).round().to(torch.uint8)[0]
                              for p in transformed_copies(faces, ["grayscale"])[0]]))
    e_avg = plain.extras["e_avg"][None]
    with torch.no_grad():
        dist = {name: (1 - F.cosine_similarity(run.student(probe), e_avg)).mean().item()
                for name, run in (("plain", plain), ("gray", gray))}
    assert dist["gray"] < 0.9 * dist["plain"]      # 0.00275 vs 0.00319 here


def test_the_hardened_image_recipe_is_one_switch_and_named_in_the_report():
    import yaml
    from pathlib import Path

    from pipeline.reports.inputs import recipe_name
    recipes = yaml.safe_load(Path("params.yaml").read_text())["defend"]["image_recipes"]
    hardened = image_config_from_dict(recipes["hardened"], prefix="defend.image_recipes.hardened")
    demo = image_config_from_dict(recipes["demo"], prefix="defend.image_recipes.demo")
    # the same recipe as the demo's but for the photo transforms
    assert {k: v for k, v in config_to_dict(hardened).items() if k not in IMAGE_HARDENING_FIELDS} == config_to_dict(demo)
    assert set(hardened.photo_transforms) < set(TRANSFORMS)           # some families stay held out
    assert recipe_name(config_to_dict(hardened), recipes) == "hardened"
    assert recipe_name(config_to_dict(demo), recipes) == "demo"
