"""camlib.paper.fine_grained: the one Table 4 protocol (quick birds and CUB call the same table4)."""

from __future__ import annotations

import numpy as np
import pytest

from camlib.core import probe as PR
from camlib.paper import fine_grained as fg

PAPER = {"full": 63.0, "cam_crop": 67.8, "gt_crop": 70.5, "loc": 41.0, "chance": 5.5}


def _blobs(n: int, seed: int, size: int = 32):
    """Images with one small bright square each (its class = its colour channel) on noise whose mean
    colour varies per image (so the whole image hides the class); GT boxes."""
    rng = np.random.default_rng(seed)
    offsets = rng.integers(0, 120, (n, 1, 1, 3))
    images = (rng.integers(0, 60, (n, size, size, 3)) + offsets).astype(np.uint8)
    labels = np.arange(n) % 3
    boxes = np.zeros((n, 4), np.int64)
    for i in range(n):
        x, y = rng.integers(0, size - 5, 2)
        images[i, y : y + 5, x : x + 5] = 0
        images[i, y : y + 5, x : x + 5, labels[i]] = 255
        boxes[i] = (x, y, x + 4, y + 4)
    return images, labels, boxes


def _split(name, seed, n=30):
    images, labels, boxes = _blobs(n, seed)
    return fg.Table4Split(name, images, labels, boxes, (32, 32))


def _features(split, boxes, setting):
    """Mean colour of the region: separates the classes well only when the crop is tight."""
    x = PR.crop_resize(split.items, np.full((len(split), 4), -1) if boxes is None else boxes, 8)
    return x.mean(dim=(2, 3)).numpy()


def test_probe_with_hits_is_linear_probe_plus_the_hits():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(60, 5)), np.arange(60) % 2
    X[y == 1] += 1.0
    svm = dict(Cs=(0.01, 1.0), cv=3, seed=0)
    result, probe, hits = fg.probe_with_hits(X[:40], y[:40], X[40:], y[40:], **svm)
    assert result == PR.linear_probe(X[:40], y[:40], X[40:], y[40:], **svm)
    assert np.array_equal(hits, probe.predict(X[40:]) == y[40:]) and result["acc"] == 100 * hits.mean()


def test_random_box_ious_is_the_quick_profiles_chance_rule():
    _, _, gt = _blobs(50, 1, size=128)
    rng = np.random.default_rng(7)  # the rule notebook 04 used inline before
    wh = (gt[:, 2:] - gt[:, :2]).mean(0).astype(int)
    xy = rng.integers(0, 128 - wh, size=(len(gt), 2))
    assert np.array_equal(fg.random_box_ious(gt, (128, 128), seed=7), PR.paired_iou(np.c_[xy, xy + wh], gt))
    per_image = fg.random_box_ious(gt, np.tile([128, 96], (len(gt), 1)), seed=7)  # (H, W) per image
    assert per_image.shape == (50,) and ((per_image >= 0) & (per_image <= 1)).all()


def test_table4_with_gt_boxes_as_cam_boxes():
    train, test = _split("train", 0), _split("test", 1)
    seen = []

    def locate(split, probe):
        seen.append((split.name, type(probe).__name__))
        return split.gt_boxes

    result = fg.table4(train, test, _features, locate, svm=dict(Cs=(0.1, 1.0), cv=3, seed=0), seed=0)
    assert seen == [("train", "SVMProbe"), ("test", "SVMProbe")]
    assert result.probes["cam_crop"] == result.probes["gt_crop"] and result.loc_iou50 == 100.0
    assert result.accuracy["gt_crop"] > result.accuracy["full"]
    v = result.verdicts(PAPER)
    assert set(v) == {"cam_crop_minus_full", "gt_crop_minus_cam_crop", "loc_minus_random_box"}
    assert v["gt_crop_minus_cam_crop"]["verdict"] == "not resolved"  # identical crops: the interval is [0, 0]
    assert v["loc_minus_random_box"]["verdict"] == "agrees" and v["loc_minus_random_box"]["paper"] == 35.5
    sentence = result.sentence(paper=PAPER)
    assert "GT box - CAM crop: +0.0 points" in sentence and "NOT RESOLVED" in sentence
    summary = result.summary()
    assert {"full", "cam_crop", "gt_crop", "loc_iou50", "mean_iou", "verdicts"} <= set(summary)


def test_a_wrong_box_is_reversed():
    train, test = _split("train", 0), _split("test", 1)

    def corner(split, probe):  # far from the squares most of the time
        return np.tile([0, 0, 3, 3], (len(split), 1))

    result = fg.table4(train, test, _features, corner, svm=dict(Cs=(1.0,), cv=3, seed=0))
    v = result.verdicts(PAPER)
    assert result.loc_iou50 == 0.0 and v["loc_minus_random_box"]["verdict"] in ("reversed", "not resolved")
    assert v["gt_crop_minus_cam_crop"]["verdict"] == "agrees"  # the GT crop is much better than the corner


def test_paper_numbers_come_from_paper_yaml():
    assert fg.paper_table4() == PAPER


def test_cam_locator_refuses_an_unknown_source():
    with pytest.raises(ValueError, match="cam_source must be 'network' or 'svm'"):
        fg.cam_locator(None, "gradcam")
