"""Who a request removes, and which photos the attack and the image defense use for each.

A person in the FaceScrub lists of the splits keeps the splits' photos (attack half, trigger
half). A person the request brings photos for (`photos/<name folder>/`) gets their own photos
split the same way: sorted, the first `attack_share` for the attack, the rest as trigger photos.
The attack photos of people from request folders are copied into the request's output, so a
later request re-checks them without depending on an earlier request's folder.
"""
from __future__ import annotations

import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from pipeline.core.errors import PipelineError
from pipeline.core.safepaths import slug
from pipeline.requests.knows import person_photos
from pipeline.requests.request import Request, photo_folder


@dataclass
class People:
    """The people of one request: attack photos and trigger images of each, and what was odd."""
    names: list[str]
    attack: pd.DataFrame                      # name, path: the attack's photos of people from request folders
    triggers: pd.DataFrame                    # name, path, photo: trigger faces (and their whole photos)
    unreadable: dict[str, list[str]] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)   # name -> facescrub | photos | none


def resolve_people(request: Request, splits_identities: pd.DataFrame, trigger_faces: pd.DataFrame,
                   facescrub_index: pd.DataFrame, attack_share: float) -> People:
    """Photos of each person of `request`; one clear line for a person an image defense cannot use."""
    known = set(splits_identities["name"])
    photo_of = dict(zip(facescrub_index["face"], facescrub_index["image"]))
    attack, triggers, unreadable, sources = [], [], {}, {}
    for name in request.names:
        folder = photo_folder(request, name)
        if folder is not None:
            good, bad = person_photos(folder.parent, name)
            unreadable[name] = bad
            n_attack = max(1, math.ceil(attack_share * len(good)))
            if request.needs_photos and len(good) - n_attack < 1:
                raise PipelineError(f"{folder}: {len(good)} readable photo(s) of {name!r}; the image defense "
                                    f"needs at least 2 (a share {attack_share} for the attack, the rest as triggers)")
            attack += [{"name": name, "path": str(p)} for p in good[:n_attack]]
            triggers += [{"name": name, "path": str(p), "photo": str(p)} for p in good[n_attack:]]
            sources[name] = "photos"
        elif name in known:
            faces = trigger_faces.loc[trigger_faces["name"] == name, "path"]
            triggers += [{"name": name, "path": f, "photo": photo_of[f]} for f in faces]
            sources[name] = "facescrub"
        elif request.needs_photos:
            raise PipelineError(f"{request.source}: {name!r} has no photos (not in the FaceScrub lists, and no "
                                f"folder {Path(request.photos or Path(request.source).parent / 'photos') / (slug(name)[0] or '')}/); "
                                "an image defense needs photos: add the folder or set towers: [text]")
        else:
            sources[name] = "none"
    return People(list(request.names), pd.DataFrame(attack, columns=["name", "path"]),
                  pd.DataFrame(triggers, columns=["name", "path", "photo"]), unreadable, sources)


def copy_attack_photos(attack: pd.DataFrame, out_dir: Path, rel_root: Path) -> pd.DataFrame:
    """Copy the attack photos into out_dir/<name folder>/; the table then points at the copies
    as they will lie under `rel_root` (the output's final place, relative to the repository)."""
    rows = []
    for name, group in attack.groupby("name", sort=True):
        sub = slug(name)[0]
        (out_dir / sub).mkdir(parents=True, exist_ok=True)
        for i, src in enumerate(group["path"]):
            dest = out_dir / sub / f"{i:03d}{Path(src).suffix.lower()}"
            shutil.copyfile(src, dest)
            rows.append({"name": name, "path": str(rel_root / sub / dest.name)})
    return pd.DataFrame(rows, columns=["name", "path"])
