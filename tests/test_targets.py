"""Which identities a defense removes: nested, seeded, only identified members."""
import pandas as pd
import pytest

from pipeline.defenses.targets import check_text_target, removal_order, removal_set
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
