"""Caltech-101 as records: the shared copy's train/test lists, or a seeded split of the full archive.

::

    <root>/101_ObjectCategories/<class>/image_0001.jpg ...   (the public archive's layout, 102 folders)
    <root>/train.txt, <root>/test.txt                        (optional: '<class>/image_XXXX.jpg' per line)

Classes are the 102 folders sorted by name, ``BACKGROUND_Google`` INCLUDED (as the lists of
``../shared/data/caltech101`` do; :mod:`camlib.datasets.table5`'s torchvision-based protocol drops it).
With the lists, they are the split (validated: parse errors, duplicate lines, an image in both lists,
an unknown class folder, a listed file that does not exist -> :class:`~camlib.datasets.manifest.ManifestError`
naming the list and line). Without them: per class, a seeded random ``n_train`` images for training
(30, the usual protocol) and the rest (or ``n_test`` of them) for testing
(:func:`camlib.datasets.table5.split_per_class`, same seed -> same split).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from camlib.datasets.manifest import ImageRecord, ManifestError, RecordDataset, list_images, unique_keys
from camlib.datasets.targets import Target

__all__ = ["Caltech101", "open_caltech101"]

FOLDER = "101_ObjectCategories"
_FIX = f"each list line is '<class folder>/<file>' relative to {FOLDER}/, each image once, in one list only"


@dataclass
class Caltech101:
    """The two parts of the split; ``protocol`` says which (the lists, or the seeded split)."""

    root: Path
    classes: list[str]
    train: list[ImageRecord]
    test: list[ImageRecord]
    protocol: str

    def dataset(
        self,
        part: str = "train",
        preprocess: Callable[[Image.Image], torch.Tensor] | None = None,
        info: object = None,
    ) -> RecordDataset:
        if part not in ("train", "test"):
            raise ValueError(f"part must be 'train' or 'test', got {part!r}")
        return RecordDataset(getattr(self, part), preprocess, self.classes, info)

    def counts(self) -> dict:
        return {"n_classes": len(self.classes), "n_train": len(self.train), "n_test": len(self.test)}


def _record(images: Path, rel: str, label: int, part: str) -> ImageRecord:
    return ImageRecord(images / rel, Target(label, np.zeros((0, 4)), None, rel), part)


def _read_list(path: Path, images: Path, index: dict[str, int]) -> list[tuple[str, int]]:
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        rel = line.strip()
        if not rel:
            continue
        parts = rel.split("/")
        if len(parts) != 2 or not all(parts):
            raise ManifestError(path, n, f"{rel!r} is not '<class>/<file>'", _FIX)
        if parts[0] not in index:
            raise ManifestError(path, n, f"unknown class {parts[0]!r} (no folder {images / parts[0]})", _FIX)
        if not (images / rel).is_file():
            raise ManifestError(path, n, f"{images / rel} does not exist", _FIX)
        rows.append((rel, n))
    unique_keys(rows, path, _FIX)
    return rows


def open_caltech101(
    root: str | Path, *, seed: int = 0, n_train: int = 30, n_test: int | None = None, use_lists: bool = True
) -> Caltech101:
    """Read ``root`` (the folder holding ``101_ObjectCategories/``, or that folder itself).

    ``use_lists=False`` ignores ``train.txt`` / ``test.txt`` and draws the seeded split.
    """
    from camlib.datasets.table5 import split_per_class

    root = Path(root)
    if root.name == FOLDER and not (root / FOLDER).is_dir():
        root = root.parent
    images = root / FOLDER
    if not images.is_dir():
        raise FileNotFoundError(
            f"{images} does not exist. Expected <root>/{FOLDER}/<class>/image_XXXX.jpg (the "
            "public archive); get it with `python -m camlib.datasets.fetch caltech101`"
        )
    classes = sorted(p.name for p in images.iterdir() if p.is_dir())
    index = {c: k for k, c in enumerate(classes)}
    lists = [root / "train.txt", root / "test.txt"]
    if use_lists and all(p.is_file() for p in lists):
        parts = [_read_list(p, images, index) for p in lists]
        first = {rel: n for rel, n in parts[0]}
        for rel, n in parts[1]:
            if rel in first:
                raise ManifestError(
                    lists[1], n, f"{rel} is also in {lists[0].name} (line {first[rel]})", _FIX
                )
        train, test = (
            [_record(images, rel, index[rel.split("/")[0]], name) for rel, _ in rows]
            for rows, name in zip(parts, ("train", "test"), strict=True)
        )
        return Caltech101(root, classes, train, test, "train.txt / test.txt lists")
    if use_lists and any(p.is_file() for p in lists):
        missing = [p.name for p in lists if not p.is_file()]
        raise FileNotFoundError(f"{root} has one split list but not {missing[0]}: give both lists or neither")
    rels = [f"{c}/{p.name}" for c in classes for p in list_images(images / c)]
    labels = np.asarray([index[r.split("/")[0]] for r in rels], dtype=np.int64)
    tr, te = split_per_class(labels, n_train, n_test, seed)
    train = [_record(images, rels[i], int(labels[i]), "train") for i in tr]
    test = [_record(images, rels[i], int(labels[i]), "test") for i in te]
    rest = "the rest" if n_test is None else f"up to {n_test}"
    return Caltech101(
        root, classes, train, test, f"seeded split (seed {seed}): {n_train} train / {rest} test per class"
    )
