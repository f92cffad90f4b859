"""CUB-200-2011 (Wah et al. 2011): 11,788 bird photos of 200 species, one box each, official split.

Fetched, verified and extracted by :func:`camlib.datasets.download.prepare` (registry entry
``"cub200_2011"``: CaltechDATA archive, md5 checked, unsafe members refused). Read from the files of
the archive itself (see :data:`camlib.datasets.download.REGISTRY`'s layout):

- ``images.txt`` (id -> path), ``image_class_labels.txt`` (id -> class 1..200, we use 0..199),
  ``classes.txt`` (class names), ``train_test_split.txt`` (1 = train: 5,994 images; 0 = test: 5,794);
- ``bounding_boxes.txt``: ``x y width height`` as floats. camlib boxes are INCLUSIVE pixel boxes
  (:mod:`camlib.core.boxes`): ``x0 = round(x)``, ``y0 = round(y)``, ``x1 = round(x + width) - 1``,
  ``y1 = round(y + height) - 1`` (so a box covers ``width x height`` pixels), clipped to the image when
  its size is known. (wsolevaluation writes ``x + width`` as the inclusive end: one pixel wider.)
  OPTIONAL: a copy without it (``../shared/data/cub-100``) is read with ``boxes = None``, and anything
  that needs boxes raises :class:`~camlib.datasets.manifest.BoxesUnavailable` saying so.

Class ids need not be contiguous (a 100-species subset keeps the official numbers): labels are the
position of the class id among the sorted ids of ``classes.txt`` (0..199 for the full set, as
``id - 1``). The files are validated when read (parse errors, duplicate ids, unknown image or class
ids, a split flag other than 0/1, boxes of non-positive size; and, once the images' sizes are read
by :meth:`CUBDataset.gt_boxes`, boxes reaching outside their image): a
:class:`~camlib.datasets.manifest.ManifestError` names the file and line.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

from camlib.datasets.download import REGISTRY, DatasetNotFoundError, prepare
from camlib.datasets.files import read_rgb
from camlib.datasets.manifest import BoxesUnavailable, ImageRecord, ManifestError, check_box, to_number
from camlib.datasets.targets import Target

__all__ = [
    "CUB_SPEC",
    "BoxesUnavailable",
    "CUBDataset",
    "CUBMetadata",
    "cub_folder",
    "cub_records",
    "read_cub_metadata",
    "xywh_to_inclusive",
]

NO_BOXES = (
    "this CUB copy has no bounding_boxes.txt (e.g. ../shared/data/cub-100, whose files were renamed so the "
    "official boxes cannot be joined): boxes, GT-box crops and CUB localization need the full "
    "CUB-200-2011 (`python -m camlib.datasets.fetch cub`)"
)

CUB_SPEC = REGISTRY["cub200_2011"]


def xywh_to_inclusive(xywh, sizes=None) -> np.ndarray:
    """``(x, y, width, height)`` float boxes -> inclusive int ``(x0, y0, x1, y1)`` (see the module doc).

    ``sizes``: optional (N, 2) image sizes ``(H, W)`` to clip to.
    """
    b = np.asarray(xywh, dtype=np.float64).reshape(-1, 4)
    out = np.stack(
        [
            np.round(b[:, 0]),
            np.round(b[:, 1]),
            np.round(b[:, 0] + b[:, 2]) - 1,
            np.round(b[:, 1] + b[:, 3]) - 1,
        ],
        axis=1,
    ).astype(np.int64)
    out[:, 2] = np.maximum(out[:, 2], out[:, 0])
    out[:, 3] = np.maximum(out[:, 3], out[:, 1])
    out[:, :2] = np.maximum(out[:, :2], 0)
    if sizes is not None:
        s = np.asarray(sizes, dtype=np.int64).reshape(-1, 2)
        out[:, 2] = np.minimum(out[:, 2], s[:, 1] - 1)
        out[:, 3] = np.minimum(out[:, 3], s[:, 0] - 1)
        out[:, 0] = np.minimum(out[:, 0], out[:, 2])
        out[:, 1] = np.minimum(out[:, 1], out[:, 3])
    return out


@dataclass
class CUBMetadata:
    """Every image of the dataset, in ``images.txt`` order (image ids ascending)."""

    folder: Path
    image_ids: np.ndarray  # (N,) int, 1-based as in the files
    paths: list[str]  # relative to folder / "images"
    labels: np.ndarray  # (N,) int, 0..K-1: position of the class id among the sorted ids of classes.txt
    is_train: np.ndarray  # (N,) bool
    boxes_xywh: np.ndarray | None  # (N, 4) float, as written; None without bounding_boxes.txt
    classes: list[str]
    class_ids: list[int] = field(
        default_factory=list
    )  # the official class numbers, sorted (label k <-> class_ids[k])
    box_lines: np.ndarray | None = None  # (N,) int: each image's line in bounding_boxes.txt (for errors)

    @property
    def has_boxes(self) -> bool:
        return self.boxes_xywh is not None

    def subset(self, index) -> CUBMetadata:
        """The images at ``index`` (positions in this metadata, e.g. from
        :func:`camlib.datasets.splits.cap_per_class`), classes unchanged."""
        i = np.asarray(index, dtype=np.int64)
        return CUBMetadata(
            self.folder,
            self.image_ids[i],
            [self.paths[k] for k in i],
            self.labels[i],
            self.is_train[i],
            None if self.boxes_xywh is None else self.boxes_xywh[i],
            self.classes,
            self.class_ids,
            None if self.box_lines is None else self.box_lines[i],
        )

    def capped(self, n_train: int | None, n_test: int | None, seed: int = 0) -> CUBMetadata:
        """At most ``n_train`` training and ``n_test`` test images per class (seeded; None: all), the
        official split kept."""
        from camlib.datasets.splits import cap_per_class

        keep = []
        for part, n in ((True, n_train), (False, n_test)):
            idx = np.flatnonzero(self.is_train == part)
            keep.append(idx[cap_per_class(self.labels[idx], n, seed)])
        return self.subset(np.sort(np.concatenate(keep)))


_BOX_FIX = "boxes are '<id> x y width height' in pixels, inside the image: x + width <= W and y + height <= H"
_CUB_FIX = "CUB text files hold '<id> <value ...>' per line, 1-based integer ids, each id once (see CUB_200_2011/README)"


def _read_table(
    path: Path, n_fields: int, optional: bool = False
) -> tuple[dict[int, list[str]], dict[int, int]] | None:
    """``({id: fields}, {id: line})`` of one CUB text file; parse errors and duplicate ids are refused."""
    if not path.is_file():
        if optional:
            return None
        raise DatasetNotFoundError(f"missing {path}.\n" + CUB_SPEC.where(path.parent.parent))
    rows: dict[int, list[str]] = {}
    lines: dict[int, int] = {}
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) < n_fields + 1:
            raise ManifestError(
                path, line_no, f"expected an id and {n_fields} field(s), got {line!r}", _CUB_FIX
            )
        key = to_number(fields[0], path, line_no, _CUB_FIX, int)
        if key in rows:
            raise ManifestError(path, line_no, f"duplicate id {key} (first on line {lines[key]})", _CUB_FIX)
        rows[key] = fields[1:] if n_fields > 1 else [" ".join(fields[1:])]
        lines[key] = line_no
    return rows, lines


def read_cub_metadata(folder: str | Path) -> CUBMetadata:
    """Parse and validate the text files of a CUB folder (every image id in every file; ``bounding_boxes.txt``
    optional: ``boxes_xywh=None`` without it)."""
    folder = Path(folder)
    images, _ = _read_table(folder / "images.txt", 1)
    labels, label_lines = _read_table(folder / "image_class_labels.txt", 1)
    split, split_lines = _read_table(folder / "train_test_split.txt", 1)
    classes, _ = _read_table(folder / "classes.txt", 1)
    boxes_table = _read_table(folder / "bounding_boxes.txt", 4, optional=True)
    ids = sorted(images)
    tables = [("image_class_labels.txt", labels, label_lines), ("train_test_split.txt", split, split_lines)]
    if boxes_table is not None:
        tables.append(("bounding_boxes.txt", *boxes_table))
    for name, table, lines in tables:
        missing = [i for i in ids if i not in table]
        if missing:
            raise ManifestError(
                folder / name, None, f"lacks image id(s) {missing[:5]} of images.txt", _CUB_FIX
            )
        unknown = [i for i in table if i not in images]
        if unknown:
            raise ManifestError(
                folder / name,
                lines[unknown[0]],
                f"unknown image id {unknown[0]} (not in images.txt)",
                _CUB_FIX,
            )
    class_ids = sorted(classes)
    index = {c: k for k, c in enumerate(class_ids)}
    label_list = []
    for i in ids:
        c = to_number(labels[i][0], folder / "image_class_labels.txt", label_lines[i], _CUB_FIX, int)
        if c not in index:
            raise ManifestError(
                folder / "image_class_labels.txt",
                label_lines[i],
                f"unknown class id {c} (not in classes.txt)",
                "list every class id used in classes.txt",
            )
        label_list.append(index[c])
    for i in ids:
        if split[i][0] not in ("0", "1"):
            raise ManifestError(
                folder / "train_test_split.txt",
                split_lines[i],
                f"split flag {split[i][0]!r} is not 0 or 1",
                "1 = training image, 0 = test image",
            )
    boxes_xywh = box_lines = None
    if boxes_table is not None:
        table, lines = boxes_table
        path = folder / "bounding_boxes.txt"
        boxes_xywh = np.asarray(
            [[to_number(v, path, lines[i], _CUB_FIX) for v in table[i][:4]] for i in ids], dtype=np.float64
        ).reshape(-1, 4)
        bad = np.flatnonzero(
            (boxes_xywh[:, 2] <= 0) | (boxes_xywh[:, 3] <= 0) | (boxes_xywh[:, :2] < 0).any(1)
        )
        if len(bad):
            raise ManifestError(
                path,
                lines[ids[bad[0]]],
                f"box {boxes_xywh[bad[0]].tolist()} has a negative corner or a non-positive width / height",
                _BOX_FIX,
            )
        box_lines = np.asarray([lines[i] for i in ids], dtype=np.int64)
    return CUBMetadata(
        folder=folder,
        image_ids=np.asarray(ids, dtype=np.int64),
        paths=[images[i][0] for i in ids],
        labels=np.asarray(label_list, dtype=np.int64),
        is_train=np.asarray([split[i][0] == "1" for i in ids], dtype=bool),
        boxes_xywh=boxes_xywh,
        classes=[classes[c][0] for c in class_ids],
        class_ids=class_ids,
        box_lines=box_lines,
    )


def cub_folder(root: str | Path | None = None, *, download: bool = False, progress: bool = True) -> Path:
    """The extracted ``CUB_200_2011`` folder under ``root`` (fetched when ``download``; else an error
    saying where to put the archive or the extracted files)."""
    if root is not None and (Path(root) / "images.txt").is_file():  # the CUB_200_2011 folder itself
        return Path(root)
    return prepare("cub200_2011", root, download=download, progress=progress)


def cub_records(folder: str | Path | CUBMetadata, split: str = "all") -> list[ImageRecord]:
    """The images of one split (``"train"``, ``"test"``, ``"all"``) as typed records: ``Target(label 0..K-1,
    boxes)``, boxes inclusive and unclipped (clipped when read by a RecordDataset); without
    ``bounding_boxes.txt`` the boxes are empty and ``extra["boxes"] == "unavailable"``."""
    meta = folder if isinstance(folder, CUBMetadata) else read_cub_metadata(folder)
    if split not in ("train", "test", "all"):
        raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")
    boxes = xywh_to_inclusive(meta.boxes_xywh) if meta.has_boxes else None
    out = []
    for k in range(len(meta.labels)):
        part = "train" if meta.is_train[k] else "test"
        if split not in ("all", part):
            continue
        t = Target(
            meta.labels[k],
            boxes[k] if boxes is not None else np.zeros((0, 4)),
            None,
            int(meta.image_ids[k]),
            extra={"class_id": meta.class_ids[meta.labels[k]]}
            | ({} if boxes is not None else {"boxes": "unavailable"}),
        )
        out.append(ImageRecord(meta.folder / "images" / meta.paths[k], t, part))
    return out


class CUBDataset(Dataset):
    """One split of CUB-200-2011: items ``(transform(image), label)``.

    ``split``: ``"train"`` / ``"test"`` (official split) or ``"all"``. ``crop_boxes``: optional (N, 4)
    inclusive boxes, one per image of the split: each image is cropped to its box before ``transform``
    (GT-box crops: ``crop_boxes=dataset.boxes``; CAM crops: boxes from :func:`camlib.core.probe.cam_boxes`;
    (-1, -1, -1, -1) keeps the whole image). ``boxes`` are the ground-truth boxes (inclusive, clipped
    to the image on reading; None for a copy without ``bounding_boxes.txt``, where :meth:`gt_boxes`
    raises :class:`BoxesUnavailable`); ``sizes()`` gives the images' (H, W).
    """

    def __init__(
        self,
        root: str | Path | None = None,
        split: str = "train",
        transform: Callable | None = None,
        *,
        crop_boxes=None,
        download: bool = False,
        metadata: CUBMetadata | None = None,
    ) -> None:
        if split not in ("train", "test", "all"):
            raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")
        meta = metadata if metadata is not None else read_cub_metadata(cub_folder(root, download=download))
        keep = np.ones(len(meta.labels), bool) if split == "all" else (meta.is_train == (split == "train"))
        idx = np.flatnonzero(keep)
        self.meta, self.split, self.transform = meta, split, transform
        self.paths = [meta.paths[i] for i in idx]
        self.image_ids = meta.image_ids[idx]
        self.labels = meta.labels[idx]
        self.boxes_xywh = meta.boxes_xywh[idx] if meta.has_boxes else None
        self.box_lines = meta.box_lines[idx] if meta.box_lines is not None else None
        self.boxes = xywh_to_inclusive(self.boxes_xywh) if meta.has_boxes else None
        self.classes = meta.classes
        self._sizes: np.ndarray | None = None
        self.crop_boxes = None
        if crop_boxes is not None:
            cb = np.asarray(crop_boxes, dtype=np.int64).reshape(-1, 4)
            if len(cb) != len(idx):
                raise ValueError(f"{len(cb)} crop boxes for {len(idx)} images")
            self.crop_boxes = cb

    def __len__(self) -> int:
        return len(self.labels)

    def path(self, i: int) -> Path:
        return self.meta.folder / "images" / self.paths[i]

    def image(self, i: int) -> Image.Image:
        """Image ``i`` as RGB (:func:`camlib.datasets.files.read_rgb`, the data layer's one reader)."""
        return read_rgb(self.path(i))

    def sizes(self) -> np.ndarray:
        """(N, 2) image sizes (H, W), read from the JPEG headers once."""
        if self._sizes is None:
            out = np.empty((len(self), 2), np.int64)
            for i in range(len(self)):
                with Image.open(self.path(i)) as im:
                    out[i] = (im.height, im.width)
            self._sizes = out
        return self._sizes

    def gt_boxes(self) -> np.ndarray:
        """Ground-truth boxes, inclusive, checked against the images' sizes (read from the headers): a box
        reaching outside its image (``x + width > W`` or ``y + height > H``) is a
        :class:`~camlib.datasets.manifest.ManifestError` naming ``bounding_boxes.txt`` and its line, not
        a box clipped to a sliver. :class:`BoxesUnavailable` without boxes."""
        if self.boxes_xywh is None:
            raise BoxesUnavailable(f"{self.meta.folder}: {NO_BOXES}")
        sizes = self.sizes()
        path = self.meta.folder / "bounding_boxes.txt"
        for k, (x, y, w, h) in enumerate(self.boxes_xywh):
            line = int(self.box_lines[k]) if self.box_lines is not None else None
            check_box(
                (x, y, x + w, y + h),
                (int(sizes[k, 0]), int(sizes[k, 1])),
                path,
                line,
                f"{_BOX_FIX} ({self.path(k)} is {sizes[k, 1]} x {sizes[k, 0]})",
            )
        return xywh_to_inclusive(self.boxes_xywh, sizes)

    def __getitem__(self, i: int):
        img = self.image(i)
        if self.crop_boxes is not None:
            x0, y0, x1, y1 = (int(v) for v in self.crop_boxes[i])
            if x0 >= 0 and x1 >= x0 and y1 >= y0:
                img = img.crop((x0, y0, min(x1, img.width - 1) + 1, min(y1, img.height - 1) + 1))
        if self.transform is not None:
            img = self.transform(img)
        return img, int(self.labels[i])

    def identity(self) -> str:
        """Names these images (and crops) in feature cache keys."""
        from camlib.core.digest import array_digest

        crop = "full" if self.crop_boxes is None else f"crop:{array_digest(self.crop_boxes)}"
        return (
            f"cub200_2011({self.meta.folder.name}, split={self.split}, n={len(self)}, "
            f"ids={array_digest(self.image_ids)}, {crop})"
        )
