"""scripts/zeroshot_by_class.py: the paired per-class counts behind a zero-shot change."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pipeline.core.errors import PipelineError
from pipeline.evaluation.zeroshot import Benchmark
from tests.scripts_helpers import load_script


@pytest.fixture(scope="module")
def script():
    return load_script("zeroshot_by_class")


def test_per_class_counts_are_paired_image_by_image(script):
    bench = Benchmark("hair", ["black", "white", "grey"], ["{} hair"], [Path("x")] * 6,
                      torch.tensor([0, 0, 1, 1, 1, 2]))
    base = torch.tensor([0, 1, 1, 1, 2, 2])      # 1 + 2 + 1 correct
    defended = torch.tensor([0, 0, 2, 1, 1, 2])  # black gains one; white loses one to grey and gains one
    rows = {r["class"]: r for r in script.per_class(bench, base, defended)}
    assert rows["black"] == {"class": "black", "images": 2, "base_correct": 1, "defended_correct": 2,
                             "lost": 0, "gained": 1, "lost_to": ""}
    assert (rows["white"]["base_correct"], rows["white"]["defended_correct"]) == (2, 2)
    assert (rows["white"]["lost"], rows["white"]["gained"], rows["white"]["lost_to"]) == (1, 1, "grey 1")
    assert rows["grey"]["lost"] == 0 and rows["grey"]["defended_correct"] == 1


def test_it_needs_the_pipelines_outputs(script, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(PipelineError, match="run `dvc repro` first"):
        script.main([])


def test_mcnemar_p_is_the_exact_two_sided_binomial_tail(script):
    assert script.mcnemar_p(0, 0) == 1.0
    assert script.mcnemar_p(3, 3) == 1.0
    assert script.mcnemar_p(6, 2) == pytest.approx(2 * (1 + 8 + 28) / 256)     # 0.289
    assert script.mcnemar_p(10, 0) == pytest.approx(2 / 1024)
    assert script.mcnemar_p(2, 6) == script.mcnemar_p(6, 2)
