"""Models layer: devices, checkpoints stock open_clip can load, shards, pretraining, the base_model stage."""
from __future__ import annotations

import csv
import io
import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch
import webdataset as wds
import yaml
from PIL import Image

from pipeline.core.errors import ParamError
from pipeline.models.architecture import build_model
from pipeline.models.checkpoint import load_model, save_checkpoint
from pipeline.models.device import resolve_device
from pipeline.models.precision import autocast, bf16_active
from pipeline.models.pretrain import PretrainConfig, lr_at, pretrain, weight_decay_groups
from pipeline.models.pretrained import load_pretrained, resolve_weights
from pipeline.models.shards import read_shards

REPO = Path(__file__).resolve().parents[1]
TINY_CFG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}
COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220), "yellow": (230, 220, 30),
           "white": (240, 240, 240), "black": (15, 15, 15), "purple": (140, 30, 160), "orange": (240, 140, 20)}
_arch_ids = itertools.count()


def fresh_arch() -> str:
    """A new arch name per test: open_clip's config registry is process-global."""
    return f"test-tiny-{os.getpid()}-{next(_arch_ids)}"


def toy_data(n: int = 64, size: int = 32, seed: int = 0) -> tuple[torch.Tensor, list[str]]:
    """Flat colour images with light noise, captioned with their colour: learnable in a few steps."""
    rng = np.random.default_rng(seed)
    names = list(COLOURS)
    images, captions = [], []
    for i in range(n):
        name = names[i % len(names)]
        img = np.clip(np.array(COLOURS[name]) + rng.normal(0, 12, (size, size, 3)), 0, 255).astype(np.uint8)
        images.append(img)
        captions.append(f"a {name} picture")
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous(), captions


def write_shards(shard_dir: Path, images: torch.Tensor, captions: list[str], per_shard: int) -> list[str]:
    """Shards laid out like img2dataset's (key.jpg, key.txt, key.json); written in reverse key order."""
    shard_dir.mkdir(parents=True, exist_ok=True)
    keys = [f"{i:09d}" for i in range(len(captions))]
    order = list(reversed(range(len(captions))))
    for s in range(0, len(order), per_shard):
        with wds.TarWriter(str(shard_dir / f"{s // per_shard:05d}.tar")) as sink:
            for i in order[s:s + per_shard]:
                buf = io.BytesIO()
                Image.fromarray(images[i].permute(1, 2, 0).numpy()).save(buf, format="JPEG", quality=95)
                sink.write({"__key__": keys[i], "jpg": buf.getvalue(), "txt": captions[i],
                            "json": json.dumps({"key": keys[i], "caption": captions[i]}).encode()})
    return keys


def test_resolve_device_accepts_known_names_and_rejects_others():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    for bad in ("gpu", "CUDA", "", "cuda:0"):
        with pytest.raises(ParamError, match="device"):
            resolve_device(bad)
    if not torch.cuda.is_available():
        with pytest.raises(ParamError, match="without a CUDA GPU"):
            resolve_device("cuda")


def test_precision_policy_cpu_is_always_fp32():
    a = torch.ones(4, 4)
    for bf16 in (True, False):
        for purpose in ("train", "measure"):
            with autocast("cpu", bf16, purpose):
                assert (a @ a).dtype == torch.float32
            assert not bf16_active("cpu", bf16, purpose)
    with pytest.raises(ValueError, match="purpose"):
        bf16_active("cpu", True, "inference")


def test_checkpoint_reloads_with_stock_open_clip_and_same_embeddings(tmp_path):
    arch = fresh_arch()
    model = build_model(arch, TINY_CFG, seed=3).eval()
    save_checkpoint(model, tmp_path / "a", arch, TINY_CFG)
    save_checkpoint(model, tmp_path / "b", arch, TINY_CFG)
    assert (tmp_path / "a/model.safetensors").read_bytes() == (tmp_path / "b/model.safetensors").read_bytes()
    assert json.loads((tmp_path / f"a/{arch}.json").read_text()) == TINY_CFG

    # exactly what another tool would do with stock open_clip
    open_clip.add_model_config(tmp_path / f"a/{arch}.json")
    stock, _, _ = open_clip.create_model_and_transforms(arch, pretrained=str(tmp_path / "a/model.safetensors"))
    stock.eval()
    images, captions = toy_data(8)
    x = images.float() / 255.0
    tokens = open_clip.get_tokenizer(arch)(captions)
    assert tokens.shape == (8, 16)
    with torch.no_grad():
        assert torch.equal(model.encode_image(x), stock.encode_image(x))
        assert torch.equal(model.encode_text(tokens), stock.encode_text(tokens))

    loaded = load_model(tmp_path / "a")
    assert loaded.arch == arch and loaded.model_cfg == TINY_CFG and not loaded.model.training
    with torch.no_grad():
        assert torch.equal(model.encode_text(tokens), loaded.model.encode_text(loaded.tokenizer(captions)))
    pixel = loaded.preprocess(Image.fromarray(images[0].permute(1, 2, 0).numpy()))
    assert pixel.shape == (3, 32, 32)


def test_load_model_names_a_folder_without_one_config(tmp_path):
    arch = fresh_arch()
    save_checkpoint(build_model(arch, TINY_CFG, seed=0), tmp_path, arch, TINY_CFG)
    (tmp_path / "other.json").write_text("{}")
    with pytest.raises(Exception, match="exactly one"):
        load_model(tmp_path)


def test_read_shards_sorts_by_key_and_skips_incomplete_samples(tmp_path):
    images, captions = toy_data(10)
    keys = write_shards(tmp_path / "shards", images, captions, per_shard=4)
    with wds.TarWriter(str(tmp_path / "shards/99999.tar")) as sink:
        sink.write({"__key__": "000000050", "txt": "caption without image"})
    got_images, got_captions, got_keys = read_shards(tmp_path / "shards")
    assert got_keys == keys
    assert got_captions == captions
    assert got_images.dtype == torch.uint8 and got_images.shape == (10, 3, 32, 32)
    # JPEG is lossy; the colour must survive
    assert (got_images.float() - images.float()).abs().mean() < 8


def test_read_shards_fails_clearly_without_shards(tmp_path):
    with pytest.raises(Exception, match="no webdataset shards"):
        read_shards(tmp_path)


def test_weight_decay_only_on_matrices():
    model = build_model(fresh_arch(), TINY_CFG, seed=0)
    decay, rest = weight_decay_groups(model, 0.1)
    assert decay["weight_decay"] == 0.1 and rest["weight_decay"] == 0.0
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = {names[id(p)] for p in decay["params"]}
    kept = {names[id(p)] for p in rest["params"]}
    assert len(decayed) + len(kept) == len(names)
    for name in ("logit_scale", "positional_embedding", "token_embedding.weight", "visual.class_embedding",
                 "visual.positional_embedding", "ln_final.weight", "ln_final.bias",
                 "transformer.resblocks.0.attn.in_proj_bias", "visual.ln_post.weight"):
        assert name in kept, name
    for name in ("visual.conv1.weight", "transformer.resblocks.0.attn.in_proj_weight",
                 "transformer.resblocks.0.mlp.c_fc.weight", "text_projection", "visual.proj"):
        assert name in decayed, name


def test_lr_schedule_warms_up_then_decays_to_zero():
    cfg = PretrainConfig(steps=100, lr=1e-3, warmup_fraction=0.05)
    lrs = [lr_at(s, cfg) for s in range(100)]
    assert lrs[0] == pytest.approx(2e-4) and lrs[4] == pytest.approx(1e-3) and lrs[5] == pytest.approx(1e-3)
    assert all(a >= b for a, b in zip(lrs[5:], lrs[6:]))
    assert lrs[-1] < 1e-6


def _train(tmp_path: Path, name: str, steps: int = 25) -> tuple[list[dict], dict, dict]:
    arch = fresh_arch()
    model = build_model(arch, TINY_CFG, seed=0)
    images, captions = toy_data(64)
    cfg = PretrainConfig(steps=steps, batch_size=16, lr=2e-3, warmup_fraction=0.1, shift_px=2, seed=7)
    log = tmp_path / f"{name}.csv"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # bit-identical results need the same thread count in both runs
    try:
        metrics = pretrain(model, images, captions, open_clip.get_tokenizer(arch), cfg, torch.device("cpu"), log)
    finally:
        torch.set_num_threads(threads)
    with log.open() as fh:
        rows = list(csv.DictReader(fh))
    return rows, {k: v.clone() for k, v in model.state_dict().items()}, metrics


def test_pretrain_lowers_the_loss_and_is_deterministic(tmp_path):
    rows_a, weights_a, metrics = _train(tmp_path, "a")
    rows_b, weights_b, _ = _train(tmp_path, "b")
    assert [r["step"] for r in rows_a] == [str(i) for i in range(25)]
    losses = [float(r["loss"]) for r in rows_a]
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 0.3, losses
    assert rows_a == rows_b
    assert weights_a.keys() == weights_b.keys()
    assert all(torch.equal(weights_a[k], weights_b[k]) for k in weights_a)
    assert metrics["steps"] == 25 and metrics["samples"] == 64
    assert metrics["final_loss"] == pytest.approx(np.mean(losses[-20:]), abs=1e-5)
    assert metrics["params_millions"] > 1.5  # the 49k-token embedding alone is 1.58 M


def test_pretrain_refuses_a_batch_larger_than_the_data():
    arch = fresh_arch()
    images, captions = toy_data(8)
    with pytest.raises(Exception, match="batch_size"):
        pretrain(build_model(arch, TINY_CFG, seed=0), images, captions, open_clip.get_tokenizer(arch),
                 PretrainConfig(steps=1, batch_size=16), torch.device("cpu"))


def test_local_checkpoint_file_is_loaded_and_a_missing_one_is_named(tmp_path):
    arch = fresh_arch()
    model = build_model(arch, TINY_CFG, seed=5)
    save_checkpoint(model, tmp_path, arch, TINY_CFG)
    loaded, cfg = load_pretrained(arch, str(tmp_path / "model.safetensors"), torch.device("cpu"))
    assert cfg == TINY_CFG
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in model.state_dict().items())
    with pytest.raises(ParamError, match="base_model.pretrained"):
        resolve_weights(arch, str(tmp_path / "missing.safetensors"))
    with pytest.raises(ParamError, match="tag of ViT-B-32"):
        resolve_weights("ViT-B-32", "no-such-tag")


def _run_stage(workdir: Path, params: dict, **env) -> tuple[subprocess.CompletedProcess, float]:
    """Run the stage as `python -m` would, in workdir; stdout ends with the seconds main() took."""
    (workdir / "params.yaml").write_text(yaml.safe_dump(params))
    full_env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "HOME": str(workdir),
                "HF_HOME": str(workdir / "hf"), **env}
    # main() is timed apart from the imports: torch + open_clip take 3-7 s to import on a shared CPU
    code = ("import sys, time\n"
            "from pipeline.stages import base_model\n"
            "from pipeline.core.stage_runner import run_stage\n"
            "start = time.perf_counter()\n"
            "try:\n    run_stage(base_model.main)\n"
            "finally:\n    print(f'main_seconds={time.perf_counter() - start:.3f}')\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=workdir, env=full_env,
                          capture_output=True, text=True, timeout=120)
    return proc, float(proc.stdout.strip().splitlines()[-1].split("=")[1])


def test_paper_profile_offline_fails_fast_with_one_line(tmp_path):
    params = {"base_model": {"arch": "ViT-B-32", "pretrained": "laion400m_e32", "device": "cpu", "threads": 1}}
    start = time.perf_counter()
    proc, main_seconds = _run_stage(tmp_path, params)
    wall = time.perf_counter() - start
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: cannot fetch the ViT-B-32 'laion400m_e32' weights")
    assert "base_model.pretrained" in lines[0] and "local file path" in lines[0]
    assert main_seconds < 3, main_seconds  # no network waits or retries
    assert wall < 20, wall  # typically 4-6 s; the slack is for the CPU shared with other jobs
    assert not (tmp_path / "data/base_model").exists()


def test_demo_stage_writes_a_loadable_model_plot_and_metrics(tmp_path):
    images, captions = toy_data(24)
    write_shards(tmp_path / "shards", images, captions, per_shard=10)
    arch = "stage-tiny"
    params = {"base_model": {"arch": arch, "pretrained": "", "shards": "shards", "model_cfg": TINY_CFG, "seed": 0,
                             "steps": 3, "batch_size": 8, "lr": 1e-3, "weight_decay": 0.1,
                             "warmup_fraction": 0.05, "grad_clip": 1.0, "shift_px": 2, "device": "cpu",
                             "threads": 1}}
    proc, _ = _run_stage(tmp_path, params)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (tmp_path / "data/base_model").iterdir()) == sorted([f"{arch}.json", "model.safetensors"])
    with (tmp_path / "plots/base_model_loss.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [r["step"] for r in rows] == ["0", "1", "2"] and set(rows[0]) == {"step", "loss", "lr", "logit_scale"}
    metrics = json.loads((tmp_path / "metrics/base_model.json").read_text())
    assert metrics["steps"] == 3 and metrics["samples"] == 24
    assert {"final_loss", "train_seconds", "seconds_per_step", "params_millions"} <= set(metrics)
    loaded = load_model(tmp_path / "data/base_model")
    assert loaded.arch == arch and loaded.model.visual.image_size == (32, 32)


def test_stage_entry_point_rejects_a_bad_device_in_one_line(tmp_path):
    params = {"base_model": {"arch": "ViT-B-32", "pretrained": "laion400m_e32", "device": "tpu", "threads": 1}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    proc = subprocess.run([sys.executable, "-m", "pipeline.stages.base_model"], cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"},
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("error: params.yaml: base_model.device = 'tpu' is not allowed; "
                                   "expected one of 'auto', 'cpu', 'cuda'")


def test_tag_weights_come_from_the_cache_or_fail_fast_offline(tmp_path, monkeypatch):
    import pipeline.models.pretrained as pretrained_mod

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(pretrained_mod, "_has_hf_hub", lambda: False)  # only open_clip's URL cache
    monkeypatch.setattr(pretrained_mod, "host_reachable", lambda host, **kw: False)
    start = time.perf_counter()
    with pytest.raises(Exception, match="github.com is not reachable"):
        resolve_weights("ViT-B-32", "laion400m_e32")
    assert time.perf_counter() - start < 1
    url = open_clip.get_pretrained_cfg("ViT-B-32", "laion400m_e32")["url"]
    cached = tmp_path / ".cache/clip" / url.rsplit("/", 1)[1]
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"stand-in")
    path, tag_cfg = resolve_weights("ViT-B-32", "laion400m_e32")
    assert path == str(cached) and tag_cfg["quick_gelu"] is True


def test_demo_stage_without_shards_fails_and_leaves_no_output(tmp_path, monkeypatch):
    from pipeline.core.errors import PipelineError
    from pipeline.stages import base_model as stage

    params = {"base_model": {"arch": fresh_arch(), "pretrained": "", "shards": "missing", "model_cfg": TINY_CFG,
                             "seed": 0, "steps": 1, "batch_size": 2, "lr": 1e-3, "weight_decay": 0.1,
                             "warmup_fraction": 0.0, "grad_clip": 1.0, "shift_px": 0, "device": "cpu",
                             "threads": torch.get_num_threads()}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    deterministic = torch.are_deterministic_algorithms_enabled()
    try:
        with pytest.raises(PipelineError, match="no webdataset shards"):
            stage.main()
    finally:
        torch.use_deterministic_algorithms(deterministic)
    assert not (tmp_path / "data").exists() and not (tmp_path / "metrics").exists()
