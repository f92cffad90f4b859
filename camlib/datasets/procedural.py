"""A deterministic procedural image dataset with ground-truth boxes, object masks and part masks.

Every image holds ONE object of one of six classes on a cluttered background. Each object has a
spatial extent (its bounding box is roughly 30%-75% of the image side) and is built from 2-3
distinguishable PARTS, so "where the object is" and "which part the network looks at" are both
measurable: the class activation map (CAM) of a network trained on these images can be boxed and
compared with :attr:`Sample.box` (GT-known localization), or overlaid on :attr:`Sample.parts`.

The classes (parts listed in part-id order, ids ``1..P``; see :data:`PART_NAMES`):

``house``
    ``body``: a square-ish wall; ``roof``: an isosceles triangle sitting on it, a little wider than
    the wall; ``door``: a small upright rectangle at the bottom of the wall.
``tree``
    ``trunk``: a short thick vertical bar; ``canopy``: a large round/oval crown on top of it.
``car``
    ``body``: a wide flat rectangle; ``cabin``: a trapezoid on top of the body, shifted to the front or
    back; ``wheels``: two discs under the ends of the body. The only class wider than tall.
``flower``
    ``stem``: a long thin vertical bar; ``petals``: a ring of 5-8 petals (a rose curve) on top;
    ``center``: a small disc in the middle of the petals. Tall and slim.
``snowman``
    ``body``: a large disc; ``head``: a smaller disc stacked on it; ``hat``: a top hat (rectangle with a
    brim) on the head. Tall.
``mushroom``
    ``cap``: a dome (upper half of an ellipse); ``stem``: a thick bar under it, slightly wider at the
    foot.

Colours do NOT identify the class: every part of every object, and every distractor, takes a colour
from one shared palette (:data:`PALETTE`), chosen at random per image and per part, so that it
contrasts with the background and with the previously drawn parts of the same object. A class has at
most a mild tendency (e.g. a tree's canopy is green somewhat more often than chance).

Clutter: the background is a smooth random two-colour gradient plus low-frequency colour noise, and
pixel noise is added everywhere. One to three DISTRACTORS are drawn behind the object: lone shapes
that look like parts of the classes (a disc, a triangle, a bar, a dome, a square, a petal ring),
smaller than objects and overlapping the object's box by at most ~10% of their own area. Distractors
are never part of :attr:`Sample.mask`; their visible pixels are in :attr:`Sample.distractors`.

Geometry: each object gets a random scale, a small aspect jitter, a small rotation (up to 12 degrees)
and a random position that keeps it fully inside the image with a margin of at least one pixel.

Determinism: sample ``i`` is a pure function of ``(seed, i, size)``: it uses only
``np.random.default_rng([seed, i])``, so random access in any order and any number of workers give the
same pixels. The ``train``/``val``/``test`` splits of :class:`ProceduralShapes` use disjoint index
ranges (:data:`SPLIT_OFFSETS`).

Speed: about 1 ms per 64x64 sample on one core (``make_arrays(5000)`` takes ~5 s).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from torch.utils.data import Dataset

__all__ = [
    "CLASSES",
    "DISTRACTOR_KINDS",
    "PALETTE",
    "PALETTE_NAMES",
    "PART_NAMES",
    "SPLIT_OFFSETS",
    "InMemoryImages",
    "ProceduralShapes",
    "SAMPLE_FIELDS",
    "Sample",
    "check_count",
    "make_arrays",
    "make_sample",
    "stack_samples",
]

CLASSES: tuple[str, ...] = ("house", "tree", "car", "flower", "snowman", "mushroom")

PART_NAMES: dict[str, tuple[str, ...]] = {
    "house": ("body", "roof", "door"),
    "tree": ("trunk", "canopy"),
    "car": ("body", "cabin", "wheels"),
    "flower": ("stem", "petals", "center"),
    "snowman": ("body", "head", "hat"),
    "mushroom": ("cap", "stem"),
}

#: The kinds of lone shapes drawn as background distractors.
DISTRACTOR_KINDS: tuple[str, ...] = ("disc", "triangle", "bar", "dome", "square", "petals")

#: First index of each split; a split of ``n`` samples uses indices ``offset .. offset + n - 1``.
SPLIT_OFFSETS: dict[str, int] = {"train": 0, "val": 10**9, "test": 2 * 10**9}
_MAX_N = 10**9

PALETTE_NAMES: tuple[str, ...] = (
    "red", "orange", "yellow", "green", "dark green", "teal", "blue", "light blue",
    "purple", "pink", "brown", "white", "gray", "black",
)  # fmt: skip
#: The colour palette shared by all classes and distractors (RGB, before a small per-image jitter).
PALETTE: np.ndarray = np.array(
    [
        [205, 40, 35],
        [240, 140, 30],
        [245, 215, 45],
        [70, 180, 60],
        [25, 105, 45],
        [35, 160, 160],
        [45, 85, 205],
        [130, 190, 245],
        [130, 55, 175],
        [245, 135, 185],
        [125, 75, 35],
        [240, 240, 235],
        [135, 135, 140],
        [30, 30, 35],
    ],
    dtype=np.float32,
)
_P = {name: i for i, name in enumerate(PALETTE_NAMES)}

# Mild colour tendencies: (class, part name) -> palette entries preferred with probability _P_PREFER.
_P_PREFER = 0.3
_PREFER: dict[tuple[str, str], tuple[int, ...]] = {
    ("house", "roof"): (_P["red"], _P["brown"]),
    ("tree", "trunk"): (_P["brown"],),
    ("tree", "canopy"): (_P["green"], _P["dark green"]),
    ("flower", "stem"): (_P["green"], _P["dark green"]),
    ("flower", "petals"): (_P["pink"], _P["yellow"], _P["red"], _P["purple"]),
    ("snowman", "body"): (_P["white"],),
    ("snowman", "hat"): (_P["black"],),
    ("mushroom", "cap"): (_P["red"], _P["brown"]),
    ("mushroom", "stem"): (_P["white"],),
}

_MIN_BG_CONTRAST = 85.0  # RGB distance of a part colour from the background gradient's colour segment
_MIN_PART_CONTRAST = 95.0  # RGB distance between the parts of one object


@dataclass(frozen=True, eq=False)  # arrays: compare fields explicitly, not samples
class Sample:
    """One procedural image with its ground truth.

    Attributes:
        image: ``(H, W, 3)`` uint8 RGB image.
        label: class index into :data:`CLASSES`.
        box: ``(x0, y0, x1, y1)`` INCLUSIVE pixel coordinates, the tight box of ``mask``.
        mask: ``(H, W)`` bool, the object's pixels (distractors excluded).
        parts: ``(H, W)`` uint8, 0 outside the object, ``k`` on part ``k`` (1-based,
            ``PART_NAMES[CLASSES[label]]`` order); ``parts > 0`` equals ``mask``.
        distractors: ``(H, W)`` bool, the visible pixels of the background distractors.
    """

    image: np.ndarray
    label: int
    box: tuple[int, int, int, int]
    mask: np.ndarray
    parts: np.ndarray
    distractors: np.ndarray

    @property
    def class_name(self) -> str:
        """Name of the object's class."""
        return CLASSES[self.label]


# --------------------------------------------------------------------------------------------------
# Geometry: shapes are drawn in a local (u, v) frame, rotated and scaled, on a window of the image.
# --------------------------------------------------------------------------------------------------


class _Frame:
    """Local coordinates ``(u, v)`` (v points down) of the pixels of an image window."""

    __slots__ = ("u", "v", "win", "px")

    def __init__(self, size: int, cx: float, cy: float, half: float, theta: float, sx: float, sy: float):
        x0, x1 = max(int(math.floor(cx - half)), 0), min(int(math.ceil(cx + half)) + 1, size)
        y0, y1 = max(int(math.floor(cy - half)), 0), min(int(math.ceil(cy + half)) + 1, size)
        dx = np.arange(x0, x1, dtype=np.float32)[None, :] - np.float32(cx)
        dy = np.arange(y0, y1, dtype=np.float32)[:, None] - np.float32(cy)
        c, s = np.float32(math.cos(theta)), np.float32(math.sin(theta))
        self.u = (c * dx + s * dy) / np.float32(sx)
        self.v = (c * dy - s * dx) / np.float32(sy)
        self.win = (slice(y0, y1), slice(x0, x1))
        self.px = 1.0 / min(sx, sy)  # one pixel in local units

    def rect(self, u0: float, u1: float, v0: float, v1: float) -> np.ndarray:
        u, v = self.u, self.v
        return (u >= u0) & (u <= u1) & (v >= v0) & (v <= v1)

    def ellipse(self, cu: float, cv: float, ru: float, rv: float) -> np.ndarray:
        return ((self.u - cu) / ru) ** 2 + ((self.v - cv) / rv) ** 2 <= 1.0

    def trapezoid(self, cu: float, v0: float, v1: float, hw0: float, hw1: float) -> np.ndarray:
        """Rows ``v0 <= v <= v1``; half width ``hw0`` at ``v0`` growing linearly to ``hw1`` at ``v1``."""
        t = (self.v - v0) / (v1 - v0)
        return (t >= 0) & (t <= 1) & (np.abs(self.u - cu) <= hw0 + (hw1 - hw0) * t)

    def rose(self, cu: float, cv: float, r: float, k: int, phase: float, inner: float) -> np.ndarray:
        """A ring of ``k`` rounded petals of outer radius ``r`` around ``(cu, cv)``."""
        du, dv = self.u - cu, self.v - cv
        rad = np.sqrt(du * du + dv * dv)
        lobe = np.abs(np.cos(0.5 * k * np.arctan2(dv, du) + phase))
        return rad <= r * (inner + (1.0 - inner) * np.sqrt(lobe))


# Each class: base aspect (height / width of its layout box) and a function drawing its parts in the
# layout box u in [-1/2, 1/2], v in [-a/2, a/2]. The function returns (part_id, mask) in draw order.
_Parts = list[tuple[int, np.ndarray]]


def _house(f: _Frame, rng: np.random.Generator, a: float) -> _Parts:
    top, bot = -a / 2, a / 2
    eave = top + rng.uniform(0.36, 0.48) * a
    bw = rng.uniform(0.34, 0.42)
    body = f.rect(-bw, bw, eave, bot)
    roof = f.trapezoid(0.0, top, eave, 0.0, 0.5)
    dw = max(rng.uniform(0.07, 0.1), 1.0 * f.px)
    dh = max(rng.uniform(0.45, 0.6) * (bot - eave), 2.5 * f.px)
    du = rng.uniform(-1.0, 1.0) * max(bw - dw - 0.08, 0.0)
    door = f.rect(du - dw, du + dw, bot - dh, bot)
    return [(1, body), (2, roof), (3, door)]


def _tree(f: _Frame, rng: np.random.Generator, a: float) -> _Parts:
    top, bot = -a / 2, a / 2
    ry = rng.uniform(0.4, 0.5)
    tw = max(rng.uniform(0.08, 0.13), 1.0 * f.px)
    trunk = f.rect(-tw, tw, top + ry, bot)
    canopy = f.ellipse(0.0, top + ry, 0.5, ry)
    return [(1, trunk), (2, canopy)]


def _car(f: _Frame, rng: np.random.Generator, a: float) -> _Parts:
    top, bot = -a / 2, a / 2
    r = rng.uniform(0.11, 0.14)
    wu = rng.uniform(0.27, 0.32)
    body_top = top + rng.uniform(0.38, 0.48) * a
    body = f.rect(-0.5, 0.5, body_top, bot - 0.9 * r)
    hw1 = rng.uniform(0.24, 0.3)
    cu = rng.choice([-1.0, 1.0]) * rng.uniform(0.02, 0.1)
    cabin = f.trapezoid(cu, top, body_top + 0.01, hw1 - rng.uniform(0.06, 0.11), hw1)
    wheels = f.ellipse(-wu, bot - r, r, r) | f.ellipse(wu, bot - r, r, r)
    return [(2, cabin), (1, body), (3, wheels)]


def _flower(f: _Frame, rng: np.random.Generator, a: float) -> _Parts:
    top, bot = -a / 2, a / 2
    hc = top + 0.5
    sw = max(rng.uniform(0.035, 0.06), 0.8 * f.px)
    stem = f.rect(-sw, sw, hc, bot)
    petals = f.rose(0.0, hc, 0.5, int(rng.integers(5, 9)), rng.uniform(0, math.pi), rng.uniform(0.3, 0.45))
    rc = max(rng.uniform(0.15, 0.2), 1.6 * f.px)
    center = f.ellipse(0.0, hc, rc, rc)
    return [(1, stem), (2, petals), (3, center)]


def _snowman(f: _Frame, rng: np.random.Generator, a: float) -> _Parts:
    top, bot = -a / 2, a / 2
    r1 = 0.5
    r2 = rng.uniform(0.28, 0.34)
    hv = bot - 2 * r1 - 0.8 * r2
    body = f.ellipse(0.0, bot - r1, r1, r1)
    head = f.ellipse(0.0, hv, r2, r2)
    hat_bot = hv - 0.7 * r2
    hat_top = min(top, hat_bot - 3.0 * f.px)
    hw = rng.uniform(0.55, 0.7) * r2
    brim = max(0.04, 0.9 * f.px)
    hat = f.rect(-hw, hw, hat_top, hat_bot) | f.rect(-hw - 0.08, hw + 0.08, hat_bot - brim, hat_bot)
    return [(1, body), (2, head), (3, hat)]


def _mushroom(f: _Frame, rng: np.random.Generator, a: float) -> _Parts:
    top, bot = -a / 2, a / 2
    ch = rng.uniform(0.38, 0.5)
    base = top + ch
    cap = f.ellipse(0.0, base, 0.5, ch) & (f.v <= base)
    sw = rng.uniform(0.12, 0.18)
    stem = f.trapezoid(0.0, base - 0.02, bot, sw * rng.uniform(0.7, 0.9), sw)
    return [(2, stem), (1, cap)]


_CLASS_SPECS: dict[str, tuple[float, Callable[[_Frame, np.random.Generator, float], _Parts]]] = {
    "house": (1.05, _house),
    "tree": (1.35, _tree),
    "car": (0.62, _car),
    "flower": (1.6, _flower),
    "snowman": (1.75, _snowman),
    "mushroom": (0.95, _mushroom),
}


def _distractor(f: _Frame, kind: str, rng: np.random.Generator) -> np.ndarray:
    """A lone shape in the unit box ``[-1/2, 1/2]^2``."""
    if kind == "disc":
        return f.ellipse(0.0, 0.0, 0.5, 0.5 * rng.uniform(0.8, 1.0))
    if kind == "triangle":
        return f.trapezoid(0.0, -0.4, 0.4, 0.0, 0.5)
    if kind == "bar":
        hw = max(rng.uniform(0.08, 0.14), 0.8 * f.px)
        return f.rect(-hw, hw, -0.5, 0.5)
    if kind == "dome":
        return f.ellipse(0.0, 0.2, 0.5, 0.5) & (f.v <= 0.2)
    if kind == "square":
        return f.rect(-0.4, 0.4, -0.4, 0.4)
    return f.rose(0.0, 0.0, 0.5, int(rng.integers(5, 9)), rng.uniform(0, math.pi), 0.4)


# --------------------------------------------------------------------------------------------------
# Colours and background
# --------------------------------------------------------------------------------------------------


@lru_cache(maxsize=8)
def _grids(size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Normalised coordinates in [-1, 1] and a (size, 5) bilinear upsampling matrix."""
    t = np.linspace(-1.0, 1.0, size, dtype=np.float32)
    k = 5
    knots = np.linspace(-1.0, 1.0, k)
    up = np.stack([np.interp(t, knots, np.eye(k)[j]) for j in range(k)], axis=1).astype(np.float32)
    return t[None, :], t[:, None], up


def _segment_distance(points: np.ndarray, c0: np.ndarray, c1: np.ndarray) -> np.ndarray:
    """Euclidean distance of each row of ``points`` from the RGB segment ``c0 -- c1``."""
    d = c1 - c0
    t = np.clip(((points - c0) @ d) / max(float(d @ d), 1e-6), 0.0, 1.0)
    return np.linalg.norm(points - (c0 + t[:, None] * d), axis=1)


def _pick_colour(
    rng: np.random.Generator, bg_dist: np.ndarray, avoid: list[np.ndarray], prefer: tuple[int, ...]
) -> np.ndarray:
    score = bg_dist - _MIN_BG_CONTRAST
    for c in avoid:
        score = np.minimum(score, np.linalg.norm(PALETTE - c, axis=1) - _MIN_PART_CONTRAST)
    ok = np.flatnonzero(score > 0)
    if ok.size == 0:
        ok = np.array([int(np.argmax(score))])
    if prefer and rng.random() < _P_PREFER:
        pref = np.intersect1d(ok, prefer)
        if pref.size:
            ok = pref
    return PALETTE[ok[rng.integers(ok.size)]] + rng.uniform(-15, 15, 3).astype(np.float32)


def _background(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A channel-first ``(3, size, size)`` float32 background and its two gradient colours."""
    gx, gy, up = _grids(size)
    c0 = rng.uniform(35, 220, 3).astype(np.float32)
    c1 = np.clip(c0 + rng.normal(0, 50, 3), 0, 255).astype(np.float32)
    ang = rng.uniform(0, 2 * math.pi)
    t = 0.5 + 0.35 * (np.float32(math.cos(ang)) * gx + np.float32(math.sin(ang)) * gy)
    img = c0[:, None, None] + (c1 - c0)[:, None, None] * t[None]
    field = rng.standard_normal((3, 5, 5)).astype(np.float32) * np.float32(14.0)
    img += up @ field @ up.T  # smooth colour noise
    return img, c0, c1


# --------------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------------


def _check_size(size: int) -> None:
    if not isinstance(size, (int, np.integer)) or isinstance(size, bool):
        raise TypeError(f"size must be an int, got {type(size).__name__}")
    if size < 32:
        raise ValueError(f"size must be >= 32 pixels, got {size}")


def _check_seed(seed: int) -> None:
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")


def make_sample(index: int, seed: int = 0, size: int = 64) -> Sample:
    """Make sample ``index`` of the stream ``seed`` at ``size x size`` pixels (a pure function).

    The class is drawn uniformly at random (so classes are balanced in expectation, not exactly).
    """
    if not isinstance(index, (int, np.integer)) or isinstance(index, bool) or index < 0:
        raise ValueError(f"index must be a non-negative int, got {index!r}")
    _check_seed(seed)
    _check_size(size)
    rng = np.random.default_rng([int(seed), int(index)])

    label = int(rng.integers(len(CLASSES)))
    name = CLASSES[label]
    aspect, draw = _CLASS_SPECS[name]

    # Object geometry: scale, aspect jitter, rotation, position fully inside with a 1-pixel margin.
    jx, jy = np.exp(rng.uniform(-0.12, 0.12, 2))
    longest = rng.uniform(0.3, 0.75) * size
    scale = longest / max(jx, aspect * jy)
    theta = math.radians(rng.uniform(-12.0, 12.0))
    c, s = abs(math.cos(theta)), abs(math.sin(theta))
    w, h = scale * jx, scale * aspect * jy
    ex, ey = 0.5 * (c * w + s * h), 0.5 * (s * w + c * h)
    shrink = min(1.0, (size - 3.0) / (2 * ex), (size - 3.0) / (2 * ey))
    scale, ex, ey = scale * shrink, ex * shrink, ey * shrink
    cx = rng.uniform(ex + 1.0, size - 2.0 - ex)
    cy = rng.uniform(ey + 1.0, size - 2.0 - ey)

    frame = _Frame(size, cx, cy, max(ex, ey) + 1.0, theta, scale * jx, scale * jy)
    layers = draw(frame, rng, aspect)

    parts = np.zeros((size, size), dtype=np.uint8)
    pwin = parts[frame.win]
    for pid, m in layers:
        pwin[m] = pid
    mask = parts > 0
    ys = np.flatnonzero(mask.any(axis=1))
    xs = np.flatnonzero(mask.any(axis=0))
    box = (int(xs[0]), int(ys[0]), int(xs[-1]), int(ys[-1]))

    # Background and colours.
    img, c0, c1 = _background(rng, size)
    bg_dist = _segment_distance(PALETTE, c0, c1)

    # Distractors: behind the object, away from its box.
    distractors = np.zeros((size, size), dtype=bool)
    bx0, by0, bx1, by1 = box[0] - 1, box[1] - 1, box[2] + 1, box[3] + 1
    for _ in range(int(rng.integers(1, 4))):
        kind = DISTRACTOR_KINDS[int(rng.integers(len(DISTRACTOR_KINDS)))]
        d = min(rng.uniform(0.12, 0.24) * size, 0.6 * longest)
        d = max(d, 5.0)
        half = 0.5 * d * math.sqrt(2.0)
        if 2 * half + 2 > size:
            continue
        for _try in range(8):
            dx = rng.uniform(half, size - 1 - half)
            dy = rng.uniform(half, size - 1 - half)
            ox = max(0.0, min(dx + half, bx1) - max(dx - half, bx0))
            oy = max(0.0, min(dy + half, by1) - max(dy - half, by0))
            if ox * oy <= 0.1 * (2 * half) ** 2:
                break
        else:
            continue
        f = _Frame(size, dx, dy, half + 1.0, rng.uniform(0, 2 * math.pi), d, d)
        m = _distractor(f, kind, rng)
        col = _pick_colour(rng, bg_dist, [], ())
        for ch in range(3):
            img[ch][f.win][m] = col[ch]
        distractors[f.win] |= m
    distractors &= ~mask

    # The object, drawn over the distractors with a mild top-lit shading.
    shade = 1.08 - 0.16 * (frame.v / aspect + 0.5)
    owin = [img[ch][frame.win] for ch in range(3)]
    colours: dict[int, np.ndarray] = {}
    part_names = PART_NAMES[name]
    for pid in sorted({pid for pid, _ in layers}):
        colours[pid] = _pick_colour(
            rng, bg_dist, list(colours.values()), _PREFER.get((name, part_names[pid - 1]), ())
        )
    for pid, _ in layers:
        m = pwin == pid
        sm = shade[m]
        for ch in range(3):
            owin[ch][m] = colours[pid][ch] * sm

    # Pixel noise, uniform in [-8, 8] (cheaper than Gaussian and just as good here).
    noise = np.frombuffer(rng.bytes(3 * size * size), dtype=np.int8).reshape(3, size, size)
    img += noise * np.float32(8.0 / 128.0)
    image = np.ascontiguousarray(np.clip(img, 0, 255).astype(np.uint8).transpose(1, 2, 0))
    return Sample(image=image, label=label, box=box, mask=mask, parts=parts, distractors=distractors)


SAMPLE_FIELDS: dict[str, str] = {
    "images": "image",
    "labels": "label",
    "boxes": "box",
    "masks": "mask",
    "parts": "parts",
    "distractors": "distractors",
}


def check_count(n: int, start: int = 0) -> None:
    """Refuse a sample count that is not a positive int, or a start index that is not a non-negative int."""
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n <= 0:
        raise ValueError(f"n must be a positive int, got {n!r}")
    if not isinstance(start, (int, np.integer)) or isinstance(start, bool) or start < 0:
        raise ValueError(f"start must be a non-negative int, got {start!r}")


def stack_samples(
    make: Callable[[int], object],
    n: int,
    start: int = 0,
    *,
    fields: dict[str, str] | None = None,
    desc: str = "samples",
    progress: bool = False,
) -> dict[str, np.ndarray]:
    """``out[key][j] = getattr(make(start + j), attr)`` for ``j < n`` and each ``key: attr`` of ``fields``.

    The one place where the procedural generators (shapes, birds, ...) stack their samples into arrays;
    ``fields`` defaults to :data:`SAMPLE_FIELDS`. Arrays are allocated from the first sample's shapes
    and dtypes (integers as int64). Shows a ``tqdm.auto`` bar named ``desc`` when ``progress``.
    """
    check_count(n, start)
    fields = SAMPLE_FIELDS if fields is None else fields
    it = range(n)
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(it, desc=desc, unit="img")
    out: dict[str, np.ndarray] = {}
    for j in it:
        smp = make(start + j)
        for key, attr in fields.items():
            v = np.asarray(getattr(smp, attr))
            if j == 0:
                out[key] = np.empty(
                    (n, *v.shape), dtype=np.int64 if v.dtype.kind in "iu" and v.dtype != np.uint8 else v.dtype
                )
            out[key][j] = v
    return out


def make_arrays(
    n: int, seed: int = 0, size: int = 64, start: int = 0, progress: bool = False
) -> dict[str, np.ndarray]:
    """Make samples ``start .. start + n - 1`` of stream ``seed`` as stacked arrays.

    Returns a dict with ``images`` (n, H, W, 3) uint8, ``labels`` (n,) int64, ``boxes`` (n, 4) int64
    (inclusive ``x0, y0, x1, y1``), ``masks`` (n, H, W) bool, ``parts`` (n, H, W) uint8 and
    ``distractors`` (n, H, W) bool. Row ``j`` is ``make_sample(start + j, seed, size)``. Shows a
    ``tqdm.auto`` progress bar when ``progress`` is True.
    """
    _check_seed(seed)
    _check_size(size)
    return stack_samples(
        lambda i: make_sample(i, seed, size), n, start, desc="procedural shapes", progress=progress
    )


class InMemoryImages:
    """Shared parts of the in-memory procedural sets: ``len``, all images as one tensor, a cache name.

    A subclass sets ``images`` (n, H, W, 3) uint8, ``seed``, ``size``, ``split`` and the class
    attribute ``stream`` (e.g. ``"procedural_scenes(v1"``), the prefix of :meth:`identity` that names
    the generator and its version for feature caches.
    """

    stream: str = "procedural"
    images: np.ndarray
    seed: int
    size: int
    split: str

    def __len__(self) -> int:
        return len(self.images)

    def tensors(self) -> torch.Tensor:
        """All images as one float32 (n, 3, H, W) tensor in [0, 1]."""
        return torch.from_numpy(np.ascontiguousarray(self.images.transpose(0, 3, 1, 2))).float().div_(255.0)

    def identity(self) -> str:
        return f"{self.stream}, n={len(self)}, seed={self.seed}, size={self.size}, split={self.split})"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(n={len(self)}, seed={self.seed}, size={self.size}, split={self.split!r})"
        )


class ProceduralShapes(Dataset):
    """``n`` procedural images of one split, generated once at construction and kept in memory.

    ``split`` selects a disjoint index range of the seed's stream (:data:`SPLIT_OFFSETS`): sample ``i``
    of split ``s`` is ``make_sample(SPLIT_OFFSETS[s] + i, seed, size)``, so the same seed never gives
    the same image in two splits, and a larger ``n`` extends a smaller one (same first images).

    ``dataset[i]`` is ``(image, label)``: a float32 tensor ``(3, H, W)`` in ``[0, 1]`` (after the
    optional ``transform``) and an int. The ground truth is in the numpy attributes ``images``
    (n, H, W, 3) uint8, ``labels`` (n,) int64, ``boxes`` (n, 4) int64 inclusive, ``masks`` (n, H, W)
    bool, ``parts`` (n, H, W) uint8 and ``distractors`` (n, H, W) bool; also ``classes`` (= CLASSES),
    ``part_names`` (= PART_NAMES), ``size``, ``seed``, ``split``.
    """

    def __init__(
        self,
        n: int,
        seed: int = 0,
        size: int = 64,
        split: str = "train",
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        progress: bool = False,
    ) -> None:
        if split not in SPLIT_OFFSETS:
            raise ValueError(f"unknown split {split!r}; expected one of {sorted(SPLIT_OFFSETS)}")
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n <= 0:
            raise ValueError(f"n must be a positive int, got {n!r}")
        if n > _MAX_N:
            raise ValueError(f"n must be <= {_MAX_N} (the splits' index ranges would overlap), got {n}")
        _check_seed(seed)
        _check_size(size)
        arrays = make_arrays(int(n), seed=seed, size=size, start=SPLIT_OFFSETS[split], progress=progress)
        self.images: np.ndarray = arrays["images"]
        self.labels: np.ndarray = arrays["labels"]
        self.boxes: np.ndarray = arrays["boxes"]
        self.masks: np.ndarray = arrays["masks"]
        self.parts: np.ndarray = arrays["parts"]
        self.distractors: np.ndarray = arrays["distractors"]
        self.classes: tuple[str, ...] = CLASSES
        self.part_names: dict[str, tuple[str, ...]] = PART_NAMES
        self.size = int(size)
        self.seed = int(seed)
        self.split = split
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def _index(self, i: int) -> int:
        n = len(self.labels)
        if not -n <= i < n:
            raise IndexError(f"index {i} out of range for {n} samples")
        return int(i) % n

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        i = self._index(i)
        x = torch.from_numpy(np.ascontiguousarray(self.images[i].transpose(2, 0, 1))).float().div_(255.0)
        if self.transform is not None:
            x = self.transform(x)
        return x, int(self.labels[i])

    def sample(self, i: int) -> Sample:
        """The full ground truth of item ``i`` (views into the stored arrays)."""
        i = self._index(i)
        b = self.boxes[i]
        return Sample(
            image=self.images[i],
            label=int(self.labels[i]),
            box=(int(b[0]), int(b[1]), int(b[2]), int(b[3])),
            mask=self.masks[i],
            parts=self.parts[i],
            distractors=self.distractors[i],
        )

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """All images as one float32 tensor ``(n, 3, H, W)`` in ``[0, 1]`` and labels ``(n,)`` int64.

        For full-batch CPU training without a DataLoader; ``transform`` is NOT applied.
        """
        x = torch.from_numpy(np.ascontiguousarray(self.images.transpose(0, 3, 1, 2))).float().div_(255.0)
        return x, torch.from_numpy(self.labels.copy())

    def __repr__(self) -> str:
        return f"ProceduralShapes(n={len(self)}, seed={self.seed}, size={self.size}, split={self.split!r})"
