"""Embedding-similarity utility metrics of a defended encoder (docs/method.md §2, §3).

All take embeddings already computed, so the stage decides what to encode and reuse.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def mean_cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean row-wise cosine; `b` may be one vector broadcast against every row of `a`."""
    if b.dim() == 1:
        b = b.expand_as(a)
    return float(F.cosine_similarity(a.float(), b.float(), dim=-1).mean())


def text_similarities(teacher_clean, student_clean, student_trigger, student_target,
                      teacher_trigger, teacher_target) -> dict[str, float]:
    """sim_clean: cos(T(c), S(c)) on held-out captions; sim_backdoor: cos(S(c with name),
    S(c with target)) (how well the backdoor maps, with its value before the defense);
    sim_target: cos(T(c_tgt), S(c_tgt)) (the target phrase itself unchanged)."""
    return {
        "sim_clean": mean_cosine(teacher_clean, student_clean),
        "sim_backdoor": mean_cosine(student_trigger, student_target),
        "sim_backdoor_before": mean_cosine(teacher_trigger, teacher_target),
        "sim_target": mean_cosine(teacher_target, student_target),
    }


def image_similarities(teacher_clean, student_clean, teacher_faces_raw, student_faces_raw,
                       teacher_removed, student_removed) -> dict[str, float]:
    """sim_clean: cos(original, defended) on held-out clean images; sim_id: cos of the removed
    identities' photos to e_avg (the mean raw teacher embedding of all FaceScrub photos), with its
    value before; sim_target: cos(e_avg recomputed with the defended encoder, e_avg)."""
    e_avg = teacher_faces_raw.float().mean(dim=0)
    e_avg_student = student_faces_raw.float().mean(dim=0)
    return {
        "sim_clean": mean_cosine(teacher_clean, student_clean),
        "sim_id": mean_cosine(student_removed, e_avg),
        "sim_id_before": mean_cosine(teacher_removed, e_avg),
        "sim_target": float(F.cosine_similarity(e_avg_student, e_avg, dim=0)),
    }
