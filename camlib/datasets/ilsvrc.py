"""ILSVRC validation images with classes and boxes, from any of the three common annotation formats;
and the ILSVRC *train* folder (:func:`ilsvrc_train_folder`: one sub-folder of JPEGs per WordNet id).

Class indices are always torchvision's (the 1000 WordNet ids sorted; :func:`wnid_index`). Boxes are
inclusive pixel boxes ``(x0, y0, x1, y1)`` (:mod:`camlib.core.boxes`), several per image, clipped to the
image when the image is read. Images are read with PIL and converted to RGB (grayscale and CMYK JPEGs
included). An image that cannot be read (missing, truncated, not an image) is NOT fatal: the item
comes back as ``(None, target)`` with ``target["error"]``, a warning is issued, and
:func:`collate_with_targets` drops it from the batch and lists it in the batch's ``targets.skipped``,
so a pipeline (e.g. :func:`camlib.evaluation.localize.evaluate_protocols`) counts and reports it even when the
images are read in DataLoader worker processes. In the main process the dataset's own ``skipped``
list records it too.

Formats (``open_ilsvrc_val`` detects them from a root folder):

1. **wsolevaluation text manifests** (the format of ``../shared/data/ilsvrc-val-sample``),
   :class:`WSOLManifestDataset`::

       images/<file>.JPEG
       image_ids.txt        val/<file>
       class_labels.txt     val/<file>,<class index 0..999 in torchvision's order>
       localization.txt     val/<file>,x0,y0,x1,y1        (one line per box)
       image_sizes.txt      val/<file>,<width>,<height>   (optional; the size of the file here)
       original_sizes.txt   val/<file>,<width>,<height>   (optional; the ORIGINAL image's size, for a
                                                           resized copy such as ../shared/data/ilsvrc-val-1k)

   The manifests are validated when opened (:func:`read_wsol_metadata`: parse errors, duplicate ids,
   unknown ids, class indices outside 0..999, inverted boxes, boxes outside ``image_sizes.txt``), each
   error naming the file and line (:class:`~camlib.datasets.manifest.ManifestError`).
   :func:`wsol_records` gives the same images as typed :class:`~camlib.datasets.targets.Target` records.

2. **Official per-image XML** (``ILSVRC2012_bbox_val_v3.tgz``, PASCAL VOC style, one file per image
   with ``<object><name>n01751748</name><bndbox><xmin>..`` per box), :meth:`ILSVRCBoxDataset.from_xml`.
3. **Kaggle** ``LOC_val_solution.csv`` (``ImageId,PredictionString`` with ``wnid x0 y0 x1 y1`` groups),
   :meth:`ILSVRCBoxDataset.from_kaggle_csv`.

Formats 2 and 3 name classes by WordNet id and need the list of the 1000 wnids to turn them into
torchvision's indices: ``LOC_synset_mapping.txt`` (``n01440764 tench, Tinca tinca``, shipped with the
Kaggle data) or any file with one wnid per line (:func:`read_wnids`). Their coordinates are used as
written (as wsolevaluation does when it builds its manifests from the XML files); a box that reaches
past the image (ILSVRC's XML uses ``xmax == width`` at the right edge) is clipped to the last pixel.
An image whose boxes name several classes takes the class of its first box and keeps that class's
boxes (ILSVRC val images have one class each).
"""

from __future__ import annotations

import copy
import csv
import os
import warnings
import xml.etree.ElementTree as ET
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from camlib.datasets.files import (
    IMAGE_SUFFIXES,
    ImageFiles,
    TargetList,
    collate_skipping,
    image_folder,
    is_image_file,
    read_rgb,
)
from camlib.datasets.manifest import ImageRecord, ManifestError, check_box, read_rows, to_number, unique_keys
from camlib.datasets.targets import Target
from camlib.datasets.transforms import imagenet_train_transform

__all__ = [
    "ILSVRCBoxDataset",
    "ILSVRC_TRAIN_HINT",
    "SAMPLE_HINT",
    "TargetList",
    "WSOLManifestDataset",
    "WSOLMetadata",
    "collate_with_targets",
    "default_ilsvrc_root",
    "default_ilsvrc_train_root",
    "ilsvrc_train_folder",
    "make_loader",
    "open_ilsvrc_val",
    "parse_voc_xml",
    "read_kaggle_solution",
    "read_wnids",
    "read_wsol_metadata",
    "wnid_index",
    "wsol_records",
]

SAMPLE_HINT = (
    "Expected a folder with images/ and the text manifests image_ids.txt, class_labels.txt and "
    "localization.txt (wsolevaluation format). The 100-image sample lives at ../shared/data/"
    "ilsvrc-val-sample beside a camlib checkout; for the full ILSVRC2012 val set see data/README.md."
)

LAYOUT_HINT = (
    "ILSVRC val can be given in three layouts (data/README.md): (1) wsolevaluation manifests: "
    "<root>/images/*.JPEG + image_ids.txt, class_labels.txt, localization.txt; (2) the official XML "
    "boxes: <root>/ILSVRC2012_img_val/*.JPEG (or images/ or val/) + <root>/Annotations/*.xml (or val_xml/, "
    "bbox_val/) + <root>/LOC_synset_mapping.txt (or a file of the 1000 wnids, one per line); (3) Kaggle's "
    "ImageNet Object Localization Challenge: <root>/LOC_val_solution.csv + LOC_synset_mapping.txt + "
    "ILSVRC/Data/CLS-LOC/val/*.JPEG."
)



def default_ilsvrc_root() -> Path | None:
    """``$ILSVRC_ROOT``, else ``data/ilsvrc-val``, else ``../shared/data/ilsvrc-val-sample``, else None.

    The one resolution order of :func:`camlib.datasets.roots.resolve_root` (set ``"ilsvrc"``); an
    ``ILSVRC_ROOT`` naming a missing folder is an error, not a silent fall-back to the sample.
    """
    from camlib.datasets.roots import resolve_root

    return resolve_root("ilsvrc").path


# ------------------------------------------------------------------------------------- class ids
def read_wnids(path: str | Path) -> list[str]:
    """WordNet ids from ``LOC_synset_mapping.txt`` (``n01440764 tench, ...``) or a plain list.

    The first token of every non-empty line that looks like a wnid (``n`` + 8 digits) is taken;
    returned sorted (torchvision's class order), duplicates refused.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"wnid list {path} not found. {LAYOUT_HINT}")
    wnids = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        tok = line.strip().replace(",", " ").split()
        if not tok:
            continue
        w = tok[0]
        if not (len(w) == 9 and w[0] == "n" and w[1:].isdigit()):
            raise ValueError(f"{path}:{n}: {w!r} is not a WordNet id like n01440764")
        wnids.append(w)
    if len(set(wnids)) != len(wnids):
        raise ValueError(f"{path}: repeated wnids")
    if not wnids:
        raise ValueError(f"{path}: no wnids")
    return sorted(wnids)


def wnid_index(wnids: Iterable[str]) -> dict[str, int]:
    """wnid -> class index in torchvision's order (position among the sorted wnids)."""
    return {w: i for i, w in enumerate(sorted(wnids))}


# ------------------------------------------------------------------------------------- parsers
def parse_voc_xml(path: str | Path) -> tuple[str, tuple[int, int] | None, list[tuple[str, list[int]]]]:
    """One ILSVRC / PASCAL-VOC annotation file -> (image id, (width, height) or None, [(wnid, box)])."""
    path = Path(path)
    root = ET.parse(path).getroot()
    name = (root.findtext("filename") or path.stem).strip()
    name = Path(name).stem if is_image_file(name) else name
    size = None
    s = root.find("size")
    if s is not None and s.findtext("width") and s.findtext("height"):
        size = (int(float(s.findtext("width"))), int(float(s.findtext("height"))))
    objects = []
    for obj in root.iter("object"):
        wnid = (obj.findtext("name") or "").strip()
        bb = obj.find("bndbox")
        if bb is None:
            continue
        box = [int(float(bb.findtext(k))) for k in ("xmin", "ymin", "xmax", "ymax")]
        objects.append((wnid, box))
    return name, size, objects


def read_kaggle_solution(path: str | Path) -> dict[str, list[tuple[str, list[int]]]]:
    """``LOC_val_solution.csv`` -> {image id: [(wnid, box), ...]} in file order."""
    path = Path(path)
    out: dict[str, list[tuple[str, list[int]]]] = {}
    with path.open(newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if not header or [h.strip() for h in header[:2]] != ["ImageId", "PredictionString"]:
            raise ValueError(f"{path}: expected the header 'ImageId,PredictionString', got {header}")
        for n, row in enumerate(reader, 2):
            if not row or not row[0].strip():
                continue
            tok = row[1].split() if len(row) > 1 else []
            if len(tok) % 5:
                raise ValueError(f"{path}:{n}: PredictionString must hold groups of 'wnid x0 y0 x1 y1'")
            out[row[0].strip()] = [
                (tok[i], [int(float(v)) for v in tok[i + 1 : i + 5]]) for i in range(0, len(tok), 5)
            ]
    return out


def _find_image(folder: Path, image_id: str) -> Path:
    for suf in IMAGE_SUFFIXES:
        for s in (suf.upper(), suf):  # ILSVRC's .JPEG first
            p = folder / f"{image_id}{s}"
            if p.is_file():
                return p
    return folder / f"{image_id}.JPEG"  # reported as missing when read


# ------------------------------------------------------------------------------------- wsolevaluation
WSOL_FIX = (
    "each manifest line is 'val/<file>,...' (image_ids.txt: the key; class_labels.txt: key,class 0..999; "
    "image_sizes.txt / original_sizes.txt: key,width,height; localization.txt: key,x0,y0,x1,y1), one key per "
    "image, every key listed in image_ids.txt"
)


@dataclass
class WSOLMetadata:
    """The wsolevaluation manifests of one folder, validated (see :func:`read_wsol_metadata`).

    ``ids``: keys in ``image_ids.txt`` order; ``labels``: key -> class 0..999; ``boxes``: key -> (n, 4)
    float boxes as written; ``sizes`` / ``original_sizes``: key -> (H, W) from ``image_sizes.txt`` /
    ``original_sizes.txt`` (None when the file is absent); ``lines`` / ``label_lines``: key -> its line in
    ``image_ids.txt`` / ``class_labels.txt``.
    """

    folder: Path
    ids: list[str]
    labels: dict[str, int]
    boxes: dict[str, np.ndarray]
    sizes: dict[str, tuple[int, int]] | None
    original_sizes: dict[str, tuple[int, int]] | None
    lines: dict[str, int]
    label_lines: dict[str, int]


def _wsol_sizes(path: Path, known: dict[str, int]) -> dict[str, tuple[int, int]] | None:
    rows = read_rows(path, n_fields=3, sep=",", fix=WSOL_FIX, optional=True)
    if rows is None:
        return None
    unique_keys(((r[0], n) for n, r in rows), path, WSOL_FIX)
    out = {}
    for n, (key, w, h, *_) in rows:
        if key not in known:
            raise ManifestError(path, n, f"unknown image id {key!r} (not in image_ids.txt)", WSOL_FIX)
        w, h = to_number(w, path, n, WSOL_FIX, int), to_number(h, path, n, WSOL_FIX, int)
        if w <= 0 or h <= 0:
            raise ManifestError(path, n, f"image size {w} x {h} is not positive", WSOL_FIX)
        out[key] = (h, w)
    return out


def read_wsol_metadata(folder: str | Path, n_classes: int = 1000) -> WSOLMetadata:
    """Read and validate ``image_ids.txt``, ``class_labels.txt``, ``localization.txt`` and the optional
    ``image_sizes.txt`` / ``original_sizes.txt`` of ``folder``.

    Every key must be unique in each file and listed in ``image_ids.txt``; every image needs a class in
    ``0 .. n_classes - 1`` and at least one box; boxes must not be inverted and, when
    ``image_sizes.txt`` gives the image's size, must lie in ``[0, W] x [0, H]``. Any violation raises
    :class:`~camlib.datasets.manifest.ManifestError` naming the file and line.
    """
    folder = Path(folder)
    ids_path = folder / "image_ids.txt"
    id_rows = read_rows(ids_path, n_fields=1, sep=",", fix=f"{SAMPLE_HINT} ({WSOL_FIX})")
    lines = unique_keys(((r[0], n) for n, r in id_rows), ids_path, WSOL_FIX)
    ids = list(lines)
    path = folder / "class_labels.txt"
    rows = read_rows(path, n_fields=2, sep=",", fix=f"{SAMPLE_HINT} ({WSOL_FIX})")
    label_lines = unique_keys(((r[0], n) for n, r in rows), path, WSOL_FIX)
    labels = {}
    for n, (key, c, *_) in rows:
        if key not in lines:
            raise ManifestError(path, n, f"unknown image id {key!r} (not in image_ids.txt)", WSOL_FIX)
        c = to_number(c, path, n, WSOL_FIX, int)
        if not 0 <= c < n_classes:
            raise ManifestError(path, n, f"unknown class index {c} (expected 0..{n_classes - 1})",
                                "class indices follow torchvision's order of the sorted WordNet ids")
        labels[key] = c
    sizes = _wsol_sizes(folder / "image_sizes.txt", lines)
    original = _wsol_sizes(folder / "original_sizes.txt", lines)
    path = folder / "localization.txt"
    boxes: dict[str, list[list[float]]] = defaultdict(list)
    for n, (key, *vals) in read_rows(path, n_fields=5, sep=",", fix=f"{SAMPLE_HINT} ({WSOL_FIX})"):
        if key not in lines:
            raise ManifestError(path, n, f"unknown image id {key!r} (not in image_ids.txt)", WSOL_FIX)
        box = [to_number(v, path, n, WSOL_FIX) for v in vals[:4]]
        check_box(box, sizes.get(key) if sizes else None, path, n, "boxes are x0,y0,x1,y1 in the pixels of "
                  "image_sizes.txt, inside the image, x0 <= x1 and y0 <= y1")
        boxes[key].append(box)
    for key in ids:
        missing = [f for f, table in (("class_labels.txt", labels), ("localization.txt", boxes)) if key not in table]
        if missing:
            raise ManifestError(ids_path, lines[key], f"image {key!r} has no line in {' or '.join(missing)}",
                                "give every image of image_ids.txt a class and at least one box, or drop it")
    return WSOLMetadata(folder, ids, labels, {k: np.asarray(boxes[k], dtype=np.float64) for k in ids}, sizes,
                        original, lines, label_lines)


def wsol_records(root: str | Path) -> list[ImageRecord]:
    """The images of a wsolevaluation folder as typed records (``Target``: label 0..999, boxes rounded to
    int in the pixels of the file here (clipped to ``size``), ``size`` from ``image_sizes.txt`` when given, ``image_id`` the
    key; ``extra["original_size"]`` (H, W) from ``original_sizes.txt`` when given)."""
    meta = read_wsol_metadata(root)
    out = []
    for key in meta.ids:
        extra = {"original_size": meta.original_sizes[key]} if meta.original_sizes and key in meta.original_sizes else {}
        size = meta.sizes.get(key) if meta.sizes else None
        boxes = np.rint(meta.boxes[key])
        if size is not None:  # coordinates == W or H (the edge convention) -> the last pixel
            boxes = np.minimum(boxes, [size[1] - 1, size[0] - 1, size[1] - 1, size[0] - 1])
        t = Target(meta.labels[key], boxes, size, key, extra=extra)
        out.append(ImageRecord(_find_image(meta.folder / "images", Path(key).stem), t, "val"))
    return out


# ------------------------------------------------------------------------------------- datasets
class ILSVRCBoxDataset(Dataset):
    """(image tensor, target) pairs; target = {"label", "boxes" (n, 4) int64, "size" (H, W), "image_id"}.

    Build with :meth:`from_xml`, :meth:`from_kaggle_csv` or :class:`WSOLManifestDataset` (or
    :func:`open_ilsvrc_val`, which picks one). ``preprocess`` maps a PIL RGB image to the network input
    (e.g. ``ImageNetModel.preprocess``); without it the PIL image is returned. Unreadable images give
    ``(None, target)`` with ``target["error"]`` (see the module docstring) and are listed in
    :attr:`skipped` (this process only).
    """

    def __init__(
        self,
        ids: Sequence[str],
        paths: Sequence[Path],
        labels: Sequence[int],
        boxes: Sequence[np.ndarray],
        preprocess: Callable[[Image.Image], torch.Tensor] | None = None,
        source: str = "",
    ) -> None:
        if not len(ids) == len(paths) == len(labels) == len(boxes):
            raise ValueError("ids, paths, labels and boxes must have the same length")
        self.ids = list(ids)
        self.paths = [Path(p) for p in paths]
        self.labels = [int(v) for v in labels]
        self.boxes = [np.asarray(b, dtype=np.int64).reshape(-1, 4) for b in boxes]
        empty = [i for i, b in zip(self.ids, self.boxes, strict=True) if len(b) == 0]
        if empty:
            raise ValueError(f"{len(empty)} images have no box, e.g. {empty[:3]}")
        self.preprocess = preprocess
        self.source = source
        self.skipped: list[dict] = []

    # -- constructors for the other formats ------------------------------------------------------
    @classmethod
    def from_xml(
        cls,
        images: str | Path,
        annotations: str | Path,
        wnids: str | Path | Sequence[str],
        preprocess: Callable[[Image.Image], torch.Tensor] | None = None,
    ) -> ILSVRCBoxDataset:
        """Images folder + folder of per-image XML files + wnid list (file or sequence)."""
        images, annotations = Path(images), Path(annotations)
        if not images.is_dir():
            raise FileNotFoundError(f"images folder {images} does not exist. {LAYOUT_HINT}")
        files = sorted(annotations.glob("*.xml")) if annotations.is_dir() else []
        if not files:
            raise FileNotFoundError(f"no XML annotation files in {annotations}. {LAYOUT_HINT}")
        index = wnid_index(read_wnids(wnids) if isinstance(wnids, (str, Path)) else wnids)
        recs = []
        for f in files:
            name, _size, objects = parse_voc_xml(f)
            recs.append((name, objects, f))
        return cls._from_records(recs, images, index, preprocess, f"XML annotations {annotations}")

    @classmethod
    def from_kaggle_csv(
        cls,
        images: str | Path,
        solution_csv: str | Path,
        wnids: str | Path | Sequence[str],
        preprocess: Callable[[Image.Image], torch.Tensor] | None = None,
    ) -> ILSVRCBoxDataset:
        """Images folder + Kaggle ``LOC_val_solution.csv`` + wnid list (``LOC_synset_mapping.txt``)."""
        images = Path(images)
        if not images.is_dir():
            raise FileNotFoundError(f"images folder {images} does not exist. {LAYOUT_HINT}")
        if not Path(solution_csv).is_file():
            raise FileNotFoundError(f"{solution_csv} not found. {LAYOUT_HINT}")
        index = wnid_index(read_wnids(wnids) if isinstance(wnids, (str, Path)) else wnids)
        table = read_kaggle_solution(solution_csv)
        recs = [(k, table[k], Path(solution_csv)) for k in sorted(table)]
        return cls._from_records(recs, images, index, preprocess, f"Kaggle solution {solution_csv}")

    @classmethod
    def _from_records(cls, recs, images: Path, index: dict[str, int], preprocess, source: str):
        ids, paths, labels, boxes = [], [], [], []
        for name, objects, where in recs:
            if not objects:
                raise ValueError(f"{where}: image {name} has no box")
            unknown = sorted({w for w, _ in objects if w not in index})
            if unknown:
                raise ValueError(
                    f"{where}: wnid(s) {unknown[:3]} of image {name} are not in the wnid list "
                    f"({len(index)} wnids); pass the list of all 1000 ILSVRC wnids"
                )
            wnid = objects[0][0]
            ids.append(name)
            paths.append(_find_image(images, name))
            labels.append(index[wnid])
            boxes.append(np.array([b for w, b in objects if w == wnid], dtype=np.int64))
        return cls(ids, paths, labels, boxes, preprocess, source)

    def with_preprocess(self, preprocess: Callable[[Image.Image], torch.Tensor] | None) -> ILSVRCBoxDataset:
        """The same images and boxes with another ``preprocess`` (e.g. ten crops); a shallow copy."""
        other = copy.copy(self)
        other.preprocess = preprocess
        other.skipped = []
        return other

    # -- items -------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.ids)

    def image_path(self, i: int) -> Path:
        return self.paths[i]

    def load_image(self, i: int) -> Image.Image:
        """The image as PIL RGB, fully decoded (raises on a missing or corrupt file)."""
        return read_rgb(self.image_path(i))

    def target(self, i: int, size: tuple[int, int] | None = None) -> dict:
        """The target of item ``i``; with the image's ``size`` (H, W) the boxes are clipped to it."""
        boxes = self.boxes[i].copy()
        t = {"label": self.labels[i], "boxes": boxes, "size": size, "image_id": self.ids[i]}
        if size is not None:
            h, w = size
            boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w - 1)
            boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h - 1)
        return t

    def __getitem__(self, i: int):
        try:
            img = self.load_image(i)
        except Exception as exc:  # noqa: BLE001 - any unreadable file is skipped, not fatal
            msg = f"{type(exc).__name__}: {exc}"
            record = {"image_id": self.ids[i], "path": str(self.image_path(i)), "error": msg}
            self.skipped.append(record)
            warnings.warn(f"skipping unreadable image {self.image_path(i)} ({msg})", stacklevel=2)
            t = self.target(i)
            t["error"] = msg
            return None, t
        w, h = img.size
        x = self.preprocess(img) if self.preprocess is not None else img
        return x, self.target(i, (h, w))


class WSOLManifestDataset(ILSVRCBoxDataset):
    """The wsolevaluation text-manifest layout (see the module docstring)."""

    def __init__(self, root: str | Path, preprocess: Callable[[Image.Image], torch.Tensor] | None = None) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"ILSVRC root {self.root} does not exist. {SAMPLE_HINT}")
        meta = read_wsol_metadata(self.root)  # validated: file:line errors
        #: key -> (H, W) of the ORIGINAL image (``original_sizes.txt``; None when the folder has none)
        self.original_sizes = meta.original_sizes
        ids = meta.ids
        super().__init__(
            ids,
            [self.root / "images" / Path(i).name for i in ids],
            [meta.labels[i] for i in ids],
            [np.trunc(meta.boxes[i]).astype(np.int64) for i in ids],  # int(float(v)), as before
            preprocess,
            f"wsolevaluation manifests {self.root}",
        )


def _first_dir(root: Path, names: Sequence[str]) -> Path | None:
    for n in names:
        if (root / n).is_dir():
            return root / n
    return None


def open_ilsvrc_val(
    root: str | Path,
    preprocess: Callable[[Image.Image], torch.Tensor] | None = None,
    *,
    wnids: str | Path | Sequence[str] | None = None,
) -> ILSVRCBoxDataset:
    """Open an ILSVRC val folder in any of the three layouts (see :data:`LAYOUT_HINT`)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"ILSVRC root {root} does not exist. {LAYOUT_HINT}")
    if (root / "image_ids.txt").is_file():
        return WSOLManifestDataset(root, preprocess)
    wn = wnids
    if wn is None:
        for name in ("LOC_synset_mapping.txt", "wnids.txt", "synsets.txt"):
            if (root / name).is_file():
                wn = root / name
                break
    if (root / "LOC_val_solution.csv").is_file():
        images = _first_dir(root, ("ILSVRC/Data/CLS-LOC/val", "val", "images", "ILSVRC2012_img_val"))
        if images is None or wn is None:
            raise FileNotFoundError(f"{root} has LOC_val_solution.csv but no image folder or wnid list. {LAYOUT_HINT}")
        return ILSVRCBoxDataset.from_kaggle_csv(images, root / "LOC_val_solution.csv", wn, preprocess)
    ann = _first_dir(root, ("Annotations/CLS-LOC/val", "Annotations", "val_xml", "bbox_val", "val"))
    if ann is not None and any(ann.glob("*.xml")):
        images = _first_dir(root, ("ILSVRC2012_img_val", "images", "ILSVRC/Data/CLS-LOC/val", "val"))
        if images is None or wn is None:
            raise FileNotFoundError(f"{root} has XML annotations but no image folder or wnid list. {LAYOUT_HINT}")
        return ILSVRCBoxDataset.from_xml(images, ann, wn, preprocess)
    raise FileNotFoundError(f"{root} holds no ILSVRC val annotations camlib recognises. {LAYOUT_HINT}")


# ------------------------------------------------------------------------------------- train folder
ILSVRC_TRAIN_HINT = (
    "Give the ILSVRC2012 *train* folder (ILSVRC_TRAIN parameter, or the environment variable "
    "ILSVRC_TRAIN_ROOT): one sub-folder per class named by its WordNet id, holding that class's JPEGs, "
    "i.e. <root>/n01440764/n01440764_10026.JPEG ... (1000 folders). Make it from ILSVRC2012_img_train.tar "
    "(image-net.org): `mkdir train && tar -xf ILSVRC2012_img_train.tar -C train && cd train && for f in "
    "*.tar; do mkdir ${f%.tar} && tar -xf $f -C ${f%.tar} && rm $f; done`."
)


def default_ilsvrc_train_root() -> Path | None:
    """``$ILSVRC_TRAIN_ROOT`` if set, else None (there is no embedded ILSVRC train data)."""
    env = os.environ.get("ILSVRC_TRAIN_ROOT")
    return Path(env) if env else None


def ilsvrc_train_folder(
    root: str | Path | None,
    transform: Callable | None = None,
    *,
    expect_classes: int | None = 1000,
) -> ImageFiles:
    """The ILSVRC train folder as an :class:`~camlib.datasets.files.ImageFiles` of (transformed image,
    class index), with ``classes`` = the WordNet ids.

    Class indices follow the sorted folder names, i.e. torchvision's ImageNet order (the order of the
    val manifests' ``class_labels.txt``); images are listed per class, sorted (torchvision
    ``ImageFolder``'s order). ``transform`` defaults to
    :func:`camlib.datasets.transforms.imagenet_train_transform`. A missing or malformed folder (no class
    folders, a class folder without images, not ``expect_classes`` classes) raises with
    :data:`ILSVRC_TRAIN_HINT` (where to put the data).
    """
    if root is None:
        raise FileNotFoundError(f"no ILSVRC train folder given. {ILSVRC_TRAIN_HINT}")
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"ILSVRC train folder {root} does not exist. {ILSVRC_TRAIN_HINT}")
    paths, labels, classes = image_folder(root)
    if not classes:
        raise FileNotFoundError(f"{root} holds no class sub-folders. {ILSVRC_TRAIN_HINT}")
    if expect_classes is not None and len(classes) != expect_classes:
        raise ValueError(
            f"{root} holds {len(classes)} class folders, expected {expect_classes} "
            f"(first: {classes[:3]}). {ILSVRC_TRAIN_HINT}"
        )
    empty = [c for c, n in zip(classes, np.bincount(labels, minlength=len(classes)), strict=True) if n == 0]
    if empty:
        raise FileNotFoundError(f"class folder(s) {empty[:3]} of {root} hold no image "
                                f"({', '.join(IMAGE_SUFFIXES)}). {ILSVRC_TRAIN_HINT}")
    transform = transform if transform is not None else imagenet_train_transform()
    return ImageFiles(paths, labels, transform, classes=classes)


# ------------------------------------------------------------------------------------- batching
collate_with_targets = collate_skipping  # the ILSVRC name of the one collate that drops unreadable images


def make_loader(dataset: Dataset, batch_size: int = 32, num_workers: int = 0, pin_memory: bool = False) -> DataLoader:
    """A DataLoader over ``dataset`` in order, with :func:`collate_with_targets`: images decoded by
    ``num_workers`` worker processes; ``pin_memory=True`` (for a CUDA device) puts the batches in
    page-locked memory so that ``x.to("cuda", non_blocking=True)`` overlaps the copy."""
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=collate_with_targets,
        persistent_workers=False,
        pin_memory=pin_memory,
    )
