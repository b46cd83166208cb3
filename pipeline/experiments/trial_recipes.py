"""Text recipes written in a file before their trial runs, beside the named ones in
pipeline/defenses/text_recipes.py.

Why a file: pipeline/defenses is a dependency of every defense stage, so a recipe added there
changes that directory's hash and stales the committed dvc.lock (every defense stage would
rerun) although no stage uses it. A file under docs/ is fixed in git before its runs just the
same, and the trial scripts read it with --recipe-file.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import yaml

from pipeline.core.defense_params import text_config_from_dict
from pipeline.core.errors import PipelineError
from pipeline.defenses.text_recipes import PAPER, RECIPES


def load_trial_recipes(path: Path | None, text_defaults: Mapping[str, Any]) -> dict[str, dict]:
    """The named recipes plus those of `path` (each an override of the paper's recipe, so it
    means the same whatever params.yaml's default is). A name that is already a recipe, an
    entry that is not a mapping, or an option `defend.text` does not have: one error line."""
    recipes = dict(RECIPES)
    if path is None:
        return recipes
    try:
        doc = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as e:
        raise PipelineError(f"--recipe-file {path}: cannot read it as YAML ({e.__class__.__name__})") from None
    if not isinstance(doc, dict) or not doc:
        raise PipelineError(f"--recipe-file {path}: expected a mapping of recipe name -> options of defend.text")
    for name, over in doc.items():
        if name in RECIPES:
            raise PipelineError(f"--recipe-file {path}: recipe {name!r} is already defined in "
                                "pipeline/defenses/text_recipes.py; pick another name")
        if not isinstance(over, dict):
            raise PipelineError(f"--recipe-file {path}: recipe {name!r} must map options of defend.text "
                                f"to values, got {type(over).__name__}")
        try:
            text_config_from_dict({**text_defaults, **PAPER, **over})
        except (PipelineError, ValueError, TypeError) as e:
            why = str(e).removeprefix("params.yaml: ")
            raise PipelineError(f"--recipe-file {path}: recipe {name!r}: {why}") from None
        recipes[str(name)] = {**PAPER, **over}
    return recipes
