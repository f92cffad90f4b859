"""ILSVRC validation images with classes and boxes, from wsolevaluation-style text manifests.

Layout of a root folder (the format of ``../shared/data/ilsvrc-val-sample``)::

    images/<file>.JPEG
    image_ids.txt        val/<file>
    class_labels.txt     val/<file>,<class index 0..999 in torchvision's order>
    localization.txt     val/<file>,x0,y0,x1,y1        (one line per box; inclusive pixel coordinates)
    image_sizes.txt      val/<file>,<width>,<height>   (optional)

Images are read with PIL and converted to RGB (grayscale and CMYK JPEGs included).
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

__all__ = ["WSOLManifestDataset", "collate_with_targets", "default_ilsvrc_root"]

SAMPLE_HINT = (
    "Expected a folder with images/ and the text manifests image_ids.txt, class_labels.txt and "
    "localization.txt (wsolevaluation format). The 100-image sample lives at ../shared/data/"
    "ilsvrc-val-sample beside a camlib checkout; for the full ILSVRC2012 val set see data/README.md."
)


def default_ilsvrc_root() -> Path | None:
    """``$ILSVRC_ROOT`` if set, else ``../shared/data/ilsvrc-val-sample`` beside the checkout, else None."""
    env = os.environ.get("ILSVRC_ROOT")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parents[3] / "shared" / "data" / "ilsvrc-val-sample"
    return here if here.is_dir() else None


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


class WSOLManifestDataset(Dataset):
    """(image tensor, target) pairs; target = {"label", "boxes" (n, 4) int64, "size" (H, W), "image_id"}.

    ``preprocess`` maps a PIL RGB image to the network input (e.g. ``ImageNetModel.preprocess``).
    """

    def __init__(self, root: str | Path, preprocess: Callable[[Image.Image], torch.Tensor] | None = None) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"ILSVRC root {self.root} does not exist. {SAMPLE_HINT}")
        self.preprocess = preprocess
        self.ids = [r[0] for r in _read_lines(self.root / "image_ids.txt")]
        labels = {r[0]: int(r[1]) for r in _read_lines(self.root / "class_labels.txt")}
        boxes: dict[str, list[list[int]]] = defaultdict(list)
        for r in _read_lines(self.root / "localization.txt"):
            boxes[r[0]].append([int(float(v)) for v in r[1:5]])
        missing = [i for i in self.ids if i not in labels or i not in boxes]
        if missing:
            raise ValueError(f"{len(missing)} image ids have no class or no box, e.g. {missing[:3]}")
        self.labels = [labels[i] for i in self.ids]
        self.boxes = [np.asarray(boxes[i], dtype=np.int64) for i in self.ids]

    def __len__(self) -> int:
        return len(self.ids)

    def image_path(self, i: int) -> Path:
        return self.root / "images" / Path(self.ids[i]).name

    def load_image(self, i: int) -> Image.Image:
        path = self.image_path(i)
        if not path.is_file():
            raise FileNotFoundError(f"image {path} listed in image_ids.txt is missing. {SAMPLE_HINT}")
        with Image.open(path) as im:
            return im.convert("RGB")

    def __getitem__(self, i: int):
        img = self.load_image(i)
        w, h = img.size
        boxes = self.boxes[i].copy()
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w - 1)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h - 1)
        x = self.preprocess(img) if self.preprocess is not None else img
        return x, {"label": self.labels[i], "boxes": boxes, "size": (h, w), "image_id": self.ids[i]}


def collate_with_targets(batch):
    """Stack images, keep targets as a list (images have different sizes and box counts)."""
    xs, targets = zip(*batch, strict=True)
    return torch.stack(list(xs)), list(targets)
