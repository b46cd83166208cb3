"""Relearning on clean data (docs/method.md §7, adaptive attacks): fine-tune a copy of a model
on corpus pairs that name nobody the attack evaluates, and run the attack again after chosen
steps. An edit that stays close to the original weights (which the defenses' weight
regulariser asks for) may come undone this way; R, the model that never saw the removed
people, fine-tuned the same way, says how much of what comes back is relearning from
nothing and how much was only hidden.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable

import open_clip
import torch
from tqdm import tqdm

from pipeline.core.errors import PipelineError
from pipeline.models.image_encoding import ImageInput
from pipeline.models.precision import autocast
from pipeline.models.pretrain import batch_indices, weight_decay_groups
from pipeline.models.text_encoding import tokenize


@dataclass(frozen=True)
class RelearnConfig:
    checkpoints: tuple[int, ...] = (50, 100, 200)   # the last one is the number of steps
    batch_size: int = 128
    lr: float = 1e-4          # constant: an attacker fine-tunes, no schedule to reproduce
    weight_decay: float = 0.1
    seed: int = 0

    def __post_init__(self):
        if not self.checkpoints or list(self.checkpoints) != sorted(set(self.checkpoints)) or self.checkpoints[0] < 1:
            raise PipelineError(f"audit.adaptive.relearn.checkpoints = {list(self.checkpoints)}; allowed: increasing "
                                "step numbers >= 1, e.g. [50, 100, 200]")


def relearn(model: open_clip.CLIP, images, captions: list[str], tokenizer, cfg: RelearnConfig, device,
            probe: Callable[[open_clip.CLIP], dict], *, always: tuple | None = None,
            stop: Callable[[dict], bool] | None = None) -> list[dict]:
    """Fine-tune a copy of `model` (never `model` itself) with the CLIP loss on (images, captions);
    return `[{"step": s, **probe(copy)}]` for s = 0 and every checkpoint.

    images: uint8 [N, 3, H, W] (a tensor or ShardImages), one caption each. `always`: (images,
    captions) put into every batch besides batch_size - len(them) drawn pairs (few-shot
    relearning of one person); `stop`: end after the first probe row it accepts.
    """
    if len(images) != len(captions):
        raise PipelineError(f"relearn: {len(images)} images but {len(captions)} captions")
    fixed_images, fixed_captions = always if always is not None else (None, [])
    drawn = cfg.batch_size - len(fixed_captions)
    if drawn < 1 or drawn > len(captions):
        raise PipelineError(f"audit.adaptive.relearn.batch_size = {cfg.batch_size} must exceed the {len(fixed_captions)} "
                            f"pairs put into every batch and draw at most the {len(captions)} clean pairs")
    device = torch.device(device)
    work = copy.deepcopy(model).to(device)
    work.eval()
    rows = [{"step": 0, **probe(work)}]
    if stop is not None and stop(rows[-1]):
        return rows
    tokens = tokenize(tokenizer, captions, desc=None)
    fixed_tokens = tokenize(tokenizer, fixed_captions, desc=None) if fixed_captions else None
    prep = ImageInput(work, device)
    loss_fn = open_clip.ClipLoss()
    optimizer = torch.optim.AdamW(weight_decay_groups(work, cfg.weight_decay), lr=cfg.lr)
    batches = batch_indices(len(captions), drawn, torch.Generator().manual_seed(cfg.seed))
    wanted = set(cfg.checkpoints)
    for step in tqdm(range(1, cfg.checkpoints[-1] + 1), desc="relearning", unit="step"):
        work.train()
        idx = next(batches)
        batch_images, batch_tokens = images[idx], tokens[idx]
        if fixed_tokens is not None:
            batch_images = torch.cat([fixed_images, batch_images])
            batch_tokens = torch.cat([fixed_tokens, batch_tokens])
        with autocast(device, True, "train"):
            loss = loss_fn(work.encode_image(prep(batch_images), normalize=True),
                           work.encode_text(batch_tokens.to(device), normalize=True), work.logit_scale.exp())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step in wanted:
            work.eval()
            rows.append({"step": step, "loss": round(loss.item(), 6), **probe(work)})
            if stop is not None and stop(rows[-1]):
                break
    return rows
