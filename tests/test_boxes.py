"""The paper's box rule and IoU on hand-made maps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from camlib.core.boxes import NO_BOX, box_of_mask, iou, paper_box, paper_boxes


def test_two_blobs_largest_wins():
    m = np.zeros((20, 30))
    m[2:5, 3:6] = 1.0  # 9 px, the max
    m[10:18, 12:27] = 0.5  # 120 px, above 0.2 * max
    assert paper_box(m, 0.2).tolist() == [12, 10, 26, 17]
    # at 0.6 of the max only the small strong blob remains
    assert paper_box(m, 0.6).tolist() == [3, 2, 5, 4]


def test_diagonal_pixels_are_connected():
    m = np.zeros((5, 5))
    for i in range(4):
        m[i, i] = 1.0
    m[4, 0] = 1.0
    assert paper_box(m).tolist() == [0, 0, 3, 3]


def test_flat_zero_nan_maps():
    assert paper_box(np.full((4, 6), 0.3)).tolist() == [0, 0, 5, 3]
    assert paper_box(np.zeros((4, 6))).tolist() == [0, 0, 5, 3]  # flat: every pixel is at the max
    assert paper_box(np.full((4, 6), -1.0)).tolist() == NO_BOX.tolist()
    assert paper_box(np.full((4, 6), np.nan)).tolist() == NO_BOX.tolist()
    m = np.zeros((4, 6))
    m[1, 2] = np.nan
    m[3, 5] = 1.0
    assert paper_box(m, 0.5).tolist() == [5, 3, 5, 3]


def test_paper_box_errors_and_batch():
    with pytest.raises(ValueError, match="2-D"):
        paper_box(np.zeros((2, 3, 3)))
    with pytest.raises(ValueError, match="fraction"):
        paper_box(np.zeros((3, 3)), 1.5)
    maps = torch.zeros(2, 3, 8, 8)
    maps[1, 2, 4:6, 1:3] = 1
    out = paper_boxes(maps, 0.5)
    assert out.shape == (2, 3, 4)
    assert out[1, 2].tolist() == [1, 4, 2, 5]


def test_box_of_mask():
    m = np.zeros((5, 5), bool)
    assert box_of_mask(m).tolist() == [-1, -1, -1, -1]
    m[1:3, 2] = True
    assert box_of_mask(m).tolist() == [2, 1, 2, 2]


def test_iou_inclusive_convention():
    a = np.array([[0, 0, 9, 9]])  # 100 px
    assert iou(a, a)[0, 0] == 1.0
    assert iou(a, [[0, 0, 4, 9]])[0, 0] == pytest.approx(0.5)  # 50 / 100
    assert iou(a, [[5, 5, 14, 14]])[0, 0] == pytest.approx(25 / 175)
    assert iou(a, [[10, 10, 12, 12]])[0, 0] == 0.0  # touching corners, no shared pixel
    assert iou([[3, 3, 3, 3]], [[3, 3, 3, 3]])[0, 0] == 1.0  # single pixel box has area 1
    assert iou(NO_BOX, a)[0, 0] == 0.0 and iou(NO_BOX, NO_BOX)[0, 0] == 0.0
    assert iou(a, np.zeros((0, 4))).shape == (1, 0)
    m = iou([[0, 0, 1, 1], [2, 2, 3, 3]], [[0, 0, 3, 3]])
    assert m.shape == (2, 1) and np.allclose(m[:, 0], 0.25)
