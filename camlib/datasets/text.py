"""Images with and without rendered TEXT, with exact text boxes (paper section 4.2, Figure 11).

The stand-in for the paper's weakly supervised text detector data (350 Google StreetView images with
text from SVT as positives, SUN outdoor images as negatives). Images come in PAIRS that share one
background: sample ``2j`` is the background alone (label 0), sample ``2j + 1`` the same background
with one line of text (label 1). A classifier can only tell them apart by the text itself, so its CAM
has nothing else to point at.

- **Backgrounds** (:data:`BACKGROUNDS`): a crop of a photo that ships with scikit-image (cat, coffee,
  astronaut, rocket, brick, grass, gravel), rescaled; or a procedural texture (a colour gradient with
  stripes, a checkerboard, bricks or smooth blobs). Half of the backgrounds carry a plain sign plate
  and all carry 0-2 lone shapes of :mod:`camlib.datasets.procedural`, in BOTH images of the pair.
- **Text**: one or two words of :data:`WORDS` (street-sign words), upper case or capitalised,
  rendered with the DejaVu Sans font that ships with matplotlib (``matplotlib.font_manager.findfont``
  + ``PIL.ImageFont``), regular or bold, its height 11-20% of the image side, in a colour that
  contrasts with the background under it, on the plate when there is one.
- **Ground truth**: ``mask`` = every pixel a glyph touches (antialiasing included: coverage > 0) and
  ``box`` = the tight inclusive box of that mask (:func:`camlib.core.boxes.box_of_mask`), so the box covers
  every rendered glyph pixel by construction; the text image differs from its background only there.

Sample ``i`` is a pure function of ``(seed, i, size)``; splits use the index ranges of
:data:`camlib.datasets.procedural.SPLIT_OFFSETS` (even offsets, so pairs never straddle splits).

Paper profile: :func:`read_svt` reads the SVT XML (``svt1/train.xml``, ``test.xml``; the archive is
``REGISTRY["svt"]`` of :mod:`camlib.datasets.download`) and :func:`camlib.datasets.files.list_images` the negatives folder.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from camlib.core.boxes import NO_BOX, box_of_mask
from camlib.datasets import procedural as _P
from camlib.datasets.files import list_images  # the negatives folder of the paper profile

__all__ = [
    "BACKGROUNDS",
    "PHOTO_NAMES",
    "SVT_LAYOUT",
    "WORDS",
    "SVTImage",
    "TextImages",
    "TextSample",
    "font_path",
    "list_images",
    "make_text_arrays",
    "make_text_sample",
    "read_svt",
    "render_text_mask",
]

WORDS: tuple[str, ...] = (
    "open", "cafe", "hotel", "bank", "pizza", "market", "stop", "exit", "park", "bar", "shop", "books",
    "bakery", "taxi", "sale", "pharmacy", "garage", "deli", "motel", "parking", "library", "theatre",
)  # fmt: skip
PHOTO_NAMES: tuple[str, ...] = ("chelsea", "coffee", "astronaut", "rocket", "brick", "grass", "gravel")
TEXTURES: tuple[str, ...] = ("stripes", "checker", "bricks", "blobs")
BACKGROUNDS: tuple[str, ...] = tuple(f"photo:{p}" for p in PHOTO_NAMES) + tuple(
    f"texture:{t}" for t in TEXTURES
)
_SEED_TAG = 11  # distinguishes this generator's random streams from the others'


def font_path(bold: bool = False) -> str:
    """Path of matplotlib's DejaVu Sans (Bold) TrueType font (ships with matplotlib; never a fallback)."""
    from matplotlib import font_manager

    prop = font_manager.FontProperties(family="DejaVu Sans", weight="bold" if bold else "normal")
    return font_manager.findfont(prop, fallback_to_default=False)


@lru_cache(maxsize=64)
def _font(px: int, bold: bool):
    from PIL import ImageFont

    return ImageFont.truetype(font_path(bold), px)


def render_text_mask(text: str, px: int, bold: bool = False) -> np.ndarray:
    """The glyph coverage (h, w) uint8 (0 = untouched, 255 = fully inside a glyph) of ``text`` at a font
    size of ``px`` pixels, cropped to the pixels any glyph touches."""
    from PIL import Image, ImageDraw

    font = _font(int(px), bool(bold))
    x0, y0, x1, y1 = font.getbbox(text)
    canvas = Image.new("L", (x1 - x0 + 4, y1 - y0 + 4), 0)
    ImageDraw.Draw(canvas).text((2 - x0, 2 - y0), text, fill=255, font=font)
    a = np.asarray(canvas)
    b = box_of_mask(a > 0)
    if b[0] < 0:
        raise ValueError(f"{text!r} rendered no pixel at {px} px")
    return np.ascontiguousarray(a[b[1] : b[3] + 1, b[0] : b[2] + 1])


@lru_cache(maxsize=len(PHOTO_NAMES))
def _photo(name: str) -> np.ndarray:
    from camlib.datasets.photos import load_photo

    return load_photo(name)


def _resize(img: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(img).resize((size, size), Image.BILINEAR), dtype=np.float32)


def _texture(kind: str, rng: np.random.Generator, size: int) -> np.ndarray:
    """A procedural (size, size, 3) float texture in 0-255."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    c0 = rng.uniform(30, 225, 3).astype(np.float32)
    c1 = np.clip(c0 + rng.normal(0, 70, 3), 0, 255).astype(np.float32)
    if kind == "stripes":
        ang = rng.uniform(0, math.pi)
        t = 0.5 + 0.5 * np.sin(2 * math.pi * rng.uniform(3, 9) * (np.cos(ang) * xx + np.sin(ang) * yy))
    elif kind == "checker":
        n = rng.uniform(3, 8)
        t = ((np.floor(xx * n) + np.floor(yy * n)) % 2).astype(np.float32)
    elif kind == "bricks":
        rows = rng.uniform(5, 10)
        r = np.floor(yy * rows)
        u = xx * rows / 2 + 0.5 * (r % 2)
        t = ((np.abs(yy * rows - r - 0.5) < 0.4) & (np.abs(u - np.floor(u) - 0.5) < 0.45)).astype(np.float32)
    else:  # blobs: smooth noise
        _, _, up = _P._grids(size)
        t = up @ rng.standard_normal((5, 5)).astype(np.float32) @ up.T
        t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    return c0 + (c1 - c0) * t[..., None]


def _background(rng: np.random.Generator, size: int) -> tuple[np.ndarray, str]:
    kind = BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
    family, name = kind.split(":")
    if family == "photo":
        photo = _photo(name)
        H, W = photo.shape[:2]
        side = int(rng.uniform(0.35, 0.9) * min(H, W))
        y0, x0 = int(rng.integers(0, H - side + 1)), int(rng.integers(0, W - side + 1))
        img = _resize(photo[y0 : y0 + side, x0 : x0 + side], size)
    else:
        img = _texture(name, rng, size)
    return np.ascontiguousarray(img), kind


@dataclass(frozen=True, eq=False)
class TextSample:
    """``image`` (H, W, 3) uint8; ``label`` 1 with text, 0 without; ``box`` inclusive (x0, y0, x1, y1)
    of the glyph pixels (NO_BOX without text); ``mask`` (H, W) bool glyph pixels; ``text`` (or "");
    ``background`` the background kind (:data:`BACKGROUNDS`)."""

    image: np.ndarray
    label: int
    box: np.ndarray
    mask: np.ndarray
    text: str
    background: str


def _pick_text(rng: np.random.Generator) -> tuple[str, bool]:
    words = [WORDS[int(rng.integers(len(WORDS)))] for _ in range(1 + int(rng.random() < 0.35))]
    text = " ".join(words)
    text = text.upper() if rng.random() < 0.6 else text.title()
    return text, bool(rng.random() < 0.5)


def make_text_sample(index: int, seed: int = 0, size: int = 160) -> TextSample:
    """Sample ``index``: the background of pair ``index // 2``, with text when ``index`` is odd."""
    if not isinstance(index, (int, np.integer)) or isinstance(index, bool) or index < 0:
        raise ValueError(f"index must be a non-negative int, got {index!r}")
    _P._check_seed(seed)
    _P._check_size(size)
    if size < 64:
        raise ValueError(f"size must be >= 64 for readable text, got {size}")
    pair, with_text = divmod(int(index), 2)
    rng = np.random.default_rng([int(seed), pair, _SEED_TAG])
    img, kind = _background(rng, size)

    # the text's geometry comes first (the plate is drawn around where it will go)
    text, bold = _pick_text(rng)
    px = int(rng.uniform(0.11, 0.2) * size / 0.72)  # cap height is ~72% of the font size
    glyphs = render_text_mask(text, px, bold)
    while glyphs.shape[1] > 0.9 * size and px > 8:
        px = int(px * 0.85)
        glyphs = render_text_mask(text, px, bold)
    h, w = glyphs.shape
    x0 = int(rng.integers(1, size - w)) if size - w > 1 else 0
    y0 = int(rng.integers(1, size - h)) if size - h > 1 else 0

    # plate and lone shapes: part of the background, present in both images of the pair
    if rng.random() < 0.5:
        m = max(3, int(0.25 * h))
        plate = rng.uniform(20, 235, 3).astype(np.float32)
        img[max(0, y0 - m) : y0 + h + m, max(0, x0 - m) : x0 + w + m] = plate
    bg_dist = _P._segment_distance(_P.PALETTE, img.reshape(-1, 3).min(0), img.reshape(-1, 3).max(0))
    for _ in range(int(rng.integers(0, 3))):
        d = rng.uniform(0.12, 0.25) * size
        cx, cy = rng.uniform(d / 2, size - d / 2, 2)
        f = _P._Frame(size, cx, cy, 0.75 * d, rng.uniform(0, 2 * math.pi), d, d)
        kind_shape = _P.DISTRACTOR_KINDS[int(rng.integers(len(_P.DISTRACTOR_KINDS)))]
        shape = _P._distractor(f, kind_shape, rng)
        img[f.win][shape] = _P._pick_colour(rng, bg_dist, [], ())
    noise = rng.integers(-8, 9, size=(size, size, 3)).astype(np.float32)
    img = img + noise

    mask = np.zeros((size, size), dtype=bool)
    box = NO_BOX.copy()
    trng = np.random.default_rng([int(seed), pair, _SEED_TAG, 1])
    if with_text:
        alpha = glyphs.astype(np.float32)[..., None] / 255.0
        region = img[y0 : y0 + h, x0 : x0 + w]
        local = region.reshape(-1, 3).mean(0)
        colour = np.where(local.mean() > 128, trng.uniform(0, 60, 3), trng.uniform(195, 255, 3)).astype(
            np.float32
        )
        if trng.random() < 0.4:  # a palette colour far from the local background, when there is one
            far = np.linalg.norm(_P.PALETTE - local, axis=1) > 150
            if far.any():
                colour = _P.PALETTE[trng.choice(np.flatnonzero(far))]
        ink = colour + trng.integers(-8, 9, size=(h, w, 3)).astype(np.float32)
        img[y0 : y0 + h, x0 : x0 + w] = region * (1 - alpha) + ink * alpha
        mask[y0 : y0 + h, x0 : x0 + w] = glyphs > 0
        box = box_of_mask(mask)
    image = np.clip(np.round(img), 0, 255).astype(np.uint8)
    return TextSample(image, int(with_text), box, mask, text if with_text else "", kind)


def make_text_arrays(n: int, seed: int = 0, size: int = 160, start: int = 0, progress: bool = False) -> dict:
    """Samples ``start .. start + n - 1``: ``images`` (n, H, W, 3) uint8, ``labels`` (n,), ``boxes``
    (n, 4) inclusive (-1 rows without text) and ``masks`` (n, H, W) bool."""
    return _P.stack_samples(
        lambda i: make_text_sample(i, seed, size),
        n,
        start,
        desc="text images",
        progress=progress,
        fields={"images": "image", "labels": "label", "boxes": "box", "masks": "mask"},
    )


class TextImages(_P.InMemoryImages):
    """``n`` text / no-text images of one split (``n`` even: whole pairs), generated once, in memory.

    Arrays ``images``, ``labels``, ``boxes``, ``masks`` (see :func:`make_text_arrays`); :meth:`tensors`
    gives float (n, 3, H, W) images in [0, 1]; :meth:`identity` names the set for feature caches.
    """

    stream = "procedural_text(v1"

    def __init__(
        self, n: int, seed: int = 0, size: int = 160, split: str = "train", progress: bool = False
    ) -> None:
        if split not in _P.SPLIT_OFFSETS:
            raise ValueError(f"unknown split {split!r}; expected one of {sorted(_P.SPLIT_OFFSETS)}")
        if not isinstance(n, (int, np.integer)) or n <= 0 or n % 2:
            raise ValueError(f"n must be a positive even int (pairs of images), got {n!r}")
        a = make_text_arrays(int(n), seed=seed, size=size, start=_P.SPLIT_OFFSETS[split], progress=progress)
        self.images, self.labels, self.boxes, self.masks = a["images"], a["labels"], a["boxes"], a["masks"]
        self.size, self.seed, self.split = int(size), int(seed), split


# --------------------------------------------------------------------------- SVT (paper profile)

SVT_LAYOUT = """<SVT_ROOT>/svt1/
  train.xml, test.xml     <tagset><image><imageName>img/14_03.jpg</imageName> ... <Resolution x=".." y=".."/>
                          <taggedRectangles><taggedRectangle x=".." y=".." width=".." height=".."><tag>WORD</tag>
  img/*.jpg               (350 images: 100 train, 250 test)
(the archive svt.zip of camlib.datasets.download.REGISTRY["svt"] extracts to this layout)"""


@dataclass
class SVTImage:
    """One SVT image: ``path``, ``size`` (H, W) from the XML (None if absent), word ``boxes`` (k, 4)
    inclusive pixel boxes clipped to the image, and the ``words``."""

    path: Path
    size: tuple[int, int] | None
    boxes: np.ndarray
    words: list[str]


def read_svt(xml_path: str | Path) -> list[SVTImage]:
    """Parse an SVT annotation file (``train.xml`` / ``test.xml``); image paths are resolved against the
    XML's folder. A rectangle ``x, y, width, height`` becomes the inclusive box
    ``(x, y, x + width - 1, y + height - 1)``, clipped to the image when its resolution is given."""
    xml_path = Path(xml_path)
    if not xml_path.is_file():
        raise FileNotFoundError(f"{xml_path} not found. Expected the SVT layout:\n{SVT_LAYOUT}")
    out = []
    for image in ET.parse(xml_path).getroot().iter("image"):
        name = (image.findtext("imageName") or "").strip()
        res = image.find("Resolution")
        size = (
            (int(float(res.get("y"))), int(float(res.get("x")))) if res is not None and res.get("x") else None
        )
        boxes, words = [], []
        for rect in image.iter("taggedRectangle"):
            x, y = float(rect.get("x")), float(rect.get("y"))
            w, h = float(rect.get("width")), float(rect.get("height"))
            b = [round(x), round(y), round(x + w) - 1, round(y + h) - 1]
            if size is not None:
                b = [
                    min(max(b[0], 0), size[1] - 1),
                    min(max(b[1], 0), size[0] - 1),
                    min(max(b[2], 0), size[1] - 1),
                    min(max(b[3], 0), size[0] - 1),
                ]
            boxes.append(b)
            words.append((rect.findtext("tag") or "").strip())
        out.append(
            SVTImage(xml_path.parent / name, size, np.asarray(boxes, dtype=np.int64).reshape(-1, 4), words)
        )
    return out
