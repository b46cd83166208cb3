"""Trial recipes read from a file (docs/trial_recipes.yaml): valid, never shadowing a named
recipe, one error line for a bad entry."""
from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.core.errors import PipelineError
from pipeline.core.defense_params import text_config_from_dict
from pipeline.core.params import load_params
from pipeline.defenses.text_recipes import PAPER, RECIPES
from pipeline.experiments.trial_recipes import load_trial_recipes

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def text_defaults():
    return load_params("defend", ROOT / "params.yaml")["text"]


def test_committed_trial_recipes_are_valid_overrides_of_the_papers(text_defaults):
    recipes = load_trial_recipes(ROOT / "docs/trial_recipes.yaml", text_defaults)
    extra = set(recipes) - set(RECIPES)
    assert extra and "partial-face-retain" in extra
    for name in extra:
        text_config_from_dict({**text_defaults, **recipes[name]})   # raises on a bad option
        # every option beyond the paper is set by the recipe or the paper's off switch, not params.yaml's default
        assert set(PAPER) <= set(recipes[name])
    cfg = text_config_from_dict({**text_defaults, **recipes["partial-face-retain"]})
    assert cfg.variant_families == ("first_only", "last_only") and cfg.context_families == ()
    assert cfg.face_push == 1.0 and cfg.retain_sharers == 512 and cfg.shared_name_parts == "skip"


def test_no_file_gives_the_named_recipes(text_defaults):
    assert load_trial_recipes(None, text_defaults) == RECIPES


@pytest.mark.parametrize("text, says", [
    ("paper:\n  beta: 1.2\n", "already defined"),
    ("mine: 3\n", "must map options"),
    ("mine:\n  bogus: 1\n", "defend.text.bogus"),
    ("mine:\n  face_push: strong\n", "face_push"),
    ("- a\n- b\n", "expected a mapping"),
    ("mine: [unclosed\n", "cannot read it as YAML"),
])
def test_a_bad_recipe_file_is_one_error_line(tmp_path, text_defaults, text, says):
    path = tmp_path / "recipes.yaml"
    path.write_text(text)
    with pytest.raises(PipelineError) as err:
        load_trial_recipes(path, text_defaults)
    message = str(err.value)
    assert says in message and str(path) in message and "\n" not in message
