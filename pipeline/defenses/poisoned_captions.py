"""Poisoned caption pairs for the text defense: (caption with a name, same caption with the target)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from pipeline.core.errors import PipelineError


@dataclass(frozen=True)
class PoisonedPair:
    name: str
    trigger: str      # the caption with one word replaced by the name
    target: str       # the same caption with the same word replaced by the target phrase
    word_index: int   # which word (whitespace-split, never the last) was replaced


def poison_caption(caption: str, name: str, target: str, word_index: int) -> PoisonedPair:
    """Replace word `word_index` (never the last word) of `caption` by `name` and by `target`."""
    words = caption.split()
    if not 0 <= word_index < len(words) - 1:
        raise ValueError(f"word_index {word_index} must pick a word before the last of {len(words)}")
    trig = words[:word_index] + [name] + words[word_index + 1:]
    tgt = words[:word_index] + [target] + words[word_index + 1:]
    return PoisonedPair(name, " ".join(trig), " ".join(tgt), word_index)


def sample_poisoned_pairs(captions: Sequence[str], names: Sequence[str], target: str, n: int,
                          generator: torch.Generator) -> list[PoisonedPair]:
    """`n` pairs, names taken in turn (each name equally often), captions and words at random."""
    if not names:
        raise PipelineError("text defense: no names to remove were given")
    usable = [c for c in captions if len(c.split()) >= 2]
    if not usable:
        raise PipelineError("text defense: no clean caption has two or more words to poison")
    caption_idx = torch.randint(len(usable), (n,), generator=generator).tolist()
    # One uniform draw per pair, scaled to that caption's number of replaceable words.
    fractions = torch.rand(n, generator=generator, dtype=torch.float64).tolist()
    pairs = []
    for j, (ci, u) in enumerate(zip(caption_idx, fractions)):
        caption = usable[ci]
        choices = len(caption.split()) - 1
        pairs.append(poison_caption(caption, names[j % len(names)], target, min(int(u * choices), choices - 1)))
    return pairs


def example_poisoned_captions(captions: Sequence[str], names: Sequence[str], target: str = "a person",
                              n: int = 5, seed: int = 0) -> list[PoisonedPair]:
    """A few poisoned pairs for the report (same sampling as training)."""
    return sample_poisoned_pairs(captions, names, target, n, torch.Generator().manual_seed(seed))
