"""Procedural images with generated CAPTIONS and known concept boxes (paper section 4.2, Figure 10).

The stand-in for the paper's "concept localization in weakly labeled images": image-caption pairs
from the web, where a short phrase of a caption ("mirror in lake", "view out of window") names a
concept more abstract than an object, and a detector trained from captions alone localizes it.

Each image is a procedural scene of :mod:`camlib.datasets.scenes` (sky, ground and objects drawn
with a random scene's statistics) in which each of three CONCEPTS (:data:`CONCEPTS`) appears with
probability 0.25, or else its CONFUSER with probability 0.2:

``mirror in lake``
    a lake (an ellipse on the ground) with an object standing at its far shore and that object's
    reflection, mirrored and tinted, inside the lake. Confuser: the same lake and object WITHOUT the
    reflection ("a tree beside a still pond").
``view out of window``
    a window frame with a cross of mullions, showing a small landscape (sky, ground, a hill).
    Confuser: the same frame filled with one flat colour ("a blank board").
``flower in pot``
    a flower of :mod:`camlib.datasets.procedural` growing out of a pot. Confuser: the pot alone
    ("an empty vase").

The caption lists the scene and its objects, then one clause per concept or confuser, e.g.
``"a garden scene with a flower and a cloud; mirror in lake below a house; an empty vase"``. Only
the positive clauses hold the concept's phrase; the confusers' clauses share none of its content
words (:data:`STOPWORDS` aside), so in the paper's protocol ("negatives: random images without the
phrase's words") they are negatives, and hard ones: they differ from a positive only in the concept
itself. ``concept_boxes[i, c]`` is the tight inclusive box of concept ``c`` (the lake, the window
frame, the pot and its flower; ``-1`` when absent), ``confuser_boxes`` likewise.

Sample ``i`` is a pure function of ``(seed, i, size)``; splits use
:data:`camlib.datasets.procedural.SPLIT_OFFSETS`. Paper profile: :func:`load_caption_folder` reads
an image-caption folder (a ``captions.tsv`` / ``captions.txt`` list or COCO ``captions_*.json``).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from camlib.core.boxes import NO_BOX, box_of_mask
from camlib.datasets import procedural as _P
from camlib.datasets import scenes as _S

__all__ = [
    "CAPTION_LAYOUT",
    "CONCEPTS",
    "CONFUSERS",
    "STOPWORDS",
    "CaptionImages",
    "CaptionSample",
    "caption_words",
    "has_phrase",
    "load_caption_folder",
    "make_caption_arrays",
    "make_caption_sample",
    "phrase_split",
]

CONCEPTS: tuple[str, ...] = ("mirror in lake", "view out of window", "flower in pot")
#: What each confuser is called in captions (no content word of its concept).
CONFUSERS: tuple[str, ...] = ("still pond", "blank board", "empty vase")
STOPWORDS: frozenset[str] = frozenset(
    {"a", "an", "the", "in", "of", "out", "on", "with", "and", "at", "to", "from", "by", "its", "is", "are"}
)
P_CONCEPT, P_CONFUSER = 0.25, 0.2
_SEED_TAG = 5151


def caption_words(text: str) -> list[str]:
    """Lower-case words (letters and digits) of a caption."""
    return re.findall(r"[a-z0-9]+", text.lower())


def has_phrase(caption: str, phrase: str) -> bool:
    """True when the words of ``phrase`` occur consecutively in ``caption`` (case and punctuation ignored)."""
    c, p = caption_words(caption), caption_words(phrase)
    return any(c[i : i + len(p)] == p for i in range(len(c) - len(p) + 1)) if p else False


def phrase_split(
    captions: Sequence[str], phrase: str, stopwords: frozenset[str] = STOPWORDS
) -> tuple[np.ndarray, np.ndarray]:
    """The paper's weak labels for ``phrase``: ``(positives, negatives)`` index arrays.

    Positives: captions holding the phrase. Negatives: captions holding NONE of the phrase's content
    words (its words minus ``stopwords``), e.g. for "mirror in lake" no "mirror" and no "lake".
    Captions with some of the words but not the phrase are in neither.
    """
    content = set(caption_words(phrase)) - stopwords
    if not content:
        raise ValueError(f"phrase {phrase!r} has no content word")
    pos = [i for i, c in enumerate(captions) if has_phrase(c, phrase)]
    neg = [i for i, c in enumerate(captions) if not content & set(caption_words(c))]
    return np.asarray(pos, dtype=np.int64), np.asarray(neg, dtype=np.int64)


# --------------------------------------------------------------------------- drawing the concepts


def _lake(canvas: _S._Canvas, reflect: bool) -> tuple[np.ndarray, str] | None:
    """A lake with an object on its far shore (and its reflection when ``reflect``) -> (lake box, object)."""
    rng, S, hz = canvas.rng, canvas.size, canvas.horizon
    for _ in range(12):
        lw, lh = rng.uniform(0.4, 0.55) * S, rng.uniform(0.19, 0.26) * S
        shore = rng.uniform(hz + 0.06 * S, max(hz + 0.06 * S, S - lh - 2))
        cx = rng.uniform(lw / 2 + 1, S - 1 - lw / 2)
        kind = ("tree", "house", "snowman", "tent")[int(rng.integers(4))]
        aspect, draw = _S._SHAPES[kind]
        w = rng.uniform(0.2, 0.27) * S / max(1.0, aspect)
        cy = shore - w * aspect / 2
        whole = (min(cx - w / 2, cx - lw / 2), cy - w * aspect / 2, max(cx + w / 2, cx + lw / 2), shore + lh)
        if whole[1] >= 0 and canvas.free(whole, 0.05):
            break
    else:
        return None
    canvas.placed.append(whole)
    water = (
        _P.PALETTE[_P._P["blue"] if rng.random() < 0.5 else _P._P["teal"]] * rng.uniform(0.8, 1.1)
    ).astype(np.float32)
    lf = _P._Frame(S, cx, shore + lh / 2, 0.5 * math.hypot(lw, lh) + 2, 0.0, lw, lw)
    lake = lf.ellipse(0.0, 0.0, 0.5, 0.5 * lh / lw)
    canvas.draw("lake", lf, [(1, lake)], {1: water}, type_id=-1)
    lake_full = _mask_in(lf, lake, S)
    half = 0.5 * math.hypot(w, w * aspect) + 2
    frame = _P._Frame(S, cx, cy, half, 0.0, w, w)
    seed = int(rng.integers(2**31))  # the object's geometry, drawn twice when it is reflected
    layers = draw(frame, np.random.default_rng(seed), aspect)
    colours: dict[int, np.ndarray] = {}
    for pid in sorted({p for p, _ in layers}):
        colours[pid] = _P._pick_colour(rng, canvas.bg_dist, list(colours.values()), ())
    if reflect:  # the same object mirrored about the shore line, tinted by the water, inside the lake only
        mirror = _P._Frame(S, cx, 2 * shore - cy, half, 0.0, w, w)
        mirror.v = -mirror.v
        inside = lake_full[mirror.win]
        win = [canvas.img[ch][mirror.win] for ch in range(3)]
        for pid, m in draw(mirror, np.random.default_rng(seed), aspect):
            m = m & inside
            for ch in range(3):
                win[ch][m] = 0.7 * colours[pid][ch] + 0.3 * water[ch]
    canvas.draw(kind, frame, layers, colours)
    return box_of_mask(lake_full), kind


def _mask_in(frame: _P._Frame, m: np.ndarray, size: int) -> np.ndarray:
    full = np.zeros((size, size), dtype=bool)
    full[frame.win] = m
    return full


def _window(canvas: _S._Canvas, view: bool) -> np.ndarray | None:
    rng, S = canvas.rng, canvas.size
    for _ in range(12):
        w = rng.uniform(0.3, 0.4) * S
        h = w * rng.uniform(0.9, 1.25)
        cx, cy = rng.uniform(w / 2 + 1, S - 1 - w / 2), rng.uniform(h / 2 + 1, S - 1 - h / 2)
        box = (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
        if canvas.free(box, 0.05):
            break
    else:
        return None
    canvas.placed.append(box)
    f = _P._Frame(S, cx, cy, 0.5 * math.hypot(w, h) + 2, 0.0, w, w)
    a = h / w
    t = max(0.08, 1.2 * f.px)
    outer = f.rect(-0.5, 0.5, -a / 2, a / 2)
    inner = f.rect(-0.5 + t, 0.5 - t, -a / 2 + t, a / 2 - t)
    bars = inner & ((np.abs(f.u) <= 0.5 * t) | (np.abs(f.v) <= 0.5 * t))
    frame_mask = (outer & ~inner) | bars
    pane = inner & ~bars
    if view:
        hz = rng.uniform(-0.1, 0.2) * a
        hill = f.ellipse(rng.uniform(-0.3, 0.3), hz, rng.uniform(0.18, 0.3), rng.uniform(0.08, 0.15))
        sky_c = _P.PALETTE[_P._P["light blue"]] * rng.uniform(0.85, 1.05)
        grd_c = _P.PALETTE[_P._P["green"] if rng.random() < 0.6 else _P._P["dark green"]] * rng.uniform(
            0.85, 1.1
        )
        hill_c = _P.PALETTE[_P._P["dark green"] if rng.random() < 0.5 else _P._P["brown"]]
        layers = [(1, pane & (f.v < hz)), (2, pane & (f.v >= hz)), (3, pane & hill), (4, frame_mask)]
        colours = {1: sky_c, 2: grd_c, 3: hill_c}
    else:
        layers = [(1, pane), (4, frame_mask)]
        colours = {}
    canvas.draw("window", f, layers, {k: np.asarray(v, np.float32) for k, v in colours.items()}, type_id=-1)
    return box_of_mask(_mask_in(f, outer, S))


def _pot(canvas: _S._Canvas, flower: bool) -> np.ndarray | None:
    """A pot standing on the ground, with a flower growing out of it when ``flower`` -> the box of both."""
    rng, S, hz = canvas.rng, canvas.size, canvas.horizon
    for _ in range(12):
        pw = rng.uniform(0.12, 0.17) * S
        ph = pw * rng.uniform(0.8, 1.1)
        base = rng.uniform(hz + 0.2 * S, S - 2)
        cx = rng.uniform(pw + 1, S - 1 - pw)
        fl_h = rng.uniform(0.22, 0.3) * S if flower else 0.0
        box = (cx - pw * 0.7, base - ph - fl_h * 0.9, cx + pw * 0.7, base)
        if box[1] >= 1 and canvas.free(box, 0.05):
            break
    else:
        return None
    canvas.placed.append(box)
    f = _P._Frame(S, cx, base - ph / 2, 0.5 * math.hypot(pw, ph) + 2, 0.0, pw, pw)
    a = ph / pw
    pot = f.trapezoid(0.0, -a / 2, a / 2, 0.5, 0.36) | f.rect(-0.58, 0.58, -a / 2, -a / 2 + 0.14)
    drawn = _mask_in(f, pot, S)
    if flower:
        ff, _ = canvas.frame_for("flower", fl_h, cx, base - 0.95 * ph, None)
        drawn |= canvas.instances == canvas.draw("flower", ff)
    canvas.draw("pot", f, [(1, pot)], type_id=-1)
    return box_of_mask(drawn)


_DRAW = {0: _lake, 1: _window, 2: _pot}


# --------------------------------------------------------------------------- samples


@dataclass(frozen=True, eq=False)
class CaptionSample:
    """``image`` (H, W, 3) uint8; ``caption``; ``scene`` (index into :data:`camlib.datasets.scenes.SCENES`);
    ``concept_boxes`` / ``confuser_boxes`` (len(CONCEPTS), 4) inclusive, -1 rows when absent."""

    image: np.ndarray
    caption: str
    scene: int
    concept_boxes: np.ndarray
    confuser_boxes: np.ndarray


def _article(word: str) -> str:
    return f"an {word}" if word[0] in "aeiou" else f"a {word}"


def _listing(words: Sequence[str]) -> str:
    items = [_article(w) for w in words]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def make_caption_sample(index: int, seed: int = 0, size: int = 128) -> CaptionSample:
    """Image ``index`` of stream ``seed`` with its caption and concept boxes (a pure function)."""
    _S._check(index, seed, size)
    rng = np.random.default_rng([int(seed), int(index), _SEED_TAG])
    scene = int(rng.integers(len(_S.SCENES)))
    canvas = _S._Canvas(rng, size)
    concept_boxes = np.tile(NO_BOX, (len(CONCEPTS), 1))
    confuser_boxes = concept_boxes.copy()
    clauses, extra_objects = [], []
    draws = rng.random(len(CONCEPTS))
    for c in rng.permutation(len(CONCEPTS)):
        positive = draws[c] < P_CONCEPT
        if not positive and draws[c] >= P_CONCEPT + P_CONFUSER:
            continue
        out = _DRAW[int(c)](canvas, positive)
        if out is None:
            continue
        if c == 0:
            box, obj = out
            clauses.append(
                f"mirror in lake below {_article(obj)}"
                if positive
                else f"{_article(obj)} beside a still pond"
            )
        else:
            box = out
            clauses.append(_article(CONCEPTS[c]) if positive else _article(CONFUSERS[c]))
        (concept_boxes if positive else confuser_boxes)[c] = box
        if c == 0:
            extra_objects.append(obj)
    # the scene's own objects, fewer than in a scene image (the concepts take room)
    draw = rng.random(len(_S.OBJECTS)) < 0.6 * _S.PRESENCE[scene]
    kinds = [o for o, d in zip(_S.OBJECTS, draw, strict=True) if d and o not in _S.STUFF]
    plans = [(k, p) for k in kinds if (p := canvas.plan(k)) is not None]
    for kind, (frame, _box) in sorted(plans, key=lambda kp: (kp[0] not in _S.SKY_OBJECTS, kp[1][1][3])):
        canvas.draw(kind, frame)
    image, _inst, _types, _boxes = canvas.finish()
    named = [k for k, _ in plans]
    text = f"a {_S.SCENES[scene]} scene" + (f" with {_listing(named)}" if named else "")
    caption = "; ".join([text, *clauses])
    return CaptionSample(image, caption, scene, concept_boxes, confuser_boxes)


def make_caption_arrays(
    n: int, seed: int = 0, size: int = 128, start: int = 0, progress: bool = False
) -> dict:
    """Samples ``start .. start + n - 1``: ``images`` (n, H, W, 3) uint8, ``captions`` (list of str),
    ``scenes`` (n,), ``concept_boxes`` and ``confuser_boxes`` (n, len(CONCEPTS), 4)."""
    captions: list[str] = []

    def make(i: int) -> CaptionSample:
        s = make_caption_sample(i, seed, size)
        captions.append(s.caption)
        return s

    out = _P.stack_samples(
        make,
        n,
        start,
        desc="captioned images",
        progress=progress,
        fields={
            "images": "image",
            "scenes": "scene",
            "concept_boxes": "concept_boxes",
            "confuser_boxes": "confuser_boxes",
        },
    )
    out["captions"] = captions
    return out


class CaptionImages(_P.InMemoryImages):
    """``n`` captioned images of one split, generated once, in memory: ``images``, ``captions``,
    ``scenes``, ``concept_boxes``, ``confuser_boxes`` (see :func:`make_caption_arrays`);
    :meth:`tensors` gives float (n, 3, H, W) images in [0, 1]; :meth:`identity` names the set."""

    stream = "procedural_captions(v1"

    def __init__(
        self, n: int, seed: int = 0, size: int = 128, split: str = "train", progress: bool = False
    ) -> None:
        if split not in _P.SPLIT_OFFSETS:
            raise ValueError(f"unknown split {split!r}; expected one of {sorted(_P.SPLIT_OFFSETS)}")
        a = make_caption_arrays(n, seed=seed, size=size, start=_P.SPLIT_OFFSETS[split], progress=progress)
        self.images, self.captions, self.scenes = a["images"], a["captions"], a["scenes"]
        self.concept_boxes, self.confuser_boxes = a["concept_boxes"], a["confuser_boxes"]
        self.size, self.seed, self.split = int(size), int(seed), split


# --------------------------------------------------------------------------- a caption folder (paper profile)

CAPTION_LAYOUT = """<CAPTIONS_ROOT>/
  captions.tsv (or captions.txt)   one line per caption: <image path relative to the folder><TAB><caption>
                                   (an image may have several lines; lines starting with # are skipped)
or
  annotations/captions_*.json      COCO captions: {"images": [{"id", "file_name"}], "annotations": [{"image_id", "caption"}]}
  <split folder>/<file_name>       the images (searched under the folder, e.g. train2014/, val2014/, images/)"""


def _coco_images(root: Path, name: str) -> Path | None:
    for sub in ("", "images", "train2014", "val2014", "train2017", "val2017"):
        p = root / sub / name
        if p.is_file():
            return p
    hits = list(root.rglob(name))
    return hits[0] if hits else None


def load_caption_folder(root: str | Path) -> tuple[list[Path], list[str]]:
    """``(image paths, captions)`` of an image-caption folder (:data:`CAPTION_LAYOUT`); an image's
    several captions are joined with " ; " into one text (a phrase may occur in any of them)."""
    root = Path(root)
    texts: dict[Path, list[str]] = {}
    tsv = next((root / n for n in ("captions.tsv", "captions.txt") if (root / n).is_file()), None)
    if tsv is not None:
        for line in tsv.read_text(encoding="utf-8").splitlines():
            if not line.strip() or line.startswith("#"):
                continue
            rel, sep, caption = line.partition("\t")
            if not sep:
                raise ValueError(f"{tsv}: expected '<image>\\t<caption>', got {line[:80]!r}")
            path = root / rel.strip()
            if path.is_file():
                texts.setdefault(path, []).append(caption.strip())
    else:
        for js in sorted(root.glob("annotations/captions_*.json")) + sorted(root.glob("captions_*.json")):
            data = json.loads(js.read_text(encoding="utf-8"))
            files = {im["id"]: im["file_name"] for im in data.get("images", [])}
            for ann in data.get("annotations", []):
                name = files.get(ann.get("image_id"))
                path = _coco_images(root, name) if name else None
                if path is not None:
                    texts.setdefault(path, []).append(str(ann.get("caption", "")).strip())
    if not texts:
        raise FileNotFoundError(f"no captioned image found under {root}. Expected:\n{CAPTION_LAYOUT}")
    paths = sorted(texts)
    return paths, [" ; ".join(texts[p]) for p in paths]
