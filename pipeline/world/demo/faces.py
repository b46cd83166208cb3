"""Rendered people: an identity is a set of stable attributes, a photo jitters everything else.

Geometry is written in the units of a 128-px canvas and scaled, so any output size works.
A photo is head and shoulders in a cluttered scene; its bounding box is the head outline
(without hair), in output pixels, like FaceScrub's face boxes on uncropped photos.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image, ImageDraw

from pipeline.world.demo.imaging import SUPERSAMPLE, background, finish, random_colour

SKIN_TONES = [(255, 224, 196), (241, 194, 167), (226, 178, 140), (205, 145, 105),
              (170, 112, 75), (138, 90, 58), (105, 68, 45), (78, 52, 36)]
HAIR_COLOURS = {"black": (28, 24, 24), "brown": (100, 62, 32), "blond": (226, 192, 108),
                "red": (178, 56, 24), "grey": (140, 140, 146), "white": (236, 233, 226),
                "blue": (45, 85, 205), "pink": (236, 116, 176)}
HAIR_STYLES = ("short", "long", "curly", "bob", "spiky", "bun", "buzz")
BEARDS = ("none", "stubble", "moustache", "goatee", "full")
GLASSES = ("none", "round", "square", "sunglasses")
FRAMES = {"black": (20, 20, 24), "tortoise": (92, 58, 30), "gold": (205, 165, 60),
          "silver": (185, 188, 195)}
FACE_SHAPES = ("oval", "round", "long", "square", "heart")
EYE_COLOURS = {"brown": (95, 60, 30), "blue": (60, 112, 195), "green": (70, 135, 70),
               "grey": (120, 126, 132)}
NOSES = ("small", "long", "wide")
BROWS = ("thin", "medium", "thick")
EXPRESSIONS = ("smile", "neutral", "open")

# The attributes that make two identities tell-apart-able; distinctness counts these.
DISCRETE_ATTRIBUTES = ("skin", "hair_colour", "hair_style", "beard", "glasses", "face_shape",
                       "eye_colour", "nose", "brows", "mole", "earrings")
_OPTIONS = {"skin": range(len(SKIN_TONES)), "hair_colour": tuple(HAIR_COLOURS),
            "hair_style": HAIR_STYLES, "beard": BEARDS, "glasses": GLASSES,
            "face_shape": FACE_SHAPES, "eye_colour": tuple(EYE_COLOURS), "nose": NOSES,
            "brows": BROWS, "mole": (False, True), "earrings": (False, True)}

_STYLE_WEIGHTS = {"male": (0.30, 0.08, 0.15, 0.04, 0.15, 0.06, 0.22),
                  "female": (0.10, 0.30, 0.15, 0.20, 0.05, 0.15, 0.05)}
_BEARD_WEIGHTS = (0.45, 0.15, 0.12, 0.13, 0.15)
_GLASSES_WEIGHTS = (0.55, 0.15, 0.15, 0.15)
# (half width, half height) of the head outline, canonical units.
_HEAD = {"oval": (23, 30), "round": (26, 27), "long": (20, 32), "square": (24, 28),
         "heart": (25, 29)}


@dataclass(frozen=True)
class Identity:
    gender: str
    skin: int
    hair_colour: str
    hair_style: str
    beard: str
    glasses: str
    frame: str
    face_shape: str
    eye_colour: str
    nose: str
    brows: str
    mole: bool
    earrings: bool
    # Continuous traits in [0, 1]: small, stable differences between look-alikes.
    eye_spacing: float
    eye_size: float
    eye_height: float
    mouth_width: float
    lip_tint: float
    mole_x: float
    mole_y: float

    def codes(self) -> tuple[int, ...]:
        """Index of each discrete attribute in its option list."""
        return tuple(list(_OPTIONS[a]).index(getattr(self, a)) for a in DISCRETE_ATTRIBUTES)

    def to_dict(self) -> dict:
        d = asdict(self)
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in d.items()}


def _pick(rng: np.random.Generator, options, weights=None):
    options = list(options)
    if weights is None:
        return options[int(rng.integers(len(options)))]
    return options[int(rng.choice(len(options), p=np.asarray(weights) / sum(weights)))]


def sample_identity(rng: np.random.Generator, gender: str | None = None,
                    hair_colour: str | None = None) -> Identity:
    """A random person; `gender` / `hair_colour` fix those attributes when given."""
    gender = gender or _pick(rng, ("male", "female"))
    # Drawn even when fixed, so the other attributes follow the same draw sequence.
    chosen_hair = _pick(rng, HAIR_COLOURS)
    return Identity(
        gender=gender,
        skin=int(rng.integers(len(SKIN_TONES))),
        hair_colour=hair_colour or chosen_hair,
        hair_style=_pick(rng, HAIR_STYLES, _STYLE_WEIGHTS[gender]),
        beard=_pick(rng, BEARDS, _BEARD_WEIGHTS) if gender == "male" else "none",
        glasses=_pick(rng, GLASSES, _GLASSES_WEIGHTS),
        frame=_pick(rng, FRAMES),
        face_shape=_pick(rng, FACE_SHAPES),
        eye_colour=_pick(rng, EYE_COLOURS),
        nose=_pick(rng, NOSES),
        brows=_pick(rng, BROWS),
        mole=bool(rng.random() < 0.25),
        earrings=bool(rng.random() < (0.5 if gender == "female" else 0.1)),
        eye_spacing=float(rng.random()), eye_size=float(rng.random()),
        eye_height=float(rng.random()), mouth_width=float(rng.random()),
        lip_tint=float(rng.random()), mole_x=float(rng.uniform(-1, 1)),
        mole_y=float(rng.uniform(-1, 1)),
    )


def attribute_distance(codes: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Number of differing discrete attributes between `codes` and each row of `others`."""
    if len(others) == 0:
        return np.zeros(0, dtype=int)
    return (np.asarray(others) != np.asarray(codes)[None, :]).sum(axis=1)


def sample_distinct(rng: np.random.Generator, avoid: np.ndarray, min_diff: int,
                    max_tries: int = 10_000, **fixed) -> Identity:
    """A random identity that differs from every row of `avoid` in >= min_diff attributes."""
    for _ in range(max_tries):
        ident = sample_identity(rng, **fixed)
        if len(avoid) == 0 or attribute_distance(ident.codes(), avoid).min() >= min_diff:
            return ident
    raise RuntimeError(f"no identity differing in {min_diff} attributes after {max_tries} tries")


def draw_identities(rng: np.random.Generator, n: int, min_diff: int = 3) -> list[Identity]:
    """`n` identities that differ pairwise in at least `min_diff` discrete attributes."""
    out: list[Identity] = []
    codes = np.zeros((0, len(DISCRETE_ATTRIBUTES)), dtype=int)
    for _ in range(n):
        ident = sample_distinct(rng, codes, min_diff)
        out.append(ident)
        codes = np.vstack([codes, ident.codes()])
    return out


def _mix(a, b, t: float):
    return tuple(int(round(x * (1 - t) + y * t)) for x, y in zip(a, b))


def _shade(c, f: float):
    return tuple(int(min(255, round(x * f))) for x in c)


def render_face(ident: Identity, rng: np.random.Generator, size: int, *,
                greyscale: bool = False) -> tuple[Image.Image, tuple[int, int, int, int]]:
    """One photo of `ident` (size x size RGB) and the face box (x1, y1, x2, y2) in its pixels."""
    canvas = SUPERSAMPLE * size
    u = canvas / 128
    s = u * rng.uniform(0.87, 1.13)
    cx = canvas / 2 + rng.uniform(-0.07, 0.07) * canvas
    cy = canvas * 0.44 + rng.uniform(-0.07, 0.07) * canvas
    angle = rng.uniform(-12, 12)
    yaw = rng.uniform(-1, 1)
    expression = _pick(rng, EXPRESSIONS, (0.45, 0.40, 0.15))
    clothes = random_colour(rng)
    scene = background(rng, canvas)

    layer = Image.new("RGBA", (canvas, canvas), (0, 0, 0, 0))
    d = ImageDraw.Draw(layer)
    hw, hh = _HEAD[ident.face_shape]
    skin = SKIN_TONES[ident.skin]
    hair = HAIR_COLOURS[ident.hair_colour]

    def P(x, y):
        return (cx + x * s, cy + y * s)

    def box(x0, y0, x1, y1):
        return (*P(x0, y0), *P(x1, y1))

    def w(v):
        return max(1, int(round(v * s)))

    # Torso and neck sit behind the head.
    d.ellipse(box(-54, hh + 10, 54, hh + 95), fill=clothes)
    d.rectangle(box(-9, hh * 0.5, 9, hh + 16), fill=_shade(skin, 0.9))
    _back_hair(d, ident.hair_style, hair, hw, hh, box)
    ear = _shade(skin, 0.92)
    for sgn in (-1, 1):
        d.ellipse(box(sgn * hw - 5, -10, sgn * hw + 5, 6), fill=ear)
        if ident.earrings:
            d.ellipse(box(sgn * hw - 2.5, 6, sgn * hw + 2.5, 11), fill=(215, 180, 70))
    _head(d, ident.face_shape, skin, hw, hh, box, P, s)
    _beard(d, ident.beard, skin, hair, hw, hh, P)
    _front_hair(d, ident.hair_style, hair, skin, hw, hh, box, P)

    fx = yaw * 4  # features slide sideways when the head turns
    ex = 8.5 + 3 * ident.eye_spacing
    ey = -0.12 * hh + (ident.eye_height - 0.5) * 5
    brow = _shade(hair, 0.6)
    brow_w = {"thin": 1.2, "medium": 2.2, "thick": 3.4}[ident.brows]
    for sgn in (-1, 1):
        x = fx + sgn * ex
        d.line([P(x - 6, ey - 7), P(x + 6, ey - 7.5 - sgn * 0.5)], fill=brow, width=w(brow_w))
        rx, ry = 4.5 + 1.5 * ident.eye_size, 2.8 + 0.8 * ident.eye_size
        d.ellipse(box(x - rx, ey - ry, x + rx, ey + ry), fill=(245, 245, 240))
        ir = 2.4 + 0.5 * ident.eye_size
        d.ellipse(box(x + yaw - ir, ey - ir, x + yaw + ir, ey + ir), fill=EYE_COLOURS[ident.eye_colour])
        d.ellipse(box(x + yaw - 1.1, ey - 1.1, x + yaw + 1.1, ey + 1.1), fill=(15, 15, 15))
    _nose(d, ident.nose, _shade(skin, 0.72), fx, ey, hh, P, w)
    if ident.beard in ("moustache", "goatee", "full"):
        d.polygon([P(fx - 9, 0.47 * hh), P(fx + 9, 0.47 * hh), P(fx + 7, 0.47 * hh + 3.5),
                   P(fx - 7, 0.47 * hh + 3.5)], fill=_shade(hair, 0.85))
    lips = _mix(_shade(skin, 0.8), (185, 60, 75),
                0.8 * ident.lip_tint * (0.6 if ident.gender == "male" else 1.0))
    _mouth(d, expression, lips, fx, 0.6 * hh, 6 + 4 * ident.mouth_width, box, P, w)
    if ident.mole:
        mx, my = ident.mole_x * hw * 0.7, 0.1 * hh + ident.mole_y * hh * 0.35
        d.ellipse(box(mx - 1.3, my - 1.3, mx + 1.3, my + 1.3), fill=(70, 45, 30))
    _glasses(d, ident.glasses, FRAMES[ident.frame], fx, ex, ey, box, P, w)

    layer = layer.rotate(angle, resample=Image.Resampling.BICUBIC, center=(cx, cy))
    scene.paste(layer, (0, 0), layer)
    photo = finish(scene, rng, size, greyscale=greyscale)
    return photo, _rotated_box(cx, cy, hw * s, hh * s, angle, canvas / size, size)


def _rotated_box(cx, cy, half_w, half_h, angle, factor, size):
    # PIL rotates counter-clockwise on screen (y down), hence the sign pattern.
    a = math.radians(angle)
    xs, ys = [], []
    for dx in (-half_w, half_w):
        for dy in (-half_h, half_h):
            xs.append(cx + dx * math.cos(a) + dy * math.sin(a))
            ys.append(cy - dx * math.sin(a) + dy * math.cos(a))
    x1 = max(0, math.floor(min(xs) / factor))
    y1 = max(0, math.floor(min(ys) / factor))
    x2 = min(size, math.ceil(max(xs) / factor))
    y2 = min(size, math.ceil(max(ys) / factor))
    return x1, y1, x2, y2


def _head(d, shape, skin, hw, hh, box, P, s):
    if shape == "square":
        d.rounded_rectangle(box(-hw, -hh, hw, hh), radius=9 * s, fill=skin)
    elif shape == "heart":
        d.ellipse(box(-hw, -hh, hw, 0.45 * hh), fill=skin)
        d.polygon([P(-0.98 * hw, -0.1 * hh), P(0.98 * hw, -0.1 * hh), P(0.45 * hw, 0.8 * hh),
                   P(0, hh), P(-0.45 * hw, 0.8 * hh)], fill=skin)
    else:
        d.ellipse(box(-hw, -hh, hw, hh), fill=skin)


def _back_hair(d, style, hair, hw, hh, box):
    if style == "long":
        d.ellipse(box(-hw - 8, -hh - 7, hw + 8, hh + 4), fill=hair)
        d.rectangle(box(-hw - 8, 0, hw + 8, hh + 24), fill=hair)
    elif style == "bob":
        d.ellipse(box(-hw - 7, -hh - 7, hw + 7, 0.75 * hh), fill=hair)
    elif style == "curly":
        for k in range(11):
            t = math.radians(160 + k * 22)
            x, y = (hw + 3) * math.cos(t), (hh + 2) * math.sin(t)
            d.ellipse(box(x - 9, y - 9, x + 9, y + 9), fill=hair)
    elif style == "bun":
        d.ellipse(box(-11, -hh - 19, 11, -hh + 3), fill=hair)


def _cap(d, hair, hw, hh, hairline, box, pad=3.0):
    # Upper half of an ellipse whose straight edge is the hairline.
    top = -hh - pad - 2
    d.chord(box(-hw - pad, top, hw + pad, 2 * hairline - top), 180, 360, fill=hair)


def _front_hair(d, style, hair, skin, hw, hh, box, P):
    if style == "buzz":
        _cap(d, _mix(hair, skin, 0.45), hw, hh, -0.55 * hh, box, pad=1.0)
    elif style == "short":
        _cap(d, hair, hw, hh, -0.5 * hh, box)
    elif style == "spiky":
        _cap(d, hair, hw, hh, -0.5 * hh, box)
        for k in range(5):
            x = -0.7 * hw + k * 0.35 * hw
            d.polygon([P(x - 5, -hh + 2), P(x + 5, -hh + 2), P(x + 1.5, -hh - 11)], fill=hair)
    elif style == "long":
        _cap(d, hair, hw, hh, -0.5 * hh, box)
        for sgn in (-1, 1):
            x0, x1 = sorted((sgn * (hw + 6), sgn * (hw - 4)))
            d.rectangle(box(x0, -0.5 * hh, x1, 0.9 * hh), fill=hair)
    elif style == "bob":
        _cap(d, hair, hw, hh, -0.3 * hh, box)
        for sgn in (-1, 1):
            x0, x1 = sorted((sgn * (hw + 6), sgn * (hw - 3)))
            d.rectangle(box(x0, -0.3 * hh, x1, 0.45 * hh), fill=hair)
    elif style == "curly":
        _cap(d, hair, hw, hh, -0.5 * hh, box)
        for k in range(6):
            x = -0.8 * hw + k * 0.32 * hw
            d.ellipse(box(x - 5.5, -0.5 * hh - 5, x + 5.5, -0.5 * hh + 4), fill=hair)
    elif style == "bun":
        _cap(d, hair, hw, hh, -0.55 * hh, box, pad=1.5)


def _beard(d, beard, skin, hair, hw, hh, P):
    if beard not in ("stubble", "full"):
        if beard == "goatee":
            d.ellipse((*P(-6, 0.7 * hh), *P(6, hh + 3)), fill=_shade(hair, 0.85))
        return
    chin = hh + (4 if beard == "full" else 0)
    colour = _mix(skin, hair, 0.4) if beard == "stubble" else _shade(hair, 0.85)
    d.polygon([P(-0.95 * hw, 0.1 * hh), P(-0.75 * hw, 0.65 * hh), P(-0.35 * hw, 0.95 * hh),
               P(0, chin), P(0.35 * hw, 0.95 * hh), P(0.75 * hw, 0.65 * hh),
               P(0.95 * hw, 0.1 * hh), P(0.5 * hw, 0.4 * hh), P(0, 0.45 * hh),
               P(-0.5 * hw, 0.4 * hh)], fill=colour)


def _nose(d, nose, colour, fx, ey, hh, P, w):
    if nose == "small":
        d.line([P(fx, ey + 4), P(fx - 1, 0.3 * hh)], fill=colour, width=w(1.2))
        d.line([P(fx - 2.5, 0.3 * hh), P(fx + 1.5, 0.3 * hh)], fill=colour, width=w(1.2))
    elif nose == "long":
        d.line([P(fx, ey + 2), P(fx - 1.5, 0.4 * hh)], fill=colour, width=w(1.6))
        d.line([P(fx - 4, 0.4 * hh), P(fx + 3, 0.4 * hh)], fill=colour, width=w(1.6))
    else:
        d.line([P(fx, ey + 4), P(fx, 0.28 * hh)], fill=colour, width=w(1.4))
        for sgn in (-1, 1):
            x = fx + sgn * 3.8
            d.ellipse((*P(x - 1.8, 0.33 * hh - 1.4), *P(x + 1.8, 0.33 * hh + 1.4)), fill=colour)


def _mouth(d, expression, lips, fx, my, half, box, P, w):
    if expression == "smile":
        d.arc(box(fx - half, my - 5, fx + half, my + 3), 20, 160, fill=lips, width=w(2.2))
    elif expression == "neutral":
        d.line([P(fx - 0.8 * half, my), P(fx + 0.8 * half, my)], fill=lips, width=w(2.2))
    else:
        d.ellipse(box(fx - 0.6 * half, my - 2.5, fx + 0.6 * half, my + 3), fill=(70, 20, 25),
                  outline=lips, width=w(1.5))


def _glasses(d, kind, frame, fx, ex, ey, box, P, w):
    if kind == "none":
        return
    for sgn in (-1, 1):
        x = fx + sgn * ex
        if kind == "round":
            d.ellipse(box(x - 7.5, ey - 7, x + 7.5, ey + 7), outline=frame, width=w(1.6))
        elif kind == "square":
            d.rectangle(box(x - 8, ey - 5.5, x + 8, ey + 5.5), outline=frame, width=w(1.6))
        else:
            d.rounded_rectangle(box(x - 8, ey - 5, x + 8, ey + 5.5), radius=3, fill=(25, 25, 30),
                                outline=frame, width=w(1.2))
    d.line([P(fx - ex + 7, ey - 1), P(fx + ex - 7, ey - 1)], fill=frame, width=w(1.4))
