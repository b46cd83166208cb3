"""Merging defended towers into one CLIP.

A defended text tower (pipeline.models.text_encoding.TextTower) has the CLIP's own
state-dict keys, and a defended image tower is a copy of `clip.visual`, so both drop back
into a copy of the base model key for key.
"""
from __future__ import annotations

import copy
from typing import Mapping

import open_clip
import torch
from torch import nn

from pipeline.core.errors import PipelineError
from pipeline.models.architecture import require_clip
from pipeline.models.text_encoding import TEXT_TOWER_ATTRS


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
