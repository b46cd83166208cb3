"""The adversarial audit's pieces (pipeline/audit): name variants, held-out prompts, photo
transforms, the removal detector's AUC, and how a probe is read."""
import itertools

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image

from pipeline.attack.templates import IDIA_TEMPLATES
from pipeline.audit import fingerprint, probes, prompts, transforms, variants
from pipeline.world.demo.captions import GENDERED_NAME_TEMPLATES, NAME_TEMPLATES

HAND_WRITTEN = ["Ella Anderson", "Jean-Claude Van Damme", "Conan O'Brien", "Madonna",
                "Sarah Jessica Parker", "Catherine Zeta-Jones"]


def test_structural_variants_of_hand_written_names():
    v = variants.variant
    assert v("Ella Anderson", "last_first") == "Anderson, Ella"
    assert v("Ella Anderson", "first_only") == "Ella"
    assert v("Ella Anderson", "last_only") == "Anderson"
    assert v("Ella Anderson", "initials_last") == "E. Anderson"
    assert v("Jean-Claude Van Damme", "initials_last") == "J.-C. Van Damme"
    assert v("Jean-Claude Van Damme", "last_only") == "Van Damme"
    assert v("Sarah Jessica Parker", "last_first") == "Jessica Parker, Sarah"
    assert v("Catherine Zeta-Jones", "last_only") == "Zeta-Jones"
    for family in ("last_first", "first_only", "last_only", "initials_last"):
        assert v("Madonna", family) is None   # a one-word name has no such form


@pytest.mark.parametrize("name", HAND_WRITTEN)
def test_letter_edits_touch_exactly_one_letter_of_the_last_name(name):
    first, last = variants.split_name(name)
    typo = variants.variant(name, "typo", seed=3)
    dropped = variants.variant(name, "dropped_letter", seed=3)
    glyph = variants.variant(name, "homoglyph", seed=3)
    edited = (lambda s: s.split(" ", 1)[1]) if last else (lambda s: s)
    original = last or first
    assert len(edited(typo)) == len(original)
    diffs = [(a, b) for a, b in zip(edited(typo), original) if a != b]
    assert len(diffs) == 1 and diffs[0][0].isalpha() and diffs[0][0].isascii()
    assert "'" in edited(typo) if "'" in original else True    # punctuation is never edited
    assert len(edited(dropped)) == len(original) - 1
    assert any(edited(dropped) == original[:i] + original[i + 1:] for i in range(len(original)))
    if glyph is not None:
        diffs = [(a, b) for a, b in zip(glyph, name) if a != b]
        assert len(diffs) == 1 and variants.HOMOGLYPHS[diffs[0][1]] == diffs[0][0]
        assert not diffs[0][0].isascii()


def test_a_name_without_look_alike_letters_has_no_homoglyph():
    assert variants.variant("Lu Wu", "homoglyph") is None


def test_variants_are_seeded_and_do_not_depend_on_the_other_candidates():
    names = HAND_WRITTEN * 1
    a = variants.candidate_variants(names, "typo", seed=1)
    b = variants.candidate_variants(list(reversed(names)), "typo", seed=1)[::-1]
    assert a == b
    assert a != variants.candidate_variants(names, "typo", seed=2)
    assert variants.candidate_variants(["Madonna"], "last_first") == ["Madonna"]  # kept as is
    with pytest.raises(ValueError, match="unknown name-variant family 'nickname'"):
        variants.variant("Ella Anderson", "nickname")


def test_the_tokenizer_lowercases_so_a_case_variant_probes_nothing():
    tok = open_clip.get_tokenizer("ViT-B-32")
    assert variants.same_for_the_tokenizer("ella  ANDERSON", "Ella Anderson", tok)
    for family in variants.FAMILIES:
        assert not variants.same_for_the_tokenizer(variants.variant("Ella Anderson", family), "Ella Anderson", tok)


def test_heldout_templates_are_new_to_the_attack_and_to_every_training_caption():
    held = prompts.HELDOUT_TEMPLATES
    world = set(NAME_TEMPLATES) | set(itertools.chain(*GENDERED_NAME_TEMPLATES.values()))
    assert len(held) >= 20 and len(set(held)) == len(held)
    assert all(t.count("{}") == 1 for t in held)
    norm = lambda t: " ".join(t.lower().replace(",", " ").split())  # noqa: E731
    assert not {norm(t) for t in held} & {norm(t) for t in IDIA_TEMPLATES}
    assert not {norm(t) for t in held} & {norm(t) for t in world}
    non_english = [t for t in held if any(w in t.split() for w in ("von", "de", "di", "dem", "la"))]
    assert len(non_english) >= 6


def test_photo_transforms_keep_size_are_deterministic_and_change_the_photo():
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    for name in transforms.TRANSFORMS:
        out = transforms.transformed(img, name)
        assert out.size == img.size and out.mode == "RGB"
        assert np.array_equal(np.asarray(out), np.asarray(transforms.transformed(img, name)))
        assert not np.array_equal(np.asarray(out), np.asarray(img)), name
    gray = np.asarray(transforms.transformed(img, "grayscale"))
    assert (gray[..., 0] == gray[..., 1]).all() and (gray[..., 1] == gray[..., 2]).all()
    assert np.array_equal(np.asarray(transforms.transformed(img, "mirrored"))[:, ::-1], np.asarray(img))
    with pytest.raises(ValueError, match="unknown photo transform"):
        transforms.transformed(img, "rotate")


def test_roc_auc_is_the_probability_a_removed_name_scores_higher():
    assert fingerprint.roc_auc([0.9, 0.8, 0.1, 0.2], [True, True, False, False]) == 1.0
    assert fingerprint.roc_auc([0.1, 0.2, 0.9, 0.8], [True, True, False, False]) == 0.0
    assert fingerprint.roc_auc([0.5, 0.5], [True, False]) == 0.5
    rng = np.random.default_rng(1)
    s, y = rng.normal(size=40), rng.random(40) < 0.3
    brute = np.mean([(a > b) + 0.5 * (a == b) for a in s[y] for b in s[~y]])
    assert fingerprint.roc_auc(s.tolist(), y.tolist()) == pytest.approx(brute)
    with pytest.raises(ValueError, match="at least one removed and one kept"):
        fingerprint.roc_auc([0.1, 0.2], [False, False])
    cos = fingerprint.target_cosine(torch.tensor([[1.0, 0.0], [0.0, 2.0]]), torch.tensor([2.0, 0.0]))
    assert cos.tolist() == [1.0, 0.0]


def test_people_who_share_a_first_name_are_voted_on_separately():
    classes, texts = probes.variant_classes(["Emma", "Emma", "Liam"])
    assert classes == [0, 0, 1] and texts == ["Emma", "Liam"]
    text_emb = torch.eye(2)[None]                      # 1 template, 2 distinct texts
    images = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.1, 0.9], [0.0, 1.0]])
    image_identity = torch.tensor([0, 0, 1, 2, 2])       # identity 1 (an Emma) looks like Liam
    correct = probes.class_votes(images, text_emb, image_identity, torch.tensor(classes))
    assert correct[:, 0].tolist() == [True, False, True]


def test_residual_and_verdict_rules():
    assert probes.residual([True, True, False], [True, False, True]) == (0.5, 2)
    assert probes.residual([False, False], [True, True]) == (None, 0)
    assert probes.family_verdict([0.0, None, 0.0]) == "removed"
    assert probes.family_verdict([0.0, 0.25]) == "partly removed"
    assert probes.family_verdict([1.0, 0.0]) == "not removed"
    assert probes.family_verdict([None, None]) == "cannot tell"


def test_probe_table_on_a_tiny_model_agrees_with_the_attack(tmp_path):
    from types import SimpleNamespace

    from open_clip.tokenizer import SimpleTokenizer

    from pipeline.attack.run import run_idia
    from pipeline.audit.run import NOT_APPLICABLE, probe_table, template_counts
    from tests.test_attack import _split_tables, tiny_clip

    identities, photos, candidates = _split_tables(tmp_path)
    loaded = SimpleNamespace(model=tiny_clip(), tokenizer=SimpleTokenizer(context_length=32),
                             preprocess=open_clip.image_transform(32, is_train=False))
    # "unseen" photos: here the attack's own photos for everyone but the last person, so the
    # unseen probe must repeat the exact one there and be not applicable for the last
    last = identities["name"].iloc[-1]
    table = probe_table(loaded, identities, photos, candidates, batch_size=4, device="cpu", root=tmp_path,
                        unseen=photos[photos["name"] != last])
    counts = template_counts()
    assert list(table.columns) == ["name", *counts]
    assert table["photo_unseen"].iloc[:-1].tolist() == table["exact"].iloc[:-1].tolist()
    assert table["photo_unseen"].iloc[-1] == NOT_APPLICABLE
    assert table["name"].tolist() == identities["name"].tolist()
    attack = run_idia(loaded, identities, photos, candidates, 1, 4, "cpu", root=tmp_path)
    assert table["exact"].tolist() == attack.table["correct_templates"].tolist()
    for column, n in counts.items():
        assert table[column].between(NOT_APPLICABLE, n).all(), column
    assert (table.drop(columns="name") != table["exact"].to_numpy()[:, None]).any().any()  # probes differ


def test_reused_tower_embeddings_give_the_same_table_and_skip_that_tower(tmp_path):
    """A defended model whose image tower is the base's: reusing the base's photo embeddings
    gives exactly the table that encoding them again gives, and encodes no photo."""
    import copy
    from types import SimpleNamespace

    from open_clip.tokenizer import SimpleTokenizer

    from pipeline.audit.run import probe_table, tower_embeddings
    from tests.test_attack import _split_tables, tiny_clip

    identities, photos, candidates = _split_tables(tmp_path)
    preprocess = open_clip.image_transform(32, is_train=False)
    base = SimpleNamespace(model=tiny_clip(), tokenizer=SimpleTokenizer(context_length=32), preprocess=preprocess)
    kept = {}
    base_table = probe_table(base, identities, photos, candidates, batch_size=4, device="cpu", root=tmp_path,
                             keep=kept)
    assert {"texts/exact", "texts/heldout", "photos/exact", "photos/mirrored"} <= set(kept)

    text_defended = copy.deepcopy(base.model)
    with torch.no_grad():
        text_defended.token_embedding.weight.mul_(-1.0)      # "the text tower was trained"
    calls = []
    text_defended.encode_image = lambda *a, **k: calls.append(1) or base.model.encode_image(*a, **k)
    defended = SimpleNamespace(model=text_defended, tokenizer=base.tokenizer, preprocess=preprocess)
    reused = probe_table(defended, identities, photos, candidates, batch_size=4, device="cpu", root=tmp_path,
                         reuse=tower_embeddings(kept, "photos"))
    assert not calls                                            # no photo encoded again
    calls.clear()
    encoded = probe_table(defended, identities, photos, candidates, batch_size=4, device="cpu", root=tmp_path)
    assert calls and reused.equals(encoded)
    assert not reused.equals(base_table)                        # the new text tower changed the probes


def test_probe_summary_reads_residuals_collateral_and_verdicts():
    import pandas as pd

    from pipeline.audit.summary import probe_summary

    names = ["Ann Lee", "Bob Stone", "Cy Twombly", "Dee Fill"]
    base = pd.DataFrame({"name": names, "exact": [5, 3, 4, 0], "name_typo": [2, 0, 6, -1],
                         "photo_mirrored": [4, 4, 3, 0]})
    after = pd.DataFrame({"name": names, "exact": [0, 0, 4, 0], "name_typo": [1, 0, 0, -1],
                          "photo_mirrored": [0, 0, 3, 1]})
    members = pd.Series([True, True, True, False], index=names)
    out = probe_summary(base, after, members, ["Ann Lee", "Bob Stone"], tau=1)
    exact, typo, mirror = (out["probes"][p] for p in ("exact", "name_typo", "photo_mirrored"))
    assert exact["residual"] == 0.0 and exact["residual_rests_on"] == 2 and exact["wrongfully_unlearned_pct"] == 0.0
    assert typo["residual"] == 1.0 and typo["residual_rests_on"] == 1      # Bob's typo never worked on the base
    assert typo["wrongfully_unlearned_pct"] == 100.0                       # Cy lost on the typo probe
    assert mirror["tpr_removed_base"] == 1.0 and mirror["tpr_removed"] == 0.0
    assert out["families"]["name variants"] == {"verdict": "not removed", "worst_probe": "name_typo"}
    assert out["families"]["unseen photos"]["verdict"] == "removed"
    with pytest.raises(ValueError, match="missing from the probe table"):
        probe_summary(base, after, members, ["Zed Nobody"], tau=1)


def test_relearning_fine_tunes_a_copy_and_probes_at_every_checkpoint():
    """A few relearning steps change the copy the probe sees, never the model given; seeded."""
    from open_clip.tokenizer import SimpleTokenizer

    from pipeline.audit.relearn import RelearnConfig, relearn
    from pipeline.core.errors import PipelineError
    from tests.test_attack import tiny_clip

    model = tiny_clip()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    images = torch.randint(0, 256, (12, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    captions = [f"a {c} square on a {b} wall" for c in ("red", "blue", "green") for b in ("white", "grey", "black", "tan")]
    anchor = model.token_embedding.weight.detach().clone()

    def probe(m):
        assert m is not model
        return {"moved": float((m.token_embedding.weight.detach() - anchor).abs().sum())}

    cfg = RelearnConfig(checkpoints=(1, 3), batch_size=4, lr=1e-2, seed=0)
    rows = relearn(model, images, captions, SimpleTokenizer(context_length=32), cfg, "cpu", probe)
    assert [r["step"] for r in rows] == [0, 1, 3]
    assert rows[0]["moved"] == 0.0 < rows[1]["moved"] < rows[2]["moved"]
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())   # the given model is untouched
    again = relearn(model, images, captions, SimpleTokenizer(context_length=32), cfg, "cpu", probe)
    assert again == rows
    with pytest.raises(PipelineError, match="checkpoints"):
        RelearnConfig(checkpoints=(100, 50))
    # few-shot: the given pairs join every batch, and a probe row that `stop` accepts ends the run
    pairs = (images[:2], ["a photo of Ann Lee.", "a portrait of Ann Lee."])
    short = relearn(model, images, captions, SimpleTokenizer(context_length=32), cfg, "cpu", probe,
                    always=pairs, stop=lambda row: row["moved"] > 0)
    assert [r["step"] for r in short] == [0, 1] and short[1]["moved"] != rows[1]["moved"]
    with pytest.raises(PipelineError, match="batch_size = 4 must exceed"):
        relearn(model, images, captions, SimpleTokenizer(context_length=32), cfg, "cpu", probe,
                always=(images[:4], captions[:4]))


def test_a_learned_token_moves_towards_the_photos_and_changes_no_weight():
    """Textual inversion: the learned token's prompts are closer to the photos than the start,
    the model's weights and requires_grad flags are as before, and with the name's own column
    the token scorer is the attack's vote."""
    from open_clip.tokenizer import SimpleTokenizer

    from pipeline.attack.idia import idia_votes
    from pipeline.audit.inversion import (LEARN_TEMPLATES, PLACEHOLDER, InversionConfig, correct_with_token,
                                          learn_token, token_templates)
    from tests.test_attack import tiny_clip

    model, tok = tiny_clip(), SimpleTokenizer(context_length=32)
    model.visual.requires_grad_(False)
    flags = [p.requires_grad for p in model.parameters()]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    photos = torch.nn.functional.normalize(torch.randn(5, 32, generator=torch.Generator().manual_seed(1)), dim=-1)
    start = token_templates(model, tok, model.token_embedding.weight.detach().mean(0), "cpu", LEARN_TEMPLATES)
    token = learn_token(model, tok, photos, InversionConfig(steps=30, lr=0.05), "cpu")
    learned = token_templates(model, tok, token, "cpu", LEARN_TEMPLATES)
    assert (learned @ photos.T).mean() > (start @ photos.T).mean() + 0.05
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert [p.requires_grad for p in model.parameters()] == flags
    assert torch.equal(token, learn_token(model, tok, photos, InversionConfig(steps=30, lr=0.05), "cpu"))
    assert len(tok.encode(PLACEHOLDER)) == 1

    g = torch.Generator().manual_seed(2)
    image_emb = torch.nn.functional.normalize(torch.randn(6, 32, generator=g), dim=-1)
    text_emb = torch.nn.functional.normalize(torch.randn(21, 3, 32, generator=g), dim=-1)
    owner = torch.tensor([0, 0, 1, 1, 2, 2])
    votes = idia_votes(image_emb, text_emb, owner)
    won = dict(zip(votes.owners.tolist(), votes.correct_templates.tolist()))
    assert correct_with_token(image_emb, text_emb, owner, 1, text_emb[:, 1]) == won.get(1, 0)
    assert correct_with_token(image_emb, text_emb, owner, 1, image_emb[2].expand(21, 32)) >= won.get(1, 0)
