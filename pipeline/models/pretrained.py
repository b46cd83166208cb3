"""Published open_clip weights (the paper profile): by tag when reachable or cached, else a local file."""
from __future__ import annotations

import os
import socket
import sys
import threading
from copy import deepcopy
from pathlib import Path
from urllib.parse import urlparse

import open_clip
import torch
from open_clip.constants import HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME
from open_clip.transform import PreprocessCfg

from pipeline.core.errors import ParamError, PipelineError

PROBE_TIMEOUT_S = 2.0
HF_HOST = "huggingface.co"
CHECKPOINT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


def _has_hf_hub() -> bool:
    try:
        import huggingface_hub  # noqa: F401
    except ImportError:
        return False
    return True


def host_reachable(host: str, port: int = 443, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """One quick TCP connect: offline machines fail here in seconds instead of in download retries.

    Runs in a daemon thread because a DNS lookup does not honour the socket timeout.
    """
    result: list[bool] = []

    def connect() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    worker = threading.Thread(target=connect, daemon=True)
    worker.start()
    worker.join(timeout)
    return bool(result and result[0])


def _offline_requested() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _hf_repo_and_file(hub: str) -> tuple[str, str]:
    """open_clip's 'org/repo/file' or 'org/repo/' (default file) notation, split."""
    if hub.endswith("/"):
        return hub.rstrip("/"), ""
    repo_id, filename = os.path.split(hub)
    return repo_id, filename


def _download_source(tag_cfg: dict) -> tuple[str, str]:
    """(host, URL) of where open_clip would fetch these weights from."""
    if tag_cfg.get("hf_hub") and _has_hf_hub():
        repo_id, filename = _hf_repo_and_file(tag_cfg["hf_hub"])
        return HF_HOST, f"https://{HF_HOST}/{repo_id}/resolve/main/{filename or HF_WEIGHTS_NAME}"
    url = tag_cfg.get("url", "")
    return urlparse(url).hostname or HF_HOST, url


def cached_weights(tag_cfg: dict) -> str | None:
    """A copy of the tag's weights already on disk (open_clip's URL cache or the HF cache), if any."""
    url = tag_cfg.get("url", "")
    if url:
        local = Path(os.path.expanduser("~/.cache/clip")) / os.path.basename(url)
        if local.is_file():
            return str(local)
    hub = tag_cfg.get("hf_hub", "")
    if hub and _has_hf_hub():
        from huggingface_hub import try_to_load_from_cache
        repo_id, filename = _hf_repo_and_file(hub)
        names = [filename] if filename else [HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME]
        for name in names:
            hit = try_to_load_from_cache(repo_id, name)
            if isinstance(hit, str) and os.path.isfile(hit):
                return hit
    return None


def looks_like_path(pretrained: str) -> bool:
    return os.sep in pretrained or pretrained.endswith(CHECKPOINT_SUFFIXES) or Path(pretrained).exists()


def builtin_config(arch: str) -> dict:
    model_cfg = open_clip.get_model_config(arch)
    if model_cfg is None:
        raise ParamError("base_model.arch", arch, "an open_clip architecture when base_model.pretrained is set "
                         "(see open_clip.list_models(), e.g. 'ViT-B-32')")
    return deepcopy(model_cfg)


def resolve_weights(arch: str, pretrained: str) -> tuple[str, dict]:
    """(checkpoint file, tag config) for a tag or a local checkpoint path; fails fast when offline."""
    if looks_like_path(pretrained):
        path = Path(pretrained).expanduser()
        if not path.is_file():
            raise ParamError("base_model.pretrained", pretrained, "an existing checkpoint file or an open_clip tag")
        return str(path), {}
    tag_cfg = open_clip.get_pretrained_cfg(arch, pretrained)
    if not tag_cfg:
        tags = open_clip.list_pretrained_tags_by_model(arch)
        raise ParamError("base_model.pretrained", pretrained,
                         f"a local checkpoint path or a tag of {arch}: {', '.join(tags) or '(none)'}")
    cached = cached_weights(tag_cfg)
    if cached:
        return cached, tag_cfg
    host, source = _download_source(tag_cfg)
    if _offline_requested() or not host_reachable(host):
        os.environ["HF_HUB_OFFLINE"] = "1"
        raise PipelineError(
            f"cannot fetch the {arch} '{pretrained}' weights: {host} is not reachable (offline); "
            f"download {source} on a connected machine and set base_model.pretrained to the local file path")
    try:
        return open_clip.download_pretrained(tag_cfg), tag_cfg
    except Exception as exc:  # any network or hub failure becomes one line for the user
        raise PipelineError(f"downloading the {arch} '{pretrained}' weights from {source} failed: {exc}; "
                            "set base_model.pretrained to a local checkpoint path instead") from exc


def load_pretrained(arch: str, pretrained: str, device: torch.device) -> tuple[open_clip.CLIP, dict]:
    """The published model and the open_clip config that reproduces it when saved with save_checkpoint."""
    model_cfg = builtin_config(arch)
    weights, tag_cfg = resolve_weights(arch, pretrained)
    if tag_cfg.get("quick_gelu"):
        # these weights were trained with QuickGELU; the saved config must say so or reloads silently differ
        model_cfg["quick_gelu"] = True
    default_pp = PreprocessCfg()
    for key in ("mean", "std"):
        if key in tag_cfg and tuple(tag_cfg[key]) != tuple(getattr(default_pp, key)):
            print(f"warning: {arch} '{pretrained}' uses image {key} {tag_cfg[key]}, but a file checkpoint "
                  f"reloads with open_clip's default {getattr(default_pp, key)}", file=sys.stderr)
    try:
        model = open_clip.create_model(arch, pretrained=weights, device=device,
                                       force_quick_gelu=bool(model_cfg.get("quick_gelu", False)))
    except (RuntimeError, ValueError, OSError, KeyError) as exc:
        raise PipelineError(f"{weights} is not a valid {arch} checkpoint: {str(exc).splitlines()[0][:300]}") from exc
    return model.eval(), model_cfg
