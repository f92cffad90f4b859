"""ILSVRC validation images with classes and boxes, from any of the three common annotation formats.

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
       image_sizes.txt      val/<file>,<width>,<height>   (optional)

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
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from camlib.datasets.targets import Target

__all__ = [
    "ILSVRCBoxDataset",
    "SAMPLE_HINT",
    "TargetList",
    "WSOLManifestDataset",
    "collate_with_targets",
    "default_ilsvrc_root",
    "make_loader",
    "open_ilsvrc_val",
    "parse_voc_xml",
    "read_kaggle_solution",
    "read_wnids",
    "wnid_index",
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

IMAGE_SUFFIXES = (".JPEG", ".jpeg", ".jpg", ".JPG", ".png", ".PNG")


def default_ilsvrc_root() -> Path | None:
    """``$ILSVRC_ROOT`` if set, else ``../shared/data/ilsvrc-val-sample`` beside the checkout, else None."""
    env = os.environ.get("ILSVRC_ROOT")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parents[3] / "shared" / "data" / "ilsvrc-val-sample"
    return here if here.is_dir() else None


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
    name = Path(name).stem if Path(name).suffix in IMAGE_SUFFIXES else name
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


def _read_lines(path: Path) -> list[list[str]]:
    if not path.is_file():
        raise FileNotFoundError(f"missing {path.name} in {path.parent}. {SAMPLE_HINT}")
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if line:
            rows.append([p.strip() for p in line.split(",")])
            if not rows[-1][0]:
                raise ValueError(f"{path}:{n}: empty image key")
    return rows


def _find_image(folder: Path, image_id: str) -> Path:
    for suf in IMAGE_SUFFIXES:
        p = folder / f"{image_id}{suf}"
        if p.is_file():
            return p
    return folder / f"{image_id}.JPEG"  # reported as missing when read


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
        path = self.image_path(i)
        if not path.is_file():
            raise FileNotFoundError(f"image {path} is missing")
        with Image.open(path) as im:
            im.load()  # decode now: a truncated file fails here, not later
            return im.convert("RGB")

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

    def __init__(self, root: str | Path, preprocess: Callable[[Image.Image], torch.Tensor] | None = None) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"ILSVRC root {self.root} does not exist. {SAMPLE_HINT}")
        ids = [r[0] for r in _read_lines(self.root / "image_ids.txt")]
        labels = {r[0]: int(r[1]) for r in _read_lines(self.root / "class_labels.txt")}
        boxes: dict[str, list[list[int]]] = defaultdict(list)
        for r in _read_lines(self.root / "localization.txt"):
            boxes[r[0]].append([int(float(v)) for v in r[1:5]])
        missing = [i for i in ids if i not in labels or i not in boxes]
        if missing:
            raise ValueError(f"{len(missing)} image ids have no class or no box, e.g. {missing[:3]}")
        super().__init__(
            ids,
            [self.root / "images" / Path(i).name for i in ids],
            [labels[i] for i in ids],
            [np.asarray(boxes[i], dtype=np.int64) for i in ids],
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


# ------------------------------------------------------------------------------------- batching
class TargetList(list):
    """The targets of a batch; ``skipped`` lists the items dropped because their image was unreadable."""

    skipped: list[dict]

    def __init__(self, items=(), skipped=()) -> None:
        super().__init__(items)
        self.skipped = list(skipped)


def collate_with_targets(batch):
    """Stack images, keep targets as a list (images have different sizes and box counts).

    Items whose image could not be read (``x is None``) are dropped and listed in ``targets.skipped``;
    if all are, the image tensor is empty (0 images).
    """
    kept = [(x, t) for x, t in batch if x is not None]
    skipped = [{"image_id": t.get("image_id"), "error": t.get("error")} for x, t in batch if x is None]
    if not kept:
        return torch.empty(0), TargetList([], skipped)
    xs, targets = zip(*kept, strict=True)
    return torch.stack(list(xs)), TargetList(targets, skipped)


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
