"""The paper's recipes against the hardened ones (issue 17), probe family by probe family.

    python scripts/hardening_trial.py --pool test --ks 4 16 --seeds 0 1 2 --recipes paper hardened
    python scripts/hardening_trial.py --pool dev --ks 16 --seeds 0 1 --recipes hardened hardened-retain
    python scripts/hardening_trial.py --tower image --pool test --ks 4 --seeds 0 1 --recipes demo hardened
    python scripts/hardening_trial.py --tower both --pool test --ks 4 --seeds 0 1 --recipes paper hardened
    python scripts/hardening_trial.py --recipe-file docs/trial_recipes.yaml --pool dev --ks 16 \
        --seeds 3 4 5 6 7 8 --recipes partial-face-retain --people-out people.csv

For each removal seed, K and recipe: trains the text (or image) defense in-process on the
pipeline's base model (nothing is written into DVC's outputs), runs the audit's probes (exact,
the seven name-variant families, the held-out prompts; for the image tower also the photo
transforms and the unseen photos) and the attack's collateral, and appends one row per run to
--out (CSV). Image recipes are those of `defend.image_recipes` in params.yaml. `--tower both`:
the text recipes on top of one image defense per removal set (`--image-recipe`, default
`defend.image_recipe`), the combined model probed on both towers. At the end it prints, summed over the seeds, how many removed people
each probe family still identifies, per recipe and K.
`--recipe-file`: more text recipes, written in a YAML file before their runs (docs/trial_recipes.yaml);
`--people-out`: one row per removed person and probe, with the kept candidates who share the
person's first or last name (is a partial-name residual on a shared name?).

Needs `dvc repro idia_before audit_base utility_before` first (the base model, the splits, the attack on it, the base model's
probe table and embeddings, the zero-shot baseline). The recipes are fixed here, before any
measurement: they are not tuned on the test pool. `--pool dev` removes development-pool
people, for choosing between recipes; `--pool test` is what the README reports.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import time
from pathlib import Path

import pandas as pd
import torch
from safetensors.torch import load_file

from pipeline.attack.idia import predict_names
from pipeline.audit.variants import name_parts, name_sharers
from pipeline.audit.run import (EMBEDDINGS_FILE, NOT_APPLICABLE, PROBES_FILE, probe_table, split_tables,
                                tower_embeddings)
from pipeline.audit.summary import probe_summary
from pipeline.core.defense_params import image_config_from_dict, text_config_from_dict
from pipeline.core.errors import PipelineError
from pipeline.core.params import load_params
from pipeline.core.paths import FACESCRUB_INDEX, SHARDS
from pipeline.defenses.text_recipes import HELD_OUT_VARIANTS, RECIPES, TRAINED_VARIANTS
from pipeline.experiments.trial_recipes import load_trial_recipes
from pipeline.defenses.targets import choose_text_target, pool_members, removal_set
from pipeline.defenses.image_defense import train_image_defense
from pipeline.defenses.image_inputs import image_defense_inputs
from pipeline.defenses.text_defense import train_text_defense
from pipeline.defenses.trigger_photos import trigger_photo_embeddings
from pipeline.models.image_encoding import model_image_size
from pipeline.defenses.towers import build_defended_model
from pipeline.evaluation.collateral import compare
from pipeline.evaluation.defended import zeroshot_against_base
from pipeline.models.checkpoint import load_model
from pipeline.models.device import resolve_device, select_attention_kernel
from pipeline.reports.recipe_trials import plot_sums, read_trials

SPLITS, AUDIT_BASE = Path("data/splits"), Path("data/audit/base")

def attack_table(probes: pd.DataFrame, identities: pd.DataFrame, column: str, tau: int) -> pd.DataFrame:
    """The attack's per-identity table (as idia_before writes it) from one probe column."""
    t = identities[["name", "member", "count"]].merge(probes[["name", column]], on="name")
    return t.rename(columns={column: "correct_templates"}).assign(identified=lambda d: d["correct_templates"] >= tau)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ks", type=int, nargs="+", default=[4, 16])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--tower", choices=["text", "image", "both"], default="text")
    ap.add_argument("--image-recipe", help="--tower both: the image recipe under every text recipe "
                    "(default: defend.image_recipe)")
    ap.add_argument("--recipes", nargs="+", default=["paper", "hardened"],
                    help=f"text and both: {', '.join(RECIPES)}; image: a key of defend.image_recipes")
    ap.add_argument("--recipe-file", type=Path, help="YAML of more text recipes (name: options of defend.text "
                    "over the paper's recipe), written before their runs, e.g. docs/trial_recipes.yaml")
    ap.add_argument("--pool", choices=["dev", "test"], default="dev")
    ap.add_argument("--out", type=Path, help="CSV the rows are appended to (default: docs/hardening_trials.csv; "
                    "docs/hardening_trials_image.csv, docs/hardening_trials_both.csv for --tower image, both)")
    ap.add_argument("--people-out", type=Path, help="CSV of one row per removed person and probe (correct "
                    "templates, identified, which kept candidates share their first or last name), appended")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--summary-only", action="store_true", help="train nothing: summarise the runs in --out")
    args = ap.parse_args()
    args.out = args.out or Path(DEFAULT_OUT[args.tower])
    if args.summary_only:
        return summarise(args.out, args.pool, args.tower)

    p, audit, tau = load_params("defend"), load_params("audit"), load_params("idia_before")["tau"]
    # the recipes first: a wrong name fails before any table or model is read
    try:
        recipes = load_trial_recipes(args.recipe_file, p["text"])
    except PipelineError as e:
        ap.error(str(e))
    if args.tower in ("text", "both") and set(args.recipes) - set(recipes):
        ap.error(f"text recipes: {', '.join(recipes)}")
    device = resolve_device(args.device, "--device")
    select_attention_kernel(device)
    torch.set_num_threads(p["threads"])
    tables = split_tables(SPLITS)
    identities, candidates = tables["identities"], tables["candidates"]
    members = identities.set_index("name")["member"].astype(str).str.lower().isin(["true", "1"])
    before = pd.read_csv(Path("data/idia_before/identities.csv"))
    base_probes = pd.read_csv(AUDIT_BASE / PROBES_FILE)
    if set(base_probes["name"]) != set(identities["name"]):
        # e.g. after `dvc exp apply` of another world: the seed experiments do not run audit_base
        raise SystemExit(f"{AUDIT_BASE / PROBES_FILE} probes other people than {SPLITS / 'identities.csv'} "
                         "(another world's base model?); run `dvc repro -s audit_base` first")
    # the untouched tower's embeddings come from the base model's audit (none is untouched in both)
    reuse = None if args.tower == "both" else tower_embeddings(load_file(str(AUDIT_BASE / EMBEDDINGS_FILE)),
                                                               "photos" if args.tower == "text" else "texts")
    image_recipe = args.image_recipe or p["image_recipe"]
    if args.tower == "both" and image_recipe not in p["image_recipes"]:
        ap.error(f"--image-recipe {image_recipe!r}: not a key of defend.image_recipes ({', '.join(p['image_recipes'])})")
    if args.tower == "image" and set(args.recipes) - set(p["image_recipes"]):
        ap.error(f"image recipes (defend.image_recipes): {', '.join(p['image_recipes'])}")
    loaded = load_model(Path("data/base_model"), device)
    # which base model the rows come from: workspaces on other machines train other floats (issue 13)
    base_loss = json.loads(Path("metrics/base_model.json").read_text()).get("final_loss")
    captions = list(pd.read_parquet(SPLITS / "text_captions.parquet")["caption"])
    names_all = list(candidates["name"])
    target = choose_text_target(p["text"]["target"], p["text_target_fallbacks"], names_all)
    allowed = pool_members(identities, args.pool)
    clean = pd.read_parquet(SPLITS / "clean_captions.parquet")
    train_rows = clean[clean["split"] == "train"]

    args.out.parent.mkdir(parents=True, exist_ok=True)
    new_file = not args.out.is_file()
    rows = []
    with args.out.open("a", newline="") as fh:
        writer = None
        for seed in args.seeds:
            for k in args.ks:
                removed = removal_set(before, k, seed, allowed, args.pool)
                kept = [n for n in names_all if n not in set(removed)]

                def image_student(recipe: str):
                    cfg = image_config_from_dict(p["image_recipes"][recipe], prefix=f"defend.image_recipes.{recipe}")
                    inputs = image_defense_inputs(cfg, removed, train_rows, model_image_size(loaded.model),
                                                  shards=SHARDS, trigger_faces=SPLITS / "trigger_faces.csv",
                                                  facescrub_index=FACESCRUB_INDEX,
                                                  retain_pattern=p["retain_caption_pattern"])
                    return train_image_defense(loaded.model, cfg=cfg, device=device, **inputs).student

                # one image defense under every text recipe of this removal set: the text recipes differ, not it
                t_image = time.perf_counter()
                shared_visual = image_student(image_recipe) if args.tower == "both" else None
                image_s = time.perf_counter() - t_image
                for recipe in args.recipes:
                    t0 = time.perf_counter()
                    student, probe_kw = {}, {"unseen": tables["unseen"]}
                    if args.tower in ("text", "both"):
                        cfg = text_config_from_dict({**p["text"], "target": target, **recipes[recipe]})
                        faces = (trigger_photo_embeddings(loaded.model, loaded.preprocess, removed,
                                                          SPLITS / "trigger_faces.csv", FACESCRUB_INDEX, device)
                                 if cfg.face_push else None)
                        run = train_text_defense(loaded.model, loaded.tokenizer, captions, removed, cfg, device,
                                                 kept_names=kept, faces=faces)
                        student["text_student"] = run.student
                    if args.tower == "text":
                        probe_kw = {"transforms": (), "unseen": None}
                    elif args.tower == "image":
                        student["visual_student"] = image_student(recipe)
                    else:
                        student["visual_student"] = shared_visual
                    defended = dataclasses.replace(loaded, model=build_defended_model(loaded.model, **student).eval())
                    used = {}
                    probes = probe_table(defended, identities, tables["photos"], candidates,
                                         batch_size=audit["batch_size"], device=device, seed=audit["seed"],
                                         bf16=audit["bf16"], reuse=reuse, keep=used, **probe_kw)
                    cols = list(probes.columns[1:])
                    summary = probe_summary(base_probes[["name"] + cols], probes, members, removed, tau)["probes"]
                    joined, exact = compare(before, attack_table(probes, identities, "exact", tau), removed)
                    print_survivors(joined, kept)
                    own_votes = removed_own_votes(used["photos/exact"], used["texts/exact"], tables["photos"],
                                                  names_all, removed)
                    _, held = compare(attack_table(base_probes, identities, "prompts_heldout", tau),
                                      attack_table(probes, identities, "prompts_heldout", tau), removed)
                    zs = zeroshot_against_base(defended, args.tower != "text", 256, device, Path("data/utility_before"))
                    row = {"tower": args.tower, "pool": args.pool, "removal_seed": seed, "k": k, "recipe": recipe,
                           **({"image_recipe": image_recipe} if args.tower == "both" else {}),
                           "seconds": round(time.perf_counter() - t0 + (image_s if args.tower == "both" else 0), 1),
                           "base_final_loss": base_loss,
                           "tpr_removed": exact["tpr_removed"],
                           "wrongfully_unlearned_pct": round(exact["wrongfully_unlearned_pct"], 2),
                           "name_sharers_lost": exact["wrongfully_unlearned_name_sharers"],
                           "name_sharers_before": exact["name_sharers_identified_before"],
                           "fpr": exact["fpr"], "newly_identified_nonmembers": exact["newly_identified_nonmembers"],
                           "heldout_prompts_wrongfully_unlearned_pct": round(held["wrongfully_unlearned_pct"], 2)}
                    row["exact_removed_own_votes"] = own_votes
                    print(f"  removed people's own votes (photo x template, exact): {own_votes}", flush=True)
                    for bench, v in sorted(zs.items()):
                        row[f"zeroshot_{bench}_change_points"] = round(100 * v["top1_change"], 2)
                    for probe, s in summary.items():
                        n = s["removed_probed"]
                        row[f"{probe}_removed_identified"] = None if s["tpr_removed"] is None else round(s["tpr_removed"] * n)
                        row[f"{probe}_removed_identified_base"] = None if s["tpr_removed_base"] is None else round(s["tpr_removed_base"] * n)
                        row[f"{probe}_residual"] = s["residual"]
                    print(json.dumps({key: row[key] for key in list(row)[:12]}), flush=True)
                    if writer is None:
                        fields = list(row) if new_file else next(csv.reader(args.out.open()))
                        # CSVs written before own votes were measured lack that column: it is left out of them
                        missing = set(row) - set(fields) - {"exact_removed_own_votes"}
                        if missing:
                            raise SystemExit(f"{args.out}: its columns are not this run's ({', '.join(sorted(missing))} "
                                             "missing); write to another --out")
                        writer = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
                        if new_file:
                            writer.writeheader()
                    writer.writerow(row)
                    fh.flush()
                    rows.append(row)
                    if args.people_out:
                        write_people(args.people_out, {key: row[key] for key in RUN_KEYS}, probes, removed, kept, tau)

    summarise(args.out, args.pool, args.tower)


def removed_own_votes(image_emb: torch.Tensor, text_emb: torch.Tensor, photos: pd.DataFrame,
                      names: list[str], removed: list[str]) -> int:
    """How many (photo, template) argmax votes of the removed people's attack photos still
    land on their own name: a finer measure of what is left than the identified count."""
    index = {n: i for i, n in enumerate(names)}
    rows = photos["name"].isin(removed).to_numpy()
    owner = torch.tensor([index[n] for n in photos.loc[rows, "name"]])
    pred = predict_names(image_emb[torch.from_numpy(rows)], text_emb)
    return int((pred == owner[:, None]).sum())


def print_survivors(joined: pd.DataFrame, kept: list[str]) -> None:
    """Removed people the exact attack still identifies: correct templates after / before, their
    caption count, and whether a kept candidate shares their first or last name (stdout only)."""
    left = joined[joined["removed"] & joined["identified_after"]]
    for r in left.itertuples():
        shares = name_sharers([r.name], kept)
        print(f"  still identified: {r.name} ({r.correct_after}/{r.correct_before} templates, "
              f"{r.count} captions; shares a name part with: {', '.join(shares) or 'nobody'})", flush=True)


RUN_KEYS = ("tower", "pool", "removal_seed", "k", "recipe")   # what names a run in --out and --people-out


def write_people(path: Path, run: dict, probes: pd.DataFrame, removed: list[str], kept: list[str], tau: int) -> None:
    """Per removed person and probe: correct templates, identified, and the kept candidates who
    share the person's first or last name (a partial-name probe cannot tell those apart from the
    person, and issue 17 point 3 asks to keep them), appended to `path`."""
    table = probes.set_index("name")
    rows = []
    for name in removed:
        first, last = name_parts(name)
        same_first = [o for o in kept if name_parts(o)[0] == first]
        same_last = [o for o in kept if last and name_parts(o)[1] == last]
        for probe in probes.columns[1:]:
            correct = int(table.at[name, probe])
            rows.append({**run, "name": name, "probe": probe, "correct_templates": correct,
                         "identified": None if correct == NOT_APPLICABLE else correct >= tau,
                         "kept_sharing_first": "; ".join(same_first), "kept_sharing_last": "; ".join(same_last)})
    df = pd.DataFrame(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, mode="a", header=not path.is_file(), index=False)


DEFAULT_OUT = {"text": "docs/hardening_trials.csv", "image": "docs/hardening_trials_image.csv",
               "both": "docs/hardening_trials_both.csv"}


def summarise(path: Path, pool: str, tower: str) -> None:
    """Every run of `path` on `pool`: removed people still identified per probe family, summed
    over the removal seeds (per K and recipe), the costs, and a figure of the sums."""
    t = read_trials(path, pool)
    if t is None:
        raise SystemExit(f"{path}: no rows on the {pool} pool")
    print(f"\n{path}, {pool} pool: removed people still identified, summed over the removal seeds")
    print(f"removal seeds per column: {t.seeds}")
    if tower in ("text", "both"):
        print(f"trained variant families (hardened): {', '.join(TRAINED_VARIANTS)}; held out: {', '.join(HELD_OUT_VARIANTS)}")
    print(t.sums.T.to_string())
    print(t.costs.round(3).to_string())
    # a CSV of one's own gets a figure of its own, so that it does not overwrite the committed one;
    # one kept outside docs/ gets it beside itself, not among the README's figures
    stem = f"hardening_{tower}" if path == Path(DEFAULT_OUT[tower]) else path.stem
    in_docs = path.resolve().parent == Path("docs").resolve()
    figure = (Path("docs/figures") if in_docs else path.parent) / f"{stem}_{pool}.png"
    plot_sums(t.sums, figure, f"{tower} defense, {pool} pool: removed people still identified (summed over removal seeds)")
    print(f"figure: {figure}")


if __name__ == "__main__":
    main()
