"""The paper's -GAP networks (section 3.1), their -GMP twins, and the "original" / modern rows.

Every -GAP network is a torchvision backbone cut after its last kept convolution, then the paper's
head: a 3x3 convolution (stride 1, pad 1, 1024 units) + ReLU -> global pooling -> one linear layer
(the softmax's input; its bias starts at 0 as in the paper's recipe)::

    features (backbone) -> [extra convs, AlexNet* only] -> cam_conv (3x3, 1024) + ReLU
        -> pool (global average, or global max for -GMP) -> fc

| arch               | backbone kept                          | CAM grid at 224 |
| ------------------ | -------------------------------------- | --------------- |
| ``alexnet_gap``      | AlexNet conv1..conv5 + ReLU (no pool5) | 13 x 13         |
| ``alexnet_star_gap`` | as alexnet_gap + two 3x3 conv (512) + ReLU | 13 x 13     |
| ``vggnet_gap``       | VGG16 conv1_1..conv5_3 + ReLU (no pool5) | 14 x 14       |
| ``googlenet_gap``    | GoogLeNet stem .. inception4e (no pool4) | 14 x 14       |
| ``resnet50_s1``      | ResNet-50 with a stride-1, dilated layer4 and its own avgpool -> fc | 14 x 14 |
| ``googlenet`` / ``resnet50`` | the unmodified torchvision network ("original" rows) | 7 x 7 |

``pool="max"`` swaps global average pooling for global max pooling (the paper's GoogLeNet-GMP); the
parameters are the same. The paper does not give the widths of AlexNet*-GAP's two extra layers; we use
512 units each (3x3, pad 1, so the grid stays 13 x 13; the released Caffe model has 11 x 11).

``weights=None`` (the default, and what the tests use) gives a randomly initialised backbone and never
downloads anything. ``weights="DEFAULT"`` / ``"IMAGENET1K_V1"`` loads torchvision's ImageNet weights
through the weights API (:func:`camlib.models.imagenet.load_torchvision`, which says where to put the
file without a network). The new layers (``model.head_prefixes``) are always freshly initialised:
they are what the paper fine-tunes at 10x the backbone's learning rate (:mod:`camlib.paper.gap_vs_gmp`).

All of them work with :class:`camlib.core.cam.CAM` as they are: the feature layer is ``cam_conv`` (``layer4``
for ResNet, ``inception5b`` for the original GoogLeNet) and the detected ``HeadSpec.pool`` is the
pooling used. (Caveat: a freshly initialised torchvision GoogLeNet gives ~1e-10 logits in eval mode,
where CAM's numerical head check cannot tell average from max pooling; trained or ImageNet-initialised
networks are unambiguous.) Inputs are ImageNet-normalised RGB tensors (GoogLeNet weights re-map them internally,
as torchvision does with ``transform_input``).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor, nn
from torchvision import models as tvm

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
]

Pool = Literal["avg", "max"]

#: The paper's -GAP architectures (each also as -GMP with ``pool="max"``).
GAP_ARCHS = ("alexnet_gap", "alexnet_star_gap", "vggnet_gap", "googlenet_gap")
#: Unmodified torchvision networks (the paper's "original network" rows).
ORIGINAL_ARCHS = ("googlenet", "resnet50")
#: Everything :func:`gap_variant` builds.
ARCHS = (*GAP_ARCHS, "resnet50_s1", *ORIGINAL_ARCHS)

# (arch, pool) -> the network's key in results/paper.yaml (table1.<key>.top1_err, table2.<key>...)
_PAPER_KEYS = {
    ("alexnet_gap", "avg"): "alexnet_gap",
    ("alexnet_star_gap", "avg"): "alexnet_star_gap",
    ("vggnet_gap", "avg"): "vggnet_gap",
    ("googlenet_gap", "avg"): "googlenet_gap",
    ("googlenet_gap", "max"): "googlenet_gmp",
    ("googlenet", "avg"): "googlenet",
}


def paper_key(arch: str, pool: str = "avg") -> str | None:
    """The paper's name for ``(arch, pool)`` in ``results/paper.yaml`` (e.g. ``"googlenet_gmp"``), or None
    when the paper has no such row (e.g. VGGnet-GMP, ResNet-50)."""
    return _PAPER_KEYS.get((arch, pool))


def _check_pool(pool: str) -> None:
    if pool not in ("avg", "max"):
        raise ValueError(f"pool must be 'avg' (GAP) or 'max' (GMP), got {pool!r}")


def _global_pool(pool: str) -> nn.Module:
    _check_pool(pool)
    return nn.AdaptiveAvgPool2d(1) if pool == "avg" else nn.AdaptiveMaxPool2d(1)


class GAPNet(nn.Module):
    """backbone ``features`` -> optional ``extra`` -> ``cam_conv`` (3x3, ``width``) + ReLU -> ``pool`` -> ``fc``.

    ``pool_kind`` is ``"avg"`` or ``"max"``; ``arch`` and ``description`` say what was built (recorded
    with results); ``head_prefixes`` name the new layers (fine-tuned at a higher learning rate).
    """

    head_prefixes = ("extra", "cam_conv", "fc")

    def __init__(
        self,
        features: nn.Module,
        in_channels: int,
        num_classes: int = 1000,
        pool: Pool = "avg",
        *,
        width: int = 1024,
        extra: nn.Module | None = None,
        arch: str = "gapnet",
        description: str = "",
    ) -> None:
        super().__init__()
        self.features = features
        self.extra = extra if extra is not None else nn.Identity()
        self.cam_conv = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, stride=1, padding=1), nn.ReLU(inplace=True)
        )
        self.pool = _global_pool(pool)
        self.fc = nn.Linear(width, num_classes)
        self.pool_kind = pool
        self.arch = arch
        self.description = description
        for m in [*self.extra.modules(), *self.cam_conv.modules()]:
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.fc.weight, 0.0, 0.01)
        nn.init.zeros_(self.fc.bias)  # the paper's recipe: softmax bias set to 0

    def forward(self, x: Tensor) -> Tensor:
        f = self.cam_conv(self.extra(self.features(x)))
        return self.fc(torch.flatten(self.pool(f), 1))


# --------------------------------------------------------------------------- backbones


def _torchvision(name: str, weights: str | None) -> tuple[nn.Module, str]:
    """A torchvision classifier (random init, or ImageNet weights through the weights API) + a description."""
    if weights is None:
        if name == "googlenet":
            return tvm.GoogLeNet(aux_logits=False, init_weights=True), "torchvision googlenet, random init"
        return tvm.get_model(name, weights=None), f"torchvision {name}, random init"
    from camlib.models.imagenet import load_torchvision

    loaded = load_torchvision(name, weights=weights)
    model = loaded.model.train()
    if name == "googlenet":  # load_torchvision keeps the auxiliary heads; the paper's rows do not use them
        model.aux_logits, model.aux1, model.aux2 = False, None, None
    return model, loaded.description


class _GoogLeNetInput(nn.Module):
    """torchvision GoogLeNet's ``transform_input`` (on with its ImageNet weights) as a module."""

    def __init__(self, enabled: bool) -> None:
        super().__init__()
        self.enabled = bool(enabled)

    def forward(self, x: Tensor) -> Tensor:
        if not self.enabled:
            return x
        scale = x.new_tensor([0.229 / 0.5, 0.224 / 0.5, 0.225 / 0.5])[None, :, None, None]
        shift = x.new_tensor([(0.485 - 0.5) / 0.5, (0.456 - 0.5) / 0.5, (0.406 - 0.5) / 0.5])[
            None, :, None, None
        ]
        return x * scale + shift

    def extra_repr(self) -> str:
        return f"enabled={self.enabled}"


_GOOGLENET_TO_4E = (
    "conv1", "maxpool1", "conv2", "conv3", "maxpool2", "inception3a", "inception3b", "maxpool3",
    "inception4a", "inception4b", "inception4c", "inception4d", "inception4e",
)  # fmt: skip


def _label(base: str, pool: str) -> str:
    return f"{base}-{'GAP' if pool == 'avg' else 'GMP'}"


# --------------------------------------------------------------------------- the paper's networks


def _conv_features(name: str, weights: str | None) -> tuple[nn.Sequential, str]:
    """``features`` of torchvision ``alexnet`` / ``vgg16`` (random init or ImageNet weights) + a description.

    Random init builds the network on the meta device and materialises only ``features``, with the
    initialisation torchvision gives those layers (PyTorch's default for AlexNet, Kaiming fan-out for
    VGG), so the tests never allocate the 60-120M-parameter FC stacks.
    """
    if weights is not None:
        net, desc = _torchvision(name, weights)
        return net.features, desc
    with torch.device("meta"):
        net = tvm.get_model(name, weights=None)
    features = net.features.to_empty(device="cpu")
    for m in features.modules():
        if isinstance(m, nn.Conv2d):
            if name == "vgg16":
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            else:
                m.reset_parameters()
    return features, f"torchvision {name} features, random init"


def _conv5_gap(
    tv_name: str,
    cut: int,
    channels: int,
    label: str,
    arch: str,
    num_classes: int,
    pool: Pool,
    weights: str | None,
    extra: Callable[[], nn.Module] | None = None,
) -> GAPNet:
    """torchvision ``tv_name``'s conv layers up to conv5 + ReLU (``features[:cut]``: pool5 and the FC stack
    removed) [+ the layers ``extra()`` builds, after the backbone so a seeded random init draws in the same
    order] with ``channels`` maps + the GAP head: the paper's AlexNet-GAP, AlexNet*-GAP and VGGnet-GAP."""
    features, desc = _conv_features(tv_name, weights)
    return GAPNet(
        features[:cut],
        channels,
        num_classes,
        pool,
        extra=None if extra is None else extra(),
        arch=arch,
        description=f"{_label(label, pool)} from {desc}",
    )


def alexnet_gap(num_classes: int = 1000, pool: Pool = "avg", weights: str | None = None) -> GAPNet:
    """AlexNet-GAP: AlexNet up to conv5 + ReLU (pool5 = features[12] and the FC stack removed) + the GAP head;
    13x13 at 224."""
    return _conv5_gap("alexnet", 12, 256, "AlexNet", "alexnet_gap", num_classes, pool, weights)


def alexnet_star_gap(num_classes: int = 1000, pool: Pool = "avg", weights: str | None = None) -> GAPNet:
    """AlexNet*-GAP: AlexNet-GAP with two extra 3x3 conv layers (512 units, pad 1) + ReLU before the head."""

    def extra() -> nn.Module:
        return nn.Sequential(
            nn.Conv2d(256, 512, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(512, 512, 3, padding=1), nn.ReLU(inplace=True),
        )  # fmt: skip

    return _conv5_gap("alexnet", 12, 512, "AlexNet*", "alexnet_star_gap", num_classes, pool, weights, extra)


def vggnet_gap(num_classes: int = 1000, pool: Pool = "avg", weights: str | None = None) -> GAPNet:
    """VGGnet-GAP: VGG16 up to conv5_3 + ReLU (pool5 = features[30] and the FC stack removed) + the GAP head;
    14x14 at 224."""
    return _conv5_gap("vgg16", 30, 512, "VGGnet", "vggnet_gap", num_classes, pool, weights)


def googlenet_gap(num_classes: int = 1000, pool: Pool = "avg", weights: str | None = None) -> GAPNet:
    """GoogLeNet-GAP: torchvision GoogLeNet up to inception4e (pool4 .. fc removed) + the GAP head; 14x14."""
    net, desc = _torchvision("googlenet", weights)
    layers = [("transform_input", _GoogLeNetInput(net.transform_input))]
    layers += [(name, getattr(net, name)) for name in _GOOGLENET_TO_4E]
    return GAPNet(
        nn.Sequential(OrderedDict(layers)),
        832,
        num_classes,
        pool,
        arch="googlenet_gap",
        description=f"{_label('GoogLeNet', pool)} from {desc}",
    )


def resnet50_s1(num_classes: int = 1000, pool: Pool = "avg", weights: str | None = None) -> nn.Module:
    """ResNet-50 whose last stage keeps stride 1 (dilated, ``replace_stride_with_dilation``): 14x14 maps.

    The head is torchvision's own (``avgpool`` -> ``fc``, 2048 -> classes); ``pool="max"`` replaces the
    module called ``avgpool`` by a global max pooling. ImageNet weights load unchanged (dilation adds no
    parameters); ``fc`` is kept when ``num_classes == 1000`` and replaced (bias 0) otherwise.
    """
    _check_pool(pool)
    model = tvm.resnet50(weights=None, replace_stride_with_dilation=[False, False, True])
    desc = "torchvision resnet50, random init"
    if weights is not None:
        net, desc = _torchvision("resnet50", weights)
        model.load_state_dict(net.state_dict())
    if num_classes != model.fc.out_features:
        model.fc = nn.Linear(model.fc.in_features, num_classes)
        nn.init.zeros_(model.fc.bias)
    model.avgpool = _global_pool(pool)
    model.pool_kind = pool
    model.arch = "resnet50_s1"
    model.head_prefixes = ("fc",)
    model.description = f"ResNet-50, layer4 stride 1 + dilation 2, global {pool} pooling; from {desc}"
    return model


def original_network(name: str, num_classes: int = 1000, weights: str | None = None) -> nn.Module:
    """An unmodified torchvision network (``"googlenet"`` or ``"resnet50"``): the paper's "original" rows.

    CAM applies to both as they are (global average pooling -> fc); their maps are 7x7 at 224.
    """
    if name not in ORIGINAL_ARCHS:
        raise ValueError(f"original networks: {', '.join(ORIGINAL_ARCHS)}; got {name!r}")
    model, desc = _torchvision(name, weights)
    if num_classes != model.fc.out_features:
        model.fc = nn.Linear(model.fc.in_features, num_classes)
        nn.init.zeros_(model.fc.bias)
    model.pool_kind = "avg"
    model.arch = name
    model.head_prefixes = ("fc",)
    model.description = desc
    return model


_BUILDERS = {
    "alexnet_gap": alexnet_gap,
    "alexnet_star_gap": alexnet_star_gap,
    "vggnet_gap": vggnet_gap,
    "googlenet_gap": googlenet_gap,
    "resnet50_s1": resnet50_s1,
}


def gap_variant(
    arch: str, *, pool: Pool = "avg", num_classes: int = 1000, weights: str | None = None
) -> nn.Module:
    """Build any network of this module by name (see :data:`ARCHS`); ``pool="max"`` for the -GMP twin.

    The original networks (``"googlenet"``, ``"resnet50"``) exist only with average pooling.
    """
    _check_pool(pool)
    if arch in _BUILDERS:
        return _BUILDERS[arch](num_classes=num_classes, pool=pool, weights=weights)
    if arch in ORIGINAL_ARCHS:
        if pool != "avg":
            raise ValueError(
                f"the original {arch} has global average pooling; use 'resnet50_s1' or a -GAP arch for max"
            )
        return original_network(arch, num_classes=num_classes, weights=weights)
    raise ValueError(f"unknown arch {arch!r}; expected one of {', '.join(ARCHS)}")
