"""The paper's -GAP / -GMP networks: shapes, CAM grid at 224, head detection, the S_c identity (GAP) and
the meaning of max pooling (GMP). Random init only: nothing is downloaded."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

from camlib.core.cam import CAM
from camlib.models import (
    ARCHS,
    GAP_ARCHS,
    GAPNet,
    gap_variant,
    googlenet_gap,
    paper_key,
    resnet50_s1,
)

REPO = Path(__file__).resolve().parents[1]
NUM_CLASSES = 7

# CAM resolution at a 224 x 224 input (the paper's recipe table; resnet50_s1: stride-1 layer4)
GRID_224 = {
    "alexnet_gap": 13,
    "alexnet_star_gap": 13,
    "vggnet_gap": 14,
    "googlenet_gap": 14,
    "resnet50_s1": 14,
    "googlenet": 7,
    "resnet50": 7,
}
FEATURE_LAYER = {"resnet50_s1": "layer4", "resnet50": "layer4", "googlenet": "inception5b"}


def _realistic(model: nn.Module) -> nn.Module:
    """Give a randomly initialised network eval-mode activations of a trained network's scale.

    torchvision's GoogLeNet init (std 0.01) with identity BatchNorm statistics gives ~1e-10 logits in
    eval mode, where any head "explains" the output. Set each BatchNorm's statistics from one batch,
    then make the classifier's weights O(1) and its bias non-zero, so the checks below can fail.
    """
    g = torch.Generator().manual_seed(1)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average: one batch sets the statistics
    if bns:
        model.train()
        with torch.no_grad():
            model(torch.rand(2, 3, 64, 64, generator=g))
    model.eval()
    fc = model.fc
    with torch.no_grad():
        fc.weight.copy_(torch.randn(fc.weight.shape, generator=g) / fc.weight.shape[1] ** 0.5 * 4)
        fc.bias.copy_(torch.randn(fc.bias.shape, generator=g))
    return model


def _build(arch: str, pool: str) -> nn.Module:
    torch.manual_seed(0)
    return gap_variant(arch, pool=pool, num_classes=NUM_CLASSES)


@pytest.mark.parametrize("arch", ARCHS)
def test_cam_grid_at_224_and_detected_head(arch):
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    model = _realistic(_build(arch, "avg"))
    with torch.no_grad():
        logits = model(x)
    assert logits.shape == (1, NUM_CLASSES)
    out = CAM(model)(x, all_classes=True)
    g = GRID_224[arch]
    assert out.maps.shape == (1, NUM_CLASSES, g, g)
    assert out.head.feature_layer == FEATURE_LAYER.get(arch, "cam_conv")
    assert out.head.fc_layer == "fc"
    assert out.head.pool == "avg" and out.head.kind == "linear" and not out.head.relu
    if arch in GAP_ARCHS:
        assert out.features.shape[1] == 1024  # the paper's 3x3, 1024-unit layer


@pytest.mark.parametrize("arch", [*GAP_ARCHS, "resnet50_s1"])
def test_gmp_variant_detected_as_max(arch):
    x = torch.randn(2, 3, 96, 96, generator=torch.Generator().manual_seed(0))  # small input: fast
    model = _realistic(_build(arch, "max"))
    out = CAM(model)(x)
    assert out.head.pool == "max"
    assert out.logits.shape == (2, NUM_CLASSES)
    assert model.pool_kind == "max"


@pytest.mark.parametrize("arch", ["alexnet_gap", "googlenet_gap"])
def test_gap_identity_mean_of_map_plus_bias_is_logit(arch):
    x = torch.randn(2, 3, 96, 96, generator=torch.Generator().manual_seed(2))
    model = _realistic(_build(arch, "avg"))
    out = CAM(model)(x, all_classes=True)
    S = out.maps.mean((2, 3)) + model.fc.bias
    torch.testing.assert_close(S, out.logits, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("arch", ["alexnet_gap", "googlenet_gap"])
def test_gmp_pools_the_max_of_each_unit(arch):
    """GMP: unit k contributes max_{x,y} f_k(x, y); S_c = sum_k w_k^c max f_k + b_c. The GAP identity
    (mean of the map) does not hold, and max M_c <= S_c - b_c when the weights are >= 0."""
    x = torch.randn(2, 3, 96, 96, generator=torch.Generator().manual_seed(3))
    model = _realistic(_build(arch, "max"))
    seen = {}
    hooks = [
        model.cam_conv.register_forward_hook(lambda m, i, o: seen.__setitem__("f", o.clone())),
        model.pool.register_forward_hook(lambda m, i, o: seen.__setitem__("pooled", o.clone())),
    ]
    try:
        with torch.no_grad():
            logits = model(x)
    finally:
        for h in hooks:
            h.remove()
    f = seen["f"]
    torch.testing.assert_close(seen["pooled"].flatten(1), f.amax((2, 3)))
    torch.testing.assert_close(
        logits, f.amax((2, 3)) @ model.fc.weight.T + model.fc.bias, rtol=1e-4, atol=1e-4
    )
    out = CAM(model)(x, all_classes=True)
    mean_identity = out.maps.mean((2, 3)) + model.fc.bias
    assert not torch.allclose(mean_identity, out.logits, rtol=1e-3, atol=1e-3)
    with torch.no_grad():
        model.fc.weight.abs_()
    out = CAM(model)(x, all_classes=True)
    assert (out.maps.amax((2, 3)) <= out.logits - model.fc.bias + 1e-4).all()


def test_new_layers_and_head_prefixes():
    torch.manual_seed(0)
    m = googlenet_gap(num_classes=NUM_CLASSES, pool="max")
    assert isinstance(m, GAPNet) and m.arch == "googlenet_gap" and "GMP" in m.description
    assert torch.count_nonzero(m.fc.bias) == 0  # softmax bias starts at 0 (paper's recipe)
    head = [n for n, _ in m.named_parameters() if n.startswith(m.head_prefixes)]
    assert sorted(head) == ["cam_conv.0.bias", "cam_conv.0.weight", "fc.bias", "fc.weight"]
    assert not m.features.transform_input.enabled  # random init: no torchvision input re-mapping
    star = gap_variant("alexnet_star_gap", num_classes=NUM_CLASSES)
    assert any(n.startswith("extra.") for n, _ in star.named_parameters())
    assert resnet50_s1(num_classes=NUM_CLASSES).head_prefixes == ("fc",)


def test_weights_go_through_the_weights_api(monkeypatch):
    """With weights=..., the backbone comes from camlib.models.imagenet.load_torchvision (mocked here:
    tests never download) and keeps its parameters; GoogLeNet's input transform and aux heads follow."""
    import torchvision.models as tvm

    from camlib.models import imagenet

    calls = []

    def fake_load(name, weights="DEFAULT", device="cpu"):
        calls.append((name, weights))
        torch.manual_seed(5)
        net = tvm.GoogLeNet(aux_logits=True, transform_input=True, init_weights=True)
        return imagenet.ImageNetModel(
            name, net.eval(), lambda im: im, (224, 224), [], f"mock {name} {weights}"
        )

    monkeypatch.setattr(imagenet, "load_torchvision", fake_load)
    m = googlenet_gap(num_classes=NUM_CLASSES, weights="IMAGENET1K_V1")
    assert calls == [("googlenet", "IMAGENET1K_V1")]
    assert m.features.transform_input.enabled and "mock googlenet" in m.description
    torch.manual_seed(5)
    ref = tvm.GoogLeNet(aux_logits=True, transform_input=True, init_weights=True)
    torch.testing.assert_close(
        m.features.inception4e.branch1.conv.weight, ref.inception4e.branch1.conv.weight
    )
    orig = gap_variant("googlenet", weights="DEFAULT")
    assert orig.aux1 is None and orig.aux2 is None and not orig.aux_logits


def test_paper_keys_exist_in_paper_yaml():
    paper = yaml.safe_load((REPO / "results" / "paper.yaml").read_text())
    assert paper_key("googlenet_gap", "max") == "googlenet_gmp"
    assert paper_key("vggnet_gap", "max") is None  # the paper has no VGGnet-GMP row
    for arch in ARCHS:
        key = paper_key(arch, "avg")
        if key is not None:
            assert f"table1.{key}.top1_err" in paper and f"table2.{key}.top1_loc_err" in paper
    assert "table2.googlenet_gmp.top5_loc_err" in paper


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown arch"):
        gap_variant("lenet_gap")
    with pytest.raises(ValueError, match="pool"):
        gap_variant("alexnet_gap", pool="median")
    with pytest.raises(ValueError, match="average pooling"):
        gap_variant("googlenet", pool="max")
