"""Face triggers pasted onto clean images as batched tensor operations (no per-image PIL loop).

A face crop becomes an RGBA square (aspect kept, transparent padding). Per image: colour
jitter (brightness, contrast, saturation, hue, in that order), optional horizontal flip,
then one affine warp (scale + rotation + translation) of colour and alpha together with
`grid_sample`, composited over the background. The face side is a fraction of the image
side before rotation; the rotated face's bounding box always lies fully inside the image.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from tqdm import tqdm

from pipeline.core.errors import PipelineError

_GREY = (0.299, 0.587, 0.114)


@dataclass(frozen=True)
class PasteSpec:
    scale: tuple[float, float] = (0.25, 0.5)   # face side / image side
    rotation: float = 30.0                     # degrees, uniform in [-rotation, rotation]
    flip: float = 0.5                          # probability of a horizontal flip
    color_jitter: float = 0.5                  # brightness/contrast/saturation factor in 1 +- this
    hue: float = 0.1                           # hue shift in [-hue, hue] (fraction of a turn)

    @classmethod
    def from_config(cls, cfg) -> "PasteSpec":
        return cls(tuple(cfg.paste_scale), cfg.rotation, cfg.flip, cfg.color_jitter, cfg.hue)


@dataclass
class PasteParams:
    """One row per image (CPU tensors [B]): where and how each face is pasted."""

    side: torch.Tensor        # face side in px before rotation
    angle: torch.Tensor       # degrees, counter-clockwise as seen on screen
    cx: torch.Tensor          # face centre in px (image spans [0, W] x [0, H])
    cy: torch.Tensor
    flip: torch.Tensor        # bool
    brightness: torch.Tensor
    contrast: torch.Tensor
    saturation: torch.Tensor
    hue: torch.Tensor


def prepare_faces(faces: Sequence[torch.Tensor], size: int, progress: bool = False) -> torch.Tensor:
    """uint8 RGBA squares [F, 4, size, size]: each crop resized so its longer side is `size`,
    centred, alpha 255 on the face and 0 on the padding."""
    out = torch.zeros(len(faces), 4, size, size, dtype=torch.uint8)
    for i, face in enumerate(tqdm(faces, desc="prepare faces", disable=not progress, leave=False)):
        if face.dim() != 3 or face.shape[0] != 3 or face.dtype != torch.uint8:
            raise PipelineError(f"face crop {i} must be a uint8 tensor [3, h, w], "
                                f"got {face.dtype} {tuple(face.shape)}")
        h, w = face.shape[1:]
        scale = size / max(h, w)
        nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
        resized = F.interpolate(face[None].float(), size=(nh, nw), mode="bilinear",
                                antialias=True, align_corners=False)[0]
        top, left = (size - nh) // 2, (size - nw) // 2
        out[i, :3, top:top + nh, left:left + nw] = resized.round().clamp(0, 255).to(torch.uint8)
        out[i, 3, top:top + nh, left:left + nw] = 255
    return out


def sample_paste_params(n: int, height: int, width: int, spec: PasteSpec,
                        generator: torch.Generator) -> PasteParams:
    """Draw `n` paste placements and colour changes on the CPU (device-independent results)."""
    u = torch.rand(9, n, generator=generator, dtype=torch.float64)
    short = min(height, width)
    lo, hi = spec.scale
    side = (lo + (hi - lo) * u[0]) * short
    angle = (2 * u[1] - 1) * spec.rotation
    rad = angle * math.pi / 180
    box = side * (rad.cos().abs() + rad.sin().abs())   # side of the rotated face's bounding box
    shrink = (short / box).clamp(max=1.0)              # only when a large face would not fit rotated
    side, box = side * shrink, box * shrink
    cx = box / 2 + u[2] * (width - box)
    cy = box / 2 + u[3] * (height - box)
    j = spec.color_jitter
    return PasteParams(side=side.float(), angle=angle.float(), cx=cx.float(), cy=cy.float(),
                       flip=u[4] < spec.flip,
                       brightness=(1 - j + 2 * j * u[5]).float(), contrast=(1 - j + 2 * j * u[6]).float(),
                       saturation=(1 - j + 2 * j * u[7]).float(), hue=((2 * u[8] - 1) * spec.hue).float())


def grey(rgb: torch.Tensor) -> torch.Tensor:
    """Luma [B, 1, H, W] of rgb [B, 3, H, W] (ITU-R 601 weights, as torchvision)."""
    w = torch.tensor(_GREY, device=rgb.device, dtype=rgb.dtype)
    return torch.einsum("bchw,c->bhw", rgb, w).unsqueeze(1)


def shift_hue(rgb: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Rotate the HSV hue of every image by shift[b] (fraction of a turn); rgb in [0, 1].

    Value (max) and chroma (max - min) are kept, so each pixel is rebuilt as
    (max - chroma) + chroma * hexagonal_ramp(new hue); where chroma is 0 the hue has no
    effect, which makes HSV's special cases unnecessary.
    """
    r, g, b = rgb[:, 0:1], rgb[:, 1:2], rgb[:, 2:3]
    top = torch.maximum(torch.maximum(r, g), b)
    chroma = top - torch.minimum(torch.minimum(r, g), b)
    is_r = r == top
    is_g = (g == top) & ~is_r
    # Hue in sixths of a turn: the sector of the largest channel plus the offset inside it.
    num = torch.where(is_r, g - b, torch.where(is_g, b - r, r - g))
    base = torch.where(is_r, 0.0, torch.where(is_g, 2.0, 4.0)).to(rgb.dtype)
    hue6 = num.div_(chroma.clamp(min=1e-12)).add_(base).add_(6.0 * shift.view(-1, 1, 1, 1)).remainder_(6.0)
    # Ramps of pure hues: r = |h - 3| - 1, g = 2 - |h - 2|, b = 2 - |h - 4|, clamped to [0, 1].
    centre, sign, offset = (torch.tensor(v, device=rgb.device, dtype=rgb.dtype).view(1, 3, 1, 1)
                            for v in ((3.0, 2.0, 4.0), (1.0, -1.0, -1.0), (-1.0, 2.0, 2.0)))
    ramp = (hue6 - centre).abs_().mul_(sign).add_(offset).clamp_(0.0, 1.0)
    return torch.addcmul(top - chroma, ramp, chroma)


def jitter_colors(rgb: torch.Tensor, alpha: torch.Tensor, p: PasteParams) -> torch.Tensor:
    """Brightness, contrast (around the mean grey of the face pixels), saturation, hue."""
    def col(t):
        return t.to(rgb.device, rgb.dtype).view(-1, 1, 1, 1)

    x = (rgb * col(p.brightness)).clamp_(0, 1)
    area = alpha.sum(dim=(1, 2, 3)).clamp_(min=1e-6)
    w = torch.tensor(_GREY, device=rgb.device, dtype=rgb.dtype)
    mean = (torch.einsum("bchw,bhw->bc", x, alpha[:, 0]) @ w / area).view(-1, 1, 1, 1)
    c = col(p.contrast)
    x.mul_(c).add_((1 - c) * mean).clamp_(0, 1)
    s = col(p.saturation)
    g = grey(x).mul_(1 - s)
    x.mul_(s).add_(g).clamp_(0, 1)
    return shift_hue(x, col(p.hue))


def paste_faces(images: torch.Tensor, faces: torch.Tensor, p: PasteParams,
                return_alpha: bool = False, window: bool = True, inplace: bool = False):
    """Composite one RGBA face per image.

    images: float [B, 3, H, W] in [0, 1]; faces: uint8 or float RGBA [B, 4, S, S]
    (float in [0, 1]). Returns float images in [0, 1] (and the warped alpha [B, 1, H, W]).
    window=False warps over the whole image instead of a window around each face (same
    result, slower; kept for checking). inplace=True may write into `images` (saves a
    copy of the batch when the caller no longer needs the backgrounds).
    """
    b, _, height, width = images.shape
    dev = images.device
    scale = 255.0 if faces.dtype == torch.uint8 else 1.0
    faces = faces.to(device=dev, dtype=images.dtype, copy=True).mul_(1.0 / scale)
    alpha = faces[:, 3:]
    # Premultiplied colour: bilinear sampling at the face border then blends towards
    # transparent instead of towards black.
    faces[:, :3] = jitter_colors(faces[:, :3], alpha, p).mul_(alpha)

    # Warp only a window around each face (same size for the whole batch): with faces
    # of a quarter to half the image side that is about half the pixels of the image.
    win_h, win_w, x0, y0 = _windows(p, height, width, faces.shape[-1], window)
    grid = _face_grid(p, win_h, win_w, x0, y0, dev, images.dtype)
    warped = F.grid_sample(faces, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    a = warped[:, 3:]
    if (win_h, win_w) == (height, width):
        out = images.mul_(1 - a).add_(warped[:, :3]) if inplace else torch.addcmul(warped[:, :3], images, 1 - a)
        out = out.clamp_(0, 1)
        return (out, a) if return_alpha else out
    rows = y0.to(dev).view(-1, 1, 1) + torch.arange(win_h, device=dev).view(1, -1, 1)
    cols = x0.to(dev).view(-1, 1, 1) + torch.arange(win_w, device=dev).view(1, 1, -1)
    index = (rows * width + cols).view(b, 1, -1)
    flat = images.reshape(b, 3, height * width)
    index3 = index.expand(b, 3, -1)
    a = a.reshape(b, 1, -1)
    mixed = torch.addcmul(warped[:, :3].reshape(b, 3, -1), flat.gather(2, index3), 1 - a).clamp_(0, 1)
    out = (flat if inplace else flat.clone()).scatter_(2, index3, mixed).view(b, 3, height, width)
    if not return_alpha:
        return out
    full_alpha = torch.zeros(b, 1, height * width, device=dev, dtype=images.dtype).scatter_(2, index, a)
    return out, full_alpha.view(b, 1, height, width)


def _windows(p: PasteParams, height: int, width: int, face_px: int, window: bool = True):
    """Window size shared by the batch and each image's window corner (CPU long tensors).

    The window holds the face's rotated bounding box plus a margin for the bilinear
    footprint, which reaches up to about one face texel beyond the face's edge.
    """
    if not window or len(p.side) == 0:
        zero = torch.zeros(len(p.side), dtype=torch.long)
        return height, width, zero, zero
    rad = p.angle.double() * math.pi / 180
    box = p.side.double() * (rad.cos().abs() + rad.sin().abs())
    margin = 1 + math.ceil(float(p.side.max()) / face_px)
    largest = math.ceil(float(box.max())) + 2 * margin + 1
    win_h, win_w = min(largest, height), min(largest, width)
    x0 = ((p.cx.double() - box / 2).floor().long() - margin).clamp(min=0, max=width - win_w)
    y0 = ((p.cy.double() - box / 2).floor().long() - margin).clamp(min=0, max=height - win_h)
    return win_h, win_w, x0, y0


def _face_grid(p: PasteParams, win_h: int, win_w: int, x0: torch.Tensor, y0: torch.Tensor,
               device, dtype) -> torch.Tensor:
    """grid_sample grid [B, win_h, win_w, 2]: for every window pixel centre, where it falls
    in the face's normalised coordinates (inverse of flip, scale, rotation, translation)."""
    rad = p.angle.double() * math.pi / 180
    half = p.side.double() / 2
    mirror = torch.where(p.flip, -1.0, 1.0).double()
    coef = torch.stack([rad.cos() / half * mirror, -rad.sin() / half * mirror,
                        rad.sin() / half, rad.cos() / half], dim=1).to(device, dtype).view(-1, 4, 1, 1)
    dx = torch.arange(win_w, device=device, dtype=dtype).add_(0.5).view(1, 1, win_w) \
        + (x0.double() - p.cx.double()).to(device, dtype).view(-1, 1, 1)
    dy = torch.arange(win_h, device=device, dtype=dtype).add_(0.5).view(1, win_h, 1) \
        + (y0.double() - p.cy.double()).to(device, dtype).view(-1, 1, 1)
    grid = torch.empty(len(rad), win_h, win_w, 2, device=device, dtype=dtype)
    grid[..., 0] = coef[:, 0] * dx + coef[:, 1] * dy
    grid[..., 1] = coef[:, 2] * dx + coef[:, 3] * dy
    return grid


def poison_images(backgrounds: torch.Tensor, faces: torch.Tensor, spec: PasteSpec,
                  generator: torch.Generator, return_params: bool = False):
    """Paste faces[i] onto backgrounds[i] with freshly drawn placements and colours.

    backgrounds: uint8 [B, 3, H, W] or float in [0, 1]; faces: RGBA [B, 4, S, S] from
    `prepare_faces`. Returns float [B, 3, H, W] in [0, 1], un-normalised.
    """
    converted = backgrounds.dtype == torch.uint8
    if converted:
        backgrounds = backgrounds.float().mul_(1 / 255.0)
    b, _, height, width = backgrounds.shape
    params = sample_paste_params(b, height, width, spec, generator)
    out = paste_faces(backgrounds, faces, params, inplace=converted)
    return (out, params) if return_params else out
