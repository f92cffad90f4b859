"""Image files as a dataset: the ONE reader of "a list of image files (and labels)" in camlib.

``ImageFiles(paths, labels, transform)[i]`` is ``(transform(image), label)`` where ``image`` is the
file decoded to an RGB PIL image (grayscale, palette, CMYK and RGBA files converted; the file is fully
decoded on read, so a truncated file fails here and not later). ``labels=None`` makes the label the
item's index ``i`` (which image a batch row came from). Items may also be in-memory pictures (a PIL
image or an (H, W[, 3]) uint8 or uint16 array), so a list can mix files and photos.

16-bit images (:func:`to_rgb`): a 16-bit grayscale PNG (PIL mode ``I;16``), a 16-bit PGM / TIFF
(mode ``I`` / ``I;16``) or a uint16 array is scaled to 8 bits by ``v8 = round(v16 / 257)``
(``= round(v16 * 255 / 65535)``, the PNG specification's sample-depth scaling and the exact inverse of
8-to-16-bit replication ``v16 = 257 * v8``). We scale by the format's full range, not by each file's own
min/max: a dark 16-bit image stays dark and two images keep their relative brightness, as their
8-bit versions would (a per-file stretch is an auto-contrast, a preprocessing choice, not decoding).
PIL's plain ``convert("RGB")`` clips these modes at 255 (almost every pixel white). PIL already reads
16-bit RGB / RGBA / gray+alpha PNGs as 8-bit modes (high byte, at most 1 level from ``/ 257``). A
32-bit integer image with values outside 0..65535, or a floating-point (mode ``F``) file, is refused
with its path: there is no unambiguous 8-bit reading of it.

Which files are images: :data:`IMAGE_SUFFIXES`, compared case-insensitively (``.JPEG`` and ``.jpg``
alike); :func:`list_images` lists them under a folder, recursively, sorted.

An unreadable file (missing, truncated, not an image):

- ``errors="raise"`` (default): :class:`UnreadableImageError` naming the file, the item and the fix;
- ``errors="skip"``: as the ILSVRC reader (:mod:`camlib.datasets.ilsvrc`) does, NOT fatal: the item
  comes back as ``(None, {"index", "path", "label", "error"})``, a warning is issued, the record is
  appended to the dataset's :attr:`ImageFiles.skipped` (this process only) and
  :func:`collate_skipping` drops it from its batch and lists it in the batch's ``targets.skipped``
  (so a pipeline counts it even when DataLoader workers read the images).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

__all__ = [
    "IMAGE_SUFFIXES",
    "ImageFiles",
    "TargetList",
    "UnreadableImageError",
    "collate_skipping",
    "image_folder",
    "image_size",
    "is_image_file",
    "list_images",
    "decode_image_bytes",
    "read_rgb",
    "to_rgb",
    "to_rgb_array",
]

#: File name endings camlib treats as images (lower case; compared with ``suffix.lower()``).
IMAGE_SUFFIXES: tuple[str, ...] = (
    ".jpg", ".jpeg", ".png", ".bmp", ".gif", ".ppm", ".pgm", ".tif", ".tiff", ".webp",
)  # fmt: skip


class UnreadableImageError(OSError):
    """An image file that cannot be decoded (missing, truncated, not an image)."""


def is_image_file(path: str | Path) -> bool:
    """True when ``path``'s suffix (any case) is one of :data:`IMAGE_SUFFIXES`."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def list_images(
    root: str | Path, *, recursive: bool = True, hint: str = "", allow_empty: bool = False
) -> list[Path]:
    """Every image file (:data:`IMAGE_SUFFIXES`) under ``root`` (in sub-folders too when ``recursive``),
    sorted by path.

    A missing folder raises ``FileNotFoundError`` (with ``hint``: how to provide the folder); so does a
    folder without images unless ``allow_empty``.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {root} does not exist." + (f" {hint}" if hint else ""))
    found = root.rglob("*") if recursive else root.iterdir()
    files = sorted(p for p in found if is_image_file(p) and p.is_file())
    if not files and not allow_empty:
        raise FileNotFoundError(
            f"no images ({', '.join(IMAGE_SUFFIXES)}) found under {root}." + (f" {hint}" if hint else "")
        )
    return files


def image_folder(root: str | Path) -> tuple[list[Path], np.ndarray, list[str]]:
    """A folder of class sub-folders (``<root>/<class>/**/<image>``, torchvision's ``ImageFolder``
    layout) -> ``(paths, labels (int64), classes)``: classes are the sorted sub-folder names (class
    index = position), each class's images listed by :func:`list_images` (a class may be empty)."""
    root = Path(root)
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    paths: list[Path] = []
    labels: list[int] = []
    for c, name in enumerate(classes):
        found = list_images(root / name, allow_empty=True)
        paths += found
        labels += [c] * len(found)
    return paths, np.asarray(labels, dtype=np.int64), classes


#: PIL modes holding more than 8 bits per sample, read as 16-bit (``I``: checked to lie in 0..65535).
WIDE_MODES: tuple[str, ...] = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def _rgb16(a: np.ndarray, where: str) -> Image.Image:
    """(H, W[, C]) 16-bit samples -> RGB PIL image by ``round(v / 257)`` (see the module docstring)."""
    a = np.asarray(a)
    if a.size and (a.min() < 0 or a.max() > 65535):
        raise ValueError(
            f"{where}: integer samples in [{a.min()}, {a.max()}] do not fit 16 bits; no 8-bit "
            "reading of them is unambiguous. Fix: save the image as 8- or 16-bit (PNG, JPEG)"
        )
    v = ((a.astype(np.uint32) + 128) // 257).astype(np.uint8)  # round(v / 257) for v in 0..65535
    if v.ndim == 2:
        v = np.repeat(v[..., None], 3, axis=2)
    return Image.fromarray(np.ascontiguousarray(v[..., :3]))


def to_rgb(im: Image.Image, where: str = "image") -> Image.Image:
    """A PIL image of any mode as RGB: 16-bit grayscale (``I;16*``, ``I``) scaled by ``round(v / 257)``,
    every other 8-bit mode (L, P, CMYK, RGBA, ...) by PIL's ``convert("RGB")``; mode ``F`` refused.
    ``where`` names the image in errors (e.g. its path)."""
    if im.mode == "RGB":
        return im
    if im.mode in WIDE_MODES:
        return _rgb16(np.asarray(im), where)
    if im.mode == "F":
        raise ValueError(
            f"{where}: floating-point image (PIL mode F) has no defined 8-bit range. Fix: save it as "
            "8- or 16-bit (PNG, JPEG)"
        )
    return im.convert("RGB")


def read_rgb(path: str | Path) -> Image.Image:
    """The image file as an RGB PIL image, fully decoded (raises on a missing or corrupt file); 16-bit
    files scaled to 8 bits by :func:`to_rgb`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image {path} is missing")
    with Image.open(path) as im:
        im.load()  # decode now: a truncated file fails here, not later
        out = to_rgb(im, str(path))
        return out.copy() if out is im else out  # detached from the closed file


def image_size(path: str | Path) -> tuple[int, int]:
    """(H, W) of an image file, read from its header (the pixels are not decoded)."""
    with Image.open(path) as im:
        return im.height, im.width


def to_rgb_array(item: Any, where: str = "in-memory image") -> np.ndarray:
    """An in-memory picture as an (H, W, 3) uint8 RGB array, read the way its type says:

    - a PIL image: :func:`to_rgb` (16-bit modes scaled by ``round(v / 257)``);
    - uint8 arrays (H, W), (H, W, 3) or (H, W, 4): gray repeated, RGB as is, RGBA's alpha dropped
      (what PIL's ``convert("RGB")`` does to an RGBA image);
    - uint16 arrays: ``round(v / 257)`` as 16-bit files;
    - float arrays with every value in [0, 1] (matplotlib / skimage convention): ``round(255 v)``. Other
      floats (0..255 as floats, NaN) are refused with the fix: there is no single reading of them.
    """
    if isinstance(item, Image.Image):
        return np.array(to_rgb(item, where))  # a writable copy
    a = np.asarray(item)
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)):
        raise ValueError(f"{where}: expected an (H, W), (H, W, 3) or (H, W, 4) image, got shape {a.shape}")
    if a.dtype == np.uint16:
        return np.array(_rgb16(a, where))
    if np.issubdtype(a.dtype, np.floating):
        if a.size and not (np.isfinite(a).all() and a.min() >= 0.0 and a.max() <= 1.0):
            lo, hi = np.nanmin(a), np.nanmax(a)
            raise ValueError(
                f"{where}: float image with values in [{lo:g}, {hi:g}]; float images must lie in "
                "[0, 1]. Fix: for 0..255 values pass a.astype(np.uint8)"
            )
        a = np.round(a.astype(np.float64) * 255.0).astype(np.uint8)
    elif a.dtype == bool or a.dtype != np.uint8:
        raise ValueError(f"{where}: {a.dtype} image; expected uint8, uint16 or float in [0, 1]")
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    return np.ascontiguousarray(a[..., :3])


def decode_image_bytes(data: bytes, where: str = "upload") -> Image.Image:
    """An image file's bytes (e.g. a notebook upload) as an RGB PIL image: fully decoded, turned upright by
    its EXIF orientation (a phone photo taken in portrait is stored sideways with an orientation tag) and
    16-bit modes scaled by :func:`to_rgb`. :class:`UnreadableImageError` naming ``where`` when the bytes
    are not a readable image. (Dataset files are NOT turned: their boxes refer to the stored pixels.)"""
    import io

    from PIL import ImageOps

    try:
        with Image.open(io.BytesIO(bytes(data))) as im:
            im.load()
            upright = ImageOps.exif_transpose(im)
            out = to_rgb(upright, where)
            return out.copy() if out is im else out
    except (OSError, SyntaxError, Image.DecompressionBombError) as exc:
        raise UnreadableImageError(
            f"{where}: not a readable image ({type(exc).__name__}: {exc}); upload a JPEG or PNG file"
        ) from None


def _as_pil(item: Any) -> Image.Image:
    """An in-memory picture (PIL image, (H, W[, 3|4]) uint8 / uint16 / float-in-[0, 1] array) as an RGB PIL
    image (:func:`to_rgb_array`)."""
    if isinstance(item, Image.Image):
        return to_rgb(item, "in-memory image")
    return Image.fromarray(to_rgb_array(item))


def _pair(size: int | Sequence[int]) -> tuple[int, int]:
    return (int(size), int(size)) if isinstance(size, (int, np.integer)) else (int(size[0]), int(size[1]))


class ImageFiles(Dataset):
    """Image files (or in-memory pictures) as ``(transform(RGB PIL image), label)`` items.

    ``paths``: file paths (str / Path) or in-memory pictures (PIL images, (H, W[, 3]) uint8 arrays).
    ``labels``: one int per item (kept as :attr:`labels`, int64), or None: the label of item ``i`` is
    ``i`` (and :attr:`labels` is None). ``transform``: PIL RGB image -> network input (None: the PIL
    image itself). ``names``: display names (default: the file names). ``classes``: optional class
    names. ``display_size`` (int or (H, W)): the default size of :meth:`image`. ``errors``: see the
    module docstring.
    """

    def __init__(
        self,
        paths: Sequence[Any],
        labels: Sequence[int] | np.ndarray | None = None,
        transform: Callable[[Image.Image], Any] | None = None,
        *,
        names: Sequence[str] | None = None,
        classes: Sequence[str] | None = None,
        display_size: int | tuple[int, int] | None = None,
        errors: Literal["raise", "skip"] = "raise",
    ) -> None:
        self.items = [Path(p) if isinstance(p, (str, os.PathLike)) else p for p in paths]
        self.labels = None if labels is None else np.asarray(labels, dtype=np.int64).reshape(-1)
        if self.labels is not None and len(self.labels) != len(self.items):
            raise ValueError(f"{len(self.labels)} labels for {len(self.items)} images")
        if errors not in ("raise", "skip"):
            raise ValueError(f"errors must be 'raise' or 'skip', got {errors!r}")
        self.transform = transform
        self.names = (
            list(names)
            if names is not None
            else [p.name if isinstance(p, Path) else f"image {i}" for i, p in enumerate(self.items)]
        )
        if len(self.names) != len(self.items):
            raise ValueError(f"{len(self.names)} names for {len(self.items)} images")
        self.classes = None if classes is None else list(classes)
        self.display_size = None if display_size is None else _pair(display_size)
        self.errors = errors
        self.skipped: list[dict] = []

    @property
    def paths(self) -> list[Path | None]:
        """The file of each item (None for an in-memory picture)."""
        return [p if isinstance(p, Path) else None for p in self.items]

    def __len__(self) -> int:
        return len(self.items)

    def __repr__(self) -> str:
        return (
            f"ImageFiles({len(self)} images, labels={'index' if self.labels is None else 'given'}, "
            f"transform={self.transform!r})"
        )

    def label(self, i: int) -> int:
        """The label of item ``i`` (its index when the dataset has no labels)."""
        return int(i) if self.labels is None else int(self.labels[i])

    def pil(self, i: int) -> Image.Image:
        """Item ``i`` as an RGB PIL image, fully decoded; an unreadable file raises
        :class:`UnreadableImageError` (whatever ``errors`` says: this is a direct request)."""
        item = self.items[i]
        if not isinstance(item, Path):
            return _as_pil(item)
        try:
            return read_rgb(item)
        except Exception as exc:  # noqa: BLE001 - reported with the file and the fix
            raise UnreadableImageError(
                f"{item}: cannot read image {i} of {len(self)} ({type(exc).__name__}: {exc}). Fix: replace or "
                "remove the file, or open the data with errors='skip' and batch it with "
                "camlib.datasets.files.collate_skipping, which drops and lists unreadable images"
            ) from exc

    def image(self, i: int, size: int | tuple[int, int] | None = None) -> np.ndarray:
        """Item ``i`` as an (H, W, 3) uint8 array, resized (PIL bilinear, no crop) to ``size`` (int or
        (H, W); default :attr:`display_size`; None: as stored). For overlays at a map's geometry."""
        im = self.pil(i)
        size = _pair(size) if size is not None else self.display_size
        if size is not None:
            im = im.resize((size[1], size[0]), Image.BILINEAR)
        return np.asarray(im)

    def display(self, i: int, size: int | tuple[int, int]) -> np.ndarray:
        """:meth:`image` at ``size`` (int or (H, W))."""
        return self.image(i, size)

    def original_size(self, i: int) -> tuple[int, int]:
        """(H, W) of item ``i`` as stored (for a file: read from its header)."""
        item = self.items[i]
        if isinstance(item, Path):
            return image_size(item)
        im = _as_pil(item)
        return im.height, im.width

    def __getitem__(self, i: int):
        try:
            img = self.pil(i)
        except UnreadableImageError as exc:
            if self.errors == "raise":
                raise
            cause = exc.__cause__ if exc.__cause__ is not None else exc
            msg = f"{type(cause).__name__}: {cause}"
            record = {"index": int(i), "path": str(self.items[i]), "label": self.label(i), "error": msg}
            self.skipped.append(record)
            warnings.warn(f"skipping unreadable image {self.items[i]} ({msg})", stacklevel=2)
            return None, dict(record)
        return (self.transform(img) if self.transform is not None else img), self.label(i)


# ------------------------------------------------------------------------------------- batching
class TargetList(list):
    """The targets of a batch; ``skipped`` lists the items dropped because their image was unreadable."""

    skipped: list[dict]

    def __init__(self, items=(), skipped=()) -> None:
        super().__init__(items)
        self.skipped = list(skipped)


_SKIP_KEYS = ("image_id", "index", "path", "error")


def collate_skipping(batch) -> tuple[torch.Tensor, TargetList]:
    """Stack images, keep targets as a :class:`TargetList` (they may be dicts of boxes, or labels).

    Items whose image could not be read (``x is None``; their target a dict with ``error``) are
    dropped and listed in ``targets.skipped`` (their ``image_id`` / ``index`` / ``path`` / ``error``);
    if all are, the image tensor is empty (0 images).
    """
    kept = [(x, t) for x, t in batch if x is not None]
    skipped = [{k: t[k] for k in _SKIP_KEYS if k in t} for x, t in batch if x is None]
    if not kept:
        return torch.empty(0), TargetList([], skipped)
    xs, targets = zip(*kept, strict=True)
    return torch.stack(list(xs)), TargetList(targets, skipped)
