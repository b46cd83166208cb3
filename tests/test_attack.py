"""Identity Inference Attack: templates, vote logic, truncated text encoding, image encoding, stage."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import open_clip
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from open_clip.tokenizer import SimpleTokenizer
from PIL import Image
from safetensors.torch import load_file

from pipeline.attack.idia import (Votes, identity_table, idia_metrics, idia_votes, predict_names,
                                  template_votes)
from pipeline.models.image_encoding import encode_images
from pipeline.attack.run import encode_idia_texts, load_embeddings, run_idia, save_embeddings
from pipeline.attack.templates import IDIA_TEMPLATES, idia_prompts
from pipeline.models.text_encoding import (causal_text_tower, encode_texts, encode_texts_full,
                                           real_lengths)
from pipeline.core.errors import ParamError, PipelineError

CONTEXT = 32


def tiny_text_cfg(**extra):
    return dict(context_length=CONTEXT, vocab_size=49408, width=32, heads=2, layers=2, **extra)


def tiny_clip(seed: int = 0, cls=open_clip.CLIP, **text_extra):
    torch.manual_seed(seed)
    model = cls(embed_dim=32,
                vision_cfg=dict(image_size=32, layers=1, width=32, patch_size=8, head_width=16),
                text_cfg=tiny_text_cfg(**text_extra))
    return model.eval()


@pytest.fixture(scope="module")
def model():
    return tiny_clip()


@pytest.fixture(scope="module")
def tokenizer():
    return SimpleTokenizer(context_length=CONTEXT)


@pytest.fixture(scope="module")
def preprocess():
    return open_clip.image_transform(32, is_train=False)


PROMPTS = [
    "a", "a photo of Ann Lee", "x " * 25, "the name of the person is Maximilian Oberhausen-Wright",
    "hi there", "", "actor Bob", "a cropped image of a very very very long name indeed", "Zoe",
    "a man named Al", "{} in a dress",
]


# ---------------------------------------------------------------- templates

def test_templates_are_the_papers_21_in_order():
    assert len(IDIA_TEMPLATES) == 21
    assert IDIA_TEMPLATES[0] == "{}"
    assert IDIA_TEMPLATES[4] == "a photo of a person named {}"
    assert IDIA_TEMPLATES[-1] == "{} in a dress"
    assert len(set(IDIA_TEMPLATES)) == 21
    assert all(t.count("{}") == 1 for t in IDIA_TEMPLATES)


def test_prompts_are_template_major_and_brace_safe():
    prompts = idia_prompts(["Ann", "B{0}b"])
    assert len(prompts) == 42
    assert prompts[0:2] == ["Ann", "B{0}b"]
    assert prompts[2:4] == ["an image of Ann", "an image of B{0}b"]
    assert prompts[-1] == "B{0}b in a dress"


# ---------------------------------------------------------------- vote logic

def test_majority_vote_unique_and_ties_wrong():
    # Identity with candidate index 0 has 4 images; identity 3 has one image.
    preds = torch.tensor([
        # t0 unique majority right, t1 2-2 tie, t2 majority wrong, t3 all different (tie), t4 3 right
        [0, 0, 1, 0, 0],
        [0, 0, 1, 1, 0],
        [1, 1, 1, 2, 0],
        [2, 1, 0, 3, 3],
        [3, 0, 2, 0, 3],
    ])
    owner = torch.tensor([0, 0, 0, 0, 3])
    votes = template_votes(preds, owner, n_candidates=4)
    assert votes.owners.tolist() == [0, 3]
    assert votes.correct[0].tolist() == [True, False, False, False, True]
    assert votes.correct[1].tolist() == [True, False, False, False, True]  # one image: its own vote
    assert votes.correct_templates.tolist() == [2, 2]


def test_predict_names_is_argmax_per_template():
    # One-hot geometry: image k points at candidate k; template 1 permutes the candidates.
    eye = torch.eye(3)
    text = torch.stack([eye, eye[[2, 0, 1]]])  # template 1: candidate n has direction perm[n]
    images = eye[[0, 1, 2, 2]]
    preds = predict_names(images, text)
    assert preds[:, 0].tolist() == [0, 1, 2, 2]
    assert preds[:, 1].tolist() == [1, 2, 0, 0]
    assert torch.equal(predict_names(images, text, chunk_size=1), preds)


def _reference_correct(image_emb, text_emb, owner):
    """Plain Python loops over the definition in docs/method.md §1."""
    n_img, n_tpl, n_names = image_emb.shape[0], text_emb.shape[0], text_emb.shape[1]
    result = {}
    for who in sorted(set(owner.tolist())):
        imgs = [i for i in range(n_img) if owner[i].item() == who]
        correct = []
        for t in range(n_tpl):
            tally = {}
            for i in imgs:
                sims = [float(image_emb[i] @ text_emb[t, n]) for n in range(n_names)]
                pred = max(range(n_names), key=lambda n: (sims[n], -n))
                tally[pred] = tally.get(pred, 0) + 1
            best = max(tally.values())
            winners = [n for n, c in tally.items() if c == best]
            correct.append(len(winners) == 1 and winners[0] == who)
        result[who] = correct
    return result


@pytest.mark.parametrize("seed", range(6))
def test_idia_votes_matches_bruteforce_reference(seed):
    g = torch.Generator().manual_seed(seed)
    n_names, n_tpl, d = 5, 4, 3  # few names and dims: ties between votes are common
    text = F.normalize(torch.randn(n_tpl, n_names, d, generator=g, dtype=torch.float64), dim=-1)
    owner = torch.randint(0, n_names, (30,), generator=g)
    images = F.normalize(torch.randn(30, d, generator=g, dtype=torch.float64), dim=-1)
    votes = idia_votes(images, text, owner)
    ref = _reference_correct(images.float(), text.float(), owner)
    assert votes.owners.tolist() == sorted(ref)
    for row, who in enumerate(votes.owners.tolist()):
        assert votes.correct[row].tolist() == ref[who]


def _table_inputs():
    identities = pd.DataFrame({"name": ["A", "B", "C", "D"], "member": [True, True, False, False],
                               "count": [10, 3, 0, 0]})
    index = {"A": 0, "B": 1, "C": 2, "D": 3, "filler": 4}
    correct = torch.zeros(4, 21, dtype=torch.bool)
    correct[0, :3] = True   # A: 3 templates
    correct[1, :1] = True   # B: 1
    correct[2, :2] = True   # C: 2
    return identities, index, Votes(owners=torch.tensor([0, 1, 2, 3]), correct=correct)


def test_tau_threshold_and_rates():
    identities, index, votes = _table_inputs()
    t1 = identity_table(identities, index, votes, tau=1)
    assert list(t1.columns) == ["name", "member", "count", "correct_templates", "identified"]
    assert t1["correct_templates"].tolist() == [3, 1, 2, 0]
    assert t1["identified"].tolist() == [True, True, True, False]
    m1 = idia_metrics(t1)
    assert (m1["tpr"], m1["fpr"]) == (1.0, 0.5)
    t2 = identity_table(identities, index, votes, tau=2)
    assert t2["identified"].tolist() == [True, False, True, False]
    m3 = idia_metrics(identity_table(identities, index, votes, tau=3))
    assert m3 == {"members": 2, "nonmembers": 2, "identified_members": 1, "identified_nonmembers": 0,
                  "tpr": 0.5, "fpr": 0.0}


def test_fpr_is_none_without_nonmembers():
    identities, index, votes = _table_inputs()
    only_members = identities[identities["member"]]
    m = idia_metrics(identity_table(only_members, index, votes, tau=1))
    assert m["fpr"] is None and m["nonmembers"] == 0 and m["tpr"] == 1.0


# ---------------------------------------------------------------- text encoding

@pytest.mark.parametrize("batch_size", [1, 3, 4, 100])
def test_truncated_encoding_equals_full_context(model, tokenizer, batch_size):
    lengths = real_lengths(tokenizer(PROMPTS), "argmax")
    assert len(set(lengths.tolist())) >= 6  # the prompts really span several length groups
    full = encode_texts_full(model, tokenizer, PROMPTS, batch_size=5, device="cpu", progress=None)
    fast = encode_texts(model, tokenizer, PROMPTS, batch_size=batch_size, device="cpu", progress=None)
    assert fast.dtype == torch.float32 and fast.shape == full.shape == (len(PROMPTS), 32)
    assert (fast - full).abs().max().item() < 1e-5
    assert torch.allclose(fast.norm(dim=1), torch.ones(len(PROMPTS)), atol=1e-5)


def test_full_context_matches_open_clip(model, tokenizer):
    with torch.no_grad():
        ref = F.normalize(model.encode_text(tokenizer(PROMPTS)), dim=-1)
    full = encode_texts_full(model, tokenizer, PROMPTS, batch_size=4, device="cpu", progress=None)
    assert (full - ref).abs().max().item() < 1e-6


def test_transformer_sees_only_the_longest_real_length_per_batch(model, tokenizer):
    widths = []
    hook = model.transformer.register_forward_hook(lambda mod, args, out: widths.append(args[0].shape[1]))
    try:
        encode_texts(model, tokenizer, ["a photo of Ann Lee", "a", "a photo of Bob Lee", "b"], 2, "cpu",
                     progress=None)
    finally:
        hook.remove()
    # Grouped by length: ("a", "b") need SOT + 1 token + EOT, the two photos 7 positions.
    assert widths == [3, 7]


def test_truncation_reads_only_the_real_tokens(model, tokenizer):
    # Changing the padding after the EOT must not change the embedding; changing a real token must.
    tokens = tokenizer(["a photo of Ann Lee"])
    eot = int(tokens.argmax())
    noisy = tokens.clone()
    noisy[0, eot + 1:] = 123
    fixed_tokenizer = lambda texts: noisy if texts == ["n"] else tokens  # noqa: E731
    a = encode_texts(model, fixed_tokenizer, ["t"], 1, "cpu", progress=None)
    b = encode_texts(model, fixed_tokenizer, ["n"], 1, "cpu", progress=None)
    assert torch.equal(a, b)
    changed = tokens.clone()
    changed[0, 1] = 999
    c = encode_texts(model, lambda texts: changed, ["c"], 1, "cpu", progress=None)
    assert (a - c).abs().max() > 1e-3


def test_linear_projection_and_custom_text_clip(tokenizer):
    for m in (tiny_clip(1, proj_bias=True), tiny_clip(2, cls=open_clip.CustomTextCLIP)):
        assert causal_text_tower(m) is not None
        full = encode_texts_full(m, tokenizer, PROMPTS, 4, "cpu", progress=None)
        fast = encode_texts(m, tokenizer, PROMPTS, 2, "cpu", progress=None)
        assert (fast - full).abs().max().item() < 1e-5


def test_non_causal_towers_fall_back_to_full(tokenizer):
    for m in (tiny_clip(3, pool_type="last"), tiny_clip(4, cls=open_clip.CustomTextCLIP, no_causal_mask=True)):
        assert causal_text_tower(m) is None
        full = encode_texts_full(m, tokenizer, PROMPTS[:4], 4, "cpu", progress=None)
        fast = encode_texts(m, tokenizer, PROMPTS[:4], 4, "cpu", progress=None)
        assert torch.equal(fast, full)  # same batches: the very same computation


def test_encode_idia_texts_layout(model, tokenizer):
    names = ["Ann Lee", "Bob Stone", "Cy Twombly"]
    emb = encode_idia_texts(model, tokenizer, names, 16, "cpu")
    assert emb.shape == (21, 3, 32)
    direct = encode_texts_full(model, tokenizer, ["a photo of Bob Stone"], 1, "cpu", progress=None)
    assert (emb[2, 1] - direct[0]).abs().max().item() < 1e-5


def test_encoding_restores_training_mode(tokenizer):
    m = tiny_clip(5).train()
    encode_texts(m, tokenizer, ["a"], 1, "cpu", progress=None)
    assert m.training


# ---------------------------------------------------------------- image encoding

def _write_images(folder: Path, n: int, seed: int = 0) -> list[Path]:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"{i:03d}.png"
        Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def test_encode_images_order_and_determinism(model, preprocess, tmp_path):
    paths = _write_images(tmp_path, 7)
    a = encode_images(model, preprocess, paths, 3, "cpu", progress=None)
    b = encode_images(model, preprocess, paths, 7, "cpu", progress=None)
    rev = encode_images(model, preprocess, paths[::-1], 2, "cpu", progress=None)
    assert a.shape == (7, 32) and a.dtype == torch.float32
    assert torch.allclose(a, b, atol=1e-6)
    assert torch.allclose(rev, a.flip(0), atol=1e-6)
    assert torch.equal(a, encode_images(model, preprocess, paths, 3, "cpu", progress=None))
    assert torch.allclose(a.norm(dim=1), torch.ones(7), atol=1e-5)
    assert (a[0] - a[1]).abs().max() > 1e-4  # different images, different embeddings


def test_encode_images_missing_file_is_a_user_error(model, preprocess, tmp_path):
    with pytest.raises(PipelineError, match="not found"):
        encode_images(model, preprocess, [tmp_path / "nope.jpg"], 2, "cpu", progress=None)


# ---------------------------------------------------------------- run_idia and the stage

def _split_tables(root: Path):
    names = ["Ann Lee", "Bob Stone", "Cy Twombly"]
    photos = []
    for k, name in enumerate(names):
        for p in _write_images(root / "photos" / str(k), 3, seed=k):
            photos.append({"name": name, "path": str(p.relative_to(root))})
    identities = pd.DataFrame({"name": names, "folder": ["a", "b", "c"], "gender": ["f", "m", "m"],
                               "count": [5, 9, 0], "member": [True, True, False],
                               "n_idia": [3, 3, 3], "n_trigger": [3, 3, 3]})
    candidates = pd.DataFrame({"name": ["Dee Fill", "Cy Twombly", "Ann Lee", "Eve Fill", "Bob Stone"],
                               "real": [False, True, True, False, True]})
    return identities, pd.DataFrame(photos), candidates


def test_run_idia_reuses_given_embeddings(model, tokenizer, preprocess, tmp_path):
    identities, photos, candidates = _split_tables(tmp_path)
    loaded = SimpleNamespace(model=model, tokenizer=tokenizer, preprocess=preprocess)
    res = run_idia(loaded, identities, photos, candidates, 1, 4, "cpu", root=tmp_path)
    assert res.text_emb.shape == (21, 5, 32) and res.image_emb.shape == (9, 32)
    assert res.metrics["candidates"] == 5 and res.metrics["templates"] == 21
    assert res.metrics["members"] == 2 and res.metrics["nonmembers"] == 1
    assert res.table["name"].tolist() == identities["name"].tolist()
    again = run_idia(None, identities, photos, candidates, 1, 4, "cpu",
                     text_emb=res.text_emb, image_emb=res.image_emb)
    pd.testing.assert_frame_equal(again.table, res.table)
    # Swapping the image tower's embeddings changes the outcome in the expected direction:
    # images placed exactly on their own name's '{}' prompt are identified on that template.
    owner_idx = [candidates["name"].tolist().index(n) for n in photos["name"]]
    planted = run_idia(None, identities, photos, candidates, 1, 4, "cpu",
                       text_emb=res.text_emb, image_emb=res.text_emb[0, owner_idx])
    assert planted.table["identified"].all()


def test_run_idia_rejects_identity_missing_from_candidates(tmp_path):
    identities, photos, candidates = _split_tables(tmp_path)
    with pytest.raises(PipelineError, match="Bob Stone"):
        run_idia(None, identities, photos, candidates[candidates["name"] != "Bob Stone"], 1, 4, "cpu",
                 text_emb=torch.zeros(21, 4, 8), image_emb=torch.zeros(9, 8))


def test_embeddings_roundtrip(tmp_path):
    emb = torch.randn(3, 4, 5)
    save_embeddings(tmp_path / "e.safetensors", emb)
    assert torch.equal(load_embeddings(tmp_path / "e.safetensors"), emb)
    with pytest.raises(PipelineError, match="not found"):
        load_embeddings(tmp_path / "missing.safetensors")


def _stage_world(tmp_path, monkeypatch, model, tokenizer, preprocess, tau=1):
    import pipeline.stages.idia_before as stage

    identities, photos, candidates = _split_tables(tmp_path)
    (tmp_path / "data" / "splits").mkdir(parents=True)
    identities.to_csv(tmp_path / "data/splits/identities.csv", index=False)
    photos.to_csv(tmp_path / "data/splits/idia_photos.csv", index=False)
    candidates.to_csv(tmp_path / "data/splits/candidates.csv", index=False)
    (tmp_path / "params.yaml").write_text(f"idia_before:\n  tau: {tau}\n  batch_size: 4\n  device: cpu\n")
    loaded = SimpleNamespace(model=model, tokenizer=tokenizer, preprocess=preprocess)
    monkeypatch.setattr(stage, "load_model", lambda model_dir, device: loaded)
    monkeypatch.chdir(tmp_path)
    return stage


def test_stage_writes_outputs_deterministically(model, tokenizer, preprocess, tmp_path, monkeypatch):
    stage = _stage_world(tmp_path, monkeypatch, model, tokenizer, preprocess)
    stage.main()
    out = tmp_path / "data/idia_before"
    first = {p.name: p.read_bytes() for p in sorted(out.iterdir())}
    assert sorted(first) == ["identities.csv", "image_embeddings.safetensors", "text_embeddings.safetensors"]
    table = pd.read_csv(out / "identities.csv")
    assert list(table.columns) == ["name", "member", "count", "correct_templates", "identified"]
    assert load_file(str(out / "text_embeddings.safetensors"))["embeddings"].shape == (21, 5, 32)
    assert load_file(str(out / "image_embeddings.safetensors"))["embeddings"].shape == (9, 32)
    metrics = json.loads((tmp_path / "metrics/idia_before.json").read_text())
    assert {"tpr", "fpr", "members", "nonmembers", "identified_members", "identified_nonmembers",
            "tau", "candidates", "templates"} <= set(metrics)
    metrics_bytes = (tmp_path / "metrics/idia_before.json").read_bytes()
    stage.main()
    assert {p.name: p.read_bytes() for p in sorted(out.iterdir())} == first
    assert (tmp_path / "metrics/idia_before.json").read_bytes() == metrics_bytes


def test_stage_rejects_bad_tau(model, tokenizer, preprocess, tmp_path, monkeypatch):
    stage = _stage_world(tmp_path, monkeypatch, model, tokenizer, preprocess, tau=22)
    with pytest.raises(ParamError, match="idia_before.tau"):
        stage.main()
    assert not (tmp_path / "data/idia_before").exists()


def test_stage_names_a_missing_split(model, tokenizer, preprocess, tmp_path, monkeypatch):
    stage = _stage_world(tmp_path, monkeypatch, model, tokenizer, preprocess)
    (tmp_path / "data/splits/candidates.csv").unlink()
    with pytest.raises(PipelineError, match="candidates.csv"):
        stage.main()
