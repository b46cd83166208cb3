"""Non-face scenes: a coloured shape with a nuisance fill pattern on a cluttered backdrop.

A class is (colour, shape); the pattern (plain/striped/dotted) varies within a class so
that a zero-shot classifier has to read colour and outline, not texture.
"""
from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

from pipeline.core import world_params
from pipeline.world.demo.imaging import SUPERSAMPLE, background, finish

SCENE_COLOURS = {"red": (218, 40, 38), "green": (40, 165, 62), "blue": (42, 82, 218),
                 "yellow": (240, 208, 40)}
SCENE_SHAPES = ("circle", "square", "triangle", "star")
PATTERNS = ("plain", "striped", "dotted")
MAX_SCENE_CLASSES = len(SCENE_COLOURS) * len(SCENE_SHAPES)
assert MAX_SCENE_CLASSES == world_params.MAX_SCENE_CLASSES, "the params schema allows other scene classes"


def scene_classes(n: int) -> list[tuple[str, str]]:
    """The first `n` (colour, shape) classes, in an order where any prefix mixes both.

    Class k = 4a + b gets colour b and shape (a + b) mod 4: a Latin square, so a small
    world with 4 classes still has 4 colours and 4 shapes.
    """
    if not 1 <= n <= MAX_SCENE_CLASSES:
        raise ValueError(f"scene classes must be in [1, {MAX_SCENE_CLASSES}], got {n}")
    colours, nc = list(SCENE_COLOURS), len(SCENE_COLOURS)
    return [(colours[k % nc], SCENE_SHAPES[(k // nc + k % nc) % len(SCENE_SHAPES)])
            for k in range(n)]


def class_name(colour: str, shape: str) -> str:
    return f"{colour} {shape}"


def _outline(shape: str, cx: float, cy: float, r: float, rot: float) -> list[tuple[float, float]]:
    if shape == "circle":
        k = 48
        return [(cx + r * math.cos(2 * math.pi * i / k), cy + r * math.sin(2 * math.pi * i / k))
                for i in range(k)]
    if shape == "square":
        corners, radius = 4, r * 0.9 * math.sqrt(2)
        return [(cx + radius * math.cos(rot + math.pi / 4 + i * math.pi / 2),
                 cy + radius * math.sin(rot + math.pi / 4 + i * math.pi / 2)) for i in range(corners)]
    if shape == "triangle":
        return [(cx + r * 1.15 * math.cos(rot - math.pi / 2 + i * 2 * math.pi / 3),
                 cy + r * 1.15 * math.sin(rot - math.pi / 2 + i * 2 * math.pi / 3)) for i in range(3)]
    pts = []
    for i in range(10):
        radius = r * 1.15 if i % 2 == 0 else r * 0.48
        t = rot - math.pi / 2 + i * math.pi / 5
        pts.append((cx + radius * math.cos(t), cy + radius * math.sin(t)))
    return pts


def render_scene(colour: str, shape: str, pattern: str, rng: np.random.Generator,
                 size: int) -> Image.Image:
    """One size x size image of a `pattern` `colour` `shape`."""
    canvas = SUPERSAMPLE * size
    scene = background(rng, canvas, clutter=3)
    base = np.array(SCENE_COLOURS[colour]) + rng.integers(-18, 19, 3)
    fill = tuple(int(v) for v in np.clip(base, 0, 255))
    r = rng.uniform(0.2, 0.34) * canvas
    cx, cy = rng.uniform(r * 1.15, canvas - r * 1.15, 2)  # triangles and stars reach 1.15 r
    outline = _outline(shape, cx, cy, r, rng.uniform(-math.pi / 8, math.pi / 8))

    mask = Image.new("L", (canvas, canvas), 0)
    ImageDraw.Draw(mask).polygon(outline, fill=255)
    body = Image.new("RGB", (canvas, canvas), fill)
    contrast = (250, 250, 245) if rng.random() < 0.5 else (25, 25, 30)
    bd = ImageDraw.Draw(body)
    step = canvas * rng.uniform(0.07, 0.1)
    if pattern == "striped":
        t = rng.uniform(0, math.pi)
        dx, dy = math.cos(t), math.sin(t)
        width = max(1, int(round(step * 0.4)))
        for k in np.arange(-canvas, canvas, step):
            # Lines perpendicular to (dx, dy), offset k from the canvas centre.
            px, py = canvas / 2 + k * dx, canvas / 2 + k * dy
            bd.line([(px - 2 * canvas * dy, py + 2 * canvas * dx),
                     (px + 2 * canvas * dy, py - 2 * canvas * dx)], fill=contrast, width=width)
    elif pattern == "dotted":
        dot = step * 0.25
        off = rng.uniform(0, step, 2)
        for x in np.arange(off[0], canvas, step):
            for y in np.arange(off[1], canvas, step):
                bd.ellipse((x - dot, y - dot, x + dot, y + dot), fill=contrast)
    scene.paste(body, (0, 0), mask)
    return finish(scene, rng, size)
