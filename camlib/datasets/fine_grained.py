"""A procedural FINE-GRAINED dataset: 16 bird species that differ only in two small parts.

The stand-in for CUB-200-2011 in notebook 04's quick profile. Every image holds ONE small bird in a
cluttered scene; every bird has the same body plan (body, head, tail, beak, legs) and the species is
fixed by two SMALL parts only:

- the **crest** on the head (:data:`CRESTS`): ``none``, ``spike`` (one tall spike), ``fan`` (three
  thin spikes) or ``ball`` (a small disc on a stalk);
- the **wing mark** on the body (:data:`WINGS`): ``patch`` (a solid wing), ``stripes`` (three thin
  bars), ``spots`` (three dots) or ``band`` (one bar across the body).

``label = 4 * crest + wing`` (:data:`CLASSES`, e.g. ``"fan/stripes"``). Colours do NOT identify the
species: the body, the parts and the clutter take random colours from the shared palette of
:mod:`camlib.datasets.procedural`, and the bird's size, position, rotation and facing side are random.

What makes it fine-grained, and why crops help (the point of the paper's Table 4):

- the bird is SMALL: its longer side is 22%-34% of the image side (28-44 pixels at the default
  128 x 128), so at a 64 x 64 network input the crest and the wing marks are 1-3 pixels;
- the clutter looks like the discriminative parts: 3-6 DISTRACTORS (discs, triangles, bars, domes,
  squares, petal rings as in ``procedural``, plus striped and spotted patches and lone spikes) are
  drawn around the bird, so features pooled over the whole image mix the bird's marks with the
  clutter's. A crop around the bird (its ground-truth box, or a box found by CAM) shows the parts
  larger and without the clutter.

Ground truth per image: the box (inclusive ``x0, y0, x1, y1``, the tight box of the bird), the bird's
mask, a part map (ids ``1..7`` = :data:`PART_NAMES`) and the distractors' visible pixels.

:func:`make_detection_arrays` makes the generic companion set: scenes with a bird (any species) or
with clutter only, labelled bird / no bird, from a different stream. Notebook 04 trains a small GAP
network on it (image-level labels only) to get CAMs that find birds, as ImageNet training gives
GoogLeNet-GAP in the paper.

Determinism: sample ``i`` is a pure function of ``(seed, i, size)`` (``np.random.default_rng([seed,
i, 7])``); the splits of :class:`FineGrainedBirds` use the disjoint index ranges of
:data:`camlib.datasets.procedural.SPLIT_OFFSETS`. About 3 ms per 128 x 128 sample on one core.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from camlib.datasets import procedural as _P

__all__ = [
    "CLASSES",
    "CRESTS",
    "PART_NAMES",
    "WINGS",
    "BirdSample",
    "FineGrainedBirds",
    "make_bird_arrays",
    "make_bird_sample",
    "make_detection_arrays",
]

CRESTS: tuple[str, ...] = ("none", "spike", "fan", "ball")
WINGS: tuple[str, ...] = ("patch", "stripes", "spots", "band")
#: The 16 species, ``CLASSES[4 * crest + wing] == f"{CRESTS[crest]}/{WINGS[wing]}"``.
CLASSES: tuple[str, ...] = tuple(f"{c}/{w}" for c in CRESTS for w in WINGS)
#: Part ids 1..7 of :attr:`BirdSample.parts` (0 = not the bird). ``crest`` is absent for ``none``.
PART_NAMES: tuple[str, ...] = ("body", "head", "tail", "beak", "legs", "crest", "wing")
#: Distractor kinds: the procedural set's lone shapes plus clutter that mimics the species' parts.
DISTRACTOR_KINDS: tuple[str, ...] = (*_P.DISTRACTOR_KINDS, "stripes", "spots", "spike")

_ASPECT = 0.62  # height / width of the bird's layout box (before the crest)


@dataclass(frozen=True, eq=False)
class BirdSample:
    """One image with its ground truth (the fields of :class:`camlib.datasets.procedural.Sample`).

    ``image`` (H, W, 3) uint8; ``label`` in ``0..15``; ``box`` inclusive ``(x0, y0, x1, y1)``, tight
    around ``mask``; ``parts`` (H, W) uint8 part ids (:data:`PART_NAMES`); ``distractors`` (H, W) bool.
    """

    image: np.ndarray
    label: int
    box: tuple[int, int, int, int]
    mask: np.ndarray
    parts: np.ndarray
    distractors: np.ndarray

    @property
    def class_name(self) -> str:
        return CLASSES[self.label]

    @property
    def crest(self) -> str:
        return CRESTS[self.label // len(WINGS)]

    @property
    def wing(self) -> str:
        return WINGS[self.label % len(WINGS)]


# ------------------------------------------------------------------------------------------------
# Drawing in the local frame of procedural._Frame: u right (the bird faces +u), v down.
# ------------------------------------------------------------------------------------------------


def _wedge(f: _P._Frame, u0: float, u1: float, v0: float, hw0: float, hw1: float) -> np.ndarray:
    """A horizontal trapezoid: ``u0 <= u <= u1``, half height ``hw0`` at u0 growing to ``hw1`` at u1."""
    t = (f.u - u0) / (u1 - u0)
    return (t >= 0) & (t <= 1) & (np.abs(f.v - v0) <= hw0 + (hw1 - hw0) * t)


def _spike(f: _P._Frame, cu: float, v_base: float, height: float, half_w: float, lean: float) -> np.ndarray:
    """A thin upward triangle with its base centred at ``(cu, v_base)``, leaning ``lean`` in u at the tip."""
    t = (v_base - f.v) / height  # 0 at the base, 1 at the tip
    centre = cu + lean * t
    return (t >= 0) & (t <= 1) & (np.abs(f.u - centre) <= half_w * (1.0 - t) + 0.5 * f.px)


def _bird(f: _P._Frame, rng: np.random.Generator, crest: int, wing: int) -> list[tuple[int, np.ndarray]]:
    """The parts (id, mask) of one bird in draw order, in the layout box u in [-1/2, 1/2]."""
    a = _ASPECT
    px = f.px
    bc_u, bc_v = -0.04, 0.06 * a  # body centre
    bru, brv = rng.uniform(0.27, 0.31), rng.uniform(0.17, 0.2)
    body = f.ellipse(bc_u, bc_v, bru, brv)
    hr = max(rng.uniform(0.1, 0.12), 2.0 * px)
    hu, hv = bc_u + bru * 0.92, bc_v - brv - 0.2 * hr
    head = f.ellipse(hu, hv, hr, hr)
    tail = _wedge(f, -0.5, bc_u - 0.8 * bru, bc_v - 0.02, rng.uniform(0.07, 0.1), 0.04)
    beak_len = max(rng.uniform(0.08, 0.11), 2.0 * px)
    beak = _wedge(f, hu + 0.8 * hr + beak_len, hu + 0.8 * hr, hv + 0.02, 0.0, max(0.035, 0.8 * px))
    leg_w = max(0.012, 0.5 * px)
    leg_top, leg_bot = bc_v + 0.8 * brv, a / 2
    legs = f.rect(bc_u - 0.08 - leg_w, bc_u - 0.08 + leg_w, leg_top, leg_bot) | f.rect(
        bc_u + 0.06 - leg_w, bc_u + 0.06 + leg_w, leg_top, leg_bot
    )
    layers = [(5, legs), (3, tail), (1, body), (2, head), (4, beak)]

    # the crest: small, on top of the head
    top = hv - hr * 0.85
    ch = max(rng.uniform(0.13, 0.16), 3.0 * px)  # crest height
    cw = max(0.035, 0.9 * px)  # half width of a spike at its base
    if CRESTS[crest] == "spike":
        layers.append((6, _spike(f, hu, top + 0.02, ch * 1.15, cw * 1.2, -0.03)))
    elif CRESTS[crest] == "fan":
        fan = np.zeros_like(body)
        for k, lean in enumerate((-0.08, 0.0, 0.08)):
            fan |= _spike(f, hu + (k - 1) * 0.045, top + 0.02, ch, max(0.022, 0.7 * px), lean)
        layers.append((6, fan))
    elif CRESTS[crest] == "ball":
        r = max(0.05, 1.3 * px)
        stalk = f.rect(hu - 0.5 * cw, hu + 0.5 * cw, top - ch + 1.6 * r, top + 0.02)
        layers.append((6, stalk | f.ellipse(hu, top - ch + r, r, r)))

    # the wing mark: on the body, inside the wing ellipse
    wu, wv, wru, wrv = bc_u - 0.02, bc_v + 0.01, 0.8 * bru, 0.62 * brv
    wing_area = f.ellipse(wu, wv, wru, wrv)
    name = WINGS[wing]
    if name == "patch":
        mark = wing_area
    elif name == "stripes":
        sw = max(0.022, 0.55 * px)
        du = f.u - wu + 0.6 * (f.v - wv)  # slanted stripes
        mark = wing_area & ((np.abs(du) <= sw) | (np.abs(np.abs(du) - 0.11) <= sw))
    elif name == "spots":
        r = max(0.045, 1.1 * px)
        mark = np.zeros_like(body)
        for du in (-0.13, 0.0, 0.13):
            mark |= f.ellipse(wu + du, wv, r, r)
    else:  # band: one bar across the whole body
        bw = max(0.045, 1.0 * px)
        mark = body & (np.abs(f.u - (bc_u + 0.05)) <= bw)
    layers.append((7, mark))
    return layers


def _pattern_distractor(f: _P._Frame, kind: str, rng: np.random.Generator) -> np.ndarray:
    """Clutter that looks like a species' part, in the unit box [-1/2, 1/2]^2."""
    if kind == "stripes":
        sw = max(0.06, 0.6 * f.px)
        period = rng.uniform(0.25, 0.35)
        phase = np.mod(f.u + 0.5 * f.v, period)
        return (np.abs(f.u) <= 0.45) & (np.abs(f.v) <= 0.3) & (phase <= 2 * sw)
    if kind == "spots":
        r = max(0.09, 1.1 * f.px)
        out = np.zeros(f.u.shape, bool)
        for cu, cv in ((-0.3, -0.15), (0.0, 0.15), (0.3, -0.1)):
            out |= f.ellipse(cu, cv, r, r)
        return out
    if kind == "spike":
        return _spike(f, 0.0, 0.45, 0.9, max(0.1, 0.9 * f.px), rng.uniform(-0.2, 0.2))
    return _P._distractor(f, kind, rng)


# ------------------------------------------------------------------------------------------------
# Public API
# ------------------------------------------------------------------------------------------------


def make_bird_sample(index: int, seed: int = 0, size: int = 128, bird: bool = True) -> BirdSample:
    """Sample ``index`` of stream ``seed`` at ``size x size`` (a pure function; species uniform at random).

    ``bird=False`` draws the same scene WITHOUT the bird (clutter only): ``label`` -1, ``box``
    (-1, -1, -1, -1), empty ``mask`` and ``parts`` (the negatives of :func:`make_detection_arrays`).
    """
    if not isinstance(index, (int, np.integer)) or isinstance(index, bool) or index < 0:
        raise ValueError(f"index must be a non-negative int, got {index!r}")
    _P._check_seed(seed)
    _P._check_size(size)
    if size < 64:
        raise ValueError(f"size must be >= 64 for birds with visible parts, got {size}")
    rng = np.random.default_rng([int(seed), int(index), 7])
    label = int(rng.integers(len(CLASSES)))
    crest, wing = divmod(label, len(WINGS))

    # geometry: width 22-34% of the side, rotation up to 15 degrees, facing left or right
    width = rng.uniform(0.22, 0.34) * size
    theta = math.radians(rng.uniform(-15.0, 15.0))
    flip = rng.random() < 0.5
    c, s = abs(math.cos(theta)), abs(math.sin(theta))
    h = width * (_ASPECT + 0.3)  # the crest reaches above the layout box
    ex, ey = 0.5 * (c * width + s * h), 0.5 * (s * width + c * h)
    cx = rng.uniform(ex + 2.0, size - 3.0 - ex)
    cy = rng.uniform(ey + 2.0, size - 3.0 - ey)
    frame = _P._Frame(size, cx, cy, max(ex, ey) + 2.0, theta, width, width)
    if flip:
        frame.u = -frame.u
    layers = _bird(frame, rng, crest, wing)

    parts = np.zeros((size, size), dtype=np.uint8)
    pwin = parts[frame.win]
    for pid, m in layers:
        pwin[m] = pid
    mask = parts > 0
    ys = np.flatnonzero(mask.any(axis=1))
    xs = np.flatnonzero(mask.any(axis=0))
    box = (int(xs[0]), int(ys[0]), int(xs[-1]), int(ys[-1]))
    if not bird:
        parts[:] = 0
        mask = np.zeros_like(mask)
        pwin = parts[frame.win]

    img, c0, c1 = _P._background(rng, size)
    bg_dist = _P._segment_distance(_P.PALETTE, c0, c1)

    # distractors: 3-6, each overlapping the bird's box by at most ~10% of its own area
    distractors = np.zeros((size, size), dtype=bool)
    bx0, by0, bx1, by1 = box[0] - 1, box[1] - 1, box[2] + 1, box[3] + 1
    for _ in range(int(rng.integers(3, 7))):
        kind = DISTRACTOR_KINDS[int(rng.integers(len(DISTRACTOR_KINDS)))]
        d = rng.uniform(0.07, 0.16) * size
        half = 0.5 * d * math.sqrt(2.0)
        for _try in range(10):
            dx = rng.uniform(half, size - 1 - half)
            dy = rng.uniform(half, size - 1 - half)
            ox = max(0.0, min(dx + half, bx1) - max(dx - half, bx0))
            oy = max(0.0, min(dy + half, by1) - max(dy - half, by0))
            if ox * oy <= 0.1 * (2 * half) ** 2:
                break
        else:
            continue
        f = _P._Frame(size, dx, dy, half + 1.0, rng.uniform(0, 2 * math.pi), d, d)
        m = _pattern_distractor(f, kind, rng)
        col = _P._pick_colour(rng, bg_dist, [], ())
        for ch in range(3):
            img[ch][f.win][m] = col[ch]
        distractors[f.win] |= m
    distractors &= ~mask

    # the bird: body, head and tail share one colour; beak+legs one; crest and wing mark contrast
    owin = [img[ch][frame.win] for ch in range(3)]
    body_col = _P._pick_colour(rng, bg_dist, [], ())
    beak_col = _P._pick_colour(rng, bg_dist, [body_col], ())
    mark_col = _P._pick_colour(rng, bg_dist, [body_col], ())
    crest_col = _P._pick_colour(rng, bg_dist, [body_col], ())
    colours = {
        1: body_col,
        2: body_col,
        3: body_col * 0.85,
        4: beak_col,
        5: beak_col,
        6: crest_col,
        7: mark_col,
    }
    shade = 1.08 - 0.16 * (frame.v / _ASPECT + 0.5)
    for pid in np.unique(pwin[pwin > 0]):
        m = pwin == pid
        sm = shade[m]
        for ch in range(3):
            owin[ch][m] = colours[int(pid)][ch] * sm

    noise = np.frombuffer(rng.bytes(3 * size * size), dtype=np.int8).reshape(3, size, size)
    img += noise * np.float32(8.0 / 128.0)
    image = np.ascontiguousarray(np.clip(img, 0, 255).astype(np.uint8).transpose(1, 2, 0))
    if not bird:
        label, box = -1, (-1, -1, -1, -1)
    return BirdSample(image=image, label=label, box=box, mask=mask, parts=parts, distractors=distractors)


def make_bird_arrays(
    n: int, seed: int = 0, size: int = 128, start: int = 0, progress: bool = False, birds=True
) -> dict[str, np.ndarray]:
    """Samples ``start .. start + n - 1`` stacked: ``images`` (n, H, W, 3) uint8, ``labels`` (n,),
    ``boxes`` (n, 4) inclusive, ``masks`` (n, H, W) bool, ``parts`` (n, H, W) uint8, ``distractors``.
    ``birds``: True, or a boolean array (n,) saying which samples hold a bird (see ``bird=``)."""
    _P.check_count(n, start)
    with_bird = np.broadcast_to(np.asarray(birds, dtype=bool), (n,))
    return _P.stack_samples(
        lambda i: make_bird_sample(i, seed, size, bird=bool(with_bird[i - start])),
        n,
        start,
        desc="fine-grained birds",
        progress=progress,
    )


def make_detection_arrays(
    n: int, seed: int = 0, size: int = 128, split: str = "train"
) -> dict[str, np.ndarray]:
    """A generic "is there a bird?" set: sample ``j`` holds a bird when ``j`` is odd, clutter only when even.

    ``labels`` are 1 (bird) / 0 (no bird); ``species`` the bird's species (-1 without one). The scenes
    come from stream ``seed + 1_000_003`` (never the species sets' images). This is the quick profile's
    stand-in for ImageNet pre-training: a network that learns *what a bird looks like* from image-level
    labels only, whose CAM then finds the birds of the fine-grained set.
    """
    if split not in _P.SPLIT_OFFSETS:
        raise ValueError(f"unknown split {split!r}; expected one of {sorted(_P.SPLIT_OFFSETS)}")
    birds = np.arange(n) % 2 == 1
    out = make_bird_arrays(n, seed=seed + 1_000_003, size=size, start=_P.SPLIT_OFFSETS[split], birds=birds)
    out["species"] = out["labels"]
    out["labels"] = birds.astype(np.int64)
    return out


class FineGrainedBirds(Dataset):
    """``n`` birds of one split, generated at construction and kept in memory.

    Sample ``i`` of split ``s`` is ``make_bird_sample(SPLIT_OFFSETS[s] + i, seed, size)``. Items are
    ``(image, label)`` with the image a float32 ``(3, size, size)`` tensor in [0, 1] (after the optional
    ``transform``). Ground truth: numpy attributes ``images``, ``labels``, ``boxes`` (inclusive),
    ``masks``, ``parts``, ``distractors``; ``classes`` (= :data:`CLASSES`), ``part_names``, ``size``,
    ``seed``, ``split``; :meth:`identity` names the set for feature caches.
    """

    def __init__(
        self,
        n: int,
        seed: int = 0,
        size: int = 128,
        split: str = "train",
        transform=None,
        progress: bool = False,
    ) -> None:
        if split not in _P.SPLIT_OFFSETS:
            raise ValueError(f"unknown split {split!r}; expected one of {sorted(_P.SPLIT_OFFSETS)}")
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or not 0 < n <= _P._MAX_N:
            raise ValueError(f"n must be a positive int <= {_P._MAX_N}, got {n!r}")
        arrays = make_bird_arrays(
            int(n), seed=seed, size=size, start=_P.SPLIT_OFFSETS[split], progress=progress
        )
        self.images: np.ndarray = arrays["images"]
        self.labels: np.ndarray = arrays["labels"]
        self.boxes: np.ndarray = arrays["boxes"]
        self.masks: np.ndarray = arrays["masks"]
        self.parts: np.ndarray = arrays["parts"]
        self.distractors: np.ndarray = arrays["distractors"]
        self.classes, self.part_names = CLASSES, PART_NAMES
        self.size, self.seed, self.split = int(size), int(seed), split
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        n = len(self.labels)
        if not -n <= i < n:
            raise IndexError(f"index {i} out of range for {n} samples")
        x = torch.from_numpy(np.ascontiguousarray(self.images[i].transpose(2, 0, 1))).float().div_(255.0)
        if self.transform is not None:
            x = self.transform(x)
        return x, int(self.labels[i])

    def sample(self, i: int) -> BirdSample:
        b = self.boxes[i]
        return BirdSample(
            self.images[i],
            int(self.labels[i]),
            (int(b[0]), int(b[1]), int(b[2]), int(b[3])),
            self.masks[i],
            self.parts[i],
            self.distractors[i],
        )

    def identity(self) -> str:
        """A string naming exactly these images (for feature cache keys)."""
        return (
            f"fine_grained_birds(v1, n={len(self)}, seed={self.seed}, size={self.size}, split={self.split})"
        )

    def __repr__(self) -> str:
        return f"FineGrainedBirds(n={len(self)}, seed={self.seed}, size={self.size}, split={self.split!r})"
