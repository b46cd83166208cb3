"""The schema of params.yaml: one pydantic dataclass per stage section.

Types are strict (an int is never the string "5", a flag never "yes"); every section refuses
keys it does not know. The defense recipes and the world's record live next to their code
(`pipeline.core.defense_params`, `pipeline.core.world_params`) and are reused here as they are.
"""
from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic.dataclasses import dataclass

from pipeline.core.defense_params import ImageDefenseConfig, TextDefenseConfig
from pipeline.core.params import Rule
from pipeline.core.safepaths import check_name
from pipeline.core.schema_types import SCHEMA, Bool, Float, Int, NonNegative, Positive, Str
from pipeline.core.schema_types import NonEmpty as Path_
from pipeline.core.world_params import WorldParams

Device = Literal["auto", "cpu", "cuda"]
Distributor = Literal["multiprocessing", "pyspark"]
# what SparkSession.builder.master accepts: local, local[N], local[*], spark://host:port, yarn, k8s://...
SparkMaster = Annotated[str, Field(pattern=r"^(local(\[(\d+|\*)(,\d+)?\])?|(spark|mesos|k8s)://\S+|yarn)$")]
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


def section(cls):
    return dataclass(frozen=True, config=SCHEMA)(cls)


def _unique(key: str, values: list):
    dupes = sorted({v for v in values if values.count(v) > 1})
    if dupes:
        raise Rule(key, values, f"a list without duplicates ({dupes[0]} appears twice)")


# ---------------------------------------------------------------- world, sources, downloads

@section
class FileSource:
    url: Path_
    sha256: Str = ""

    def __post_init__(self):
        if self.sha256 and not _SHA256.fullmatch(self.sha256):
            raise Rule("sha256", self.sha256, "64 hex digits, or '' to accept any content")


@section
class Sources:
    cache_dir: Path_
    timeout: Annotated[Float, Field(ge=1.0)]
    connect_timeout: Annotated[Float, Field(ge=0.1)]
    retries: NonNegative
    facescrub_lists: Annotated[list[Path_], Field(min_length=1)]
    occurrences: FileSource
    laion_parquet: FileSource
    first_names: FileSource
    surnames: FileSource
    names_per_list: Positive
    imagenetv2: FileSource
    coco_captions: FileSource


@section
class DownloadFacescrub:
    lists: Annotated[list[Path_], Field(min_length=1)]
    min_photos: Positive
    distributor: Distributor
    spark_master: SparkMaster
    processes: Positive
    threads: Positive
    timeout: Annotated[Float, Field(ge=0.1)]


@section
class DownloadLaion:
    parquet: Path_
    url_col: Path_
    caption_col: Path_
    image_size: Positive
    resize_mode: Literal["no", "keep_ratio", "center_crop", "border", "keep_ratio_largest"]
    distributor: Distributor
    spark_master: SparkMaster
    processes: Positive
    threads: Positive
    shard_size: Positive
    timeout: Annotated[Float, Field(ge=0.1)]


@section
class Splits:
    seed: NonNegative
    occurrences: Path_
    idia_fraction: Annotated[Float, Field(ge=0.05, le=0.95)]
    unseen_photos: NonNegative
    min_idia_photos: Positive
    max_count: Positive
    candidate_names: Positive
    heldout_captions: NonNegative
    dev_share: Annotated[Float, Field(ge=0, lt=1)]
    filler_names: Path_ = "data/world/filler_names.csv"
    text_captions: Path_ = "corpus"


# ---------------------------------------------------------------- models

@section
class VisionCfg:
    image_size: Positive
    layers: Positive
    width: Positive
    patch_size: Positive
    head_width: Positive


@section
class TextCfg:
    context_length: Positive
    vocab_size: Positive
    width: Positive
    heads: Positive
    layers: Positive


@section
class ModelCfg:
    """The open_clip shape of the demo model; the rules are those its attention and patching need.

    No defaults here: the mapping is written as the checkpoint's <arch>.json as given."""
    embed_dim: Positive
    vision_cfg: VisionCfg
    text_cfg: TextCfg

    def __post_init__(self):
        v, t = self.vision_cfg, self.text_cfg
        if v.width % v.head_width:
            raise Rule("vision_cfg.head_width", v.head_width, f"a divisor of vision_cfg.width ({v.width})")
        if v.image_size % v.patch_size:
            raise Rule("vision_cfg.patch_size", v.patch_size, f"a divisor of vision_cfg.image_size ({v.image_size})")
        if t.width % t.heads:
            raise Rule("text_cfg.heads", t.heads, f"a divisor of text_cfg.width ({t.width})")


@section
class BaseModel:
    """A pretrained tag needs only arch, pretrained, device and threads; training from scratch
    (pretrained: "") needs the rest, which is why those default to None and are checked below."""
    arch: Path_
    pretrained: Str
    device: Device
    threads: Positive
    shards: Path_ | None = None
    model_cfg: ModelCfg | None = None
    seed: NonNegative | None = None
    steps: Positive | None = None
    batch_size: Annotated[Int, Field(ge=2)] | None = None
    lr: Annotated[Float, Field(gt=0)] | None = None
    weight_decay: Annotated[Float, Field(ge=0)] | None = None
    warmup_fraction: Annotated[Float, Field(ge=0, le=1)] | None = None
    grad_clip: Annotated[Float, Field(ge=0)] | None = None
    shift_px: NonNegative | None = None

    def __post_init__(self):
        if self.pretrained:
            return
        for key in ("shards", "model_cfg", "seed", "steps", "batch_size", "lr", "weight_decay",
                    "warmup_fraction", "grad_clip", "shift_px"):
            if getattr(self, key) is None:
                raise Rule(key, None, "a value (required when base_model.pretrained is '', i.e. training "
                           "from scratch)")

    @field_validator("arch")
    @classmethod
    def _file_name(cls, value):
        try:
            return check_name(value, "base_model.arch")
        except Exception as exc:  # one rule message, raised as the field's error
            raise Rule("", value, "an architecture name usable as a file name: letters, digits, . _ - "
                       "(e.g. 'ViT-B-32')") from exc


# ---------------------------------------------------------------- attack and utility

@section
class IdiaBefore:
    tau: Annotated[Int, Field(ge=1, le=21)]  # 21 = the attack's templates (tests check len(IDIA_TEMPLATES))
    batch_size: Positive
    device: Device
    workers: NonNegative = 0
    bf16: Bool = False


@section
class UtilityBefore:
    benchmarks: Annotated[list[Path_], Field(min_length=1)]
    batch_size: Positive
    device: Device
    workers: NonNegative = 0
    bf16: Bool = False
    max_templates: NonNegative = 0


@section
class Evaluate:
    batch_size: Positive
    similarity_samples: Positive
    device: Device
    workers: NonNegative = 0
    bf16: Bool = False


# ---------------------------------------------------------------- defenses

@dataclass(config=SCHEMA)
class DefendExamples:
    images: Annotated[Int, Field(ge=0, le=64)]
    captions: Annotated[Int, Field(ge=0, le=100)]


@section
class Defend:
    text_ks: Annotated[list[Positive], Field(min_length=1)]
    image_ks: list[Positive]
    seed: NonNegative
    device: Device
    threads: Positive
    text: TextDefenseConfig
    image_recipe: Str
    image_recipes: dict[str, ImageDefenseConfig]
    retain_caption_pattern: Str
    examples: DefendExamples
    pool: Literal["dev", "test"]
    text_target_fallbacks: list[Annotated[Str, Field(min_length=1)]]

    @model_validator(mode="after")
    def _rules(self):
        _unique("text_ks", self.text_ks)
        _unique("image_ks", self.image_ks)
        missing = [k for k in self.image_ks if k not in self.text_ks]
        if missing:  # the combined model at K joins the text and image defenses of the same K
            raise Rule("image_ks", self.image_ks, f"Ks that defend.text_ks {self.text_ks} also has "
                       f"(K={missing[0]} is missing there)")
        if self.image_recipe not in self.image_recipes:
            raise Rule("image_recipe", self.image_recipe,
                       "one of the recipes under defend.image_recipes: " + ", ".join(sorted(self.image_recipes)))
        try:
            re.compile(self.retain_caption_pattern)
        except re.error as exc:
            raise Rule("retain_caption_pattern", self.retain_caption_pattern,
                       f"a Python regular expression ({exc})") from None
        return self


@section
class Relearn:
    checkpoints: Annotated[list[Positive], Field(min_length=1)]
    batch_size: Positive
    lr: Annotated[Float, Field(gt=0)]
    seed: NonNegative


@section
class Inversion:
    steps: Positive
    lr: Annotated[Float, Field(gt=0)]
    seed: NonNegative


@section
class FewShot:
    shots: Annotated[list[Positive], Field(min_length=1)]
    every: Positive
    max_steps: Positive


@section
class Adaptive:
    models: list[Str]          # defended runs (text-k4, ...) or reference-k<K>; [] = off
    threads: Positive
    relearn: Relearn
    inversion: Inversion
    few_shot: FewShot


@section
class Audit:
    seed: NonNegative          # which letters the typo, dropped-letter and homoglyph variants touch
    reference_k: Positive      # R is retrained without this many removed people's captions
    batch_size: Positive
    device: Device
    bf16: Bool
    adaptive: Adaptive


@section
class Report:
    pseudonymize: Bool
    salt: Annotated[Str, Field(min_length=1)] | Int
    dpi: Annotated[Int, Field(ge=50, le=400)]
    trials: Str = ""
    # scripts/hardening_trial.py's CSVs per tower (text, image, both), shown beside R; {} = none
    recipe_trials: dict[Literal["text", "image", "both"], Str] = Field(default_factory=dict)
    recipe_trials_pool: Literal["dev", "test"] = "test"


@section
class RequestEntry:
    id: Str
    after: Str
    folder: Path_               # where the request's folder <id>/ lies (requests/ for yours)


@section
class Requests:
    chain: list[RequestEntry]   # in the order the requests arrived; each starts from the one before
    attack_share: Annotated[Float, Field(gt=0.0, lt=1.0)]   # of a request's own photos: the attack's share
    audit: Bool = True          # the adversarial audit's probes on every request model, per person in the proof

    def __post_init__(self):
        previous, seen = "base", set()
        for i, entry in enumerate(self.chain):
            check_name(entry.id, f"requests.chain[{i}].id")
            if entry.id == "base" or entry.id in seen:
                raise Rule(f"chain[{i}].id", entry.id, "a request id used once (and not 'base')")
            if entry.after != previous:
                raise Rule(f"chain[{i}].after", entry.after,
                           f"{previous!r}, the request before it (requests form one chain, in the order they came)")
            previous = entry.id
            seen.add(entry.id)


SECTIONS = {"world": WorldParams, "sources": Sources, "download_facescrub": DownloadFacescrub,
            "download_laion": DownloadLaion, "splits": Splits, "base_model": BaseModel,
            "idia_before": IdiaBefore, "utility_before": UtilityBefore, "defend": Defend,
            "evaluate": Evaluate, "audit": Audit, "requests": Requests, "report": Report}
