"""Gradient saliency (the paper's "Backprop" baseline): exact values, call shape, side effects."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from camlib.core.cam import CAM, TargetError
from camlib.core.saliency import BackpropSaliency
from camlib.evaluation.localize import class_maps
from camlib.models import SmallGAPNet


class Linear(nn.Module):
    """logits = W vec(x): the input gradient of class c is W_c itself."""

    def __init__(self, C=4, H=5, W=6):
        super().__init__()
        self.fc = nn.Linear(3 * H * W, C)

    def forward(self, x):
        return self.fc(x.flatten(1))


def test_linear_model_saliency_is_max_abs_weight():
    torch.manual_seed(0)
    m = Linear()
    x = torch.randn(3, 3, 5, 6)
    out = BackpropSaliency(m)(x, targets=[2, 0, 3])
    W = m.fc.weight.detach().view(4, 3, 5, 6)
    for b, c in enumerate([2, 0, 3]):
        torch.testing.assert_close(out.maps[b, 0], W[c].abs().amax(0))
    assert out.maps.shape == (3, 1, 5, 6)
    torch.testing.assert_close(out.logits, m(x).detach())


def test_batch_items_are_independent_and_match_autograd():
    torch.manual_seed(1)
    net = SmallGAPNet(5, channels=(8, 8), width=8).eval()
    x = torch.rand(3, 3, 16, 16)
    out = BackpropSaliency(net)(x, topk=2, extra_targets=[4, 4, 1])
    assert out.classes.shape == (3, 3) and out.maps.shape == (3, 3, 16, 16)
    assert out.classes[:, 2].tolist() == [4, 4, 1]
    for b in range(3):
        xb = x[b : b + 1].clone().requires_grad_(True)
        c = int(out.classes[b, 1])
        (g,) = torch.autograd.grad(net(xb)[0, c], xb)
        torch.testing.assert_close(out.maps[b, 1], g[0].abs().amax(0), rtol=1e-4, atol=1e-6)
    top = net(x).topk(2, dim=1).indices
    assert torch.equal(out.classes[:, :2], top)


def test_no_side_effects_on_the_model():
    net = SmallGAPNet(3, channels=(4,), width=4)
    net.train()
    BackpropSaliency(net)(torch.rand(2, 3, 8, 8))
    assert net.training and all(m.training for m in net.modules())
    assert all(p.grad is None for p in net.parameters())


def test_call_errors():
    sal = BackpropSaliency(Linear())
    x = torch.randn(2, 3, 5, 6)
    with pytest.raises(TargetError, match="backward"):
        sal(x, all_classes=True)
    with pytest.raises(TargetError, match="only one"):
        sal(x, targets=[0, 1], topk=2)
    with pytest.raises(TargetError):
        sal(x, targets=[0, 9])
    with pytest.raises(TargetError):
        sal(x[0])


def test_same_call_shape_as_cam_in_the_pipeline():
    torch.manual_seed(0)
    net = SmallGAPNet(6, channels=(8, 8), width=8).eval()
    x = torch.rand(2, 3, 32, 32)
    lc, pc, mc = class_maps(CAM(net), x, topk=3, gt_labels=[1, 2])
    ls, ps, ms = class_maps(BackpropSaliency(net), x, topk=3, gt_labels=[1, 2])
    torch.testing.assert_close(lc, ls)
    assert torch.equal(pc, ps)
    assert mc.shape[:2] == ms.shape[:2] == (2, 4)
    assert ms.shape[-2:] == (32, 32) and mc.shape[-2:] == (16, 16)  # input vs feature resolution


def test_extra_class_among_the_top_k_is_copied_and_the_others_computed():
    """The ground-truth column: copied from the top-k column of the same class where it is one of them,
    computed on its own (a forward + backward of those images only) where it is not: the maps of
    computing every column separately."""
    torch.manual_seed(2)
    net = SmallGAPNet(6, channels=(8, 8), width=8).eval()
    x = torch.rand(4, 3, 16, 16)
    top = net(x).topk(3, dim=1).indices
    not_top = [next(c for c in range(6) if c not in top[b].tolist()) for b in range(4)]
    for extra in ([int(top[0, 1]), int(top[1, 0]), not_top[2], int(top[3, 2])], not_top):  # few / all missing
        out = BackpropSaliency(net)(x, topk=3, extra_targets=extra)
        assert out.classes[:, 3].tolist() == extra
        for b in range(4):
            for i in range(4):
                xb = x[b : b + 1].clone().requires_grad_(True)
                (g,) = torch.autograd.grad(net(xb)[0, int(out.classes[b, i])], xb)
                torch.testing.assert_close(out.maps[b, i], g[0].abs().amax(0), rtol=1e-4, atol=1e-6)
        for b, c in enumerate(extra):
            if c in top[b].tolist():
                assert torch.equal(out.maps[b, 3], out.maps[b, top[b].tolist().index(c)])
