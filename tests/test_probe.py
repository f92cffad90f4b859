"""The linear probe (camlib.core.probe): the SVM (C chosen on training folds only), CAMs from its weights, crops."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.svm import LinearSVC
from torch import nn

from camlib.core import features as FT
from camlib.core import probe as PR
from camlib.core.boxes import paper_boxes
from camlib.core.cam import CAMOptions, postprocess
from camlib.models import SmallGAPNet


@pytest.fixture(scope="module")
def net() -> SmallGAPNet:
    torch.manual_seed(0)
    m = SmallGAPNet(5, channels=(8, 16), width=24)
    with torch.no_grad():  # non-trivial BN statistics
        for mod in m.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.2, 0.2)
                mod.running_var.uniform_(0.5, 1.5)
    return m.eval()


def _images(n: int, seed: int = 0, size: int = 32) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _blobs(n_per_class: int, k: int = 12, classes: int = 3, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, (classes, k))
    y = np.repeat(np.arange(classes), n_per_class)
    return (centres[y] + rng.normal(0, 1, (len(y), k))).astype(np.float32), y


def test_C_is_chosen_on_training_folds_only():
    X_train, y_train = _blobs(20)
    X_test, y_test = _blobs(10, seed=1)
    X_test = X_test + 1e6  # any test row reaching fit would stand out after the train-fitted scaling
    seen: list[np.ndarray] = []

    class SpySVC(LinearSVC):
        def fit(self, X, y, sample_weight=None):
            seen.append(np.asarray(X))
            return super().fit(X, y, sample_weight)

    Cs = (0.01, 0.1, 1.0)
    probe = PR.fit_linear_svm(X_train, y_train, Cs=Cs, cv=3, estimator=SpySVC(dual="auto", max_iter=5000))
    assert len(seen) == len(Cs) * 3 + 1  # every C on every fold, then one refit
    assert [len(s) for s in seen[:-1]] == [40] * 9 and len(seen[-1]) == 60  # folds of the 60 train rows
    assert all(np.abs(s).max() < 100 for s in seen)  # no test row (1e6 away) was ever fitted
    assert set(probe.cv_scores) == set(Cs) and probe.best_C in Cs
    assert probe.best_C == max(probe.cv_scores, key=probe.cv_scores.get)
    probe.accuracy(X_test, y_test)  # test data only meets predict
    assert len(seen) == len(Cs) * 3 + 1


def test_linear_weights_fold_the_scaler():
    for classes in (3, 2):
        X, y = _blobs(15, classes=classes)
        probe = PR.fit_linear_svm(X, y, Cs=(0.1,), cv=3)
        W, b = probe.linear_weights()
        assert W.shape == (classes, X.shape[1])
        scores = X @ W.T + b
        dec = probe.decision_function(X)
        if classes == 2:
            assert np.allclose(scores[:, 1], dec, atol=1e-3) and np.allclose(scores[:, 0], -dec, atol=1e-3)
        else:
            assert np.allclose(scores, dec, atol=1e-3)
        assert (probe.classes[scores.argmax(1)] == probe.predict(X)).all()


def test_svm_cam_equals_hand_computed_weighted_sum(net):
    x = _images(30, size=32)
    X, _ = FT.gap_features(net, x, progress=False)
    y = np.arange(30) % 3
    probe = PR.fit_linear_svm(X, y, Cs=(1.0,), cv=3)
    W, b = probe.linear_weights()
    # by hand: the feature maps f_k(x, y) of cam_conv and M_c = sum_k W_ck f_k
    box = {}
    h = net.cam_conv.register_forward_hook(lambda m, i, o: box.__setitem__("f", o.detach().clone()))
    with torch.no_grad():
        net(x)
    h.remove()
    hand = torch.einsum("bkhw,ck->bchw", box["f"], torch.as_tensor(W))
    out = PR.svm_cam(net, probe, x, all_classes=True)
    assert out.maps.shape == hand.shape == (30, 3, 16, 16)
    assert torch.allclose(out.maps, hand, atol=1e-4)
    # the logits of the wrapped head are the SVM's decision values, and the map identity holds
    assert np.allclose(out.logits.numpy(), probe.decision_function(X), atol=1e-3)
    assert torch.allclose(out.maps.mean((2, 3)) + torch.as_tensor(b), out.logits, atol=1e-4)
    # cam_boxes: the top class's map, upsampled and boxed with the paper's rule
    boxes, classes = PR.cam_boxes(net, probe, x, sizes=(64, 64), progress=False)
    assert (classes == probe.predict(X)).all()
    top = torch.stack([hand[i, probe.predict(X)[i]] for i in range(30)])[:, None]
    ref = paper_boxes(
        postprocess(top, CAMOptions(size="original", normalize="max"), original_size=(64, 64))[:, 0]
    )
    assert np.array_equal(boxes, ref)


def test_crops_and_square_boxes():
    img = np.zeros((2, 40, 60, 3), np.uint8)
    img[:, 10:20, 30:50] = (255, 0, 0)  # a red 20 x 10 rectangle
    out = PR.crop_resize(img, [[30, 10, 49, 19], [-1, -1, -1, -1]], 16)
    assert out.shape == (2, 3, 16, 16)
    assert torch.allclose(out[0, 0, 1:-1, 1:-1], torch.ones(14, 14)) and out[0, 1:].abs().max() < 1e-6
    assert out[0, 0].min() > 0.7  # the border samples blend a little of the outside (bilinear)
    assert 0.05 < float(out[1, 0].mean()) < 0.2  # the whole image: the rectangle is 1/12 of it
    sq = PR.square_boxes([[30, 10, 49, 19], [0, 0, 5, 30], [-1, -1, -1, -1]], (40, 60))
    w, h = sq[:, 2] - sq[:, 0] + 1, sq[:, 3] - sq[:, 1] + 1
    assert (w[:2] == h[:2]).all() and w.tolist() == [20, 31, 60] and h[2] == 40  # NO_BOX: the whole image
    assert (sq[:, :2] >= 0).all() and (sq[:, 2] <= 59).all() and (sq[:, 3] <= 39).all()
    assert sq[0].tolist() == [30, 5, 49, 24]
