"""Text encoding for every caller (attack, defenses, evaluation, benchmarks).

open_clip's text tower is causal: token p attends only to tokens <= p, and the pooled
feature sits at the end-of-text token (or the first token). Everything after that
position is padding that cannot reach the pooled feature, so running the transformer on
the first `longest real length in the batch` positions gives the same embedding as the
full context, several times faster (benchmarks/text_encoding.py prints the ratio; a test
checks the equality). Rows are batched by length so that each batch's longest row is
close to the others.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable, Sequence

import open_clip
import torch
import torch.nn.functional as F
from open_clip.model import CLIP
from open_clip.transformer import TextTransformer, text_global_pool
from torch import Tensor, nn
from tqdm import tqdm

from pipeline.models.architecture import require_clip
from pipeline.models.precision import Purpose, autocast, inference_mode

# Pool types whose pooled position is known from the token ids alone.
_TRUNCATABLE_POOLS = ("argmax", "eos", "first")
TEXT_TOWER_ATTRS = ("token_embedding", "positional_embedding", "transformer", "ln_final",
                    "text_projection")
Tokenizer = Callable[[list[str]], Tensor]


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
        pooled_at = torch.zeros(tokens.shape[0], dtype=torch.long, device=tokens.device)
    else:
        raise ValueError(f"pool type {pool_type!r} has no truncation point")
    return pooled_at.long() + 1


def encode_prefix(tower, tokens: Tensor) -> Tensor:
    """open_clip CLIP.encode_text (unnormalised) on the first tokens.shape[1] positions.

    `tower` is a CausalTextTower or a TextTower: anything with their attributes."""
    length = tokens.shape[1]
    cast_dtype = tower.transformer.get_cast_dtype()
    x = tower.token_embedding(tokens).to(cast_dtype)
    x = x + tower.positional_embedding[:length].to(cast_dtype)
    mask = None if tower.attn_mask is None else tower.attn_mask[:length, :length]
    x = tower.transformer(x, attn_mask=mask)
    x = tower.ln_final(x)
    x = text_global_pool(x, tokens, tower.pool_type, eos_token_id=tower.eos_id)
    if isinstance(tower.text_projection, nn.Linear):
        return tower.text_projection(x)
    if tower.text_projection is not None:
        return x @ tower.text_projection
    return x


class TextTower(nn.Module):
    """A trainable copy of a CLIP's text tower; forward(tokens) == clip.encode_text(tokens).

    open_clip.CLIP keeps its text tower as loose attributes; this module copies exactly
    those under the same names, so its state-dict keys equal the CLIP's and a defended
    tower drops back into a CLIP key for key (pipeline/defenses/towers.py)."""

    def __init__(self, clip: open_clip.CLIP):
        super().__init__()
        require_clip(clip)
        for name in TEXT_TOWER_ATTRS:
            setattr(self, name, copy.deepcopy(getattr(clip, name)))
        self.pool_type = clip.text_pool_type
        self.eos_id = getattr(clip, "text_eos_id", None)
        self.register_buffer("attn_mask", copy.deepcopy(clip.attn_mask), persistent=False)

    def forward(self, tokens: Tensor) -> Tensor:
        return encode_prefix(self, self.trim(tokens))

    def trim(self, tokens: Tensor) -> Tensor:
        """The tokens without the pad columns after the batch's longest real length (exact for
        a causal tower; most of the compute on short captions)."""
        if self.attn_mask is None or self.pool_type not in _TRUNCATABLE_POOLS:
            return tokens
        return tokens[:, :int(real_lengths(tokens, self.pool_type, self.eos_id).max())]


def tokenize(tokenizer: Tokenizer, texts: Sequence[str], *, chunk: int = 4096,
             desc: str | None = None) -> Tensor:
    """Token ids [n, context_length] (int64) of `texts`, in chunks (with a bar when `desc`)."""
    texts = list(texts)
    parts = []
    for start in tqdm(range(0, len(texts), chunk), desc=desc, unit="chunk", disable=desc is None, leave=False):
        part = tokenizer(texts[start:start + chunk])
        if not isinstance(part, Tensor) or part.dim() != 2 or part.shape[0] != len(texts[start:start + chunk]):
            raise TypeError("tokenizer must map a list of n texts to a [n, context_length] tensor")
        parts.append(part.long())
    return torch.cat(parts) if parts else torch.zeros(0, 0, dtype=torch.long)


@torch.no_grad()
def encode_token_batches(encode: Callable[[Tensor], Tensor], tokens: Tensor, batch_size: int,
                         device: torch.device | str, *, lengths: Tensor | None = None,
                         stable: bool = True, bf16: bool = False, purpose: Purpose = "measure",
                         normalize: bool = False, out_device: torch.device | str = "cpu",
                         desc: str | None = None) -> Tensor:
    """Float32 embeddings [n, d] on `out_device`, row i for tokens[i].

    With `lengths` (real_lengths of the rows) the rows are batched by length and each batch
    is cut to its longest row, which is exact for causal towers; without, batches are the
    rows in order, at full context. Which rows share a batch sets the batch's width, and
    the width moves the last bits of every row's result; `stable=False` keeps the order
    the text defense's teacher pass was first run with, so committed models reproduce."""
    if len(tokens) == 0:
        raise ValueError("nothing to encode: no token rows")
    order = torch.arange(len(tokens)) if lengths is None else torch.argsort(lengths, stable=stable)
    out: Tensor | None = None
    for start in tqdm(range(0, len(tokens), batch_size), desc=desc, unit="batch",
                      disable=desc is None, leave=False):
        idx = order[start:start + batch_size]
        batch = tokens[idx] if lengths is None else tokens[idx, :int(lengths[idx].max())]
        with autocast(device, bf16, purpose):
            emb = encode(batch.to(device, non_blocking=True)).float()
        if normalize:
            emb = F.normalize(emb, dim=-1)
        emb = emb.to(out_device)
        if out is None:
            out = torch.empty(len(tokens), emb.shape[1], dtype=torch.float32, device=out_device)
        out[idx.to(out_device)] = emb
    return out


def encode_texts(model: nn.Module, tokenizer: Tokenizer, texts: list[str], batch_size: int,
                 device: torch.device | str, *, progress: str | None = "text",
                 normalize: bool = True, bf16: bool = False) -> Tensor:
    """L2-normalised (unless normalize=False) float32 text embeddings [n, d] on the CPU,
    each text encoded only up to its real length.

    Falls back to encode_texts_full for towers where truncation is not exact (HF text
    towers, bidirectional or CoCa towers, 'last' pooling)."""
    if not texts:
        raise ValueError("encode_texts needs at least one text")
    tower = causal_text_tower(model)
    if tower is None:
        return encode_texts_full(model, tokenizer, texts, batch_size, device, progress=progress,
                                 normalize=normalize, bf16=bf16)
    tokens = tokenize(tokenizer, texts)
    with inference_mode(model):
        return encode_token_batches(lambda t: encode_prefix(tower, t), tokens, batch_size, device,
                                    lengths=real_lengths(tokens, tower.pool_type, tower.eos_id),
                                    bf16=bf16, normalize=normalize, desc=progress)


def encode_texts_full(model: nn.Module, tokenizer: Tokenizer, texts: list[str], batch_size: int,
                      device: torch.device | str, *, progress: str | None = "text",
                      normalize: bool = True, bf16: bool = False) -> Tensor:
    """As encode_texts, through model.encode_text on the full context (the reference)."""
    if not texts:
        raise ValueError("encode_texts_full needs at least one text")
    tokens = tokenize(tokenizer, texts)
    with inference_mode(model):
        return encode_token_batches(model.encode_text, tokens, batch_size, device, bf16=bf16,
                                    normalize=normalize, desc=progress)
