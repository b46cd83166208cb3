"""What each DVC stage really depends on, read from the code: the files of `pipeline/` that
its entry point imports (transitively, imports inside functions included), and the
repository paths written as string constants in those files."""
from __future__ import annotations

import ast
import itertools
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
    """The repository paths (data/..., metrics/...) that these files name: string constants
    (f-string heads included), the constants they import from pipeline.core.paths, and
    calls of its metrics_file / plot_file (a run-dependent call gives its folder, with a
    trailing slash)."""
    from pipeline.core import paths

    found = set()
    for rel in files:
        tree = ast.parse((root / rel).read_text())
        imported = {alias.asname or alias.name for node in ast.walk(tree)
                    if isinstance(node, ast.ImportFrom) and node.module == "pipeline.core.paths"
                    for alias in node.names}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and PATH_LITERAL.match(node.value):
                found.add(node.value)
            elif isinstance(node, ast.Name) and node.id in imported and isinstance(getattr(paths, node.id), Path):
                found.add(getattr(paths, node.id).as_posix())
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in imported
                  and node.func.id in ("metrics_file", "plot_file")):
                args = [a.value if isinstance(a, ast.Constant) else None for a in node.args]
                if None not in args:
                    found.add(getattr(paths, node.func.id)(*args).as_posix())
                else:
                    root_dir = paths.METRICS if node.func.id == "metrics_file" else paths.PLOTS
                    found.add(f"{root_dir.as_posix()}/{args[0]}/")
    return found


def expanded_stages(root: Path = REPO) -> dict[str, dict]:
    """dvc.yaml's stages with `foreach` and `matrix` expanded over params.yaml, named the way dvc
    names them (name@item, name@value1-value2)."""
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

    def fill_matrix(value, item: dict):
        if isinstance(value, str):
            for key, v in item.items():
                value = value.replace("${item.%s}" % key, str(v))
        if isinstance(value, list):
            return [fill_matrix(v, item) for v in value]
        if isinstance(value, dict):
            return {fill_matrix(k, item): fill_matrix(v, item) for k, v in value.items()}
        return fill(value, None)

    stages = {}
    for name, stage in dvc["stages"].items():
        if "foreach" in stage:
            for i, item in enumerate(lookup(stage["foreach"][2:-1])):
                if isinstance(item, dict):  # dvc names a list of mappings' stages by position
                    stages[f"{name}@{i}"] = fill_matrix(stage["do"], item)
                else:
                    stages[f"{name}@{item}"] = fill(stage["do"], item)
        elif "matrix" in stage:
            axes = {key: lookup(v[2:-1]) if isinstance(v, str) else v for key, v in stage["matrix"].items()}
            body = {key: v for key, v in stage.items() if key != "matrix"}
            for combo in itertools.product(*axes.values()):
                item = dict(zip(axes, combo))
                stages[f"{name}@{'-'.join(map(str, combo))}"] = fill_matrix(body, item)
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
