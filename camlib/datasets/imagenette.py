"""Imagenette in its public ``imagenette2`` layout (any size: full, ``-320``, ``-160``, or a resized copy).

::

    <root>/train/<wnid>/*.JPEG   ImageNet TRAIN images, plus some ILSVRC2012 VAL files (ILSVRC2012_val_*)
    <root>/val/<wnid>/*.JPEG     ImageNet train images, plus ILSVRC2012 VAL files
    <root>/wsol/                 wsolevaluation metadata lines for the ILSVRC val files (ORIGINAL pixels):
                                 image_ids.txt, class_labels.txt, image_sizes.txt, localization.txt

The ILSVRC2012 val files are split out BY FILE NAME (``ILSVRC2012_val_*``), wherever they sit: they
are never in :attr:`Imagenette.train` nor :attr:`Imagenette.val`; those with wsolevaluation lines are
:attr:`Imagenette.boxed` (the localization test set), the others :attr:`Imagenette.unboxed` (listed,
used for nothing). Boxes are given in the ORIGINAL image's pixels; each is scaled per axis to the file
actually read (its size from the file header, PIL lazy open: no decoding)::

    x' = round(x * W_file / W_orig),  y' = round(y * H_file / H_orig)      (camlib.datasets.targets.scale_boxes)

so the same code serves the full-size download, the 160 / 320 px ones (aspect kept) and the 224 x 224
squashed copy in ``../shared/data/imagenette``.

Every record's :class:`~camlib.datasets.targets.Target` has ``label`` = the class index 0..9 (sorted
WordNet ids, :data:`IMAGENETTE_CLASSES`) and ``extra["label_1000"]`` = the index among the 1000
ILSVRC classes (torchvision's order), ``extra["wnid"]``; boxed records also ``extra["original_size"]``.
The ``wsol/`` folder may hold more lines than the tree has files (the full 50,000-line val metadata, or
a partial tree): lines without a file are counted in :attr:`Imagenette.wsol_without_file`, not errors.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from camlib.datasets.ilsvrc import IMAGENETTE_CLASSES, read_wsol_metadata
from camlib.datasets.manifest import ImageRecord, ManifestError, RecordDataset, image_size, list_images
from camlib.datasets.targets import Target, scale_boxes

__all__ = [
    "IMAGENETTE_CLASSES",
    "ILSVRC_VAL_PREFIX",
    "Imagenette",
    "is_ilsvrc_val",
    "open_imagenette",
    "write_wsol_subset",
]

#: wnid -> (name, index among the 1000 ILSVRC classes in torchvision's order)
WNIDS: tuple[str, ...] = tuple(sorted(IMAGENETTE_CLASSES))
ILSVRC_VAL_PREFIX = "ILSVRC2012_val_"
LAYOUT = (
    "<root>/train/<wnid>/*.JPEG and <root>/val/<wnid>/*.JPEG (the imagenette2 archive's layout; wnids: "
    + ", ".join(WNIDS)
    + ") and <root>/wsol/ with the wsolevaluation lines of the ILSVRC2012_val_* files"
)


def is_ilsvrc_val(path: str | Path) -> bool:
    """True for an ILSVRC2012 validation file (by its name): never to be trained on."""
    return Path(path).name.startswith(ILSVRC_VAL_PREFIX)


@dataclass
class Imagenette:
    """An opened imagenette2 tree (see the module docstring); ``dataset(part)`` gives a torch Dataset."""

    root: Path
    train: list[ImageRecord]
    val: list[ImageRecord]
    boxed: list[ImageRecord]
    unboxed: list[Path]
    wsol_without_file: int = 0
    classes: list[str] = field(default_factory=lambda: [IMAGENETTE_CLASSES[w][0] for w in WNIDS])
    wnids: list[str] = field(default_factory=lambda: list(WNIDS))

    def dataset(
        self,
        part: str = "train",
        preprocess: Callable[[Image.Image], torch.Tensor] | None = None,
        info: object = None,
    ) -> RecordDataset:
        """``part``: ``"train"``, ``"val"`` or ``"boxed"`` (the ILSVRC val files with boxes)."""
        if part not in ("train", "val", "boxed"):
            raise ValueError(f"part must be 'train', 'val' or 'boxed', got {part!r}")
        return RecordDataset(getattr(self, part), preprocess, self.classes, info)

    def summary(self) -> dict:
        return {
            "root": str(self.root),
            "n_train": len(self.train),
            "n_val": len(self.val),
            "n_boxed": len(self.boxed),
            "n_boxes": int(sum(len(r.target.boxes) for r in self.boxed)),
            "n_ilsvrc_val_without_boxes": len(self.unboxed),
            "n_wsol_lines_without_file": self.wsol_without_file,
        }


def _wsol_fix(wsol: Path) -> str:
    return (
        f"{wsol} holds the wsolevaluation ILSVRC val lines (metadata/ILSVRC/test of clovaai/wsolevaluation), "
        "in ORIGINAL pixels; `python -m camlib.datasets.fetch imagenette` writes it"
    )


def open_imagenette(
    root: str | Path, *, wsol: str | Path | None = None, read_sizes: bool = True
) -> Imagenette:
    """Read an imagenette2 tree (any subset of its class folders may be missing: a partial tree).

    ``wsol``: the folder of wsolevaluation lines (default ``<root>/wsol``; without it every ILSVRC val
    file is :attr:`~Imagenette.unboxed`). ``read_sizes``: read the boxed files' sizes from their
    headers to scale the boxes (always needed for boxes; False only lists the files, boxes unscaled).
    A class folder that is not an Imagenette wnid, or a wsol class that disagrees with the folder its
    file sits in, is a :class:`~camlib.datasets.manifest.ManifestError`.
    """
    root = Path(root)
    parts = [p for p in ("train", "val") if (root / p).is_dir()]
    if not parts:
        raise FileNotFoundError(
            f"{root} has neither train/ nor val/. Expected: {LAYOUT}. Get it with "
            "`make data` or `python -m camlib.datasets.fetch imagenette`"
        )
    files: list[tuple[str, str, Path]] = []  # (folder part, wnid, path)
    for part in parts:
        for d in sorted(p for p in (root / part).iterdir() if p.is_dir()):
            if d.name not in IMAGENETTE_CLASSES:
                raise ManifestError(
                    d,
                    None,
                    f"unknown class folder {d.name!r} (not one of the ten Imagenette wnids)",
                    f"keep only the folders of {LAYOUT}",
                )
            files += [(part, d.name, f) for f in list_images(d)]
    wsol = Path(wsol) if wsol is not None else root / "wsol"
    meta = read_wsol_metadata(wsol) if (wsol / "image_ids.txt").is_file() else None
    if meta is not None and meta.sizes is None:
        raise ManifestError(
            wsol / "image_sizes.txt",
            None,
            "missing: the original sizes are needed to scale the boxes to the files read",
            _wsol_fix(wsol),
        )
    by_name = {Path(k).name: k for k in meta.ids} if meta is not None else {}
    where: dict[str, Path] = {}
    for _, _, path in files:
        if path.name in where:
            raise ManifestError(
                path,
                None,
                f"the file name {path.name} is also at {where[path.name]}",
                "keep one copy of each image in the tree",
            )
        where[path.name] = path
    out: dict[str, list] = {"train": [], "val": [], "boxed": [], "unboxed": []}
    seen: set[str] = set()
    for part, wnid, path in files:
        label_1000 = IMAGENETTE_CLASSES[wnid][1]
        extra = {"label_1000": label_1000, "wnid": wnid, "folder": part}
        label = WNIDS.index(wnid)
        if not is_ilsvrc_val(path):
            out[part].append(
                ImageRecord(path, Target(label, np.zeros((0, 4)), None, path.name, extra=extra), part)
            )
            continue
        key = by_name.get(path.name)
        if key is None:
            out["unboxed"].append(path)
            continue
        seen.add(key)
        if meta.labels[key] != label_1000:
            raise ManifestError(
                wsol / "class_labels.txt",
                meta.label_lines[key],
                f"{key} has class {meta.labels[key]} but its file sits in {part}/{wnid} (class {label_1000})",
                _wsol_fix(wsol),
            )
        orig = meta.sizes[key]
        boxes = meta.boxes[key]
        if read_sizes:
            size = image_size(path)
            boxes = scale_boxes(boxes, orig, size)
        else:
            size, boxes = None, np.rint(boxes)
        extra["original_size"] = orig
        out["boxed"].append(ImageRecord(path, Target(label, boxes, size, path.name, extra=extra), "test"))
    return Imagenette(
        root,
        out["train"],
        out["val"],
        out["boxed"],
        out["unboxed"],
        wsol_without_file=len(by_name) - len(seen),
    )


def write_wsol_subset(metadata: str | Path, root: str | Path) -> int:
    """Write ``<root>/wsol/`` with the lines of the full wsolevaluation ILSVRC val metadata (folder
    ``metadata``) that belong to the ``ILSVRC2012_val_*`` files of the imagenette2 tree ``root``, verbatim;
    returns the number of images written. Run by ``python -m camlib.datasets.fetch imagenette``."""
    metadata, root = Path(metadata), Path(root)
    names = {p.name for part in ("train", "val") for p in (root / part).glob(f"*/{ILSVRC_VAL_PREFIX}*")}
    if not names:
        raise FileNotFoundError(f"no {ILSVRC_VAL_PREFIX}* files under {root}/train or {root}/val")
    out = root / "wsol"
    out.mkdir(exist_ok=True)
    kept = 0
    for fname in ("image_ids.txt", "class_labels.txt", "image_sizes.txt", "localization.txt"):
        src = metadata / fname
        if not src.is_file():
            raise FileNotFoundError(f"missing {src}: {_wsol_fix(metadata)}")
        lines = [
            ln
            for ln in src.read_text(encoding="utf-8").splitlines()
            if ln.strip() and Path(ln.split(",", 1)[0].strip()).name in names
        ]
        (out / fname).write_text("".join(ln + "\n" for ln in lines), encoding="utf-8")
        if fname == "image_ids.txt":
            kept = len(lines)
    return kept
