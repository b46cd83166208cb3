"""A removal request: who is to be removed, from which towers, and in which order requests came.

One folder per request, `requests/<id>/`, committed with the repository like any other input
a pipeline run rests on (a request is a document someone sent: it is reviewed, kept and
versioned as it came, which a params.yaml section would blur). It holds `request.yaml` and,
for people who are not in the FaceScrub lists, `photos/<name folder>/*.jpg` (the folder named
as the FaceScrub stage names it). One folder is one DVC dependency, photos included.

    # requests/demo-001/request.yaml
    id: demo-001
    names: [Ella Anderson, Bob Stone]
    towers: [text, image, both]          # optional; default all three

The order in which requests arrived is a param, `requests.chain` in params.yaml: a list of
`{id, after, folder}` where `after` is the request whose model this one starts from (`base` for
the first) and `folder` holds the request's folder (`requests` for yours; the demo's request is
written by the world stage into data/world/requests). DVC's `foreach` turns each entry into its own stage that depends on its predecessor's
model, so adding a request trains only that request.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from pipeline.core.errors import PipelineError
from pipeline.core.safepaths import check_name, slug

TOWERS = ("text", "image", "both")
KEYS = {"id", "names", "towers"}
REQUEST_FILE = "request.yaml"
PHOTOS = "photos"
BASE = "base"


@dataclass(frozen=True)
class Request:
    id: str
    names: tuple[str, ...]
    photos: str = ""
    towers: tuple[str, ...] = TOWERS
    after: str = BASE
    source: str = field(default="", compare=False)

    @property
    def needs_photos(self) -> bool:
        return any(t in ("image", "both") for t in self.towers)


def load_request(folder: Path | str, after: str = BASE) -> Request:
    folder = Path(folder)
    path = folder / REQUEST_FILE
    where = str(path)
    if not path.is_file():
        raise PipelineError(f"request file {where} not found (requests.chain names it)")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise PipelineError(f"{where}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise PipelineError(f"{where}: expected a mapping with keys id, names (and optionally towers)")
    unknown = sorted(set(data) - KEYS)
    if unknown:
        raise PipelineError(f"{where}: unknown key {unknown[0]!r}; allowed: {', '.join(sorted(KEYS))}")
    rid = check_name(data.get("id", ""), f"{where}: id")
    if rid != folder.name:
        raise PipelineError(f"{where}: id {rid!r} must equal its folder's name ({folder.name!r})")
    names = data.get("names")
    if not isinstance(names, list) or not names:
        raise PipelineError(f"{where}: names must be a non-empty list of full names (an empty request removes no one)")
    clean = []
    for name in names:
        if not isinstance(name, str) or not " ".join(name.split()):
            raise PipelineError(f"{where}: names holds {name!r}; each entry must be a person's full name")
        name = " ".join(name.split())
        sub, why = slug(name)
        if sub is None:
            raise PipelineError(f"{where}: {why}")
        if name in clean:
            raise PipelineError(f"{where}: {name!r} appears twice in names")
        clean.append(name)
    towers = data.get("towers", list(TOWERS))
    if not isinstance(towers, list) or not towers or any(t not in TOWERS for t in towers) or len(set(towers)) != len(towers):
        raise PipelineError(f"{where}: towers = {towers!r}; expected a list of distinct entries of {', '.join(TOWERS)}")
    photos = str(folder / PHOTOS) if (folder / PHOTOS).is_dir() else ""
    return Request(rid, tuple(clean), photos, tuple(t for t in TOWERS if t in towers), after, where)


def load_chain(chain: list, folder: Path | str = "requests") -> list[Request]:
    """The requests in the order they arrived; each must start from the one before it."""
    if not isinstance(chain, list):
        raise PipelineError("params.yaml: requests.chain must be a list of {id, after} entries")
    requests, removed_by = [], {}
    previous = BASE
    for i, entry in enumerate(chain):
        if not isinstance(entry, dict) or not {"id", "after"} <= set(entry) <= {"id", "after", "folder"}:
            raise PipelineError(f"params.yaml: requests.chain[{i}] = {entry!r}; expected "
                                "{id: <request>, after: <previous request or base>, folder: <where its folder lies>}")
        rid, after = entry["id"], entry["after"]
        if any(r.id == rid for r in requests) or rid == BASE:
            raise PipelineError(f"params.yaml: requests.chain[{i}]: request id {rid!r} is used twice (or is 'base')")
        if after != previous:
            raise PipelineError(f"params.yaml: requests.chain[{i}] ({rid}) must start from {previous!r}, "
                                f"the request before it, not {after!r}")
        request = load_request(Path(entry.get("folder", folder)) / check_name(str(rid), f"requests.chain[{i}].id"), after)
        for name in request.names:
            if name in removed_by:
                raise PipelineError(f"{request.source}: {name!r} was removed by request {removed_by[name]} already")
            removed_by[name] = rid
        requests.append(request)
        previous = rid
    return requests


def photo_folder(request: Request, name: str) -> Path | None:
    """The request's folder for this person, or None when the request brings no photos of them."""
    if not request.photos:
        return None
    folder = Path(request.photos) / slug(name)[0]
    return folder if folder.is_dir() else None
