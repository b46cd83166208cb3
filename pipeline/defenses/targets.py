"""Which identities a defense removes: nested K-sets from one seeded shuffle."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd

from pipeline.core.errors import PipelineError


def pool_members(pools: pd.DataFrame, pool: str) -> set[str]:
    """The names the splits stage put in `pool` ("dev" or "test"); `pools` has name, pool."""
    if "pool" not in pools:
        raise PipelineError("data/splits/identities.csv has no 'pool' column; rerun the splits stage")
    if pool not in ("dev", "test"):
        raise PipelineError(f"pool {pool!r} is not allowed; expected 'dev' or 'test'")
    return set(pools.loc[pools["pool"] == pool, "name"].astype(str))


def removal_order(idia_table: pd.DataFrame, seed: int, allowed: set[str] | None = None) -> list[str]:
    """Members the attack identified before (of `allowed`, a pool, when given), in one seeded
    order; K-sets are its prefixes.

    Sorting first makes the order independent of the table's row order, and one shuffle
    for every K makes the sets nested (the K=4 set contains the K=1 set).
    """
    member = idia_table["member"].astype(str).str.lower().isin(["true", "1"])
    identified = idia_table["identified"].astype(str).str.lower().isin(["true", "1"])
    names = idia_table["name"].astype(str)
    chosen = member & identified & (names.isin(allowed) if allowed is not None else True)
    pool = sorted(names[chosen])
    order = np.random.default_rng(seed).permutation(len(pool))
    return [pool[i] for i in order]


def tuning_removal_set(idia_table: pd.DataFrame, pools: pd.DataFrame, k: int, seed: int,
                       pool: str = "dev") -> list[str]:
    """The K people a tuning script may remove: development-pool people only. Settings chosen
    by scoring the test pool would be tuned on the people the README reports (docs/method.md §6)."""
    if pool != "dev":
        raise PipelineError(f"pool {pool!r}: tuning scripts remove and score development-pool people only "
                            "(docs/method.md §6); the test pool is for the reported sweep (dvc repro)")
    return removal_set(idia_table, k, seed, pool_members(pools, "dev"), "dev")


def removal_set(idia_table: pd.DataFrame, k: int, seed: int, allowed: set[str] | None = None,
                pool: str = "") -> list[str]:
    order = removal_order(idia_table, seed, allowed)
    where = f" of the {pool} pool" if pool else ""
    if k < 1 or k > len(order):
        raise PipelineError(f"defend: K = {k} identities to remove, but the attack identified only "
                            f"{len(order)} members{where} before the defense; allowed: 1 <= K <= {len(order)}")
    return order[:k]


# Letters and digits, apostrophes inside a word kept: "O'Brien" is one word, not "O" and "Brien".
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*")


def name_words(text: str) -> set[str]:
    """The words of a name or target, casefolded, without punctuation and possessive 's.

    Hyphens, underscores and other punctuation separate words: each part of
    "Herbig-Matten" is a surname on its own.
    """
    words = set()
    for word in _WORD.findall(text.replace("\u2019", "'").casefold()):
        words.add(word[:-2] if word.endswith("'s") else word)
    return words


def choose_text_target(preferred: str, fallbacks: list[str], names: list[str],
                       where: str = "defend.text.target") -> str:
    """The first of `preferred`, then `fallbacks`, that shares no word with any candidate name.

    A placeholder name fits one world and collides in another (world seed 99 has an "Ella
    Mendoza"), so the demo lists placeholders in order of preference and each run takes the
    first one its world allows; the defend metrics record the one used (config.target)."""
    tried = []
    for target in [preferred, *fallbacks]:
        try:
            check_text_target(target, names, where)
            return target
        except PipelineError as err:
            tried.append(str(err))
    raise PipelineError(tried[0] if len(tried) == 1 else
                        f"{where} and every one of defend.text_target_fallbacks share a word with a candidate "
                        f"name (first: {tried[0]}); add a placeholder none of the candidate names contains")


def check_text_target(target: str, names: list[str], where: str = "defend.text.target") -> None:
    """A text target must not share a word with any name the attack asks about.

    A placeholder name such as "Ella Anderson" is a good neutral target only while no
    candidate is called Anderson: otherwise the removed names are mapped onto part of a
    real person's name, and the attack links them to that person's face. Words are
    compared as `name_words` splits them, so "Anderson," and "anderson's" are Anderson.
    """
    words = name_words(target)
    for name in names:
        shared = sorted(words & name_words(str(name)))
        if shared:
            raise PipelineError(f"{where} {target!r} shares the word {shared[0]!r} with the attack's "
                                f"candidate name {name!r}; pick a target none of the candidate names contains")
