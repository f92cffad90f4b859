"""The released code's box generator, the five-box heuristic (Table 3), and their scoring."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import distance_transform_edt, find_objects
from skimage.measure import label

from camlib.core.boxes import (
    NO_BOX,
    _big_overlap,
    _merge_released,
    five_box_heuristic,
    heatmap_uint8,
    nth_box,
    paper_box,
    released_boxes,
)
from camlib.evaluation.metrics import LocalizationEvaluator


def _blob(H, W, cx, cy, s):
    y, x = np.mgrid[:H, :W]
    return np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2.0 * s * s))


def _released_reference(m, thresholds=(20, 100, 110)):
    """dt_box.cpp step by step on the whole image, with the literal C++ merge loop."""
    gray = heatmap_uint8(m)
    H, W = gray.shape
    rects = []
    for th in thresholds:
        fg = gray > th
        if fg.any() and not fg.all():
            d = distance_transform_edt(fg)
            fg = np.floor(d * 255.0 / d.max() + 0.5) > 10
        for sl in find_objects(label(fg, connectivity=2)):
            rects.append((sl[1].start, sl[0].start, sl[1].stop - sl[1].start, sl[0].stop - sl[0].start))
        for sl in find_objects(label(~fg, connectivity=1)):
            if sl[0].start > 0 and sl[1].start > 0 and sl[0].stop < H and sl[1].stop < W:
                rects.append(
                    (
                        sl[1].start - 1,
                        sl[0].start - 1,
                        sl[1].stop - sl[1].start + 2,
                        sl[0].stop - sl[0].start + 2,
                    )
                )
    lim = [(min(max(x, 0), W - 5), min(max(y, 0), H - 5), max(min(w, W - x - 5), 0), max(min(h, H - y - 5), 0))
           for x, y, w, h in rects]  # fmt: skip
    lim.sort(key=lambda r: -r[2] * r[3])
    i = 0
    while i < len(lim):
        j = i + 1
        while j < len(lim):
            if _big_overlap(lim[i], lim[j], 0.5):
                del lim[j]
            j += 1
        i += 1
    return np.array([(x, y, x + w, y + h) for x, y, w, h in lim], np.int64).reshape(-1, 4)


def test_heatmap_uint8():
    m = np.array([[0.0, 0.5], [1.0, -3.0]])
    np.testing.assert_array_equal(heatmap_uint8(m), [[0, 128], [255, 0]])
    assert not heatmap_uint8(-np.ones((2, 2))).any()
    assert not heatmap_uint8(np.full((2, 2), np.nan)).any()


def test_released_boxes_two_blobs_hand_checked():
    m = _blob(60, 80, 25, 25, 7) + 0.6 * _blob(60, 80, 62, 40, 3)
    boxes = released_boxes(m)
    np.testing.assert_array_equal(boxes, _released_reference(m))
    # largest first: the loose box (threshold 20) of the big blob; every box inside the image margin
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    assert (np.diff(areas) <= 0).all()
    assert boxes[0, 0] <= 25 <= boxes[0, 2] and boxes[0, 1] <= 25 <= boxes[0, 3]
    assert any(b[0] <= 62 <= b[2] and b[1] <= 40 <= b[3] and b[2] - b[0] < 20 for b in boxes)


@pytest.mark.parametrize("seed", range(6))
def test_released_boxes_equal_the_whole_image_reference(seed):
    rng = np.random.default_rng(seed)
    H, W = int(rng.integers(20, 50)), int(rng.integers(20, 50))
    m = sum(
        rng.uniform(0.2, 1) * _blob(H, W, rng.uniform(0, W), rng.uniform(0, H), rng.uniform(2, 9))
        for _ in range(3)
    )
    if seed % 2:
        m = m + 0.3 * rng.random((H, W))  # noise: many small components and holes
    if seed == 5:
        m[H // 3 : H // 2, W // 3 : W // 2] = 0  # a hole in a blob
    np.testing.assert_array_equal(released_boxes(m), _released_reference(m))


def test_released_margin_and_empty_maps():
    m = np.zeros((30, 40))
    m[10:, 20:] = 1.0  # touches the right and bottom edges
    b = released_boxes(m)
    assert len(b) >= 1 and b[:, 2].max() <= 40 - 5 and b[:, 3].max() <= 30 - 5
    assert released_boxes(np.zeros((10, 10))).shape == (0, 4)
    assert released_boxes(np.full((10, 10), np.nan)).shape == (0, 4)
    assert released_boxes(-np.ones((10, 10))).shape == (0, 4)
    np.testing.assert_array_equal(nth_box(np.zeros((0, 4), np.int64), 0), NO_BOX)


def test_merge_keeps_the_cpp_skip_quirk():
    # A is the largest; B and C both overlap A by > 50% of A's area. The C++ loop erases B, then
    # increments j, so C (now at B's place) is never compared with A and survives.
    A, B, C, D = (0, 0, 10, 10), (0, 0, 9, 9), (1, 1, 9, 9), (30, 30, 2, 2)
    r = np.array([A, B, C, D])
    got = [tuple(x) for x in _merge_released(r, 0.5)]
    assert got == [A, C, D]
    assert _big_overlap(A, C, 0.5)  # C would have gone without the quirk


def test_merge_equals_the_literal_loop_on_random_rectangles():
    rng = np.random.default_rng(0)
    for _ in range(300):
        n = int(rng.integers(0, 10))
        r = np.c_[rng.integers(0, 15, (n, 2)), rng.integers(0, 12, (n, 2))]
        r = r[np.argsort(-(r[:, 2] * r[:, 3]), kind="stable")]
        lst = [tuple(x) for x in r]
        i = 0
        while i < len(lst):
            j = i + 1
            while j < len(lst):
                if _big_overlap(lst[i], lst[j], 0.5):
                    del lst[j]
                j += 1
            i += 1
        assert [tuple(x) for x in _merge_released(r, 0.5)] == lst
        for k in (1, 2, 3):
            assert [tuple(x) for x in _merge_released(r, 0.5, max_boxes=k)] == lst[:k]


@pytest.mark.parametrize("seed", range(4))
def test_released_max_boxes_is_a_prefix_on_noisy_maps(seed):
    rng = np.random.default_rng(100 + seed)
    m = rng.random((60, 80)) ** 3 + _blob(60, 80, 40, 30, 8)  # noisy: many contours, as Backprop maps
    full = released_boxes(m)
    assert len(full) > 3
    for k in (1, 2, 5):
        np.testing.assert_array_equal(released_boxes(m, max_boxes=k), full[:k])
    with pytest.raises(ValueError, match="max_boxes"):
        released_boxes(m, max_boxes=0)


def test_five_box_heuristic_paper_rule():
    maps = np.stack([_blob(40, 40, 12, 12, 5), _blob(40, 40, 28, 28, 6), _blob(40, 40, 30, 8, 4)])
    which, boxes = five_box_heuristic(maps, tight=0.5, loose=0.2)
    np.testing.assert_array_equal(which, [0, 0, 1, 1, 2])
    expect = [paper_box(maps[0], 0.5), paper_box(maps[0], 0.2), paper_box(maps[1], 0.5), paper_box(maps[1], 0.2),
              paper_box(maps[2], 0.2)]  # fmt: skip
    np.testing.assert_array_equal(boxes, np.stack(expect))
    tight_area = (boxes[0, 2] - boxes[0, 0]) * (boxes[0, 3] - boxes[0, 1])
    loose_area = (boxes[1, 2] - boxes[1, 0]) * (boxes[1, 3] - boxes[1, 1])
    assert tight_area < loose_area
    with pytest.raises(ValueError, match="top-3"):
        five_box_heuristic(maps[:2])
    with pytest.raises(ValueError, match="loose <= tight"):
        five_box_heuristic(maps, tight=0.1, loose=0.3)


def test_five_box_heuristic_released_rule():
    maps = np.stack([_blob(40, 40, 12, 12, 5) + 0.5 * _blob(40, 40, 32, 32, 3), _blob(40, 40, 28, 28, 6),
                     _blob(40, 40, 30, 8, 4)])  # fmt: skip
    which, boxes = five_box_heuristic(maps, rule="released")
    rb = [released_boxes(m) for m in maps]
    np.testing.assert_array_equal(boxes, [nth_box(rb[0], 0), nth_box(rb[0], 1), nth_box(rb[1], 0),
                                          nth_box(rb[1], 1), nth_box(rb[2], 0)])  # fmt: skip


def test_heuristic_scoring_with_repeated_classes_and_several_gt_boxes():
    # classes [7, 7, 3, 3, 9]; ground truth class 3 with two boxes; only class 3's LOOSE box matches
    classes = np.array([[7, 7, 3, 3, 9]])
    boxes = np.array([[[0, 0, 5, 5], [0, 0, 9, 9], [20, 20, 22, 22], [10, 10, 30, 30], [0, 0, 1, 1]]])
    gts = [np.array([[50, 50, 60, 60], [11, 11, 29, 31]])]
    ev = LocalizationEvaluator((5,))
    ev.update(classes, boxes, [3], gts)
    assert ev.compute()["top5_loc_err"] == 0.0
    ev = LocalizationEvaluator((5,))
    ev.update(classes, boxes, [7], gts)  # class 7's boxes do not match: error
    assert ev.compute()["top5_loc_err"] == 100.0
