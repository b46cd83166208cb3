"""End to end: the real DVC pipeline on a tiny world, in a temporary copy of the repo."""
import json

import pandas as pd
import pytest
import yaml

from tests.e2e_helpers import TINY, dvc, make_repo_copy

pytestmark = pytest.mark.slow
KS = TINY["defend"]["text_ks"]
IMAGE_KS = TINY["defend"]["image_ks"]
RUNS = [("text", k) for k in KS] + [(e, k) for e in ("image", "both") for k in IMAGE_KS]


@pytest.fixture
def repo(reproduced_repo):
    return reproduced_repo


def metrics(repo, name):
    return json.loads((repo / "metrics" / name).read_text())


def test_attack_metrics_written(repo):
    m = metrics(repo, "idia_before.json")
    assert m["members"] >= 5 and m["nonmembers"] >= 2
    assert 0.0 <= m["tpr"] <= 1.0 and 0.0 <= m["fpr"] <= 1.0
    assert m["identified_members"] == round(m["tpr"] * m["members"])
    table = pd.read_csv(repo / "data/idia_before/identities.csv")
    assert len(table) == m["members"] + m["nonmembers"]
    assert table["correct_templates"].between(0, 21).all()
    assert (table["identified"] == (table["correct_templates"] >= m["tau"])).all()


def test_download_reports_count_everything(repo):
    fs = metrics(repo, "download_facescrub.json")
    assert fs["rows_read"] == 9 * 10 and fs["downloaded"] == fs["rows_read"]
    laion = metrics(repo, "download_laion.json")
    assert laion["downloaded"] == laion["rows_read"] > 0


@pytest.mark.parametrize("encoder, k", RUNS)
def test_every_defense_evaluated(repo, encoder, k):
    m = metrics(repo, f"evaluate/{encoder}-k{k}.json")
    assert m["k"] == k and m["encoder"] == encoder
    assert 0.0 <= m["tpr_removed"] <= 1.0
    assert m["wrongfully_unlearned"] <= m["others_identified_before"]
    assert set(m["zeroshot"]) == {"scenes", "hair"}
    assert ("text_similarity" in m) == (encoder in ("text", "both"))
    assert ("image_similarity" in m) == (encoder in ("image", "both"))
    removed = pd.read_csv(repo / f"data/defended/{encoder}-k{k}/removed.csv")["name"]
    assert len(removed) == k
    pools = pd.read_csv(repo / "data/splits/identities.csv").set_index("name")["pool"]
    assert (pools[removed] == "test").all(), "the reported sweep removes test-pool people only"


@pytest.mark.parametrize("encoder", ["image", "both"])
def test_image_and_combined_defenses_lower_the_removed_identities_templates(repo, encoder):
    m = metrics(repo, f"evaluate/{encoder}-k{IMAGE_KS[-1]}.json")
    assert m["correct_templates_removed_after"] < m["correct_templates_removed_before"]


def test_text_defense_lowers_the_removed_identities_templates(repo):
    m = metrics(repo, f"evaluate/text-k{KS[-1]}.json")
    assert m["correct_templates_removed_after"] < m["correct_templates_removed_before"]
    assert m["text_similarity"]["sim_backdoor"] > m["text_similarity"]["sim_backdoor_before"]


def test_text_defense_trains_the_default_face_push_on_trigger_photos(repo):
    """The default recipe (paper-face-retain) needs each removed person's trigger photos: the stage
    reads them and logs the push's hinge every step."""
    m = metrics(repo, f"defend/text-k{KS[-1]}.json")
    assert m["config"]["face_push"] == 1.0 and m["config"]["retain_sharers"] == 512
    log = pd.read_csv(repo / f"plots/defend/text-k{KS[-1]}.csv")
    assert "face" in log and log["face"].notna().all() and (log["face"] >= 0).all()


def test_text_and_image_defenses_of_one_k_remove_the_same_people(repo):
    """The combined model joins the two towers of one K: they must have removed the same people."""
    k = IMAGE_KS[-1]
    text = list(pd.read_csv(repo / f"data/defended/text-k{k}/removed.csv")["name"])
    image = list(pd.read_csv(repo / f"data/defended/image-k{k}/removed.csv")["name"])
    both = list(pd.read_csv(repo / f"data/defended/both-k{k}/removed.csv")["name"])
    assert len(text) == k and text == image == both


def test_image_defense_leaves_the_text_tower_alone(repo):
    from safetensors.torch import load_file
    base = load_file(repo / "data/base_model/model.safetensors")
    image = load_file(repo / f"data/defended/image-k{IMAGE_KS[0]}/model.safetensors")
    changed = {k for k in base if not (base[k] == image[k]).all()}
    assert changed and all(k.startswith("visual.") for k in changed)


def test_second_repro_is_a_noop(reproduced_copy):
    repo = reproduced_copy      # dvc writes its state and locks even when nothing runs
    out = dvc(["repro"], repo).stdout
    assert "Running stage" not in out
    assert "up to date" in dvc(["status"], repo).stdout


def test_no_output_holds_the_repository_path(repo):
    """Outputs do not depend on where the repository lives (issue 13): no stage output, plot,
    metric, report or lock entry contains the temporary repository's absolute path."""
    needle = str(repo.resolve()).encode()
    checked, holding = 0, []
    for top in ("data", "metrics", "plots", "reports", "dvc.lock"):
        root = repo / top
        for path in ([root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())):
            checked += 1
            data = path.read_bytes()
            if path.suffix == ".parquet":  # compressed pages: look at the values
                data = pd.read_parquet(path).astype(str).to_csv().encode()
            if needle in data:
                holding.append(str(path.relative_to(repo)))
    assert checked > 100 and not holding, holding


def lock_outs(repo, stages) -> dict:
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    return {stage: {o["path"]: o["md5"] for o in lock[stage]["outs"]} for stage in stages}


def test_a_clone_in_another_folder_downloads_to_the_same_hashes(repo, tmp_path):
    """Issue 13 point 1: the download stages in a second copy, at another path of another
    length, give byte-identical outputs (same DVC hashes) as the first."""
    (tmp_path / "somewhere" / "else entirely").mkdir(parents=True)
    other = make_repo_copy(tmp_path / "somewhere" / "else entirely")
    stages = ["world", "download_facescrub", "download_laion"]
    done = dvc(["repro", *stages[1:]], other)
    assert done.returncode == 0, done.stderr
    assert lock_outs(other, stages) == lock_outs(repo, stages)


def test_the_audit_probes_every_model_and_agrees_with_the_attack(repo):
    """Issue 14: the base model's exact probe is the attack itself; every defended model gets
    per-probe rates in [0, 1] and a verdict per family."""
    from pipeline.audit.probes import VERDICTS

    base = pd.read_csv(repo / "data/audit/base/probes.csv").set_index("name")
    attack = pd.read_csv(repo / "data/idia_before/identities.csv").set_index("name")
    assert base["exact"].to_dict() == attack["correct_templates"].to_dict()
    for encoder, k in RUNS:
        m = metrics(repo, f"audit/{encoder}-k{k}.json")
        assert {"exact", "name_typo", "prompts_heldout", "photo_mirrored"} <= set(m["probes"])
        for probe in m["probes"].values():
            for key in ("tpr_removed", "tpr_removed_base", "residual"):
                assert probe[key] is None or 0.0 <= probe[key] <= 1.0
            assert 0.0 <= probe["wrongfully_unlearned_pct"] <= 100.0
        assert {f["verdict"] for f in m["families"].values()} <= set(VERDICTS)
        auc = m["removal_detector_auc"]
        assert (auc is None) == (encoder == "image") and (auc is None or 0.0 <= auc <= 1.0)


def test_the_reference_never_saw_the_removed_people_and_forgot_them(repo):
    """Issue 14 point 1: R is the base model retrained without every caption naming a removed
    person; its corpus filter dropped captions, it removed the same people as the defenses of
    that K, and the attack identifies fewer of them on R than on the base model."""
    k = TINY["audit"]["reference_k"]
    ref = metrics(repo, f"reference/k{k}.json")
    base = metrics(repo, "base_model.json")
    assert ref["samples_dropped"] >= 1 and ref["k"] == k
    assert ref["samples"] == base["samples"] - ref["samples_dropped"]
    removed = pd.read_csv(repo / f"data/reference/k{k}/removed.csv")["name"].tolist()
    assert removed == pd.read_csv(repo / f"data/defended/text-k{k}/removed.csv")["name"].tolist()
    exact = metrics(repo, f"audit/reference-k{k}.json")["probes"]["exact"]
    assert exact["tpr_removed_base"] > 0
    assert exact["tpr_removed"] < exact["tpr_removed_base"]



def test_adaptive_attacks_start_where_the_attack_left_each_model(repo):
    """Relearning and the learned token on the models the tiny world lists: the attack at step 0,
    and the attack with each removed person's name, are the evaluate / audit stages' results for
    that model; every checkpoint and every removed person is recorded."""
    a = TINY["audit"]["adaptive"]
    m = metrics(repo, "adaptive.json")
    assert list(m["models"]) == a["models"]
    for name, result in m["models"].items():
        assert list(result["relearn"]) == ["0", *map(str, a["relearn"]["checkpoints"])]
        for row in result["relearn"].values():
            assert 0.0 <= row["tpr_removed"] <= 1.0 and row["identified_removed"] <= result["removed"]
        assert pd.read_csv(repo / f"data/adaptive/{name}/relearn.csv")["step"].tolist() == \
            [0, *a["relearn"]["checkpoints"]]
        tokens = pd.read_csv(repo / f"data/adaptive/{name}/inversion.csv")
        assert len(tokens) == result["removed"] and tokens["correct_token"].between(0, 21).all()
        shots = pd.read_csv(repo / f"data/adaptive/{name}/few_shot.csv")
        assert len(shots) == result["removed"] * len(a["few_shot"]["shots"])
        found = shots["steps_to_identified"].dropna()
        # 0: identified before any fine-tuning (the defense did not remove them)
        assert found.isin(range(0, a["few_shot"]["max_steps"] + 1, a["few_shot"]["every"])).all()
        assert result["few_shot"]["1"]["identified_again"] == int(shots.loc[shots["shots"] == 1, "steps_to_identified"].notna().sum())
        exact = pd.read_csv(repo / f"data/audit/{name}/probes.csv").set_index("name")["exact"]
        assert tokens.set_index("name")["correct_name"].to_dict() == exact[tokens["name"]].to_dict()
    image = m["models"][f"image-k{IMAGE_KS[-1]}"]["relearn"]["0"]
    assert image["tpr_removed"] == metrics(repo, f"evaluate/image-k{IMAGE_KS[-1]}.json")["tpr_removed"]
    k = TINY["audit"]["reference_k"]
    ref = m["models"][f"reference-k{k}"]["relearn"]["0"]
    assert ref["tpr_removed"] == metrics(repo, f"audit/reference-k{k}.json")["probes"]["exact"]["tpr_removed"]
