"""A defended model against its base: the embedding-similarity metrics on held-out data,
and zero-shot accuracy on every benchmark of `utility_before` with the change."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import torch

from pipeline.attack.run import load_embeddings
from pipeline.defenses.poisoned_captions import sample_poisoned_pairs
from pipeline.evaluation.similarity import image_similarities, text_similarities
from pipeline.evaluation.zeroshot import load_benchmark, zero_shot
from pipeline.models.image_encoding import ImageInput, encode_image_batches, encode_images
from pipeline.models.shards import ShardImages
from pipeline.models.text_encoding import encode_texts


def text_metrics(base, defended, captions, removed, target, batch, device, n) -> dict:
    pairs = sample_poisoned_pairs(captions, removed, target, n, torch.Generator().manual_seed(0))
    trig, tgt = [q.trigger for q in pairs], [q.target for q in pairs]

    def enc(loaded, texts):
        return encode_texts(loaded.model, loaded.tokenizer, texts, batch, device, progress=None,
                            normalize=False)
    return text_similarities(enc(base, captions), enc(defended, captions), enc(defended, trig),
                             enc(defended, tgt), enc(base, trig), enc(base, tgt))


def image_metrics(base, defended, heldout_keys, photos, removed, batch, device, workers: int = 0, *,
                  shards: Path, facescrub_index: Path) -> dict:
    # only the held-out images are decoded: the whole corpus need not fit in memory
    heldout = ShardImages(shards, heldout_keys).all()
    face_paths = [Path(p) for p in pd.read_parquet(facescrub_index)["image"]]
    removed_paths = [Path(p) for p in photos.loc[photos["name"].isin(removed), "path"]]

    def enc_paths(loaded, paths):
        return encode_images(loaded.model, loaded.preprocess, paths, batch, device, progress=None,
                             normalize=False, workers=workers)

    def enc_tensor(loaded, uint8):
        return encode_image_batches(loaded.model.visual, uint8, ImageInput(loaded.model, device), batch).cpu()

    return image_similarities(enc_tensor(base, heldout), enc_tensor(defended, heldout),
                              enc_paths(base, face_paths), enc_paths(defended, face_paths),
                              enc_paths(base, removed_paths), enc_paths(defended, removed_paths))


def zeroshot_against_base(defended, image_trained: bool, batch: int, device, utility_before: Path,
                          bf16: bool = False, workers: int = 0) -> dict:
    """Per benchmark of utility_before: top-1/top-5 of `defended`, the base model's, and the change.
    The benchmark images' embeddings are reused when the image tower was not trained."""
    base_zs = json.loads((utility_before / "accuracy.json").read_text())
    benches = json.loads((utility_before / "benchmarks.json").read_text())
    settings = utility_before / "zeroshot.json"    # written only when max_templates cut the list
    max_templates = json.loads(settings.read_text())["max_templates"] if settings.is_file() else 0
    out = {}
    for bench_name, folder in sorted(benches.items()):
        bench = load_benchmark(folder, max_templates)
        reuse = None if image_trained else load_embeddings(utility_before / f"{bench_name}_images.safetensors")
        acc, _ = zero_shot(defended, bench, batch, device, image_emb=reuse, bf16=bf16, workers=workers)
        out[bench_name] = {**acc, **{f"{k}_base": v for k, v in base_zs[bench_name].items()},
                           **{f"{k}_change": acc[k] - base_zs[bench_name][k] for k in acc}}
    return out


def utility_costs(base, defended, encoder: str, removed: list[str], target: str | None, heldout: pd.DataFrame,
                  photos: pd.DataFrame, *, batch: int, device, n_sim: int, bf16: bool, workers: int,
                  utility_before: Path, shards: Path, facescrub_index: Path) -> dict:
    """What a defended model costs against its base, beyond the attack: zero-shot change on every
    benchmark, and the similarity metrics of each tower it trained (heldout: key, caption)."""
    text_trained, image_trained = encoder in ("text", "both"), encoder in ("image", "both")
    out = {"zeroshot": zeroshot_against_base(defended, image_trained, batch, device, utility_before, bf16, workers)}
    if text_trained:
        out["text_similarity"] = text_metrics(base, defended, list(heldout["caption"]), removed, target,
                                              batch, device, n_sim)
    if image_trained:
        out["image_similarity"] = image_metrics(base, defended, list(heldout["key"]), photos, removed, batch,
                                                device, workers, shards=shards, facescrub_index=facescrub_index)
    return out
