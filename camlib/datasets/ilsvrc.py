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

Formats 2 and 3 name classes by WordNet id and need the list of ALL 1000 wnids to turn them into
torchvision's indices (a class index is the wnid's position among the sorted 1000, so a partial list
would shift every index: without tench, goldfish would become class 0): ``LOC_synset_mapping.txt``
(``n01440764 tench, Tinca tinca``, shipped with the Kaggle data) or any file with one wnid per line
(:func:`read_wnids`); a list of another length is refused, and so is one that puts a wnid of known
index (:data:`~camlib.datasets.imagenette.IMAGENETTE_CLASSES`: tench 0, ..., parachute 701) elsewhere.
Their coordinates are used as written (as wsolevaluation does when it builds its manifests from the
XML files); a box on the image's edge (ILSVRC's XML uses ``xmax == width`` at the right edge) is
clipped to the last pixel. They are validated when opened, through
:mod:`camlib.datasets.manifest` as the wsolevaluation layout is, each error a
:class:`~camlib.datasets.manifest.ManifestError` naming the file and line: XML / CSV parse errors,
coordinates that are not numbers, duplicate image ids (two XML files for one image, two CSV rows),
wnids not in the list, inverted or negative boxes, and boxes outside the image (the XML's
``<size>``; for the Kaggle CSV, the image file's header when the file is there). An image whose boxes
name several classes takes the class of its first box and keeps that class's boxes (ILSVRC val
images have one class each).
"""

from __future__ import annotations

import copy
import csv
import os
import warnings
import xml.parsers.expat as expat
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
    image_size,
    is_image_file,
    read_rgb,
)
from camlib.datasets.manifest import ImageRecord, ManifestError, check_box, read_rows, to_number, unique_keys
from camlib.datasets.targets import Target
from camlib.datasets.transforms import imagenet_train_transform

__all__ = [
    "ILSVRCBoxDataset",
    "ILSVRC_TRAIN_HINT",
    "N_CLASSES",
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
    "check_wnids",
    "wnid_index",
    "wsol_records",
]

#: the ten Imagenette classes: WordNet id -> (name, index in the 1000-class order); known positions
#: that a WordNet-id list must respect
IMAGENETTE_CLASSES: dict[str, tuple[str, int]] = {
    "n01440764": ("tench", 0),
    "n02102040": ("English springer", 217),
    "n02979186": ("cassette player", 482),
    "n03000684": ("chain saw", 491),
    "n03028079": ("church", 497),
    "n03394916": ("French horn", 566),
    "n03417042": ("garbage truck", 569),
    "n03425413": ("gas pump", 571),
    "n03445777": ("golf ball", 574),
    "n03888257": ("parachute", 701),
}

N_CLASSES = 1000  #: ILSVRC2012's classes: a wnid list must name them all

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
WNID_FIX = (
    "pass the list of all 1000 ILSVRC2012 wnids: LOC_synset_mapping.txt (Kaggle's ImageNet Object "
    "Localization Challenge) or a file of the 1000 wnids, one per line ('n01440764' or 'n01440764 tench, ...')"
)


def read_wnids(path: str | Path, n_classes: int = N_CLASSES) -> list[str]:
    """WordNet ids from ``LOC_synset_mapping.txt`` (``n01440764 tench, ...``) or a plain list, checked by
    :func:`check_wnids` (all ``n_classes`` of them, no duplicate).

    The first token of every non-empty line must be a wnid (``n`` + 8 digits); returned sorted
    (torchvision's class order). Errors are :class:`~camlib.datasets.manifest.ManifestError` s naming
    the file and line.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"wnid list {path} not found. {LAYOUT_HINT}")
    wnids: list[tuple[str, int]] = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        tok = line.strip().replace(",", " ").split()
        if not tok:
            continue
        w = tok[0]
        if not (len(w) == 9 and w[0] == "n" and w[1:].isdigit()):
            raise ManifestError(path, n, f"{w!r} is not a WordNet id like n01440764", WNID_FIX)
        wnids.append((w, n))
    unique_keys(wnids, path, WNID_FIX)  # a repeated wnid names both lines
    return check_wnids([w for w, _ in wnids], path, n_classes)


def check_wnids(wnids: Iterable[str], where: str | Path = "wnids", n_classes: int = N_CLASSES) -> list[str]:
    """The sorted wnids, after checking that they are ``n_classes`` distinct ids and that every wnid of
    known index (:data:`~camlib.datasets.imagenette.IMAGENETTE_CLASSES`) sits at that index.

    Class ``k`` is the ``k``-th of the sorted list (torchvision's order), so a list missing one wnid
    shifts every later index by one: it is refused rather than read.
    """
    wnids = sorted(wnids)
    if len(set(wnids)) != len(wnids):
        raise ManifestError(where, None, "repeated wnids", WNID_FIX)
    if len(wnids) != n_classes:
        raise ManifestError(
            where,
            None,
            f"{len(wnids)} wnids, expected all {n_classes}: class indices are positions "
            "among the sorted wnids, so a partial list shifts them (without n01440764 tench, "
            "n01443537 goldfish would become class 0)",
            WNID_FIX,
        )
    if n_classes == N_CLASSES:
        for w, (name, k) in IMAGENETTE_CLASSES.items():
            if w in wnids and wnids.index(w) != k:
                raise ManifestError(
                    where,
                    None,
                    f"{w} ({name}) would be class {wnids.index(w)}, but it is class "
                    f"{k} of ILSVRC2012: the list is not ILSVRC2012's 1000 wnids",
                    WNID_FIX,
                )
    return wnids


def wnid_index(wnids: Iterable[str]) -> dict[str, int]:
    """wnid -> class index in torchvision's order (position among the sorted wnids)."""
    return {w: i for i, w in enumerate(sorted(wnids))}


def _wnid_index(wnids: str | Path | Sequence[str]) -> dict[str, int]:
    """The checked index of a wnid list given as a file or as a sequence."""
    if isinstance(wnids, (str, os.PathLike)):
        return wnid_index(read_wnids(wnids))
    return wnid_index(check_wnids(wnids, "the wnids argument"))


# ------------------------------------------------------------------------------------- parsers
XML_FIX = (
    "an ILSVRC / PASCAL VOC annotation: <annotation><filename>ID</filename><size><width>W</width>"
    "<height>H</height></size> and per box <object><name>WNID</name><bndbox><xmin>x0</xmin><ymin>y0</ymin>"
    "<xmax>x1</xmax><ymax>y1</ymax></bndbox></object>, 0 <= x0 <= x1 <= W, 0 <= y0 <= y1 <= H"
)
KAGGLE_FIX = (
    "LOC_val_solution.csv: header 'ImageId,PredictionString', then one row per image: ID,'WNID x0 y0 x1 y1 "
    "WNID x0 y0 x1 y1 ...', each image once, boxes inside the image with x0 <= x1 and y0 <= y1"
)
_BOX_TAGS = ("xmin", "ymin", "xmax", "ymax")


@dataclass
class _Annotation:
    """One image's annotation as read: its id, (H, W) if known, ``[(wnid, box, line)]``, file and line."""

    name: str
    size_hw: tuple[int, int] | None
    objects: list[tuple[str, list[int], int]]
    path: Path
    line: int | None


def _read_voc_xml(path: Path) -> _Annotation:
    """Parse one VOC XML file with expat, keeping the line of every element (for the errors)."""
    parser = expat.ParserCreate()
    stack: list[str] = []
    text: list[str] = []
    found: dict[str, tuple[str, int]] = {}  # "filename" / "width" / "height" -> (text, line)
    objects: list[dict] = []

    def start(tag: str, _attrs) -> None:
        stack.append(tag)
        text.clear()
        line = parser.CurrentLineNumber
        if tag == "object":
            objects.append({"line": line, "name": None, "box": {}, "bndbox": None})
        elif tag == "bndbox" and objects and "object" in stack[:-1]:
            objects[-1]["bndbox"] = line

    def end(tag: str) -> None:
        value, line = "".join(text).strip(), parser.CurrentLineNumber
        parent = stack[-2] if len(stack) > 1 else ""
        if tag == "filename" and len(stack) == 2:
            found["filename"] = (value, line)
        elif tag in ("width", "height") and parent == "size" and len(stack) == 3:
            found[tag] = (value, line)
        elif tag == "name" and parent == "object" and objects:
            objects[-1]["name"] = (value, line)
        elif tag in _BOX_TAGS and parent == "bndbox" and objects:
            objects[-1]["box"][tag] = (value, line)
        stack.pop()
        text.clear()

    parser.StartElementHandler, parser.EndElementHandler = start, end
    parser.CharacterDataHandler = text.append
    try:
        parser.Parse(path.read_bytes(), True)
    except expat.ExpatError as exc:
        raise ManifestError(
            path,
            exc.lineno,
            f"not valid XML ({expat.ErrorString(exc.code)}, column {exc.offset + 1})",
            XML_FIX,
        ) from None
    name, name_line = found.get("filename", (path.stem, None))
    name = name or path.stem
    name = Path(name).stem if is_image_file(name) else name
    size_hw = None
    if "width" in found and "height" in found:
        (w, wl), (h, hl) = found["width"], found["height"]
        size_hw = (to_number(h, path, hl, XML_FIX, int), to_number(w, path, wl, XML_FIX, int))
        if size_hw[0] <= 0 or size_hw[1] <= 0:
            raise ManifestError(path, wl, f"image size {size_hw[1]} x {size_hw[0]} is not positive", XML_FIX)
    out = []
    for obj in objects:
        if obj["bndbox"] is None:
            continue  # an object without a box (none in ILSVRC val) names no box to use
        if obj["name"] is None or not obj["name"][0]:
            raise ManifestError(path, obj["line"], "<object> without a <name> (its wnid)", XML_FIX)
        missing = [k for k in _BOX_TAGS if k not in obj["box"]]
        if missing:
            raise ManifestError(path, obj["bndbox"], f"<bndbox> lacks <{'>, <'.join(missing)}>", XML_FIX)
        box = [
            int(to_number(obj["box"][k][0], path, obj["box"][k][1], XML_FIX)) for k in _BOX_TAGS
        ]  # int(float(v))
        out.append((obj["name"][0], box, obj["bndbox"]))
    return _Annotation(name, size_hw, out, path, name_line)


def parse_voc_xml(path: str | Path) -> tuple[str, tuple[int, int] | None, list[tuple[str, list[int]]]]:
    """One ILSVRC / PASCAL-VOC annotation file -> (image id, (width, height) or None, [(wnid, box)]).

    Parse errors and coordinates that are not numbers raise
    :class:`~camlib.datasets.manifest.ManifestError` naming the file and line."""
    a = _read_voc_xml(Path(path))
    return (
        a.name,
        None if a.size_hw is None else (a.size_hw[1], a.size_hw[0]),
        [(w, b) for w, b, _ in a.objects],
    )


def _read_kaggle(path: Path) -> list[_Annotation]:
    """The rows of ``LOC_val_solution.csv`` as annotations (sizes unknown), duplicate ids refused."""
    out: list[_Annotation] = []
    seen: dict[str, int] = {}
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        try:
            header = next(reader, None)
            if not header or [h.strip() for h in header[:2]] != ["ImageId", "PredictionString"]:
                raise ManifestError(
                    path, 1, f"expected the header 'ImageId,PredictionString', got {header}", KAGGLE_FIX
                )
            for row in reader:
                n = reader.line_num
                if not row or not row[0].strip():
                    continue
                name = row[0].strip()
                if name in seen:
                    raise ManifestError(
                        path, n, f"duplicate image id {name!r} (first on line {seen[name]})", KAGGLE_FIX
                    )
                seen[name] = n
                tok = row[1].split() if len(row) > 1 else []
                if len(tok) % 5:
                    raise ManifestError(
                        path,
                        n,
                        f"PredictionString must hold groups of 'wnid x0 y0 x1 y1', got {len(tok)} fields",
                        KAGGLE_FIX,
                    )
                objects = [
                    (tok[i], [int(to_number(v, path, n, KAGGLE_FIX)) for v in tok[i + 1 : i + 5]], n)
                    for i in range(0, len(tok), 5)
                ]
                out.append(_Annotation(name, None, objects, path, n))
        except csv.Error as exc:
            raise ManifestError(path, reader.line_num, f"not valid CSV ({exc})", KAGGLE_FIX) from None
    return out


def read_kaggle_solution(path: str | Path) -> dict[str, list[tuple[str, list[int]]]]:
    """``LOC_val_solution.csv`` -> {image id: [(wnid, box), ...]} in file order.

    A bad header, a PredictionString that is not groups of five, a coordinate that is not a number
    or a repeated image id raises :class:`~camlib.datasets.manifest.ManifestError` naming the line."""
    return {a.name: [(w, b) for w, b, _ in a.objects] for a in _read_kaggle(Path(path))}


def _header_size(path: Path) -> tuple[int, int] | None:
    """(H, W) from an image file's header; None when the file is missing or not an image (reported when
    the image is read)."""
    try:
        return image_size(path)
    except (OSError, ValueError):
        return None


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
            raise ManifestError(
                path,
                n,
                f"unknown class index {c} (expected 0..{n_classes - 1})",
                "class indices follow torchvision's order of the sorted WordNet ids",
            )
        labels[key] = c
    sizes = _wsol_sizes(folder / "image_sizes.txt", lines)
    original = _wsol_sizes(folder / "original_sizes.txt", lines)
    path = folder / "localization.txt"
    boxes: dict[str, list[list[float]]] = defaultdict(list)
    for n, (key, *vals) in read_rows(path, n_fields=5, sep=",", fix=f"{SAMPLE_HINT} ({WSOL_FIX})"):
        if key not in lines:
            raise ManifestError(path, n, f"unknown image id {key!r} (not in image_ids.txt)", WSOL_FIX)
        box = [to_number(v, path, n, WSOL_FIX) for v in vals[:4]]
        check_box(
            box,
            sizes.get(key) if sizes else None,
            path,
            n,
            "boxes are x0,y0,x1,y1 in the pixels of image_sizes.txt, inside the image, x0 <= x1 and y0 <= y1",
        )
        boxes[key].append(box)
    for key in ids:
        missing = [
            f for f, table in (("class_labels.txt", labels), ("localization.txt", boxes)) if key not in table
        ]
        if missing:
            raise ManifestError(
                ids_path,
                lines[key],
                f"image {key!r} has no line in {' or '.join(missing)}",
                "give every image of image_ids.txt a class and at least one box, or drop it",
            )
    return WSOLMetadata(
        folder,
        ids,
        labels,
        {k: np.asarray(boxes[k], dtype=np.float64) for k in ids},
        sizes,
        original,
        lines,
        label_lines,
    )


def wsol_records(root: str | Path) -> list[ImageRecord]:
    """The images of a wsolevaluation folder as typed records (``Target``: label 0..999, boxes rounded to
    int in the pixels of the file here (clipped to ``size``), ``size`` from ``image_sizes.txt`` when given, ``image_id`` the
    key; ``extra["original_size"]`` (H, W) from ``original_sizes.txt`` when given)."""
    meta = read_wsol_metadata(root)
    out = []
    for key in meta.ids:
        extra = (
            {"original_size": meta.original_sizes[key]}
            if meta.original_sizes and key in meta.original_sizes
            else {}
        )
        size = meta.sizes.get(key) if meta.sizes else None
        boxes = np.rint(meta.boxes[key])
        if size is not None:  # coordinates == W or H (the edge convention) -> the last pixel
            boxes = np.minimum(boxes, [size[1] - 1, size[0] - 1, size[1] - 1, size[0] - 1])
        t = Target(meta.labels[key], boxes, size, key, extra=extra)
        out.append(ImageRecord(_find_image(meta.folder / "images", Path(key).stem), t, "val"))
    return out


# ------------------------------------------------------------------------------------- datasets
class ILSVRCBoxDataset(Dataset):
    """(image tensor, target) pairs; target: a :class:`~camlib.datasets.targets.Target` (label, boxes (n, 4) int64, size (H, W), image_id).

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
        index = _wnid_index(wnids)
        recs = [_read_voc_xml(f) for f in files]
        return cls._from_records(recs, images, index, preprocess, f"XML annotations {annotations}")

    @classmethod
    def from_kaggle_csv(
        cls,
        images: str | Path,
        solution_csv: str | Path,
        wnids: str | Path | Sequence[str],
        preprocess: Callable[[Image.Image], torch.Tensor] | None = None,
        *,
        check_sizes: bool = True,
    ) -> ILSVRCBoxDataset:
        """Images folder + Kaggle ``LOC_val_solution.csv`` + wnid list (``LOC_synset_mapping.txt``).

        The CSV gives no image sizes: with ``check_sizes`` each image's (H, W) is read from its file's
        header (the pixels are not decoded) to check its boxes; a missing or unreadable file is left
        to be reported (and skipped) when it is read."""
        images = Path(images)
        if not images.is_dir():
            raise FileNotFoundError(f"images folder {images} does not exist. {LAYOUT_HINT}")
        if not Path(solution_csv).is_file():
            raise FileNotFoundError(f"{solution_csv} not found. {LAYOUT_HINT}")
        index = _wnid_index(wnids)
        recs = sorted(_read_kaggle(Path(solution_csv)), key=lambda a: a.name)
        if check_sizes:
            for a in recs:
                a.size_hw = _header_size(_find_image(images, a.name))
        return cls._from_records(recs, images, index, preprocess, f"Kaggle solution {solution_csv}")

    @classmethod
    def _from_records(
        cls, recs: Sequence[_Annotation], images: Path, index: dict[str, int], preprocess, source: str
    ):
        """Validate the annotations (duplicate ids, boxes, wnids; errors name file and line) and build."""
        ids, paths, labels, boxes = [], [], [], []
        first: dict[str, _Annotation] = {}
        for a in recs:
            fix = XML_FIX if a.path.suffix.lower() == ".xml" else KAGGLE_FIX
            if a.name in first:
                f = first[a.name]
                raise ManifestError(
                    a.path,
                    a.line,
                    f"duplicate image id {a.name!r} (first in {f.path}" + (f":{f.line})" if f.line else ")"),
                    fix,
                )
            first[a.name] = a
            if not a.objects:
                raise ManifestError(a.path, a.line, f"image {a.name} has no box", fix)
            for wnid, box, line in a.objects:
                if wnid not in index:
                    raise ManifestError(
                        a.path,
                        line,
                        f"wnid {wnid!r} of image {a.name} is not in the wnid list ({len(index)} wnids)",
                        WNID_FIX,
                    )
                check_box(box, a.size_hw, a.path, line, fix)
            wnid = a.objects[0][0]
            ids.append(a.name)
            paths.append(_find_image(images, a.name))
            labels.append(index[wnid])
            boxes.append(np.array([b for w, b, _ in a.objects if w == wnid], dtype=np.int64))
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

    def target(self, i: int, size: tuple[int, int] | None = None) -> Target:
        """The :class:`~camlib.datasets.targets.Target` of item ``i``; with the image's ``size`` (H, W)
        the boxes are clipped to it."""
        boxes = self.boxes[i].copy()
        if size is not None:
            h, w = size
            boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w - 1)
            boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h - 1)
        return Target(label=self.labels[i], boxes=boxes, size=size, image_id=self.ids[i])

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

    def __init__(
        self, root: str | Path, preprocess: Callable[[Image.Image], torch.Tensor] | None = None
    ) -> None:
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
            raise FileNotFoundError(
                f"{root} has LOC_val_solution.csv but no image folder or wnid list. {LAYOUT_HINT}"
            )
        return ILSVRCBoxDataset.from_kaggle_csv(images, root / "LOC_val_solution.csv", wn, preprocess)
    ann = _first_dir(root, ("Annotations/CLS-LOC/val", "Annotations", "val_xml", "bbox_val", "val"))
    if ann is not None and any(ann.glob("*.xml")):
        images = _first_dir(root, ("ILSVRC2012_img_val", "images", "ILSVRC/Data/CLS-LOC/val", "val"))
        if images is None or wn is None:
            raise FileNotFoundError(
                f"{root} has XML annotations but no image folder or wnid list. {LAYOUT_HINT}"
            )
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

    One subset is accepted as it is: imagenette2's ``train/`` folder (class folders that are all
    Imagenette WordNet ids, :data:`IMAGENETTE_CLASSES`): its labels are then the classes' indices in
    the 1000-class order (so a 1000-way network trains and evaluates on ILSVRC val unchanged) and
    ``classes`` lists the folders' wnids; a note says so.
    """
    if root is None:
        raise FileNotFoundError(f"no ILSVRC train folder given. {ILSVRC_TRAIN_HINT}")
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"ILSVRC train folder {root} does not exist. {ILSVRC_TRAIN_HINT}")
    paths, labels, classes = image_folder(root)
    if not classes:
        raise FileNotFoundError(f"{root} holds no class sub-folders. {ILSVRC_TRAIN_HINT}")
    imagenette = bool(classes) and set(classes) <= set(IMAGENETTE_CLASSES) and len(classes) != expect_classes
    if imagenette:
        print(
            f"NOTE: {root} holds {len(classes)} Imagenette class folders, not the {expect_classes} ILSVRC classes: "
            f"labels are their indices in the 1000-class order"
        )
    elif expect_classes is not None and len(classes) != expect_classes:
        raise ValueError(
            f"{root} holds {len(classes)} class folders, expected {expect_classes} "
            f"(first: {classes[:3]}). {ILSVRC_TRAIN_HINT}"
        )
    empty = [c for c, n in zip(classes, np.bincount(labels, minlength=len(classes)), strict=True) if n == 0]
    if empty:
        raise FileNotFoundError(
            f"class folder(s) {empty[:3]} of {root} hold no image "
            f"({', '.join(IMAGE_SUFFIXES)}). {ILSVRC_TRAIN_HINT}"
        )
    transform = transform if transform is not None else imagenet_train_transform()
    if imagenette:
        labels = np.asarray([IMAGENETTE_CLASSES[c][1] for c in classes], dtype=np.int64)[np.asarray(labels)]
    return ImageFiles(paths, labels, transform, classes=classes)


# ------------------------------------------------------------------------------------- batching
collate_with_targets = collate_skipping  # the ILSVRC name of the one collate that drops unreadable images


def make_loader(
    dataset: Dataset, batch_size: int = 32, num_workers: int = 0, pin_memory: bool = False
) -> DataLoader:
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
