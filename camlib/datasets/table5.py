"""The eight datasets of the paper's Table 5 (generic deep features + linear SVM), one factory.

``open_table5(name, root)`` returns the images, their labels and the train/test split of the
protocol, ready for :func:`camlib.core.features.cached_features`. Caltech101, Caltech256 and SUN397 are read
by torchvision's own dataset classes (``download=False`` unless asked: tests never download); the
others from the folder layouts of :data:`camlib.datasets.download.REGISTRY` (see ``data/README.md``).
A missing dataset raises :class:`~camlib.datasets.download.DatasetNotFoundError` saying where to put it.

Protocols (the paper follows Zhou et al. 2014, "Learning Deep Features for Scene Recognition using
Places Database"; where a dataset ships an official split we use it):

| dataset | classes | train / test per class |
| --- | --- | --- |
| SUN397 | 397 | 50 / 50, random (seeded; the official Partitions files are 10 such draws) |
| MIT Indoor67 | 67 | official TrainImages.txt / TestImages.txt (about 80 / 20) |
| Scene15 | 15 | 100 / the rest |
| SUN Attribute | 102 attributes | multi-label (mean AP): NOT supported by this factory |
| Caltech101 | 101 | 30 / up to 50 of the rest (BACKGROUND_Google excluded) |
| Caltech256 | 256 | 60 / the rest (257.clutter excluded) |
| Stanford Action40 | 40 | official ImageSplits (100 / the rest) |
| UIUC Event8 | 8 | 70 / 60 |
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from camlib.datasets.download import REGISTRY, DatasetNotFoundError, default_data_root
from camlib.datasets.files import ImageFiles, image_folder, to_rgb
from camlib.datasets.splits import split_per_class, stratified_split

__all__ = [
    "TABLE5_DATASETS",
    "TEXTURES",
    "QuickSet",
    "Table5Data",
    "open_table5",
    "quick_datasets",
    "split_per_class",
]


@dataclass(frozen=True)
class _Protocol:
    source: str  # "torchvision" | "folder" | "indoor67" | "action40" | "unsupported"
    n_train: int | None
    n_test: int | None
    note: str


TABLE5_DATASETS: dict[str, _Protocol] = {
    "sun397": _Protocol(
        "torchvision", 50, 50, "50 train / 50 test images per class, drawn at random with the seed"
    ),
    "mit_indoor67": _Protocol("indoor67", None, None, "the official TrainImages.txt / TestImages.txt split"),
    "scene15": _Protocol("folder", 100, None, "100 train images per class, the rest for test"),
    "sun_attribute": _Protocol(
        "unsupported", None, None, "multi-label: 102 binary attributes scored by mean AP"
    ),
    "caltech101": _Protocol("torchvision", 30, 50, "30 train / up to 50 test images per class"),
    "caltech256": _Protocol("torchvision", 60, None, "60 train images per class, the rest for test"),
    "stanford_action40": _Protocol("action40", None, None, "the official ImageSplits train / test lists"),
    "uiuc_event8": _Protocol("folder", 70, 60, "70 train / 60 test images per class"),
}


@dataclass
class Table5Data:
    """``dataset[i] -> (transform(image), label)``; ``labels`` (N,); ``train`` / ``test`` index arrays."""

    name: str
    dataset: Dataset
    labels: np.ndarray
    classes: list[str]
    train: np.ndarray
    test: np.ndarray
    protocol: str

    def identity(self, part: str) -> str:
        idx = self.train if part == "train" else self.test
        from camlib.core.digest import array_digest

        return f"{self.name}({part}, n={len(idx)}, {array_digest(idx)})"


class _RGB(Dataset):
    """A torchvision dataset whose PIL images may be grayscale or 16-bit: :func:`~camlib.datasets.files.to_rgb`, then transform."""

    def __init__(self, base, transform: Callable | None, keep: np.ndarray) -> None:
        self.base, self.transform, self.keep = base, transform, keep

    def __len__(self) -> int:
        return len(self.keep)

    def __getitem__(self, i: int):
        img, label = self.base[int(self.keep[i])]
        img = to_rgb(img)
        return (self.transform(img) if self.transform is not None else img), int(label)


def _torchvision(name: str, root: Path, transform, download: bool):
    import torchvision.datasets as tvd

    cls = {"caltech101": tvd.Caltech101, "caltech256": tvd.Caltech256, "sun397": tvd.SUN397}[name]
    spec = REGISTRY[name]
    if not download and not all((root / spec.folder / f).exists() for f in spec.check_files):
        raise DatasetNotFoundError(spec.where(root))  # before torchvision (Caltech101 makes empty folders)
    try:
        base = cls(str(root), download=download)
    except RuntimeError as exc:
        raise DatasetNotFoundError(REGISTRY[name].where(root) + f"\n(torchvision: {exc})") from exc
    if name == "sun397":
        labels, classes = np.asarray(base._labels, np.int64), list(base.classes)
    else:
        labels = np.asarray(base.y, np.int64)
        classes = list(base.categories)
    keep = np.arange(len(labels))
    if name == "caltech256":  # 257.clutter is background, not a class
        clutter = [i for i, c in enumerate(classes) if c.endswith("clutter")]
        keep = np.flatnonzero(~np.isin(labels, clutter))
        classes = [c for i, c in enumerate(classes) if i not in clutter]
    return _RGB(base, transform, keep), labels[keep], classes


def open_table5(
    name: str,
    root: str | Path | None = None,
    transform: Callable | None = None,
    *,
    seed: int = 0,
    download: bool = False,
) -> Table5Data:
    """Dataset ``name`` of :data:`TABLE5_DATASETS` under ``root`` (default ``data/``) with its protocol's split.

    ``download=True`` lets torchvision fetch Caltech101/256/SUN397 (large downloads); the others must be
    on disk in the layout of ``data/README.md``. Missing data -> DatasetNotFoundError with that layout.
    """
    if name not in TABLE5_DATASETS:
        raise KeyError(f"unknown Table 5 dataset {name!r}; known: {', '.join(TABLE5_DATASETS)}")
    proto = TABLE5_DATASETS[name]
    spec = REGISTRY[name]
    root = Path(root) if root is not None else default_data_root()
    if proto.source == "unsupported":
        raise NotImplementedError(
            f"{spec.title} is a multi-label attribute benchmark ({proto.note}); camlib's Table 5 code trains "
            "single-label linear SVMs only. Layout for a future implementation:\n"
            + spec.layout.replace("<root>", str(root))
        )
    if proto.source == "torchvision":
        dataset, labels, classes = _torchvision(name, root, transform, download)
        train, test = split_per_class(labels, proto.n_train, proto.n_test, seed)
        return Table5Data(name, dataset, labels, classes, train, test, proto.note)
    folder = root / spec.folder
    if proto.source == "indoor67":
        images = folder / "Images"
        lists = [folder / "TrainImages.txt", folder / "TestImages.txt"]
        if not images.is_dir() or not all(p.is_file() for p in lists):
            raise DatasetNotFoundError(spec.where(root))
        paths, labels, classes = image_folder(images)
        index = {p.relative_to(images).as_posix(): i for i, p in enumerate(paths)}
        parts = []
        for lst in lists:
            names = [ln.strip() for ln in lst.read_text().splitlines() if ln.strip()]
            missing = [n for n in names if n not in index]
            if missing:
                raise DatasetNotFoundError(f"{lst} lists images missing under {images}: {missing[:3]}")
            parts.append(np.asarray(sorted(index[n] for n in names), dtype=np.int64))
        return Table5Data(
            name, ImageFiles(paths, labels, transform), labels, classes, parts[0], parts[1], proto.note
        )
    if proto.source == "action40":
        images, splits = folder / "JPEGImages", folder / "ImageSplits"
        if not images.is_dir() or not splits.is_dir():
            raise DatasetNotFoundError(spec.where(root))
        train_lists = sorted(splits.glob("*_train.txt"))
        classes = [p.name[: -len("_train.txt")] for p in train_lists]
        paths, labels, is_train = [], [], []
        for c, cname in enumerate(classes):
            for part, flag in (("train", True), ("test", False)):
                lst = splits / f"{cname}_{part}.txt"
                if not lst.is_file():
                    raise DatasetNotFoundError(f"missing {lst}\n" + spec.where(root))
                for ln in lst.read_text().splitlines():
                    if ln.strip():
                        paths.append(images / ln.strip())
                        labels.append(c)
                        is_train.append(flag)
        labels_arr, flags = np.asarray(labels, np.int64), np.asarray(is_train)
        return Table5Data(
            name,
            ImageFiles(paths, labels_arr, transform),
            labels_arr,
            classes,
            np.flatnonzero(flags),
            np.flatnonzero(~flags),
            proto.note,
        )
    if not folder.is_dir():
        raise DatasetNotFoundError(spec.where(root))
    paths, labels, classes = image_folder(folder)
    if not paths:
        raise DatasetNotFoundError(f"no images under {folder}\n" + spec.where(root))
    train, test = split_per_class(labels, proto.n_train, proto.n_test, seed)
    return Table5Data(name, ImageFiles(paths, labels, transform), labels, classes, train, test, proto.note)


# --------------------------------------------------------------------------- quick-profile stand-ins


@dataclass
class QuickSet:
    """A small in-memory target set: ``x_*`` (N, 3, S, S) float tensors in [0, 1], ``y_*`` (N,), a description."""

    name: str
    x_train: object  # (N, 3, S, S) float tensor
    y_train: np.ndarray
    x_test: object
    y_test: np.ndarray
    classes: list[str]
    description: str


def _resize(images: np.ndarray, size: int):
    """(N, H, W[, 3]) uint8/float images -> (N, 3, size, size) float tensor in [0, 1] (antialiased)."""
    import torch
    import torch.nn.functional as F

    x = torch.as_tensor(np.asarray(images, dtype=np.float32))
    if x.ndim == 3:
        x = x[..., None].expand(*x.shape, 3)
    x = x.permute(0, 3, 1, 2)
    if float(x.max()) > 1.5:
        x = x / 255.0
    return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False).clamp(
        0, 1
    )


TEXTURES = ("brick", "grass", "gravel", "moon", "hubble_deep_field", "immunohistochemistry")


def quick_datasets(size: int = 32, seed: int = 0, per_class: int = 60) -> dict[str, QuickSet]:
    """Embedded target sets for the quick profile of Table 5 (no download), at ``size`` x ``size``:

    - ``shapes``: :class:`~camlib.datasets.ProceduralShapes` images of a NEW stream (seed + 1), 6 object
      classes (the stand-in for object categories, Caltech-like); 300 train / 300 test;
    - ``birds_scene``: bird / no-bird scenes of :func:`~camlib.datasets.fine_grained.make_detection_arrays`
      (whole 128 px scenes shrunk to ``size``: is there a small object?); 200 / 200;
    - ``digits``: scikit-learn's 8 x 8 handwritten digits (1,797 images, 10 classes), halves per class;
    - ``faces``: scikit-image's ``lfw_subset`` (100 faces, 100 non-faces, 25 x 25), halves per class;
    - ``textures``: ``per_class`` random ``size`` x ``size`` patches per photo of scikit-image's
      :data:`TEXTURES` (6 classes; train patches from the left half of each photo, test from the right:
      the stand-in for scene/texture categories).
    """
    from camlib.datasets.fine_grained import make_detection_arrays
    from camlib.datasets.procedural import CLASSES, ProceduralShapes

    out: dict[str, QuickSet] = {}
    tr, te = (
        ProceduralShapes(300, seed=seed + 1, size=64, split="train"),
        ProceduralShapes(300, seed=seed + 1, size=64, split="test"),
    )
    out["shapes"] = QuickSet(
        "shapes",
        _resize(tr.images, size),
        tr.labels,
        _resize(te.images, size),
        te.labels,
        list(CLASSES),
        "procedural shapes, new images (seed + 1), 6 object classes",
    )
    d_tr = make_detection_arrays(200, seed=seed + 1, split="train")
    d_te = make_detection_arrays(200, seed=seed + 1, split="test")
    out["birds_scene"] = QuickSet(
        "birds_scene",
        _resize(d_tr["images"], size),
        d_tr["labels"],
        _resize(d_te["images"], size),
        d_te["labels"],
        ["no bird", "bird"],
        "procedural scenes with / without one small bird",
    )
    from sklearn.datasets import load_digits

    dg = load_digits()
    a, b = stratified_split(dg.target, seed)
    img = dg.images / 16.0
    out["digits"] = QuickSet(
        "digits",
        _resize(img[a], size),
        dg.target[a],
        _resize(img[b], size),
        dg.target[b],
        [str(i) for i in range(10)],
        "scikit-learn digits (8x8 grey, upsampled), halves per class",
    )
    import skimage.data as skd

    faces = skd.lfw_subset()
    y = (np.arange(len(faces)) >= 100).astype(np.int64)  # the first 100 are faces
    a, b = stratified_split(y, seed)
    out["faces"] = QuickSet(
        "faces",
        _resize(faces[a], size),
        y[a],
        _resize(faces[b], size),
        y[b],
        ["face", "non-face"],
        "scikit-image lfw_subset: faces vs non-faces (25x25 grey)",
    )
    rng = np.random.default_rng(seed)
    patches = {"train": [], "test": []}
    labels = {"train": [], "test": []}
    for c, name in enumerate(TEXTURES):
        im = np.asarray(getattr(skd, name)())
        im = im if im.ndim == 3 else np.repeat(im[..., None], 3, axis=2)
        H, W = im.shape[:2]
        for part, (lo, hi) in (("train", (0, W // 2 - size)), ("test", (W // 2, W - size))):
            for _ in range(per_class):
                y0, x0 = rng.integers(0, H - size), rng.integers(lo, hi)
                patches[part].append(im[y0 : y0 + size, x0 : x0 + size, :3])
                labels[part].append(c)
    out["textures"] = QuickSet(
        "textures",
        _resize(np.stack(patches["train"]), size),
        np.asarray(labels["train"]),
        _resize(np.stack(patches["test"]), size),
        np.asarray(labels["test"]),
        list(TEXTURES),
        "scikit-image photo patches (6 textures), train from left halves, test from right halves",
    )
    return out
