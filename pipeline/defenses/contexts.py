"""Sentence shapes for the hardened text defense's extra poisoned captions (issue 17, point 2).

The paper poisons only the clean pool's captions, so a removed name is unlearned in the
shapes that pool has and may survive in others ("at the premiere", another language). These
families add shapes of the kind people write around a name. They are disjoint from the
attack's 21 templates (the exact probe must stay an honest test) and from the audit's
held-out templates (pipeline/audit/prompts.py), whose context languages (German, French,
Spanish, Italian) no family here uses: the audit's "unseen prompts" probe therefore measures
shapes and languages the defense never trained on. tests/test_hardening.py checks both.
"""
from __future__ import annotations

CONTEXT_FAMILIES: dict[str, tuple[str, ...]] = {
    "photo": (
        "a picture of {}",
        "a candid shot of {}",
        "a press photo of {}",
        "{} posing for the cameras",
        "a headshot of {}",
        "a photograph showing {}",
        "{} photographed by a fan",
        "a paparazzi shot of {}",
    ),
    "event": (
        "{} at the premiere",
        "{} arrives at the awards",
        "{} on stage",
        "{} at a film festival",
        "{} during an interview",
        "{} at the launch party",
        "{} walks the red carpet",
        "{} signs autographs",
    ),
    "portrait": (
        "portrait of {}",
        "a painted portrait of {}",
        "a sketch of {}",
        "{} in close-up",
        "the face of {}",
        "a profile picture of {}",
    ),
    "news": (
        "{} in today's headlines",
        "an interview with {}",
        "breaking news about {}",
        "{} speaks to reporters",
        "a magazine cover with {}",
        "{} on the cover",
    ),
    "languages": (      # context words in Portuguese, Dutch, Swedish and Polish; the name as is
        "{} sorri para a câmera",
        "{} no tapete vermelho",
        "{} lacht naar de camera",
        "{} op de rode loper",
        "{} ler mot kameran",
        "{} på röda mattan",
        "zdjęcie {}",
        "{} na czerwonym dywanie",
    ),
}


def context_templates(families) -> list[str]:
    """The templates of the named families, in the order given."""
    unknown = [f for f in families if f not in CONTEXT_FAMILIES]
    if unknown:
        raise ValueError(f"unknown context families {unknown}; known: {', '.join(CONTEXT_FAMILIES)}")
    return [t for f in families for t in CONTEXT_FAMILIES[f]]
