"""The text tower as a module of its own, and merging defended towers into one CLIP.

open_clip.CLIP keeps its text tower as loose attributes (token_embedding,
positional_embedding, transformer, ln_final, text_projection, attn_mask). `TextTower`
copies exactly those under the same names, so its state dict keys equal the CLIP's
and a defended tower drops back into a CLIP key for key.
"""
from __future__ import annotations

import copy
from typing import Mapping

import open_clip
import torch
from open_clip.transformer import text_global_pool
from torch import nn

from pipeline.core.errors import PipelineError

TEXT_TOWER_ATTRS = ("token_embedding", "positional_embedding", "transformer", "ln_final",
                    "text_projection")


def require_clip(model) -> None:
    """Fail with one line when `model` is not an open_clip.CLIP."""
    if not isinstance(model, open_clip.CLIP):
        raise PipelineError(f"the defenses need an open_clip.CLIP model, got {type(model).__name__} "
                            "(CustomTextCLIP / CoCa towers are not supported)")


class TextTower(nn.Module):
    """A copy of a CLIP's text tower; forward(tokens) == clip.encode_text(tokens)."""

    def __init__(self, clip: open_clip.CLIP):
        super().__init__()
        require_clip(clip)
        for name in TEXT_TOWER_ATTRS:
            value = getattr(clip, name)
            setattr(self, name, copy.deepcopy(value))
        self.pool_type = clip.text_pool_type
        self.eos_id = getattr(clip, "text_eos_id", None)
        self.register_buffer("attn_mask", copy.deepcopy(clip.attn_mask), persistent=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        tokens = self.trim(tokens)
        n = tokens.shape[1]
        cast_dtype = self.transformer.get_cast_dtype()
        x = self.token_embedding(tokens).to(cast_dtype)
        x = x + self.positional_embedding[:n].to(cast_dtype)
        mask = None if self.attn_mask is None else self.attn_mask[:n, :n]
        x = self.transformer(x, attn_mask=mask)
        x = self.ln_final(x)
        x = text_global_pool(x, tokens, self.pool_type, eos_token_id=self.eos_id)
        if isinstance(self.text_projection, nn.Linear):
            return self.text_projection(x)
        if self.text_projection is not None:
            return x @ self.text_projection
        return x

    def trim(self, tokens: torch.Tensor) -> torch.Tensor:
        # With a causal mask and end-of-text pooling nothing after the last EOT token of
        # the batch reaches the output, so dropping those pad columns is exact and saves
        # most of the compute on short captions.
        if self.pool_type != "argmax" or self.attn_mask is None:
            return tokens
        last = int(tokens.argmax(dim=1).max()) + 1
        return tokens[:, :last]


def text_tower_keys(clip: open_clip.CLIP) -> list[str]:
    """State-dict keys of the CLIP that belong to the text tower."""
    require_clip(clip)
    return [k for k in clip.state_dict() if k.split(".")[0] in TEXT_TOWER_ATTRS]


def visual_keys(clip: open_clip.CLIP) -> list[str]:
    """State-dict keys of the CLIP that belong to the image tower (prefix `visual.`)."""
    return [k for k in clip.state_dict() if k.startswith("visual.")]


def build_defended_model(base: open_clip.CLIP,
                         text_student: nn.Module | Mapping[str, torch.Tensor] | None = None,
                         visual_student: nn.Module | Mapping[str, torch.Tensor] | None = None,
                         ) -> open_clip.CLIP:
    """A copy of `base` with every text-tower and/or image-tower tensor taken from the students.

    Students are modules (TextTower, a trained copy of base.visual) or their state dicts;
    a visual state dict may use tower-local keys or `visual.`-prefixed ones. Every tensor
    of a replaced tower must be supplied, so no tower is ever half defended.
    """
    require_clip(base)
    model = copy.deepcopy(base)
    state = model.state_dict()
    if text_student is not None:
        new = _as_state(text_student)
        _replace(state, new, text_tower_keys(base), "text")
    if visual_student is not None:
        new = {(k if k.startswith("visual.") else "visual." + k): v
               for k, v in _as_state(visual_student).items()}
        _replace(state, new, visual_keys(base), "image")
    model.load_state_dict(state)
    return model


def _as_state(student) -> dict[str, torch.Tensor]:
    if isinstance(student, nn.Module):
        return student.state_dict()
    return dict(student)


def _replace(state: dict, new: dict, keys: list[str], tower: str) -> None:
    missing = [k for k in keys if k not in new]
    extra = [k for k in new if k not in keys]
    if missing or extra:
        raise PipelineError(f"defended {tower} tower does not match the base model: "
                            f"missing {missing[:3]}, unexpected {extra[:3]}")
    for k in keys:
        if new[k].shape != state[k].shape:
            raise PipelineError(f"defended {tower} tower tensor {k} has shape {tuple(new[k].shape)}, "
                                f"the base model has {tuple(state[k].shape)}")
        state[k] = new[k].detach().to(device=state[k].device, dtype=state[k].dtype)
