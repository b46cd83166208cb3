"""Collateral of a defense against a hand-built before/after pair of attack tables."""
import pandas as pd
import pytest

from pipeline.evaluation.collateral import compare


def table(rows):
    return pd.DataFrame(rows, columns=["name", "member", "count", "correct_templates", "identified"])


BEFORE = table([("a", True, 5, 9, True), ("b", True, 6, 4, True), ("c", True, 7, 3, True),
                ("d", True, 8, 0, False), ("e", True, 9, 2, True), ("x", False, 0, 0, False),
                ("y", False, 0, 1, True)])
AFTER = table([("a", True, 5, 0, False), ("b", True, 6, 2, True), ("c", True, 7, 0, False),
               ("d", True, 8, 1, True), ("e", True, 9, 2, True), ("x", False, 0, 1, True),
               ("y", False, 0, 1, True)])


def test_counts_and_rates():
    _, m = compare(BEFORE, AFTER, ["a", "b"])
    assert m["k"] == 2 and m["tpr_removed"] == 0.5 and m["fnr_removed"] == 0.5
    assert m["correct_templates_removed_before"] == 6.5 and m["correct_templates_removed_after"] == 1.0
    # others: c (lost), d (gained), e (kept)
    assert m["others"] == 3 and m["others_identified_before"] == 2
    assert m["wrongfully_unlearned"] == 1 and m["wrongfully_unlearned_pct"] == 50.0
    assert m["newly_recalled"] == 1 and m["newly_recalled_pct"] == 100.0
    assert m["fpr_before"] == 0.5 and m["fpr"] == 1.0
    # x is named only after the defense; y was named before too
    assert m["newly_identified_nonmembers"] == 1


def test_table_marks_removed_and_unknown_names_fail():
    t, _ = compare(BEFORE, AFTER, ["a"])
    assert list(t.loc[t["removed"], "name"]) == ["a"]
    with pytest.raises(ValueError, match="zed"):
        compare(BEFORE, AFTER, ["zed"])


def test_members_sharing_a_name_part_with_the_removed_are_counted_apart():
    before = table([("Ada Quill", True, 5, 9, True), ("Ada Brennan", True, 5, 8, True),
                    ("Cy quill", True, 5, 7, True), ("Dee Norton", True, 5, 6, True),
                    ("Eve Ada", True, 5, 0, False)])
    after = table([("Ada Quill", True, 5, 0, False), ("Ada Brennan", True, 5, 0, False),
                   ("Cy quill", True, 5, 7, True), ("Dee Norton", True, 5, 0, False),
                   ("Eve Ada", True, 5, 0, False)])
    _, m = compare(before, after, ["Ada Quill"])
    # Ada Brennan (first name) and Cy quill (last name, any case) share; Eve Ada's last name is
    # not a removed first name; Dee Norton shares nothing but is lost too (counted only overall)
    assert m["name_sharers_identified_before"] == 2 and m["wrongfully_unlearned_name_sharers"] == 1
    assert m["wrongfully_unlearned_name_sharers_pct"] == 50.0
    assert m["wrongfully_unlearned"] == 2
    _, m = compare(BEFORE, AFTER, ["a"])
    assert m["name_sharers_identified_before"] == 0 and m["wrongfully_unlearned_name_sharers_pct"] == 0.0
