"""Evaluators on hand-made cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from camlib.evaluation.metrics import ClassificationEvaluator, LocalizationEvaluator


def test_classification_topk():
    ev = ClassificationEvaluator((1, 2))
    logits = torch.tensor([[3.0, 2.0, 1.0], [1.0, 3.0, 2.0], [1.0, 2.0, 3.0]])
    ev.update(logits, [0, 2, 0])  # right, top-2, wrong
    ev.update(logits[:1], [1])  # top-2
    r = ev.compute()
    assert r["n"] == 4 and r["top1_acc"] == 25.0 and r["top2_acc"] == 75.0 and r["top1_err"] == 75.0


def test_classification_counts_nonfinite_logits_as_wrong_and_says_how_many():
    ev = ClassificationEvaluator((1, 5))
    nan = torch.full((2, 10), float("nan"))  # all-NaN rows used to score 50% top-1 / 100% top-5
    ev.update(nan, [0, 9])
    r = ev.compute()
    assert r["n"] == 2 and r["n_nonfinite"] == 2 and r["top1_acc"] == 0.0 and r["top5_acc"] == 0.0
    ev = ClassificationEvaluator((1, 2))
    logits = torch.tensor(
        [[3.0, 2.0, 1.0], [float("inf"), 0.0, 0.0], [5.0, float("nan"), 0.0], [0.0, 1.0, 0.0]]
    )
    ev.update(logits, [0, 0, 0, 1])  # right, +Inf on the target (wrong), NaN elsewhere (wrong), right
    r = ev.compute()
    assert r["n"] == 4 and r["n_nonfinite"] == 2 and r["top1_acc"] == 50.0 and r["top2_acc"] == 50.0
    merged = ClassificationEvaluator((1, 2)).merge(ev, ev.state())
    assert merged.compute()["n_nonfinite"] == 4


def test_classification_guards():
    ev = ClassificationEvaluator((1, 5))
    with pytest.raises(ValueError, match="B, C"):
        ev.update(torch.zeros(2, 3), [0])
    with pytest.raises(ValueError, match="5 asked"):
        ev.update(torch.zeros(2, 3), [0, 1])
    with pytest.raises(ValueError, match="class indices"):
        ClassificationEvaluator((1,)).update(torch.zeros(1, 3), [3])
    with pytest.raises(ValueError, match="no samples"):
        ClassificationEvaluator().compute()


GT = np.array([[10, 10, 29, 29]])
GOOD, BAD = [10, 10, 29, 29], [50, 50, 60, 60]


def test_localization_needs_class_and_box():
    ev = LocalizationEvaluator((1, 2))
    ev.update(
        pred_classes=[[1, 2], [2, 1], [1, 2], [3, 1]],
        pred_boxes=[[GOOD, BAD], [BAD, GOOD], [BAD, GOOD], [GOOD, BAD]],
        gt_labels=[1, 1, 1, 1],
        gt_boxes=[GT, GT, GT, GT],
        gt_known_boxes=[GOOD, GOOD, BAD, GOOD],
    )
    r = ev.compute()
    # img0: top-1 right class and box. img1: right class 2nd with good box (top-2 only).
    # img2: right class but bad box -> miss both. img3: right box, wrong class top-1; 2nd class right but bad box.
    assert r["top1_loc_acc"] == 25.0 and r["top2_loc_acc"] == 50.0
    assert r["top1_loc_err"] == 75.0 and r["gt_known_loc_acc"] == 75.0


def test_localization_any_gt_box_counts_and_iou_edge():
    ev = LocalizationEvaluator((1,))
    two = np.array([[0, 0, 9, 9], [10, 10, 29, 29]])
    half = [0, 0, 4, 9]  # IoU exactly 0.5 with the first GT box: counts (>=)
    ev.update([[0], [0]], [[GOOD], [half]], [0, 0], [two, two])
    assert ev.compute()["top1_loc_acc"] == 100.0


def test_localization_guards():
    ev = LocalizationEvaluator((1, 5))
    with pytest.raises(ValueError, match="at least 5"):
        ev.update([[0]], [[GOOD]], [0], [GT])
    ev = LocalizationEvaluator((1,))
    with pytest.raises(ValueError, match="gt_boxes has 1"):
        ev.update([[0], [0]], [[GOOD], [GOOD]], [0, 0], [GT])
    with pytest.raises(ValueError, match="no ground-truth box"):
        ev.update([[0]], [[GOOD]], [0], [np.zeros((0, 4))])
    with pytest.raises(ValueError, match="expected"):
        ev.update([[0]], [GOOD], [0], [GT])


def test_repeated_k_counts_once():
    ev = LocalizationEvaluator((1, 1))
    ev.update([[0]], [[GOOD]], [0], [GT], [GOOD])
    r = ev.compute()
    assert r["top1_loc_acc"] == 100.0 and r["top1_loc_acc"] <= r["gt_known_loc_acc"]
    c = ClassificationEvaluator((1, 1))
    c.update(torch.tensor([[1.0, 0.0]]), [0])
    assert c.compute()["top1_acc"] == 100.0
