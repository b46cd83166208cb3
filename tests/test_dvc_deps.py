"""dvc.yaml's deps are complete: a cached result can never go stale silently (issue 12, point 1).

The code deps are checked against what each stage really imports (its import closure inside
`pipeline/`), and the repository paths its code names against its deps and outs; a last test
edits `pipeline/models/checkpoint.py` in a clone and asks `dvc status` which stages it staled.
"""
from __future__ import annotations

import json
import shutil

import pytest

from tests.dvc_deps import (REPO, covered, docstring_only, entry_module, expanded_stages, import_closure,
                            path_literals, paths_of)
from tests.e2e_helpers import dvc, run

STAGES = expanded_stages()
# Stages that compute results read data, never another stage's metrics (issue 12, point 1).
SUMMARY_STAGES = {"report"}


def param_paths(name: str) -> set[str]:
    """The deps of a stage that dvc.yaml takes from params.yaml (`${section.key}`), resolved."""
    import re

    import yaml
    raw = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"].get(name.split("@")[0], {})
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    found = set()
    for dep in paths_of((raw.get("do") or raw).get("deps")):
        m = re.fullmatch(r"\$\{([\w.]+)\}", dep)
        if m and "item" not in m.group(1):
            node = params
            for key in m.group(1).split("."):
                node = node[key]
            found.add(str(node))
    return found


def _declared(stage: dict) -> tuple[list[str], list[str]]:
    deps = paths_of(stage.get("deps"))
    outs = paths_of(stage.get("outs")) + paths_of(stage.get("metrics")) + paths_of(stage.get("plots"))
    return deps, outs


@pytest.mark.parametrize("name", sorted(STAGES))
def test_every_imported_module_is_a_dep(name):
    stage = STAGES[name]
    deps, _ = _declared(stage)
    closure = import_closure(entry_module(stage["cmd"]))
    missing = sorted(str(f) for f in closure if not covered(str(f), deps) and not docstring_only(REPO / f))
    assert not missing, f"{name} imports {missing} but dvc.yaml does not list them as deps"


@pytest.mark.parametrize("name", sorted(STAGES))
def test_every_code_dep_is_imported(name):
    """No dead code deps either: a listed file or folder the stage never loads reruns it for nothing."""
    stage = STAGES[name]
    deps, _ = _declared(stage)
    closure = {str(f) for f in import_closure(entry_module(stage["cmd"]))}
    unused = [d for d in deps if d.startswith("pipeline") and not any(covered(f, [d]) for f in closure)]
    assert not unused, f"{name} lists {unused} as deps but never imports them"
    # a dep taken from a param (${splits.occurrences}) stays: the param may point anywhere
    from_params = {fill for fill in deps if fill in param_paths(name)}
    nested = [d for d in deps if d not in from_params and covered(d, [e for e in deps if e != d])]
    assert not nested, f"{name} lists {nested}, which other deps of it already cover"


@pytest.mark.parametrize("name", sorted(STAGES))
def test_every_path_the_code_names_is_a_dep_or_an_out(name):
    stage = STAGES[name]
    deps, outs = _declared(stage)
    module = entry_module(stage["cmd"])
    named = path_literals({p for p in import_closure(module) if p.parts[1] == "stages"})
    # a folder prefix (f"data/defended/{enc}-k{k}") is fine when something under it is declared
    unknown = sorted(p for p in named
                     if not covered(p.rstrip("/"), deps + outs) and not any(d.startswith(p) for d in deps + outs))
    assert not unknown, f"{name} reads or writes {unknown}, which is neither a dep nor an out in dvc.yaml"
    if name.split("@")[0] not in SUMMARY_STAGES:
        read_metrics = [d for d in deps if d.startswith("metrics/")]
        assert not read_metrics, f"{name} computes results but depends on metrics files {read_metrics}"


def test_closure_finds_function_level_and_relative_imports(tmp_path):
    pkg = tmp_path / "pipeline"
    (pkg / "stages").mkdir(parents=True)
    (pkg / "lib").mkdir()
    for init in (pkg, pkg / "stages", pkg / "lib"):
        (init / "__init__.py").write_text("")
    (pkg / "lib" / "a.py").write_text("from . import b\n")
    (pkg / "lib" / "b.py").write_text("X = 1\n")
    (pkg / "lib" / "c.py").write_text("X = 2\n")
    (pkg / "lib" / "unused.py").write_text("")
    (pkg / "stages" / "s.py").write_text("import os\n\ndef main():\n    from pipeline.lib import a\n"
                                         "    import pipeline.lib.c\n")
    files = {str(p) for p in import_closure("pipeline.stages.s", tmp_path)}
    assert files == {"pipeline/__init__.py", "pipeline/stages/__init__.py", "pipeline/stages/s.py",
                     "pipeline/lib/__init__.py", "pipeline/lib/a.py", "pipeline/lib/b.py", "pipeline/lib/c.py"}


def _placeholder_outputs(clone) -> None:
    """Stand-in files for every out and data dep, so `dvc commit` can record a lock that matches
    the clone's code exactly (the test is about code deps; the data's content does not matter)."""
    for stage in STAGES.values():
        deps, outs = _declared(stage)
        for rel in outs + [d for d in deps if not d.startswith("pipeline")]:
            path = clone / rel
            if path.suffix and not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text("{}" if path.suffix == ".json" else "x\n")
            elif not path.suffix:
                path.mkdir(parents=True, exist_ok=True)
                (path / ".keep").write_text("")


@pytest.mark.slow
def test_editing_checkpoint_code_stales_every_stage_that_imports_it(tmp_path):
    clone = tmp_path / "clone"
    assert run(["git", "clone", "-q", str(REPO), str(clone)], tmp_path).returncode == 0
    for rel in ("pipeline", "dvc.yaml", "params.yaml", "docs"):  # the working tree as it is now
        src, dst = REPO / rel, clone / rel
        if src.is_dir():
            shutil.rmtree(dst)
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dst)
    _placeholder_outputs(clone)
    dvc(["commit", "-f", "-q"], clone)
    assert json.loads(dvc(["status", "--json"], clone).stdout or "{}") == {}

    path = clone / "pipeline/models/checkpoint.py"
    text = path.read_text()
    assert "def load_model(" in text
    path.write_text(text.replace("def load_model(", "def load_model(  # edited by a test\n        ", 1))
    stale = set(json.loads(dvc(["status", "--json"], clone).stdout or "{}"))
    importers = {name for name, stage in STAGES.items()
                 if "pipeline/models/checkpoint.py" in {str(f) for f in import_closure(entry_module(stage["cmd"]))}}
    assert {"base_model", "idia_before", "utility_before", "combine@1", "evaluate_text@1", "defend_image@1"} <= importers
    assert stale == importers


def test_only_tests_import_stage_entry_points():
    """The library, scripts and benchmarks stand on their own: none of them imports a stage."""
    offenders = []
    for folder in ("pipeline", "scripts", "benchmarks"):
        for path in sorted((REPO / folder).rglob("*.py")):
            rel = path.relative_to(REPO)
            if rel.parts[:2] == ("pipeline", "stages"):
                continue
            module = ".".join(rel.with_suffix("").parts)
            if any(str(f).startswith("pipeline/stages/") and f.name != "__init__.py"
                   for f in import_closure(module) if f != rel):
                offenders.append(str(rel))
    assert not offenders, f"{offenders} import a module of pipeline/stages; move what they need into the library"
