"""Where the stages exchange their files, and how a defense run is named.

dvc.yaml declares the same paths as deps and outs; tests/test_dvc_deps.py checks that each
path a stage's entry point takes from here is one of its deps or outs. All paths are
relative to the repository root (the stages run there), so no output depends on where the
repository lives.
"""
from __future__ import annotations

import re
from pathlib import Path

from pipeline.core.errors import PipelineError

WORLD = Path("data/world")
FACESCRUB = Path("data/facescrub")
FACESCRUB_INDEX = FACESCRUB / "index.parquet"
LAION = Path("data/laion")
SHARDS = LAION / "shards"
SPLITS = Path("data/splits")
BASE_MODEL = Path("data/base_model")
IDIA_BEFORE = Path("data/idia_before")
UTILITY_BEFORE = Path("data/utility_before")
DEFENDED = Path("data/defended")       # one checkpoint folder per run
EXAMPLES = Path("data/examples")       # what each defense trained on, for the report
EVALUATE = Path("data/evaluate")       # per-identity attack table per run
REFERENCE = Path("data/reference")     # R: the base model retrained without the removed people's captions
TEXT_CAPTIONS = "text_captions.parquet"  # in SPLITS: what the text defense trains on (splits.text_captions)
UNSEEN_PHOTOS = "unseen_photos.csv"    # in SPLITS: photos held back from the attack and the defenses
ADAPTIVE = Path("data/adaptive")       # adaptive attacks: one folder per model (audit.adaptive.models)
AUDIT = Path("data/audit")             # per-identity probe tables: base/ and one folder per run
REQUESTS = Path("data/requests")       # removal requests: base/ (where chains start) and one folder per request
METRICS = Path("metrics")
PLOTS = Path("plots")
REPORTS = Path("reports")

ENCODERS = ("text", "image", "both")
_RUN = re.compile(r"^(text|image|both)-k([1-9][0-9]*)$")


def metrics_file(stage: str, run: str | None = None) -> Path:
    """metrics/<stage>.json, or metrics/<stage>/<run>.json for a per-run stage."""
    return METRICS / f"{stage}.json" if run is None else METRICS / stage / f"{run}.json"


def plot_file(stage: str, run: str) -> Path:
    return PLOTS / stage / f"{run}.csv"


def run_name(encoder: str, k: int) -> str:
    """The name of a defense run: which towers were defended, and how many people removed."""
    if encoder not in ENCODERS or int(k) < 1:
        raise PipelineError(f"no defense run for encoder {encoder!r} and K = {k}; "
                            f"encoders are {', '.join(ENCODERS)} and K is a positive integer")
    return f"{encoder}-k{int(k)}"


REFERENCE_RUN = "reference-k"   # R of K people is audited (and attacked) under the name "reference-k<K>"


def reference_run(k: int) -> str:
    return f"{REFERENCE_RUN}{int(k)}"


def parse_reference_run(name: str) -> int | None:
    """K of a reference run name ('reference-k4' -> 4); None for any other name."""
    rest = name[len(REFERENCE_RUN):] if name.startswith(REFERENCE_RUN) else ""
    return int(rest) if rest.isdigit() else None


def parse_run_name(name: str) -> tuple[str, int]:
    """(encoder, K) of a run name such as 'image-k4'."""
    match = _RUN.match(name)
    if not match:
        raise PipelineError(f"{name!r} is not a defense run name; expected <text|image|both>-k<K>, e.g. image-k4")
    return match.group(1), int(match.group(2))
