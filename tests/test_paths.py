"""Run names and stage paths come from one module (pipeline/core/paths.py)."""
from __future__ import annotations

import pytest

from pipeline.core.errors import PipelineError
from pipeline.core.paths import DEFENDED, METRICS, metrics_file, parse_run_name, plot_file, run_name


@pytest.mark.parametrize("encoder,k", [("text", 1), ("image", 4), ("both", 16)])
def test_run_names_round_trip(encoder, k):
    name = run_name(encoder, k)
    assert name == f"{encoder}-k{k}" and parse_run_name(name) == (encoder, k)


@pytest.mark.parametrize("encoder,k", [("audio", 1), ("text", 0), ("text", -2)])
def test_run_name_rejects_what_no_stage_makes(encoder, k):
    with pytest.raises(PipelineError, match="no defense run"):
        run_name(encoder, k)


@pytest.mark.parametrize("name", ["text-k", "text-k01", "image_k4", "../text-k4", "both-k4/x"])
def test_parse_run_name_names_the_expected_form(name):
    with pytest.raises(PipelineError, match=r"expected <text\|image\|both>-k<K>"):
        parse_run_name(name)


def test_paths_are_relative_so_outputs_do_not_depend_on_the_checkout():
    assert not DEFENDED.is_absolute() and not METRICS.is_absolute()
    assert metrics_file("splits").as_posix() == "metrics/splits.json"
    assert metrics_file("evaluate", "image-k4").as_posix() == "metrics/evaluate/image-k4.json"
    assert plot_file("defend", "text-k1").as_posix() == "plots/defend/text-k1.csv"
