"""Trigger photos under the audit's photo transforms (issue 17 point 5, off in the paper's recipe).

The image defense sees each removed person only in the trigger photos it is given; an attacker
who mirrors, crops, blurs or recompresses the attack's photos shows the model pictures it was
never trained to send to the anonymous face. Training on transformed copies of the trigger
photos covers the families it is given; the audit's other families stay held out, so the audit
says whether the removal generalises to photo changes it never saw.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from PIL import Image

from pipeline.audit.transforms import transformed


def _to_pil(image: torch.Tensor) -> Image.Image:
    return Image.fromarray(image.permute(1, 2, 0).contiguous().numpy())


def _to_tensor(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.uint8).copy()).permute(2, 0, 1).contiguous()


def transformed_copies(images_by_identity: Sequence[Sequence[torch.Tensor]],
                       families: Sequence[str]) -> list[list[torch.Tensor]]:
    """Per identity: every uint8 [3, h, w] image under every transform family (family-major),
    each of its input's size. Deterministic: the transforms draw nothing."""
    return [[_to_tensor(transformed(_to_pil(image), family)) for family in families for image in images]
            for images in images_by_identity]
