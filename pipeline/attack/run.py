"""The whole attack on one model and the split tables, reusable after a defense.

A defense changes one tower; pass the untouched tower's stored embeddings (text_emb or
image_emb) and only the other tower is encoded again.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd
import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

from pipeline.attack.idia import idia_metrics, identity_table, idia_votes
from pipeline.attack.templates import IDIA_TEMPLATES, idia_prompts
from pipeline.core.errors import PipelineError
from pipeline.models.image_encoding import encode_images
from pipeline.models.text_encoding import encode_texts

EMBEDDINGS_KEY = "embeddings"


class IdiaResult(NamedTuple):
    table: pd.DataFrame      # name, member, count, correct_templates, identified
    metrics: dict[str, Any]  # idia_metrics + tau, candidates, templates
    text_emb: Tensor         # [n_templates, n_candidates, d]
    image_emb: Tensor        # [n_photos, d], rows in photos order


def _as_bool(series: pd.Series, what: str) -> pd.Series:
    if series.dtype == bool:
        return series
    mapping = {"true": True, "false": False, "1": True, "0": False}
    text = series.astype(str).str.strip().str.lower()
    if not text.isin(list(mapping)).all():
        bad = series[~text.isin(list(mapping))].iloc[0]
        raise PipelineError(f"{what}: value {bad!r} is not a boolean (expected True/False)")
    return text.map(mapping).astype(bool)


def _check_columns(df: pd.DataFrame, columns: list[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise PipelineError(f"{what} lacks column(s) {', '.join(missing)}; has {', '.join(map(str, df.columns))}")


def _check_unique(names: pd.Series, what: str) -> None:
    dup = names[names.duplicated()]
    if len(dup):
        raise PipelineError(f"{what}: name {dup.iloc[0]!r} appears more than once")



def encode_idia_texts(model, tokenizer, names: list[str], batch_size: int, device,
                      templates: list[str] = IDIA_TEMPLATES, bf16: bool = False) -> Tensor:
    """Embeddings of every (template, candidate name) prompt: [n_templates, n_names, d]."""
    prompts = idia_prompts(names, templates)
    emb = encode_texts(model, tokenizer, prompts, batch_size, device, progress="IDIA prompts", bf16=bf16)
    return emb.reshape(len(templates), len(names), -1)

def image_owners(identities: pd.DataFrame, photos: pd.DataFrame, candidates: list[str]) -> tuple[dict[str, int], Tensor]:
    """Candidate index per name, and per photo the candidate index of its identity; validates the tables."""
    candidate_index = {n: i for i, n in enumerate(candidates)}
    absent = [n for n in identities["name"] if n not in candidate_index]
    if absent:
        raise PipelineError(f"candidate names lack the evaluated identity {absent[0]!r} "
                            f"({len(absent)} missing); every identity's real name must be a candidate")
    known = set(identities["name"])
    strangers = [n for n in photos["name"] if n not in known]
    if strangers:
        raise PipelineError(f"IDIA photos name {strangers[0]!r}, which is not among the identities")
    without = sorted(known - set(photos["name"]))
    if without:
        raise PipelineError(f"identity {without[0]!r} has no IDIA photos ({len(without)} such identities)")
    owner = torch.tensor([candidate_index[n] for n in photos["name"]], dtype=torch.long)
    return candidate_index, owner


def run_idia(loaded, identities: pd.DataFrame, photos: pd.DataFrame, candidates: pd.DataFrame,
             tau: int, batch_size: int, device: torch.device | str, *,
             text_emb: Tensor | None = None, image_emb: Tensor | None = None,
             root: Path | str = ".", bf16: bool = False, workers: int = 0) -> IdiaResult:
    """Run the attack; encodes whichever tower's embeddings were not given.

    loaded: a LoadedModel (model, preprocess, tokenizer; may be None when both embeddings
    are given). identities: name, member, count; photos: name, path (relative to root);
    candidates: name, in candidate order. bf16: autocast the encoders on CUDA (CPU stays fp32);
    workers: DataLoader processes decoding the photos.
    """
    _check_columns(identities, ["name", "member", "count"], "identities table")
    _check_columns(photos, ["name", "path"], "IDIA photos table")
    _check_columns(candidates, ["name"], "candidates table")
    identities = identities.assign(member=_as_bool(identities["member"], "identities table, column member"))
    _check_unique(identities["name"], "identities table")
    _check_unique(candidates["name"], "candidates table")
    names = candidates["name"].astype(str).to_list()
    candidate_index, owner = image_owners(identities, photos, names)

    if text_emb is None:
        text_emb = encode_idia_texts(loaded.model, loaded.tokenizer, names, batch_size, device, bf16=bf16)
    if image_emb is None:
        paths = [Path(root) / p for p in photos["path"]]
        image_emb = encode_images(loaded.model, loaded.preprocess, paths, batch_size, device,
                                  progress="IDIA photos", workers=workers, bf16=bf16)
    want_text = (len(IDIA_TEMPLATES), len(names))
    if tuple(text_emb.shape[:2]) != want_text:
        raise PipelineError(f"text embeddings have shape {tuple(text_emb.shape)}; expected "
                            f"[{want_text[0]}, {want_text[1]}, d] (templates x candidates)")
    if image_emb.shape[0] != len(photos) or image_emb.shape[1] != text_emb.shape[2]:
        raise PipelineError(f"image embeddings have shape {tuple(image_emb.shape)}; expected "
                            f"[{len(photos)}, {text_emb.shape[2]}] (photos x text embedding size)")

    votes = idia_votes(image_emb, text_emb, owner)
    table = identity_table(identities, candidate_index, votes, tau)
    metrics = {**idia_metrics(table), "tau": tau, "candidates": len(names), "templates": len(IDIA_TEMPLATES)}
    return IdiaResult(table=table, metrics=metrics, text_emb=text_emb, image_emb=image_emb)


def save_embeddings(path: Path | str, emb: Tensor) -> None:
    """Store one float32 tensor under the key 'embeddings' (write into an atomic_dir)."""
    save_file({EMBEDDINGS_KEY: emb.detach().to(torch.float32).contiguous().cpu()}, str(path))


def load_embeddings(path: Path | str) -> Tensor:
    """The tensor save_embeddings stored."""
    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"embeddings file not found: {path} (run the idia_before stage first)")
    tensors = load_file(str(path))
    if EMBEDDINGS_KEY not in tensors:
        raise PipelineError(f"{path} holds no tensor named {EMBEDDINGS_KEY!r}")
    return tensors[EMBEDDINGS_KEY]
