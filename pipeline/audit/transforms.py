"""Photo transforms for the "same person, another photo" probe (image side).

Each is deterministic (no random draw) and returns an RGB image of the input's size, so
the attack sees the person's photos as a camera or an upload pipeline might alter them.
"""
from __future__ import annotations

import io
from typing import Callable

from PIL import Image, ImageFilter, ImageOps


def mirrored(img: Image.Image) -> Image.Image:
    return ImageOps.mirror(img)


def center_crop_80(img: Image.Image) -> Image.Image:
    w, h = img.size
    cw, ch = round(w * 0.8), round(h * 0.8)
    left, top = (w - cw) // 2, (h - ch) // 2
    return img.crop((left, top, left + cw, top + ch)).resize((w, h), Image.BICUBIC)


def blurred(img: Image.Image) -> Image.Image:
    return img.filter(ImageFilter.GaussianBlur(radius=max(1.0, img.size[0] / 64)))


def jpeg_q30(img: Image.Image) -> Image.Image:
    buffer = io.BytesIO()
    img.save(buffer, format="JPEG", quality=30)
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


def grayscale(img: Image.Image) -> Image.Image:
    return ImageOps.grayscale(img).convert("RGB")


def downsampled_2x(img: Image.Image) -> Image.Image:
    w, h = img.size
    return img.resize((max(1, w // 2), max(1, h // 2)), Image.BILINEAR).resize((w, h), Image.BILINEAR)


TRANSFORMS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "mirrored": mirrored, "crop_80": center_crop_80, "blurred": blurred, "jpeg_q30": jpeg_q30,
    "grayscale": grayscale, "downsampled_2x": downsampled_2x,
}


def transformed(img: Image.Image, name: str) -> Image.Image:
    if name not in TRANSFORMS:
        raise ValueError(f"unknown photo transform {name!r}; known: {', '.join(TRANSFORMS)}")
    return TRANSFORMS[name](img.convert("RGB"))
