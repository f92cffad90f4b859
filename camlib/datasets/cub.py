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
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

from camlib.datasets.download import REGISTRY, DatasetNotFoundError, prepare

__all__ = ["CUB_SPEC", "CUBDataset", "CUBMetadata", "cub_folder", "read_cub_metadata", "xywh_to_inclusive"]

CUB_SPEC = REGISTRY["cub200_2011"]


def xywh_to_inclusive(xywh, sizes=None) -> np.ndarray:
    """``(x, y, width, height)`` float boxes -> inclusive int ``(x0, y0, x1, y1)`` (see the module doc).

    ``sizes``: optional (N, 2) image sizes ``(H, W)`` to clip to.
    """
    b = np.asarray(xywh, dtype=np.float64).reshape(-1, 4)
    out = np.stack(
        [np.round(b[:, 0]), np.round(b[:, 1]), np.round(b[:, 0] + b[:, 2]) - 1, np.round(b[:, 1] + b[:, 3]) - 1],
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
    labels: np.ndarray  # (N,) int, 0..199
    is_train: np.ndarray  # (N,) bool
    boxes_xywh: np.ndarray  # (N, 4) float, as written
    classes: list[str]


def _read_table(path: Path, n_fields: int) -> dict[int, list[str]]:
    if not path.is_file():
        raise DatasetNotFoundError(f"missing {path}.\n" + CUB_SPEC.where(path.parent.parent))
    rows: dict[int, list[str]] = {}
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) < n_fields + 1:
            raise ValueError(f"{path}:{line_no}: expected an id and {n_fields} field(s), got {line!r}")
        rows[int(fields[0])] = fields[1:] if n_fields > 1 else [" ".join(fields[1:])]
    return rows


def read_cub_metadata(folder: str | Path) -> CUBMetadata:
    """Parse the text files of an extracted ``CUB_200_2011`` folder (every id must be in every file)."""
    folder = Path(folder)
    images = _read_table(folder / "images.txt", 1)
    labels = _read_table(folder / "image_class_labels.txt", 1)
    split = _read_table(folder / "train_test_split.txt", 1)
    boxes = _read_table(folder / "bounding_boxes.txt", 4)
    classes = _read_table(folder / "classes.txt", 1)
    ids = sorted(images)
    for name, table in (("image_class_labels.txt", labels), ("train_test_split.txt", split),
                        ("bounding_boxes.txt", boxes)):
        missing = [i for i in ids if i not in table]
        if missing:
            raise ValueError(f"{folder / name} lacks image id(s) {missing[:5]}")
    return CUBMetadata(
        folder=folder,
        image_ids=np.asarray(ids, dtype=np.int64),
        paths=[images[i][0] for i in ids],
        labels=np.asarray([int(labels[i][0]) - 1 for i in ids], dtype=np.int64),
        is_train=np.asarray([split[i][0] == "1" for i in ids], dtype=bool),
        boxes_xywh=np.asarray([[float(v) for v in boxes[i]] for i in ids], dtype=np.float64),
        classes=[classes[c][0] for c in sorted(classes)],
    )


def cub_folder(root: str | Path | None = None, *, download: bool = False, progress: bool = True) -> Path:
    """The extracted ``CUB_200_2011`` folder under ``root`` (fetched when ``download``; else an error
    saying where to put the archive or the extracted files)."""
    if root is not None and (Path(root) / "images.txt").is_file():  # the CUB_200_2011 folder itself
        return Path(root)
    return prepare("cub200_2011", root, download=download, progress=progress)


class CUBDataset(Dataset):
    """One split of CUB-200-2011: items ``(transform(image), label)``.

    ``split``: ``"train"`` / ``"test"`` (official split) or ``"all"``. ``crop_boxes``: optional (N, 4)
    inclusive boxes, one per image of the split: each image is cropped to its box before ``transform``
    (GT-box crops: ``crop_boxes=dataset.boxes``; CAM crops: boxes from :func:`camlib.core.probe.cam_boxes`;
    (-1, -1, -1, -1) keeps the whole image). ``boxes`` are the ground-truth boxes (inclusive, clipped
    to the image on reading); ``sizes()`` gives the images' (H, W).
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
        self.boxes_xywh = meta.boxes_xywh[idx]
        self.boxes = xywh_to_inclusive(self.boxes_xywh)
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
        with Image.open(self.path(i)) as im:
            return im.convert("RGB")

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
        """Ground-truth boxes clipped to the images (reads the sizes)."""
        return xywh_to_inclusive(self.boxes_xywh, self.sizes())

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
        from camlib.core.features import array_digest

        crop = "full" if self.crop_boxes is None else f"crop:{array_digest(self.crop_boxes)}"
        return f"cub200_2011(split={self.split}, n={len(self)}, {crop})"


def table4_cub(
    model,
    *,
    model_name: str,
    preprocess: Callable,
    preprocessing: str,
    root: str | Path | None = None,
    cache=None,
    cam_source: str = "network",
    fraction: float = 0.2,
    Cs=(0.001, 0.01, 0.1, 1.0),
    cv: int = 3,
    seed: int = 0,
    batch_size: int = 64,
    num_workers: int = 0,
    device="cpu",
    n_jobs: int | None = None,
    progress: bool = True,
) -> dict:
    """The paper's Table 4 protocol on CUB-200-2011 for one CAM-ready network.

    1. GAP features of the full images (train and test, ``preprocess`` = the network's input), linear
       SVM with C chosen by CV on train -> accuracy on test ("full image");
    2. CAM boxes on train AND test images: the CAM of the network's own top-1 class
       (``cam_source="network"``, e.g. an ImageNet class) or of the SVM of step 1
       (``cam_source="svm"``: the labelled class on train images, the SVM's prediction on test images),
       upsampled to each image's size, boxed at ``fraction`` of the max; features re-extracted from
       the crops, a new SVM -> "CAM crop"; the share of test images whose box has IoU >= 0.5 with the
       ground truth -> the localization number (paper: 41.0%);
    3. the same on ground-truth box crops -> "GT box".

    Returns ``{"full", "cam_crop", "gt_crop"}`` (each :func:`camlib.core.probe.linear_probe`'s dict)
    plus ``"loc_iou50"`` (%), ``"mean_iou"``, ``"fraction"``, ``"cam_source"`` and the feature layer.
    """
    from camlib.core.cam import CAM, find_head
    from camlib.core.features import cached_features
    from camlib.core.probe import cam_boxes, cam_boxes_of, fit_linear_svm, linear_probe, paired_iou

    if cam_source not in ("network", "svm"):
        raise ValueError(f"cam_source must be 'network' or 'svm', got {cam_source!r}")
    meta = read_cub_metadata(cub_folder(root))
    split = {s: CUBDataset(split=s, transform=preprocess, metadata=meta) for s in ("train", "test")}
    svm_kw = dict(Cs=Cs, cv=cv, seed=seed, n_jobs=n_jobs)
    feat_kw = dict(model_name=model_name, preprocessing=preprocessing, cache=cache, batch_size=batch_size,
                   num_workers=num_workers, device=device, progress=progress)

    def features(ds: CUBDataset):
        return cached_features(model, ds, dataset=ds.identity(), **feat_kw).X

    full = {s: features(ds) for s, ds in split.items()}
    out = {"full": linear_probe(full["train"], split["train"].labels, full["test"], split["test"].labels, **svm_kw)}
    sizes = {s: [tuple(int(v) for v in hw) for hw in ds.sizes()] for s, ds in split.items()}
    boxes = {}
    if cam_source == "network":
        cam = CAM(model)
        for s, ds in split.items():
            boxes[s] = cam_boxes_of(cam, ds, sizes=sizes[s], fractions=(fraction,), batch_size=batch_size,
                                    device=device, progress=progress)[0][float(fraction)]
    else:
        probe = fit_linear_svm(full["train"], split["train"].labels, **svm_kw)
        for s, ds in split.items():
            targets = list(ds.labels) if s == "train" else None
            boxes[s] = cam_boxes(model, probe, ds, sizes=sizes[s], targets=targets, fraction=fraction,
                                 batch_size=batch_size, device=device, progress=progress)[0]
    gt = {s: ds.gt_boxes() for s, ds in split.items()}
    for name, crop in (("cam_crop", boxes), ("gt_crop", gt)):
        X = {s: features(CUBDataset(split=s, transform=preprocess, metadata=meta, crop_boxes=crop[s])) for s in split}
        out[name] = linear_probe(X["train"], split["train"].labels, X["test"], split["test"].labels, **svm_kw)
    ious = paired_iou(boxes["test"], gt["test"])
    out.update(
        loc_iou50=float(100.0 * np.mean(ious >= 0.5)),
        mean_iou=float(ious.mean()),
        fraction=float(fraction),
        cam_source=cam_source,
        feature_layer=find_head(model, split["test"][0][0][None].to(device)).feature_layer,
    )
    return out
