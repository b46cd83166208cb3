"""Identity splits for the attack and the defenses (docs/method.md §1).

Per identity the downloaded FaceScrub photos are split, disjointly and with a seed,
into a few unseen photos (held back from the attack and the defenses, for the audit's
"unseen photos" probe), an IDIA half (uncropped photos the attack shows the model) and a
trigger half (cropped faces the image defense pastes). Identities are kept as members when their
occurrence count is in (0, max_count] and as non-members when it is 0; the candidate
name list mixes their real names with filler names that never collide with a real one.
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from pipeline.core.errors import PipelineError


def normalise_name(name: str) -> str:
    """FaceScrub folders use underscores, the occurrence CSV uses spaces."""
    return " ".join(str(name).replace("_", " ").split()).casefold()


@dataclass
class SplitResult:
    identities: pd.DataFrame   # name, folder, gender, count, member, n_idia, n_trigger, n_unseen
    idia_photos: pd.DataFrame  # name, path
    trigger_faces: pd.DataFrame  # name, path
    dropped: dict              # reason -> number of identities
    unseen_photos: pd.DataFrame | None = None  # name, path: used by neither the attack nor a defense


def split_identities(index: pd.DataFrame, occurrences: pd.DataFrame, *, seed: int,
                     idia_fraction: float, min_idia_photos: int, max_count: int,
                     unseen_photos: int = 0) -> SplitResult:
    """Split each identity's photos and keep the identities the attack can evaluate.

    `index` is the download stage's table (name, folder, gender, image_id, image, face);
    `occurrences` has name, count (the pretraining-caption counts).
    """
    counts = {normalise_name(n): int(c) for n, c in zip(occurrences["name"], occurrences["count"])}
    rows, idia, trig, unseen = [], [], [], []
    dropped = {"no_occurrence_count": 0, "count_above_max": 0, "too_few_photos": 0}
    for name, group in index.groupby("name", sort=True):
        key = normalise_name(name)
        if key not in counts:
            dropped["no_occurrence_count"] += 1
            continue
        count = counts[key]
        if count > max_count or count < 0:
            dropped["count_above_max"] += 1
            continue
        group = group.sort_values("image_id", kind="stable")
        # A per-identity generator keeps an identity's split independent of the others.
        rng = np.random.default_rng([seed, _stable_hash(key)])
        order = rng.permutation(len(group))
        held, order = order[:unseen_photos], order[unseen_photos:]
        n_idia = int(round(len(order) * idia_fraction))
        idia_rows = group.iloc[order[:n_idia]]
        trig_rows = group.iloc[order[n_idia:]]
        if len(idia_rows) < min_idia_photos:
            dropped["too_few_photos"] += 1
            continue
        # Every identity gets exactly min_idia_photos votes, so vote sizes are comparable.
        idia_rows = idia_rows.iloc[:min_idia_photos]
        first = group.iloc[0]
        rows.append({"name": name, "folder": first["folder"], "gender": first["gender"],
                     "count": count, "member": count > 0,
                     "n_idia": len(idia_rows), "n_trigger": len(trig_rows), "n_unseen": len(held)})
        idia += [{"name": name, "path": p} for p in idia_rows["image"]]
        trig += [{"name": name, "path": p} for p in trig_rows["face"]]
        unseen += [{"name": name, "path": p} for p in group.iloc[held]["image"]]
    identities = pd.DataFrame(rows, columns=["name", "folder", "gender", "count", "member",
                                             "n_idia", "n_trigger", "n_unseen"])
    return SplitResult(identities, pd.DataFrame(idia, columns=["name", "path"]),
                       pd.DataFrame(trig, columns=["name", "path"]), dropped,
                       pd.DataFrame(unseen, columns=["name", "path"]))


POOLS = ("dev", "test")


def assign_pools(identities: pd.DataFrame, dev_share: float, seed: int) -> pd.Series:
    """The held-out protocol (docs/method.md §6): each identity in the development pool
    ("dev": settings may be chosen by removing and scoring them) or the test pool ("test":
    the reported sweep removes them). Members and non-members are split separately, each
    by one seeded shuffle of the sorted names, so the shares hold in both groups and the
    assignment does not depend on the table's row order."""
    pools = pd.Series("test", index=identities.index, dtype=object)
    for is_member in (True, False):
        group = identities.loc[identities["member"] == is_member].sort_values("name", kind="stable")
        order = np.random.default_rng([seed, 7, int(is_member)]).permutation(len(group))
        n_dev = int(round(len(group) * dev_share))
        pools.loc[group.index[order[:n_dev]]] = "dev"
    return pools


def candidate_names(real_names: list[str], total: int, *, seed: int, first_male: list[str],
                    first_female: list[str], last_names: list[str],
                    forbidden: list[str] = ()) -> pd.DataFrame:
    """Real names plus filler full names up to `total`, shuffled with the seed.

    Fillers are drawn equally per sex (docs/method.md §1) and never equal any real or
    forbidden name (case-insensitive), so a filler can never be a correct answer.
    """
    if total < len(real_names):
        raise PipelineError(f"splits.candidate_names = {total} is smaller than the "
                            f"{len(real_names)} evaluated identities; allowed: >= {len(real_names)}")
    taken = {normalise_name(n) for n in list(real_names) + list(forbidden)}
    needed = total - len(real_names)
    # Fillers alternate male, female: each half must fit in what its lists can still produce
    # (only the taken names that the lists could produce count against it).
    lasts = {normalise_name(n) for n in last_names}
    for share, firsts in ((needed - needed // 2, first_male), (needed // 2, first_female)):
        firsts = {normalise_name(n) for n in firsts}
        producible = len(firsts) * len(lasts)
        blocked = sum(1 for n in taken if n.split(" ", 1)[0] in firsts and n.partition(" ")[2] in lasts)
        if share > producible - blocked:
            raise PipelineError(f"splits.candidate_names = {total} needs {needed} filler names but the "
                                f"name lists give at most {2 * (producible - blocked)} "
                                f"({producible - blocked} per sex); allowed: <= {len(real_names) + 2 * (producible - blocked)}")
    rng = random.Random(seed)
    fillers: list[str] = []
    while len(fillers) < needed:
        firsts = first_male if len(fillers) % 2 == 0 else first_female
        name = f"{rng.choice(firsts)} {rng.choice(last_names)}"
        if normalise_name(name) in taken:
            continue
        taken.add(normalise_name(name))
        fillers.append(name)
    table = pd.DataFrame({"name": list(real_names) + fillers,
                          "real": [True] * len(real_names) + [False] * len(fillers)})
    order = np.random.default_rng(seed).permutation(len(table))
    return table.iloc[order].reset_index(drop=True)


def clean_caption_pool(keys: list[str], captions: list[str], names: list[str], *,
                       heldout: int, seed: int) -> pd.DataFrame:
    """Corpus samples whose caption names none of `names` (see `name_matcher`), split into
    train/heldout.

    The defenses train on the train part; similarity metrics use the held-out part.
    """
    mentions = name_matcher(names)
    keep = [i for i, c in enumerate(captions) if not mentions(c)]
    if heldout >= len(keep):
        raise PipelineError(f"splits.heldout_captions = {heldout} but only {len(keep)} clean "
                            f"captions exist; allowed: < {len(keep)}")
    order = np.random.default_rng(seed).permutation(len(keep))
    split = np.array(["train"] * len(keep), dtype=object)
    split[order[:heldout]] = "heldout"
    return pd.DataFrame({"key": [keys[i] for i in keep],
                         "caption": [captions[i] for i in keep],
                         "split": split})


def text_caption_pool(path: Path | str, names: list[str], key: str = "splits.text_captions") -> pd.DataFrame:
    """Captions for the text defense from a file (one caption per line, UTF-8, e.g. the authors'
    10,000 MS-COCO captions): stripped, empty lines and lines naming any of `names` dropped."""
    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"{key}: file not found: {path} (a UTF-8 text file, one caption per line; "
                            "or 'corpus' for the downloaded corpus' captions)")
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as exc:
        raise PipelineError(f"{key}: {path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    mentions = name_matcher(names)
    captions = [" ".join(line.split()) for line in lines]
    kept = [c for c in captions if c and not mentions(c)]
    if not kept:
        raise PipelineError(f"{key}: {path} holds no caption that names none of the identities")
    return pd.DataFrame({"caption": kept})


# A word is a run of letters or digits: "Lee" is not in "Leeds", but is in "Lee's" and "Lee-Smith".
_NOT_AFTER_WORD = r"(?<![^\W_])"
_NOT_BEFORE_WORD = r"(?![^\W_])"


def _caption_text(text: str) -> str:
    return " ".join(str(text).replace("\u2019", "'").split()).casefold()


def name_matcher(names: list[str]) -> Callable[[str], bool]:
    """A test `caption -> bool`: does the caption mention any of `names` as whole words?

    A name occurs when its words occur consecutively in the caption, separated by
    whitespace, with no letter or digit right before or after. Case, runs of whitespace,
    underscores in names (FaceScrub folders) and typographic apostrophes do not matter.
    All names go into one compiled regex (a character trie), so a caption costs one scan
    however many names there are.
    """
    needles = sorted({_caption_text(normalise_name(n)) for n in names} - {""})
    if not needles:
        return lambda caption: False
    pattern = re.compile(_NOT_AFTER_WORD + "(?:" + _trie_pattern(needles) + ")" + _NOT_BEFORE_WORD)
    return lambda caption: pattern.search(_caption_text(caption)) is not None


def _trie_pattern(words: list[str]) -> str:
    # One alternation of 1000 literals retries every literal at every position; a trie does not.
    trie: dict = {}
    for word in words:
        node = trie
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = {}

    def build(node: dict) -> str:
        alternatives = [re.escape(ch) + build(node[ch]) for ch in sorted(k for k in node if k)]
        if not alternatives:
            return ""
        body = alternatives[0] if len(alternatives) == 1 else "(?:" + "|".join(alternatives) + ")"
        return f"(?:{body})?" if "" in node else body

    return build(trie)


def _stable_hash(text: str) -> int:
    # Python's hash() is salted per process; seeds must not be.
    h = 2166136261
    for byte in text.encode():
        h = ((h ^ byte) * 16777619) & 0xFFFFFFFF
    return h
