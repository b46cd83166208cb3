"""params.yaml is checked as a whole, at load time, by one schema (issue 18, point 8).

Each case edits one key of the repository's own params.yaml and asserts the one-line error:
the dotted key, the value given and what is allowed. Before this schema, unknown keys were
ignored, duplicated Ks accepted and bad model shapes ended in a torch traceback.
"""
from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.core.errors import ParamError, PipelineError
from pipeline.core.params import load_params

REPO = Path(__file__).resolve().parents[1]
PARAMS = yaml.safe_load((REPO / "params.yaml").read_text())


def _load_edited(tmp_path, edit, section=None):
    params = copy.deepcopy(PARAMS)
    edit(params)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return load_params(section, path)


def _error(tmp_path, edit, section=None) -> str:
    with pytest.raises(PipelineError) as info:
        _load_edited(tmp_path, edit, section)
    text = str(info.value)
    assert "\n" not in text
    return text


def test_the_committed_params_and_the_paper_profile_are_valid():
    params = load_params(None, REPO / "params.yaml")
    assert params["evaluate"]["workers"] == PARAMS["evaluate"]["workers"]
    assert params["defend"]["text_ks"] == [1, 4, 16]
    paper = copy.deepcopy(PARAMS)
    for name, section in yaml.safe_load((REPO / "profiles/paper.yaml").read_text()).items():
        paper.setdefault(name, {}).update(section) if isinstance(section, dict) else None
    # the profile overlays sections; every overlaid section must still pass its schema
    from pipeline.core.params import validate
    for name, section in paper.items():
        validate(name, section)


def _set(path: str, value):
    def edit(params):
        node = params
        keys = path.split(".")
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value
    return edit


def _delete(path: str):
    def edit(params):
        node = params
        keys = path.split(".")
        for key in keys[:-1]:
            node = node[key]
        del node[keys[-1]]
    return edit


CASES = [
    # unknown keys name the typo and list the keys that exist
    ("typo", _set("evaluate.worker", 4), "params.yaml: evaluate.worker = 4 is not allowed; expected one of the keys "
     "batch_size, similarity_samples, device, workers, bf16"),
    ("nested typo", _set("defend.text.stpes", 10), "defend.text.stpes = 10 is not allowed; expected one of the keys"),
    ("recipe typo", _set("defend.image_recipes.demo.lrr", 1e-4), "defend.image_recipes.demo.lrr = 0.0001 is not allowed"),
    ("unknown section", _set("evaluation", {"workers": 1}), "evaluation = {'workers': 1} is not allowed; expected one of the sections"),
    # duplicates and cross-key rules
    ("duplicate K", _set("defend.text_ks", [1, 4, 4]), "defend.text_ks = [1, 4, 4] is not allowed; expected a list "
     "without duplicates (4 appears twice)"),
    ("image K not in text", _set("defend.image_ks", [1, 8]), "defend.image_ks"),
    ("unknown recipe", _set("defend.image_recipe", "fast"), "defend.image_recipe = 'fast' is not allowed"),
    ("bad regex", _set("defend.retain_caption_pattern", "(person"), "defend.retain_caption_pattern = '(person' is not allowed"),
    # types: strict, no silent coercion
    ("string for int", _set("evaluate.batch_size", "256"), "evaluate.batch_size = '256' is not allowed; expected an integer"),
    ("yes for bool", _set("evaluate.bf16", "yes"), "evaluate.bf16 = 'yes' is not allowed; expected true or false"),
    ("float for int", _set("world.members", 80.5), "world.members = 80.5 is not allowed; expected an integer"),
    # ranges and choices
    ("zero", _set("evaluate.batch_size", 0), "evaluate.batch_size = 0 is not allowed; expected >= 1"),
    ("negative", _set("world.seed", -1), "world.seed = -1 is not allowed; expected >= 0"),
    ("device", _set("evaluate.device", "tpu"), "evaluate.device = 'tpu' is not allowed; expected one of 'auto', 'cpu', 'cuda'"),
    ("missing key", _delete("splits.seed"), "splits.seed = None is not allowed; expected a value (the key is required)"),
    # the model's shape: what its attention and patching need, before torch sees it
    ("heads", _set("base_model.model_cfg.text_cfg.heads", 5), "base_model.model_cfg.text_cfg.heads = 5 is not allowed; "
     "expected a divisor of text_cfg.width"),
    ("patch", _set("base_model.model_cfg.vision_cfg.patch_size", 7), "base_model.model_cfg.vision_cfg.patch_size = 7 is "
     "not allowed; expected a divisor of vision_cfg.image_size"),
    ("head width", _set("base_model.model_cfg.vision_cfg.head_width", 7), "base_model.model_cfg.vision_cfg.head_width = 7"),
    ("arch path", _set("base_model.arch", "../x"), "base_model.arch = '../x' is not allowed"),
]


@pytest.mark.parametrize("name,edit,expected", CASES, ids=[c[0] for c in CASES])
def test_bad_params_are_one_line_naming_key_value_and_rule(tmp_path, name, edit, expected):
    assert expected in _error(tmp_path, edit)


def test_a_section_is_checked_whole_when_a_stage_loads_only_its_own(tmp_path):
    text = _error(tmp_path, _set("evaluate.worker", 4), section="evaluate")
    assert text.startswith("params.yaml: evaluate.worker = 4")
    # another section's typo does not stop a stage that does not read it
    assert _load_edited(tmp_path, _set("evaluate.worker", 4), section="splits")["seed"] == PARAMS["splits"]["seed"]


def test_defaults_are_filled_in_and_values_kept(tmp_path):
    def edit(params):
        del params["splits"]["filler_names"]
    assert _load_edited(tmp_path, edit, section="splits")["filler_names"] == "data/world/filler_names.csv"


def test_a_pretrained_base_model_needs_no_training_keys(tmp_path):
    def edit(params):
        params["base_model"] = {"arch": "ViT-B-32", "pretrained": "laion400m_e32", "device": "cpu", "threads": 1}
    assert _load_edited(tmp_path, edit, section="base_model")["model_cfg"] is None
    text = _error(tmp_path, _delete("base_model.shards"), section="base_model")
    assert "base_model.shards = None is not allowed; expected a value (required when base_model.pretrained is ''" in text


def test_bad_yaml_is_one_line_with_the_line_number(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("world:\n  seed: [1\nsplits: {}\n")
    with pytest.raises(PipelineError, match=r"params.yaml:3: not valid YAML") as info:
        load_params(None, path)
    assert "\n" not in str(info.value)


def test_a_typo_stops_the_stage_with_one_line_and_exit_2(tmp_path):
    params = copy.deepcopy(PARAMS)
    params["evaluate"]["worker"] = 4
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    proc = subprocess.run([sys.executable, "-m", "pipeline.stages.evaluate", "--encoder", "text", "--k", "1"], cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"},
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: params.yaml: evaluate.worker = 4 is not allowed")
    assert len(proc.stderr.strip().splitlines()) == 1


def test_param_error_is_a_pipeline_error():
    assert issubclass(ParamError, PipelineError)


def test_schema_limits_agree_with_the_code_they_guard():
    import typing

    from pipeline.attack.templates import IDIA_TEMPLATES
    from pipeline.core.params_schema import DownloadLaion, IdiaBefore
    from pipeline.data.laion import DISTRIBUTORS, RESIZE_MODES
    from pipeline.world.demo.scenes import MAX_SCENE_CLASSES, SCENE_COLOURS, SCENE_SHAPES

    fields = DownloadLaion.__pydantic_fields__
    assert typing.get_args(fields["resize_mode"].annotation) == RESIZE_MODES
    assert typing.get_args(fields["distributor"].annotation) == DISTRIBUTORS
    tau_max = [m.le for m in IdiaBefore.__pydantic_fields__["tau"].metadata if hasattr(m, "le")]
    assert tau_max == [len(IDIA_TEMPLATES)]
    assert MAX_SCENE_CLASSES == len(SCENE_COLOURS) * len(SCENE_SHAPES)
