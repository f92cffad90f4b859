"""Network inputs from images: the ONE transforms module of camlib.

- **Whole image, no crop** (:class:`WholeImage`, :func:`whole_image_transform`): the image resized to
  the network's input size and normalised. The map then covers the whole image and upsamples back
  onto its ground-truth boxes (torchvision's presets resize to 256 and centre-crop 224, which would
  cut the image the boxes refer to). Normalisation: :class:`PixelNormalize`
  ``(x / 255 if scale else x - mean) / std`` on the 0..255 image (:func:`input_normalizer` reads it
  out of a model's ``preprocess``), or any function of a [0, 1] batch through :class:`OnUnitRange`.
- **Ten crops** (:class:`TenCrop`, :func:`ten_crop_offsets`): the released code's oversampling.
- **EfficientNet-Lite0's input scaling** (:func:`lite0_input`): ``(255 x - 127) / 128`` of [0, 1] images.
- **ImageNet training / evaluation** (:func:`imagenet_train_transform`, :func:`imagenet_eval_transform`)
  and the batch augmentation of small images (:class:`PadCropFlip`).
- :func:`localization_input` (:func:`resize_preprocess` of a model): THE entry point for any map laid on
  an image: a model's own preprocessing without its crop; numpy (H, W, 3) uint8 photos, PIL images and
  (3, H, W) uint8 tensors all go through it.

All are classes or module-level functions (no lambdas), so DataLoader workers can pickle them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "TEN_CROP",
    "TEN_CROP_SIZE",
    "OnUnitRange",
    "PadCropFlip",
    "PixelNormalize",
    "TenCrop",
    "WholeImage",
    "imagenet_eval_transform",
    "imagenet_train_transform",
    "input_normalizer",
    "lite0_input",
    "localization_input",
    "resize_preprocess",
    "ten_crop_offsets",
    "whole_image_transform",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
TEN_CROP_SIZE, TEN_CROP = 256, 224


# --------------------------------------------------------------------------- normalisation


class PixelNormalize:
    """``(x / 255 if scale else x - mean) / std`` on a float (3, H, W) image with values 0..255
    (a class, not a lambda, so DataLoader workers can pickle it on every platform)."""

    def __init__(self, mean: Sequence[float], std: Sequence[float], scale: bool) -> None:
        self.mean = torch.tensor([float(v) for v in mean]).view(-1, 1, 1)
        self.std = torch.tensor([float(v) for v in std]).view(-1, 1, 1)
        self.scale = bool(scale)

    def __call__(self, x: Tensor) -> Tensor:
        return ((x / 255.0) if self.scale else x).sub(self.mean).div(self.std)

    def __repr__(self) -> str:
        return f"PixelNormalize(mean={self.mean.flatten().tolist()}, std={self.std.flatten().tolist()}, scale={self.scale})"


def input_normalizer(preprocess) -> PixelNormalize:
    """The pixel normalisation inside a model's ``preprocess``, as a function of a float (3, H, W) image
    with values 0..255. Understands torchvision's weight presets (``mean``/``std`` on [0, 1]),
    ``v2.Compose`` pipelines ending in ``ToDtype`` + ``Normalize`` (e.g. EfficientNet-Lite0's), a
    :class:`WholeImage` (its normaliser: so ten crops work from any localization input, torchvision
    networks and -GAP checkpoints alike) and a normaliser itself."""
    from torchvision.transforms import v2 as T

    if isinstance(preprocess, (PixelNormalize, OnUnitRange)):
        return preprocess
    if isinstance(
        preprocess, WholeImage
    ):  # e.g. imagenet_eval_transform (-GAP checkpoints), localization_input
        return preprocess.normalize
    if hasattr(preprocess, "mean") and hasattr(preprocess, "std"):
        return PixelNormalize(preprocess.mean, preprocess.std, scale=True)
    steps = getattr(preprocess, "transforms", None)
    if steps:
        norm = next((s for s in steps if isinstance(s, T.Normalize)), None)
        to_dtype = next((s for s in steps if isinstance(s, T.ToDtype)), None)
        if norm is not None:
            return PixelNormalize(norm.mean, norm.std, scale=bool(getattr(to_dtype, "scale", False)))
    raise ValueError(f"cannot find the normalisation in {preprocess!r}; pass normalize= explicitly")


def lite0_input(x: Tensor) -> Tensor:
    """Images in [0, 1] (N, 3, H, W) -> EfficientNet-Lite0's input scaling ``(255 x - 127) / 128``."""
    return (x * 255.0 - 127.0) / 128.0


class OnUnitRange:
    """A normaliser of [0, 1] image BATCHES (e.g. :func:`lite0_input`) as a normaliser of one 0..255
    (3, H, W) image: ``fn((x / 255)[None])[0]``."""

    def __init__(self, fn: Callable[[Tensor], Tensor]) -> None:
        self.fn = fn

    def __call__(self, x: Tensor) -> Tensor:
        return self.fn((x / 255.0)[None])[0]

    def __repr__(self) -> str:
        return f"OnUnitRange({getattr(self.fn, '__name__', self.fn)!r})"


# --------------------------------------------------------------------------- whole image, ten crops


def _hw(size: int | Sequence[int]) -> tuple[int, int]:
    return (int(size), int(size)) if isinstance(size, (int, np.integer)) else (int(size[0]), int(size[1]))


class WholeImage:
    """Network input of the WHOLE image resized to ``size`` (int: square, or (H, W); no crop, so the map
    covers the image and upsamples onto its boxes), normalised by ``normalize`` (a function of the
    float (3, H, W) image with values 0..255, e.g. :class:`PixelNormalize`).

    ``resample="tensor"``: torchvision's antialiased resize of the uint8 image tensor (rounded back to
    uint8 values); ``"pil"``: PIL's bilinear resize, the pixels :meth:`camlib.datasets.files.ImageFiles.image`
    shows (what pattern discovery feeds EfficientNet-Lite0).
    """

    def __init__(
        self,
        normalize: Callable[[Tensor], Tensor],
        size: int | tuple[int, int] = 224,
        *,
        resample: Literal["tensor", "pil"] = "tensor",
    ) -> None:
        from torchvision.transforms import v2 as T

        if resample not in ("tensor", "pil"):
            raise ValueError(f"resample must be 'tensor' or 'pil', got {resample!r}")
        self.normalize, self.size, self.resample = normalize, size, resample
        self._resize = T.Compose(
            [T.ToImage(), T.Resize(_hw(size), antialias=True), T.ToDtype(torch.float32, scale=False)]
        )

    def __call__(self, img) -> Tensor:
        if self.resample == "pil":
            from PIL import Image

            h, w = _hw(self.size)
            arr = np.asarray(img.convert("RGB").resize((w, h), Image.BILINEAR))
            return self.normalize(torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1))).float())
        return self.normalize(self._resize(img))

    def __repr__(self) -> str:
        return f"WholeImage({self.normalize!r}, size={self.size}, resample={self.resample!r})"


def whole_image_transform(preprocess, size: int | tuple[int, int] = 224) -> WholeImage:
    """:class:`WholeImage` with the normalisation of ``preprocess`` (:func:`input_normalizer`).
    torchvision's own presets resize to 256 and centre-crop 224, which would cut the image the boxes
    refer to."""
    return WholeImage(input_normalizer(preprocess), size)


def localization_input(preprocess, size: int | tuple[int, int] | None = None) -> Callable:
    """The network input for a map that is laid on the WHOLE image, from a model's ``preprocess``.

    The map must be computed on exactly the pixels it is shown on and compared with boxes of: a
    torchvision weight preset (resize to 256 and centre-crop 224; it also refuses numpy photos)
    becomes :class:`WholeImage` (the whole image resized to ``size``, default the preset's crop
    size, with the preset's mean/std; what the released localization code does); a
    :class:`WholeImage` and other preprocessings that already resize without crop (EfficientNet-
    Lite0's ``v2.Compose``) are returned as they are. Every result takes PIL images, (H, W, 3) uint8
    numpy arrays and (3, H, W) uint8 tensors.
    """
    if isinstance(preprocess, WholeImage):
        return (
            preprocess
            if size is None or _hw(size) == _hw(preprocess.size)
            else WholeImage(preprocess.normalize, size)
        )
    if hasattr(preprocess, "crop_size") and hasattr(preprocess, "mean"):
        return whole_image_transform(preprocess, size if size is not None else int(preprocess.crop_size[0]))
    return preprocess


def resize_preprocess(model) -> Callable:
    """PIL image -> network input for an :class:`camlib.models.ImageNetModel`, WITHOUT cropping:
    :func:`localization_input` of its ``preprocess`` at ``model.input_size`` (receptive fields are
    drawn on the whole image resized to the input size, so the network must see exactly that)."""
    return localization_input(model.preprocess, tuple(model.input_size))


def ten_crop_offsets(size: int = TEN_CROP_SIZE, crop: int = TEN_CROP) -> list[tuple[int, int]]:
    """(top, left) of the released code's five crops of a ``size`` x ``size`` image: the four corners
    and the centre (Caffe's oversampling, ``prepare_image.m``); crops 6-10 are their mirror images."""
    d = size - crop
    return [(0, 0), (0, d), (d, 0), (d, d), (d // 2, d // 2)]


class TenCrop:
    """Preprocess for the released code's ten-crop setting: PIL image -> (10, 3, crop, crop).

    The image is resized to ``size`` x ``size`` (bilinear), cut into :func:`ten_crop_offsets` crops and
    their mirror images, each normalised by ``normalize`` (see :func:`input_normalizer`).
    """

    def __init__(
        self, normalize: Callable[[Tensor], Tensor], size: int = TEN_CROP_SIZE, crop: int = TEN_CROP
    ) -> None:
        from torchvision.transforms import v2 as T

        self.size, self.crop, self.normalize = size, crop, normalize
        self._resize = T.Compose(
            [T.ToImage(), T.Resize((size, size), antialias=True), T.ToDtype(torch.float32, scale=False)]
        )

    def __call__(self, img) -> Tensor:
        x = self._resize(img)
        c = self.crop
        crops = [x[:, t : t + c, s : s + c] for t, s in ten_crop_offsets(self.size, c)]
        crops += [cr.flip(-1) for cr in crops]
        return torch.stack([self.normalize(cr) for cr in crops])


# --------------------------------------------------------------------------- ImageNet training / evaluation


def imagenet_train_transform(resize: int = 256, crop: int = 224):
    """The paper's training augmentation: resize to ``resize`` x ``resize``, random ``crop``, mirror,
    ImageNet normalisation. Its randomness comes from the torch RNG that ``fit`` seeds per step."""
    from torchvision.transforms import v2 as T

    return T.Compose([
        T.ToImage(),
        T.Resize((resize, resize), antialias=True),
        T.RandomCrop(crop),
        T.RandomHorizontalFlip(),
        T.ToDtype(torch.float32, scale=True),
        T.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])  # fmt: skip


def imagenet_eval_transform(size: int = 224) -> WholeImage:
    """Evaluation input: the WHOLE image resized to ``size`` x ``size`` (no crop, so the CAM covers the
    image and upsamples back onto its ground-truth boxes) with ImageNet normalisation
    (:func:`whole_image_transform`)."""
    from torchvision.transforms import v2 as T

    return whole_image_transform(T.Normalize(IMAGENET_MEAN, IMAGENET_STD), size)


class PadCropFlip:
    """Batch augmentation for small images: pad ``pad`` pixels, crop a random window of the original
    size per image, mirror each image with probability 1/2 (``flip``).

    Draws from the global torch RNG, which :func:`camlib.models.train.fit` seeds before every step, so an
    interrupted and resumed run sees the same crops. ``mode`` is :func:`torch.nn.functional.pad`'s
    (``"reflect"`` keeps the image statistics at the border; ``"constant"`` pads with zeros).
    """

    def __init__(self, pad: int = 4, flip: bool = True, mode: str = "reflect") -> None:
        if pad < 0:
            raise ValueError(f"pad must be >= 0, got {pad}")
        self.pad, self.flip, self.mode = int(pad), bool(flip), mode

    def __call__(self, x: Tensor) -> Tensor:
        B, _, H, W = x.shape
        out = x
        if self.pad:
            p = self.pad
            padded = F.pad(x, (p, p, p, p), mode=self.mode)
            oy = torch.randint(0, 2 * p + 1, (B,)).to(x.device)
            ox = torch.randint(0, 2 * p + 1, (B,)).to(x.device)
            rows = (oy[:, None] + torch.arange(H, device=x.device))[:, None, :, None]  # (B, 1, H, 1)
            cols = (ox[:, None] + torch.arange(W, device=x.device))[:, None, None, :]  # (B, 1, 1, W)
            b = torch.arange(B, device=x.device)[:, None, None, None]
            c = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
            out = padded[b, c, rows, cols]
        if self.flip:
            flip = torch.rand(B) < 0.5
            out = torch.where(flip.to(x.device)[:, None, None, None], out.flip(-1), out)
        return out

    def __repr__(self) -> str:
        return f"PadCropFlip(pad={self.pad}, flip={self.flip}, mode={self.mode!r})"
