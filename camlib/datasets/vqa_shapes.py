"""A deterministic procedural visual-question-answering set: coloured shapes and questions about them.

Every scene holds 2-4 objects on a noisy grey background. Each object has a SHAPE from :data:`SHAPES`
and a COLOUR from :data:`COLOURS`. Each sample is one scene with one question, of one of six types
(:data:`QUESTION_TYPES`), in two kinds (:data:`QUESTION_KINDS`):

**binding** (the answer depends on the question's words AND the image together; all shapes and all
colours of the scene differ, so "the square" or "the red object" names exactly one object):

``colour``      "what colour is the square?"        -> a colour         (about: the square)
``shape``       "what shape is the red object?"     -> a shape          (about: the red object)
``exists``      "is there a blue circle?"           -> ``yes`` / ``no`` (about: the blue circle if
                it is there; for ``no`` there is no such object and the box is ``(-1, -1, -1, -1)``)

**image-only** (the answer is a function of the image alone; the question only says which KIND of
answer is wanted, so the paper's additive model, a bag-of-words offset plus a linear read-out of the
GAP features, can answer them):

``count``       "how many shapes are there?"        -> ``2`` / ``3`` / ``4`` (about: every object)
``all_colour``  "what colour are the shapes?"       -> a colour; every object of the scene has it,
                the shapes differ                                        (about: every object)
``all_shape``   "what shape are the objects?"       -> a shape; every object has it, the colours
                differ                                                   (about: every object)

Half of the ``exists`` questions are ``no``, and a ``no`` question names the colour of one object and
the shape of ANOTHER object of the same scene, so the answer needs the colour and the shape bound to
the same object (a bag of detected colours and shapes is not enough). Why the additive model cannot
answer a binding question: its score of an answer is (image part) + (question part), so which of the
colours in the image it names cannot depend on which shape the question names.

Ground truth per sample: the image, the question, its answer, its type, the inclusive box
``(x0, y0, x1, y1)`` (the :mod:`camlib.core.boxes` convention) of the ONE object a binding question is
about (:data:`NO_BOX` otherwise), ``about`` (the objects the question is about: one for a binding
question, none for an ``exists`` ``no``, all of them for an image-only question) and the pixel mask of
their union, plus the shape, colour and box of every object of the scene.

Vocabulary: :class:`VQAShapes` builds the question-word and answer vocabularies (a
:class:`camlib.datasets.vqa.Vocabulary`) from its own questions only when it is the ``train`` split; any other
split must be given the training split's vocabularies (``vocab=train.vocab,
answers=train.answers``), so words never seen in training become ``<unk>``.

Determinism: sample ``i`` of stream ``seed`` is a pure function of ``(seed, i, size)`` using only
``np.random.default_rng([seed, i])``; the ``train``/``val``/``test`` splits use disjoint index
ranges (:data:`SPLIT_OFFSETS`). About 1 ms per 64 x 64 sample on one core.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from camlib.datasets.procedural import check_count
from camlib.datasets.vqa import Vocabulary

__all__ = [
    "ANSWER_TYPES",
    "BINDING_TYPES",
    "CHANCE",
    "COLOURS",
    "COLOUR_NAMES",
    "IMAGE_ONLY_TYPES",
    "MAX_OBJECTS",
    "NO_BOX",
    "PAIR_NAMES",
    "QUESTION_KINDS",
    "QUESTION_TYPES",
    "SHAPES",
    "SPLIT_OFFSETS",
    "TEMPLATES",
    "VQASample",
    "VQAShapes",
    "make_vqa_arrays",
    "make_vqa_sample",
]

SHAPES: tuple[str, ...] = ("square", "circle", "triangle", "cross")
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 45, 40),
    "green": (45, 180, 70),
    "blue": (45, 95, 230),
    "yellow": (240, 215, 45),
    "purple": (150, 60, 190),
}
COLOUR_NAMES: tuple[str, ...] = tuple(COLOURS)
BINDING_TYPES: tuple[str, ...] = ("colour", "shape", "exists")
IMAGE_ONLY_TYPES: tuple[str, ...] = ("count", "all_colour", "all_shape")
QUESTION_TYPES: tuple[str, ...] = BINDING_TYPES + IMAGE_ONLY_TYPES
QUESTION_KINDS: dict[str, str] = {
    **dict.fromkeys(BINDING_TYPES, "binding"),
    **dict.fromkeys(IMAGE_ONLY_TYPES, "image-only"),
}
ANSWER_TYPES: dict[str, tuple[str, ...]] = {
    "colour": COLOUR_NAMES,
    "shape": SHAPES,
    "exists": ("yes", "no"),
    "count": ("2", "3", "4"),
    "all_colour": COLOUR_NAMES,
    "all_shape": SHAPES,
}
# Chance level (%) of each type: a uniformly random answer of the type (the answers are balanced:
# uniform colours, shapes and object counts, half the ``exists`` answers ``yes``).
CHANCE: dict[str, float] = {t: 100.0 / len(a) for t, a in ANSWER_TYPES.items()}
TEMPLATES: dict[str, tuple[str, ...]] = {
    "colour": (
        "what colour is the {shape}?",
        "which colour is the {shape}?",
        "what is the colour of the {shape}?",
    ),
    "shape": (
        "what shape is the {colour} object?",
        "what is the {colour} thing?",
        "which shape is {colour}?",
    ),
    "exists": (
        "is there a {colour} {shape}?",
        "do you see a {colour} {shape}?",
        "is there a {colour} {shape} in the picture?",
    ),
    "count": (
        "how many shapes are there?",
        "how many objects are in the picture?",
        "how many things do you see?",
    ),
    "all_colour": (
        "what colour are the shapes?",
        "which colour are all the objects?",
        "what colour is everything?",
    ),
    "all_shape": (
        "what shape are the objects?",
        "which shape are all the things?",
        "what shape is every object?",
    ),
}
PAIR_NAMES: tuple[str, ...] = tuple(f"{c} {s}" for c in COLOURS for s in SHAPES)  # "red square", ...
MAX_OBJECTS = 4
SPLIT_OFFSETS: dict[str, int] = {"train": 0, "val": 10_000_000, "test": 20_000_000}
_MAX_N = 10_000_000
NO_BOX = (-1, -1, -1, -1)


@dataclass(frozen=True)
class VQASample:
    """One scene with one question.

    Attributes:
        image: ``(H, W, 3)`` uint8 RGB.
        question: the question text; ``answer``: its answer; ``qtype``: one of :data:`QUESTION_TYPES`.
        box: inclusive ``(x0, y0, x1, y1)`` of the one object a binding question is about, or
            :data:`NO_BOX` (an ``exists`` question answered ``no``, or an image-only question).
        mask: ``(H, W)`` bool pixels of the objects in ``about`` (all False when there is none).
        shapes, colours: per object of the scene, its shape and colour name.
        boxes: ``(n_objects, 4)`` int64 inclusive boxes of all objects.
        target: index of the one object a binding question is about, or -1.
        about: indices of the objects the question is about (``(target,)``, ``()`` or all of them).
    """

    image: np.ndarray
    question: str
    answer: str
    qtype: str
    box: tuple[int, int, int, int]
    mask: np.ndarray
    shapes: tuple[str, ...]
    colours: tuple[str, ...]
    boxes: np.ndarray
    target: int
    about: tuple[int, ...] = ()


def _shape_mask(shape: str, xx: np.ndarray, yy: np.ndarray, cx: float, cy: float, r: float) -> np.ndarray:
    dx, dy = xx - cx, yy - cy
    if shape == "square":
        return (np.abs(dx) <= 0.82 * r) & (np.abs(dy) <= 0.82 * r)
    if shape == "circle":
        return dx * dx + dy * dy <= r * r
    if shape == "triangle":  # pointing up, apex at the top
        t = (dy + r) / (2 * r)  # 0 at the apex, 1 at the base
        return (t >= 0) & (t <= 1) & (np.abs(dx) <= t * r)
    if shape == "cross":
        arm = 0.36 * r
        return ((np.abs(dx) <= r) & (np.abs(dy) <= arm)) | ((np.abs(dy) <= r) & (np.abs(dx) <= arm))
    raise ValueError(f"unknown shape {shape!r}")


def _check(index: int, seed: int, size: int) -> None:
    for name, v in (("index", index), ("seed", seed)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 0:
            raise ValueError(f"{name} must be a non-negative int, got {v!r}")
    if not isinstance(size, (int, np.integer)) or isinstance(size, bool) or size < 32:
        raise ValueError(f"size must be an int >= 32, got {size!r}")


def make_vqa_sample(index: int, seed: int = 0, size: int = 64) -> VQASample:
    """Sample ``index`` of stream ``seed`` (a pure function of its arguments)."""
    _check(index, seed, size)
    rng = np.random.default_rng([int(seed), int(index)])
    n_obj = int(rng.integers(2, MAX_OBJECTS + 1))
    qtype = QUESTION_TYPES[int(rng.integers(len(QUESTION_TYPES)))]
    shapes = [SHAPES[i] for i in rng.permutation(len(SHAPES))[:n_obj]]
    colours = [COLOUR_NAMES[i] for i in rng.permutation(len(COLOUR_NAMES))[:n_obj]]
    if qtype == "all_colour":  # one colour for every object (the shapes still differ)
        colours = [colours[0]] * n_obj
    elif qtype == "all_shape":  # one shape for every object (the colours still differ)
        shapes = [shapes[0]] * n_obj

    # Background: a grey level, a gentle gradient and pixel noise.
    grey = rng.uniform(95, 150)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    gx, gy = rng.uniform(-12, 12, 2)
    img = np.empty((size, size, 3), dtype=np.float32)
    img[...] = (grey + gx * (xx / size - 0.5) + gy * (yy / size - 0.5))[..., None]

    # Objects: side 18%-30% of the image, placed without overlap (2-pixel gap), fully inside.
    placed: list[tuple[float, float, float]] = []
    masks, boxes = [], []
    for k in range(n_obj):
        for _try in range(100):
            r = 0.5 * rng.uniform(0.18, 0.30) * size
            cx, cy = rng.uniform(r + 1, size - 2 - r, 2)
            if all(max(abs(cx - px), abs(cy - py)) > r + pr + 2 for px, py, pr in placed):
                break
        else:  # a very crowded scene: shrink the object until it fits somewhere
            r = 0.06 * size
            cx, cy = rng.uniform(r + 1, size - 2 - r, 2)
        placed.append((cx, cy, r))
        m = _shape_mask(shapes[k], xx, yy, cx, cy, r)
        for prev in masks:  # the fallback may overlap: later objects are drawn on top
            prev &= ~m
        colour = np.asarray(COLOURS[colours[k]], dtype=np.float32) * rng.uniform(0.9, 1.05)
        img[m] = colour
        masks.append(m)
    for m in masks:
        ys, xs = np.flatnonzero(m.any(axis=1)), np.flatnonzero(m.any(axis=0))
        boxes.append((int(xs[0]), int(ys[0]), int(xs[-1]), int(ys[-1])) if ys.size else NO_BOX)
    img += rng.standard_normal((size, size, 3), dtype=np.float32) * np.float32(6.0)
    image = np.clip(img, 0, 255).astype(np.uint8)

    # The question.
    template = TEMPLATES[qtype][int(rng.integers(len(TEMPLATES[qtype])))]
    target = int(rng.integers(n_obj))
    if qtype in IMAGE_ONLY_TYPES:
        question = template
        answer = {"count": str(n_obj), "all_colour": colours[0], "all_shape": shapes[0]}[qtype]
        target = -1
    elif qtype == "colour":
        question, answer = template.format(shape=shapes[target]), colours[target]
    elif qtype == "shape":
        question, answer = template.format(colour=colours[target]), shapes[target]
    else:
        if rng.random() < 0.5:
            answer = "yes"
            question = template.format(colour=colours[target], shape=shapes[target])
        else:  # a colour of one object with the shape of another: present parts, absent pair
            answer = "no"
            other = (target + 1 + int(rng.integers(n_obj - 1))) % n_obj
            question = template.format(colour=colours[target], shape=shapes[other])
            target = -1
    about = tuple(range(n_obj)) if qtype in IMAGE_ONLY_TYPES else ((target,) if target >= 0 else ())
    box = boxes[target] if target >= 0 else NO_BOX
    mask = np.zeros((size, size), dtype=bool)
    for k in about:
        mask |= masks[k]
    return VQASample(
        image=image,
        question=question,
        answer=answer,
        qtype=qtype,
        box=box,
        mask=mask,
        shapes=tuple(shapes),
        colours=tuple(colours),
        boxes=np.asarray(boxes, dtype=np.int64).reshape(-1, 4),
        target=target,
        about=about,
    )


def make_vqa_arrays(n: int, seed: int = 0, size: int = 64, start: int = 0, progress: bool = False) -> dict:
    """Samples ``start .. start + n - 1`` of stream ``seed`` stacked.

    Returns ``images`` (n, H, W, 3) uint8, ``questions``/``answers``/``qtypes`` (lists of str),
    ``boxes`` (n, 4) int64 inclusive (``-1`` rows for no single object), ``masks`` (n, H, W) bool,
    ``object_boxes`` (n, MAX_OBJECTS, 4) int64, ``about_boxes`` (n, MAX_OBJECTS, 4) int64 (the boxes of
    the objects the question is about, ``-1`` rows for the others), ``object_shapes``/``object_colours``
    (n, MAX_OBJECTS) int64 indices into :data:`SHAPES` / :data:`COLOURS` (``-1`` = no object) and
    ``targets`` (n,) int64.
    """
    check_count(n, start)
    _check(start, seed, size)
    out = {
        "images": np.empty((n, size, size, 3), dtype=np.uint8),
        "questions": [],
        "answers": [],
        "qtypes": [],
        "boxes": np.empty((n, 4), dtype=np.int64),
        "masks": np.empty((n, size, size), dtype=bool),
        "object_boxes": np.full((n, MAX_OBJECTS, 4), -1, dtype=np.int64),
        "about_boxes": np.full((n, MAX_OBJECTS, 4), -1, dtype=np.int64),
        "object_shapes": np.full((n, MAX_OBJECTS), -1, dtype=np.int64),
        "object_colours": np.full((n, MAX_OBJECTS), -1, dtype=np.int64),
        "targets": np.empty(n, dtype=np.int64),
    }
    it = range(n)
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(it, desc="vqa shapes", unit="scene")
    for j in it:
        s = make_vqa_sample(start + j, seed, size)
        k = len(s.shapes)
        out["images"][j] = s.image
        out["questions"].append(s.question)
        out["answers"].append(s.answer)
        out["qtypes"].append(s.qtype)
        out["boxes"][j] = s.box
        out["masks"][j] = s.mask
        out["object_boxes"][j, :k] = s.boxes
        out["about_boxes"][j, list(s.about)] = s.boxes[list(s.about)]
        out["object_shapes"][j, :k] = [SHAPES.index(v) for v in s.shapes]
        out["object_colours"][j, :k] = [COLOUR_NAMES.index(v) for v in s.colours]
        out["targets"][j] = s.target
    return out


class VQAShapes(Dataset):
    """``n`` scenes+questions of one split, generated at construction and kept in memory.

    ``dataset[i]`` is ``(image, question_bow, answer)``: a float32 ``(3, H, W)`` tensor in [0, 1], a
    float32 bag-of-words vector of length ``len(vocab)`` and the answer's index in ``answers``
    (-1 for an answer the training split never had). :meth:`batch` returns the same for many indices
    at once (what :func:`camlib.paper.vqa_train.fit_vqa` uses).

    ``vocab`` / ``answers``: the question-word and answer vocabularies. Built from this split's own
    questions when ``split == "train"`` and none are given; any other split must receive the training
    split's (``VQAShapes(n, split="test", vocab=train.vocab, answers=train.answers)``).

    Ground-truth arrays (see :func:`make_vqa_arrays`): ``images``, ``questions``, ``answer_texts``,
    ``qtypes``, ``boxes``, ``masks``, ``object_boxes``, ``about_boxes``, ``object_shapes``,
    ``object_colours``, ``targets``; ``labels`` (n,) int64 answer indices; ``bow`` (n, V) float32.
    """

    def __init__(
        self,
        n: int,
        seed: int = 0,
        size: int = 64,
        split: str = "train",
        vocab: Vocabulary | None = None,
        answers: Vocabulary | None = None,
        progress: bool = False,
    ) -> None:
        if split not in SPLIT_OFFSETS:
            raise ValueError(f"unknown split {split!r}; expected one of {sorted(SPLIT_OFFSETS)}")
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or not 0 < n <= _MAX_N:
            raise ValueError(f"n must be an int in 1..{_MAX_N}, got {n!r}")
        if split != "train" and (vocab is None or answers is None):
            raise ValueError(
                f"the {split!r} split needs the TRAINING split's vocabularies: "
                f"VQAShapes(n, split={split!r}, vocab=train.vocab, answers=train.answers)"
            )
        a = make_vqa_arrays(int(n), seed=seed, size=size, start=SPLIT_OFFSETS[split], progress=progress)
        self.images: np.ndarray = a["images"]
        self.questions: list[str] = a["questions"]
        self.answer_texts: list[str] = a["answers"]
        self.qtypes: list[str] = a["qtypes"]
        self.boxes: np.ndarray = a["boxes"]
        self.masks: np.ndarray = a["masks"]
        self.object_boxes: np.ndarray = a["object_boxes"]
        self.about_boxes: np.ndarray = a["about_boxes"]
        self.object_shapes: np.ndarray = a["object_shapes"]
        self.object_colours: np.ndarray = a["object_colours"]
        self.targets: np.ndarray = a["targets"]
        self.vocab: Vocabulary = vocab if vocab is not None else Vocabulary.from_texts(self.questions)
        self.answers: Vocabulary = (
            answers if answers is not None else Vocabulary.from_labels(self.answer_texts)
        )
        self.labels = np.asarray(self.answers.lookup(self.answer_texts), dtype=np.int64)
        self.bow: np.ndarray = self.vocab.bow(self.questions)
        self.size, self.seed, self.split = int(size), int(seed), split

    def __len__(self) -> int:
        return len(self.labels)

    def image_tensor(self, idx: Sequence[int] | np.ndarray | Tensor) -> Tensor:
        """Images ``idx`` as a float (B, 3, H, W) tensor in [0, 1]."""
        idx = np.asarray(idx, dtype=np.int64)
        return (
            torch.from_numpy(np.ascontiguousarray(self.images[idx].transpose(0, 3, 1, 2))).float().div_(255.0)
        )

    def batch(self, idx: Sequence[int] | np.ndarray | Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(images (B, 3, H, W), bow (B, V), answers (B,))`` for the indices ``idx``."""
        idx = np.asarray(idx, dtype=np.int64)
        return self.image_tensor(idx), torch.from_numpy(self.bow[idx]), torch.from_numpy(self.labels[idx])

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor, int]:
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"index {i} out of range for {n} samples")
        x, q, y = self.batch([int(i) % n])
        return x[0], q[0], int(y[0])

    def qtype_ids(self) -> np.ndarray:
        """(n,) int64 index of each question's type in :data:`QUESTION_TYPES`."""
        return np.asarray([QUESTION_TYPES.index(t) for t in self.qtypes], dtype=np.int64)

    def object_labels(self) -> np.ndarray:
        """(n, len(PAIR_NAMES)) float32 multi-hot: which colour-shape pairs each scene holds (the
        labels of the quick profile's backbone pretraining; never used by the VQA answer layer)."""
        out = np.zeros((len(self), len(PAIR_NAMES)), dtype=np.float32)
        rows, cols = np.nonzero(self.object_shapes >= 0)
        pair = self.object_colours[rows, cols] * len(SHAPES) + self.object_shapes[rows, cols]
        out[rows, pair] = 1.0
        return out

    def answer_type_mask(self) -> np.ndarray:
        """(len(QUESTION_TYPES), len(answers)) bool: which answers belong to which question type."""
        m = np.zeros((len(QUESTION_TYPES), len(self.answers)), dtype=bool)
        for t, qt in enumerate(QUESTION_TYPES):
            for a in ANSWER_TYPES[qt]:
                if a in self.answers:
                    m[t, self.answers.index(a)] = True
        return m
