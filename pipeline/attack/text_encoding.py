"""Text embeddings for the attack, encoding each prompt only up to its real token length.

open_clip's text tower is causal: token p attends only to tokens <= p, and the pooled
feature sits at the EOT token. Everything after the EOT is padding that cannot influence
the pooled feature, so running the transformer on the first `max real length in the batch`
positions gives the same embedding as the full context, several times faster. Sorting
prompts by length first keeps each batch's longest prompt close to the others.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from open_clip.model import CLIP
from open_clip.transformer import TextTransformer, text_global_pool
from torch import Tensor, nn
from tqdm import tqdm

from pipeline.attack.templates import IDIA_TEMPLATES, idia_prompts

# Pool types whose pooled position is known from the token ids alone.
_TRUNCATABLE_POOLS = ("argmax", "eos", "first")


@dataclass(frozen=True)
class CausalTextTower:
    """The parts of an open_clip causal text tower that encode_text uses."""

    token_embedding: nn.Embedding
    positional_embedding: Tensor
    transformer: nn.Module
    ln_final: nn.Module
    text_projection: nn.Module | Tensor | None
    attn_mask: Tensor
    pool_type: str
    eos_id: int | None


def causal_text_tower(model: nn.Module) -> CausalTextTower | None:
    """The model's text tower when truncated encoding is exact for it, else None."""
    if isinstance(model, CLIP):
        src, pool_type, eos_id = model, model.text_pool_type, getattr(model, "text_eos_id", None)
    elif isinstance(getattr(model, "text", None), TextTransformer):
        src = model.text
        # CoCa-style appended CLS tokens and padding masks depend on the full sequence.
        if src.cls_emb is not None or src.use_pad_mask:
            return None
        pool_type, eos_id = src.pool_type, getattr(src, "eos_id", None)
    else:
        return None
    attn_mask = getattr(src, "attn_mask", None)
    if attn_mask is None or pool_type not in _TRUNCATABLE_POOLS:
        return None
    if pool_type == "eos" and eos_id is None:
        return None
    return CausalTextTower(
        token_embedding=src.token_embedding,
        positional_embedding=src.positional_embedding,
        transformer=src.transformer,
        ln_final=src.ln_final,
        text_projection=src.text_projection,
        attn_mask=attn_mask,
        pool_type=pool_type,
        eos_id=eos_id,
    )


def real_lengths(tokens: Tensor, pool_type: str, eos_id: int | None = None) -> Tensor:
    """Per row, the number of leading positions the pooled feature depends on."""
    if pool_type == "argmax":
        pooled_at = tokens.argmax(dim=-1)
    elif pool_type == "eos":
        pooled_at = (tokens == eos_id).int().argmax(dim=-1)
    elif pool_type == "first":
        pooled_at = torch.zeros(tokens.shape[0], dtype=torch.long)
    else:
        raise ValueError(f"pool type {pool_type!r} has no truncation point")
    return pooled_at.long() + 1


def _encode_prefix(tower: CausalTextTower, tokens: Tensor) -> Tensor:
    """open_clip CLIP.encode_text restricted to the first tokens.shape[1] positions."""
    length = tokens.shape[1]
    cast_dtype = tower.transformer.get_cast_dtype()
    x = tower.token_embedding(tokens).to(cast_dtype)
    x = x + tower.positional_embedding[:length].to(cast_dtype)
    x = tower.transformer(x, attn_mask=tower.attn_mask[:length, :length])
    x = tower.ln_final(x)
    x = text_global_pool(x, tokens, tower.pool_type, eos_token_id=tower.eos_id)
    if tower.text_projection is not None:
        if isinstance(tower.text_projection, nn.Linear):
            x = tower.text_projection(x)
        else:
            x = x @ tower.text_projection
    return x


def encoding_autocast(device: torch.device | str, bf16: bool):
    """bf16 autocast for attack/benchmark encoding on CUDA only; on CPU encoding stays exact fp32."""
    device = torch.device(device)
    if bf16 and device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@contextlib.contextmanager
def inference_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode (no dropout) and no grad for the block; restores the model's mode after."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def _tokenize(tokenizer: Callable, texts: list[str]) -> Tensor:
    tokens = tokenizer(texts)
    if not isinstance(tokens, Tensor) or tokens.dim() != 2 or tokens.shape[0] != len(texts):
        raise TypeError("tokenizer must map a list of n texts to a [n, context_length] tensor")
    return tokens.long()


def encode_texts(model: nn.Module, tokenizer: Callable, texts: list[str], batch_size: int,
                 device: torch.device | str, *, progress: str | None = "text",
                 normalize: bool = True, bf16: bool = False) -> Tensor:
    """L2-normalised float32 text embeddings [n, d] (on CPU), each prompt encoded to its real length.

    Falls back to encode_texts_full for towers where truncation is not exact
    (HF text towers, bidirectional or CoCa towers, 'last' pooling). bf16=True runs the tower
    under bf16 autocast when `device` is CUDA (results come back as float32 either way).
    """
    if not texts:
        raise ValueError("encode_texts needs at least one text")
    tower = causal_text_tower(model)
    if tower is None:
        return encode_texts_full(model, tokenizer, texts, batch_size, device, progress=progress,
                                 normalize=normalize, bf16=bf16)
    tokens = _tokenize(tokenizer, texts)
    lengths = real_lengths(tokens, tower.pool_type, tower.eos_id)
    order = torch.argsort(lengths, stable=True)
    out: Tensor | None = None
    with inference_mode(model):
        starts = range(0, len(texts), batch_size)
        for start in tqdm(starts, desc=progress, unit="batch", disable=progress is None):
            idx = order[start:start + batch_size]
            width = int(lengths[idx].max())
            batch = tokens[idx, :width].to(device, non_blocking=True)
            with encoding_autocast(device, bf16):
                emb = _encode_prefix(tower, batch)
            emb = emb.float()
            emb = (F.normalize(emb, dim=-1) if normalize else emb).cpu()
            if out is None:
                out = torch.empty(len(texts), emb.shape[1], dtype=torch.float32)
            out[idx] = emb
    return out


def encode_texts_full(model: nn.Module, tokenizer: Callable, texts: list[str], batch_size: int,
                      device: torch.device | str, *, progress: str | None = "text",
                      normalize: bool = True, bf16: bool = False) -> Tensor:
    """L2-normalised float32 text embeddings [n, d] (on CPU) via model.encode_text on the full context."""
    if not texts:
        raise ValueError("encode_texts_full needs at least one text")
    tokens = _tokenize(tokenizer, texts)
    chunks = []
    with inference_mode(model):
        starts = range(0, len(texts), batch_size)
        for start in tqdm(starts, desc=progress, unit="batch", disable=progress is None):
            batch = tokens[start:start + batch_size].to(device, non_blocking=True)
            with encoding_autocast(device, bf16):
                emb = model.encode_text(batch)
            emb = emb.float()
            chunks.append((F.normalize(emb, dim=-1) if normalize else emb).cpu())
    return torch.cat(chunks)


def encode_idia_texts(model: nn.Module, tokenizer: Callable, names: list[str], batch_size: int,
                      device: torch.device | str, templates: list[str] = IDIA_TEMPLATES,
                      bf16: bool = False) -> Tensor:
    """Embeddings of every (template, candidate name) prompt: [n_templates, n_names, d]."""
    prompts = idia_prompts(names, templates)
    emb = encode_texts(model, tokenizer, prompts, batch_size, device, progress="IDIA prompts", bf16=bf16)
    return emb.reshape(len(templates), len(names), -1)
