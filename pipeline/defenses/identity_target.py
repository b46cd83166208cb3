"""The `identity_removed` backdoor target of the image defense (an option beyond the paper).

The paper maps every poisoned image onto one point, e_avg. Measured on the development pool,
that moves the training photos (cosine 0.98-0.99 to e_avg) but a strongly known person's other
photos keep enough of their identity for the attack. Here each poisoned image keeps the
teacher's embedding of itself, minus its component along the removed people's identity
directions u_k = mean(teacher face of k) - e_avg (unit embeddings, orthonormalised), which
takes e_avg's value instead. The shift is nearly the same for every photo of a person, which
is what a student can carry over to photos it never saw.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from pipeline.core.errors import PipelineError


def identity_directions(identity_embeddings: list[torch.Tensor], e_avg: torch.Tensor) -> torch.Tensor:
    """Orthonormal basis [D, K'] of the span of (mean unit embedding of identity k) - unit e_avg.

    identity_embeddings[k]: teacher embeddings [n_k, D] of identity k's trigger images."""
    if not identity_embeddings or any(len(e) == 0 for e in identity_embeddings):
        raise PipelineError("image defense: identity_removed needs at least one trigger image per removed identity")
    centre = F.normalize(e_avg.float(), dim=0)
    dirs = torch.stack([F.normalize(e.float(), dim=-1).mean(0) - centre for e in identity_embeddings], dim=1)
    q, r = torch.linalg.qr(dirs)
    keep = r.diagonal().abs() > 1e-6 * max(1.0, float(r.diagonal().abs().max()))  # drop collinear directions
    return q[:, keep]


def identity_removed(teacher_emb: torch.Tensor, basis: torch.Tensor, e_avg: torch.Tensor) -> torch.Tensor:
    """Targets [n, D]: unit teacher embeddings whose coordinates along `basis` are e_avg's."""
    z = F.normalize(teacher_emb.float(), dim=-1)
    centre = F.normalize(e_avg.float(), dim=0).to(z.device)
    basis = basis.to(z.device)
    return z - ((z - centre) @ basis) @ basis.T
