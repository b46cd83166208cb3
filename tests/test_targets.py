"""Which identities a defense removes: nested, seeded, only identified members."""
import pandas as pd
import pytest

from pipeline.defenses.targets import (check_text_target, choose_text_target, pool_members, removal_order,
                                      removal_set, tuning_removal_set)
from pipeline.core.errors import PipelineError

TABLE = pd.DataFrame({
    "name": [f"p{i}" for i in range(10)],
    "member": [True] * 8 + [False] * 2,
    "identified": [True, True, True, False, True, True, True, True, True, True],
})


def test_sets_are_nested_prefixes_of_identified_members():
    order = removal_order(TABLE, seed=3)
    assert sorted(order) == ["p0", "p1", "p2", "p4", "p5", "p6", "p7"]  # no p3 (missed), no non-members
    assert removal_set(TABLE, 4, 3)[:1] == removal_set(TABLE, 1, 3)
    assert removal_set(TABLE, 4, 3) == order[:4]


def test_order_is_seeded_and_independent_of_row_order():
    shuffled = TABLE.sample(frac=1.0, random_state=0)
    assert removal_order(shuffled, seed=3) == removal_order(TABLE, seed=3)
    assert removal_order(TABLE, seed=4) != removal_order(TABLE, seed=3)


def test_k_larger_than_the_pool_names_both_numbers():
    with pytest.raises(PipelineError, match="K = 8 .* only 7 members"):
        removal_set(TABLE, 8, 0)


def test_text_target_sharing_a_word_with_a_candidate_is_refused():
    candidates = ["John Holmes", "Ada Quill"]
    check_text_target("a person", candidates)
    check_text_target("Ella Anderson", candidates)
    with pytest.raises(PipelineError, match=r"'John Doe' shares the word 'john' with .*'John Holmes'"):
        check_text_target("John Doe", candidates)
    with pytest.raises(PipelineError, match="quill"):
        check_text_target("a QUILL", candidates)   # case does not matter


POOLS = pd.DataFrame({"name": [f"p{i}" for i in range(10)],
                      "pool": ["dev", "test"] * 5})


def test_the_sweep_removes_only_test_pool_people():
    test = pool_members(POOLS, "test")
    order = removal_order(TABLE, seed=3, allowed=test)
    assert order and set(order) <= test and set(order) == {"p1", "p5", "p7"}
    assert removal_set(TABLE, 2, 3, test, "test") == order[:2]
    with pytest.raises(PipelineError, match="only 3 members of the test pool"):
        removal_set(TABLE, 4, 3, test, "test")


def test_tuning_scripts_refuse_the_test_pool():
    names = tuning_removal_set(TABLE, POOLS, 2, seed=0)
    assert set(names) <= pool_members(POOLS, "dev")
    with pytest.raises(PipelineError, match="tuning scripts remove and score development-pool people only"):
        tuning_removal_set(TABLE, POOLS, 2, seed=0, pool="test")
    with pytest.raises(PipelineError, match="no 'pool' column"):
        tuning_removal_set(TABLE, POOLS.drop(columns="pool"), 2, seed=0)


def test_text_target_falls_back_to_the_first_placeholder_no_candidate_shares_a_word_with():
    world_a, world_b = ["John Holmes", "Ada Quill"], ["Ella Mendoza", "Iris Bauer"]
    fallbacks = ["Iris Pendleby", "Maud Quellington"]
    assert choose_text_target("Ella Anderson", fallbacks, world_a) == "Ella Anderson"
    assert choose_text_target("Ella Anderson", fallbacks, world_b) == "Maud Quellington"
    with pytest.raises(PipelineError, match="every one of defend.text_target_fallbacks"):
        choose_text_target("Ella Anderson", ["Iris Pendleby"], world_b)
    with pytest.raises(PipelineError, match="shares the word 'ella'"):
        choose_text_target("Ella Anderson", [], world_b)
