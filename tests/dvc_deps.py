"""What each DVC stage really depends on, read from the code: the files of `pipeline/` that
its entry point imports (transitively, imports inside functions included), and the
repository paths written as string constants in those files."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
PATH_LITERAL = re.compile(r"^(data|metrics|plots|reports|docs)/")


def module_file(module: str, root: Path = REPO) -> Path | None:
    base = root / Path(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imported_modules(path: Path, root: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    package = ".".join(path.relative_to(root).with_suffix("").parts)
    if path.name != "__init__.py":
        package = package.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # `from pkg import module`
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None))
              == "import_module" and node.args and isinstance(node.args[0], ast.Constant)):
            found.add(node.args[0].value)
    return {m for m in found if m == "pipeline" or m.startswith("pipeline.")}


def import_closure(module: str, root: Path = REPO) -> set[Path]:
    """Repository-relative files of every `pipeline` module that `module` loads, with the
    `__init__.py` of each package on the way (Python runs those too)."""
    seen: set[Path] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        parts = name.split(".")
        for i in range(1, len(parts) + 1):  # parent packages' __init__ run first
            path = module_file(".".join(parts[:i]), root)
            if path is None or path in seen:
                continue
            seen.add(path)
            todo.extend(_imported_modules(path, root))
    return {p.relative_to(root) for p in seen}


def docstring_only(path: Path) -> bool:
    """A module that holds nothing but its docstring cannot change any output (package __init__s)."""
    body = ast.parse(path.read_text()).body
    return all(isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) for node in body)


def path_literals(files: set[Path], root: Path = REPO) -> set[str]:
    """String constants that name a repository path (data/..., metrics/...), f-string heads included."""
    found = set()
    for rel in files:
        for node in ast.walk(ast.parse((root / rel).read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and PATH_LITERAL.match(node.value):
                found.add(node.value)
    return found


def expanded_stages(root: Path = REPO) -> dict[str, dict]:
    """dvc.yaml's stages with `foreach` expanded over params.yaml (the way dvc names them: name@item)."""
    dvc = yaml.safe_load((root / "dvc.yaml").read_text())
    params = yaml.safe_load((root / "params.yaml").read_text())

    def lookup(expr: str):
        node = params
        for key in expr.split("."):
            node = node[key]
        return node

    def fill(value, item):
        if isinstance(value, str):
            value = value.replace("${item}", str(item))
            return re.sub(r"\$\{([\w.]+)\}", lambda m: str(lookup(m.group(1))), value)
        if isinstance(value, list):
            return [fill(v, item) for v in value]
        if isinstance(value, dict):
            return {fill(k, item): fill(v, item) for k, v in value.items()}
        return value

    stages = {}
    for name, stage in dvc["stages"].items():
        if "foreach" in stage:
            for item in lookup(stage["foreach"][2:-1]):
                stages[f"{name}@{item}"] = fill(stage["do"], item)
        else:
            stages[name] = fill(stage, None)
    return stages


def paths_of(entries) -> list[str]:
    """Paths of a deps/outs/metrics/plots list (entries are strings or {path: options})."""
    out = []
    for entry in entries or []:
        out.extend([entry] if isinstance(entry, str) else list(entry))
    return [p.rstrip("/") for p in out]


def covered(path: str, declared: list[str]) -> bool:
    return any(path == d or path.startswith(d + "/") for d in declared)


def entry_module(cmd: str) -> str:
    match = re.search(r"python -m (pipeline\.stages\.\w+)", cmd)
    assert match, f"stage command is not `python -m pipeline.stages.<x>`: {cmd}"
    return match.group(1)
