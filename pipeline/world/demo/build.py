"""Write the demo world as real-format inputs: FaceScrub lists, a LAION parquet, counts, benchmark.

Every random draw comes from a generator keyed by (seed, stream, item indices), so an item
looks the same whatever else the world contains, and the same params give the same bytes.
"""
from __future__ import annotations

import csv
import hashlib
import json
import math
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import yaml
from tqdm import tqdm

from pipeline.attack.templates import IDIA_TEMPLATES, fill_template
from pipeline.world.demo import captions
from pipeline.core.safepaths import slug
from pipeline.core.world_params import WorldConfig, world_config
from pipeline.world.demo.faces import (DISCRETE_ATTRIBUTES, HAIR_COLOURS, Identity, draw_identities,
                                  render_face, sample_distinct)
from pipeline.world.demo.imaging import jpeg_bytes
from pipeline.world.demo.names import draw_unique_names
from pipeline.world.demo.scenes import PATTERNS, class_name, render_scene, scene_classes

FACESCRUB_HEADER = ["name", "image_id", "face_id", "url", "bbox", "sha256"]
LIST_FILES = {"male": "facescrub_actors.txt", "female": "facescrub_actresses.txt"}
NAMED_MIN_DIFF = 3      # named identities differ pairwise in >= 3 attributes
ANONYMOUS_MIN_DIFF = 2  # a stranger never looks like a near-copy of a named person
GREYSCALE_SHARE = 0.05  # of member photos in the corpus
BACKGROUND_NAME_SHARE = 0.3


class Stream(IntEnum):
    NAMED = 1
    NAMES = 2
    COUNTS = 3
    FACESCRUB = 4
    FACE_IDS = 5
    MEMBER_PHOTO = 6
    MEMBER_CAPTION = 7
    ANON_PERSON = 8
    ANON_PHOTO = 9
    ANON_CAPTION = 10
    BACKGROUND_NAMES = 11
    SCENE = 12
    SHUFFLE = 13
    BENCH_SCENE = 14
    BENCH_HAIR = 15
    SCENE_PHOTO = 16
    REQUEST_PERSON = 17
    REQUEST_NAME = 18
    REQUEST_PHOTO = 19


def rng_for(seed: int, stream: Stream, *index: int) -> np.random.Generator:
    # Fixed-length keys: (seed, stream, a, b) per draw.
    key = [seed, int(stream), *index] + [0] * (2 - len(index))
    return np.random.default_rng(key)


@dataclass
class Person:
    name: str
    identity: Identity
    member: bool
    count: int


@dataclass
class CorpusItem:
    kind: str        # member | anonymous | scene
    key: tuple       # indices into the kind's stream
    caption: str


def build_world(params: dict, out_dir: Path, *, progress: bool = True) -> None:
    """Render the world described by the `world:` params into the (empty) folder `out_dir`."""
    cfg = world_config(params)
    out_dir = Path(out_dir)
    people = _draw_people(cfg)
    named_codes = np.array([p.identity.codes() for p in people], dtype=int)
    corpus_info = _write_corpus(cfg, people, named_codes, out_dir / "laion", progress)
    photos = _write_facescrub(cfg, people, out_dir / "facescrub", progress)
    _write_occurrences(people, out_dir / "occurrences.csv")
    bench_info = _write_benchmarks(cfg, named_codes, out_dir / "benchmark", progress)
    _write_demo_request(cfg, people, named_codes, corpus_info["background_names"], out_dir / "requests")
    _write_summary(cfg, people, corpus_info, photos, bench_info, out_dir / "world.json")


def _draw_people(cfg: WorldConfig) -> list[Person]:
    n = cfg.members + cfg.nonmembers
    idents = draw_identities(rng_for(cfg.seed, Stream.NAMED), n, NAMED_MIN_DIFF)
    names = draw_unique_names(rng_for(cfg.seed, Stream.NAMES), [i.gender for i in idents])
    # Log-uniform over integers: floor(exp(U[ln a, ln(b + 1)))) lands in [a, b]. The uniform
    # is stratified (one draw per 1/members slice, then shuffled) so that every decade of
    # counts is populated and the corpus size barely varies with the seed.
    rng = rng_for(cfg.seed, Stream.COUNTS)
    q = (rng.permutation(cfg.members) + rng.random(cfg.members)) / cfg.members
    lo, hi = math.log(cfg.min_count), math.log(cfg.max_count + 1)
    counts = np.clip(np.floor(np.exp(lo + q * (hi - lo))).astype(int), cfg.min_count, cfg.max_count)
    return [Person(names[i], idents[i], i < cfg.members, int(counts[i]) if i < cfg.members else 0)
            for i in range(n)]


def _plan_corpus(cfg: WorldConfig, people: list[Person], named_codes: np.ndarray):
    items: list[CorpusItem] = []
    for m, person in enumerate(people):
        for k in range(person.count):
            rng = rng_for(cfg.seed, Stream.MEMBER_CAPTION, m, k)
            items.append(CorpusItem("member", (m, k),
                                    captions.name_caption(rng, person.name, person.identity.gender)))
    strangers = [sample_distinct(rng_for(cfg.seed, Stream.ANON_PERSON, i), named_codes,
                                 ANONYMOUS_MIN_DIFF) for i in range(cfg.anonymous_faces)]
    named = [i for i in range(cfg.anonymous_faces)
             if rng_for(cfg.seed, Stream.ANON_CAPTION, i, 1).random() < BACKGROUND_NAME_SHARE]
    # Background names are one-off: unique, and never nesting with a FaceScrub name.
    bg = draw_unique_names(rng_for(cfg.seed, Stream.BACKGROUND_NAMES),
                           [strangers[i].gender for i in named], taken=[p.name for p in people])
    bg_of = dict(zip(named, bg))
    for i, ident in enumerate(strangers):
        rng = rng_for(cfg.seed, Stream.ANON_CAPTION, i, 0)
        items.append(CorpusItem("anonymous", (i,),
                                captions.anonymous_caption(rng, ident, bg_of.get(i))))
    classes = scene_classes(cfg.scene_classes)
    for c, (colour, shape) in enumerate(classes):
        for j in range(cfg.scenes_per_class):
            rng = rng_for(cfg.seed, Stream.SCENE, c, j)
            pattern = PATTERNS[int(rng.integers(len(PATTERNS)))]
            items.append(CorpusItem("scene", (c, j, pattern),
                                    captions.scene_caption(rng, colour, shape, pattern)))
    return items, strangers, bg


def _check_captions(items: list[CorpusItem], people: list[Person]) -> None:
    # Occurrence counts are defined by substring search on captions (as the splits stage
    # does), so they must match what the corpus really holds.
    texts = [it.caption.casefold() for it in items]
    caption_set = set(texts)
    for p in people:
        key = p.name.casefold()
        found = sum(key in t for t in texts)
        if found != p.count:
            raise RuntimeError(f"world bug: {p.name!r} named in {found} captions, count {p.count}")
        for template in IDIA_TEMPLATES:
            if fill_template(template, p.name).casefold() in caption_set:
                raise RuntimeError(f"world bug: an IDIA prompt is a caption ({template!r})")


def _write_corpus(cfg: WorldConfig, people, named_codes, folder: Path, progress: bool) -> dict:
    items, strangers, bg_names = _plan_corpus(cfg, people, named_codes)
    _check_captions(items, people)
    classes = scene_classes(cfg.scene_classes)
    order = rng_for(cfg.seed, Stream.SHUFFLE).permutation(len(items))
    width = max(6, len(str(len(items))))
    (folder / "images").mkdir(parents=True)
    urls, texts, digests = [], [], []
    for row, idx in enumerate(tqdm(order, desc="world: corpus", unit="img", disable=not progress)):
        item = items[idx]
        if item.kind == "member":
            m, k = item.key
            rng = rng_for(cfg.seed, Stream.MEMBER_PHOTO, m, k)
            grey = bool(rng.random() < GREYSCALE_SHARE)
            img, _ = render_face(people[m].identity, rng, cfg.image_size, greyscale=grey)
        elif item.kind == "anonymous":
            (i,) = item.key
            img, _ = render_face(strangers[i], rng_for(cfg.seed, Stream.ANON_PHOTO, i),
                                 cfg.image_size)
        else:
            c, j, pattern = item.key
            colour, shape = classes[c]
            img = render_scene(colour, shape, pattern, rng_for(cfg.seed, Stream.SCENE_PHOTO, c, j),
                               cfg.image_size)
        rel = f"images/{row:0{width}d}.jpg"
        payload = jpeg_bytes(img, cfg.jpeg_quality)
        (folder / rel).write_bytes(payload)
        digests.append(hashlib.sha256(payload).hexdigest())
        urls.append(f"file:{rel}")
        texts.append(item.caption)
    n = len(items)
    table = pa.table({"URL": pa.array(urls, pa.string()), "TEXT": pa.array(texts, pa.string()),
                      "WIDTH": pa.array([cfg.image_size] * n, pa.int64()),
                      "HEIGHT": pa.array([cfg.image_size] * n, pa.int64()),
                      # content of every photo: later stages depend on this file, not the folder
                      "sha256": pa.array(digests, pa.string())})
    pq.write_table(table, folder / "laion.parquet")
    kinds = [it.kind for it in items]
    return {"pairs": n, "member_images": kinds.count("member"),
            "anonymous_images": kinds.count("anonymous"), "scene_images": kinds.count("scene"),
            "background_names": bg_names}


def _write_facescrub(cfg: WorldConfig, people: list[Person], folder: Path, progress: bool) -> dict:
    (folder / "photos").mkdir(parents=True)
    # Real FaceScrub lists are grouped by person in name order; so are these.
    ordered = [(g, m) for g in LIST_FILES for m in sorted(range(len(people)), key=lambda i: people[i].name)
               if people[m].identity.gender == g]
    total = len(ordered) * cfg.facescrub_photos
    face_ids = rng_for(cfg.seed, Stream.FACE_IDS).permutation(total) + 1
    rows = {g: [] for g in LIST_FILES}
    image_ids: dict[str, list[int]] = {}
    bar = tqdm(total=total, desc="world: facescrub", unit="img", disable=not progress)
    image_id = 0
    for gender, m in ordered:
        person = people[m]
        image_ids[person.name] = []
        for j in range(cfg.facescrub_photos):
            img, (x1, y1, x2, y2) = render_face(person.identity,
                                                rng_for(cfg.seed, Stream.FACESCRUB, m, j),
                                                cfg.image_size)
            data = jpeg_bytes(img, cfg.jpeg_quality)
            rel = f"photos/{image_id + 1:06d}.jpg"
            (folder / rel).write_bytes(data)
            rows[gender].append([person.name, str(image_id + 1), str(int(face_ids[image_id])),
                                 f"file:{rel}", f"{x1},{y1},{x2},{y2}",
                                 hashlib.sha256(data).hexdigest()])
            image_ids[person.name].append(image_id + 1)
            image_id += 1
            bar.update()
    bar.close()
    for gender, filename in LIST_FILES.items():
        lines = ["\t".join(FACESCRUB_HEADER)] + ["\t".join(r) for r in rows[gender]]
        (folder / filename).write_text("\n".join(lines) + "\n")
    return image_ids


DEMO_REQUEST = "demo-001"


def _write_demo_request(cfg: WorldConfig, people: list[Person], named_codes, taken: list[str],
                        folder: Path) -> None:
    """The demo's removal request (README "Removal requests"): the member the corpus names most
    often, and a stranger who is in no FaceScrub list and never in the corpus, who brings a
    folder of their own photos. The base model knows the first and cannot know the second, so
    one request shows both verdicts. Own streams: the rest of the world is the same bytes."""
    known = max((p for p in people if p.member), key=lambda p: (p.count, p.name))
    ident = sample_distinct(rng_for(cfg.seed, Stream.REQUEST_PERSON), named_codes, NAMED_MIN_DIFF)
    (stranger,) = draw_unique_names(rng_for(cfg.seed, Stream.REQUEST_NAME), [ident.gender],
                                    taken=[p.name for p in people] + list(taken))
    photos = folder / DEMO_REQUEST / "photos" / slug(stranger)[0]
    photos.mkdir(parents=True)
    for j in range(cfg.facescrub_photos):
        img, _ = render_face(ident, rng_for(cfg.seed, Stream.REQUEST_PHOTO, j), cfg.image_size)
        (photos / f"{j + 1:03d}.jpg").write_bytes(jpeg_bytes(img, cfg.jpeg_quality))
    body = {"id": DEMO_REQUEST, "names": [known.name, stranger], "towers": ["text", "image", "both"]}
    (folder / DEMO_REQUEST / "request.yaml").write_text(
        "# Written by the world stage: the demo's removal request (README \"Removal requests\").\n"
        + yaml.safe_dump(body, sort_keys=False))


def _write_occurrences(people: list[Person], path: Path) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["name", "count", "membership"])
        for p in sorted(people, key=lambda p: p.name):
            writer.writerow([p.name, p.count, "member" if p.member else "non_member"])


def _write_benchmarks(cfg: WorldConfig, named_codes, folder: Path, progress: bool) -> dict:
    scenes = [class_name(c, s) for c, s in scene_classes(cfg.scene_classes)]
    hair = list(HAIR_COLOURS)
    tasks = {"scenes": (scenes, captions.SCENE_BENCHMARK_TEMPLATES, cfg.benchmark_per_class),
             "hair": (hair, captions.HAIR_BENCHMARK_TEMPLATES, cfg.hair_benchmark_per_class)}
    total = sum(len(names) * per for names, _, per in tasks.values())
    bar = tqdm(total=total, desc="world: benchmark", unit="img", disable=not progress)
    classes = scene_classes(cfg.scene_classes)
    for task, (names, templates, per_class) in tasks.items():
        root = folder / task
        root.mkdir(parents=True)
        (root / "classnames.txt").write_text("\n".join(names) + "\n")
        (root / "templates.txt").write_text("\n".join(templates) + "\n")
        for c, cls in enumerate(names):
            (root / "images" / str(c)).mkdir(parents=True)
            for j in range(per_class):
                if task == "scenes":
                    rng = rng_for(cfg.seed, Stream.BENCH_SCENE, c, j)
                    pattern = PATTERNS[int(rng.integers(len(PATTERNS)))]
                    img = render_scene(*classes[c], pattern, rng, cfg.image_size)
                else:
                    rng = rng_for(cfg.seed, Stream.BENCH_HAIR, c, j)
                    ident = sample_distinct(rng, named_codes, ANONYMOUS_MIN_DIFF, hair_colour=cls)
                    img, _ = render_face(ident, rng, cfg.image_size)
                (root / "images" / str(c) / f"{j:04d}.jpg").write_bytes(
                    jpeg_bytes(img, cfg.jpeg_quality))
                bar.update()
    bar.close()
    return {task: {"classes": names, "per_class": per} for task, (names, _, per) in tasks.items()}


def _write_summary(cfg, people, corpus_info, photos, bench_info, path: Path) -> None:
    summary = {
        "seed": cfg.seed,
        "params": cfg.to_dict(),
        "sizes": {"identities": len(people), "members": cfg.members,
                  "nonmembers": cfg.nonmembers,
                  "facescrub_photos": sum(len(v) for v in photos.values()),
                  "pairs": corpus_info["pairs"], "member_images": corpus_info["member_images"],
                  "anonymous_images": corpus_info["anonymous_images"],
                  "scene_images": corpus_info["scene_images"],
                  "background_names": len(corpus_info["background_names"])},
        "discrete_attributes": list(DISCRETE_ATTRIBUTES),
        "identities": [{"name": p.name, "gender": p.identity.gender, "member": p.member,
                        "count": p.count, "list": LIST_FILES[p.identity.gender],
                        "image_ids": photos[p.name], "attributes": p.identity.to_dict()}
                       for p in sorted(people, key=lambda p: p.name)],
        "background_names": sorted(corpus_info["background_names"]),
        "caption_templates": {"named": captions.NAME_TEMPLATES,
                              "named_gendered": captions.GENDERED_NAME_TEMPLATES,
                              "scenes": captions.SCENE_CAPTION_TEMPLATES},
        "benchmark": bench_info,
    }
    path.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
