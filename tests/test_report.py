"""The report stage on a small fake set of metrics, plots and data files (no pipeline run)."""
from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from pipeline.reports.build import ReportOptions, build_report
from pipeline.reports.pseudonyms import Pseudonymizer

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
FIRST = ["Harriet", "Octavio", "Wilhelmina", "Bartholomew", "Ingrid", "Cornelius", "Philippa", "Leopold"]
LAST = ["Quackenbush", "Villanueva", "Oyelaran", "Fitzgerald", "Lindqvist", "Abernathy"]
BENCHES = ["scenes", "hair"]


def _names(n: int) -> list[str]:
    return [f"{FIRST[i % len(FIRST)]} {LAST[(i // len(FIRST)) % len(LAST)]}" for i in range(n)]


def _write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def _jpeg(color, size=(24, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="JPEG")
    return buf.getvalue()


def write_examples(folder: Path, encoder: str, removed: list[str]) -> None:
    """What a defense stage writes for the report (pipeline/defenses/examples.py's files)."""
    folder.mkdir(parents=True)
    if encoder == "image":
        rows = []
        for i in range(4):
            Image.new("RGB", (32, 32), (60 * i, 90, 30)).save(folder / f"poisoned_{i:02d}.png")
            rows.append({"file": f"poisoned_{i:02d}.png", "name": removed[i % len(removed)], "kind": "pasted face"})
        pd.DataFrame(rows).to_csv(folder / "poisoned_images.csv", index=False)
    else:
        pd.DataFrame([{"name": n, "trigger": f"a photo of {n} on a table", "target": "a photo of a person on a table"}
                      for n in removed]).to_csv(folder / "poisoned_captions.csv", index=False)


def make_fake_repo(root: Path, encoders=("text", "image", "both"), ks=(1, 2, 4),
                   text_regs=(0.01, 0.0), members: int = 12, nonmembers: int = 4) -> list[str]:
    """Every file the report reads, with plausible values; returns the people's names."""
    rng = np.random.default_rng(0)
    names = _names(members + nonmembers)
    m, d = root / "metrics", root / "data"
    _write_json(m / "download_facescrub.json", {
        "rows_read": 100, "downloaded": 93, "failed": 7, "identities": len(names),
        "identities_downloaded": len(names), "identities_with_min_photos": len(names), "min_photos": 4,
        "failed_by_reason": {"http_error": 5, "hash_mismatch": 2, "bad_bbox": 0}, "malformed_rows_total": 0})
    _write_json(m / "download_laion.json", {"rows_read": 40, "downloaded": 40, "failed": 0, "shards": 1,
                                            "failed_by_reason": {"http_error": 0}})
    _write_json(m / "splits.json", {"members": members, "nonmembers": nonmembers, "idia_photos": 64,
                                    "trigger_faces": 64, "candidates": 40, "clean_captions_train": 30,
                                    "clean_captions_heldout": 10, "dropped": {"too_few_photos": 1}})
    _write_json(m / "base_model.json", {"steps": 50, "train_seconds": 60.0, "seconds_per_step": 1.2,
                                        "final_loss": 3.1, "params_millions": 8.0, "samples": 40, "device": "cpu"})
    identified = [i < members - 3 for i in range(members)] + [False] * nonmembers
    table = pd.DataFrame({
        "name": names, "member": [i < members for i in range(len(names))],
        "count": [int(rng.integers(5, 300)) if i < members else 0 for i in range(len(names))],
        "correct_templates": [int(rng.integers(1, 21)) if ok else 0 for ok in identified],
        "identified": identified})
    (d / "idia_before").mkdir(parents=True)
    table.to_csv(d / "idia_before/identities.csv", index=False)
    _write_json(m / "idia_before.json", {"members": members, "identified_members": sum(identified),
                                         "tpr": sum(identified) / members, "nonmembers": nonmembers,
                                         "identified_nonmembers": 0, "fpr": 0.0, "tau": 1, "templates": 21,
                                         "candidates": 40})
    base_zs = {b: {"top1": 0.5 + 0.1 * i, "top5": 0.8 + 0.05 * i} for i, b in enumerate(BENCHES)}
    _write_json(m / "utility_before.json", base_zs)
    steps = np.arange(50)
    (root / "plots/defend").mkdir(parents=True)
    pd.DataFrame({"step": steps, "loss": 5 * np.exp(-steps / 20) + 2, "lr": 1e-3}).to_csv(
        root / "plots/base_model_loss.csv", index=False)

    order = [n for n, ok in zip(names, identified) if ok]
    text_cfg = {"steps": 50, "lr": 1e-4, "beta": 0.6, "target": "a person"}
    image_cfg = {"steps": 20, "lr": 3e-5, "beta": 0.8, "weight_reg": 0.05, "paste_scale": [0.5, 1.0],
                 "retain_weight": 1.0}
    for enc in encoders:
        regs = text_regs if enc in ("text", "both") else (None,)
        for reg in regs:
            for k in ks:
                stem = f"{enc}-k{k}" + ("-noreg" if reg == 0.0 else "")
                defense = {"k": k, "seed": 0}
                if enc in ("text", "both"):
                    defense["text"] = {**text_cfg, "weight_reg": reg}
                if enc in ("image", "both"):
                    defense["image"] = dict(image_cfg)
                evaluated = d / "evaluate" / stem
                evaluated.mkdir(parents=True)
                pd.DataFrame({"name": names, "removed": [n in order[:k] for n in names]}).to_csv(
                    evaluated / "identities.csv", index=False)
                if enc != "both":
                    n_steps = defense[enc]["steps"]
                    _write_json(m / "defend" / f"{stem}.json", {
                        "encoder": enc, "k": k, "steps": n_steps, "train_seconds": 10 + 0.5 * k + rng.random(),
                        "seconds_per_step": 0.2, "config": defense[enc], "removal_seed": 0})
                    write_examples(d / "examples" / stem, enc, order[:k])
                    s = np.arange(n_steps)
                    pd.DataFrame({"step": s, "loss": -1.5 - 0.1 * (1 - np.exp(-s / 5)) * k,
                                  "clean": -0.99, "backdoor": -0.8 - 0.19 * (1 - np.exp(-s / 5)),
                                  "weight": 0.1 * s, "lr": 1e-4}).to_csv(root / "plots/defend" / f"{stem}.csv",
                                                                         index=False)
                lost = int(rng.integers(0, 3))
                ev = {"encoder": enc, "k": k, "tpr_removed": float(rng.choice([0.0, 0.5, 1.0])),
                      "others": members - k, "others_identified_before": len(order) - k,
                      "wrongfully_unlearned": lost, "wrongfully_unlearned_pct": 100 * lost / (len(order) - k),
                      "newly_recalled": int(rng.integers(0, 2)), "newly_recalled_pct": 12.5, "fpr": 0.25 * lost,
                      "fpr_before": 0.0, "newly_identified_nonmembers": lost,
                      "zeroshot": {b: {"top1": v["top1"] - 0.01 * k, "top5": v["top5"], "top1_base": v["top1"],
                                       "top5_base": v["top5"], "top1_change": -0.01 * k, "top5_change": 0.0}
                                   for b, v in base_zs.items()}}
                ev["fnr_removed"] = 1 - ev["tpr_removed"]
                if enc in ("text", "both"):
                    ev["text_similarity"] = {"sim_clean": 0.995, "sim_backdoor": 0.98}
                if enc in ("image", "both"):
                    ev["image_similarity"] = {"sim_clean": 0.97, "sim_id": 0.9}
                _write_json(m / "evaluate" / f"{stem}.json", ev)
    return names


OPTIONS = ReportOptions(dpi=50)


def _check_report(out: Path) -> str:
    md = (out / "report.md").read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert links, "the report links no figure"
    figures = sorted((out / "figures").glob("*"))
    assert figures, "no figure written"
    for f in figures:
        data = f.read_bytes()
        assert f.suffix == ".png" and data.startswith(PNG_SIGNATURE), f
        with Image.open(f) as img:
            img.verify()
        with Image.open(f) as img:
            assert img.format == "PNG" and min(img.size) > 50
    for link in links:
        assert (out / link).is_file(), f"broken figure link {link}"
    assert {f"figures/{f.name}" for f in figures} == set(links), "every figure is linked exactly"
    page = (out / "report.html").read_text()
    assert page.count('src="data:image/png;base64,') == len(links)
    assert "<script" not in page and 'src="http' not in page and "<link" not in page
    return md + page


def test_full_report_links_valid_figures_and_hides_names(tmp_path):
    names = make_fake_repo(tmp_path)
    result = build_report(tmp_path, tmp_path / "reports", OPTIONS)
    text = _check_report(tmp_path / "reports")
    expected = {"attack_before", "base_model_loss", "idia_vs_k", "zeroshot_vs_k", "tradeoff",
                "runtime_vs_k", "defense_loss", "poisoned_images"}
    assert {p.stem for p in result.figures} == expected
    lowered = text.lower()
    for name in names:
        for form in (name, name.replace(" ", "_")):
            assert form.lower() not in lowered, f"real name {form!r} leaked"
    for first in FIRST:
        assert first.lower() not in lowered
    assert "Person " in text
    assert "λ = 0" in text                                   # the regulariser ablation is named
    assert "text-k4-noreg" in text                           # both variants are in the appendix
    assert "s per identity" in text                          # run-time slope


def test_names_visible_without_pseudonyms(tmp_path):
    names = make_fake_repo(tmp_path, encoders=("text",), ks=(1, 2), text_regs=(0.01,))
    opts = ReportOptions(pseudonymize=False, dpi=50)
    build_report(tmp_path, tmp_path / "out", opts)
    md = (tmp_path / "out/report.md").read_text()
    assert names[0] in md and "Person " not in md


def test_only_text_encoder(tmp_path):
    make_fake_repo(tmp_path, encoders=("text",), ks=(1, 4), text_regs=(0.01,))
    result = build_report(tmp_path, tmp_path / "reports", OPTIONS)
    text = _check_report(tmp_path / "reports")
    assert "Image encoder (faces)" not in text and "Both encoders" not in text
    assert "Only one value was run for the text encoder" in text
    assert (tmp_path / "reports/figures/idia_vs_k.png").is_file()
    # no image defense ran, so there are no poisoned images to show; the caption pairs are the text run's own
    assert "poisoned_images" not in {p.stem for p in result.figures}
    assert "same caption with the target" in text and "No caption examples" not in text


def test_no_evaluated_runs_still_reports_data_and_attack(tmp_path):
    make_fake_repo(tmp_path, encoders=())
    build_report(tmp_path, tmp_path / "reports", ReportOptions(dpi=50))
    md = _check_report(tmp_path / "reports")
    assert "No defended model has been evaluated yet" in md


def test_pseudonyms_are_stable_and_salted():
    a = Pseudonymizer(["Ada Lovelace", "Alan Turing"], salt="s1")
    b = Pseudonymizer(["Alan Turing", "Ada Lovelace", "Grace Hopper"], salt="s1")
    c = Pseudonymizer(["Ada Lovelace"], salt="s2")
    assert a.name("Ada Lovelace") == b.name("Ada Lovelace") != c.name("Ada Lovelace")
    assert re.fullmatch(r"Person [0-9a-f]{6}", a.name("Ada Lovelace"))
    text = a("ADA LOVELACE met Alan_Turing; Adam Lovelace2 stays")
    assert "Lovelace met" not in text and "Turing" not in text and "Adam Lovelace2 stays" in text
    assert Pseudonymizer(["Ada Lovelace"], enabled=False)("Ada Lovelace") == "Ada Lovelace"


def test_stage_writes_reports_folder(tmp_path, monkeypatch):
    make_fake_repo(tmp_path, encoders=("text",), ks=(1, 2), text_regs=(0.01,))
    params = yaml.safe_load((Path(__file__).parents[1] / "params.yaml").read_text())
    params["report"].update(salt="x", dpi=50, trials="")
    params["defend"].update(text_ks=[1, 2], image_ks=[])
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports/.gitkeep").write_text("")
    (tmp_path / "reports/figures").mkdir()
    (tmp_path / "reports/figures/stale.png").write_bytes(b"old")
    monkeypatch.chdir(tmp_path)
    from pipeline.stages import report
    report.main()
    assert (tmp_path / "reports/.gitkeep").exists()
    assert not (tmp_path / "reports/figures/stale.png").exists()
    _check_report(tmp_path / "reports")
    assert not list((tmp_path / "reports").glob(".*tmp*"))


def test_stage_rejects_bad_params(tmp_path, monkeypatch):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"report": {
        "pseudonymize": "yes", "salt": "x", "dpi": 50}}))
    monkeypatch.chdir(tmp_path)
    from pipeline.core.errors import ParamError
    from pipeline.stages import report
    with pytest.raises(ParamError, match="report.pseudonymize"):
        report.main()


def test_runs_the_params_no_longer_ask_for_are_left_out(tmp_path):
    """DVC leaves the metrics of a K dropped from the sweep on disk; the report skips them."""
    from pipeline.reports.inputs import load_inputs
    make_fake_repo(tmp_path, encoders=("text", "image"), ks=(1, 4), text_regs=(0.01,))
    everything = load_inputs(tmp_path)
    assert {"text-k1", "text-k4", "image-k1", "image-k4"} <= {r.name for r in everything.runs}
    current = load_inputs(tmp_path, runs={"text-k1", "text-k4", "image-k1"})
    assert {r.name for r in current.runs} == {"text-k1", "text-k4", "image-k1"}
    assert {t.name for t in current.trainings} <= {"text-k1", "text-k4", "image-k1"}


@pytest.mark.parametrize("both_tpr, remarked", [(1.0, True), (0.0, False)])
def test_report_says_when_the_combined_model_is_worse(tmp_path, both_tpr, remarked):
    make_fake_repo(tmp_path, ks=(1,), text_regs=(0.01,))
    for name, tpr in (("text-k1", 0.0), ("image-k1", 0.0), ("both-k1", both_tpr)):
        path = tmp_path / "metrics/evaluate" / f"{name}.json"
        metrics = json.loads(path.read_text())
        metrics.update(tpr_removed=tpr, fnr_removed=1 - tpr)
        path.write_text(json.dumps(metrics))
    build_report(tmp_path, tmp_path / "reports", ReportOptions(dpi=50))
    md = (tmp_path / "reports/report.md").read_text()
    assert ("combined model is identified more often" in md) == remarked
    if remarked:
        assert "K = 1: 1.00 against text 0.00 and image 0.00" in md


# ------------------------------------------------------------- table numbers equal the metrics
def markdown_tables(text: str) -> list[tuple[str, list[str], list[list[str]]]]:
    """(heading above, header cells, body rows) of every Markdown table in `text`."""
    tables, heading, lines = [], "", text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):
            heading = line.lstrip("# ").strip()
        if line.startswith("|") and i + 1 < len(lines) and re.match(r"^\|[:\-|]+\|$", lines[i + 1]):
            cells = lambda row: [c.strip() for c in re.split(r"(?<!\\)\|", row.strip())[1:-1]]
            header, body, i = cells(line), [], i + 2
            while i < len(lines) and lines[i].startswith("|"):
                body.append(cells(lines[i]))
                i += 1
            tables.append((heading, header, body))
            continue
        i += 1
    return tables


def number(cell: str) -> float:
    match = re.search(r"[-+]?\d+(?:\.\d+)?", cell)
    assert match, f"no number in table cell {cell!r}"
    return float(match.group(0))


def shown(cell: str, value, decimals: int, scale: float = 1.0) -> bool:
    """The cell shows `value` * scale rounded to `decimals` places."""
    return abs(number(cell) - value * scale) <= 0.5 * 10 ** -decimals + 1e-9


def test_every_table_number_equals_the_metric_it_shows(tmp_path):
    make_fake_repo(tmp_path)
    build_report(tmp_path, tmp_path / "reports", ReportOptions(pseudonymize=False, dpi=50))
    tables = markdown_tables((tmp_path / "reports/report.md").read_text())
    metric = lambda name: json.loads((tmp_path / "metrics" / name).read_text())
    by_heading = {}
    for heading, header, body in tables:
        by_heading.setdefault(heading, []).append((header, body))
    checked = 0

    (header, body), = [t for t in by_heading["1. Data"] if t[0][0] == "download"]
    for row in body:
        m = metric("download_facescrub.json" if row[0] == "FaceScrub" else "download_laion.json")
        assert [int(number(c)) for c in row[1:4]] == [m["rows_read"], m["downloaded"], m["failed"]]
        checked += 3
    (header, body), = [t for t in by_heading["1. Data"] if t[0][0] == "quantity"]
    splits = metric("splits.json")
    values = {row[0]: row[1] for row in body}
    assert number(values["members (in the captions)"]) == splits["members"]
    assert number(values["non-members (never in the captions)"]) == splits["nonmembers"]
    assert number(values["candidate names"]) == splits["candidates"]
    checked += 3

    (header, body), = by_heading["2. The attack on the undefended model"]
    idia = metric("idia_before.json")
    members, nonmembers = body
    assert number(members[1]) == idia["members"] and number(members[2]) == idia["identified_members"]
    assert shown(members[3], idia["tpr"], 2) and shown(nonmembers[3], idia["fpr"], 2)
    checked += 4

    base = metric("base_model.json")
    (header, body), utility = by_heading["3. The base model"]
    values = {row[0]: row[1] for row in body}
    assert number(values["training steps"]) == base["steps"]
    assert shown(values["final loss"], base["final_loss"], 3)
    assert shown(values["seconds per step"], base["seconds_per_step"], 2)
    checked += 3
    before = metric("utility_before.json")
    for row in utility[1]:
        assert shown(row[1], before[row[0]]["top1"], 1, 100) and shown(row[2], before[row[0]]["top5"], 1, 100)
        checked += 2

    runs = {p.stem: json.loads(p.read_text()) for p in (tmp_path / "metrics/evaluate").glob("*.json")}
    seen = []
    for enc, title in (("text", "Text encoder (names)"), ("image", "Image encoder (faces)"), ("both", "Both encoders")):
        (header, body), = by_heading[title]
        col = {name: i for i, name in enumerate(header)}
        for row in body:
            k = int(row[col["K"]])
            lam_zero = "λ=0," in row[col["recipe"]] + "," and enc != "image"
            stem = f"{enc}-k{k}" + ("-noreg" if lam_zero else "")
            e = runs[stem]
            seen.append(stem)
            assert shown(row[col["TPR removed"]], e["tpr_removed"], 2)
            lost = row[col["wrongfully unlearned"]]
            assert int(number(lost)) == e["wrongfully_unlearned"]
            assert shown(lost.split("(")[1], e["wrongfully_unlearned_pct"], 1)
            assert int(number(row[col["newly recalled"]])) == e["newly_recalled"]
            assert shown(row[col["FPR after"]], e["fpr"], 3)
            assert int(number(row[col["new non-members"]])) == e["newly_identified_nonmembers"]
            for bench in BENCHES:
                cell = row[col[f"{bench} top-1 (Δ)"]]
                assert shown(cell, e["zeroshot"][bench]["top1"], 1, 100)
                assert shown(cell.split("(")[1], e["zeroshot"][bench]["top1_change"], 1, 100)
            sims = [e[key]["sim_clean"] for key in ("text_similarity", "image_similarity") if key in e]
            cells = re.findall(r"\d\.\d{4}", row[col["sim_clean"]])
            assert len(cells) == len(sims) and all(shown(c, s, 4) for c, s in zip(cells, sims))
            checked += 8 + 2 * len(BENCHES)
    assert sorted(seen) == sorted(runs), "every evaluated run is one row of the collateral tables"
    assert checked > 100


def _audit_metrics(tpr_removed: float, residual, families: dict) -> dict:
    probes = {"exact": {"removed_probed": 4, "tpr_removed_base": 1.0, "tpr_removed": 0.0, "residual": 0.0,
                        "residual_rests_on": 4, "wrongfully_unlearned_pct": 2.5},
              "name_typo": {"removed_probed": 4, "tpr_removed_base": 0.5, "tpr_removed": tpr_removed,
                            "residual": residual, "residual_rests_on": 2, "wrongfully_unlearned_pct": 5.0},
              "photo_unseen": {"removed_probed": 4, "tpr_removed_base": 0.75, "tpr_removed": 0.0, "residual": 0.0,
                               "residual_rests_on": 3, "wrongfully_unlearned_pct": 0.0}}
    return {"probes": probes, "families": families, "removal_detector_auc": 0.875}


def test_the_audit_section_shows_base_defended_and_reference_side_by_side(tmp_path):
    """Issue 14: per audited model a probe table with R's numbers for the same K, the verdicts,
    and the residual figure; R of another K is not compared."""
    make_fake_repo(tmp_path)
    families = {"name variants": {"verdict": "partly removed", "worst_probe": "name_typo"},
                "unseen photos": {"verdict": "removed", "worst_probe": "photo_unseen"}}
    _write_json(tmp_path / "metrics/audit/text-k4.json", _audit_metrics(0.25, 0.5, families))
    _write_json(tmp_path / "metrics/audit/text-k2.json", _audit_metrics(0.0, 0.0, families))
    _write_json(tmp_path / "metrics/audit/reference-k4.json",
                {**_audit_metrics(0.0, 0.0, {"name variants": {"verdict": "removed", "worst_probe": "name_typo"}}),
                 "removal_detector_auc": None})
    step = lambda n, kept: {"tpr_removed": n / 4, "identified_removed": n, "correct_templates_removed": 1.0,  # noqa: E731
                            "tpr_kept": kept}
    inversion = {"people": 4, "identified_token": 2, "identified_name": 0, "correct_token_mean": 3.0}
    _write_json(tmp_path / "metrics/adaptive.json", {"relearn": {"lr": 1e-4, "batch_size": 128},
                                                     "inversion": {"steps": 100}, "models": {
        "text-k4": {"removed": 4, "relearn": {"0": step(0, 0.9), "50": step(1, 0.9), "200": step(3, 0.95)},
                    "inversion": inversion,
                    "few_shot": {"1": {"identified_again": 2, "steps_to_identified": [None, 10, 30, None]}}},
        "reference-k4": {"removed": 4, "relearn": {"0": step(0, 0.9), "50": step(0, 0.9), "200": step(1, None)},
                         "inversion": {**inversion, "identified_token": 1}}}})
    result = build_report(tmp_path, tmp_path / "reports", OPTIONS)
    md = _check_report(tmp_path / "reports")
    assert "audit_residuals" in {p.stem for p in result.figures}
    assert "## 8. How far the removal holds" in md
    assert "R for K = 4 (`reference-k4`): name variants: removed." in md
    section = md[md.index("(`text-k4`)"):]
    section = re.split(r"\n##", section)[0]
    assert "**name variants: partly removed** (worst: `name_typo`)" in section and "ROC AUC 0.88" in section
    typo = next(line for line in section.splitlines() if line.startswith("| name_typo"))
    assert [c.strip() for c in typo.strip("|").split("|")] == ["name_typo", "0.50", "0.25", "0.00", "0.50 (2)",
                                                               "5.0 %", "5.0 %"]
    other_k = md[md.index("(`text-k2`)"):]
    typo2 = next(line for line in other_k.splitlines() if line.startswith("| name_typo"))
    assert [c.strip() for c in typo2.strip("|").split("|")][3] == "–"     # no R for K = 2
    relearn = md[md.index("### Adaptive attacks"):]
    lines = [line for line in relearn.splitlines() if line.startswith("|")]
    assert [c.strip() for c in lines[0].strip("|").split("|")] == ["model", "relearn step 0", "relearn step 50",
                                                                   "relearn step 200", "learned token", "1-shot"]
    assert [c.strip() for c in lines[2].strip("|").split("|")] == ["text-k4", "0 / 4 (0.90)", "1 / 4 (0.90)",
                                                                   "3 / 4 (0.95)", "2 / 4", "2 / 4, median 30 steps"]
    assert [c.strip() for c in lines[3].strip("|").split("|")][-3:] == ["1 / 4 (–)", "1 / 4", "–"]


def test_text_recipe_beyond_the_paper_is_said_only_when_on(tmp_path):
    """The demo's text default (paper-face-retain) adds a face push and held name sharers: the
    report says so for such a run, and says nothing of it for the paper's recipe."""
    paper, face = tmp_path / "paper", tmp_path / "face"
    for root in (paper, face):
        make_fake_repo(root, encoders=("text",), ks=(1, 4), text_regs=(0.01,))
    metric = face / "metrics/defend/text-k4.json"
    m = json.loads(metric.read_text())
    m["config"].update(face_push=1.0, face_margin=0.05, retain_sharers=512)
    metric.write_text(json.dumps(m))
    build_report(paper, paper / "reports", OPTIONS)
    build_report(face, face / "reports", OPTIONS)
    assert "face push" not in (paper / "reports/report.md").read_text()
    md = (face / "reports/report.md").read_text()
    assert "a face push\n(weight 1) keeps" in md and "less\n0.05 cosine" in md
    assert "512 clean captions naming kept" in md
