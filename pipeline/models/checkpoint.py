"""Checkpoints as stock open_clip reads them: <dir>/model.safetensors + <dir>/<arch>.json."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import open_clip
import torch
from safetensors.torch import save_file

from pipeline.errors import PipelineError
from pipeline.models.architecture import validate_model_cfg

WEIGHTS_FILE = "model.safetensors"


@dataclass
class LoadedModel:
    model: open_clip.CLIP          # in eval mode
    preprocess: Callable           # open_clip's validation transform (PIL image -> tensor)
    tokenizer: Callable            # open_clip.get_tokenizer(arch)
    arch: str
    model_cfg: dict


def save_checkpoint(model: open_clip.CLIP, out_dir: Path, arch: str, model_cfg: dict) -> None:
    """Write model.safetensors and <arch>.json into out_dir (same weights -> same bytes)."""
    validate_model_cfg(model_cfg, where=f"{arch}.json")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # clone: safetensors refuses tensors that share storage, and views must be made contiguous
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in sorted(model.state_dict().items())}
    # one metadata entry only: safetensors writes metadata from a hash map, so several keys come out
    # in a random order and the file bytes would differ from run to run
    save_file(state, str(out_dir / WEIGHTS_FILE), metadata={"format": "pt"})
    (out_dir / f"{arch}.json").write_text(json.dumps(model_cfg, indent=2, sort_keys=True) + "\n")


def find_config(model_dir: Path) -> Path:
    """The single open_clip config (*.json) of a checkpoint folder."""
    configs = sorted(Path(model_dir).glob("*.json"))
    if len(configs) != 1:
        raise PipelineError(f"{model_dir}: expected exactly one <arch>.json model config, "
                            f"found {len(configs)} ({', '.join(p.name for p in configs) or 'none'})")
    return configs[0]


def load_model(model_dir: Path, device: str | torch.device = "cpu") -> LoadedModel:
    """Load a checkpoint written by save_checkpoint with stock open_clip, in eval mode."""
    model_dir = Path(model_dir)
    weights = model_dir / WEIGHTS_FILE
    if not weights.is_file():
        raise PipelineError(f"{weights} not found (run the stage that writes {model_dir} first)")
    config = find_config(model_dir)
    arch = config.stem
    model_cfg = json.loads(config.read_text())
    validate_model_cfg(model_cfg, where=str(config))
    open_clip.add_model_config(config)
    model, _, preprocess = open_clip.create_model_and_transforms(arch, pretrained=str(weights), device=device)
    model.eval()
    return LoadedModel(model=model, preprocess=preprocess, tokenizer=open_clip.get_tokenizer(arch),
                       arch=arch, model_cfg=model_cfg)
