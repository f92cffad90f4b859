"""CAM core: head detection, the S_c identity, hand-computed maps, targets, errors, model safety."""

from __future__ import annotations

import pytest
import torch
import torchvision.models as tvm
from torch import nn

from camlib.core.cam import CAM, CAMOptions, NotCAMCompatibleError, TargetError, normalize_maps, postprocess
from camlib.models import SmallGAPNet, load_efficientnet_lite0


def _identity_error(model: nn.Module, x: torch.Tensor) -> float:
    out = CAM(model)(x, all_classes=True)
    fc = model.get_submodule(out.head.fc_layer)
    pred = out.maps.mean((2, 3)) + (0 if out.head.kind == "score_map" else fc.bias)
    return float(((pred - out.logits).abs().max() / out.logits.abs().max()).detach())


FAMILIES = {
    "resnet18": lambda: tvm.resnet18(),
    "densenet121": lambda: tvm.densenet121(),
    "mobilenet_v2": lambda: tvm.mobilenet_v2(),
    "efficientnet_b0": lambda: tvm.efficientnet_b0(),
    "regnet_y_400mf": lambda: tvm.regnet_y_400mf(),
    "googlenet": lambda: tvm.googlenet(aux_logits=False, init_weights=True),
    "shufflenet": lambda: tvm.shufflenet_v2_x0_5(),
    "mnasnet": lambda: tvm.mnasnet0_5(),
    "squeezenet": lambda: tvm.squeezenet1_1(),
    "resnext": lambda: tvm.resnext50_32x4d(),
    "small_gap": lambda: SmallGAPNet(6),
}


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_sc_identity_on_model_families(name):
    torch.manual_seed(0)
    model = FAMILIES[name]()
    x = torch.randn(2, 3, 64, 64) if name == "small_gap" else torch.randn(2, 3, 160, 160)
    assert _identity_error(model, x) < 1e-4


def test_sc_identity_embedded_lite0():
    m = load_efficientnet_lite0()
    x = torch.randn(1, 3, 224, 224)
    assert _identity_error(m.model, x) < 1e-4
    cam = CAM(m.model)
    cam(x)
    assert cam.head.feature_layer == "_swish" and cam.head.fc_layer == "_fc"


def test_cam_equals_hand_weighted_sum():
    torch.manual_seed(1)
    model = SmallGAPNet(5).eval()
    x = torch.rand(3, 3, 64, 64)
    out = CAM(model)(x, targets=[4, 0, 2])
    with torch.no_grad():
        f = model.cam_conv(model.features(x))
    w = model.fc.weight
    for b, c in enumerate([4, 0, 2]):
        hand = sum(w[c, k] * f[b, k] for k in range(f.shape[1]))
        torch.testing.assert_close(out.maps[b, 0], hand, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(out.features, f)


def test_topk_and_all_classes_agree():
    torch.manual_seed(2)
    model = SmallGAPNet(7).eval()
    x = torch.rand(2, 3, 64, 64)
    cam = CAM(model)
    all_ = cam(x, all_classes=True)
    top = cam(x, topk=3)
    assert top.classes.shape == (2, 3)
    assert torch.equal(top.classes, all_.logits.topk(3, 1).indices)
    for b in range(2):
        torch.testing.assert_close(top.maps[b], all_.maps[b, top.classes[b]])
    assert all_.maps.shape == (2, 7, 16, 16)
    default = cam(x)
    assert default.classes.shape == (2, 1)


def test_explicit_layer_names():
    model = tvm.resnet18().eval()
    cam = CAM(model, feature_layer="layer4", fc_layer="fc")
    out = cam(torch.randn(1, 3, 96, 96))
    assert out.head.feature_layer == "layer4"
    with pytest.raises(NotCAMCompatibleError, match="not a submodule"):
        CAM(model, feature_layer="layer9")


@pytest.mark.parametrize("targets", [[1, 2, 3], [[1], [2], [3]], torch.tensor([0])])
def test_target_batch_mismatch(targets):
    model = SmallGAPNet(4)
    with pytest.raises(TargetError, match="one class"):
        CAM(model)(torch.rand(2, 3, 64, 64), targets=targets)


def test_target_out_of_range_and_conflicts():
    model = SmallGAPNet(4)
    x = torch.rand(2, 3, 64, 64)
    with pytest.raises(TargetError, match="out of range"):
        CAM(model)(x, targets=[0, 4])
    with pytest.raises(TargetError, match="only one"):
        CAM(model)(x, targets=[0, 1], topk=2)
    with pytest.raises(TargetError, match="topk"):
        CAM(model)(x, topk=5)
    with pytest.raises(TargetError, match="batch dimension"):
        CAM(model)(torch.rand(3, 64, 64))


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: tvm.vgg11(), "fully connected"),
        (lambda: tvm.alexnet(), "fully connected"),
        (lambda: tvm.mobilenet_v3_small(), "fully connected"),
        (lambda: tvm.convnext_tiny(), "normalisation after pooling"),
    ],
)
def test_non_cam_heads_rejected_with_way_out(make, match):
    with pytest.raises(NotCAMCompatibleError, match=match) as err:
        CAM(make())(torch.randn(1, 3, 96, 96) if match != "normalisation after pooling" else torch.randn(1, 3, 64, 64))
    assert "Ways out" in str(err.value)


def test_hooks_removed_and_train_state_restored_after_exception():
    model = SmallGAPNet(3)
    model.train()
    model.features[1].eval()  # a user's own choice: one BN frozen
    flags = [m.training for m in model.modules()]
    cam = CAM(model)
    with pytest.raises(TargetError):
        with cam:
            cam(torch.rand(2, 3, 64, 64), targets=[7, 7])
    assert [m.training for m in model.modules()] == flags
    assert all(len(m._forward_hooks) == 0 for m in model.modules())

    class Boom(nn.Module):
        def forward(self, x):
            raise RuntimeError("boom")

    model.cam_conv.append(Boom())
    with pytest.raises(RuntimeError, match="boom"):
        CAM(model)(torch.rand(1, 3, 64, 64))
    assert [m.training for m in model.modules()][: len(flags)] == flags
    assert all(len(m._forward_hooks) == 0 for m in model.modules())


def test_model_not_modified():
    torch.manual_seed(3)
    model = SmallGAPNet(3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    CAM(model)(torch.rand(4, 3, 64, 64), all_classes=True)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # BN running stats untouched (eval)


def test_gmp_head_detected():
    model = SmallGAPNet(3, pool="max")
    out = CAM(model)(torch.rand(2, 3, 64, 64))
    assert out.head.pool == "max"


def test_postprocess_options():
    maps = torch.tensor([[[[0.0, 1.0], [2.0, 4.0]]]])
    up = postprocess(maps, CAMOptions(upsample="bilinear", normalize="none"), input_size=(4, 4))
    assert up.shape == (1, 1, 4, 4)
    mm = postprocess(maps, CAMOptions(upsample="none", normalize="minmax"))
    assert mm.min() == 0 and mm.max() == 1
    mx = postprocess(-maps, CAMOptions(upsample="none", normalize="max"))
    assert torch.equal(mx, torch.zeros_like(mx))  # no positive evidence
    flat = normalize_maps(torch.full((1, 1, 3, 3), 5.0), "minmax")
    assert torch.equal(flat, torch.zeros_like(flat))
    nan = maps.clone()
    nan[..., 0, 0] = torch.nan
    n = normalize_maps(nan, "minmax")
    assert torch.isnan(n[..., 0, 0]) and n[..., 1, 1] == 1
    with pytest.raises(ValueError, match="original_size"):
        postprocess(maps, CAMOptions(size="original"))
    assert CAMOptions().to_dict() == {"upsample": "bilinear", "size": "input", "relu": False, "normalize": "minmax"}


def test_gmp_detected_even_with_tiny_logits():
    torch.manual_seed(4)
    model = SmallGAPNet(3, pool="max")
    with torch.no_grad():
        model.fc.weight.mul_(1e-9)
        model.fc.bias.zero_()
    assert CAM(model)(torch.rand(2, 3, 64, 64)).head.pool == "max"
