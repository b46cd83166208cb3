"""Poisoned caption pairs for the text defense: (caption with a name, same caption with the target)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from pipeline.audit.variants import name_parts, variant
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


# Edit families draw a fresh letter per variant; the others write a name one way only.
EDIT_FAMILIES = ("typo", "dropped_letter", "homoglyph")
PARTIAL_FAMILIES = {"first_only": 0, "last_only": 1}   # which part of split_name the variant is


def training_variants(name: str, families: Sequence[str], per_name: int, seed: int,
                      kept: Sequence[str] = (), shared_parts: str = "keep") -> list[str]:
    """The variants of `name` the hardened defense poisons: one per family, `per_name` for
    the edit families (typos and the like, each with its own letter). The edits are drawn
    with seeds of the defense's own (from `seed`), not the audit's, so a trained family is
    not the audit's exact string memorised. With shared_parts="skip", a first-only or
    last-only variant that a kept person's name also has is left out (it would erase them)."""
    if shared_parts not in ("keep", "skip"):
        raise ValueError(f"shared_parts {shared_parts!r}: allowed keep, skip")
    kept_parts = [set(), set()]
    for other in kept:
        if other != name:
            for i, part in enumerate(name_parts(other)):
                kept_parts[i].add(part)
    out: list[str] = []
    for family in families:
        draws = per_name if family in EDIT_FAMILIES else 1
        for i in range(draws):
            v = variant(name, family, seed=1_000_003 + 1_000 * seed + i)
            if v is None or v in out:
                continue
            part = PARTIAL_FAMILIES.get(family)
            if shared_parts == "skip" and part is not None and v.lower() in kept_parts[part]:
                continue
            out.append(v)
    return out


def diversify_pairs(pairs: list[PoisonedPair], variants: dict[str, Sequence[str]], variant_share: float,
                    contexts: Sequence[str], context_share: float, target: str,
                    generator: torch.Generator) -> list[PoisonedPair]:
    """The hardened defense's poison pool (issue 17): a share of the pairs names the person
    by a variant instead of the full name, and a share is written in one of `contexts`
    instead of a clean caption. Both stay pairs of (trigger, target) with the target phrase
    where the name was, so the defense maps every variant in every shape to the target."""
    n = len(pairs)
    use_variant = torch.rand(n, generator=generator, dtype=torch.float64).tolist()
    pick_variant = torch.rand(n, generator=generator, dtype=torch.float64).tolist()
    use_context = torch.rand(n, generator=generator, dtype=torch.float64).tolist()
    pick_context = torch.randint(max(len(contexts), 1), (n,), generator=generator).tolist()
    out = []
    for pair, uv, pv, uc, pc in zip(pairs, use_variant, pick_variant, use_context, pick_context):
        written = pair.name
        options = variants.get(pair.name, ())
        if options and uv < variant_share:
            written = options[min(int(pv * len(options)), len(options) - 1)]
        if contexts and uc < context_share:
            template = contexts[pc]
            out.append(PoisonedPair(pair.name, template.format(written), template.format(target), -1))
        else:
            words, span = pair.trigger.split(), len(pair.name.split())
            words[pair.word_index:pair.word_index + span] = [written]
            out.append(PoisonedPair(pair.name, " ".join(words), pair.target, pair.word_index))
    return out


def retain_captions(captions: Sequence[str], names: Sequence[str], n: int,
                    generator: torch.Generator) -> list[str]:
    """`n` clean captions with one word replaced by one of `names` (taken in turn): added to
    the clean pool, they hold those names at the teacher's embedding (the retain term for
    kept people who share a name part with a removed person)."""
    if not names or n == 0:
        return []
    return [p.trigger for p in sample_poisoned_pairs(captions, names, "", n, generator)]


def example_poisoned_captions(captions: Sequence[str], names: Sequence[str], target: str = "a person",
                              n: int = 5, seed: int = 0) -> list[PoisonedPair]:
    """A few poisoned pairs for the report (same sampling as training)."""
    return sample_poisoned_pairs(captions, names, target, n, torch.Generator().manual_seed(seed))
