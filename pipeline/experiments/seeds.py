"""Every defense run over several removal seeds: mean and min-max per group, from DVC experiments.

The paper reports each point as a mean over removal seeds (which people are removed). Here
each seed is one DVC experiment (`dvc exp run --queue -S defend.seed=1`, another world:
`-S world.seed=99`); this module reads them all from `dvc exp show --json -A` and writes

- metrics/seeds.json: per group (a world seed; for the paper sweep also lambda), per run
  (text-k1, ...), per metric: mean, min, max, n;
- the README's results table (between its `seeds:begin` / `seeds:end` markers);
- docs/figures/seeds.png: TPR and wrongfully unlearned per K with the min-max band.

An experiment counts only when it ran the workspace's code (every `pipeline/` dependency of
the stages up to `evaluate` has the hash the workspace's dvc.lock records; the report's own
code may differ, it computes no metric) with the workspace's params except the ones that
define a seed or a group, so results of older code never mix in.

    python -m pipeline.experiments.seeds            # the demo: groups = world seeds
    python -m pipeline.experiments.seeds --profile paper --no-readme
                                                    # the paper sweep: groups = world seed x lambda
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import yaml

from pipeline.core.errors import PipelineError
from pipeline.core.paths import ENCODERS, METRICS, metrics_file, parse_run_name
from pipeline.experiments import ledger
from pipeline.profiles import flatten

REMOVAL_SEED = "defend.seed"
# The demo: one group per world seed. The paper sweep (pipeline.profiles --sweep) also varies
# the training seeds with the removal seed, and runs each seed with and without lambda.
DEMO = {"seeds": (REMOVAL_SEED,), "groups": ("world.seed",)}
PAPER_SWEEP = {"seeds": (REMOVAL_SEED, "defend.text.seed", "defend.image_recipes.paper.seed"),
               "groups": ("world.seed", "defend.text.weight_reg", "defend.image_recipes.paper.weight_reg")}
OUTPUT = METRICS / "seeds.json"
FIGURE = Path("docs/figures/seeds.png")
README = Path("README.md")
# A seed experiment runs only what the aggregation reads (the evaluations and what they need),
# not R, the audits or the report: 18 min per removal seed instead of about 35 (Intel Xeon, 2 cores).
EXPERIMENT_STAGES = ("evaluate_text", "evaluate_towers")
BEGIN, END = "<!-- seeds:begin -->", "<!-- seeds:end -->"

# What each run's evaluation reports, as (output key, path in metrics/evaluate/<run>.json, scale).
MEASURES = (
    ("tpr_removed", ("tpr_removed",), 1.0),
    ("wrongfully_unlearned_pct", ("wrongfully_unlearned_pct",), 1.0),
    ("fpr", ("fpr",), 1.0),
    ("newly_identified_nonmembers", ("newly_identified_nonmembers",), 1.0),
    ("zeroshot_hair_top1_change_pts", ("zeroshot", "hair", "top1_change"), 100.0),
    ("zeroshot_scenes_top1_change_pts", ("zeroshot", "scenes", "top1_change"), 100.0),
)


# The results issue's targets (issue 13, point 4 and 5), checked on the means over removal seeds:
# (run, measure, "max" = the mean must not exceed the limit / "abs" = |mean| must not exceed it).
TARGETS = (
    ("text-k16", "wrongfully_unlearned_pct", "max", 5.0),
    ("image-k4", "tpr_removed", "max", 0.25),
    ("image-k4", "wrongfully_unlearned_pct", "max", 10.0),
    ("image-k4", "zeroshot_hair_top1_change_pts", "abs", 1.0),
    ("image-k4", "zeroshot_scenes_top1_change_pts", "abs", 1.0),
    ("both-k1", "tpr_removed", "max", 0.05),
    ("both-k4", "tpr_removed", "max", 0.05),
    ("both-k4", "wrongfully_unlearned_pct", "max", 10.0),
)


def check_targets(runs: dict[str, dict]) -> dict[str, dict]:
    """Each target whose run was measured: the mean, the limit, and whether it is met."""
    out = {}
    for run, measure, kind, limit in TARGETS:
        stats = runs.get(run, {}).get(measure)
        if stats is None:
            continue
        value = abs(stats["mean"]) if kind == "abs" else stats["mean"]
        out[f"{run} {measure}"] = {"mean": stats["mean"], "limit": limit, "rule": kind,
                                   "met": bool(value <= limit)}
    return out


@dataclass
class SeedRun:
    """One experiment (or the workspace): its group (values of the group params), its removal
    seed, and every run's measures."""
    name: str
    rev: str
    group: tuple
    removal_seed: int
    runs: dict[str, dict[str, float]] = field(default_factory=dict)   # run -> measure -> value
    targets: dict[str, str] = field(default_factory=dict)              # text run -> placeholder used
    data: dict = field(default_factory=dict, repr=False)               # its `dvc exp show` data


def _params(data: dict) -> dict[str, object]:
    return flatten(((data.get("params") or {}).get("params.yaml") or {}).get("data") or {})


def _code_hashes(data: dict) -> dict[str, str]:
    return {path: dep.get("hash") for path, dep in (data.get("deps") or {}).items()
            if path.startswith("pipeline/")}


def metric_code(lock: dict) -> set[str]:
    """The code the metrics rest on: `pipeline/` deps of every stage in dvc.lock but the report."""
    return {dep["path"] for name, stage in (lock.get("stages") or {}).items() if name != "report"
            for dep in stage.get("deps") or [] if dep["path"].startswith("pipeline/")}


def iter_revs(exp_show: list[dict]) -> Iterator[tuple[str, str, dict]]:
    """(name, rev, data) of the workspace, every baseline commit and every finished experiment."""
    for baseline in exp_show:
        if baseline.get("data") and not baseline.get("error"):
            rev = baseline["rev"]
            yield baseline.get("name") or (rev if rev == "workspace" else rev[:7]), rev, baseline["data"]
        for exp in baseline.get("experiments") or []:
            state = (exp.get("executor") or {}).get("state")
            if state in ("queued", "running", "failed"):
                continue
            for rev in exp.get("revs") or []:
                if rev.get("data") and not rev.get("error"):
                    yield exp.get("name") or rev.get("name") or rev["rev"][:7], rev["rev"], rev["data"]


def _value(metrics: dict, path: tuple[str, ...]) -> float | None:
    node = metrics
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return float(node) if isinstance(node, (int, float)) else None


def _measures(evaluation: dict) -> dict[str, float]:
    """The MEASURES of one run's metrics/evaluate/<run>.json, scaled (zero-shot in points)."""
    return {key: v * scale for key, path, scale in MEASURES if (v := _value(evaluation, path)) is not None}


def run_names(params: dict[str, object]) -> list[str]:
    """The runs the params ask for: text at every text K, image and both at every image K."""
    text_ks, image_ks = params["defend.text_ks"], params["defend.image_ks"]
    return ([f"text-k{k}" for k in text_ks] + [f"image-k{k}" for k in image_ks]
            + [f"both-k{k}" for k in image_ks])


def collect(exp_show: list[dict], code_paths: set[str] | None = None, *, design: dict = DEMO,
            reference: dict[str, object] | None = None) -> list[SeedRun]:
    """The experiments that ran the workspace's code and the reference params (default: the
    workspace's; seed and group params aside), one per (group, removal seed).
    `code_paths`: the code to compare (default: every `pipeline/` dep)."""
    workspace = next((b for b in exp_show if b.get("rev") == "workspace"), None)
    if workspace is None or not workspace.get("data"):
        raise PipelineError("dvc exp show gave no workspace row; run this in the repository root")
    free = set(design["seeds"]) | set(design["groups"])
    reference = {**_params(workspace["data"]), **(reference or {})}
    want_params = {k: v for k, v in reference.items() if k not in free}
    want_code = _code_hashes(workspace["data"])
    if code_paths is not None:
        want_code = {path: digest for path, digest in want_code.items() if path in code_paths}
    runs = run_names(reference)
    found: dict[tuple, SeedRun] = {}
    for name, rev, data in iter_revs(exp_show):
        params = _params(data)
        if {k: v for k, v in params.items() if k not in free} != want_params:
            continue
        code = _code_hashes(data)
        if not code or any(code.get(path) != digest for path, digest in want_code.items()):
            continue
        metrics = {path: (entry or {}).get("data") for path, entry in (data.get("metrics") or {}).items()}
        per_run = {}
        for run in runs:
            evaluation = metrics.get(str(metrics_file("evaluate", run)))
            if not evaluation:
                break
            per_run[run] = _measures(evaluation)
        else:
            group = tuple(params.get(k) for k in design["groups"])
            key = (group, int(params[REMOVAL_SEED]))
            if key in found:
                continue  # the same seeds under another name (e.g. the commit and the workspace)
            seed_run = found[key] = SeedRun(name, rev, group, key[1], runs=per_run, data=data)
            for run in runs:
                target = ((metrics.get(str(metrics_file("defend", run))) or {}).get("config") or {}).get("target")
                if target:
                    seed_run.targets[run] = target
    return sorted(found.values(), key=lambda r: (tuple(map(str, r.group)), r.removal_seed))


def _stats(values: list[float]) -> dict[str, float]:
    return {"mean": round(sum(values) / len(values), 6), "min": round(min(values), 6),
            "max": round(max(values), 6), "n": len(values)}


def group_label(names: tuple[str, ...], values: tuple) -> str:
    return ", ".join(f"{n}={v}" for n, v in zip(names, values))


def aggregate(seed_runs: list[SeedRun], min_seeds: int = 1, design: dict = DEMO) -> dict:
    """{"groups": {label: {"params": {...}, "removal_seeds": [...], "runs": {run: {measure: stats}}}},
    "experiments": [...]}; a label reads "world.seed=1234"."""
    groups: dict[tuple, list[SeedRun]] = {}
    for seed_run in seed_runs:
        groups.setdefault(seed_run.group, []).append(seed_run)
    out = {"groups": {}, "experiments": []}
    for group, members in groups.items():
        label = group_label(design["groups"], group)
        if len(members) < min_seeds:
            sets = " ".join(f"-S {n}={v}" for n, v in zip(design["groups"], group))
            raise PipelineError(f"{label}: {len(members)} removal seed(s) found "
                                f"({', '.join(m.name for m in members)}); at least {min_seeds} needed. "
                                f"Queue more: dvc exp run --queue {sets} -S {REMOVAL_SEED}=N")
        runs = {}
        for run in sorted(members[0].runs, key=lambda r: (ENCODERS.index(parse_run_name(r)[0]),
                                                          parse_run_name(r)[1])):
            runs[run] = {key: _stats([m.runs[run][key] for m in members if key in m.runs.get(run, {})])
                         for key, _, _ in MEASURES if all(key in m.runs.get(run, {}) for m in members)}
        out["groups"][label] = {"params": dict(zip(design["groups"], group)),
                                "removal_seeds": [m.removal_seed for m in members], "runs": runs,
                                "targets": check_targets(runs)}
    out["experiments"] = [{"name": r.name, "rev": r.rev, "group": group_label(design["groups"], r.group),
                           "removal_seed": r.removal_seed,
                           "text_target": sorted(set(r.targets.values()))} for r in seed_runs]
    return out


def _spread(stats: dict, fmt: str) -> str:
    if stats["min"] == stats["max"]:
        return fmt.format(stats["mean"])
    return f"{fmt.format(stats['mean'])} ({fmt.format(stats['min'])} to {fmt.format(stats['max'])})"


def markdown_table(summary: dict) -> str:
    """The README's results table: mean (min to max) over removal seeds, per group and run."""
    lines = ["| group | defended | K | removal seeds | TPR on the removed | wrongfully unlearned | "
             "FPR | newly identified non-members | zero-shot hair top-1 (pts) | zero-shot scenes top-1 (pts) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for group, entry in summary["groups"].items():
        seeds = ", ".join(str(s) for s in entry["removal_seeds"])
        for run, m in entry["runs"].items():
            encoder, k = parse_run_name(run)
            lines.append("| " + " | ".join([
                group, encoder, str(k), seeds,
                _spread(m["tpr_removed"], "{:.2f}"), _spread(m["wrongfully_unlearned_pct"], "{:.1f} %"),
                _spread(m["fpr"], "{:.3f}"), _spread(m["newly_identified_nonmembers"], "{:.1f}"),
                _spread(m["zeroshot_hair_top1_change_pts"], "{:+.1f}"),
                _spread(m["zeroshot_scenes_top1_change_pts"], "{:+.1f}")]) + " |")
    return "\n".join(lines)


def replace_block(text: str, block: str) -> str:
    """The README with the text between the seeds markers replaced by `block`."""
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        raise PipelineError(f"README.md has no {BEGIN} ... {END} block for the results table")
    return pattern.sub(lambda _: f"{BEGIN}\n{block}\n{END}", text, count=1)


def draw(summary: dict, path: Path) -> Path:
    """TPR on the removed and wrongfully unlearned per K: the mean, with the min-max band."""
    import matplotlib
    import matplotlib.ticker
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = list(summary["groups"])
    fig, axes = plt.subplots(2, len(groups), figsize=(4.2 * len(groups) + 1.5, 6.0), squeeze=False,
                             sharey="row")  # one scale per measure, so the worlds compare at a glance
    from pipeline.reports.figures import ENCODER_COLORS as colors  # the report's colour per encoder
    for col, group in enumerate(groups):
        entry = summary["groups"][group]
        by_encoder: dict[str, list[tuple[int, dict]]] = {}
        for run, m in entry["runs"].items():
            encoder, k = parse_run_name(run)
            by_encoder.setdefault(encoder, []).append((k, m))
        for row, (key, label) in enumerate((("tpr_removed", "TPR on the removed"),
                                            ("wrongfully_unlearned_pct", "wrongfully unlearned (%)"))):
            ax = axes[row][col]
            for encoder, points in by_encoder.items():
                points.sort()
                ks = [k for k, _ in points]
                ax.plot(ks, [m[key]["mean"] for _, m in points], marker="o", color=colors.get(encoder),
                        label=encoder)
                ax.fill_between(ks, [m[key]["min"] for _, m in points], [m[key]["max"] for _, m in points],
                                color=colors.get(encoder), alpha=0.2)
            ax.set_xscale("log", base=2)
            ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
            ax.set_xlabel("K (people removed)")
            ax.set_ylabel(label)
            ax.set_title(f"{group}\nremoval seeds {', '.join(map(str, entry['removal_seeds']))}", fontsize=8)
    axes[0][-1].legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), title="defended")
    fig.suptitle("Mean over removal seeds, band = min to max (test pool)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)
    return path


def missing_runs(seed_runs: list[SeedRun], worlds: list[int], removal_seeds: list[int],
                 workspace_world: int) -> list[list[str]]:
    """`dvc exp run --queue` commands for the (world seed, removal seed) pairs no experiment has."""
    have = {(r.group, r.removal_seed) for r in seed_runs}
    commands = []
    for world in worlds:
        for seed in removal_seeds:
            if ((world,), seed) in have:
                continue
            sets = (["-S", f"world.seed={world}"] if world != workspace_world else []) + ["-S", f"{REMOVAL_SEED}={seed}"]
            commands.append(["dvc", "exp", "run", "--queue", "-n", f"w{world}-s{seed}", *sets,
                             *EXPERIMENT_STAGES])
    return commands


def experiment_measures(exp_show: list[dict], name: str) -> tuple[dict[str, object], dict[str, dict[str, float]]]:
    """(params, run -> measure -> value) of one named experiment, whatever its params."""
    for exp_name, _, data in iter_revs(exp_show):
        if exp_name == name:
            params = _params(data)
            runs = {}
            for run in run_names(params):
                evaluation = ((data.get("metrics") or {}).get(str(metrics_file("evaluate", run))) or {}).get("data")
                if evaluation:
                    runs[run] = _measures(evaluation)
            return params, runs
    raise PipelineError(f"no finished experiment named {name!r} in dvc exp show -A")


def within_spread(summary: dict, label: str, runs: dict[str, dict[str, float]], slack: dict[str, float] | None = None) -> dict:
    """Per run and measure: the experiment's value, the group's [min, max], and whether it lies inside."""
    group = summary["groups"].get(label)
    if group is None:
        raise PipelineError(f"no group {label!r} in the seed summary; groups: {', '.join(summary['groups'])}")
    out = {}
    for run, measures in runs.items():
        for key, value in measures.items():
            stats = group["runs"].get(run, {}).get(key)
            if stats:
                out[f"{run} {key}"] = {"value": round(value, 6), "min": stats["min"], "max": stats["max"],
                                       "inside": stats["min"] - 1e-9 <= value <= stats["max"] + 1e-9}
    return out


def exp_show_json() -> list[dict]:
    done = subprocess.run(["dvc", "exp", "show", "--json", "-A", "--no-pager"], capture_output=True, text=True)
    if done.returncode != 0:
        raise PipelineError(f"dvc exp show failed: {done.stderr.strip().splitlines()[-1:] or done.returncode}")
    return json.loads(done.stdout)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--exp-json", type=Path, help="read a saved `dvc exp show --json -A` instead of running it")
    ap.add_argument("--min-seeds", type=int, default=1, help="refuse a group with fewer removal seeds")
    ap.add_argument("--no-readme", action="store_true", help="leave README.md alone")
    ap.add_argument("--profile", help="aggregate a profile's sweep (e.g. paper): its params are the "
                    "reference, groups = world seed x lambda")
    ap.add_argument("--queue", nargs=2, metavar=("WORLDS", "SEEDS"),
                    help="queue the missing experiments instead, e.g. --queue 1234,99 0,1,2 "
                         "(then: dvc queue start -j 1; rerun this without --queue when they are done)")
    ap.add_argument("--compare", metavar="EXPERIMENT",
                    help="say whether a named experiment (e.g. one run with other torch threads) lies "
                         "inside its world's spread over removal seeds; writes nothing")
    ap.add_argument("--output", type=Path, help=f"JSON summary (default {OUTPUT}; metrics/seeds-<profile>.json)")
    ap.add_argument("--ledger", type=Path, help=f"the recorded experiments, read and rewritten (default "
                    f"{ledger.LEDGER}; metrics/seed_runs-<profile>.json): they outlive the DVC cache")
    ap.add_argument("--figure", type=Path, help=f"PNG figure (default {FIGURE}; docs/figures/seeds-<profile>.png)")
    args = ap.parse_args(argv)
    try:
        exp_show = json.loads(args.exp_json.read_text()) if args.exp_json else exp_show_json()
        lock = yaml.safe_load(Path("dvc.lock").read_text()) if Path("dvc.lock").is_file() else {}
        design, reference = DEMO, None
        suffix = f"-{args.profile}" if args.profile else ""
        args.output = args.output or OUTPUT.with_name(f"seeds{suffix}.json")
        args.figure = args.figure or FIGURE.with_name(f"seeds{suffix}.png")
        args.ledger = args.ledger or ledger.LEDGER.with_name(f"seed_runs{suffix}.json")
        recorded = ledger.load(args.ledger)
        exp_show = exp_show + ledger.as_exp_show(recorded)   # live experiments first: they win a tie
        if args.profile:
            from pipeline.profiles import overrides_for
            design, reference = PAPER_SWEEP, overrides_for(args.profile)
        seed_runs = collect(exp_show, metric_code(lock) if lock else None, design=design, reference=reference)
        if args.queue:
            if args.profile:
                raise PipelineError("--queue fills in demo seeds; the paper sweep queues with "
                                    "python -m pipeline.profiles paper --sweep")
            worlds, removal = ([int(x) for x in arg.split(",")] for arg in args.queue)
            workspace_world = next(b for b in exp_show if b.get("rev") == "workspace")
            workspace_world = int(_params(workspace_world["data"])["world.seed"])
            for command in missing_runs(seed_runs, worlds, removal, workspace_world):
                print(" ".join(command), file=sys.stderr)
                done = subprocess.run(command, capture_output=True, text=True)
                if done.returncode != 0:
                    raise PipelineError(f"{' '.join(command)} failed: {done.stderr.strip()[-300:]}")
            return 0
        if not seed_runs:
            raise PipelineError("no experiment ran the workspace's code and params; run `dvc repro` "
                                "and queue seeds with `dvc exp run --queue -S defend.seed=N`")
        summary = aggregate(seed_runs, args.min_seeds, design)
        if args.compare:
            params, runs = experiment_measures(exp_show, args.compare)
            label = group_label(design["groups"], tuple(params.get(k) for k in design["groups"]))
            verdicts = within_spread(summary, label, runs)
            for key, v in verdicts.items():
                print(f"{key}: {v['value']:.4g} in [{v['min']:.4g}, {v['max']:.4g}]: {'yes' if v['inside'] else 'NO'}")
            outside = [k for k, v in verdicts.items() if not v["inside"]]
            print(f"{args.compare}: {len(verdicts) - len(outside)} of {len(verdicts)} inside the spread of {label}")
            return 0
        table = markdown_table(summary)
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(summary, indent=2, sort_keys=False) + "\n")
        ledger.write([(r.name, r.rev, r.data) for r in seed_runs], recorded, args.ledger)
        draw(summary, args.figure)
        if not args.no_readme:
            README.write_text(replace_block(README.read_text(), table))
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(table)
    for label, entry in summary["groups"].items():
        missed = [t for t, v in entry["targets"].items() if not v["met"]]
        print(f"{label}: targets missed: {', '.join(missed) if missed else 'none'}", file=sys.stderr)
    for r in seed_runs:
        print(f"  {r.name} ({r.rev if r.rev == 'workspace' else r.rev[:7]}): "
              f"{group_label(design['groups'], r.group)}, removal seed {r.removal_seed}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
