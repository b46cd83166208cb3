"""The Identity Inference Attack on precomputed embeddings (docs/method.md §1, steps 3-5).

Pure tensor/table functions: they do not care which model made the embeddings, so after
a defense one tower's embeddings can be swapped in while the other tower's are reused.
"""
from __future__ import annotations

from typing import NamedTuple

import pandas as pd
import torch
from torch import Tensor
from tqdm import tqdm


class Votes(NamedTuple):
    """Per evaluated identity (owners = candidate indices, ascending), which templates were won."""

    owners: Tensor   # LongTensor [n_id]
    correct: Tensor  # BoolTensor [n_id, n_templates]

    @property
    def correct_templates(self) -> Tensor:
        return self.correct.sum(dim=1)


def predict_names(image_emb: Tensor, text_emb: Tensor, chunk_size: int = 512) -> Tensor:
    """Predicted candidate index per (image, template): argmax_n <I[x], T[t, n]>, shape [n_img, n_tpl].

    Ties go to the lowest candidate index (torch.argmax returns the first maximum).
    """
    if image_emb.dim() != 2 or text_emb.dim() != 3 or image_emb.shape[1] != text_emb.shape[2]:
        raise ValueError(f"expected image_emb [n_img, d] and text_emb [n_tpl, n_names, d], "
                         f"got {tuple(image_emb.shape)} and {tuple(text_emb.shape)}")
    image_emb = image_emb.float()
    text_emb = text_emb.float()
    preds = []
    # Chunked so 1000 names x 21 templates x thousands of images never sits in memory at once.
    for start in tqdm(range(0, image_emb.shape[0], chunk_size), desc="IDIA argmax", unit="chunk",
                      disable=image_emb.shape[0] <= chunk_size):
        sims = torch.einsum("id,tnd->itn", image_emb[start:start + chunk_size], text_emb)
        preds.append(sims.argmax(dim=2))
    return torch.cat(preds)


def template_votes(predictions: Tensor, image_owner: Tensor, n_candidates: int) -> Votes:
    """Majority vote per (identity, template) over the identity's images.

    A template is correct only when the most-voted name is unique (a tie is wrong) and is
    the identity's own name. image_owner[i] is the candidate index of image i's true name.
    """
    if predictions.shape[0] != image_owner.shape[0]:
        raise ValueError(f"{predictions.shape[0]} predictions but {image_owner.shape[0]} image owners")
    owners, row = torch.unique(image_owner.long(), return_inverse=True)
    return Votes(owners=owners, correct=majority_correct(predictions, row, owners, n_candidates))


def majority_correct(predictions: Tensor, group: Tensor, own_class: Tensor, n_classes: int) -> Tensor:
    """[n_groups, n_tpl]: per group of images and template, whether the unique most-voted class is
    the group's own (a tie, or a group without images, is wrong). group[i] in 0..n_groups-1 is
    image i's group; own_class[g] the class that counts as correct for group g."""
    n_groups, n_tpl = own_class.numel(), predictions.shape[1]
    correct = torch.zeros(n_groups, n_tpl, dtype=torch.bool)
    for t in range(n_tpl):
        counts = torch.bincount(group.long() * n_classes + predictions[:, t].long(),
                                minlength=n_groups * n_classes).view(n_groups, n_classes)
        top = counts.max(dim=1).values
        unique_top = (counts == top[:, None]).sum(dim=1) == 1
        own = counts[torch.arange(n_groups), own_class.long()]
        correct[:, t] = unique_top & (own == top) & (top > 0)
    return correct


def idia_votes(image_emb: Tensor, text_emb: Tensor, image_owner: Tensor) -> Votes:
    """Steps 3-4 of the attack: argmax per (image, template), then the per-identity vote."""
    return template_votes(predict_names(image_emb, text_emb), image_owner, text_emb.shape[1])


def identity_table(identities: pd.DataFrame, candidate_index: dict[str, int], votes: Votes,
                   tau: int) -> pd.DataFrame:
    """Per identity (in the order of `identities`): name, member, count, correct_templates, identified.

    `identities` needs columns name, member, count; an identity without images gets 0 templates.
    """
    won = dict(zip(votes.owners.tolist(), votes.correct_templates.tolist()))
    correct = [int(won.get(candidate_index[n], 0)) for n in identities["name"]]
    table = pd.DataFrame({
        "name": identities["name"].astype(str).to_list(),
        "member": identities["member"].astype(bool).to_list(),
        "count": identities["count"].astype(int).to_list(),
        "correct_templates": correct,
    })
    table["identified"] = table["correct_templates"] >= tau
    return table


def idia_metrics(table: pd.DataFrame) -> dict:
    """TPR over members and FPR over non-members; a rate is None (JSON null) when its group is empty."""
    is_member = table["member"].astype(bool)
    members = table[is_member]
    nonmembers = table[~is_member]
    hit_m = int(members["identified"].sum())
    hit_n = int(nonmembers["identified"].sum())
    return {
        "members": len(members),
        "nonmembers": len(nonmembers),
        "identified_members": hit_m,
        "identified_nonmembers": hit_n,
        "tpr": hit_m / len(members) if len(members) else None,
        "fpr": hit_n / len(nonmembers) if len(nonmembers) else None,
    }
