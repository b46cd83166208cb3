"""Model architectures: registering open_clip configs and building models from them."""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import open_clip
import torch

from pipeline.core.errors import ParamError, PipelineError

REQUIRED_CFG_KEYS = ("embed_dim", "vision_cfg", "text_cfg")


def validate_model_cfg(model_cfg, where: str = "base_model.model_cfg") -> dict:
    """Check that a value looks like an open_clip model config; `where` is a params key or a file."""
    ok = (isinstance(model_cfg, dict) and all(k in model_cfg for k in REQUIRED_CFG_KEYS)
          and isinstance(model_cfg["vision_cfg"], dict) and isinstance(model_cfg["text_cfg"], dict))
    if ok:
        return model_cfg
    given = sorted(model_cfg) if isinstance(model_cfg, dict) else model_cfg
    allowed = "a mapping with keys embed_dim, vision_cfg (mapping), text_cfg (mapping)"
    if where.endswith(".json"):
        raise PipelineError(f"{where}: not an open_clip model config; expected {allowed}")
    raise ParamError(where, given, allowed)


def register_arch(arch: str, model_cfg: dict) -> None:
    """Make `arch` known to open_clip (create_model, get_tokenizer) with this config."""
    validate_model_cfg(model_cfg)
    # open_clip only registers configs from files; its registry keeps the parsed dict,
    # so the file may go away afterwards.
    with tempfile.TemporaryDirectory(prefix="arch-") as tmp:
        path = Path(tmp) / f"{arch}.json"
        path.write_text(json.dumps(model_cfg, indent=2, sort_keys=True))
        open_clip.add_model_config(path)


def build_model(arch: str, model_cfg: dict, seed: int) -> open_clip.CLIP:
    """A freshly initialised open_clip CLIP for `model_cfg`, the same weights for the same seed."""
    register_arch(arch, model_cfg)
    torch.manual_seed(seed)
    model = open_clip.create_model(arch, pretrained=None, device="cpu")
    if not isinstance(model, open_clip.CLIP):
        raise ParamError("base_model.model_cfg", model_cfg, "a plain CLIP config (no custom or HF text tower)")
    return model


def count_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def require_clip(model) -> None:
    """Fail with one line when `model` is not an open_clip.CLIP."""
    if not isinstance(model, open_clip.CLIP):
        raise PipelineError(f"the defenses need an open_clip.CLIP model, got {type(model).__name__} "
                            "(CustomTextCLIP / CoCa towers are not supported)")
