"""Shared image plumbing for the world: backgrounds, the photographic finish, JPEG bytes.

Everything is drawn at twice the output size and box-downsampled, which gives smooth
edges at the cost of one resize; the finish (light, colour cast, noise) is applied after
downsampling so that noise lives at the output's pixel scale.
"""
from __future__ import annotations

import functools
import io

import numpy as np
from PIL import Image, ImageDraw

SUPERSAMPLE = 2


@functools.lru_cache(maxsize=8)
def _unit_grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    # Pixel centres in [-0.5, 0.5], shared by gradients and lighting.
    axis = (np.arange(size, dtype=np.float32) + 0.5) / size - 0.5
    return np.meshgrid(axis, axis)


def random_colour(rng: np.random.Generator, low: int = 20, high: int = 235) -> tuple[int, int, int]:
    return tuple(int(v) for v in rng.integers(low, high + 1, 3))


def muted(colour, rng: np.random.Generator, amount: tuple[float, float] = (0.3, 0.7)):
    """Pull a colour towards grey so clutter never competes with the subject."""
    grey = sum(colour) / 3
    t = rng.uniform(*amount)
    return tuple(int(round(c * (1 - t) + grey * t)) for c in colour)


def background(rng: np.random.Generator, canvas: int, clutter: int = 4) -> Image.Image:
    """A solid or linear-gradient backdrop with up to `clutter` muted blobs."""
    c1 = np.array(random_colour(rng), dtype=np.float32)
    if rng.random() < 0.5:
        arr = np.broadcast_to(c1, (canvas, canvas, 3))
    else:
        c2 = np.array(random_colour(rng), dtype=np.float32)
        xx, yy = _unit_grid(canvas)
        theta = rng.uniform(0, 2 * np.pi)
        t = (xx * np.cos(theta) + yy * np.sin(theta) + 0.71) / 1.42
        arr = c1 * (1 - t[..., None]) + c2 * t[..., None]
    img = Image.fromarray(np.ascontiguousarray(arr).round().astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(0, clutter + 1))):
        colour = muted(random_colour(rng), rng)
        cx, cy = rng.uniform(0, canvas, 2)
        rx, ry = rng.uniform(0.05, 0.25, 2) * canvas
        box = (cx - rx, cy - ry, cx + rx, cy + ry)
        if rng.random() < 0.5:
            draw.ellipse(box, fill=colour)
        else:
            draw.rectangle(box, fill=colour)
    return img


def finish(img: Image.Image, rng: np.random.Generator, size: int, *, greyscale: bool = False,
           noise_max: float = 6.0) -> Image.Image:
    """Downsample to `size` and apply a light gradient, exposure, colour cast and noise."""
    small = img.resize((size, size), Image.Resampling.BOX)
    a = np.asarray(small, dtype=np.float32)
    xx, yy = _unit_grid(size)
    theta = rng.uniform(0, 2 * np.pi)
    light = 1.0 + rng.uniform(0.0, 0.35) * (xx * np.cos(theta) + yy * np.sin(theta))
    a = a * light[..., None]
    mean = float(a.mean())
    a = (a - mean) * rng.uniform(0.8, 1.2) + mean * rng.uniform(0.8, 1.2)
    a = a * rng.uniform(0.93, 1.07, 3).astype(np.float32)
    a = a + rng.normal(0.0, rng.uniform(0.0, noise_max), a.shape).astype(np.float32)
    if greyscale:
        grey = a @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        a = np.repeat(grey[..., None], 3, axis=2)
    return Image.fromarray(np.clip(a.round(), 0, 255).astype(np.uint8), "RGB")


def jpeg_bytes(img: Image.Image, quality: int) -> bytes:
    """Encode with fixed settings so equal pixels give equal bytes."""
    buf = io.BytesIO()
    # 4:4:4 chroma: at 64 px, subsampled chroma would smear hair and shape colours.
    img.save(buf, format="JPEG", quality=quality, subsampling=0)
    return buf.getvalue()
