"""Pieces of the teacher/student loop that both defenses share."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from pipeline.defenses.losses import weight_distance


@dataclass
class DefenseRun:
    """What a defense returns.

    `log` has one dict per step: step, loss (total), clean, backdoor, weight, [retain],
    lr. clean / backdoor / retain are the unweighted mean -cos terms and weight the
    unweighted sum of per-tensor L2 distances to the teacher, so runs with different
    beta / lambda stay comparable. `train_seconds` is the wall time of the training
    loop alone; `setup_seconds` covers tokenising, face preparation and teacher
    pre-computation.
    """

    student: nn.Module
    log: list[dict]
    train_seconds: float
    setup_seconds: float
    extras: dict = field(default_factory=dict)

    @property
    def seconds_per_step(self) -> float:
        return self.train_seconds / max(len(self.log), 1)

    def summary(self) -> dict:
        """Timing and final loss terms, JSON-ready (for a metrics file)."""
        last = {k: v for k, v in (self.log[-1] if self.log else {}).items() if k not in ("step", "lr")}
        return {"steps": len(self.log), "train_seconds": self.train_seconds,
                "setup_seconds": self.setup_seconds, "seconds_per_step": self.seconds_per_step,
                **{f"final_{k}": v for k, v in last.items()}}


def make_optimizer(student: nn.Module, cfg) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    params = [p for p in student.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(cfg.milestones), gamma=cfg.gamma)
    return opt, sched


def regularised_step(loss: torch.Tensor, weight_pairs, weight_reg: float,
                     opt: torch.optim.Optimizer, sched) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Add lambda * sum of per-tensor L2 distances (only when lambda > 0; it is logged either
    way), step optimiser and schedule. Returns (total loss, weight distance, lr used)."""
    if weight_reg > 0:
        weight = weight_distance(weight_pairs)
        loss = loss + weight_reg * weight
    else:
        with torch.no_grad():
            weight = weight_distance(weight_pairs)
    lr = opt.param_groups[0]["lr"]
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    sched.step()
    return loss, weight, lr
