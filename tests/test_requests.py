"""Removal requests: the request file and the chain of requests (pipeline/requests/request.py)."""
import pytest
import yaml

from pipeline.core.errors import PipelineError
from pipeline.requests.request import TOWERS, load_chain, load_request, photo_folder


def write(folder, rid, **fields):
    (folder / rid).mkdir(parents=True, exist_ok=True)
    body = {"id": rid, **fields}
    (folder / rid / "request.yaml").write_text(yaml.safe_dump(body))
    return folder / rid


def test_a_request_with_defaults_and_one_with_everything(tmp_path):
    plain = load_request(write(tmp_path, "r1", names=["Ella  Anderson", "Bob O'Stone"]))
    assert plain.names == ("Ella Anderson", "Bob O'Stone") and plain.towers == TOWERS and plain.photos == ""
    assert plain.needs_photos
    (tmp_path / "r2" / "photos").mkdir(parents=True)
    full = load_request(write(tmp_path, "r2", names=["Ann Lee"], towers=["both", "text"]))
    assert full.towers == ("text", "both") and full.photos == str(tmp_path / "r2" / "photos")
    assert not load_request(write(tmp_path, "r3", names=["Ann Lee"], towers=["text"])).needs_photos


@pytest.mark.parametrize("fields, message", [
    ({"names": []}, "an empty request removes no one"),
    ({}, "names must be a non-empty list"),
    ({"names": ["Ann Lee", "Ann  Lee"]}, "'Ann Lee' appears twice"),
    ({"names": ["Ann Lee", 5]}, "names holds 5"),
    ({"names": ["../.."]}, "no letter or digit"),
    ({"names": ["Ann Lee"], "towers": ["face"]}, "towers = \\['face'\\]"),
    ({"names": ["Ann Lee"], "towers": ["text", "text"]}, "distinct entries"),
    ({"names": ["Ann Lee"], "reason": "gdpr"}, "unknown key 'reason'"),
])
def test_bad_requests_are_one_clear_line(tmp_path, fields, message):
    with pytest.raises(PipelineError, match=message):
        load_request(write(tmp_path, "bad", **fields))


def test_the_id_must_be_the_folder_name_and_a_safe_name(tmp_path):
    (tmp_path / "r9").mkdir()
    path = tmp_path / "r9" / "request.yaml"
    path.write_text(yaml.safe_dump({"id": "r8", "names": ["Ann Lee"]}))
    with pytest.raises(PipelineError, match="must equal its folder's name"):
        load_request(tmp_path / "r9")
    path.write_text(yaml.safe_dump({"id": "../r9", "names": ["Ann Lee"]}))
    with pytest.raises(PipelineError, match="not allowed as a file name"):
        load_request(tmp_path / "r9")
    path.write_text("names: [unclosed")
    with pytest.raises(PipelineError, match="not valid YAML"):
        load_request(tmp_path / "r9")


def test_a_chain_starts_from_base_and_each_request_from_the_one_before(tmp_path):
    write(tmp_path, "a", names=["Ann Lee"])
    write(tmp_path, "b", names=["Bob Stone"], towers=["text"])
    chain = load_chain([{"id": "a", "after": "base"}, {"id": "b", "after": "a"}], tmp_path)
    assert [(r.id, r.after) for r in chain] == [("a", "base"), ("b", "a")]
    with pytest.raises(PipelineError, match=r"requests.chain\[1\] \(b\) must start from 'a'"):
        load_chain([{"id": "a", "after": "base"}, {"id": "b", "after": "base"}], tmp_path)
    with pytest.raises(PipelineError, match="request id 'a' is used twice"):
        load_chain([{"id": "a", "after": "base"}, {"id": "a", "after": "a"}], tmp_path)
    with pytest.raises(PipelineError, match=r"request file .*c/request.yaml not found"):
        load_chain([{"id": "c", "after": "base"}], tmp_path)
    write(tmp_path, "d", names=["Ann Lee"])
    with pytest.raises(PipelineError, match="'Ann Lee' was removed by request a already"):
        load_chain([{"id": "a", "after": "base"}, {"id": "d", "after": "a"}], tmp_path)
    assert load_chain([], tmp_path) == []


def test_photo_folder_is_the_slug_of_the_name(tmp_path):
    (tmp_path / "requests" / "r1" / "photos" / "Bob_O'Stone").mkdir(parents=True)
    request = load_request(write(tmp_path / "requests", "r1", names=["Bob O'Stone", "Ann Lee"]))
    assert photo_folder(request, "Bob O'Stone").name == "Bob_O'Stone"
    assert photo_folder(request, "Ann Lee") is None


def test_the_proof_copies_the_metrics_and_states_each_verdict_with_its_rule(tmp_path):
    import pandas as pd

    from pipeline.requests.proof import RULES, build_proof, people_rows, render_markdown
    from pipeline.world.paper.sources import sha256_file

    before = pd.DataFrame({"name": ["Ann Lee", "Bob Stone", "Cy Twombly", "Dee Fill"],
                           "correct_templates": [9, 0, 5, 4]})
    after = pd.DataFrame({"name": ["Ann Lee", "Bob Stone", "Cy Twombly", "Dee Fill"],
                          "correct_templates": [0, 0, 2, 0]})
    people = people_rows(["Ann Lee", "Bob Stone"], before, after, tau=1,
                         earlier={"Cy Twombly": "r0", "Dee Fill": "r0"})
    assert [(p["name"], p["verdict"]) for p in people] == [
        ("Ann Lee", "removed"), ("Bob Stone", "not identified before"),
        ("Cy Twombly", "not removed"), ("Dee Fill", "removed")]
    assert people[2]["request"] == "r0" and people[1]["rule"] == RULES["not identified before"]
    metrics = {"wrongfully_unlearned": 3, "wrongfully_unlearned_pct": 3.9, "fpr": 0.025, "fpr_before": 0.0,
               "newly_identified_nonmembers": 1, "newly_recalled": 0,
               "zeroshot": {"hair": {"top1_change": -0.0125}}, "text_similarity": {"sim_clean": 0.99}}
    (tmp_path / "m.safetensors").write_bytes(b"weights")
    proof = build_proof("r1", "both", people, metrics, checkpoints={"input": "a" * 64,
                        "output": sha256_file(tmp_path / "m.safetensors")}, params={"defend.seed": 0},
                        code_version="abc1234", date="2026-12-03", added_to_candidates=["Bob Stone"],
                        unreadable_photos={"Bob Stone": ["x.jpg: cannot identify image file"]})
    for key in ("wrongfully_unlearned", "wrongfully_unlearned_pct", "fpr", "newly_identified_nonmembers"):
        assert proof["costs"][key] == metrics[key]
    assert proof["costs"]["zeroshot_top1_change_pts"] == {"hair": -1.25}
    import hashlib
    assert proof["checkpoints"]["output"] == hashlib.sha256(b"weights").hexdigest()
    page = render_markdown({"request": "r1", "after": "r0", "names": ["Ann Lee", "Bob Stone"], "towers": {"both": proof}})
    assert "| Cy Twombly | r0 | 5/21 | 2/21 | not removed |" in page
    assert "members wrongfully unlearned: 3 (3.9 %)" in page and "hair -1.25 pts" in page
    assert "Added to the attack's candidates (they were not among them): Bob Stone" in page
    assert "x.jpg: cannot identify image file" in page and "2026-12-03" in page


def _tables():
    import pandas as pd
    ids = pd.DataFrame({"name": ["Ann Lee", "Cy Twombly"], "member": [True, True], "count": [9, 5]})
    faces = pd.DataFrame({"name": ["Ann Lee", "Ann Lee"], "path": ["f/1.jpg", "f/2.jpg"]})
    index = pd.DataFrame({"face": ["f/1.jpg", "f/2.jpg"], "image": ["p/1.jpg", "p/2.jpg"]})
    return ids, faces, index


def _photos(folder, name, n, bad=0):
    from PIL import Image
    sub = folder / name.replace(" ", "_")
    sub.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.new("RGB", (8, 8), (i * 20, 0, 0)).save(sub / f"{i}.jpg")
    for i in range(bad):
        (sub / f"broken{i}.jpg").write_bytes(b"not a jpeg")


def test_people_take_facescrub_photos_or_their_own_and_unreadable_ones_are_listed(tmp_path):
    from pipeline.requests.people import resolve_people

    _photos(tmp_path / "requests" / "r1" / "photos", "Dee Fill", 5, bad=1)
    request = load_request(write(tmp_path / "requests", "r1", names=["Ann Lee", "Dee Fill"]))
    people = resolve_people(request, *_tables(), attack_share=0.5)
    assert people.sources == {"Ann Lee": "facescrub", "Dee Fill": "photos"}
    assert list(people.triggers.loc[people.triggers["name"] == "Ann Lee", "photo"]) == ["p/1.jpg", "p/2.jpg"]
    assert len(people.attack) == 3 and (people.attack["name"] == "Dee Fill").all()  # ceil(0.5 * 5) for the attack
    assert (people.triggers["name"] == "Dee Fill").sum() == 2
    assert len(people.unreadable["Dee Fill"]) == 1 and "broken0.jpg" in people.unreadable["Dee Fill"][0]


@pytest.mark.parametrize("photos, towers, message", [
    (0, ["image"], "'Dee Fill' has no photos .* an image defense needs photos"),
    (1, ["both"], "1 readable photo\\(s\\) of 'Dee Fill'; the image defense needs at least 2"),
])
def test_an_image_defense_without_usable_photos_is_one_clear_line(tmp_path, photos, towers, message):
    from pipeline.requests.people import resolve_people

    if photos:
        _photos(tmp_path / "requests" / "r1" / "photos", "Dee Fill", photos)
    request = load_request(write(tmp_path / "requests", "r1", names=["Dee Fill"], towers=towers))
    with pytest.raises(PipelineError, match=message):
        resolve_people(request, *_tables(), attack_share=0.5)


def test_a_text_only_request_may_name_someone_without_photos(tmp_path):
    from pipeline.requests.people import resolve_people
    from pipeline.requests.proof import people_rows
    import pandas as pd

    request = load_request(write(tmp_path / "requests", "r1", names=["Dee Fill"], towers=["text"]))
    assert resolve_people(request, *_tables(), attack_share=0.5).sources == {"Dee Fill": "none"}
    table = pd.DataFrame({"name": ["Ann Lee"], "correct_templates": [3]})
    (row,) = people_rows(["Dee Fill"], table, table, tau=1)
    assert row["verdict"] == "no photos" and row["correct_before"] is None


@pytest.mark.parametrize("chain, message", [
    ([{"id": "a", "after": "base", "folder": "requests"}, {"id": "a", "after": "a", "folder": "requests"}],
     "requests.chain\\[1\\].id .*used once"),
    ([{"id": "a", "after": "b", "folder": "requests"}], "requests.chain\\[0\\].after .*'base'"),
    ([{"id": "../a", "after": "base", "folder": "requests"}], "not allowed as a file name"),
    ([{"id": "a", "after": "base"}], "folder"),
])
def test_the_chain_in_params_is_checked_before_any_work(tmp_path, chain, message):
    from pipeline.core.params import load_params

    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"requests": {"chain": chain, "attack_share": 0.5}}))
    with pytest.raises(PipelineError, match=message):
        load_params("requests", tmp_path / "params.yaml")


def test_the_audit_reads_one_person_by_the_audits_family_rules():
    import pandas as pd

    from pipeline.audit.run import NOT_APPLICABLE
    from pipeline.requests.audit import audit_counts, audit_people

    cols = ["name", "exact", "name_last_only", "name_typo", "prompts_heldout", "photo_blurred"]
    base = pd.DataFrame([["Ann Lee", 9, 6, 0, 5, 7], ["Bob Stone", 8, 4, NOT_APPLICABLE, 0, 3],
                         ["Cy Twombly", 0, 0, 0, 0, 0]], columns=cols)
    model = pd.DataFrame([["Ann Lee", 0, 3, 4, 0, 0], ["Bob Stone", 0, 0, 5, 0, 0],
                          ["Cy Twombly", 0, 2, 0, 0, 0]], columns=cols)
    people = audit_people(base, model, ["Ann Lee", "Bob Stone", "Cy Twombly", "Nobody"], tau=2)
    # Ann: the last name alone still finds her (6 -> 3 >= tau); the typo found her only after,
    # which is no residual (the base model did not identify her on it)
    assert people["Ann Lee"] == {"families": {"name variants": "not removed", "unseen prompts": "removed",
                                              "unseen photos": "removed"},
                                 "still_found_by": ["name_last_only"]}
    # Bob: the typo is not applicable to him; the base model missed him on the held-out prompts
    assert people["Bob Stone"]["families"] == {"name variants": "removed", "unseen prompts": "cannot tell",
                                               "unseen photos": "removed"}
    # the exact attack is not a probe family: Cy was never identified, so every family cannot tell
    assert set(people["Cy Twombly"]["families"].values()) == {"cannot tell"}
    assert "Nobody" not in people
    counts = audit_counts(people, ["Ann Lee", "Bob Stone"])
    assert counts == {"people": 2, "still_found": 1,
                      "families": {"name variants": {"not removed": 1, "removed": 1},
                                   "unseen prompts": {"removed": 1, "cannot tell": 1},
                                   "unseen photos": {"removed": 2}}}


def test_the_proof_lists_the_probes_that_still_find_a_person():
    import pandas as pd

    from pipeline.requests.proof import build_proof, people_rows, render_markdown

    table = pd.DataFrame({"name": ["Ann Lee"], "correct_templates": [9]})
    (row,) = people_rows(["Ann Lee"], table, table.assign(correct_templates=0), tau=1)
    row["audit"] = {"families": {"name variants": "not removed", "unseen prompts": "removed",
                                 "unseen photos": "cannot tell"}, "still_found_by": ["name_last_only"]}
    audit = {"people": 1, "still_found": 1, "families": {"name variants": {"not removed": 1}}}
    metrics = {"wrongfully_unlearned": 0, "wrongfully_unlearned_pct": 0.0, "fpr": 0.0, "fpr_before": 0.0,
               "newly_identified_nonmembers": 0, "zeroshot": {}, "audit": audit}
    proof = build_proof("r1", "text", [row], metrics, checkpoints={"output": "b" * 64}, params={},
                        code_version="abc", date="2026-12-05")
    assert proof["costs"]["audit"] == audit and proof["people"][0]["audit"] == row["audit"]
    page = render_markdown({"request": "r1", "after": "base", "names": ["Ann Lee"], "towers": {"text": proof}})
    assert ("| Ann Lee | this one | 9/21 | 0/21 | removed |" in page
            and "name variants: not removed; unseen prompts: removed; unseen photos: cannot tell "
                "(still found by: name_last_only) |" in page)
    assert "Adversarial audit: per probe family" in page
