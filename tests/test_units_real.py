"""camlib.paper.units_real: box masks, unit regions, in-box rates, the class-resampled interval, the study
on hand-built features, the cached features of a tiny model on a tiny ILSVRC-layout folder, Figure 13
from the cache."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from camlib.core.cam import HeadSpec
from camlib.paper import units_real as R
from camlib.paper.units import receptive_fields


def test_box_mask_scales_each_axis_and_unions_boxes():
    # a 10 (H) x 20 (W) image onto a 5 x 5 grid: sx = 0.25, sy = 0.5
    m = R.box_mask(np.array([[0, 0, 7, 3]]), (10, 20), (5, 5))  # x in [0, 2), y in [0, 2)
    assert m.sum() == 4 and m[:2, :2].all()
    two = R.box_mask(np.array([[0, 0, 7, 3], [16, 8, 19, 9]]), (10, 20), (5, 5))  # + x in [4, 5), y in [4, 5)
    assert two.sum() == 5 and two[4, 4]
    assert R.box_mask(np.array([[0, 0, 19, 9]]), (10, 20), (5, 5)).all()  # the whole image


def test_unit_regions_threshold_relative_to_each_maps_own_maximum():
    maps = np.zeros((3, 4, 4), np.float32)
    maps[0, 0, 0], maps[0, 3, 3] = 2.0, 0.5  # strong corner and a weak one
    maps[1, 3, 3] = 0.01  # weak unit: its own peak still counts
    reg = R.unit_regions(maps, (4, 4), rel=0.5)
    assert reg[0, 0, 0] and not reg[0, 3, 3]
    assert reg[1, 3, 3] and reg[1].sum() == 1
    assert not reg[2].any()  # silent unit: empty region
    with pytest.raises(ValueError, match="rel"):
        R.unit_regions(maps, (4, 4), rel=0.0)


def test_in_box_rates_and_nan_for_empty_regions():
    mask = np.zeros((4, 4), bool)
    mask[:2] = True
    regions = np.zeros((3, 4, 4), bool)
    regions[0, :2, :2] = True  # all inside
    regions[1, 1:3, 0] = True  # half inside
    rates = R.in_box_rates(regions, mask)
    assert rates[0] == 1.0 and rates[1] == 0.5 and np.isnan(rates[2])


def test_regions_and_rates_of_a_batch_are_those_of_each_image():
    """The study scores a batch of images at once: the same regions and rates as one image at a time."""
    rng = np.random.default_rng(0)
    maps = rng.normal(size=(5, 3, 4, 4)).astype(np.float32)
    maps[2, 1] = -1.0  # a silent unit: empty region, NaN rate
    masks = rng.random((5, 12, 12)) > 0.5
    batch = R.unit_regions(maps, (12, 12), rel=0.4)
    assert batch.shape == (5, 3, 12, 12) and not batch[2, 1].any()
    rates = R.in_box_rates(batch, masks)
    for i in range(5):
        assert np.array_equal(batch[i], R.unit_regions(maps[i], (12, 12), rel=0.4))
        one = R.in_box_rates(batch[i], masks[i])
        assert np.array_equal(rates[i], one, equal_nan=True)
        n = batch[i].reshape(3, -1).sum(1)
        ref = (batch[i] & masks[i]).reshape(3, -1).sum(1) / np.maximum(n, 1)
        assert np.array_equal(one, np.where(n > 0, ref, np.nan), equal_nan=True)


def test_cluster_mean_ci_resamples_whole_clusters():
    v = np.array([1.0, 1.0, 0.0, 0.0, 1.0, 0.0])
    est = R.cluster_mean_ci(v, [0, 0, 1, 1, 2, 2], scale=1.0, seed=1)
    assert est.value == pytest.approx(0.5) and est.n == 3 and est.low <= 0.5 <= est.high
    # identical clusters: no spread between them, the interval is the point
    same = R.cluster_mean_ci([1.0, 0.0, 1.0, 0.0], [0, 0, 1, 1], scale=1.0)
    assert same.low == same.high == 0.5
    # each cluster constant but different: resampling clusters gives a real interval
    assert R.cluster_mean_ci([1.0, 1.0, 0.0, 0.0], [0, 0, 1, 1], scale=1.0).low < 0.5
    with pytest.raises(ValueError):
        R.cluster_mean_ci([1.0, 2.0], [0])


def _images(labels, boxes, size=(8, 8)):
    n = len(labels)
    return R.LabelledImages(
        [f"img{i}.png" for i in range(n)],
        np.asarray(labels),
        [np.asarray(b, float) for b in boxes],
        np.zeros(n, np.int64),
        [],
    )


def _features(feat, weight, size=(8, 8)):
    n = feat.shape[0]
    return R.UnitFeatures(
        feat.astype(np.float16),
        np.tile(np.array(size), (n, 1)),
        torch.as_tensor(weight),
        None,
        HeadSpec("act", "fc", "linear", "avg"),
        size,
        False,
        0.0,
    )


def test_in_box_study_top_units_inside_random_units_outside():
    # 6 units, 2 classes: units 0-1 are class 0's, 2-3 class 1's, 4-5 never weighed; every unit fires.
    rng = np.random.default_rng(0)
    n, K = 12, 6
    W = np.zeros((2, K), np.float32)
    W[0, [0, 1]], W[1, [2, 3]] = [2.0, 1.0], [2.0, 1.0]
    labels = np.array([0] * 6 + [1] * 6)
    feat = np.zeros((n, K, 4, 4), np.float32)
    for i, c in enumerate(labels):
        top = [0, 1] if c == 0 else [2, 3]
        feat[i, top, 0, 0] = 5.0 + rng.random(2)  # the class's units: top-left cell = inside the box
        other = [u for u in range(K) if u not in top]
        feat[i, other, 3, 3] = 5.0 + rng.random(len(other))  # all others: bottom-right = outside
    boxes = [[[0, 0, 2, 2]]] * n  # top-left quarter of the 8 x 8 image
    study = R.in_box_study(
        _features(feat, W), _images(labels, boxes), top_units=2, n_random=2, min_images=3, seed=0
    )
    m = study.metrics
    assert np.allclose(study.top, 1.0) and np.allclose(study.random, 0.0)
    assert m["selected"]["diff"]["value"] == pytest.approx(100.0) and m["verdict"] == "agrees"
    assert m["selected"]["chance"]["value"] == pytest.approx(100 * 9 / 64)
    assert m["n_classes_selected"] == 2 and m["selected"]["n_pairs"] == 12
    for i, c in enumerate(labels):  # random units never include the image's own top units
        assert not set(study.random_units[i]) & set(study.top_units[i])
        assert list(study.top_units[i]) == ([0, 1] if c == 0 else [2, 3])
    assert "agrees" in study.report()


def test_in_box_study_selects_classes_with_enough_images_and_swaps_sign():
    n, K = 7, 4
    W = np.array([[1.0, 0, 0, 0], [0, 1.0, 0, 0]], np.float32)
    labels = np.array([0, 0, 0, 0, 0, 1, 1])  # class 1 has 2 images: not selected with min_images=3
    feat = np.zeros((n, K, 4, 4), np.float32)
    feat[:, 0, 3, 3] = 3.0  # class 0's top unit fires OUTSIDE the box
    feat[:, 1:, 0, 0] = 3.0  # all other units inside
    study = R.in_box_study(
        _features(feat, W),
        _images(labels, [[[0, 0, 3, 3]]] * n),
        top_units=1,
        n_random=1,
        min_images=3,
        seed=0,
    )
    assert study.selected.tolist() == [True] * 5 + [False] * 2
    assert study.metrics["selected"]["diff"]["value"] == pytest.approx(-100.0)
    assert study.metrics["verdict"] == "reversed" and study.classes == [0]


class TinyGAP(nn.Module):
    def __init__(self, k: int = 5, c: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, k, 3, stride=2, padding=1)
        self.act = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(k, c)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.act(self.conv(x))), 1))


def _write_wsol(root, n=4):
    (root / "images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    ids = [f"val/ILSVRC2012_val_{i + 1:08d}.JPEG" for i in range(n)]
    for k in ids:
        Image.fromarray(rng.integers(0, 255, (12, 16, 3), dtype=np.uint8)).save(
            root / "images" / k[4:], "JPEG"
        )
    (root / "image_ids.txt").write_text("\n".join(ids) + "\n")
    (root / "class_labels.txt").write_text("\n".join(f"{k},{i % 2}" for i, k in enumerate(ids)) + "\n")
    (root / "image_sizes.txt").write_text("\n".join(f"{k},16,12" for k in ids) + "\n")
    (root / "localization.txt").write_text("\n".join(f"{k},1,1,8,6" for k in ids) + "\n")


def test_unit_features_cache_and_feature_scan(tmp_path):
    _write_wsol(tmp_path / "ilsvrc")
    images = R.open_labelled_images({"ilsvrc": tmp_path / "ilsvrc"}, sets=("ilsvrc",))
    assert len(images) == 4 and images.labels.tolist() == [0, 1, 0, 1]
    assert images.data_rows()[0].root_kind == "param" and images.data_rows()[0].n_images == 4
    torch.manual_seed(0)
    net = TinyGAP().eval()

    def pre(img):
        x = torch.as_tensor(np.asarray(img.resize((16, 16)), dtype=np.float32)).permute(2, 0, 1)
        return x / 255 - 0.5

    model = SimpleNamespace(
        model=net, preprocess=pre, input_size=(16, 16), name="tiny", classes=["a", "b", "c"]
    )
    f1 = R.unit_features(model, images, cache=tmp_path / "cache", batch_size=3, progress=False)
    f2 = R.unit_features(model, images, cache=tmp_path / "cache", batch_size=3, progress=False)
    assert not f1.cached and f2.cached and f1.features.shape == (4, 5, 8, 8)
    assert np.array_equal(f1.features, f2.features) and f1.sizes.tolist() == [[12, 16]] * 4
    with torch.no_grad():
        ref = net(torch.stack([pre(Image.open(p).convert("RGB")) for p in images.paths])).numpy()
    assert np.allclose(f1.logits(), ref, atol=2e-2)  # float16 features
    scan = R.feature_scan(f1, [3, 1], k=2, quantile=0.9)
    assert scan.units.tolist() == [1, 3] and scan.image_ids.shape == (2, 2)
    peak = f1.features[:, [1, 3]].astype(np.float32).reshape(4, 2, -1).max(2)
    for r in range(2):
        assert np.array_equal(scan.image_ids[r], np.argsort(-peak[:, r], kind="stable")[:2])
        assert scan.thresholds[r] == pytest.approx(
            np.quantile(f1.features[:, [1, 3][r]].astype(np.float32), 0.9)
        )
    assert receptive_fields(scan.maps, scan.thresholds[:, None], (16, 16)).shape == (2, 2, 16, 16)
    assert images.display(0, (16, 16)).shape == (16, 16, 3)


def test_open_labelled_images_none_when_nothing_is_found(tmp_path, monkeypatch):
    class Missing:
        def __bool__(self):
            return False

    monkeypatch.setattr(R, "resolve_root", lambda name, root=None: Missing())
    assert R.open_labelled_images() is None


def test_data_line_names_the_sets_or_how_to_get_them(tmp_path, monkeypatch):
    _write_wsol(tmp_path / "ilsvrc")
    images = R.open_labelled_images({"ilsvrc": tmp_path / "ilsvrc"}, sets=("ilsvrc",))
    line = R.data_line(images)
    assert line.startswith("data: real ILSVRC") and "ilsvrc: 4 images (param:" in line

    class Missing:
        fetch = "put the val set in data/ilsvrc-val"

        def __bool__(self):
            return False

    monkeypatch.setattr(R, "resolve_root", lambda name, root=None: Missing())
    line = R.data_line(None)
    assert line.startswith("data: procedural shapes") and "ilsvrc: put the val set" in line
