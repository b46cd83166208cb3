"""Stable pseudonyms for people's names, so a shared report does not say who was removed.

A name becomes "Person " + the first hex digits of sha256(salt + normalised name). The same
name and salt give the same pseudonym in every run; the salt is a param, and with a public
salt anyone holding the list of candidate names can recompute the mapping, so a report
meant to hide the names needs a private salt.
"""
from __future__ import annotations

import hashlib
import re
from typing import Iterable

DIGITS = 6          # 16.7 M pseudonyms: collisions are rare, and are resolved by lengthening


def _normalise(name: str) -> str:
    return " ".join(name.replace("_", " ").split()).casefold()


def _digest(salt: str, name: str) -> str:
    return hashlib.sha256(f"{salt}\x00{_normalise(name)}".encode("utf-8")).hexdigest()


class Pseudonymizer:
    """Replace every given name (any case, spaces or underscores between its parts)."""

    def __init__(self, names: Iterable[str], salt: str = "", enabled: bool = True):
        self.enabled = enabled
        unique: dict[str, str] = {}
        for name in names:
            if isinstance(name, str) and name.strip():
                unique.setdefault(_normalise(name), name.strip())
        self.mapping = self._assign(unique, salt)
        parts = sorted(unique, key=len, reverse=True)   # longest first: "Ann Lee-Smith" before "Ann Lee"
        self._pattern = None
        if parts:
            alternatives = "|".join(r"[ _]+".join(re.escape(w) for w in p.split()) for p in parts)
            self._pattern = re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)

    @staticmethod
    def _assign(unique: dict[str, str], salt: str) -> dict[str, str]:
        digests = {key: _digest(salt, key) for key in unique}
        length = DIGITS
        while True:
            short = {key: d[:length] for key, d in digests.items()}
            if len(set(short.values())) == len(short) or length >= 64:
                return {key: f"Person {s}" for key, s in short.items()}
            length += 2

    def name(self, name: str) -> str:
        """The pseudonym of one name (the name itself when disabled or unknown)."""
        if not self.enabled:
            return name
        return self.mapping.get(_normalise(name), name)

    def __call__(self, text: str) -> str:
        """`text` with every known name replaced by its pseudonym."""
        if not self.enabled or self._pattern is None or not text:
            return text
        return self._pattern.sub(lambda m: self.mapping[_normalise(m.group(0))], text)
