"""Checkpoints as stock open_clip reads them: <dir>/model.safetensors + <dir>/<arch>.json."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import open_clip
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from pipeline.core.errors import PipelineError
from pipeline.models.architecture import validate_model_cfg
from pipeline.core.safepaths import check_name

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
    check_name(arch, "base_model.arch")  # becomes <arch>.json
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


def rebuild_hint(model_dir: Path) -> str:
    """What to run to rewrite a checkpoint folder: its dvc.yaml stage, from the folder's name."""
    model_dir = Path(model_dir)
    stage = None
    if model_dir.name == "base_model" and model_dir.parent.name == "data":
        stage = "base_model"
    elif model_dir.parent.name == "defended":
        match = re.fullmatch(r"(text|image|both)-k(\d+)", model_dir.name)
        if match:
            kind, k = match.groups()
            stage = {"text": "defend_text", "image": "defend_image", "both": "combine"}[kind] + f"@{k}"
    # -s: a plain -f would force every upstream stage too (downloads included)
    if stage is None:
        return f"rebuild it with `dvc repro -f -s <stage>` for the stage that writes {model_dir}"
    return f"rebuild it with `dvc repro -f -s {stage}`"


def _short(exc: BaseException, limit: int = 200) -> str:
    """An error's text on one line (torch's state_dict errors run over many)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()] or [type(exc).__name__]
    text = " ".join(lines[:2]) if lines[0].endswith(":") else lines[0]
    return text if len(text) <= limit else text[:limit - 3] + "..."


def load_model(model_dir: Path, device: str | torch.device = "cpu") -> LoadedModel:
    """Load a checkpoint written by save_checkpoint with stock open_clip, in eval mode.

    A corrupt or truncated file is a one-line PipelineError naming it and the rebuild command.
    """
    model_dir = Path(model_dir)
    weights = model_dir / WEIGHTS_FILE
    if not weights.is_file():
        raise PipelineError(f"{weights} not found (run the stage that writes {model_dir} first)")
    config = find_config(model_dir)
    arch = config.stem
    try:
        model_cfg = json.loads(config.read_text())
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise PipelineError(f"{config}: corrupt model config ({_short(exc)}); "
                            f"{rebuild_hint(model_dir)}") from None
    try:
        validate_model_cfg(model_cfg, where=str(config))
    except PipelineError as exc:
        raise PipelineError(f"{exc}; {rebuild_hint(model_dir)}") from None
    try:
        # the header check is cheap and names truncation ("file not fully covered") before open_clip
        with safe_open(str(weights), framework="pt"):
            pass
    except (SafetensorError, OSError) as exc:
        raise PipelineError(f"{weights}: corrupt or truncated checkpoint ({_short(exc)}); "
                            f"{rebuild_hint(model_dir)}") from None
    open_clip.add_model_config(config)
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(arch, pretrained=str(weights),
                                                                     device=device)
    except SafetensorError as exc:
        raise PipelineError(f"{weights}: corrupt or truncated checkpoint ({_short(exc)}); "
                            f"{rebuild_hint(model_dir)}") from None
    except RuntimeError as exc:
        # only torch's state_dict mismatch: other RuntimeErrors (CUDA out of memory) are not the file's
        if not str(exc).startswith("Error(s) in loading state_dict"):
            raise
        raise PipelineError(f"{weights}: does not match its config {config.name} ({_short(exc)}); "
                            f"{rebuild_hint(model_dir)}") from None
    model.eval()
    return LoadedModel(model=model, preprocess=preprocess, tokenizer=open_clip.get_tokenizer(arch),
                       arch=arch, model_cfg=model_cfg)
