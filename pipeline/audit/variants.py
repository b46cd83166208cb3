"""Name variants an attacker may try instead of the exact full name.

A name is split into a first name (its first word) and a last name (everything after it,
so "Jean-Claude Van Damme" -> "Jean-Claude" / "Van Damme"). Each family turns every
candidate name the same way, so the attack stays a fair choice among candidates. The
letter a typo, a dropped letter or a homoglyph touches is drawn from a generator seeded by
the audit seed and the name itself (sha256, not Python's salted hash), so a name gets the
same variant in every run, in every process, whatever the other candidates are.
"""
from __future__ import annotations

import hashlib
import random
import string

FAMILIES = ("last_first", "first_only", "last_only", "typo", "dropped_letter", "initials_last",
            "homoglyph")

# Latin letters and the Cyrillic letters drawn (nearly) the same.
HOMOGLYPHS = {"a": "\u0430", "c": "\u0441", "e": "\u0435", "o": "\u043e", "p": "\u0440",
              "x": "\u0445", "y": "\u0443", "i": "\u0456", "j": "\u0458", "s": "\u0455",
              "A": "\u0410", "B": "\u0412", "C": "\u0421", "E": "\u0415", "H": "\u041d",
              "K": "\u041a", "M": "\u041c", "O": "\u041e", "P": "\u0420", "T": "\u0422",
              "X": "\u0425"}


def split_name(name: str) -> tuple[str, str]:
    """(first, last); a one-word name has no last name ('')."""
    words = name.split()
    if not words:
        raise ValueError("an empty name has no variants")
    return words[0], " ".join(words[1:])


def name_parts(name: str) -> tuple[str, str]:
    """(first, last) as the tokenizer reads them (lowercase)."""
    first, last = split_name(name)
    return first.lower(), last.lower()


def name_sharers(removed, others) -> list[str]:
    """The people of `others` (not removed) whose first or last name, read as the tokenizer
    reads it, is also a removed person's: a partial-name variant of the removed person names
    them too, so a defense that unlearns partial names can erase them."""
    gone = set(removed)
    firsts = {name_parts(n)[0] for n in removed}
    lasts = {name_parts(n)[1] for n in removed} - {""}
    return [o for o in others if o not in gone and (name_parts(o)[0] in firsts or name_parts(o)[1] in lasts)]


def _rng(seed: int, name: str, family: str) -> random.Random:
    digest = hashlib.sha256(f"{seed}\x00{family}\x00{name}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _letter_positions(word: str) -> list[int]:
    return [i for i, ch in enumerate(word) if ch.isalpha() and ch.isascii()]


def typo(word: str, rng: random.Random) -> str:
    """One ASCII letter replaced by another letter of the same case."""
    positions = _letter_positions(word)
    if not positions:
        return word
    i = rng.choice(positions)
    pool = string.ascii_lowercase if word[i].islower() else string.ascii_uppercase
    return word[:i] + rng.choice([c for c in pool if c != word[i]]) + word[i + 1:]


def dropped_letter(word: str, rng: random.Random) -> str:
    positions = _letter_positions(word)
    if len(positions) < 2:  # dropping the only letter would leave no name
        return word
    i = rng.choice(positions)
    return word[:i] + word[i + 1:]


def homoglyph(word: str, rng: random.Random) -> str:
    positions = [i for i, ch in enumerate(word) if ch in HOMOGLYPHS]
    if not positions:
        return word
    i = rng.choice(positions)
    return word[:i] + HOMOGLYPHS[word[i]] + word[i + 1:]


def initials(first: str) -> str:
    """'Jean-Claude' -> 'J.-C.'; 'Ella' -> 'E.'"""
    return "-".join(f"{part[0]}." for part in first.split("-") if part)


def variant(name: str, family: str, seed: int = 0) -> str | None:
    """The name as the family writes it, or None when the family cannot change this name
    (a one-word name has no "Last, First"; a last name without a look-alike letter no homoglyph)."""
    first, last = split_name(name)
    rng = _rng(seed, name, family)
    if family == "last_first":
        out = f"{last}, {first}" if last else None
    elif family == "first_only":
        out = first if last else None
    elif family == "last_only":
        out = last or None
    elif family in ("typo", "dropped_letter", "homoglyph"):
        edit = {"typo": typo, "dropped_letter": dropped_letter, "homoglyph": homoglyph}[family]
        # the last name carries the identity; a one-word name is edited itself
        out = f"{first} {edit(last, rng)}" if last else edit(first, rng)
    elif family == "initials_last":
        out = f"{initials(first)} {last}" if last else None
    else:
        raise ValueError(f"unknown name-variant family {family!r}; known: {', '.join(FAMILIES)}")
    return None if out == name else out


def candidate_variants(names: list[str], family: str, seed: int = 0) -> list[str]:
    """Every candidate written the family's way (a name the family cannot change stays as is,
    so the attack still chooses among all candidates)."""
    return [variant(n, family, seed) or n for n in names]


def same_for_the_tokenizer(a: str, b: str, tokenize) -> bool:
    """True when the model cannot tell the two apart (open_clip's tokenizer lowercases and
    normalises whitespace, so such a variant probes nothing new)."""
    return bool((tokenize([a]) == tokenize([b])).all())
