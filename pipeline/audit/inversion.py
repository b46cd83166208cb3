"""Learned trigger (textual inversion, docs/method.md §7): an attacker who cannot name a removed
person optimises one token embedding so that "a photo of <token>" matches photos of them, and
runs the attack with that token in place of the name. No weight of the model changes: the
token's embedding is swapped in by a forward hook on the token-embedding layer.

If the learned token identifies the person on the defended model about as often as on R (which
never saw them), the token found the face, not a memory of the name; if it does so on the
defended model clearly more often, the person's identity is still in there, only no longer
reachable by their name.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator

import torch
from torch import Tensor

from pipeline.attack.idia import idia_votes
from pipeline.attack.templates import IDIA_TEMPLATES
from pipeline.core.errors import PipelineError
from pipeline.models.text_encoding import tokenize

PLACEHOLDER = "sks"   # one token of CLIP's BPE vocabulary that names nobody; its embedding is replaced
# the attacker's own prompts for learning the token (not the attack's 21)
LEARN_TEMPLATES = ("a photo of {}.", "a close-up photo of {}.", "{} in a picture.", "a portrait of {}.")


@dataclass(frozen=True)
class InversionConfig:
    steps: int = 100
    lr: float = 0.01
    seed: int = 0


def placeholder_id(tokenizer) -> int:
    ids = tokenizer.encode(PLACEHOLDER) if hasattr(tokenizer, "encode") else None
    if not ids or len(ids) != 1:
        raise PipelineError(f"the tokenizer splits the placeholder {PLACEHOLDER!r} into {ids}; textual inversion "
                            "needs a single-token placeholder")
    return ids[0]


@contextlib.contextmanager
def swapped_token(model, token_id: int, tokens: Tensor, embedding: Tensor) -> Iterator[None]:
    """While active, every occurrence of `token_id` in `tokens` (the batch about to be encoded)
    gets `embedding` instead of the model's own row."""
    where = (tokens == token_id).unsqueeze(-1)

    def hook(_module, _inputs, output):
        return torch.where(where.to(output.device), embedding.to(output.dtype).to(output.device), output)

    handle = model.token_embedding.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


@contextlib.contextmanager
def frozen(model) -> Iterator[None]:
    flags = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(model.parameters(), flags):
            p.requires_grad_(flag)


def learn_token(model, tokenizer, photo_emb: Tensor, cfg: InversionConfig, device) -> Tensor:
    """The embedding that makes the learning prompts closest (mean cosine) to `photo_emb`
    (L2-normalised image embeddings [n, d]); starts from the mean token embedding."""
    token_id = placeholder_id(tokenizer)
    tokens = tokenize(tokenizer, [t.format(PLACEHOLDER) for t in LEARN_TEMPLATES]).to(device)
    target = photo_emb.to(device).float()
    torch.manual_seed(cfg.seed)
    start = model.token_embedding.weight.detach().mean(dim=0)
    vector = (start + 0.01 * start.norm() * torch.randn_like(start) / start.numel() ** 0.5).clone().requires_grad_(True)
    optimizer = torch.optim.Adam([vector], lr=cfg.lr)
    with frozen(model):
        for _ in range(cfg.steps):
            with swapped_token(model, token_id, tokens, vector):
                text = model.encode_text(tokens, normalize=True)
            loss = -(text @ target.T).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return vector.detach()


@torch.no_grad()
def token_templates(model, tokenizer, embedding: Tensor, device, templates=IDIA_TEMPLATES) -> Tensor:
    """The attack's templates with the learned token as the name: [n_templates, d], normalised."""
    token_id = placeholder_id(tokenizer)
    tokens = tokenize(tokenizer, [t.format(PLACEHOLDER) for t in templates]).to(device)
    with swapped_token(model, token_id, tokens, embedding):
        return model.encode_text(tokens, normalize=True).float().cpu()


def correct_with_token(image_emb: Tensor, text_emb: Tensor, owner: Tensor, person: int, token_emb: Tensor) -> int:
    """Correct templates for candidate `person` when the attack uses the learned token instead of
    their name (every other candidate keeps their name): image_emb [n, d] of every attack photo,
    text_emb [T, C, d], owner [n] candidate index per photo."""
    text = text_emb.clone()
    text[:, person] = token_emb
    votes = idia_votes(image_emb, text, owner)
    won = dict(zip(votes.owners.tolist(), votes.correct_templates.tolist()))
    return int(won.get(person, 0))
