"""The one evaluation loop and the one evaluator interface (camlib.evaluation.loop / batch)."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from camlib.core.boxes import five_box_heuristic, nth_box, paper_box, released_boxes
from camlib.core.cam import PAPER_OPTIONS
from camlib.datasets import ProceduralShapes
from camlib.datasets.targets import Target
from camlib.evaluation.batch import Batch, ByFraction, box_key, fraction_key, parse_box_key
from camlib.evaluation.localize import (
    Protocols,
    array_batches,
    evaluate_localization,
    evaluate_protocols,
    mask_batches,
)
from camlib.evaluation.loop import make_boxes, run_evaluation
from camlib.evaluation.metrics import ClassificationEvaluator, LocalizationEvaluator
from camlib.evaluation.wsol import BoxAccSweep, PxAPEvaluator
from camlib.models import SmallGAPNet


def _maps(n_images=3, k=4, size=(24, 30), seed=0):
    g = torch.Generator().manual_seed(seed)
    small = torch.rand(n_images, k + 1, 4, 5, generator=g)
    up = torch.nn.functional.interpolate(small, size=size, mode="bilinear", align_corners=False)
    return [m.numpy() for m in up]


def _batch(n=3, k=4, seed=0, masks=False):
    rng = np.random.default_rng(seed)
    maps = _maps(n, k, seed=seed)
    logits = torch.from_numpy(rng.normal(size=(n, 6)).astype(np.float32))
    pred = logits.topk(k, dim=1).indices.numpy()
    targets = [Target(label=int(rng.integers(6)), boxes=[[2, 3, 15, 20]], size=(24, 30), image_id=i,
                      mask=(maps[i][-1] > 0.5) if masks else None) for i in range(n)]  # fmt: skip
    return Batch(targets, logits, pred, maps)


# ------------------------------------------------------------------------------------------- keys
def test_fractions_are_keyed_one_way():
    assert fraction_key(0.2) == "0.2" == fraction_key("0.2") and fraction_key(0.25) == "0.25"
    assert fraction_key(np.round(0.05 * 3, 2)) == "0.15"
    with pytest.raises(ValueError, match="significant digits"):
        fraction_key(0.123456789)
    d = ByFraction([(0.2, "a"), ("0.5", "b")])
    assert list(d) == ["0.2", "0.5"] and d[0.2] == d["0.2"] == "a" and 0.5 in d and 0.3 not in d
    assert d.get(0.3) is None and d.fractions() == [0.2, 0.5]
    assert json.loads(json.dumps(d)) == {"0.2": "a", "0.5": "b"}
    assert box_key("paper", 0.2) == "paper@0.2" and parse_box_key("paper@0.2") == ("paper", 0.2)
    assert parse_box_key("released") == ("released", None)
    for bad in ("paper", "released@0.2", "tight@0.4"):
        with pytest.raises(ValueError):
            parse_box_key(bad)


# ------------------------------------------------------------------------------------------ boxes
def test_make_boxes_is_the_core_box_rules():
    b = _batch(k=4)
    keys = ["paper@0.2", "paper@0.45", "released", "heuristic", "heuristic_released"]
    sets = make_boxes(b.maps, b.pred, keys, tight=0.4, loose=0.2)
    assert set(sets) == set(keys)
    for i, m in enumerate(b.maps):
        for f in (0.2, 0.45):
            s = sets[box_key("paper", f)]
            np.testing.assert_array_equal(s.boxes[i], [paper_box(m[c], f) for c in range(4)])
            np.testing.assert_array_equal(s.gt_known[i], paper_box(m[4], f))
            np.testing.assert_array_equal(s.classes[i], b.pred[i])
        which, five = five_box_heuristic(m[:3], 0.4, 0.2)
        np.testing.assert_array_equal(sets["heuristic"].boxes[i], five)
        np.testing.assert_array_equal(sets["heuristic"].classes[i], b.pred[i, which])
        which, five = five_box_heuristic(m[:3], rule="released")
        np.testing.assert_array_equal(sets["heuristic_released"].boxes[i], five)
        # the released rule's first box of EVERY map, also those of the top 3 taken from the heuristic
        first = [nth_box(released_boxes(m[c], max_boxes=2), 0) for c in range(5)]
        np.testing.assert_array_equal(sets["released"].boxes[i], first[:4])
        np.testing.assert_array_equal(sets["released"].gt_known[i], first[4])
    # only what is asked is made; released alone gives the same boxes
    alone = make_boxes(b.maps, b.pred, ["released"])
    assert set(alone) == {"released"}
    np.testing.assert_array_equal(alone["released"].boxes, sets["released"].boxes)
    with pytest.raises(ValueError, match="topk >= 3"):
        make_boxes([m[[0, 1, 4]] for m in b.maps], b.pred[:, :2], ["heuristic"])


def test_make_boxes_boxes_no_map_twice_and_gives_the_same_boxes():
    """The heuristic's tight/loose boxes taken from the paper boxes, and the ground-truth map of an image
    whose true class is in its top-k boxed once: the same boxes as boxing every map on its own."""
    b = _batch(n=4, k=4, seed=3)
    labels = [
        int(b.pred[0, 1]),
        int(b.pred[1, 3]),
        -1,
        int(b.pred[3, 0]),
    ]  # image 2: true class not in the top-k
    maps = [m.copy() for m in b.maps]
    for i, lab in enumerate(labels):
        if lab >= 0:
            maps[i][-1] = maps[i][list(b.pred[i]).index(lab)]  # what class_maps gathers: the same map
    keys = ["paper@0.2", "paper@0.4", "released", "heuristic", "heuristic_released"]
    fast = make_boxes(maps, b.pred, keys, tight=0.4, loose=0.2, labels=labels)
    for i, m in enumerate(maps):
        which, five = five_box_heuristic(m[:3], 0.4, 0.2)
        np.testing.assert_array_equal(fast["heuristic"].boxes[i], five)
        np.testing.assert_array_equal(fast["heuristic"].classes[i], b.pred[i, which])
        for f in (0.2, 0.4):
            np.testing.assert_array_equal(
                fast[box_key("paper", f)].boxes[i], [paper_box(m[c], f) for c in range(4)]
            )
            np.testing.assert_array_equal(fast[box_key("paper", f)].gt_known[i], paper_box(m[4], f))
        np.testing.assert_array_equal(fast["released"].gt_known[i], nth_box(released_boxes(m[4]), 0))
    slow = make_boxes(maps, b.pred, keys, tight=0.4, loose=0.2)
    for key in keys:
        np.testing.assert_array_equal(fast[key].boxes, slow[key].boxes)
        np.testing.assert_array_equal(fast[key].classes, slow[key].classes)
        if slow[key].gt_known is not None:
            np.testing.assert_array_equal(fast[key].gt_known, slow[key].gt_known)


# ------------------------------------------------------------------------------------- interface
def test_accumulate_batch_equals_update_on_arrays():
    b = _batch(n=4, k=4, masks=True)
    b.boxes = make_boxes(b.maps, b.pred, ["paper@0.3", "heuristic"])
    s = b.boxes["paper@0.3"]
    cases = [
        (lambda: ClassificationEvaluator((1, 3)), lambda e: e.update(b.logits, b.labels)),
        (lambda: LocalizationEvaluator((1, 4), boxes="paper@0.3"),
         lambda e: e.update(s.classes, s.boxes, b.labels, b.gt_boxes, s.gt_known)),
        (lambda: LocalizationEvaluator((5,), boxes="heuristic"),
         lambda e: e.update(b.boxes["heuristic"].classes, b.boxes["heuristic"].boxes, b.labels, b.gt_boxes)),
        (lambda: BoxAccSweep(np.linspace(0, 0.9, 10)), lambda e: e.update(b.role("gt_minmax"), b.gt_boxes)),
        (lambda: BoxAccSweep(np.linspace(0.1, 0.9, 9), (0.5,), scale="max"), lambda e: e.update(b.role("gt"), b.gt_boxes)),
        (lambda: PxAPEvaluator(np.linspace(0, 0.9, 10)), lambda e: e.update(b.role("gt_minmax"), [t.mask for t in b.targets])),
    ]  # fmt: skip
    for make, feed in cases:
        via_batch, via_arrays = make(), make()
        via_batch.accumulate(b)
        feed(via_arrays)
        assert via_batch.n == 4 and via_batch.compute() == via_arrays.compute(), type(via_batch).__name__
    # the min-max role is normalize_maps of the GT map: 0..1, flat maps 0
    mm = b.role("gt_minmax")[0]
    assert mm.min() == 0.0 and mm.max() == 1.0 and mm.dtype == np.float32
    with pytest.raises(TypeError, match="update"):
        ClassificationEvaluator((1,)).accumulate(b.logits)
    with pytest.raises(KeyError, match="box_sets"):
        LocalizationEvaluator((1,), boxes="paper@0.7").accumulate(b)
    with pytest.raises(ValueError, match="box set"):
        LocalizationEvaluator((1,), boxes="paper0.7")


# ------------------------------------------------------------------------------------------- loop
@pytest.fixture(scope="module")
def shapes():
    return ProceduralShapes(20, seed=3, size=40, split="test")


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return SmallGAPNet(6, channels=(8, 8), width=16).eval()


def test_run_evaluation_feeds_every_evaluator_and_keeps_what_is_asked(shapes, net):
    evs = {
        "cls": ClassificationEvaluator((1, 3)),
        "loc": LocalizationEvaluator((1, 3), boxes="paper@0.2"),
        "sweep": BoxAccSweep(np.linspace(0, 0.9, 10), keep_per_image=True),
        "pxap": PxAPEvaluator([0.2, 0.5]),
    }
    res = run_evaluation(net, mask_batches(shapes.images, shapes.labels, shapes.boxes, shapes.masks, batch_size=8),
                         evs, options=PAPER_OPTIONS, topk=3, keep_predictions=True, keep_maps=5)  # fmt: skip
    assert res.n_images == 20 and set(res.metrics) == {"cls", "loc", "sweep", "pxap"}
    assert all(ev.n == 20 for ev in evs.values())
    assert len(res.predictions) == 20 and len(res.gt_maps) == 5 and res.gt_maps[0].dtype == np.float16
    p = res.predictions[0]
    assert set(p["boxes"]) == {"paper@0.2"} and len(p["pred_classes"]) == 3 and p["size"] == [40, 40]
    assert res.head is not None and res.source == "CAM"
    # without masks PxAP sees nothing and is left out of the metrics
    res2 = run_evaluation(net, array_batches(shapes.images, shapes.labels, shapes.boxes, 8),
                          {"pxap": PxAPEvaluator([0.5]), "cls": ClassificationEvaluator((1,))}, topk=1)  # fmt: skip
    assert set(res2.metrics) == {"cls"}


def test_run_evaluation_counts_skipped_and_refuses_plain_dicts(net):
    from camlib.datasets.ilsvrc import TargetList

    x = torch.rand(2, 3, 32, 32)
    good = TargetList([Target(0, [[1, 1, 10, 10]], (32, 32)), Target(1, [[0, 0, 31, 31]], (32, 32))],
                      skipped=[{"image_id": "bad.jpg", "error": "truncated"}])  # fmt: skip
    empty = TargetList([], skipped=[{"image_id": "worse.jpg", "error": "missing"}])
    res = run_evaluation(
        net, [(x, good), (torch.empty(0), empty)], {"cls": ClassificationEvaluator((1,))}, topk=1
    )
    assert res.n_images == 2 and [s["image_id"] for s in res.skipped] == ["bad.jpg", "worse.jpg"]
    with pytest.raises(ValueError, match="no image"):
        run_evaluation(net, [(torch.empty(0), empty)], {"cls": ClassificationEvaluator((1,))}, topk=1)
    with pytest.raises(TypeError, match="Target"):
        run_evaluation(net, [(x, [{"label": 0, "boxes": [[1, 1, 5, 5]], "size": (32, 32)}] * 2)],
                       {"cls": ClassificationEvaluator((1,))}, topk=1)  # fmt: skip


def test_both_configurations_agree_image_by_image(shapes, net):
    """evaluate_localization and evaluate_protocols are the same loop: same classification, same paper-rule
    counts (with the map options that give the same boxes: the rule is scale-free)."""
    opts = replace(PAPER_OPTIONS, normalize="none")
    loc = evaluate_localization(net, array_batches(shapes.images, shapes.labels, shapes.boxes, 8), topk=3,
                                fractions=(0.2, 0.4), options=opts, keep_predictions=True)  # fmt: skip
    prot = evaluate_protocols(net, mask_batches(shapes.images, shapes.labels, shapes.boxes, shapes.masks, 8),
                              protocols=Protocols(topk=3, fractions=(0.2, 0.4)), keep_predictions=True)  # fmt: skip
    assert loc["classification"] == prot["classification"]
    for f in ("0.2", "0.4"):
        assert loc["localization"][f] == prot["paper"][f]
    for a, b in zip(loc["predictions"], prot["predictions"], strict=True):
        assert a["boxes"]["paper@0.4"] == b["boxes"]["paper@0.4"]
        assert a["gt_known_box"]["paper@0.2"] == b["gt_known_box"]["paper@0.2"]


def test_localization_study_runs_every_setting_through_the_loop(shapes, net):
    import matplotlib

    matplotlib.use("Agg")
    from camlib.datasets import CLASSES
    from camlib.evaluation.study import LocalizationStudy

    study = LocalizationStudy(
        "quick", {"small": net}, {"small": "SmallGAPNet, test"}, test=shapes, batch_size=8
    )
    assert study.data == "procedural"
    assert [run for run, *_ in study.settings()] == [
        "small/cam",
        "small/backprop",
    ]  # no ten crops without ILSVRC
    res = study.run(Protocols(topk=3, fractions=(0.2,)), keep_maps=6)
    assert set(res) == {"small/cam", "small/backprop"} and res["small/cam"]["n_images"] == 20
    assert (
        "pxap" in res["small/cam"]
        and len(res["small/cam"]["gt_maps"]) == 6
        and res["small/backprop"].get("gt_maps") is None
    )
    assert study.comparisons() == []  # procedural numbers are never set against the paper's
    fig = study.example_grid("small/cam", CLASSES, n_each=2)
    assert 1 <= len([ax for ax in fig.axes if ax.images]) <= 4
