"""Profiles: named sets of params overrides (profiles/<name>.yaml), applied as DVC experiments.

    python -m pipeline.profiles paper                   # print the -S arguments, shell-quoted, for eval
    python -m pipeline.profiles paper --run [-- ARGS]   # dvc exp run with them (+ ARGS: --queue, -S k=v, ...)
    python -m pipeline.profiles paper --sweep --seeds 0 1 2
                                                        # queue seeds x {paper lambda, lambda = 0}
    python -m pipeline.profiles paper --apply           # write them into params.yaml instead
    python -m pipeline.profiles paper --check           # every key exists in params.yaml
    python -m pipeline.profiles --list

A profile file mirrors params.yaml: sections and keys, with the values to use. Each leaf
becomes one Hydra override `-S section.key=value`, which is what `dvc exp run -S` takes, so
every changed param shows up in `dvc exp show`. DVC refuses keys that params.yaml lacks, and
`--check` (also run before every other action) says which one, so a typo can never silently
do nothing. `--run` first checks, in seconds and without touching params.yaml, that the paper's
local inputs exist and its download hosts answer (`--no-preflight` skips that; queued runs
are checked when they run). Values print in Hydra's syntax with strings single-quoted (for
Hydra), and each argument is shell-quoted around that, so `eval "dvc exp run $(python -m
pipeline.profiles paper)"` hands dvc exactly the arguments `--run` would, values with spaces
(the paper's text target "a person") included.
"""
from __future__ import annotations

import argparse
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from pipeline.core.errors import PipelineError
from pipeline.core.safepaths import check_name

PROFILES_DIR = Path("profiles")
PARAMS_FILE = Path("params.yaml")
# Per seed of a sweep: which removal set (defend.seed) and which training draws.
SEED_KEYS = ("defend.seed", "defend.text.seed", "defend.image_recipes.paper.seed")
NO_WEIGHT_REG = {"defend.text.weight_reg": 0.0, "defend.image_recipes.paper.weight_reg": 0.0}


def profile_path(name: str, folder: Path = PROFILES_DIR) -> Path:
    check_name(name, "profile name")  # also names the sweep's experiments
    path = Path(folder) / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(available(folder)) or "none"
        raise PipelineError(f"no profile {name!r}: {path} does not exist (profiles: {known})")
    return path


def available(folder: Path = PROFILES_DIR) -> list[str]:
    return sorted(p.stem for p in Path(folder).glob("*.yaml"))


def load_profile(name: str, folder: Path = PROFILES_DIR) -> dict:
    path = profile_path(name, folder)
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise PipelineError(f"{path}: a profile is a mapping of params sections")
    return data


def flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1}; lists and scalars are leaves."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, dotted + "."))
        else:
            out[dotted] = value
    return out


def check_keys(overrides: dict[str, Any], params: dict, where: str) -> None:
    """Every dotted key must name an existing, non-mapping value of params.yaml."""
    for dotted, value in overrides.items():
        node: Any = params
        walked = []
        for part in dotted.split("."):
            walked.append(part)
            if not isinstance(node, dict) or part not in node:
                raise PipelineError(f"{where}: {dotted} is not a key of {PARAMS_FILE} "
                                    f"(no {'.'.join(walked)}); a typo would silently change nothing")
            node = node[part]
        if isinstance(node, dict):
            raise PipelineError(f"{where}: {dotted} is a section of {PARAMS_FILE}; "
                                "set the keys inside it instead")
        if isinstance(value, dict):
            raise PipelineError(f"{where}: {dotted} must not be an empty mapping")


def hydra_value(value: Any) -> str:
    """A value in Hydra's override syntax (what `dvc exp run -S key=VALUE` parses)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(hydra_value(v) for v in value) + "]"
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    raise PipelineError(f"cannot express {value!r} ({type(value).__name__}) as a params override")


def overrides_for(name: str, params_file: Path = PARAMS_FILE, folder: Path = PROFILES_DIR) -> dict[str, Any]:
    """The profile's dotted overrides, checked against params.yaml."""
    flat = flatten(load_profile(name, folder))
    params = yaml.safe_load(Path(params_file).read_text()) or {}
    check_keys(flat, params, str(profile_path(name, folder)))
    return flat


def set_args(overrides: dict[str, Any]) -> list[str]:
    """['-S', 'a.b=1', ...] for dvc exp run."""
    args = []
    for key, value in overrides.items():
        args += ["-S", f"{key}={hydra_value(value)}"]
    return args


def printable(overrides: dict[str, Any]) -> str:
    """The -S arguments on one line, shell-quoted, for `eval "dvc exp run $(python -m pipeline.profiles NAME)"`.

    Plain $(...) would split a value such as 'a person' at its space; eval re-reads the quotes.
    """
    return " ".join(shell_word(w) for w in set_args(overrides))


def shell_word(word: str) -> str:
    """`word` as the shell reads it back under eval: bare when it is safe (no glob, no space),
    else in double quotes (readable around Hydra's single quotes), else shlex-quoted."""
    if re.fullmatch(r"[\w.=,:/+@%-]+", word):
        return word
    if not re.search(r'["$`\\!]', word):
        return f'"{word}"'
    return shlex.quote(word)


def user_overrides(extra: list[str]) -> list[str]:
    """The `key=value` overrides among extra dvc arguments (-S k=v, --set-param k=v, -Sk=v)."""
    found = []
    for i, arg in enumerate(extra):
        value = None
        if arg in ("-S", "--set-param") and i + 1 < len(extra):
            value = extra[i + 1]
        elif arg.startswith("--set-param="):
            value = arg.split("=", 1)[1]
        elif arg.startswith("-S") and len(arg) > 2:
            value = arg[2:]
        if value and "=" in value:
            found.append(value)
    return found


def user_set_keys(extra: list[str]) -> set[str]:
    """Keys the extra dvc arguments set themselves: they win over the profile."""
    return {o.split("=", 1)[0].lstrip("+~") for o in user_overrides(extra)}


def preflight(overrides: dict[str, Any], extra: list[str], params_file: Path = PARAMS_FILE) -> None:
    """Before DVC touches params.yaml: with the paper's inputs, check in seconds that the local
    files exist and the hosts answer (the world stage checks the same when it runs)."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="profile-") as tmp:
        copy = Path(tmp) / "params.yaml"
        copy.write_text(Path(params_file).read_text())
        kept = {k: v for k, v in overrides.items() if k not in user_set_keys(extra)}
        from dvc.utils.hydra import apply_overrides

        try:
            apply_overrides(str(copy), [f"{k}={hydra_value(v)}" for k, v in kept.items()] + user_overrides(extra))
        except Exception as exc:  # DVC's InvalidArgumentError: a key params.yaml lacks, or bad syntax
            cause = exc.__cause__ or exc
            raise PipelineError(f"dvc would refuse these -S overrides: {' '.join(str(cause).split())[:300]}") from None
        params = yaml.safe_load(copy.read_text()) or {}
    if (params.get("world") or {}).get("source") == "paper":
        from pipeline.world.paper.build import preflight as check_sources, read_sources_params

        check_sources(read_sources_params(params.get("sources") or {}))


def exp_run_command(overrides: dict[str, Any], extra: list[str]) -> list[str]:
    mine = user_set_keys(extra)
    kept = {k: v for k, v in overrides.items() if k not in mine}
    return [sys.executable, "-m", "dvc", "exp", "run", *set_args(kept), *extra]


def sweep_commands(overrides: dict[str, Any], seeds: list[int], extra: list[str],
                   name: str, with_lambda_zero: bool = True) -> list[list[str]]:
    """One queued experiment per seed, and per seed one more without the weight regulariser."""
    check_name(name, "profile name")
    runs = []
    for seed in seeds:
        variants = [("", {})] + ([("-noreg", NO_WEIGHT_REG)] if with_lambda_zero else [])
        for suffix, changes in variants:
            per_run = {**overrides, **{k: seed for k in SEED_KEYS}, **changes}
            runs.append(exp_run_command(per_run, ["--queue", "-n", f"{name}-seed{seed}{suffix}", *extra]))
    return runs


def apply_to_params(overrides: dict[str, Any], params_file: Path = PARAMS_FILE) -> None:
    """Write the overrides into params.yaml the way `dvc exp run -S` does (comments kept)."""
    from dvc.utils.hydra import apply_overrides

    apply_overrides(str(params_file), [f"{k}={hydra_value(v)}" for k, v in overrides.items()])


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1:]
    ap = argparse.ArgumentParser(prog="python -m pipeline.profiles", description=__doc__.split("\n\n")[0])
    ap.add_argument("name", nargs="?", help="profile name (profiles/<name>.yaml)")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--run", action="store_true", help="run `dvc exp run` with the overrides (+ args after --)")
    mode.add_argument("--sweep", action="store_true",
                      help="queue one experiment per --seeds value, with and without the weight regulariser")
    mode.add_argument("--apply", action="store_true", help="write the overrides into params.yaml")
    mode.add_argument("--check", action="store_true", help="only check that every key exists in params.yaml")
    mode.add_argument("--list", action="store_true", help="list the profiles")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds of --sweep (default 0 1 2)")
    ap.add_argument("--no-lambda-zero", action="store_true", help="--sweep without the lambda = 0 runs")
    ap.add_argument("--dry-run", action="store_true", help="with --run/--sweep: print the commands only")
    ap.add_argument("--no-preflight", action="store_true",
                    help="with --run: skip checking the inputs and hosts before dvc starts")
    args = ap.parse_args(argv)
    try:
        if args.list or not args.name:
            print("\n".join(available()) or "(no profiles)")
            return 0
        overrides = overrides_for(args.name)
        if args.check:
            print(f"{args.name}: {len(overrides)} overrides, every key exists in {PARAMS_FILE}")
        elif args.apply:
            apply_to_params(overrides)
            print(f"{PARAMS_FILE}: applied {len(overrides)} overrides of profile {args.name}")
        elif args.run or args.sweep:
            queued = args.sweep or "--queue" in extra
            if args.run and not (queued or args.dry_run or args.no_preflight):
                preflight(overrides, extra)
            commands = (sweep_commands(overrides, args.seeds, extra, args.name, not args.no_lambda_zero)
                        if args.sweep else [exp_run_command(overrides, extra)])
            for cmd in commands:
                print("$ dvc " + " ".join(cmd[3:]), file=sys.stderr)
                if not args.dry_run:
                    code = subprocess.call(cmd)
                    if code:
                        return code
            if args.sweep and not args.dry_run:
                print("queued; start them with: dvc queue start -j 1   (results: dvc exp show)", file=sys.stderr)
        else:
            print(printable(overrides))
    except PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
