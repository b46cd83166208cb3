"""Aggregation over removal seeds (pipeline/experiments/seeds.py), on `dvc exp show --json -A`
shaped input: which experiments count, and what the mean and spread are."""
import copy
import json
from pathlib import Path

import pytest

from pipeline.core.errors import PipelineError
from pipeline.experiments import seeds

REPO = Path(__file__).resolve().parents[1]
PARAMS = {"world": {"seed": 1234}, "defend": {"seed": 0, "text_ks": [1], "image_ks": [1],
                                             "text": {"beta": 0.6}}}
CODE = {"pipeline/defenses": {"hash": "aaa.dir"}, "pipeline/core": {"hash": "bbb.dir"},
        "data/splits": {"hash": "data-differs-per-world.dir"}}


def evaluation(tpr: float, collateral: float, fpr: float = 0.0, hair: float = -0.01) -> dict:
    return {"tpr_removed": tpr, "wrongfully_unlearned_pct": collateral, "fpr": fpr,
            "newly_identified_nonmembers": int(fpr * 40),
            "zeroshot": {"hair": {"top1_change": hair}, "scenes": {"top1_change": 0.002}}}


def rev_data(world: int, removal: int, tpr: float, *, code=CODE, beta=0.6, target="Ella Anderson") -> dict:
    params = copy.deepcopy(PARAMS)
    params["world"]["seed"], params["defend"]["seed"] = world, removal
    params["defend"]["text"]["beta"] = beta
    metrics = {f"metrics/evaluate/{run}.json": {"data": evaluation(tpr, 10 * tpr + removal)}
               for run in ("text-k1", "image-k1", "both-k1")}
    metrics["metrics/defend/text-k1.json"] = {"data": {"config": {"target": target}}}
    return {"params": {"params.yaml": {"data": params}}, "metrics": metrics, "deps": copy.deepcopy(code)}


def experiment(name: str, data: dict, state: str | None = None) -> dict:
    return {"name": name, "executor": {"state": state} if state else None,
            "revs": [{"rev": f"{name}-sha", "name": name, "data": data, "error": None}]}


def exp_show() -> list[dict]:
    return [
        {"rev": "workspace", "name": None, "data": rev_data(1234, 0, 0.0), "error": None, "experiments": None},
        {"rev": "c0ffee" * 6 + "abcd", "name": "main", "data": rev_data(1234, 0, 0.0), "error": None,
         "experiments": [
             experiment("s1", rev_data(1234, 1, 0.5)),
             experiment("s2", rev_data(1234, 2, 0.25)),
             experiment("w99", rev_data(99, 0, 1.0, target="Iris Pendleby")),
             experiment("queued", rev_data(1234, 3, 0.9), state="queued"),
             experiment("failed", rev_data(1234, 4, 0.9), state="failed"),
             experiment("other-beta", rev_data(1234, 5, 0.9, beta=0.7)),
             experiment("old-code", rev_data(1234, 6, 0.9, code={**CODE, "pipeline/defenses": {"hash": "old.dir"}})),
         ]},
    ]


def test_only_finished_experiments_of_the_workspace_code_and_params_count():
    runs = seeds.collect(exp_show())
    assert [(r.name, r.group, r.removal_seed) for r in runs] == [
        ("workspace", (1234,), 0), ("s1", (1234,), 1), ("s2", (1234,), 2), ("w99", (99,), 0)]
    assert runs[-1].targets == {"text-k1": "Iris Pendleby"}   # the placeholder each seed used


def test_mean_and_min_max_per_world_and_run():
    summary = seeds.aggregate(seeds.collect(exp_show()))
    assert list(summary["groups"]) == ["world.seed=1234", "world.seed=99"]
    world = summary["groups"]["world.seed=1234"]
    assert world["params"] == {"world.seed": 1234}
    assert world["removal_seeds"] == [0, 1, 2]
    assert list(world["runs"]) == ["text-k1", "image-k1", "both-k1"]
    tpr = world["runs"]["image-k1"]["tpr_removed"]
    assert tpr == {"mean": 0.25, "min": 0.0, "max": 0.5, "n": 3}
    collateral = world["runs"]["text-k1"]["wrongfully_unlearned_pct"]   # 10 * tpr + seed: 0, 6, 4.5
    assert collateral["mean"] == pytest.approx(3.5) and (collateral["min"], collateral["max"]) == (0.0, 6.0)
    assert world["runs"]["both-k1"]["zeroshot_hair_top1_change_pts"]["mean"] == pytest.approx(-1.0)
    assert summary["groups"]["world.seed=99"]["runs"]["text-k1"]["tpr_removed"]["n"] == 1


def test_a_world_with_too_few_seeds_is_refused_with_the_command_to_queue_more():
    with pytest.raises(PipelineError, match=r"world.seed=99: 1 removal seed.*dvc exp run --queue -S world.seed=99 -S defend.seed=N"):
        seeds.aggregate(seeds.collect(exp_show()), min_seeds=3)


def test_no_workspace_row_is_one_clear_error():
    with pytest.raises(PipelineError, match="no workspace row"):
        seeds.collect(exp_show()[1:])


def test_table_shows_mean_and_spread_and_replaces_only_the_marked_block():
    table = seeds.markdown_table(seeds.aggregate(seeds.collect(exp_show())))
    row = next(line for line in table.splitlines() if line.startswith("| world.seed=1234 | image | 1 |"))
    assert "| 0, 1, 2 | 0.25 (0.00 to 0.50) |" in row
    assert "| world.seed=99 | text | 1 | 0 | 1.00 |" in table          # one seed: no spread to show
    readme = f"intro\n{seeds.BEGIN}\nold table\n{seeds.END}\nafter\n"
    new = seeds.replace_block(readme, table)
    assert new.startswith("intro\n") and new.endswith(f"{seeds.END}\nafter\n") and "old table" not in new
    with pytest.raises(PipelineError, match="no <!-- seeds:begin -->"):
        seeds.replace_block("no markers here", table)


def test_cli_writes_the_metrics_the_figure_and_the_readme_block(tmp_path, monkeypatch):
    saved = tmp_path / "exp.json"
    saved.write_text(json.dumps(exp_show()))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "README.md").write_text(f"# r\n{seeds.BEGIN}\n{seeds.END}\n")
    assert seeds.main(["--exp-json", str(saved), "--min-seeds", "1"]) == 0
    written = json.loads((tmp_path / seeds.OUTPUT).read_text())
    assert written["groups"]["world.seed=1234"]["runs"]["image-k1"]["tpr_removed"]["mean"] == 0.25
    assert (tmp_path / seeds.FIGURE).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert seeds.markdown_table(written) in (tmp_path / "README.md").read_text()
    assert seeds.main(["--exp-json", str(saved), "--min-seeds", "5"]) == 1   # refused, one line


def test_committed_readme_table_is_the_committed_seed_metrics():
    summary = json.loads((REPO / seeds.OUTPUT).read_text())
    assert seeds.markdown_table(summary) in (REPO / "README.md").read_text()


def test_report_code_may_differ_but_metric_code_may_not():
    lock = {"stages": {"defend": {"deps": [{"path": "pipeline/defenses"}, {"path": "data/splits"}]},
                       "report": {"deps": [{"path": "pipeline/reports"}, {"path": "pipeline/core"}]}}}
    assert seeds.metric_code(lock) == {"pipeline/defenses"}
    shown = exp_show()
    shown[1]["experiments"].append(experiment("new-report", rev_data(1234, 7, 0.0, code={
        **CODE, "pipeline/core": {"hash": "changed.dir"}})))
    names = [r.name for r in seeds.collect(shown, seeds.metric_code(lock))]
    assert "new-report" in names and "old-code" not in names
    assert "new-report" not in [r.name for r in seeds.collect(shown)]


def test_the_paper_sweep_groups_by_lambda_and_varies_the_training_seeds_with_the_removal_seed():
    def sweep_run(seed: int, reg: float, tpr: float) -> dict:
        data = rev_data(1234, seed, tpr, beta=0.9)
        params = data["params"]["params.yaml"]["data"]["defend"]
        params["text"].update(seed=seed, weight_reg=reg)
        params["image_recipes"] = {"paper": {"seed": seed, "weight_reg": reg}}
        return data

    shown = exp_show()
    shown[1]["experiments"] = [experiment(f"paper-seed{s}{'-noreg' if r == 0 else ''}", sweep_run(s, r, t))
                               for s, r, t in [(0, 0.01, 0.0), (1, 0.01, 0.5), (0, 0.0, 1.0), (1, 0.0, 1.0)]]
    reference = {"defend.text.beta": 0.9}     # what the profile sets (the workspace has 0.6)
    runs = seeds.collect(shown, design=seeds.PAPER_SWEEP, reference=reference)
    summary = seeds.aggregate(runs, min_seeds=2, design=seeds.PAPER_SWEEP)
    with_reg = "world.seed=1234, defend.text.weight_reg=0.01, defend.image_recipes.paper.weight_reg=0.01"
    no_reg = "world.seed=1234, defend.text.weight_reg=0.0, defend.image_recipes.paper.weight_reg=0.0"
    assert set(summary["groups"]) == {with_reg, no_reg}
    assert summary["groups"][with_reg]["runs"]["text-k1"]["tpr_removed"] == {"mean": 0.25, "min": 0.0, "max": 0.5, "n": 2}
    assert summary["groups"][no_reg]["removal_seeds"] == [0, 1]


def test_queue_mode_names_only_the_missing_pairs():
    runs = seeds.collect(exp_show())
    commands = seeds.missing_runs(runs, [1234, 99], [0, 1, 2], workspace_world=1234)
    assert [c[5] for c in commands] == ["w99-s1", "w99-s2"]
    assert commands[0] == ["dvc", "exp", "run", "--queue", "-n", "w99-s1", "-S", "world.seed=99", "-S", "defend.seed=1",
                           "evaluate_text", "evaluate_towers"]
    assert seeds.missing_runs(runs, [1234], [3], 1234)[0][-4:-2] == ["-S", "defend.seed=3"]


def test_targets_are_checked_on_the_means():
    runs = {"image-k4": {"tpr_removed": {"mean": 0.25}, "zeroshot_hair_top1_change_pts": {"mean": -1.2}},
            "both-k1": {"tpr_removed": {"mean": 0.1}}}
    out = seeds.check_targets(runs)
    assert out["image-k4 tpr_removed"]["met"] is True                 # on the limit counts as met
    assert out["image-k4 zeroshot_hair_top1_change_pts"]["met"] is False   # |-1.2| > 1 point
    assert out["both-k1 tpr_removed"]["met"] is False
    assert "both-k4 tpr_removed" not in out                            # not measured, not claimed


def test_compare_a_thread_count_experiment_with_the_spread():
    shown = exp_show()
    threads = rev_data(1234, 0, 0.9)
    threads["params"]["params.yaml"]["data"]["defend"]["threads"] = 1   # other params: not aggregated
    shown[1]["experiments"].append(experiment("threads1", threads))
    summary = seeds.aggregate(seeds.collect(shown))
    assert "threads1" not in {e["name"] for e in summary["experiments"]}
    params, runs = seeds.experiment_measures(shown, "threads1")
    verdicts = seeds.within_spread(summary, "world.seed=1234", runs)
    assert verdicts["image-k1 tpr_removed"] == {"value": 0.9, "min": 0.0, "max": 0.5, "inside": False}
    assert verdicts["text-k1 fpr"] == {"value": 0.0, "min": 0.0, "max": 0.0, "inside": True}
    with pytest.raises(PipelineError, match="no finished experiment named 'nope'"):
        seeds.experiment_measures(shown, "nope")


def test_recorded_experiments_count_after_the_dvc_cache_is_gone(tmp_path):
    """A fresh clone has no experiment refs: the ledger written by one aggregation is read back
    by the next, with the same code and params check as live experiments."""
    from pipeline.experiments import ledger
    counted = seeds.collect(exp_show())
    path = ledger.write([(r.name, r.rev, r.data) for r in counted], [], tmp_path / "seed_runs.json")
    recorded = ledger.load(path)
    assert [r["name"] for r in recorded] == ["workspace", "s1", "s2", "w99"]
    assert recorded[0]["rev"].startswith("workspace-")          # not taken for a live workspace
    assert set(recorded[1]["data"]["deps"]) == {"pipeline/defenses", "pipeline/core"}   # code only
    assert recorded[1]["recorded"]["cpu"]
    fresh = [exp_show()[0]] + ledger.as_exp_show(recorded)      # a clone: workspace row, no experiments
    again = seeds.collect(fresh)
    assert [(r.group, r.removal_seed) for r in again] == [((1234,), 0), ((1234,), 1), ((1234,), 2), ((99,), 0)]
    assert seeds.aggregate(again)["groups"] == seeds.aggregate(counted)["groups"]
    # new code in the workspace: the recorded rows no longer count, as live ones would not
    changed = copy.deepcopy(fresh)
    changed[0]["data"]["deps"]["pipeline/defenses"]["hash"] = "new.dir"
    assert [r.rev for r in seeds.collect(changed)] == ["workspace"]
    # rewriting keeps the first record of a row whose data did not change
    rewritten = ledger.load(ledger.write([(r.name, r.rev, r.data) for r in again], recorded, path))
    assert [(r["name"], r["rev"], r["recorded"]) for r in rewritten] == \
        [(r["name"], r["rev"], r["recorded"]) for r in recorded]


def test_cli_reads_and_writes_the_ledger(tmp_path, monkeypatch):
    saved = tmp_path / "exp.json"
    saved.write_text(json.dumps(exp_show()))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "README.md").write_text(f"# r\n{seeds.BEGIN}\n{seeds.END}\n")
    assert seeds.main(["--exp-json", str(saved), "--min-seeds", "3"]) == 1    # world 99 has one seed
    assert seeds.main(["--exp-json", str(saved), "--min-seeds", "1"]) == 0
    first = (tmp_path / seeds.OUTPUT).read_text()
    clone = tmp_path / "clone.json"                                   # the experiments are gone
    clone.write_text(json.dumps([exp_show()[0]]))
    assert seeds.main(["--exp-json", str(clone), "--min-seeds", "1"]) == 0
    assert json.loads((tmp_path / seeds.OUTPUT).read_text())["groups"] == json.loads(first)["groups"]
