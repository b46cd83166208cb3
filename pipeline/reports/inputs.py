"""Everything the report reads, gathered from the other stages' outputs.

Runs are discovered from metrics/evaluate/*.json (any encoders, any K); each run's
settings come from its training metrics metrics/defend/<run>.json (both towers' for a
combined run), the people it removed from its per-identity table data/evaluate/<run>/.
The report reads no model, shard or photo: only metrics, plots, those tables and the
examples the defenses wrote (data/examples). Every input is optional: a missing file makes
its section say so instead of failing the report.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.core.errors import PipelineError
from pipeline.core.paths import ENCODERS, parse_run_name

ENCODER_TITLES = {"text": "text encoder (names)", "image": "image encoder (faces)",
                  "both": "both encoders"}


def _json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _csv(path: Path) -> pd.DataFrame | None:
    try:
        return pd.read_csv(path)
    except (OSError, ValueError, pd.errors.EmptyDataError):
        return None


def _same(a, b) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
    return a == b


def recipe_name(config: dict, recipes: dict | None) -> str | None:
    """The params recipe (defend.image_recipes) whose every key equals the run's config; of
    several, the one that sets the most keys (a recipe that adds options to another matches
    the other's keys too)."""
    matches = [(-len(recipe), name) for name, recipe in sorted((recipes or {}).items())
               if isinstance(recipe, dict) and recipe
               and all(key in config and _same(config[key], value) for key, value in recipe.items())]
    return min(matches)[1] if matches else None


def _fmt_lambda(value) -> str:
    return "?" if value is None else f"{float(value):g}"


def variant_label(encoder: str, defense: dict, recipes: dict | None) -> str:
    """A short name for how a run was trained: recipe and weight regulariser lambda."""
    parts = []
    if encoder in ("text", "both"):
        t = defense.get("text") or {}
        parts.append(("text " if encoder == "both" else "") + f"λ={_fmt_lambda(t.get('weight_reg'))}")
    if encoder in ("image", "both"):
        i = defense.get("image") or {}
        name = recipe_name(i, recipes) if i else None
        label = f"{name} " if name else ("custom " if i and recipes else "")
        parts.append(("image " if encoder == "both" else "") + f"{label}λ={_fmt_lambda(i.get('weight_reg'))}")
    return ", ".join(parts)


@dataclass
class Run:
    """One defended model with its evaluation (and, for text/image, its training record)."""

    name: str                     # file stem, e.g. text-k4
    encoder: str
    k: int
    evaluation: dict
    defense: dict                 # {k, seed, text: {...}, image: {...}} from the training metrics
    variant: str
    removed: list[str]
    training: dict | None = None  # metrics/defend/<name>.json
    loss: pd.DataFrame | None = None

    def weight_reg(self, tower: str) -> float | None:
        value = (self.defense.get(tower) or {}).get("weight_reg")
        return None if value is None else float(value)

    @property
    def seed(self):
        return self.defense.get("seed")


@dataclass
class Training:
    """One defense training run (metrics/defend/*.json), also when it was not evaluated."""

    name: str
    encoder: str
    k: int
    metrics: dict
    variant: str
    loss: pd.DataFrame | None


@dataclass
class Inputs:
    root: Path
    download_facescrub: dict | None = None
    download_laion: dict | None = None
    splits: dict | None = None
    base_model: dict | None = None
    idia_before: dict | None = None
    utility_before: dict | None = None
    base_loss: pd.DataFrame | None = None
    identities_before: pd.DataFrame | None = None
    runs: list[Run] = field(default_factory=list)
    trainings: list[Training] = field(default_factory=list)
    names: set[str] = field(default_factory=set)      # every person's name seen anywhere
    audits: dict[str, dict] = field(default_factory=dict)   # metrics/audit/<run or reference-kK>.json
    adaptive: dict | None = None                             # metrics/adaptive.json (audit.adaptive.models)

    def encoders(self) -> list[str]:
        present = {r.encoder for r in self.runs}
        return [e for e in ENCODERS if e in present] + sorted(present - set(ENCODERS))

    def runs_of(self, encoder: str) -> list[Run]:
        return sorted((r for r in self.runs if r.encoder == encoder), key=lambda r: (r.variant, r.k, r.name))

    def benchmarks(self) -> list[str]:
        names = set(self.utility_before or {})
        for r in self.runs:
            names |= set(r.evaluation.get("zeroshot") or {})
        return sorted(names)


def _encoder_and_k(stem: str, metrics: dict) -> tuple[str, int] | None:
    """(encoder, K) of a run: from its metrics, else from its name (pipeline.core.paths)."""
    if metrics.get("encoder") is not None and metrics.get("k") is not None:
        return str(metrics["encoder"]), int(metrics["k"])
    try:
        return parse_run_name(stem)
    except PipelineError:
        return None


def _defense_of(root: Path, name: str, encoder: str, k: int, training: dict | None) -> dict:
    """A run's settings {k, seed, <tower>: config} from the training metrics; a combined run
    ("both-...") takes each tower's from the run of that tower with the same suffix."""
    defense: dict[str, Any] = {"k": k}
    towers = ["text", "image"] if encoder == "both" else [encoder]
    for tower in towers:
        src = training if encoder != "both" else \
            _json(root / "metrics/defend" / f"{tower}{name[len('both'):]}.json")
        if src and src.get("config"):
            defense[tower] = src["config"]
        if src and src.get("removal_seed") is not None:
            defense["seed"] = src["removal_seed"]
    return defense


def load_inputs(root: Path | str, recipes: dict | None = None, runs: set[str] | None = None,
                references: set[str] | None = None) -> Inputs:
    """Read every metric, plot table and run description below `root` (the repository).

    `runs` (names such as "text-k4") keeps only the defenses the params still ask for: DVC
    never deletes the metrics file of a K dropped from the sweep, and the report must not
    show it; `references` ("reference-k4") likewise keeps the audit of R that the params ask for."""
    root = Path(root)
    inp = Inputs(root=root)
    m = root / "metrics"
    inp.download_facescrub = _json(m / "download_facescrub.json")
    inp.download_laion = _json(m / "download_laion.json")
    inp.splits = _json(m / "splits.json")
    inp.base_model = _json(m / "base_model.json")
    inp.idia_before = _json(m / "idia_before.json")
    inp.utility_before = _json(m / "utility_before.json")
    inp.base_loss = _csv(root / "plots/base_model_loss.csv")
    inp.identities_before = _csv(root / "data/idia_before/identities.csv")

    for path in sorted((m / "defend").glob("*.json")):
        if runs is not None and path.stem not in runs:
            continue
        metrics = _json(path)
        ek = metrics and _encoder_and_k(path.stem, metrics)
        if not ek:
            continue
        defense = _defense_of(root, path.stem, ek[0], ek[1], metrics)
        inp.trainings.append(Training(path.stem, ek[0], ek[1], metrics,
                                      variant_label(ek[0], defense, recipes),
                                      _csv(root / "plots/defend" / f"{path.stem}.csv")))
    trainings = {t.name: t for t in inp.trainings}

    for path in sorted((m / "evaluate").glob("*.json")):
        if runs is not None and path.stem not in runs:
            continue
        metrics = _json(path)
        ek = metrics and _encoder_and_k(path.stem, metrics)
        if not ek:
            continue
        encoder, k = ek
        training = trainings.get(path.stem)
        defense = _defense_of(root, path.stem, encoder, k, training.metrics if training else None)
        table = _csv(root / "data/evaluate" / path.stem / "identities.csv")
        removed = [] if table is None or not {"name", "removed"} <= set(table) else \
            list(table.loc[table["removed"].astype(str).str.lower().isin(["true", "1"]), "name"].astype(str))
        inp.runs.append(Run(path.stem, encoder, k, metrics, defense,
                            variant_label(encoder, defense, recipes), removed,
                            training.metrics if training else None,
                            training.loss if training else None))

    adaptive = _json(m / "adaptive.json")
    inp.adaptive = adaptive if adaptive and adaptive.get("models") else None

    for path in sorted((m / "audit").glob("*.json")):
        wanted = runs is None or path.stem in runs or path.stem in (references or set())
        if wanted and (audit := _json(path)) and isinstance(audit.get("probes"), dict):
            inp.audits[path.stem] = audit

    names: set[str] = set()
    tables = [inp.identities_before] + [_csv(p) for p in sorted((root / "data/examples").glob("*/*.csv"))]
    for table in tables:
        if table is not None and "name" in table:
            names |= set(table["name"].dropna().astype(str))
    for r in inp.runs:
        names |= set(r.removed)
    inp.names = names
    return inp
