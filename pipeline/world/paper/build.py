"""The paper profile's inputs, laid out exactly like the demo world (`world.source: paper`).

The `world` stage writes data/world/ in both profiles, so every later stage reads the same
paths. In the paper profile the folder holds the real inputs, fetched by
pipeline.world.paper.sources with their checksums:

    facescrub/<list file names>     the official FaceScrub lists (from sources.facescrub_lists)
    laion/laion.parquet             LAION-Aesthetics v2 6.5+ (URL, TEXT, WIDTH, HEIGHT, ...)
    occurrences.csv                 LAION-400M counts per FaceScrub name (IDIA paper)
    filler_names.csv                SSA first names + Census 2010 surnames (name,kind)
    coco_captions.txt               the authors' 10,000 MS-COCO captions (splits.text_captions may name it)
    benchmark/imagenetv2/           ImageNetV2 matched-frequency: classnames.txt, templates.txt,
                                    images/<class_index>/*.jpeg (open_clip's ImageNet names and
                                    the 80 OpenAI templates)
    sources.json                    what was fetched from where: URL, sha256, bytes
"""
from __future__ import annotations

import json
import tarfile
import urllib.parse
from pathlib import Path, PurePosixPath

import pyarrow.parquet as pq

from pipeline.data import filler_names
from pipeline.world.paper import sources
from pipeline.data.facescrub import list_group
from pipeline.data.occurrences import read_occurrences
from pipeline.core.errors import ParamError, PipelineError
from pipeline.core.params import require

SECTION = "sources"
FILE_SOURCES = ("occurrences", "first_names", "surnames", "laion_parquet", "imagenetv2", "coco_captions")
LAION_COLUMNS = ("URL", "TEXT")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
FACESCRUB_HEADER = "name\timage_id\tface_id\turl\tbbox\tsha256"


def read_sources_params(p: dict) -> dict:
    """Validate the `sources:` section; every problem is one ParamError naming its key."""
    cfg = {
        "cache_dir": require(p, SECTION, "cache_dir", str),
        "timeout": require(p, SECTION, "timeout", float, low=1.0),
        "connect_timeout": require(p, SECTION, "connect_timeout", float, low=0.1),
        "retries": require(p, SECTION, "retries", int, low=0),
        "names_per_list": require(p, SECTION, "names_per_list", int, low=1),
    }
    lists = p.get("facescrub_lists")
    if not isinstance(lists, list) or not lists or not all(isinstance(x, str) and x.strip() for x in lists):
        raise ParamError(f"{SECTION}.facescrub_lists", lists,
                         "a list of the FaceScrub list files (facescrub_actors.txt, facescrub_actresses.txt)")
    cfg["facescrub_lists"] = [x.strip() for x in lists]
    for name in FILE_SOURCES:
        entry = p.get(name)
        if not isinstance(entry, dict) or not isinstance(entry.get("url"), str) or not entry["url"].strip():
            raise ParamError(f"{SECTION}.{name}", entry, "a mapping {url: <http(s) URL or path>, sha256: <hex or ''>}")
        sha = entry.get("sha256") or ""
        if not isinstance(sha, str) or (sha and (len(sha) != 64 or any(c not in "0123456789abcdefABCDEF" for c in sha))):
            raise ParamError(f"{SECTION}.{name}.sha256", sha, "64 hex digits, or '' to accept any content")
        cfg[name] = {"url": entry["url"].strip(), "sha256": sha}
    return cfg


def preflight(cfg: dict) -> None:
    """Fail in seconds, before any long download: local files must exist, remote hosts answer."""
    for i, source in enumerate(cfg["facescrub_lists"]):
        key = f"{SECTION}.facescrub_lists[{i}]"
        if not sources.is_remote(source) and not sources.local_path(source, key).is_file():
            raise PipelineError(f"{key}: FaceScrub list not found: {source} (the lists come from the FaceScrub "
                                f"authors on request; put facescrub_actors.txt and facescrub_actresses.txt there "
                                f"or set {SECTION}.facescrub_lists to their paths)")
    remote = [(f"{SECTION}.facescrub_lists[{i}]", s) for i, s in enumerate(cfg["facescrub_lists"])]
    remote += [(f"{SECTION}.{name}.url", cfg[name]["url"]) for name in FILE_SOURCES]
    cache = Path(cfg["cache_dir"]).expanduser()
    probed: dict[str, str | None] = {}
    for key, url in remote:
        if not sources.is_remote(url):
            path = sources.local_path(url, key)
            if not path.is_file():
                raise PipelineError(f"{key}: file not found: {path} (give an existing path or an http(s) URL)")
            continue
        if sources.cache_file(url, cache).is_file():
            continue
        host = url.split("/")[2]
        if host not in probed:
            probed[host] = sources.host_reachable(url, cfg["connect_timeout"])
        if probed[host] is not None:
            raise PipelineError(f"{key}: cannot fetch {url}: {probed[host]} (offline? download it on a "
                                f"connected machine and set {key} to the local path)")


def build_paper_world(p: dict, out_dir: Path, *, progress: bool = True) -> dict:
    """Fetch and lay out every real input in `out_dir`; return the manifest (also sources.json)."""
    cfg = read_sources_params(p)
    preflight(cfg)
    out_dir = Path(out_dir)
    manifest: dict[str, dict] = {}

    def get(key: str, url: str, sha256: str = "") -> Path:
        path = sources.fetch(url, cfg["cache_dir"], key=key, sha256=sha256, timeout=cfg["timeout"],
                             connect_timeout=cfg["connect_timeout"], retries=cfg["retries"], progress=progress)
        manifest[key] = {"url": url, "sha256": sources.sha256_file(path), "bytes": path.stat().st_size}
        return path

    # Small files first: a wrong one fails before the large downloads start.
    seen = set()
    for i, url in enumerate(cfg["facescrub_lists"]):
        key = f"{SECTION}.facescrub_lists[{i}]"
        path = get(key, url)
        given = PurePosixPath(urllib.parse.urlsplit(url).path).name if sources.is_remote(url) else path.name
        group, _ = list_group(given)  # actors -> male, actresses -> female, from the file name
        if group not in ("actors", "actresses"):
            raise PipelineError(f"{key}: cannot tell from the file name {given!r} whether it lists actors or "
                                "actresses (the official names are facescrub_actors.txt, facescrub_actresses.txt)")
        name = f"facescrub_{group}.txt"  # the names download_facescrub.lists expects
        if name in seen:
            raise PipelineError(f"{key}: a second list of {group}")
        seen.add(name)
        check_facescrub_list(path, key)
        sources.place(path, out_dir / "facescrub" / name)

    occ = get(f"{SECTION}.occurrences", **cfg["occurrences"])
    check_occurrences(occ, f"{SECTION}.occurrences")
    sources.place(occ, out_dir / "occurrences.csv")

    top = cfg["names_per_list"]
    male, female = filler_names.first_names(get(f"{SECTION}.first_names", **cfg["first_names"]), top)
    last = filler_names.surnames(get(f"{SECTION}.surnames", **cfg["surnames"]), top)
    filler_names.write_filler_names(out_dir / "filler_names.csv", male, female, last)

    coco = get(f"{SECTION}.coco_captions", **cfg["coco_captions"])
    sources.place(coco, out_dir / "coco_captions.txt")

    parquet = get(f"{SECTION}.laion_parquet", **cfg["laion_parquet"])
    check_laion_parquet(parquet, f"{SECTION}.laion_parquet")
    sources.place(parquet, out_dir / "laion" / "laion.parquet")

    tar = get(f"{SECTION}.imagenetv2", **cfg["imagenetv2"])
    counts = extract_imagenetv2(tar, out_dir / "benchmark" / "imagenetv2", f"{SECTION}.imagenetv2")
    manifest[f"{SECTION}.imagenetv2"].update(counts)
    manifest["filler_names"] = {"male": len(male), "female": len(female), "surname": len(last)}

    (out_dir / "sources.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def check_facescrub_list(path: Path, key: str) -> None:
    with open(path, encoding="utf-8", errors="replace") as fh:
        first = next((line for line in fh if line.strip()), "")
    if tuple(f.strip() for f in first.split("\t")) != tuple(FACESCRUB_HEADER.split("\t")):
        raise PipelineError(f"{key}: {path} is not a FaceScrub list (its first line must be the header "
                            f"{FACESCRUB_HEADER.expandtabs(1)}, tab-separated)")


def check_occurrences(path: Path, key: str) -> None:
    # The whole file, with the rules the splits stage applies: a bad row fails here, before the downloads.
    read_occurrences(path, key)


def check_laion_parquet(path: Path, key: str) -> None:
    try:
        schema = pq.read_schema(path)
    except Exception as exc:  # pyarrow raises several types for a non-parquet file
        raise PipelineError(f"{key}: {path} is not a readable parquet file ({str(exc).splitlines()[0]})") from None
    missing = [c for c in LAION_COLUMNS if c not in schema.names]
    if missing:
        raise PipelineError(f"{key}: {path} lacks columns {missing} (has {', '.join(schema.names)})")


def extract_imagenetv2(archive: Path, folder: Path, key: str) -> dict:
    """ImageNetV2's tar (`<top>/<class_index>/<file>.jpeg`) -> `folder/images/<class_index>/`,
    plus open_clip's ImageNet class names and the 80 OpenAI zero-shot templates."""
    from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES, OPENAI_IMAGENET_TEMPLATES

    images = 0
    classes = set()
    try:
        with tarfile.open(archive, mode="r:*") as tar:
            for member in tar:
                parts = PurePosixPath(member.name).parts
                if not member.isfile() or len(parts) < 2 or not parts[-2].isdigit() \
                        or not parts[-1].lower().endswith(IMAGE_SUFFIXES) or parts[-1].startswith("."):
                    continue
                index = int(parts[-2])
                if index >= len(IMAGENET_CLASSNAMES):
                    raise PipelineError(f"{key}: {archive} has class folder {index}; ImageNet has "
                                        f"{len(IMAGENET_CLASSNAMES)} classes")
                target = folder / "images" / str(index) / parts[-1]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(tar.extractfile(member).read())
                images += 1
                classes.add(index)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise PipelineError(f"{key}: {archive} is not a readable tar archive ({exc})") from None
    if not images:
        raise PipelineError(f"{key}: {archive} holds no images in <class_index>/ folders")
    (folder / "classnames.txt").write_text("\n".join(IMAGENET_CLASSNAMES) + "\n")
    (folder / "templates.txt").write_text("\n".join(t("{}") for t in OPENAI_IMAGENET_TEMPLATES) + "\n")
    return {"images": images, "classes": len(classes)}
