"""Backdoor defenses: loss terms, poisoned captions, face pasting, training, tower merging, config."""
from __future__ import annotations

import math
from pathlib import Path

import open_clip
import pytest
import pandas as pd
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
import yaml
from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
from open_clip.tokenizer import SimpleTokenizer

from pipeline.core.defense_params import (ImageDefenseConfig, TextDefenseConfig, config_to_dict,
                                      image_config_from_dict, text_config_from_dict)
from pipeline.defenses.image_defense import (_per_identity_mean, identity_split, render_poisoned_examples,
                                             train_image_defense)
from pipeline.defenses.losses import (freeze_norm_layers, neg_cosine, teacher_student, trainable_pairs,
                                      weight_distance)
from pipeline.defenses.paste import (PasteParams, PasteSpec, jitter_colors, paste_faces, poison_images,
                                     prepare_faces, sample_paste_params)
from pipeline.defenses.poisoned_captions import example_poisoned_captions, poison_caption, sample_poisoned_pairs
from pipeline.defenses.text_defense import train_text_defense
from pipeline.defenses.towers import build_defended_model, text_tower_keys, visual_keys
from pipeline.models.image_encoding import ImageInput
from pipeline.models.text_encoding import TextTower
from pipeline.core.errors import ParamError, PipelineError

CONTEXT = 16
NAMES = ["Ada Quill", "Bo Marsh"]
CAPTIONS = [f"a {adj} photo of a {thing} near the {place}"
            for adj in ("bright", "dark", "small", "old", "blurry")
            for thing in ("dog", "car", "tree", "house")
            for place in ("river", "road", "park")]


def tiny_clip(seed: int = 0) -> open_clip.CLIP:
    torch.manual_seed(seed)
    model = open_clip.CLIP(embed_dim=32,
                           vision_cfg=dict(image_size=32, layers=1, width=32, patch_size=8, head_width=16),
                           text_cfg=dict(context_length=CONTEXT, vocab_size=49408, width=32, heads=2, layers=1))
    return model.eval()


@pytest.fixture(scope="module")
def model():
    return tiny_clip()


@pytest.fixture(scope="module")
def tokenizer():
    return SimpleTokenizer(context_length=CONTEXT)


def small_text_cfg(**kw) -> TextDefenseConfig:
    base = dict(steps=6, clean_batch_size=8, backdoor_batch_size=8, poison_pool_size=32,
                milestones=(3, 5), encode_batch_size=16)
    return TextDefenseConfig(**{**base, **kw})


def image_data(seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    clean = (torch.rand(24, 3, 32, 32, generator=g) * 255).to(torch.uint8)
    faces = [[(torch.rand(3, 18 + i, 14 + j, generator=g) * 255).to(torch.uint8) for j in range(2)]
             for i in range(3)]
    photos = (torch.rand(6, 3, 40, 40, generator=g) * 255).to(torch.uint8)
    return clean, faces, photos


def small_image_cfg(**kw) -> ImageDefenseConfig:
    base = dict(steps=4, clean_batch_size=6, backdoor_batch_size=7, milestones=(2, 3), paste_scale=(0.5, 1.0),
                encode_batch_size=16)
    return ImageDefenseConfig(**{**base, **kw})


# ---------------------------------------------------------------- loss terms

def test_neg_cosine_matches_hand_computation():
    u = torch.tensor([[1.0, 0.0], [2.0, 2.0]])
    v = torch.tensor([[0.0, 3.0], [1.0, 1.0]])
    assert neg_cosine(u, v).item() == pytest.approx(-(0.0 + 1.0) / 2)
    # a single target vector is compared with every row (cos 1 and 1/sqrt(2))
    assert neg_cosine(u, torch.tensor([1.0, 0.0])).item() == pytest.approx(-(1.0 + 1 / math.sqrt(2)) / 2)


def test_weight_distance_is_sum_of_unsquared_per_tensor_norms():
    pairs = [(torch.tensor([3.0, 4.0]), torch.zeros(2)),                       # norm 5
             (torch.ones(2, 2) * 2, torch.ones(2, 2))]                          # norm 2
    assert weight_distance(pairs).item() == pytest.approx(7.0)                 # not 25 + 4, not sqrt(29)


def test_weight_distance_gradient_is_finite_at_zero():
    p = torch.zeros(3, requires_grad=True)
    weight_distance([(p, torch.zeros(3))]).backward()
    assert torch.isfinite(p.grad).all()


def test_teacher_student_freezes_norms_only(model):
    teacher, student = teacher_student(TextTower(model))
    assert not any(p.requires_grad for p in teacher.parameters())
    frozen = {n for n, p in student.named_parameters() if not p.requires_grad}
    assert frozen and all("ln" in n for n in frozen)
    names = {n for n, _ in student.named_parameters()} - frozen
    assert {"positional_embedding", "text_projection", "token_embedding.weight"} <= names
    assert len(trainable_pairs(student, teacher)) == len(names)
    assert not student.training and not teacher.training


def test_freeze_norm_layers_covers_batchnorm():
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    freeze_norm_layers(net)
    assert net[0].weight.requires_grad and not net[1].weight.requires_grad and not net[1].bias.requires_grad


# ---------------------------------------------------------------- poisoned captions

def test_poisoned_pair_replaces_one_word_never_the_last():
    gen = torch.Generator().manual_seed(0)
    pairs = sample_poisoned_pairs(CAPTIONS + ["single"], NAMES, "a person", 300, gen)
    seen = set()
    for pair in pairs:
        words_trig, words_tgt = pair.trigger.split(), pair.target.split()
        n_name = len(pair.name.split())
        i = pair.word_index
        caption_words = words_trig[:i] + words_trig[i + n_name:]
        original_len = len(caption_words) + 1
        assert 0 <= i < original_len - 1
        assert words_trig[i:i + n_name] == pair.name.split()
        assert words_tgt[i:i + 2] == ["a", "person"]
        assert words_tgt[:i] + words_tgt[i + 2:] == caption_words       # same words apart from the slot
        seen.add(i)
    assert seen == set(range(len(CAPTIONS[0].split()) - 1))               # every non-last slot occurs
    assert {p.name for p in pairs[:4]} == set(NAMES)                      # names in turn


def test_poison_caption_exact_and_rejects_last_word():
    pair = poison_caption("a dog on the beach", "Ada Quill", "a person", 1)
    assert pair.trigger == "a Ada Quill on the beach" and pair.target == "a a person on the beach"
    with pytest.raises(ValueError):
        poison_caption("a dog on the beach", "Ada Quill", "a person", 4)


def test_poisoned_pairs_need_two_word_captions():
    with pytest.raises(PipelineError):
        sample_poisoned_pairs(["one", "two"], NAMES, "a person", 4, torch.Generator())


def test_example_poisoned_captions_deterministic():
    a = example_poisoned_captions(CAPTIONS, NAMES, n=5, seed=3)
    assert a == example_poisoned_captions(CAPTIONS, NAMES, n=5, seed=3) and len(a) == 5


# ---------------------------------------------------------------- face pasting

def test_pasted_faces_stay_inside_and_have_the_drawn_size():
    n, size = 48, 64
    gen = torch.Generator().manual_seed(0)
    face = torch.full((3, 20, 20), 255, dtype=torch.uint8)
    faces = prepare_faces([face] * n, 32)
    spec = PasteSpec(scale=(0.25, 0.5), rotation=30.0)
    params = sample_paste_params(n, size, size, spec, gen)
    out, alpha = paste_faces(torch.zeros(n, 3, size, size), faces, params, return_alpha=True)
    ys, xs = torch.arange(size) + 0.5, torch.arange(size) + 0.5
    for i in range(n):
        side, rad = params.side[i].item(), math.radians(params.angle[i].item())
        box = side * (abs(math.cos(rad)) + abs(math.sin(rad)))
        x0, x1 = params.cx[i].item() - box / 2, params.cx[i].item() + box / 2
        y0, y1 = params.cy[i].item() - box / 2, params.cy[i].item() + box / 2
        assert -1e-4 <= x0 and x1 <= size + 1e-4 and -1e-4 <= y0 and y1 <= size + 1e-4
        lit = out[i].amax(dim=0) > 0
        assert lit.any()
        assert xs[lit.any(dim=0)].min() >= x0 - 1 and xs[lit.any(dim=0)].max() <= x1 + 1
        assert ys[lit.any(dim=1)].min() >= y0 - 1 and ys[lit.any(dim=1)].max() <= y1 + 1
        # the whole face landed in the image: its alpha area is its drawn side squared
        assert alpha[i].sum().item() == pytest.approx(side ** 2, rel=0.04)
        area_fraction = alpha[i].sum().item() / size ** 2
        assert 0.25 ** 2 * 0.96 <= area_fraction <= 0.5 ** 2 * 1.04
    assert params.angle.abs().max() <= 30 and params.angle.abs().max() > 15


def test_windowed_paste_equals_whole_image_warp():
    gen = torch.Generator().manual_seed(3)
    for size, face_px in ((64, 32), (48, 7)):                     # 7 px texture: texels wider than a pixel
        faces = (torch.rand(40, 4, face_px, face_px, generator=gen) * 255).to(torch.uint8)
        faces[:, 3] = 255
        params = sample_paste_params(40, size, size, PasteSpec(scale=(0.2, 0.5)), gen)
        images = torch.rand(40, 3, size, size, generator=gen)
        out, alpha = paste_faces(images, faces, params, return_alpha=True)
        ref, ref_alpha = paste_faces(images, faces, params, return_alpha=True, window=False)
        assert torch.equal(out, ref) and torch.equal(alpha, ref_alpha)
        float_faces = faces.float() / 255
        kept = float_faces.clone()
        assert torch.allclose(paste_faces(images, float_faces, params), out, atol=1e-6)
        assert torch.equal(float_faces, kept)                     # the caller's faces are not touched
        backgrounds = images.clone()
        assert torch.equal(paste_faces(backgrounds, faces, params, inplace=True), out)
        assert torch.equal(backgrounds, out)                       # written in place


def test_large_rotated_faces_are_shrunk_to_fit():
    params = sample_paste_params(200, 64, 64, PasteSpec(scale=(1.0, 1.0), rotation=30.0),
                                 torch.Generator().manual_seed(0))
    rad = params.angle.double() * math.pi / 180
    box = params.side.double() * (rad.cos().abs() + rad.sin().abs())
    assert (box <= 64 + 1e-3).all() and (params.side <= 64 + 1e-3).all()


def test_paste_rotation_and_flip_follow_the_params():
    face = torch.zeros(3, 16, 16, dtype=torch.uint8)
    face[0, :, :8] = 255                                           # left half red, right half blue
    face[2, :, 8:] = 255
    faces = prepare_faces([face, face], 16)
    p = PasteParams(side=torch.tensor([32.0, 32.0]), angle=torch.tensor([0.0, 0.0]),
                    cx=torch.tensor([32.0, 32.0]), cy=torch.tensor([32.0, 32.0]),
                    flip=torch.tensor([False, True]), brightness=torch.ones(2), contrast=torch.ones(2),
                    saturation=torch.ones(2), hue=torch.zeros(2))
    out = paste_faces(torch.zeros(2, 3, 64, 64), faces, p)
    assert out[0, 0, 32, 20] > 0.9 and out[0, 2, 32, 44] > 0.9            # red left, blue right
    assert out[1, 2, 32, 20] > 0.9 and out[1, 0, 32, 44] > 0.9            # flipped
    assert out[0, :, 5, 5].abs().max() == 0                               # outside the face untouched
    p.angle = torch.tensor([45.0, 45.0])
    rot = paste_faces(torch.zeros(2, 3, 64, 64), faces, p)
    cols = (rot[0].amax(dim=0) > 0.5).any(dim=0).nonzero()
    assert cols.max() - cols.min() + 1 == pytest.approx(32 * math.sqrt(2), abs=2)


def test_colour_jitter_matches_torchvision():
    x = torch.rand(4, 3, 12, 12, generator=torch.Generator().manual_seed(0))
    p = PasteParams(*(torch.zeros(4),) * 4, torch.zeros(4, dtype=torch.bool),
                    brightness=torch.tensor([0.5, 1.2, 1.5, 0.7]), contrast=torch.tensor([0.6, 1.4, 1.0, 0.9]),
                    saturation=torch.tensor([1.3, 0.5, 1.0, 1.2]), hue=torch.tensor([0.1, -0.05, 0.0, -0.1]))
    out = jitter_colors(x, torch.ones(4, 1, 12, 12), p)
    for i in range(4):
        ref = TF.adjust_brightness(x[i], p.brightness[i].item())
        ref = TF.adjust_contrast(ref, p.contrast[i].item())
        ref = TF.adjust_saturation(ref, p.saturation[i].item())
        ref = TF.adjust_hue(ref, p.hue[i].item())
        assert torch.allclose(out[i], ref, atol=1e-3)


def test_prepare_faces_keeps_aspect_with_transparent_padding():
    out = prepare_faces([torch.full((3, 10, 20), 200, dtype=torch.uint8)], 20)
    assert out.shape == (1, 4, 20, 20)
    assert out[0, 3].sum().item() == 255 * 10 * 20
    assert out[0, 3, 0].sum() == 0 and out[0, 3, 10].all()
    with pytest.raises(PipelineError):
        prepare_faces([torch.zeros(3, 4, 4)], 8)                          # float, not uint8


def test_poison_images_seeded():
    bg = torch.zeros(3, 3, 32, 32, dtype=torch.uint8)
    faces = prepare_faces([torch.full((3, 8, 8), 180, dtype=torch.uint8)] * 3, 16)
    a = poison_images(bg, faces, PasteSpec(), torch.Generator().manual_seed(5))
    b = poison_images(bg, faces, PasteSpec(), torch.Generator().manual_seed(5))
    c = poison_images(bg, faces, PasteSpec(), torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)


# ---------------------------------------------------------------- towers

def test_text_tower_equals_encode_text_with_trimming(model, tokenizer):
    tokens = tokenizer(["a dog", "a much longer caption about a dog near a river"])
    tower = TextTower(model)
    assert tower.trim(tokens).shape[1] < CONTEXT
    assert torch.allclose(tower(tokens), model.encode_text(tokens), atol=1e-5)
    assert set(tower.state_dict()) == set(text_tower_keys(model))


def test_build_defended_model_replaces_exactly_one_tower(model):
    text = TextTower(tiny_clip(seed=1))
    visual = tiny_clip(seed=2).visual
    base_sd = model.state_dict()
    tkeys, vkeys = set(text_tower_keys(model)), set(visual_keys(model))
    assert "positional_embedding" in tkeys

    def same(a, b):
        return torch.equal(a, b)

    merged = build_defended_model(model, text_student=text).state_dict()
    for k, v in merged.items():
        expect = text.state_dict()[k] if k in tkeys else base_sd[k]
        assert same(v, expect), k
    merged = build_defended_model(model, visual_student=visual.state_dict()).state_dict()
    for k, v in merged.items():
        expect = visual.state_dict()[k[len("visual."):]] if k in vkeys else base_sd[k]
        assert same(v, expect), k
    both = build_defended_model(model, text_student=text.state_dict(), visual_student=visual)
    tokens = SimpleTokenizer(context_length=CONTEXT)(["a photo of Ada Quill"])
    assert torch.allclose(both.encode_text(tokens), text(tokens), atol=1e-5)
    images = torch.randn(2, 3, 32, 32)
    assert torch.allclose(both.encode_image(images), visual(images), atol=1e-5)
    assert torch.equal(model.state_dict()["positional_embedding"], base_sd["positional_embedding"])


def test_build_defended_model_rejects_incomplete_tower(model):
    partial = {k: v for k, v in TextTower(model).state_dict().items() if k != "positional_embedding"}
    with pytest.raises(PipelineError, match="positional_embedding"):
        build_defended_model(model, text_student=partial)


# ---------------------------------------------------------------- text defense

def test_text_defense_trains_everything_but_layernorms(model, tokenizer):
    run = train_text_defense(model, tokenizer, CAPTIONS, NAMES, small_text_cfg(lr=1e-3), progress=False)
    base = model.state_dict()
    student = run.student.state_dict()
    for key in text_tower_keys(model):
        if "ln" in key:
            assert torch.equal(student[key], base[key]), key
        else:
            assert not torch.equal(student[key], base[key]), key
    assert [r["step"] for r in run.log] == list(range(6))
    assert {"loss", "clean", "backdoor", "weight", "lr"} <= set(run.log[0])
    assert [r["lr"] for r in run.log] == pytest.approx([1e-3] * 3 + [5e-4] * 2 + [2.5e-4])
    assert run.train_seconds > 0 and run.seconds_per_step == pytest.approx(run.train_seconds / 6)
    summary = run.summary()
    assert summary["steps"] == 6 and summary["final_backdoor"] == run.log[-1]["backdoor"]
    first = run.log[0]
    assert first["loss"] == pytest.approx(first["clean"] + 0.6 * first["backdoor"] + 0.01 * first["weight"])


def test_text_defense_is_seeded(model, tokenizer):
    cfg = small_text_cfg(steps=3, milestones=(2,))
    a = train_text_defense(model, tokenizer, CAPTIONS, NAMES, cfg, progress=False)
    b = train_text_defense(model, tokenizer, CAPTIONS, NAMES, cfg, progress=False)
    c = train_text_defense(model, tokenizer, CAPTIONS, NAMES, small_text_cfg(steps=3, milestones=(2,), seed=1),
                           progress=False)
    assert a.log == b.log and a.log != c.log
    for k, v in a.student.state_dict().items():
        assert torch.equal(v, b.student.state_dict()[k])


def test_text_defense_without_weight_regulariser(model, tokenizer):
    run = train_text_defense(model, tokenizer, CAPTIONS, NAMES, small_text_cfg(weight_reg=0.0), progress=False)
    last = run.log[-1]
    assert last["weight"] > 0                                     # still logged: the student drifted
    assert last["loss"] == pytest.approx(last["clean"] + 0.6 * last["backdoor"])


def test_text_defense_maps_names_towards_the_target(model, tokenizer):
    pairs = example_poisoned_captions(CAPTIONS, NAMES, n=16, seed=11)
    teacher = TextTower(model)
    trig, tgt = tokenizer([p.trigger for p in pairs]), tokenizer([p.target for p in pairs])
    run = train_text_defense(model, tokenizer, CAPTIONS, NAMES,
                             small_text_cfg(steps=25, lr=2e-3, milestones=(20,)), progress=False)
    with torch.no_grad():
        before = F.cosine_similarity(teacher(trig), teacher(tgt)).mean()
        after = F.cosine_similarity(run.student(trig), teacher(tgt)).mean()
        clean = tokenizer(CAPTIONS[:10])
        kept = F.cosine_similarity(run.student(clean), teacher(clean)).mean()
    assert after > before + 0.05
    assert kept > 0.95


def test_text_defense_bf16_runs(model, tokenizer):
    run = train_text_defense(model, tokenizer, CAPTIONS, NAMES, small_text_cfg(steps=2, milestones=(1,), bf16=True),
                             progress=False)
    assert all(math.isfinite(r["loss"]) for r in run.log)


# ---------------------------------------------------------------- image defense

def test_identity_split_is_equal_and_rotates_the_remainder():
    first, second = identity_split(128, 3, 0), identity_split(128, 3, 1)
    assert len(first) == 128 and torch.bincount(first).tolist() == [43, 43, 42]
    assert torch.bincount(second).tolist() == [43, 42, 43]
    assert torch.bincount(identity_split(128, 4, 7)).tolist() == [32] * 4
    many = torch.stack([torch.bincount(identity_split(5, 8, s), minlength=8) for s in range(8)])
    assert (many.sum(dim=1) == 5).all() and (many.sum(dim=0) == 5).all()


def test_per_identity_mean_weights_identities_equally():
    values = torch.tensor([1.0, 1.0, 1.0, 4.0])
    ids = torch.tensor([0, 0, 0, 1])
    assert _per_identity_mean(values, ids, 3).item() == pytest.approx((1.0 + 4.0) / 2)


def test_image_defense_trains_visual_and_merges(model):
    clean, faces, photos = image_data()
    run = train_image_defense(model, clean, faces, photos, small_image_cfg(lr=1e-3), progress=False)
    base = model.visual.state_dict()
    for key, value in run.student.state_dict().items():
        if "ln" in key:
            assert torch.equal(value, base[key]), key
        else:
            assert not torch.equal(value, base[key]), key
    first = run.log[0]
    assert first["loss"] == pytest.approx(first["clean"] + 0.8 * first["backdoor"] + 0.005 * first["weight"])
    assert first["clean"] == pytest.approx(-1.0, abs=1e-5) and first["weight"] == 0.0
    assert [r["lr"] for r in run.log] == pytest.approx([1e-3, 1e-3, 1e-4, 1e-5])
    with torch.no_grad():
        expected = model.encode_image(ImageInput(model, torch.device("cpu"))(photos)).mean(dim=0)
    assert torch.allclose(run.extras["e_avg"], expected, atol=1e-5)
    merged = build_defended_model(model, visual_student=run.student)
    tokens = SimpleTokenizer(context_length=CONTEXT)(["a photo"])
    assert torch.equal(merged.encode_text(tokens), model.encode_text(tokens))


def test_image_defense_seeded_and_lambda_zero_and_retain(model):
    clean, faces, photos = image_data()
    cfg = small_image_cfg(steps=2, milestones=(1,), weight_reg=0.0, retain_weight=0.5, retain_batch_size=3)
    a = train_image_defense(model, clean, faces, photos, cfg, retain_images=clean[:5], progress=False)
    b = train_image_defense(model, clean, faces, photos, cfg, retain_images=clean[:5], progress=False)
    assert a.log == b.log
    for k, v in a.student.state_dict().items():
        assert torch.equal(v, b.student.state_dict()[k])
    last = a.log[-1]
    assert "retain" in last
    assert last["loss"] == pytest.approx(last["clean"] + 0.8 * last["backdoor"] + 0.5 * last["retain"])
    with pytest.raises(PipelineError, match="retain"):
        train_image_defense(model, clean, faces, photos, cfg, progress=False)


def test_image_defense_pulls_trigger_faces_to_e_avg(model):
    clean, faces, photos = image_data()
    cfg = small_image_cfg(steps=12, lr=1e-3, milestones=(10,), clean_batch_size=8, backdoor_batch_size=12)
    run = train_image_defense(model, clean, faces, photos, cfg, progress=False)
    prep = ImageInput(model, torch.device("cpu"))
    held_out = prep(render_poisoned_examples(clean, faces, cfg, n=12, seed=9))
    e_avg = run.extras["e_avg"][None]
    with torch.no_grad():
        before = 1 - F.cosine_similarity(model.visual(held_out), e_avg).mean()
        after = 1 - F.cosine_similarity(run.student(held_out), e_avg).mean()
    assert after < 0.7 * before                     # cosine distance to e_avg shrinks


def test_image_defense_rejects_bad_inputs(model):
    clean, faces, photos = image_data()
    with pytest.raises(PipelineError, match="clean_images"):
        train_image_defense(model, clean.float(), faces, photos, small_image_cfg(), progress=False)
    with pytest.raises(PipelineError, match="no trigger face"):
        train_image_defense(model, clean, [faces[0], []], photos, small_image_cfg(), progress=False)


def test_render_poisoned_examples(model):
    clean, faces, _ = image_data()
    out = render_poisoned_examples(clean, faces, small_image_cfg(), n=5, seed=2)
    assert out.shape == (5, 3, 32, 32) and out.dtype == torch.uint8
    assert torch.equal(out, render_poisoned_examples(clean, faces, small_image_cfg(), n=5, seed=2))
    assert not torch.equal(out, clean[:5])


# ---------------------------------------------------------------- config

def test_config_defaults_are_the_papers():
    t, i = TextDefenseConfig(), ImageDefenseConfig()
    assert (t.steps, t.clean_batch_size, t.backdoor_batch_size, t.lr, t.weight_decay) == (400, 128, 128, 1e-4, 0.0)
    assert (t.milestones, t.gamma, t.beta, t.weight_reg, t.target) == ((200, 300), 0.5, 0.6, 0.01, "a person")
    assert (i.steps, i.lr, i.milestones, i.gamma, i.beta, i.weight_reg) == (100, 1e-4, (25, 50), 0.1, 0.8, 0.005)
    assert (i.paste_scale, i.rotation, i.retain_weight) == ((0.25, 0.5), 30.0, 0.0)


def test_config_from_dict_parses_and_validates():
    cfg = image_config_from_dict({"steps": 250, "milestones": [150, 200], "lr": 3e-5, "paste_scale": [0.5, 1],
                                  "weight_reg": 0})
    assert cfg.milestones == (150, 200) and cfg.paste_scale == (0.5, 1.0) and cfg.weight_reg == 0.0
    assert config_to_dict(cfg)["milestones"] == [150, 200]
    assert text_config_from_dict(None) == TextDefenseConfig()
    bad = [(text_config_from_dict, {"stepz": 3}, "defend.text.stepz"),
           (text_config_from_dict, {"steps": 0}, "defend.text.steps"),
           (text_config_from_dict, {"steps": 100}, "defend.text.milestones"),
           (text_config_from_dict, {"target": "  "}, "defend.text.target"),
           (text_config_from_dict, {"bf16": "yes"}, "defend.text.bf16"),
           (text_config_from_dict, {"lr": 0}, "defend.text.lr"),
           (image_config_from_dict, {"paste_scale": [0.6, 0.3]}, "defend.image.paste_scale"),
           (image_config_from_dict, {"milestones": [50, 25]}, "defend.image.milestones"),
           (image_config_from_dict, {"steps": 1.5}, "defend.image.steps"),
           (image_config_from_dict, {"retain_weight": -1}, "defend.image.retain_weight")]
    for fn, section, key in bad:
        with pytest.raises(ParamError) as err:
            fn(section)
        assert err.value.key == key and key in str(err.value)


def test_e_avg_from_image_files_matches_the_in_memory_mean(model, tmp_path):
    from PIL import Image

    from pipeline.data.images import FileImages
    clean, faces, photos = image_data()
    paths = []
    for i, photo in enumerate(photos):
        paths.append(tmp_path / f"{i}.png")   # lossless: the files hold exactly these pixels
        Image.fromarray(photo.permute(1, 2, 0).numpy()).save(paths[-1])
    lazy = FileImages(paths, photos.shape[-1])
    assert lazy.shape == tuple(photos.shape) and torch.equal(lazy[1:3], photos[1:3])
    assert torch.equal(lazy[torch.tensor([2, 0])], photos[[2, 0]])
    cfg = small_image_cfg(lr=1e-3, steps=1, milestones=[], encode_batch_size=4)  # two batches of files
    in_memory = train_image_defense(model, clean, faces, photos, cfg, progress=False).extras["e_avg"]
    from_files = train_image_defense(model, clean, faces, lazy, cfg, progress=False).extras["e_avg"]
    assert torch.allclose(in_memory, from_files, atol=1e-6)


@pytest.mark.parametrize("k, ok", [(4, True), (8, False)])
def test_image_k_must_have_a_text_defense_for_the_combined_model(k, ok):
    from pipeline.core.params import validate
    defend = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())["defend"]
    defend = {**defend, "text_ks": [1, 4, 16], "image_ks": [1, k]}
    if ok:
        validate("defend", defend)
    else:
        with pytest.raises(PipelineError, match=r"defend.image_ks = \[1, 8\] is not allowed; expected Ks that "
                                                r"defend.text_ks \[1, 4, 16\] also has \(K=8 is missing there\)"):
            validate("defend", defend)


def test_whole_trigger_photos_as_poisoned_images(model):
    """trigger_photo_share = 1: every poisoned image is a removed person's whole photo, so at
    step 0 (student == teacher) the backdoor term is the hand-computed -cos to e_avg."""
    clean, faces, photos = image_data()
    g = torch.Generator().manual_seed(5)
    whole = [[(torch.rand(3, 32, 32, generator=g) * 255).to(torch.uint8)] for _ in range(3)]
    cfg = small_image_cfg(steps=2, milestones=(1,), trigger_photo_share=1.0, flip=0.0)
    run = train_image_defense(model, clean, faces, photos, cfg, trigger_photos=whole, progress=False)
    prep = ImageInput(model, torch.device("cpu"))
    with torch.no_grad():
        e_avg = model.visual(prep(photos)).mean(dim=0)
        per_id = [-F.cosine_similarity(model.visual(prep(w[0][None])), e_avg[None]).item() for w in whole]
    assert run.log[0]["backdoor"] == pytest.approx(sum(per_id) / 3, abs=1e-5)
    again = train_image_defense(model, clean, faces, photos, cfg, trigger_photos=whole, progress=False)
    assert again.log == run.log
    with pytest.raises(PipelineError, match="trigger_photos"):
        train_image_defense(model, clean, faces, photos, cfg, progress=False)


def test_image_input_normalises_like_open_clip_and_keeps_its_input(model):
    prep = ImageInput(model, torch.device("cpu"))
    size = prep.size[0]
    images = torch.randint(0, 256, (3, 3, size, size), generator=torch.Generator().manual_seed(1),
                           dtype=torch.int64).to(torch.uint8)
    kept = images.clone()
    mean = torch.tensor(OPENAI_DATASET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(OPENAI_DATASET_STD).view(1, 3, 1, 1)
    expected = (images.float() / 255 - mean) / std
    assert torch.allclose(prep(images), expected, atol=1e-6)
    assert torch.equal(images, kept)   # normalised in place, but never the caller's tensor


# ------------------------------------------------------------- examples written for the report
def test_image_examples_show_what_training_draws(tmp_path):
    from PIL import Image

    from pipeline.defenses.examples import IMAGE_TABLE, write_image_examples
    clean, faces, photos = image_data()
    photos = [[photos[0], photos[1]], [photos[2]]]       # whole trigger photos per identity
    cfg = small_image_cfg(trigger_photo_share=0.5)
    write_image_examples(tmp_path / "a", clean, faces, ["Ada Quill", "Bo Marsh"], cfg, 6, 0, 32, photos)
    table = pd.read_csv(tmp_path / "a" / IMAGE_TABLE)
    assert list(table["kind"]) == ["whole photo"] * 3 + ["pasted face"] * 3   # the recipe's share
    assert list(table["name"]) == ["Ada Quill", "Bo Marsh", "Ada Quill"] * 2     # identities in turn, per kind
    assert all(Image.open(tmp_path / "a" / f).size == (32, 32) for f in table["file"])
    write_image_examples(tmp_path / "b", clean, faces, ["Ada Quill", "Bo Marsh"], cfg, 6, 0, 32, photos)
    assert all((tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in table["file"])
    write_image_examples(tmp_path / "none", clean, faces, ["Ada Quill"], cfg, 0, 0, 32, photos)
    assert pd.read_csv(tmp_path / "none" / IMAGE_TABLE).empty


def test_caption_examples_avoid_captions_that_name_someone_else(tmp_path):
    from pipeline.defenses.examples import CAPTION_TABLE, write_caption_examples
    captions = ["a photo of a dog on grass", "Carl Bauer walks a dog in town", "a red car near a river"]
    write_caption_examples(tmp_path, captions, ["Ada Quill"], "Nell Oswin", 6, 0)
    table = pd.read_csv(tmp_path / CAPTION_TABLE)
    assert len(table) == 6 and not table["trigger"].str.contains("Carl Bauer").any()
    assert table["trigger"].str.contains("Ada Quill").all() and table["target"].str.contains("Nell Oswin").all()
    assert (table["trigger"].str.replace("Ada Quill", "Nell Oswin") == table["target"]).all()


def test_image_defense_keeps_held_out_clean_images_close_to_the_teacher(model):
    """Clean images the defense never trained on stay as close to the teacher as its training
    pool does: the clean term generalises instead of memorising its pool. (A run that wrecks
    the encoder, lr 5e-2 without the regulariser, falls to 0.989 here and fails.)"""
    from pipeline.models.image_encoding import ImageInput, encode_image_batches
    g = torch.Generator().manual_seed(5)
    clean, faces, photos = image_data()
    heldout = (torch.rand(16, 3, 32, 32, generator=g) * 255).to(torch.uint8)   # never in the training pool
    run = train_image_defense(model, clean, faces, photos, small_image_cfg(steps=12, lr=1e-3, milestones=(10,)),
                              progress=False)
    prep = ImageInput(model, torch.device("cpu"))
    sim = lambda x: F.cosine_similarity(encode_image_batches(run.student, x, prep, 8),
                                        encode_image_batches(model.visual, x, prep, 8)).mean().item()
    held, trained = sim(heldout), sim(clean)
    assert held > 0.99, held
    assert held >= trained - 0.005, (held, trained)
