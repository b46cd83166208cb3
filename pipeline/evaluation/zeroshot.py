"""Zero-shot classification utility (docs/method.md §4).

A class embedding is the mean of the L2-normalised embeddings of the class name in
every template, normalised again; accuracy is top-k over the benchmark images.
The benchmark folder is ImageNetV2-style: `images/<class_index>/*`, plus
`classnames.txt` and `templates.txt` (the world's; open_clip's ImageNet lists in the
paper profile).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from pipeline.core.errors import PipelineError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}


@dataclass
class Benchmark:
    name: str
    classnames: list[str]
    templates: list[str]
    paths: list[Path]
    labels: torch.Tensor  # [n_images] class indices


def load_benchmark(folder: Path | str, max_templates: int = 0) -> Benchmark:
    """Read an ImageNetV2-style folder; max_templates > 0 keeps only the first N templates
    (a quick check on CPU: 1000 classes x 80 templates is 80,000 prompts)."""
    folder = Path(folder)
    for required in ("classnames.txt", "templates.txt", "images"):
        if not (folder / required).exists():
            raise PipelineError(f"zero-shot benchmark {folder} lacks {required} "
                                "(expected classnames.txt, templates.txt, images/<class_index>/)")
    classnames = [l.strip() for l in (folder / "classnames.txt").read_text().splitlines() if l.strip()]
    templates = [l.rstrip("\n") for l in (folder / "templates.txt").read_text().splitlines() if l.strip()]
    if max_templates > 0:
        templates = templates[:max_templates]
    paths, labels = [], []
    for class_dir in sorted((folder / "images").iterdir(), key=lambda p: int(p.name)):
        idx = int(class_dir.name)
        if idx >= len(classnames):
            raise PipelineError(f"{class_dir}: class index {idx} but classnames.txt has {len(classnames)} lines")
        for img in sorted(class_dir.iterdir()):
            if img.suffix.lower() in IMAGE_SUFFIXES:
                paths.append(img)
                labels.append(idx)
    if not paths:
        raise PipelineError(f"zero-shot benchmark {folder} has no images")
    return Benchmark(folder.name, classnames, templates, paths, torch.tensor(labels))


def class_embeddings(encode_texts: Callable[[list[str]], torch.Tensor],
                     classnames: list[str], templates: list[str]) -> torch.Tensor:
    """[n_classes, d]: per class, the renormalised mean of normalised template embeddings."""
    prompts = [t.replace("{}", c) for c in classnames for t in templates]
    emb = torch.nn.functional.normalize(encode_texts(prompts).float(), dim=-1)
    emb = emb.view(len(classnames), len(templates), -1).mean(dim=1)
    return torch.nn.functional.normalize(emb, dim=-1)


def topk_accuracy(image_emb: torch.Tensor, labels: torch.Tensor, class_emb: torch.Tensor,
                  ks: tuple[int, ...] = (1, 5)) -> dict[str, float]:
    """Share of images whose true class is among the k most similar class embeddings."""
    logits = image_emb.float() @ class_emb.float().T
    ranked = logits.argsort(dim=1, descending=True)
    out = {}
    for k in ks:
        k_eff = min(k, class_emb.shape[0])
        hits = (ranked[:, :k_eff] == labels[:, None]).any(dim=1)
        out[f"top{k}"] = float(hits.float().mean())
    return out


def zero_shot(loaded, bench: Benchmark, batch_size: int, device,
              image_emb: torch.Tensor | None = None, *, bf16: bool = False,
              workers: int = 0) -> tuple[dict[str, float], torch.Tensor]:
    """Top-1/top-5 of a model on a benchmark; pass image_emb to reuse an untouched image tower.

    bf16: autocast the encoders on CUDA (CPU stays fp32); workers: DataLoader processes
    decoding the benchmark images."""
    # Imported here: the encoders pull in open_clip, which the pure helpers above avoid.
    from pipeline.models.image_encoding import encode_images
    from pipeline.models.text_encoding import encode_texts

    classes = class_embeddings(
        lambda texts: encode_texts(loaded.model, loaded.tokenizer, texts, batch_size, device,
                                   progress=f"{bench.name} prompts", bf16=bf16),
        bench.classnames, bench.templates)
    if image_emb is None:
        image_emb = encode_images(loaded.model, loaded.preprocess, bench.paths, batch_size, device,
                                  progress=f"{bench.name} images", workers=workers, bf16=bf16)
    return topk_accuracy(image_emb, bench.labels, classes), image_emb
