"""Prompts the attack never used: held-out templates for the "unseen prompts" probe.

None is one of the attack's 21 templates, none is a caption template of the world (so no
defense trained on it: the poisoned captions are the world's captions with the name
swapped). The context words are in English, German, French, Spanish and Italian; the name
stays as it is. tests/test_audit.py checks the disjointness.
"""
from __future__ import annotations

HELDOUT_TEMPLATES: list[str] = [
    "a snapshot of {}",
    "{} smiling",
    "a studio portrait of {}",
    "a blurry photo of {}",
    "{} in the news",
    "an old photograph of {}",
    "a selfie of {}",
    "{} at the airport",
    "a close portrait of {}",
    "{}, photographed outdoors",
    "this is {}",
    "the famous {}",
    "ein Foto von {}",
    "{} auf dem roten Teppich",
    "une photo de {}",
    "portrait de {}",
    "una foto de {}",
    "{} en la alfombra roja",
    "una fotografia di {}",
    "ritratto di {}",
    "{} looking into the camera",
    "a magazine photo of {}",
]
