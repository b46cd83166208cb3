"""Stage base_model: the CLIP that the attack and the defenses start from.

Demo profile (base_model.pretrained == ""): a small open_clip CLIP trained from scratch on the
downloaded LAION-style shards. Paper profile: published open_clip weights (tag or local file).
Either way the output is data/base_model/{model.safetensors,<arch>.json}, loadable by stock open_clip.
"""
from __future__ import annotations

import os
from pathlib import Path

# must be set before CUDA initialises, or cuBLAS cannot be deterministic
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

import open_clip  # noqa: E402
import torch  # noqa: E402

from pipeline.core.atomic import atomic_dir, remove_leftovers, write_json  # noqa: E402
from pipeline.models.architecture import build_model, count_params, validate_model_cfg  # noqa: E402
from pipeline.models.checkpoint import save_checkpoint  # noqa: E402
from pipeline.models.device import resolve_device, select_attention_kernel  # noqa: E402
from pipeline.models.pretrain import PretrainConfig, pretrain, resize_images, write_log  # noqa: E402
from pipeline.models.pretrained import load_pretrained  # noqa: E402
from pipeline.models.shards import read_shards  # noqa: E402
from pipeline.core.params import load_params, require  # noqa: E402
from pipeline.core.stage_runner import run_stage  # noqa: E402

OUT_DIR = Path("data/base_model")
LOSS_PLOT = Path("plots/base_model_loss.csv")
METRICS = Path("metrics/base_model.json")
SECTION = "base_model"


def remove_own_temporaries() -> None:
    """Leftovers of a killed run of this stage; other stages' temporaries are theirs to clean."""
    for path in (OUT_DIR, LOSS_PLOT, METRICS):
        remove_leftovers(path)


def read_config(p: dict) -> PretrainConfig:
    def req(key, kind, **kw):
        return require(p, SECTION, key, kind, **kw)

    return PretrainConfig(
        steps=req("steps", int, low=1),
        batch_size=req("batch_size", int, low=2),
        lr=req("lr", float, low=0.0),
        weight_decay=req("weight_decay", float, low=0.0),
        warmup_fraction=req("warmup_fraction", float, low=0.0, high=1.0),
        grad_clip=req("grad_clip", float, low=0.0),
        shift_px=req("shift_px", int, low=0),
        seed=req("seed", int),
    )


def train_demo(p: dict, arch: str, device: torch.device):
    model_cfg = validate_model_cfg(p.get("model_cfg"), f"{SECTION}.model_cfg")
    cfg = read_config(p)
    shards = Path(p["shards"])
    images, captions, _ = read_shards(shards)
    model = build_model(arch, model_cfg, cfg.seed)
    images = resize_images(images, model.visual.image_size[0])
    metrics = pretrain(model, images, captions, open_clip.get_tokenizer(arch), cfg, device, LOSS_PLOT)
    return model.cpu(), model_cfg, metrics


def load_paper(arch: str, pretrained: str, device: torch.device):
    model, model_cfg = load_pretrained(arch, pretrained, device)
    write_log(LOSS_PLOT, [])  # no training here; an empty curve keeps the stage's outputs the same
    metrics = {"steps": 0, "final_loss": None, "train_seconds": 0.0, "seconds_per_step": 0.0, "samples": 0,
               "params_millions": round(count_params(model) / 1e6, 3), "pretrained": pretrained}
    return model.cpu(), model_cfg, metrics


def main() -> None:
    p = load_params(SECTION)
    arch = p["arch"]  # the schema allows only names usable as a file name
    pretrained = p["pretrained"].strip()
    device = resolve_device(p["device"], key=f"{SECTION}.device")
    select_attention_kernel(device)
    torch.set_num_threads(p["threads"])
    torch.use_deterministic_algorithms(True, warn_only=True)
    remove_own_temporaries()

    if pretrained:
        model, model_cfg, metrics = load_paper(arch, pretrained, device)
    else:
        model, model_cfg, metrics = train_demo(p, arch, device)
    metrics["device"] = device.type
    with atomic_dir(OUT_DIR) as tmp:
        save_checkpoint(model, tmp, arch, model_cfg)
    write_json(METRICS, metrics)
    print(f"base_model: wrote {OUT_DIR}/model.safetensors and {arch}.json ({metrics['params_millions']} M params)")


if __name__ == "__main__":
    run_stage(main)
