"""Fulfil one removal request: train its towers from the predecessor's models, attack before
and after, and gather what the proof states (README "Removal requests").

The attack runs with the splits' identities and candidates plus every person of this and
the earlier requests (people from request folders are added as identities with their own
attack photos; names in no candidate list are added to the candidates, for the attack before
and after alike). The costs (collateral, FPR, zero-shot, similarity) are measured on the splits'
identities only, as the evaluate stage measures them, so they are comparable with the sweep.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml

from pipeline.core.errors import PipelineError
from pipeline.core.paths import BASE_MODEL, FACESCRUB_INDEX, SHARDS, SPLITS, TEXT_CAPTIONS, UTILITY_BEFORE
from pipeline.requests.people import copy_attack_photos, resolve_people
from pipeline.requests.proof import build_proof, people_rows, render_markdown
from pipeline.requests.request import BASE, Request
from pipeline.world.paper.sources import sha256_file

TRAINED = {"text": ("text",), "image": ("image",), "both": ("text", "image")}


@dataclass
class Proof:
    json: str
    markdown: str


@dataclass
class Fulfilled:
    request: Request
    models: dict                      # text/image/both -> open_clip CLIP (only those trained or asked)
    loaded: object                    # the base LoadedModel (arch, config, tokenizer, preprocess)
    removed: pd.DataFrame             # name, request: every person removed so far, this request last
    attack_photos: pd.DataFrame       # name, path: attack photos of people from request folders, so far
    tables: dict                      # before / <tower> -> the attack's per-identity table
    metrics: dict                     # <tower> -> costs and verdict counts (metrics/requests/<id>.json)
    people: dict                      # <tower> -> proof rows
    configs: dict                     # text / image -> the recipe used
    inputs_sha256: dict               # <tower> -> {role: sha256} of the starting checkpoint(s)
    added: list[str]
    unreadable: dict
    params: dict
    outputs_sha256: dict = field(default_factory=dict)
    probes: dict = field(default_factory=dict)   # base / <tower> -> the audit's probe table (empty: no audit)

    def write(self, tmp: Path, final: Path) -> None:
        from pipeline.models.checkpoint import WEIGHTS_FILE, save_checkpoint

        for tower, model in self.models.items():
            save_checkpoint(model, tmp / tower, self.loaded.arch, self.loaded.model_cfg)
            self.removed.to_csv(tmp / tower / "removed.csv", index=False)
            (tmp / tower / "defense.yaml").write_text(yaml.safe_dump(
                {"request": self.request.id, "names": list(self.request.names),
                 **{t: self.configs[t] for t in TRAINED[tower]}}, sort_keys=True))
            self.outputs_sha256[tower] = sha256_file(tmp / tower / WEIGHTS_FILE)
        self.removed.to_csv(tmp / "removed.csv", index=False)
        copy_attack_photos(self.attack_photos, tmp / "photos", final / "photos").to_csv(
            tmp / "attack_photos.csv", index=False)
        (tmp / "attack").mkdir()
        for name, table in self.tables.items():
            table.to_csv(tmp / "attack" / f"{name}.csv", index=False)
        if self.probes:
            (tmp / "audit").mkdir()
            for name, table in self.probes.items():
                table.to_csv(tmp / "audit" / f"{name}.csv", index=False)

    def proof(self, *, params: dict, code_version: str, date: str) -> Proof:
        towers = {}
        for tower in self.request.towers:
            towers[tower] = build_proof(
                self.request.id, tower, self.people[tower], self.metrics[tower],
                checkpoints={**self.inputs_sha256[tower], "output": self.outputs_sha256[tower]},
                params=params, code_version=code_version, date=date, added_to_candidates=self.added,
                unreadable_photos=self.unreadable)
        body = {"request": self.request.id, "after": self.request.after, "names": list(self.request.names),
                "towers": towers}
        markdown = render_markdown(body)
        return Proof(json.dumps(body, indent=2, sort_keys=True) + "\n", markdown)

    def summary(self) -> str:
        parts = [f"{t}: " + ", ".join(f"{row['name']} {row['verdict']}" for row in rows)
                 for t, rows in self.people.items()]
        return f"request {self.request.id}: " + "; ".join(parts)


def _start(prev_dir: Path, tower: str, after: str) -> Path:
    if after == BASE:
        return BASE_MODEL
    folder = prev_dir / tower
    if not folder.is_dir():
        raise PipelineError(f"{prev_dir} holds no {tower} model; a request chain defends the same towers throughout")
    return folder


def fulfil(request: Request, prev_dir: Path, attack_share: float, *, defend: dict, evaluate: dict,
           tau: int, audit_seed: int | None = None) -> Fulfilled:
    """audit_seed: run the adversarial audit's probes on the request's models (None: do not)."""
    import torch

    from pipeline.attack.run import run_idia
    from pipeline.core.defense_params import config_to_dict, image_config_from_dict, text_config_from_dict
    from pipeline.defenses.image_defense import train_image_defense
    from pipeline.defenses.image_inputs import image_defense_inputs
    from pipeline.defenses.targets import choose_text_target
    from pipeline.defenses.text_defense import train_text_defense
    from pipeline.defenses.towers import build_defended_model
    from pipeline.defenses.trigger_photos import trigger_photo_embeddings
    from pipeline.evaluation.collateral import compare
    from pipeline.evaluation.defended import utility_costs
    from pipeline.models.checkpoint import WEIGHTS_FILE, LoadedModel, load_model
    from pipeline.models.device import resolve_device, select_attention_kernel
    from pipeline.models.image_encoding import model_image_size

    device = resolve_device(defend["device"], "defend.device")
    select_attention_kernel(device)
    torch.set_num_threads(defend["threads"])
    splits_ids = pd.read_csv(SPLITS / "identities.csv", keep_default_na=False)
    idia_photos = pd.read_csv(SPLITS / "idia_photos.csv", keep_default_na=False)
    candidates = list(pd.read_csv(SPLITS / "candidates.csv", keep_default_na=False)["name"].astype(str))
    people = resolve_people(request, splits_ids, pd.read_csv(SPLITS / "trigger_faces.csv", keep_default_na=False),
                            pd.read_parquet(FACESCRUB_INDEX), attack_share)
    earlier = pd.read_csv(prev_dir / "removed.csv", keep_default_na=False, dtype=str)
    clash = sorted(set(request.names) & set(earlier["name"]))
    if clash:
        row = earlier[earlier["name"] == clash[0]].iloc[0]
        raise PipelineError(f"{request.source}: {clash[0]!r} was removed by request {row['request']} already")
    removed = pd.concat([earlier, pd.DataFrame({"name": list(request.names), "request": request.id})],
                        ignore_index=True)
    removed_all = list(removed["name"])
    attack_photos = pd.concat([pd.read_csv(prev_dir / "attack_photos.csv", keep_default_na=False, dtype=str),
                               people.attack], ignore_index=True)
    known = set(splits_ids["name"])
    extra = sorted(set(attack_photos["name"]) - known)
    identities = pd.concat([splits_ids[["name", "member", "count"]],
                            pd.DataFrame({"name": extra, "member": True, "count": 0})], ignore_index=True)
    photos = pd.concat([idia_photos[["name", "path"]], attack_photos], ignore_index=True)
    added_all = [n for n in removed_all if n not in set(candidates)]
    cands = pd.DataFrame({"name": candidates + added_all})
    added = [n for n in request.names if n in added_all]

    batch, workers, bf16 = evaluate["batch_size"], evaluate["workers"], evaluate["bf16"]

    def attack(loaded):
        return run_idia(loaded, identities, photos, cands, tau, batch, device, bf16=bf16, workers=workers).table

    base = load_model(BASE_MODEL, device)
    tables = {"before": attack(base)}
    clean = pd.read_parquet(SPLITS / "clean_captions.parquet")
    trains = {t for tower in request.towers for t in TRAINED[tower]}
    models, configs, starts = {}, {}, {}
    target = None
    if "text" in trains:
        starts["text"] = _start(prev_dir, "text", request.after)
        start = load_model(starts["text"], device)
        target = choose_text_target(defend["text"]["target"], defend["text_target_fallbacks"], list(cands["name"]))
        cfg = text_config_from_dict({**defend["text"], "target": target})
        captions = list(pd.read_parquet(SPLITS / TEXT_CAPTIONS)["caption"])
        kept = [n for n in cands["name"] if n not in set(removed_all)]
        faces = (trigger_photo_embeddings(start.model, start.preprocess, list(request.names), people.triggers,
                                          FACESCRUB_INDEX, device) if cfg.face_push else None)
        run = train_text_defense(start.model, start.tokenizer, captions, list(request.names), cfg, device,
                                 kept_names=kept, faces=faces)
        models["text"] = build_defended_model(start.model, text_student=run.student)
        configs["text"] = config_to_dict(cfg)
    if "image" in trains:
        starts["image"] = _start(prev_dir, "image", request.after)
        start = load_model(starts["image"], device)
        recipe = defend["image_recipe"]
        cfg = image_config_from_dict(defend["image_recipes"][recipe], prefix=f"defend.image_recipes.{recipe}")
        inputs = image_defense_inputs(cfg, list(request.names), clean[clean["split"] == "train"],
                                      model_image_size(start.model), shards=SHARDS,
                                      trigger_faces=people.triggers, facescrub_index=FACESCRUB_INDEX,
                                      retain_pattern=defend["retain_caption_pattern"])
        run = train_image_defense(start.model, cfg=cfg, device=device, **inputs)
        models["image"] = build_defended_model(start.model, visual_student=run.student)
        configs["image"] = {"recipe": recipe, **config_to_dict(cfg)}
    if "both" in request.towers:
        models["both"] = build_defended_model(models["text"], visual_student=models["image"].visual)
    digest = {t: sha256_file(starts[t] / WEIGHTS_FILE) for t in trains}
    inputs_sha = {t: {"input": digest[t]} for t in trains}
    if "both" in request.towers:
        inputs_sha["both"] = {"input (text tower)": digest["text"], "input (image tower)": digest["image"]}

    heldout = clean[clean["split"] == "heldout"].head(evaluate["similarity_samples"])
    std_removed = [n for n in removed_all if n in known]
    before_std = tables["before"][tables["before"]["name"].isin(known)]
    earlier_of = dict(zip(earlier["name"], earlier["request"]))
    loaded_of = {tower: LoadedModel(model=models[tower].eval(), preprocess=base.preprocess,
                                    tokenizer=base.tokenizer, arch=base.arch, model_cfg=base.model_cfg)
                 for tower in request.towers}
    probes = {}
    if audit_seed is not None:
        from pipeline.audit.run import split_tables
        from pipeline.requests.audit import probe_request_models

        probes = probe_request_models(base, loaded_of, identities=identities, photos=photos, candidates=cands,
                                      unseen=split_tables(SPLITS)["unseen"], batch_size=batch, device=device,
                                      seed=audit_seed, bf16=bf16)
    metrics, rows = {}, {}
    for tower in request.towers:
        loaded = loaded_of[tower]
        tables[tower] = after = attack(loaded)
        _, costs = compare(before_std, after[after["name"].isin(known)], std_removed)
        costs.update(utility_costs(base, loaded, tower, removed_all, target, heldout, photos, batch=batch,
                                   device=device, n_sim=evaluate["similarity_samples"], bf16=bf16,
                                   workers=workers, utility_before=UTILITY_BEFORE, shards=SHARDS,
                                   facescrub_index=FACESCRUB_INDEX))
        rows[tower] = people_rows(list(request.names), tables["before"], after, tau, earlier_of)
        if probes:
            from pipeline.requests.audit import audit_counts, audit_people

            audited = audit_people(probes["base"], probes[tower], [r["name"] for r in rows[tower]], tau)
            for row in rows[tower]:
                row["audit"] = audited.get(row["name"])
            costs["audit"] = audit_counts(audited, list(request.names))
        verdicts = [r["verdict"] for r in rows[tower]]
        costs["verdicts"] = {v: verdicts.count(v) for v in ("removed", "not removed", "not identified before",
                                                            "no photos")}
        costs["earlier_back"] = sum(1 for r in rows[tower] if r["request"] and r["verdict"] == "not removed")
        metrics[tower] = costs
    params = {"defend.text": defend["text"] if "text" in trains else None,
              "defend.image_recipe": defend["image_recipe"] if "image" in trains else None,
              "defend.image_recipes": (defend["image_recipes"][defend["image_recipe"]] if "image" in trains else None),
              "idia_before.tau": tau, "evaluate": evaluate}
    if probes:
        params["audit.seed"] = audit_seed
    return Fulfilled(request, models, base, removed, attack_photos, tables, metrics, rows, configs, inputs_sha,
                     added, {n: v for n, v in people.unreadable.items() if v}, params, probes=probes)
