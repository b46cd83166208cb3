"""The attack on a probe, and how a probe's result is read.

A name-variant probe can make two candidates identical ("Emma" for Emma Stone and Emma
Watson). The attack then chooses among the distinct variant texts, and a person counts as
identified when the text the vote picks is their own variant, shared or not: an attacker who
learns "Emma" from a photo has learned what the model knows.
"""
from __future__ import annotations

from typing import Sequence

from torch import Tensor

from pipeline.attack.idia import majority_correct, predict_names


def variant_classes(texts: Sequence[str]) -> tuple[list[int], list[str]]:
    """(class of each candidate, the distinct texts in order of first appearance)."""
    index: dict[str, int] = {}
    classes = [index.setdefault(t, len(index)) for t in texts]
    return classes, list(index)


def class_votes(image_emb: Tensor, class_text_emb: Tensor, image_identity: Tensor,
                identity_class: Tensor) -> Tensor:
    """Correct templates per identity [n_id, n_tpl] when the attack chooses among distinct texts.

    class_text_emb [n_tpl, n_classes, d]; image_identity: the identity index (0..n_id-1) of each
    image; identity_class: each identity's own text. The vote stays per identity (two people
    who share "Emma" are voted on separately); a template is correct when the unique most-voted
    text is the identity's own.
    """
    return majority_correct(predict_names(image_emb, class_text_emb), image_identity, identity_class,
                            class_text_emb.shape[1])


def residual(base_identified: Sequence[bool], model_identified: Sequence[bool]) -> tuple[float | None, int]:
    """Among the removed people the base model identifies on a probe, the share the model
    still identifies, and how many people that rests on (None when the base found none)."""
    if len(base_identified) != len(model_identified):
        raise ValueError(f"{len(base_identified)} base results for {len(model_identified)} model results")
    found = [m for b, m in zip(base_identified, model_identified) if b]
    return (sum(found) / len(found) if found else None), len(found)


VERDICTS = ("removed", "partly removed", "not removed", "cannot tell")


def family_verdict(residuals: Sequence[float | None]) -> str:
    """docs/audit.md: the worst probe of a family decides. 'cannot tell' when the base model
    identifies none of the removed people on any probe of the family."""
    known = [r for r in residuals if r is not None]
    if not known:
        return "cannot tell"
    worst = max(known)
    if worst == 0:
        return "removed"
    return "partly removed" if worst <= 0.5 else "not removed"
