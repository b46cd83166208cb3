"""Does the backdoor give itself away? A detector that asks "was this name removed?".

The defense maps every removed name to one target, so a removed name's text embedding sits
close to the target's. The detector scores a name by that cosine; its ROC AUC over removed
vs kept names says how well an outsider who knows the target phrase can list the removed
people (0.5 = no better than chance, 1.0 = a perfect list).
"""
from __future__ import annotations

import torch
from torch import Tensor


def target_cosine(name_emb: Tensor, target_emb: Tensor) -> Tensor:
    """Cosine of each name's embedding [n, d] to the target's [d]."""
    names = torch.nn.functional.normalize(name_emb.float(), dim=-1)
    target = torch.nn.functional.normalize(target_emb.float().reshape(-1), dim=0)
    return names @ target


def roc_auc(scores: Tensor | list[float], positive: Tensor | list[bool]) -> float:
    """P(score of a random positive > score of a random negative), ties counting one half
    (the Mann-Whitney U statistic, which equals the area under the ROC curve)."""
    s = torch.as_tensor(scores, dtype=torch.float64).reshape(-1)
    y = torch.as_tensor(positive, dtype=torch.bool).reshape(-1)
    if s.numel() != y.numel():
        raise ValueError(f"{s.numel()} scores for {y.numel()} labels")
    pos, neg = s[y], s[~y]
    if pos.numel() == 0 or neg.numel() == 0:
        raise ValueError("ROC AUC needs at least one removed and one kept name")
    greater = (pos[:, None] > neg[None, :]).double().sum()
    ties = (pos[:, None] == neg[None, :]).double().sum()
    return float((greater + 0.5 * ties) / (pos.numel() * neg.numel()))
