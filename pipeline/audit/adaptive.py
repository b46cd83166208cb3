"""The adaptive attackers of docs/method.md §7 as functions: the exact attack as a probe on the
removed people, a learned trigger token per removed person, and few-shot relearning (steps until
the attack finds a person again). Used by the `adaptive` stage and scripts/relearning_trial.py.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from pipeline.attack.idia import idia_votes
from pipeline.attack.run import encode_idia_texts, image_owners, run_idia
from pipeline.audit.inversion import LEARN_TEMPLATES, InversionConfig, correct_with_token, learn_token, token_templates
from pipeline.audit.relearn import RelearnConfig, relearn
from pipeline.data.images import stack_uint8
from pipeline.models.image_encoding import encode_images


def attack_on_removed(loaded, removed: list[str], tables: dict, tau: int, batch: int, device):
    """The exact attack as a probe: TPR and mean correct templates on `removed`, TPR on the kept members."""
    def probe(model) -> dict:
        result = run_idia(dataclasses.replace(loaded, model=model), tables["identities"], tables["photos"],
                          tables["candidates"], tau, batch, device)
        t = result.table.set_index("name")
        members = t[t["member"]]
        gone, kept = members.loc[members.index.isin(removed)], members.loc[~members.index.isin(removed)]
        return {"tpr_removed": round(float(gone["identified"].mean()), 4),
                "identified_removed": int(gone["identified"].sum()),
                "correct_templates_removed": round(float(gone["correct_templates"].mean()), 3),
                "tpr_kept": round(float(kept["identified"].mean()), 4) if len(kept) else None}
    return probe


def inversion_rows(loaded, removed: list[str], tables: dict, cfg: InversionConfig, tau: int, batch: int,
                   device) -> list[dict]:
    """Per removed person: correct templates of the attack with their name and with a learned token."""
    names = tables["candidates"]["name"].astype(str).to_list()
    index, owner = image_owners(tables["identities"], tables["photos"], names)
    model, tok, prep = loaded.model, loaded.tokenizer, loaded.preprocess
    image_emb = encode_images(model, prep, list(map(Path, tables["photos"]["path"])), batch, device, progress=None)
    text_emb = encode_idia_texts(model, tok, names, batch, device)
    triggers = tables["triggers"]
    rows = []
    for person in removed:
        photos = [Path(p) for p in triggers.loc[triggers["name"] == person, "path"]]
        if not photos:
            rows.append({"name": person, "trigger_photos": 0, "correct_name": None, "correct_token": None})
            continue
        token = learn_token(model, tok, encode_images(model, prep, photos, batch, device, progress=None), cfg, device)
        with_token = correct_with_token(image_emb, text_emb, owner, index[person],
                                        token_templates(model, tok, token, device))
        with_name = correct_with_token(image_emb, text_emb, owner, index[person], text_emb[:, index[person]])
        rows.append({"name": person, "trigger_photos": len(photos), "correct_name": with_name,
                     "correct_token": with_token, "identified_token": with_token >= tau})
    return rows


def few_shot_rows(loaded, removed: list[str], tables: dict, images, captions: list[str], relearn_cfg: RelearnConfig,
                  shots: list[int], every: int, max_steps: int, tau: int, batch: int, device) -> list[dict]:
    """Per removed person and n in `shots`: fine-tune a copy with n pairs of them ("a photo of
    <name>." with a trigger-half photo) in every batch beside clean pairs; the first checkpoint
    (every `every` steps, up to `max_steps`) at which the attack identifies them again."""
    names = tables["candidates"]["name"].astype(str).to_list()
    index = {n: i for i, n in enumerate(names)}
    photos, triggers = tables["photos"], tables["triggers"]
    side = images.shape[-1]
    cfg = dataclasses.replace(relearn_cfg, checkpoints=tuple(range(every, max_steps + 1, every)))
    rows = []
    for person in removed:
        attack_paths = [Path(p) for p in photos.loc[photos["name"] == person, "path"]]
        owner = torch.full((len(attack_paths),), index[person], dtype=torch.long)
        trigger_paths = list(triggers.loc[triggers["name"] == person, "path"])

        def probe(model, attack_paths=attack_paths, owner=owner, person=person) -> dict:
            img = encode_images(model, loaded.preprocess, attack_paths, batch, device, progress=None)
            txt = encode_idia_texts(model, loaded.tokenizer, names, batch, device)
            votes = idia_votes(img, txt, owner)
            return {"correct": int(dict(zip(votes.owners.tolist(), votes.correct_templates.tolist())).get(index[person], 0))}

        for n in shots:
            n_used = min(n, len(trigger_paths))
            if n_used == 0:
                rows.append({"name": person, "shots": n, "shots_used": 0, "steps_to_identified": None})
                continue
            pairs = (stack_uint8(trigger_paths[:n_used], side, desc=f"photos of {person}"),
                     [LEARN_TEMPLATES[i % len(LEARN_TEMPLATES)].format(person) for i in range(n_used)])
            steps = relearn(loaded.model, images, captions, loaded.tokenizer,
                            dataclasses.replace(cfg, batch_size=max(cfg.batch_size, n_used + 2)), device, probe,
                            always=pairs, stop=lambda row: row["correct"] >= tau)
            found = next((r["step"] for r in steps if r["correct"] >= tau), None)
            rows.append({"name": person, "shots": n, "shots_used": n_used, "steps_to_identified": found,
                         "correct_at_end": steps[-1]["correct"]})
    return rows
