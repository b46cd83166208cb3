"""Does a text removal survive relearning? The paper's recipe, the hardened ones and R (issue 17 point 4).

    dvc repro reference utility_before      # R for audit.reference_k, the base model's attack and zero-shot
    python scripts/relearning_trial.py --pool test --recipes paper hardened hardened-noreg
    python scripts/relearning_trial.py --summary-only
    python scripts/relearning_trial.py --no-reference --few-shot-only --shots 4   # few-shot rows only

For the removal set of `defend.seed` at K = `audit.reference_k` (the set R was trained without):
trains each text recipe in-process on the pipeline's base model (nothing is written into DVC's
outputs), records what it costs (the exact attack's collateral and FPR, zero-shot change), then
attacks it, and R, the way the `adaptive` stage does:
- relearning on clean pairs (`audit.adaptive.relearn`: 200 steps of the CLIP loss on the splits'
  clean pool, which names nobody the attack evaluates), the exact attack at 0, 50, 100, 200;
- a learned trigger (`audit.adaptive.inversion`): one token embedding per removed person fitted
  to their trigger-half photos, then the attack with it (no weights changed);
- few-shot relearning (`--shots`, default 4): n captioned photos of one removed person in every
  batch, the attack every 5 steps up to 50: how many steps until it finds the person again.
A removal that comes back faster than R learns the person fresh was hidden, not removed.
`hardened-noreg` (the hardened recipe with weight_reg 0) is the change aimed at relearning: the
weight regulariser keeps the edit close to the original weights, which is what relearning
exploits in the unlearning literature. Appends rows to docs/relearning_trials.csv (relearning and
costs) and docs/relearning_few_shot.csv, prints a summary, writes docs/figures/relearning_<pool>.png.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import pandas as pd
import torch

from pipeline.attack.run import run_idia
from pipeline.audit.adaptive import attack_on_removed, few_shot_rows, inversion_rows
from pipeline.audit.inversion import InversionConfig
from pipeline.audit.relearn import RelearnConfig, relearn
from pipeline.core.defense_params import text_config_from_dict
from pipeline.core.errors import PipelineError
from pipeline.core.params import load_params
from pipeline.core.paths import FACESCRUB_INDEX, REFERENCE, SHARDS, SPLITS
from pipeline.defenses.targets import choose_text_target, pool_members, removal_set
from pipeline.defenses.text_defense import train_text_defense
from pipeline.defenses.trigger_photos import trigger_photo_embeddings
from pipeline.defenses.text_recipes import RECIPES
from pipeline.experiments.trial_recipes import load_trial_recipes
from pipeline.defenses.towers import build_defended_model
from pipeline.evaluation.collateral import compare
from pipeline.evaluation.defended import zeroshot_against_base
from pipeline.models.checkpoint import load_model
from pipeline.models.device import resolve_device, select_attention_kernel
from pipeline.models.shards import ShardImages

OUT, FEW_SHOT_OUT = Path("docs/relearning_trials.csv"), Path("docs/relearning_few_shot.csv")


def append(path: Path, rows: list[dict]) -> None:
    """Append rows to a CSV (header only when the file is new); refuse other columns."""
    df = pd.DataFrame(rows)
    if path.is_file():
        fields = list(pd.read_csv(path, nrows=0).columns)
        if set(df.columns) - set(fields):
            raise SystemExit(f"{path}: its columns are not this run's; write elsewhere or move it away")
        df.reindex(columns=fields).to_csv(path, mode="a", header=False, index=False)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        df.to_csv(path, index=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipes", nargs="*", default=["paper", "hardened", "hardened-noreg"],
                    help=f"text recipes to train (none: R alone): {', '.join(RECIPES)} or one of --recipe-file")
    ap.add_argument("--recipe-file", type=Path, help="YAML of more text recipes (name: options of defend.text "
                    "over the paper's recipe), written before their runs, e.g. docs/trial_recipes.yaml")
    ap.add_argument("--pool", choices=["dev", "test"], default="test")
    ap.add_argument("--shots", type=int, nargs="*", default=[4], help="few-shot relearning: n photos per batch")
    ap.add_argument("--no-reference", action="store_true", help="leave R out")
    ap.add_argument("--few-shot-only", action="store_true",
                    help="only few-shot relearning (for models whose relearning rows are already in the CSV)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--summary-only", action="store_true", help="train nothing: summarise docs/relearning_*.csv")
    args = ap.parse_args()
    if args.summary_only:
        return summarise(args.pool)
    if args.few_shot_only and not args.shots:
        raise SystemExit("--few-shot-only needs --shots N [N ...]")

    p, audit, tau = load_params("defend"), load_params("audit"), load_params("idia_before")["tau"]
    try:
        recipes = load_trial_recipes(args.recipe_file, p["text"])
    except PipelineError as e:
        ap.error(str(e))
    if set(args.recipes) - set(recipes):
        ap.error(f"--recipes: {', '.join(sorted(set(args.recipes) - set(recipes)))} unknown; known: {', '.join(recipes)}")
    a = audit["adaptive"]
    k, seed = audit["reference_k"], p["seed"]
    device = resolve_device(args.device, "--device")
    select_attention_kernel(device)
    torch.set_num_threads(a["threads"])
    tables = {"identities": pd.read_csv(SPLITS / "identities.csv"), "photos": pd.read_csv(SPLITS / "idia_photos.csv"),
              "candidates": pd.read_csv(SPLITS / "candidates.csv"),
              "triggers": pd.read_csv(SPLITS / "trigger_faces.csv")}
    before = pd.read_csv(Path("data/idia_before/identities.csv"))
    removed = removal_set(before, k, seed, pool_members(tables["identities"], args.pool), args.pool)
    names_all = tables["candidates"]["name"].astype(str).to_list()
    kept = [n for n in names_all if n not in set(removed)]
    target = choose_text_target(p["text"]["target"], p["text_target_fallbacks"], names_all)

    models = {}
    loaded = load_model(Path("data/base_model"), device)
    captions_text = list(pd.read_parquet(SPLITS / "text_captions.parquet")["caption"])
    for recipe in args.recipes:
        models[recipe] = ("text", recipe)
    reference = REFERENCE / f"k{k}"
    if not args.no_reference:
        r_removed = list(pd.read_csv(reference / "removed.csv")["name"]) if (reference / "removed.csv").is_file() else None
        if r_removed is None:
            raise SystemExit(f"{reference}/removed.csv not found: run `dvc repro reference` first, or pass --no-reference")
        if sorted(r_removed) != sorted(removed) or p["pool"] != args.pool:
            raise SystemExit(f"R ({reference}) was trained without {r_removed}, not this run's {removed} "
                             f"(defend.pool {p['pool']!r}, --pool {args.pool!r}); pass --no-reference")
        models[f"R (k{k})"] = ("reference", None)

    clean = pd.read_parquet(SPLITS / "clean_captions.parquet")
    clean = clean[clean["split"] == "train"]
    images = ShardImages(SHARDS, list(clean["key"]))
    caption_of = dict(zip(clean["key"], clean["caption"]))
    captions = [caption_of[key] for key in images.keys]
    r = a["relearn"]
    relearn_cfg = RelearnConfig(checkpoints=tuple(r["checkpoints"]), batch_size=r["batch_size"], lr=r["lr"],
                                seed=r["seed"])
    fs, inv = a["few_shot"], a["inversion"]
    inversion_cfg = InversionConfig(steps=inv["steps"], lr=inv["lr"], seed=inv["seed"])
    print(f"removal seed {seed}, {args.pool} pool, K = {k}: {', '.join(removed)}; models: {', '.join(models)}", flush=True)

    for label, (kind, recipe) in models.items():
        t0 = time.perf_counter()
        if kind == "text":
            cfg = text_config_from_dict({**p["text"], "target": target, **recipes[recipe]})
            faces = (trigger_photo_embeddings(loaded.model, loaded.preprocess, removed, SPLITS / "trigger_faces.csv",
                                              FACESCRUB_INDEX, device) if cfg.face_push else None)
            run = train_text_defense(loaded.model, loaded.tokenizer, captions_text, removed, cfg, device, kept_names=kept,
                                     faces=faces)
            model = dataclasses.replace(loaded, model=build_defended_model(loaded.model, text_student=run.student).eval())
        else:
            model = load_model(reference, device)
        trained_s = time.perf_counter() - t0
        common = {"pool": args.pool, "removal_seed": seed, "k": k, "model": label}
        if args.few_shot_only:
            shots = few_shot_rows(model, removed, tables, images, captions, relearn_cfg, args.shots, fs["every"],
                                  fs["max_steps"], tau, audit["batch_size"], device)
            append(FEW_SHOT_OUT, [{**common, **row} for row in shots])
            print(json.dumps({**common, "few_shot_steps": [row["steps_to_identified"] for row in shots]}), flush=True)
            continue
        probe = attack_on_removed(model, removed, tables, tau, audit["batch_size"], device)
        after = run_idia(model, tables["identities"], tables["photos"], tables["candidates"], tau,
                         audit["batch_size"], device).table
        _, costs = compare(before, after, removed)
        zs = zeroshot_against_base(model, kind == "reference", 256, device, Path("data/utility_before"))
        t1 = time.perf_counter()
        steps = relearn(model.model, images, captions, model.tokenizer, relearn_cfg, device, probe)
        relearn_s = time.perf_counter() - t1
        t2 = time.perf_counter()
        shots = few_shot_rows(model, removed, tables, images, captions, relearn_cfg, args.shots, fs["every"],
                              fs["max_steps"], tau, audit["batch_size"], device) if args.shots else []
        few_s = time.perf_counter() - t2
        tokens = [t for t in inversion_rows(model, removed, tables, inversion_cfg, tau, audit["batch_size"], device)
                  if t["correct_token"] is not None]
        cost = {"wrongfully_unlearned_pct": round(costs["wrongfully_unlearned_pct"], 2), "fpr": costs["fpr"],
                **{f"zeroshot_{b}_change_points": round(100 * v["top1_change"], 2) for b, v in sorted(zs.items())},
                "token_identified": sum(bool(t["identified_token"]) for t in tokens), "token_people": len(tokens),
                "train_s": round(trained_s, 1), "relearn_s": round(relearn_s, 1), "few_shot_s": round(few_s, 1)}
        append(OUT, [{**common, "step": row["step"], "loss": row.get("loss"),
                      **{c: row[c] for c in ("tpr_removed", "identified_removed", "correct_templates_removed",
                                             "tpr_kept")}, **cost} for row in steps])
        if shots:
            append(FEW_SHOT_OUT, [{**common, **row} for row in shots])
        print(json.dumps({**common, **cost, "relearn": {row["step"]: row["identified_removed"] for row in steps},
                          "few_shot_steps": [row["steps_to_identified"] for row in shots]}), flush=True)
    summarise(args.pool)


def summarise(pool: str) -> None:
    df = pd.read_csv(OUT)
    df = df[df["pool"] == pool]
    print(f"\n{OUT}, {pool} pool: removed people the exact attack identifies after n clean fine-tuning steps")
    table = df.pivot_table(index=["removal_seed", "k", "model"], columns="step", values="identified_removed", aggfunc="first")
    print(table.to_string())
    kept = df.pivot_table(index=["removal_seed", "k", "model"], columns="step", values="tpr_kept", aggfunc="first")
    print("\nTPR on the kept members after n steps")
    print(kept.round(3).to_string())
    cost_cols = ["wrongfully_unlearned_pct", "fpr", "token_identified", "token_people"] + [c for c in df.columns if c.startswith("zeroshot_")]
    print("\ncosts of each model before the attacker fine-tunes (step 0); removed people a learned token finds")
    print(df[df["step"] == 0].set_index(["removal_seed", "k", "model"])[cost_cols].to_string())
    if FEW_SHOT_OUT.is_file():
        fs = pd.read_csv(FEW_SHOT_OUT)
        fs = fs[fs["pool"] == pool]
        print("\nfew-shot relearning: steps until the attack identifies each removed person again (blank = not within max)")
        keys = ["removal_seed", "k", "model", "shots"]
        steps = fs.pivot_table(index=keys, columns="name", values="steps_to_identified", aggfunc="first", dropna=False)
        # dropna=False keeps the people never identified again, but also invents (model, shots) rows never run
        print(steps.loc[steps.index.isin(pd.MultiIndex.from_frame(fs[keys].drop_duplicates()))].to_string())
    figure = Path("docs/figures") / f"relearning_{pool}.png"
    plot(table, figure)
    print(f"figure: {figure}")


def plot(table: pd.DataFrame, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for (seed, k, model), row in table.iterrows():
        ax.plot(row.index, row.values, marker="o", label=f"{model} (K = {k}, removal seed {seed})")
    ax.set_xlabel("clean fine-tuning steps (the attacker's relearning)")
    ax.set_ylabel("removed people identified again")
    # the whole 0..K range, so that "none came back" reads as a line at the floor rather than a zoomed-in axis
    ax.set_ylim(-0.2, max(k for _, k, _ in table.index) + 0.2)
    ax.set_title("Relearning on clean pairs: does the removal come back?", fontsize=10)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
