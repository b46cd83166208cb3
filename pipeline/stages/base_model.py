"""Stage base_model: the CLIP that the attack and the defenses start from.

Demo profile (base_model.pretrained == ""): a small open_clip CLIP trained from scratch on the
downloaded LAION-style shards. Paper profile: published open_clip weights (tag or local file).
Either way the output is data/base_model/{model.safetensors,<arch>.json}, loadable by stock open_clip.
"""
from __future__ import annotations

import os

# must be set before CUDA initialises, or cuBLAS cannot be deterministic
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

import torch  # noqa: E402

from pipeline.core.atomic import atomic_dir, write_json  # noqa: E402
from pipeline.models.architecture import count_params  # noqa: E402
from pipeline.models.checkpoint import save_checkpoint  # noqa: E402
from pipeline.models.device import resolve_device, select_attention_kernel  # noqa: E402
from pipeline.models.pretrain import train_from_scratch, write_log  # noqa: E402
from pipeline.models.pretrained import load_pretrained  # noqa: E402
from pipeline.core.params import load_params  # noqa: E402
from pipeline.core.stage_runner import run_stage  # noqa: E402
from pipeline.core.paths import BASE_MODEL, PLOTS, metrics_file  # noqa: E402

SECTION = "base_model"


def train_demo(p: dict, arch: str, device: torch.device):
    return train_from_scratch(p, arch, device, PLOTS / "base_model_loss.csv")


def load_paper(arch: str, pretrained: str, device: torch.device):
    model, model_cfg = load_pretrained(arch, pretrained, device)
    write_log(PLOTS / "base_model_loss.csv", [])  # no training here; an empty curve keeps the stage's outputs the same
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

    if pretrained:
        model, model_cfg, metrics = load_paper(arch, pretrained, device)
    else:
        model, model_cfg, metrics = train_demo(p, arch, device)
    metrics["device"] = device.type
    with atomic_dir(BASE_MODEL) as tmp:
        save_checkpoint(model, tmp, arch, model_cfg)
    write_json(metrics_file("base_model"), metrics)
    print(f"base_model: wrote {BASE_MODEL}/model.safetensors and {arch}.json ({metrics['params_millions']} M params)")


if __name__ == "__main__":
    run_stage(main)
