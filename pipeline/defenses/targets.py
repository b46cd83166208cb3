"""Which identities a defense removes: nested K-sets from one seeded shuffle."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd

from pipeline.core.errors import PipelineError


def removal_order(idia_table: pd.DataFrame, seed: int) -> list[str]:
    """Members the attack identified before, in one seeded order; K-sets are its prefixes.

    Sorting first makes the order independent of the table's row order, and one shuffle
    for every K makes the sets nested (the K=4 set contains the K=1 set).
    """
    member = idia_table["member"].astype(str).str.lower().isin(["true", "1"])
    identified = idia_table["identified"].astype(str).str.lower().isin(["true", "1"])
    pool = sorted(idia_table.loc[member & identified, "name"].astype(str))
    order = np.random.default_rng(seed).permutation(len(pool))
    return [pool[i] for i in order]


def removal_set(idia_table: pd.DataFrame, k: int, seed: int) -> list[str]:
    order = removal_order(idia_table, seed)
    if k < 1 or k > len(order):
        raise PipelineError(f"defend: K = {k} identities to remove, but the attack identified only "
                            f"{len(order)} members before the defense; allowed: 1 <= K <= {len(order)}")
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
