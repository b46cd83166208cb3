"""Every probe of the audit on one model: correct templates per identity and probe.

The table has one row per evaluated identity (in the identities table's order) and one
column per probe: `exact` (the attack as trained against), `name_<family>`,
`prompts_heldout`, `photo_<transform>`, and `photo_unseen` (the attack on photos that neither
the attack nor any defense used, when the splits hold some back). A cell is the number of correct templates (out of
the probe's template count), or -1 where the probe cannot change this person's name
(e.g. no "Last, First" for a one-word name, or a variant the tokenizer reads as the name).
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd
import torch
from torch import Tensor
from tqdm import tqdm

from pipeline.attack.run import encode_idia_texts, image_owners
from pipeline.attack.templates import IDIA_TEMPLATES
from pipeline.audit.probes import class_votes, variant_classes
from pipeline.audit.prompts import HELDOUT_TEMPLATES
from pipeline.audit.transforms import TRANSFORMS, transformed
from pipeline.audit.variants import FAMILIES, candidate_variants, same_for_the_tokenizer, variant
from PIL import Image

from pipeline.core.paths import UNSEEN_PHOTOS
from pipeline.models.image_encoding import encode_images

NOT_APPLICABLE = -1
PROBES_FILE = "probes.csv"
EMBEDDINGS_FILE = "embeddings.safetensors"   # audit_base: every probe's embeddings, by key


def _votes_per_identity(image_emb: Tensor, text_emb: Tensor, texts_of_candidates: list[str],
                        identity_candidate: list[int], photo_identity: Tensor) -> list[int]:
    classes, distinct = variant_classes(texts_of_candidates)
    if len(distinct) != len(texts_of_candidates):
        # collapse the candidates that became identical: their embeddings are identical too
        first_of = {c: i for i, c in reversed(list(enumerate(classes)))}
        text_emb = text_emb[:, [first_of[c] for c in range(len(distinct))]]
    identity_class = torch.tensor([classes[i] for i in identity_candidate])
    return class_votes(image_emb, text_emb, photo_identity, identity_class).sum(dim=1).tolist()


def probe_table(loaded, identities: pd.DataFrame, photos: pd.DataFrame, candidates: pd.DataFrame, *,
                batch_size: int, device, seed: int = 0, root: Path | str = ".",
                families=FAMILIES, transforms=tuple(TRANSFORMS), bf16: bool = False,
                unseen: pd.DataFrame | None = None, reuse: dict[str, Tensor] | None = None,
                keep: dict[str, Tensor] | None = None) -> pd.DataFrame:
    """The probe table of `loaded`. `reuse` maps embedding keys (`texts/<probe>`,
    `photos/<probe>`, see `embedding_keys`) to embeddings this model is known to give (a tower
    the defense did not train gives the base model's); only the others are encoded. Every
    embedding used lands in `keep` when given (what audit_base saves)."""
    reuse = reuse or {}
    names = candidates["name"].astype(str).to_list()
    candidate_index, owner = image_owners(identities, photos, names)
    identity_names = identities["name"].astype(str).to_list()
    identity_candidate = [candidate_index[n] for n in identity_names]
    row_of = {c: i for i, c in enumerate(identity_candidate)}
    photo_identity = torch.tensor([row_of[int(c)] for c in owner])
    model, tok = loaded.model, loaded.tokenizer

    def cached(key: str, encode) -> Tensor:
        emb = reuse[key] if key in reuse else encode()
        if keep is not None:
            keep[key] = emb
        return emb

    def texts(key: str, cands: list[str], templates=IDIA_TEMPLATES) -> Tensor:
        return cached(f"texts/{key}", lambda: encode_idia_texts(model, tok, cands, batch_size, device,
                                                                templates=templates, bf16=bf16))

    def images(key: str, files: list[Path], progress=None) -> Tensor:
        return cached(f"photos/{key}", lambda: encode_images(model, loaded.preprocess, files, batch_size, device,
                                                             progress=progress, bf16=bf16))

    paths = [Path(root) / p for p in photos["path"]]
    image_emb = images("exact", paths, "audit photos")
    exact_text = texts("exact", names)
    table = pd.DataFrame({"name": identity_names})
    table["exact"] = _votes_per_identity(image_emb, exact_text, names, identity_candidate, photo_identity)

    for family in tqdm(families, desc="audit: name variants", unit="family"):
        varied = candidate_variants(names, family, seed)
        col = _votes_per_identity(image_emb, texts(family, varied), varied, identity_candidate, photo_identity)
        for i, name in enumerate(identity_names):
            v = variant(name, family, seed)
            if v is None or same_for_the_tokenizer(v, name, tok):
                col[i] = NOT_APPLICABLE
        table[f"name_{family}"] = col

    held = texts("heldout", names, HELDOUT_TEMPLATES)
    table["prompts_heldout"] = _votes_per_identity(image_emb, held, names, identity_candidate, photo_identity)

    with tempfile.TemporaryDirectory(prefix="audit-photos-") as tmp:
        for name in tqdm(transforms, desc="audit: photo transforms", unit="transform"):
            def transform_and_encode(name=name) -> Tensor:
                out_paths = []
                for i, path in enumerate(paths):
                    out = Path(tmp) / f"{name}-{i:06d}.png"   # PNG: the transform alone changes the pixels
                    with Image.open(path) as img:
                        transformed(img, name).save(out)
                    out_paths.append(out)
                return encode_images(model, loaded.preprocess, out_paths, batch_size, device, progress=None, bf16=bf16)
            emb = cached(f"photos/{name}", transform_and_encode)
            table[f"photo_{name}"] = _votes_per_identity(emb, exact_text, names, identity_candidate, photo_identity)

    if unseen is not None and len(unseen):
        known = set(identity_names)
        unseen = unseen[unseen["name"].isin(known)]
        unseen_owner = torch.tensor([row_of[candidate_index[n]] for n in unseen["name"]])
        emb = images("unseen", [Path(root) / p for p in unseen["path"]], "audit unseen photos")
        col = _votes_per_identity(emb, exact_text, names, identity_candidate, unseen_owner)
        have = set(unseen["name"])
        table["photo_unseen"] = [c if n in have else NOT_APPLICABLE for c, n in zip(col, identity_names)]
    return table


def tower_embeddings(all_embeddings: dict[str, Tensor], tower: str) -> dict[str, Tensor]:
    """The embeddings of one tower (`texts` or `photos`) out of a saved set."""
    return {k: v for k, v in all_embeddings.items() if k.startswith(f"{tower}/")}


def split_tables(splits: Path) -> dict[str, pd.DataFrame | None]:
    """The splits' tables a probe run reads: identities, photos (the attack's), candidates, and
    unseen (photos held back from the attack and the defenses; None for splits made without)."""
    unseen = Path(splits) / UNSEEN_PHOTOS
    return {"identities": pd.read_csv(Path(splits) / "identities.csv"),
            "photos": pd.read_csv(Path(splits) / "idia_photos.csv"),
            "candidates": pd.read_csv(Path(splits) / "candidates.csv"),
            "unseen": pd.read_csv(unseen) if unseen.is_file() else None}


def template_counts() -> dict[str, int]:
    """How many templates each probe column is out of."""
    counts = {"exact": len(IDIA_TEMPLATES)}
    counts.update({f"name_{f}": len(IDIA_TEMPLATES) for f in FAMILIES})
    counts["prompts_heldout"] = len(HELDOUT_TEMPLATES)
    counts.update({f"photo_{t}": len(IDIA_TEMPLATES) for t in TRANSFORMS})
    counts["photo_unseen"] = len(IDIA_TEMPLATES)
    return counts
