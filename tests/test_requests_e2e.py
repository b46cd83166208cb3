"""Removal requests end to end (issue 15): the tiny world's request through `dvc repro`, its
proof against its metrics, and a second request in the chain."""
import json

import pandas as pd
import pytest
import torch
import yaml

from pipeline.requests.audit import audit_counts, audit_people
from tests.e2e_helpers import dvc

pytestmark = pytest.mark.slow


def test_the_demo_request_proof_states_what_the_metrics_say(reproduced_repo):
    repo = reproduced_repo
    proof = json.loads((repo / "reports/requests/demo-001.json").read_text())
    metrics = json.loads((repo / "metrics/requests/demo-001.json").read_text())
    request = yaml.safe_load((repo / "data/world/requests/demo-001/request.yaml").read_text())
    known, stranger = request["names"]
    before = pd.read_csv(repo / "data/requests/demo-001/attack/before.csv").set_index("name")
    candidates = set(pd.read_csv(repo / "data/splits/candidates.csv")["name"])
    # the world's stranger is in no FaceScrub list and no candidate list: the stage added them
    assert stranger not in candidates and known in candidates
    assert proof["towers"]["text"]["added_to_candidates"] == [stranger]
    assert before.loc[known, "identified"]  # the most-named member: the base model knows them
    assert set(proof["towers"]) == {"text", "image", "both"} == set(metrics)
    for tower, body in proof["towers"].items():
        after = pd.read_csv(repo / f"data/requests/demo-001/attack/{tower}.csv").set_index("name")
        for row in body["people"]:
            assert row["correct_before"] == before.loc[row["name"], "correct_templates"]
            assert row["correct_after"] == after.loc[row["name"], "correct_templates"]
            expected = ("not identified before" if row["correct_before"] < 1
                        else "removed" if row["correct_after"] < 1 else "not removed")
            assert row["verdict"] == expected
        for key in ("wrongfully_unlearned", "wrongfully_unlearned_pct", "fpr", "fpr_before",
                    "newly_identified_nonmembers"):
            assert body["costs"][key] == metrics[tower][key]
        assert body["costs"]["zeroshot_top1_change_pts"] == {
            b: round(100 * v["top1_change"], 3) for b, v in metrics[tower]["zeroshot"].items()}
        verdicts = [r["verdict"] for r in body["people"]]
        assert metrics[tower]["verdicts"] == {v: verdicts.count(v) for v in metrics[tower]["verdicts"]}
        assert len(body["checkpoints"]["output"]) == 64
        # the adversarial audit per person: its probe tables, read by the audit's rules, are the
        # proof's rows; the exact probe reuses embeddings of other models (the text model's
        # photos are the base model's, the both model's texts the text model's) and must still
        # agree with the attack run on the model itself
        probes = pd.read_csv(repo / f"data/requests/demo-001/audit/{tower}.csv")
        people = audit_people(pd.read_csv(repo / "data/requests/demo-001/audit/base.csv"), probes,
                              [r["name"] for r in body["people"]], tau=1)
        assert {r["name"]: r["audit"] for r in body["people"]} == people
        assert body["costs"]["audit"] == metrics[tower]["audit"] == audit_counts(people, request["names"])
        assert dict(zip(probes["name"], probes["exact"])) == after["correct_templates"].reindex(probes["name"]).to_dict()
    page = (repo / "reports/requests/demo-001.md").read_text()
    assert "## The both model" in page and "(still found by:" in page and f"Added to the attack's candidates (they were not among them): {stranger}" in page


def test_a_request_model_loads_with_stock_open_clip(reproduced_repo):
    import open_clip

    folder = reproduced_repo / "data/requests/demo-001/both"
    (config,) = folder.glob("*.json")
    open_clip.add_model_config(config)
    model, _, _ = open_clip.create_model_and_transforms(config.stem, pretrained=str(folder / "model.safetensors"))
    from safetensors.torch import load_file
    state = load_file(folder / "model.safetensors")
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items() if k in state)


def test_a_second_request_trains_only_itself_and_rechecks_the_first(reproduced_copy):
    repo = reproduced_copy
    before = pd.read_csv(repo / "data/requests/demo-001/attack/before.csv")
    first = yaml.safe_load((repo / "data/world/requests/demo-001/request.yaml").read_text())["names"]
    member = before[before["identified"] & ~before["name"].isin(first)]["name"].iloc[0]
    (repo / "requests/r2").mkdir(parents=True)
    (repo / "requests/r2/request.yaml").write_text(yaml.safe_dump({"id": "r2", "names": [member]}))
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["requests"]["chain"].append({"id": "r2", "after": "demo-001", "folder": "requests"})
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = dvc(["repro"], repo).stdout
    ran = [line.split("'")[1] for line in out.splitlines() if line.startswith("Running stage")]
    assert ran == ["request@1"], out[-3000:]
    proof = json.loads((repo / "reports/requests/r2.json").read_text())
    first_out = json.loads((repo / "reports/requests/demo-001.json").read_text())
    for tower, body in proof["towers"].items():
        rows = {r["name"]: r for r in body["people"]}
        assert set(rows) == {member, *first}
        assert rows[member]["request"] is None and {rows[n]["request"] for n in first} == {"demo-001"}
        # the chain: r2 starts from the model demo-001 produced, not from the base model
        if tower != "both":
            assert body["checkpoints"]["input"] == first_out["towers"][tower]["checkpoints"]["output"]
    removed = pd.read_csv(repo / "data/requests/r2/removed.csv")
    assert list(removed["name"]) == [*first, member] and list(removed["request"]) == ["demo-001"] * 2 + ["r2"]
