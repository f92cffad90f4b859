"""Reading and validating the text manifests of the real-data readers, and the records they return.

Every reader of :mod:`camlib.datasets` (Imagenette, ILSVRC val, CUB, Caltech-101, the mmocr text
JSON) validates its manifests when it opens them; a problem raises :class:`ManifestError`, whose
message is ``<file>:<line>: <problem>. Fix: <what to do>``. Checked everywhere:

- parse errors (too few fields, a number that is not one),
- duplicate ids (the second occurrence is named, with the line of the first),
- unknown ids / class ids (a line about an image or class the other files do not list),
- boxes that are inverted (``x1 < x0`` or ``y1 < y0``), negative, or outside the image
  (``0 <= x0 <= x1 <= W`` and ``0 <= y0 <= y1 <= H``, coordinates equal to ``W`` / ``H`` allowed:
  ILSVRC's annotations use them at the right / bottom edge; they are clipped to the last pixel).

A reader returns :class:`ImageRecord` s (the image's path, its :class:`~camlib.datasets.targets.Target`
and the split it belongs to); :class:`RecordDataset` turns a list of them into a torch ``Dataset``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from camlib.datasets import files as _files
from camlib.datasets.files import image_size
from camlib.datasets.targets import Target

__all__ = [
    "BoxesUnavailable",
    "ImageRecord",
    "LabelledRecords",
    "ManifestError",
    "RecordDataset",
    "check_box",
    "image_size",
    "list_images",
    "read_rows",
    "to_number",
    "unique_keys",
]


class ManifestError(ValueError):
    """A manifest line that cannot be used; the message names the file, the line and the fix."""

    def __init__(self, path: str | Path, line: int | None, problem: str, fix: str) -> None:
        self.path, self.line, self.problem, self.fix = Path(path), line, problem, fix
        where = f"{path}:{line}" if line else str(path)
        super().__init__(f"{where}: {problem}. Fix: {fix}")


class BoxesUnavailable(LookupError):
    """The set has no ground-truth boxes (e.g. a CUB copy without ``bounding_boxes.txt``).

    Raised by anything that needs boxes, with the reason; never a crash further down and never
    invented boxes.
    """


@dataclass
class ImageRecord:
    """One image of a reader: its file, its ground truth and its split (``"train"``, ``"test"`` ...)."""

    path: Path
    target: Target
    split: str = ""


def read_rows(
    path: str | Path, *, n_fields: int, sep: str | None = None, fix: str, optional: bool = False
) -> list[tuple[int, list[str]]] | None:
    """The non-empty lines of a manifest as ``(line number, fields)``, each with at least ``n_fields``.

    ``sep=None`` splits on whitespace (CUB, Caltech lists), ``","`` on commas (wsolevaluation). A
    missing file is a :class:`FileNotFoundError` naming ``fix`` (None when ``optional``).
    """
    path = Path(path)
    if not path.is_file():
        if optional:
            return None
        raise FileNotFoundError(f"missing {path}. Fix: {fix}")
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split(sep)] if sep else line.split()
        if len(fields) < n_fields or not all(fields[:n_fields]):
            raise ManifestError(
                path,
                n,
                f"expected {n_fields} {'comma-separated ' if sep == ',' else ''}fields, got {line.strip()!r}",
                fix,
            )
        rows.append((n, fields))
    return rows


def to_number(text: str, path: str | Path, line: int, fix: str, kind: type = float) -> float | int:
    """``kind(text)`` or a :class:`ManifestError` at ``path:line`` (``int`` also accepts ``"3.0"``)."""
    try:
        if kind is int:
            value = float(text)
            if value != int(value):
                raise ValueError(text)
            return int(value)
        return kind(text)
    except ValueError:
        raise ManifestError(
            path, line, f"{text!r} is not {'an integer' if kind is int else 'a number'}", fix
        ) from None


def unique_keys(keys: Iterable[tuple[str, int]], path: str | Path, fix: str) -> dict[str, int]:
    """``{key: line}`` from ``(key, line)`` pairs; a repeated key is a :class:`ManifestError`."""
    seen: dict[str, int] = {}
    for key, line in keys:
        if key in seen:
            raise ManifestError(path, line, f"duplicate id {key!r} (first on line {seen[key]})", fix)
        seen[key] = line
    return seen


def check_box(
    box: Sequence[float], size_hw: tuple[int, int] | None, path: str | Path, line: int, fix: str
) -> None:
    """Refuse an inverted box, one with a negative coordinate, and (when the image's ``(H, W)`` is known)
    one outside ``[0, W] x [0, H]``."""
    x0, y0, x1, y1 = (float(v) for v in box)
    if x1 < x0 or y1 < y0:
        raise ManifestError(
            path, line, f"inverted box ({x0:g}, {y0:g}, {x1:g}, {y1:g}): x1 < x0 or y1 < y0", fix
        )
    if x0 < 0 or y0 < 0:
        raise ManifestError(
            path,
            line,
            f"box ({x0:g}, {y0:g}, {x1:g}, {y1:g}) has a negative coordinate: it lies outside the image",
            fix,
        )
    if size_hw is not None:
        h, w = size_hw
        if x0 < 0 or y0 < 0 or x1 > w or y1 > h:
            raise ManifestError(
                path, line, f"box ({x0:g}, {y0:g}, {x1:g}, {y1:g}) lies outside the {w} x {h} image", fix
            )


class RecordDataset(Dataset):
    """``(preprocess(image), target)`` pairs over :class:`ImageRecord` s.

    The image is read with PIL and converted to RGB; the returned target is a copy whose ``size`` is
    the (H, W) of the file read and whose boxes are clipped to it. Without ``preprocess`` the PIL
    image is returned. ``classes`` names the labels; ``info`` is free (e.g. the set's DataInfo).
    """

    def __init__(
        self,
        records: Sequence[ImageRecord],
        preprocess: Callable[[Image.Image], torch.Tensor] | None = None,
        classes: Sequence[str] = (),
        info: object = None,
    ) -> None:
        self.records = list(records)
        self.preprocess = preprocess
        self.classes = list(classes)
        self.info = info

    def __len__(self) -> int:
        return len(self.records)

    @property
    def labels(self) -> np.ndarray:
        return np.asarray([r.target.label for r in self.records], dtype=np.int64)

    def load_image(self, i: int) -> Image.Image:
        return _files.read_rgb(self.records[i].path)

    def __getitem__(self, i: int):
        img = self.load_image(i)
        t = copy.deepcopy(self.records[i].target)
        t.size = (img.height, img.width)
        if len(t.boxes):
            t.boxes[:, [0, 2]] = t.boxes[:, [0, 2]].clip(0, img.width - 1)
            t.boxes[:, [1, 3]] = t.boxes[:, [1, 3]].clip(0, img.height - 1)
        return (self.preprocess(img) if self.preprocess is not None else img), t


class LabelledRecords(Dataset):
    """``(preprocess(image), label)`` pairs over :class:`ImageRecord` s (what feature extraction and
    :func:`camlib.core.probe.features_and_boxes` batch; :class:`RecordDataset` gives the whole target)."""

    def __init__(
        self, records: Sequence[ImageRecord], preprocess: Callable[[Image.Image], torch.Tensor]
    ) -> None:
        self.records, self.preprocess = list(records), preprocess

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int):
        return self.preprocess(_files.read_rgb(self.records[i].path)), int(self.records[i].target.label)


def list_images(folder: Path) -> list[Path]:
    """Image files directly in ``folder`` (the data layer's one suffix list), sorted; [] when none."""
    return _files.list_images(folder, recursive=False, allow_empty=True)
