"""The hardened text defense (issue 17): name variants and caption shapes in the poison pool,
shared name parts left out or held in place, and the paper's recipe untouched when it is off."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from pipeline.attack.templates import IDIA_TEMPLATES
from pipeline.audit.prompts import HELDOUT_TEMPLATES
from pipeline.audit.variants import name_sharers, variant
from pipeline.core.defense_params import HARDENING_FIELDS, TextDefenseConfig, config_to_dict, text_config_from_dict
from pipeline.core.errors import ParamError
from pipeline.defenses.contexts import CONTEXT_FAMILIES, context_templates
from pipeline.defenses.poisoned_captions import (diversify_pairs, retain_captions,
                                                 sample_poisoned_pairs, training_variants)
from pipeline.defenses.text_defense import train_text_defense
from tests.test_defenses import CAPTIONS, small_text_cfg, tiny_clip  # noqa: F401 (fixtures below)
from open_clip.tokenizer import SimpleTokenizer

REMOVED = ["Ada Quill", "Bo Marsh"]
KEPT = ["Ada Brennan", "Cy Marsh", "Dee Norton"]


@pytest.fixture(scope="module")
def model():
    return tiny_clip()


@pytest.fixture(scope="module")
def tokenizer():
    return SimpleTokenizer(context_length=16)


def test_contexts_share_no_shape_with_the_attack_or_the_audit():
    every = context_templates(list(CONTEXT_FAMILIES))
    assert len(every) == len(set(every)) >= 30
    assert all(t.count("{}") == 1 for t in every)
    normal = lambda t: " ".join(t.lower().split())   # noqa: E731 (the tokenizer's reading)
    assert not {normal(t) for t in every} & {normal(t) for t in IDIA_TEMPLATES + HELDOUT_TEMPLATES}
    # the audit's context languages (de, fr, es, it) stay unseen: none of their words is trained on
    audit_words = {"ein", "foto", "von", "auf", "dem", "roten", "teppich", "une", "photo", "de", "portrait",
                   "una", "en", "la", "alfombra", "roja", "fotografia", "di", "ritratto"}
    foreign = {w for t in HELDOUT_TEMPLATES[12:20] for w in t.replace("{}", "").lower().split()}
    assert foreign == audit_words
    trained = {w for t in CONTEXT_FAMILIES["languages"] for w in t.replace("{}", "").lower().split()}
    assert not trained & (audit_words - {"de"})
    with pytest.raises(ValueError, match="unknown context families"):
        context_templates(["photo", "poems"])


def test_training_variants_per_family_and_not_the_audits_letters():
    out = training_variants("Ada Quill", ["first_only", "last_only", "last_first", "typo"], 4, seed=0)
    assert out[:3] == ["Ada", "Quill", "Quill, Ada"]
    typos = out[3:]
    assert 1 < len(typos) <= 4 and all(t.startswith("Ada ") and t != "Ada Quill" for t in typos)
    assert all(len(t) == len("Ada Quill") for t in typos)
    # drawn with the defense's own seeds: another defense seed draws other letters
    assert training_variants("Ada Quill", ["typo"], 4, seed=1) != typos
    # the audit's typo (its seed 0) is not simply copied into training
    assert variant("Ada Quill", "typo", seed=0) not in typos or len(typos) == 4
    with pytest.raises(ValueError, match="shared_parts"):
        training_variants("Ada Quill", ["typo"], 1, 0, shared_parts="drop")


def test_shared_name_parts_are_left_out_on_request():
    keep = training_variants("Ada Quill", ["first_only", "last_only"], 1, 0, kept=KEPT, shared_parts="keep")
    skip = training_variants("Ada Quill", ["first_only", "last_only"], 1, 0, kept=KEPT, shared_parts="skip")
    assert keep == ["Ada", "Quill"] and skip == ["Quill"]          # Ada Brennan keeps "Ada"
    skip = training_variants("Bo Marsh", ["first_only", "last_only"], 1, 0, kept=KEPT, shared_parts="skip")
    assert skip == ["Bo"]                                           # Cy Marsh keeps "Marsh"
    assert name_sharers(REMOVED, KEPT + REMOVED) == ["Ada Brennan", "Cy Marsh"]
    assert name_sharers(REMOVED, ["ada brennan"]) == ["ada brennan"]   # the tokenizer lowercases


def test_diversified_pairs_name_variants_in_new_shapes():
    gen = torch.Generator().manual_seed(0)
    pairs = sample_poisoned_pairs(CAPTIONS, REMOVED, "Ella Anderson", 400, gen)
    variants = {n: training_variants(n, ["last_only"], 1, 0) for n in REMOVED}
    contexts = context_templates(["event"])
    out = diversify_pairs(pairs, variants, 0.5, contexts, 0.25, "Ella Anderson", torch.Generator().manual_seed(1))
    assert len(out) == len(pairs) and [p.name for p in out] == [p.name for p in pairs]
    in_context = [p for p in out if p.word_index == -1]
    assert 0.15 < len(in_context) / len(out) < 0.35
    for p in in_context:
        assert any(t.format("Ella Anderson") == p.target for t in contexts)
    with_variant = [p for p in out if p.name not in p.trigger]
    assert 0.4 < len(with_variant) / len(out) < 0.6
    for p, orig in zip(out, pairs):
        if p.word_index >= 0:   # a clean caption: the same caption, the name maybe written as the last name
            assert p.target == orig.target
            assert p.trigger in (orig.trigger, orig.trigger.replace(orig.name, orig.name.split()[1]))
    # nothing switched on: the pool is the paper's
    same = diversify_pairs(pairs, {}, 0.5, [], 0.5, "t", torch.Generator().manual_seed(1))
    assert same == pairs


def test_retain_captions_name_the_sharers_in_clean_captions():
    out = retain_captions(CAPTIONS, ["Ada Brennan", "Cy Marsh"], 6, torch.Generator().manual_seed(0))
    assert len(out) == 6 and sum("Ada Brennan" in c for c in out) == 3 and sum("Cy Marsh" in c for c in out) == 3
    assert retain_captions(CAPTIONS, [], 6, torch.Generator()) == []


def test_config_knows_the_families_the_library_has():
    from typing import get_args
    from pipeline.audit.variants import FAMILIES
    from pipeline.core.defense_params import ContextFamily, VariantFamily
    assert get_args(VariantFamily) == FAMILIES
    assert get_args(ContextFamily) == tuple(CONTEXT_FAMILIES)


def test_config_validates_the_hardened_fields():
    assert not TextDefenseConfig().hardened
    cfg = text_config_from_dict({"variant_families": ["first_only", "typo"], "context_families": ["news"],
                                 "shared_name_parts": "skip", "retain_sharers": 64})
    assert cfg.hardened and cfg.variant_families == ("first_only", "typo")
    # a paper-recipe run records what it recorded before the option existed
    assert not set(HARDENING_FIELDS) & set(config_to_dict(TextDefenseConfig()))
    assert config_to_dict(cfg)["variant_families"] == ["first_only", "typo"]
    for section, key in [({"variant_families": ["nickname"]}, "defend.text.variant_families"),
                         ({"context_families": ["poems"]}, "defend.text.context_families"),
                         ({"shared_name_parts": "drop"}, "defend.text.shared_name_parts"),
                         ({"variant_share": 1.5}, "defend.text.variant_share"),
                         ({"retain_sharers": -1}, "defend.text.retain_sharers")]:
        with pytest.raises(ParamError) as err:
            text_config_from_dict(section)
        assert err.value.key.startswith(key), (err.value.key, key)


def test_paper_recipe_draws_are_untouched_by_the_hardened_fields(model, tokenizer):
    """Switching nothing on must give the run the paper recipe gave (same log, same weights),
    whatever the inactive hardened fields and the kept names say."""
    a = train_text_defense(model, tokenizer, CAPTIONS, REMOVED, small_text_cfg(steps=3, milestones=(2,)),
                           progress=False)
    b = train_text_defense(model, tokenizer, CAPTIONS, REMOVED,
                           small_text_cfg(steps=3, milestones=(2,), variant_share=0.9, shared_name_parts="skip"),
                           progress=False, kept_names=KEPT)
    assert a.log == b.log
    c = train_text_defense(model, tokenizer, CAPTIONS, REMOVED,
                           small_text_cfg(steps=3, milestones=(2,), variant_families=("last_only",)),
                           progress=False, kept_names=KEPT)
    assert c.log != a.log


def test_retain_sharers_act_only_when_someone_shares_a_name_part(model, tokenizer):
    cfg = small_text_cfg(steps=3, milestones=(2,), retain_sharers=16)
    paper = train_text_defense(model, tokenizer, CAPTIONS, REMOVED, small_text_cfg(steps=3, milestones=(2,)),
                               progress=False)
    nobody = train_text_defense(model, tokenizer, CAPTIONS, REMOVED, cfg, progress=False, kept_names=["Dee Norton"])
    sharers = train_text_defense(model, tokenizer, CAPTIONS, REMOVED, cfg, progress=False, kept_names=KEPT)
    assert nobody.log == paper.log and nobody.extras["name_sharers"] == 0
    assert sharers.log != paper.log and sharers.extras["name_sharers"] == 2


def test_named_recipes_are_valid_and_hold_out_families():
    from pipeline.core.params import load_params
    from pipeline.defenses.text_recipes import HELD_OUT_VARIANTS, RECIPES, TRAINED_VARIANTS
    base = load_params("defend")["text"]
    configs = {name: text_config_from_dict({**base, **over}) for name, over in RECIPES.items()}
    # params.yaml's default is paper-face-retain; the paper's recipe is it with the push and the held sharers off
    assert configs["paper-face-retain"] == text_config_from_dict(base)
    assert configs["paper"] == dataclasses.replace(text_config_from_dict(base), face_push=0.0, face_margin=0.0,
                                                   retain_sharers=0)
    assert set(TRAINED_VARIANTS).isdisjoint(HELD_OUT_VARIANTS) and HELD_OUT_VARIANTS
    assert set(configs["hardened"].variant_families) == set(TRAINED_VARIANTS)
    # the change aimed at relearning differs from the hardened recipe in the regulariser alone
    assert configs["hardened-noreg"].weight_reg == 0 < configs["hardened"].weight_reg
    assert dataclasses.replace(configs["hardened-noreg"], weight_reg=configs["hardened"].weight_reg) == configs["hardened"]
