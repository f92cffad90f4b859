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
        CAM(make())(
            torch.randn(1, 3, 96, 96) if match != "normalisation after pooling" else torch.randn(1, 3, 64, 64)
        )
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
    assert CAMOptions().to_dict() == {
        "upsample": "bilinear",
        "size": "input",
        "relu": False,
        "normalize": "minmax",
    }


def test_gmp_detected_even_with_tiny_logits():
    torch.manual_seed(4)
    model = SmallGAPNet(3, pool="max")
    with torch.no_grad():
        model.fc.weight.mul_(1e-9)
        model.fc.bias.zero_()
    assert CAM(model)(torch.rand(2, 3, 64, 64)).head.pool == "max"


# -- input that used to be accepted and give silently wrong maps (issue 19) ---------------------------
def test_normalize_maps_ignores_infinite_pixels_as_paper_box_does():
    from camlib.core.boxes import paper_box

    base = torch.tensor([[0.0, 1.0, 2.0], [3.0, 4.0, 2.0]])[None, None]
    expected = normalize_maps(base, "minmax")  # finite map: [0, .25, .5; .75, 1, .5]
    for bad in (-torch.inf, torch.inf, torch.nan):
        m = base.clone()
        m[..., 1, 2] = bad
        for mode in ("minmax", "max"):
            out = normalize_maps(m, mode)
            assert torch.isnan(out[..., 1, 2]).all(), (bad, mode)  # no value, as paper_box leaves it out
            ref = normalize_maps(base, mode)
            keep = torch.ones_like(m, dtype=torch.bool)
            keep[..., 1, 2] = False
            assert torch.equal(out[keep], ref[keep]), (bad, mode)  # the other pixels: as if it were absent
        # the box of the normalised map = the box of the raw map (paper_box drops non-finite pixels too)
        assert (paper_box(normalize_maps(m, "max")[0, 0]) == paper_box(m[0, 0])).all()
    assert expected[0, 0, 1, 1] == 1 and expected[0, 0, 0, 0] == 0
    # one -Inf pixel: not a NaN map; one +Inf pixel: not a map of zeros (the old results)
    neg = base.clone()
    neg[..., 0, 0] = -torch.inf
    assert torch.isfinite(normalize_maps(neg)).sum() == 5 and normalize_maps(neg)[0, 0, 1, 1] == 1
    pos = base.clone()
    pos[..., 1, 1] = torch.inf
    assert normalize_maps(pos)[0, 0, 1, 0] == 1 and normalize_maps(pos, "max")[0, 0, 1, 0] == 1
    # no finite pixel at all -> all NaN; the other map of the batch is unaffected
    two = torch.stack([base[0, 0], torch.full((2, 3), torch.inf)])[None]
    out = normalize_maps(two)
    assert torch.isnan(out[0, 1]).all() and torch.equal(out[0, 0], expected[0, 0])


@pytest.mark.parametrize("mode", ["minmax", "max"])
def test_normalize_maps_subnormal_map_spans_zero_to_one(mode):
    m = torch.tensor([[0.0, 1e-40], [2e-40, 4e-40]])[None, None]  # float32 subnormals
    assert m.dtype == torch.float32 and 0 < m.max() < torch.finfo(torch.float32).tiny
    out = normalize_maps(m, mode)
    assert out.max() == 1 and out.min() == 0  # not 8.5e-5 (division by the smallest normal float)
    assert torch.allclose(out, torch.tensor([[0.0, 0.25], [0.5, 1.0]]), atol=1e-4)


def test_normalize_maps_regular_maps_unchanged_and_huge_range_does_not_overflow():
    torch.manual_seed(0)
    m = torch.randn(3, 2, 7, 7)
    lo, hi = m.amin((-2, -1), keepdim=True), m.amax((-2, -1), keepdim=True)
    assert torch.equal(normalize_maps(m, "minmax"), (m - lo) / (hi - lo))  # the plain formula, bit for bit
    assert torch.equal(normalize_maps(m, "max"), m / hi)
    huge = torch.tensor([[-3e38, 0.0], [1e38, 3e38]])[None, None]  # max - min overflows float32
    out = normalize_maps(huge)
    assert (
        torch.isfinite(out).all() and out.min() == 0 and out.max() == 1 and abs(out[0, 0, 0, 1] - 0.5) < 1e-6
    )


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"size": "foo"}, "size='foo'"),
        ({"size": (224,)}, "size="),
        ({"size": (224.5, 224)}, "size="),
        ({"size": (0, 224)}, "size="),
        ({"size": (True, 224)}, "size="),
        ({"upsample": "nearest"}, "upsample='nearest'"),
        ({"upsample": "Bilinear"}, "upsample="),
        ({"normalize": "min-max"}, "normalize='min-max'"),
        ({"normalize": None}, "normalize=None"),
        ({"relu": "yes"}, "relu="),
    ],
)
def test_cam_options_rejects_bad_values_at_construction(kwargs, match):
    with pytest.raises(ValueError, match=match.replace("(", r"\(")) as err:
        CAMOptions(**kwargs)
    assert "must be" in str(err.value)


def test_cam_options_accepts_sizes_as_any_integer_pair():
    assert CAMOptions(size=[32, 48]).size == (32, 48)  # a list (e.g. from JSON) becomes a tuple
    assert CAMOptions(size=torch.Size([32, 48])).size == (32, 48)
    assert CAMOptions(size=(torch.tensor(32), 48)).size == (32, 48)
    assert hash(CAMOptions(size=[32, 48])) == hash(CAMOptions(size=(32, 48)))
    assert CAMOptions(size="original").to_dict()["size"] == "original"


@pytest.mark.parametrize(
    "targets",
    [[1.0, 2.0], [0.7, 2.9], torch.tensor([1.0, 2.0]), 1.0, True, [True, False], torch.tensor([True, False])],
)
def test_float_and_bool_targets_rejected_not_coerced(targets):
    from camlib.core.cam import select_classes

    model = SmallGAPNet(4)
    x = torch.rand(2, 3, 64, 64)
    with pytest.raises(TargetError, match="integer class indices"):
        CAM(model)(x, targets=targets)
    with pytest.raises(TargetError, match="integer class indices"):
        select_classes(torch.zeros(2, 4), targets)


def test_integer_targets_of_any_integer_dtype_still_accepted():
    import numpy as np

    from camlib.core.cam import select_classes

    logits = torch.zeros(2, 4)
    for t in (
        [1, 3],
        torch.tensor([1, 3], dtype=torch.int32),
        np.array([1, 3]),
        torch.tensor([1, 3], dtype=torch.uint8),
    ):
        assert select_classes(logits, t).tolist() == [[1], [3]]
    assert select_classes(logits, 2).tolist() == [[2], [2]]
    with pytest.raises(TargetError, match="topk"):
        select_classes(logits, topk=1.5)
    with pytest.raises(TargetError, match="topk"):
        select_classes(logits, topk=True)


def _fresh_vit() -> nn.Module:
    """torchvision's VisionTransformer, as ``vit_b_16(weights=None)`` builds it (zero head), only small."""
    from torchvision.models.vision_transformer import VisionTransformer

    torch.manual_seed(0)
    return VisionTransformer(
        image_size=32, patch_size=8, num_layers=1, num_heads=2, hidden_dim=16, mlp_dim=32, num_classes=10
    )


def test_zero_classifier_cannot_be_decided():
    vit = _fresh_vit()
    assert torch.count_nonzero(vit.heads.head.weight) == 0  # what torchvision's init does
    with pytest.raises(NotCAMCompatibleError, match=r"cannot decide.*W = 0") as err:
        CAM(vit)(torch.randn(2, 3, 32, 32))
    assert "trained weights" in str(err.value) and "Ways out" in str(err.value)
    # naming the layers does not make the check any less vacuous
    with pytest.raises(NotCAMCompatibleError, match="W = 0"):
        CAM(vit, feature_layer="conv_proj", fc_layer="heads.head")(torch.randn(1, 3, 32, 32))
    # once the head has weights, the ViT is recognised for what it is: not pooling -> linear
    with torch.no_grad():
        vit.heads.head.weight.normal_()
    with pytest.raises(NotCAMCompatibleError, match="does not reproduce"):
        CAM(vit)(torch.randn(2, 3, 32, 32))
    # a real CAM network with a zeroed classifier: also undecidable (every map would be 0) ...
    model = SmallGAPNet(3)
    with torch.no_grad():
        model.fc.weight.zero_()
    with pytest.raises(NotCAMCompatibleError, match="W = 0"):
        CAM(model)(torch.rand(1, 3, 64, 64))
    # ... while one nonzero weight is enough to decide
    with torch.no_grad():
        model.fc.weight[0, 0] = 1.0
    assert CAM(model)(torch.rand(1, 3, 64, 64)).head.fc_layer == "fc"
