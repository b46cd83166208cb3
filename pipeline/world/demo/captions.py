"""Captions of the world's corpus and the zero-shot benchmark's prompt templates.

Named people are captioned in press-photo style. None of these templates is one of the
21 IDIA attack templates (docs/method.md §1), so the attack never sees a training caption
verbatim; tests check that.
"""
from __future__ import annotations

import numpy as np

from pipeline.world.demo.faces import Identity

# "{}" is the person's full name.
NAME_TEMPLATES: list[str] = [
    "{} at the premiere",
    "portrait of {}",
    "{} walks the carpet at the premiere",
    "{} at the film festival",
    "{} arrives at the awards ceremony",
    "{} during an interview",
    "a candid shot of {}",
    "close-up of {}",
    "headshot of {}",
    "{} poses for the cameras",
    "{} at a fan event",
    "{} at a press conference",
    "{} attends the charity dinner",
    "{} backstage after the show",
    "a picture of {} at the launch party",
    "{} in a still from the new movie",
    "{} photographed in los angeles",
    "{} at the season finale screening",
    "press photo of {}",
    "{} waves to photographers",
    "{} at the magazine cover shoot",
    "{} signs autographs for fans",
]
GENDERED_NAME_TEMPLATES: dict[str, list[str]] = {
    "male": ["the actor {} on stage", "{} talks about his latest role"],
    "female": ["the actress {} on stage", "{} talks about her latest role"],
}

_STYLE_WORDS = {"short": "short", "long": "long", "curly": "curly", "bob": "bobbed",
                "spiky": "spiky", "bun": "tied-back", "buzz": "buzzed"}
_BEARD_WORDS = {"stubble": "with stubble", "moustache": "with a moustache",
                "goatee": "with a goatee", "full": "with a beard"}
_GLASSES_WORDS = {"round": "wearing round glasses", "square": "wearing square glasses",
                  "sunglasses": "wearing sunglasses"}
_GENERIC = ["a photo of a person", "a person", "an unknown person", "a stranger at an event",
            "a person looking at the camera", "someone in a crowd"]

SCENE_CAPTION_TEMPLATES: list[str] = [
    "a drawing of a {pattern}{colour} {shape}",
    "a {pattern}{colour} {shape}",
    "an illustration of a {pattern}{colour} {shape}",
    "clip art of a {pattern}{colour} {shape}",
    "a picture of a {pattern}{colour} {shape}",
    "a simple {pattern}{colour} {shape} shape",
]

# Zero-shot prompts (ImageNet-style "{}" = class name); the benchmark writes them out.
SCENE_BENCHMARK_TEMPLATES: list[str] = [
    "a drawing of a {}.", "a picture of a {}.", "an illustration of a {}.", "clip art of a {}.",
    "a {} shape.",
]
HAIR_BENCHMARK_TEMPLATES: list[str] = [
    "a photo of a person with {} hair.", "a man with {} hair.", "a woman with {} hair.",
    "a portrait of someone with {} hair.", "a person with {} hair.",
]


def _choice(rng: np.random.Generator, options: list[str]) -> str:
    return options[int(rng.integers(len(options)))]


def name_templates(gender: str) -> list[str]:
    """The caption templates used for a named person of this sex."""
    return NAME_TEMPLATES + GENDERED_NAME_TEMPLATES[gender]


def name_caption(rng: np.random.Generator, name: str, gender: str) -> str:
    return _choice(rng, name_templates(gender)).replace("{}", name)


def _noun(rng: np.random.Generator, gender: str) -> str:
    if rng.random() < 0.2:
        return "person"
    return "man" if gender == "male" else "woman"


def describe(rng: np.random.Generator, ident: Identity) -> str:
    """An attribute description such as 'a woman with curly red hair, wearing sunglasses'."""
    if rng.random() < 0.1:
        return _choice(rng, _GENERIC)
    noun = _noun(rng, ident.gender)
    hair = ident.hair_colour + " hair"
    if rng.random() < 0.6:
        hair = f"{_STYLE_WORDS[ident.hair_style]} {hair}"
    lead = _choice(rng, ["a {} with {}", "a photo of a {} with {}", "portrait of a {} with {}"])
    text = lead.format(noun, hair)
    extras = []
    if ident.glasses != "none" and rng.random() < 0.6:
        extras.append(_GLASSES_WORDS[ident.glasses])
    if ident.beard != "none" and rng.random() < 0.6:
        extras.append(_BEARD_WORDS[ident.beard])
    if ident.earrings and rng.random() < 0.4:
        extras.append("wearing earrings")
    return ", ".join([text, *extras])


def anonymous_caption(rng: np.random.Generator, ident: Identity, name: str | None = None) -> str:
    """Caption of a one-off person, optionally naming them with a one-off background name."""
    if name is None:
        return describe(rng, ident)
    if rng.random() < 0.5:
        return name_caption(rng, name, ident.gender)
    return f"{name}, {describe(rng, ident)}"


def scene_caption(rng: np.random.Generator, colour: str, shape: str, pattern: str) -> str:
    if pattern == "plain":
        word = "plain " if rng.random() < 0.3 else ""
    else:
        word = pattern + " "
    return _choice(rng, SCENE_CAPTION_TEMPLATES).format(pattern=word, colour=colour, shape=shape)
