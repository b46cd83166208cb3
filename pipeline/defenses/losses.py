"""Loss terms and teacher/student set-up shared by the text and image defenses."""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

_NORM_LAYERS = (nn.LayerNorm, nn.modules.batchnorm._BatchNorm, nn.GroupNorm)


def neg_cosine(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """d(u, v) = -cos(u, v) on unnormalised embeddings, averaged over the batch.

    `v` may be a single vector [D]; it is then compared with every row of `u`.
    """
    u = u.float()
    v = v.float().expand_as(u)
    return -F.cosine_similarity(u, v, dim=-1).mean()


def per_sample_neg_cosine(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """-cos(u_i, v_i) for every row (no mean), for per-identity averaging."""
    u = u.float()
    return -F.cosine_similarity(u, v.float().expand_as(u), dim=-1)


def weight_distance(pairs: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """Sum over parameter tensors of ||theta_S - theta_T||_2 (each norm unsquared)."""
    if not pairs:
        return torch.zeros(())
    norms = [torch.linalg.vector_norm((s - t).float()) for s, t in pairs]
    return torch.stack(norms).sum()


def freeze_norm_layers(module: nn.Module) -> nn.Module:
    """Stop gradients into every LayerNorm / BatchNorm / GroupNorm weight and bias."""
    for sub in module.modules():
        if isinstance(sub, _NORM_LAYERS):
            for p in sub.parameters(recurse=False):
                p.requires_grad_(False)
    return module


def teacher_student(module: nn.Module) -> tuple[nn.Module, nn.Module]:
    """Frozen teacher and trainable student copies of `module`, both in eval mode.

    Eval mode turns dropout off and keeps BatchNorm running statistics fixed; the
    student's norm layers are frozen as in the paper.
    """
    teacher = copy.deepcopy(module).eval()
    teacher.requires_grad_(False)
    student = copy.deepcopy(module).eval()
    student.requires_grad_(True)
    freeze_norm_layers(student)
    return teacher, student


def trainable_pairs(student: nn.Module, teacher: nn.Module) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(student, teacher) tensor pairs for every trainable student parameter."""
    teacher_params = dict(teacher.named_parameters())
    return [(p, teacher_params[name].detach()) for name, p in student.named_parameters()
            if p.requires_grad]
