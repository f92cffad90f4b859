"""Choe et al.'s metrics: the all-thresholds-at-once sweep against the per-threshold loop, hand-made
cases with known answers, PxAP, and the protocol pipeline on a tiny network."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.measure import label, regionprops

from camlib.core.boxes import NO_BOX, paper_box
from camlib.evaluation.wsol import (
    CHOE_THRESHOLDS,
    IGNORE_VALUE,
    BoxAccSweep,
    PxAPEvaluator,
    box_hits,
    components_all_thresholds,
    largest_component_boxes,
    reference_box_hits,
    reference_pxap_counts,
    threshold_levels,
)


def _random_maps(seed: int) -> list[np.ndarray]:
    """Random, quantised (ties), NaN, flat, negative and all-NaN maps of assorted sizes."""
    rng = np.random.default_rng(seed)
    maps = [
        rng.random((int(rng.integers(3, 19)), int(rng.integers(3, 23)))).astype(np.float32) for _ in range(5)
    ]
    q = np.round(rng.random((14, 11)) * 3).astype(np.float32) / 3  # plateaus: ties everywhere
    m = rng.random((16, 16)).astype(np.float32)
    m[3:7, 2:12] = np.nan
    smooth = torch.nn.functional.interpolate(torch.rand(1, 1, 4, 4), size=(24, 20), mode="bicubic")[
        0, 0
    ].numpy()
    maps += [q, m, smooth, np.zeros((7, 9), np.float32), -rng.random((9, 6)).astype(np.float32),
             np.full((5, 6), np.nan, np.float32), rng.random((1, 13)).astype(np.float32)]  # fmt: skip
    return maps


def _random_gts(maps, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for m in maps:
        H, W = m.shape
        n = int(rng.integers(1, 4))  # several ground-truth boxes per image
        x0 = rng.integers(0, W, n)
        y0 = rng.integers(0, H, n)
        out.append(np.stack([x0, y0, rng.integers(x0, W), rng.integers(y0, H)], 1))
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("scale", ["absolute", "max"])
def test_box_hits_equal_the_per_threshold_loop(seed, scale):
    maps = _random_maps(seed)
    gts = _random_gts(maps, seed + 10)
    thr = np.r_[np.linspace(0, 1, 23), [0.5, 0.05]]  # unsorted, with a duplicate
    deltas = (0.1, 0.3, 0.5, 0.7)
    fast = box_hits(maps, gts, thr, deltas, scale)
    slow = reference_box_hits(maps, gts, thr, deltas, scale)
    assert fast[0].shape == (len(maps), 4, len(thr))
    np.testing.assert_array_equal(fast[0], slow[0])
    np.testing.assert_array_equal(fast[1], slow[1])
    assert fast[1].any() and not fast[1].all()  # the case is not trivial


def test_components_are_exactly_those_of_every_threshold():
    maps = _random_maps(5)
    thr = np.linspace(-0.1, 1.0, 12)
    comp = components_all_thresholds(maps, thr)
    fast = {(int(b), int(j), *map(int, box), int(a)) for b, j, box, a in
            zip(comp.map, comp.threshold, comp.boxes, comp.area, strict=True)}  # fmt: skip
    slow = set()
    for b, m in enumerate(maps):
        for j, t in enumerate(thr.astype(np.float32)):
            with np.errstate(invalid="ignore"):
                region = np.isfinite(m) & (m >= t)
            for p in regionprops(label(region, connectivity=2)):
                r0, c0, r1, c1 = p.bbox
                slow.add((b, j, c0, r0, c1 - 1, r1 - 1, int(p.area)))
    assert len(fast) == len(comp) == len(slow) > 50
    assert fast == slow


def test_largest_component_boxes_are_paper_boxes_at_every_fraction():
    maps = _random_maps(7)
    fr = [0.0, 0.2, 0.35, 0.5, 0.8, 1.0]
    got = largest_component_boxes(maps, fr, scale="max")
    for i, m in enumerate(maps):
        for j, f in enumerate(fr):
            np.testing.assert_array_equal(got[i, j], paper_box(m, f), err_msg=f"map {i} fraction {f}")


def test_ties_go_to_the_first_component_in_raster_order():
    m = np.zeros((7, 9), np.float32)
    m[4:6, 0:2] = 1.0  # 4 pixels, lower left
    m[0:2, 6:8] = 1.0  # 4 pixels, upper right: first in raster order
    got = largest_component_boxes([m], [0.5])[0, 0]
    np.testing.assert_array_equal(got, [6, 0, 7, 1])
    np.testing.assert_array_equal(got, paper_box(m, 0.5))


def test_hand_made_map_known_answers():
    # two blobs: a big weak one (value 0.5, 6x6) and a small strong one (value 1.0, 2x2)
    m = np.zeros((12, 12), np.float32)
    m[1:7, 1:7] = 0.5
    m[9:11, 9:11] = 1.0
    gt = [np.array([[9, 9, 10, 10], [1, 1, 6, 6]])]  # two GT boxes: each blob is an object
    thr = [0.0, 0.25, 0.5, 0.75]
    largest, anyhit = box_hits([m], gt, thr, (0.5,))
    # t=0: the whole image (IoU with the 6x6 box = 36/144 < 0.5); t=0.25 and 0.5: largest = big blob (hit);
    # t=0.75: only the small blob (hit on the other GT box)
    np.testing.assert_array_equal(largest[0, 0], [False, True, True, True])
    np.testing.assert_array_equal(anyhit[0, 0], [False, True, True, True])
    # with only the small object annotated, the largest rule misses at 0.25/0.5 but 'all components' hits
    largest, anyhit = box_hits([m], [np.array([[9, 9, 10, 10]])], thr, (0.5,))
    np.testing.assert_array_equal(largest[0, 0], [False, False, False, True])
    np.testing.assert_array_equal(anyhit[0, 0], [False, True, True, True])


def test_empty_and_nan_maps_never_hit():
    maps = [np.full((6, 6), np.nan, np.float32), np.zeros((6, 6), np.float32) - 1]
    gts = [np.array([[0, 0, 5, 5]])] * 2
    largest, anyhit = box_hits(maps, gts, [0.5, 0.9], (0.5,), scale="absolute")
    assert not largest.any() and not anyhit.any()
    assert (largest_component_boxes(maps, [0.5]) == NO_BOX).all()


def test_threshold_levels_and_padding():
    maps = [np.array([[0.1, 0.5], [0.9, np.nan]], np.float32), np.array([[0.3]], np.float32)]
    lev, order = threshold_levels(maps, [0.5, 0.2])
    np.testing.assert_array_equal(order[0], [1, 0])  # sorted: 0.2, 0.5
    np.testing.assert_array_equal(lev[0], [[0, 2], [2, 0]])
    np.testing.assert_array_equal(lev[1], [[1, 0], [0, 0]])  # padded with level 0


def test_input_validation():
    with pytest.raises(ValueError, match="one 2-D map"):
        box_hits(np.zeros((4, 4)), [np.zeros((1, 4))], [0.5])
    with pytest.raises(ValueError, match="ground-truth"):
        box_hits([np.zeros((4, 4))], [], [0.5])
    with pytest.raises(ValueError, match="finite"):
        box_hits([np.zeros((4, 4))], [np.array([[0, 0, 1, 1]])], [np.nan])
    with pytest.raises(ValueError, match="scale"):
        BoxAccSweep(scale="relative")


def test_box_acc_sweep_compute_and_subsets():
    m1 = np.zeros((10, 10), np.float32)
    m1[2:8, 2:8] = 0.6
    m1[4:6, 4:6] = 1.0
    m2 = np.zeros((10, 10), np.float32)
    m2[0:10, 0:5] = 0.3
    m2[0:4, 0:4] = 0.9
    gts = [np.array([[2, 2, 7, 7]]), np.array([[0, 0, 3, 3]])]
    ev = BoxAccSweep([0.1, 0.5, 0.8], (0.3, 0.5, 0.7), keep_per_image=True)
    ev.update([m1], gts[:1])
    ev.update([m2], gts[1:])
    r = ev.compute()
    # m1 hits (exactly) at 0.1 and 0.5; m2 only at 0.5 and 0.8 -> BoxAcc at IoU 0.5 = 50, 100, 50
    assert r["curves"]["largest"]["0.5"] == [50.0, 100.0, 50.0]
    assert r["maxboxacc"] == 100.0 and r["maxboxacc_threshold"] == 0.5
    assert r["n"] == 2 and r["maxboxacc_v2"] == 100.0
    assert ev.compute(indices=[1])["curves"]["all"]["0.5"] == [0.0, 100.0, 100.0]
    with pytest.raises(ValueError, match="keep_per_image"):
        BoxAccSweep().per_image()


def test_sweep_is_fast_enough_and_exact_on_cam_like_maps():
    torch.manual_seed(0)
    maps = torch.nn.functional.interpolate(torch.rand(6, 1, 7, 7), size=(96, 96), mode="bicubic")[
        :, 0
    ].numpy()
    gts = [np.array([[20, 30, 70, 80]])] * 6
    fast = box_hits(maps, gts, CHOE_THRESHOLDS[::3])
    slow = reference_box_hits(maps, gts, CHOE_THRESHOLDS[::3])
    np.testing.assert_array_equal(fast[0], slow[0])
    np.testing.assert_array_equal(fast[1], slow[1])


# ---------------------------------------------------------------------------------------- PxAP
def test_pxap_counts_match_the_loop_and_known_values():
    rng = np.random.default_rng(0)
    maps = [rng.random((8, 9)).astype(np.float32) for _ in range(3)]
    maps[1][2, 2] = np.nan
    masks = [rng.random((8, 9)) > 0.6 for _ in range(3)]
    thr = np.linspace(0, 1, 11)
    ev = PxAPEvaluator(thr)
    ev.update(maps, masks)
    tp, fp = ev.counts()
    rtp, rfp = reference_pxap_counts(maps, masks, thr)
    np.testing.assert_array_equal(tp, rtp)
    np.testing.assert_array_equal(fp, rfp)
    # a map equal to its mask is perfect; its negation finds foreground only when everything is
    # predicted (t = 0): AP = precision there x recall 1 = the foreground fraction
    perfect = PxAPEvaluator(thr)
    perfect.update([masks[0].astype(np.float32)], [masks[0]])
    assert perfect.compute()["pxap"] == pytest.approx(100.0)
    assert perfect.compute()["best_piou"] == pytest.approx(100.0)
    worst = PxAPEvaluator(thr)
    worst.update([1.0 - masks[0].astype(np.float32)], [masks[0]])
    assert worst.compute()["pxap"] == pytest.approx(100.0 * masks[0].mean())


def test_pxap_needs_foreground():
    ev = PxAPEvaluator([0.5])
    ev.update([np.zeros((3, 3))], [np.zeros((3, 3), bool)])
    with pytest.raises(ValueError, match="foreground"):
        ev.compute()
    with pytest.raises(ValueError, match="shape"):
        ev.update([np.zeros((3, 3))], [np.zeros((3, 4), bool)])


def test_pxap_ignore_pixels_are_neither_true_nor_false_positives():
    # One 1x4 map [0.9, 0.8, 0.6, 0.2] against mask [fg, ignore, bg, fg] (wsolevaluation's 1/255/0/1),
    # thresholds 0.7 and 0.5 (predicted: value >= t).
    #   without the ignore pixel (as wsolevaluation): counted pixels 0.9 (fg), 0.6 (bg), 0.2 (fg), n_fg = 2
    #     t=0.7: predicted {0.9}       TP 1 FP 0 -> P 1,   R 1/2
    #     t=0.5: predicted {0.9, 0.6}  TP 1 FP 1 -> P 1/2, R 1/2 (no recall gain)
    #     AP = 1 x 1/2 + 1/2 x 0 = 50 %
    #   with the ignore pixel read as background (the old behaviour on a bool mask): t=0.7 -> TP 1 FP 1,
    #     P 1/2, R 1/2 -> AP = 25 %; read as foreground (255 cast to True): n_fg = 3, t=0.7 -> TP 2 FP 0,
    #     R 2/3, AP = 66.7 %
    m = np.array([[0.9, 0.8, 0.6, 0.2]], np.float32)
    wsol_mask = np.array([[1, 255, 0, 1]], np.uint8)
    ev = PxAPEvaluator([0.7, 0.5])
    ev.update([m], [wsol_mask])
    r = ev.compute()
    assert r["pxap"] == pytest.approx(50.0) and r["n_ignored_pixels"] == 1
    tp, fp = ev.counts()
    np.testing.assert_array_equal(tp, [1, 1])
    np.testing.assert_array_equal(fp, [0, 1])
    # the same with a bool mask and a separate ignore mask; and the loop reference agrees
    fg = wsol_mask == 1
    ign = np.array([[False, True, False, False]])
    ev2 = PxAPEvaluator([0.7, 0.5])
    ev2.update([m], [fg], ignore=[ign])
    assert ev2.compute()["pxap"] == pytest.approx(50.0)
    rtp, rfp = reference_pxap_counts([m], [fg], [0.7, 0.5], ignore=[ign])
    np.testing.assert_array_equal(rtp, tp)
    np.testing.assert_array_equal(rfp, fp)
    plain = PxAPEvaluator([0.7, 0.5])
    plain.update([m], [fg])
    assert plain.compute()["pxap"] == pytest.approx(25.0)
    # an ignore pixel that is foreground stays foreground (wsolevaluation: ignore & ~foreground): ignoring
    # every pixel leaves the two foreground ones counted (0.9 and 0.2), n_fg = 2; both thresholds predict
    # only 0.9: TP 1 FP 0, P 1, R 1/2 -> AP = 50 %, with 2 pixels ignored (0.8 and 0.6)
    ev3 = PxAPEvaluator([0.7, 0.5])
    ev3.update([m], [fg], ignore=[np.ones_like(ign)])
    r3 = ev3.compute()
    assert r3["n_ignored_pixels"] == 2 and r3["pxap"] == pytest.approx(50.0)
    np.testing.assert_array_equal(ev3.counts()[1], [0, 0])  # the background pixel 0.6 is ignored: no FP
    with pytest.raises(ValueError, match="0 \\(background\\), 1 \\(foreground\\) or 255"):
        PxAPEvaluator([0.5]).update([m], [np.array([[0, 255, 0, 128]], np.uint8)])


def test_ignore_pixels_reach_pxap_through_targets_and_batches():
    from camlib.datasets.targets import Target
    from camlib.evaluation.batch import Batch

    m = np.array([[0.9, 0.8, 0.6, 0.2]], np.float32)
    mask = np.array([[1, 255, 0, 1]], np.uint8)  # as in the first PxAP test: AP 50 % with the ignore pixel
    b = Batch(
        targets=[Target(0, np.zeros((1, 4)), mask=mask)],
        logits=torch.zeros(1, 2),
        pred=np.zeros((1, 1)),
        maps=[np.zeros((2, 1, 4))],
    )
    assert b.masks[0].dtype == np.uint8 and (b.masks[0] == mask).all()  # not cast to bool (255 -> True)
    ev = PxAPEvaluator([0.7, 0.5])
    ev.update([m], b.masks)
    assert ev.compute()["pxap"] == pytest.approx(50.0)
    from camlib.evaluation.localize import array_batches

    _, targets = next(array_batches(np.zeros((1, 1, 4, 3), np.uint8), [0], [[0, 0, 1, 1]], masks=mask[None]))
    assert (targets[0].mask == mask).all()


def test_wsolevaluation_box_threshold_is_an_8_bit_one_as_the_docstring_says():
    # wsolevaluation: q = uint8(255 s), region q > int(tau max q). For a smooth min-max map this is
    # s >= (floor(255 tau) + 1) / 255, so the pixel set differs from ours (s >= tau) at nearly every tau.
    yy, xx = np.mgrid[
        0:224, 0:224
    ]  # a broad bump at wsolevaluation's 224 x 224, like a CAM of a large object
    m = np.exp(-((yy - 100.0) ** 2 + (xx - 90.0) ** 2) / 8000.0)
    m = ((m - m.min()) / (m.max() - m.min())).astype(np.float32)
    q = (m * 255).astype(np.uint8)
    differ = 0
    for tau in CHOE_THRESHOLDS:
        theirs = q > int(tau * q.max())
        np.testing.assert_array_equal(theirs, m * np.float32(255) >= np.floor(255 * tau) + 1)
        differ += bool((theirs != (m >= np.float32(tau))).any())
    assert differ >= 95  # of 100 thresholds


def test_pxap_exact_operating_points_on_a_hand_made_case():
    # scores 0.9 fg, 0.8 bg, 0.7 fg, 0.7 bg, 0.3 fg, NaN fg (never predicted); n_fg = 4
    #   every distinct value is a threshold, from the top:
    #     >= 0.9: TP 1 FP 0  P 1    R 1/4   gain 1/4
    #     >= 0.8: TP 1 FP 1  P 1/2  R 1/4   gain 0
    #     >= 0.7: TP 2 FP 2  P 1/2  R 2/4   gain 1/4
    #     >= 0.3: TP 3 FP 2  P 3/5  R 3/4   gain 1/4
    #   AP = 1/4 + 1/2 x 1/4 + 3/5 x 1/4 = 0.25 + 0.125 + 0.15 = 0.525 -> 52.5 %
    #   a two-threshold sweep (0.75, 0.25) sees only: >= 0.75: TP 1 FP 1 (P 1/2, R 1/4);
    #     >= 0.25: TP 3 FP 2 (P 3/5, R 3/4) -> AP = 1/2 x 1/4 + 3/5 x 1/2 = 0.425 -> 42.5 %
    m = np.array([[0.9, 0.8, 0.7], [0.7, 0.3, np.nan]], np.float32)
    g = np.array([[True, False, True], [False, True, True]])
    ex = PxAPEvaluator("exact")
    ex.update([m], [g])
    r = ex.compute()
    assert r["pxap"] == pytest.approx(52.5) and r["n_operating_points"] == 4
    assert r["best_piou"] == pytest.approx(100 * 3 / 6)  # >= 0.3: TP 3 / (n_fg 4 + FP 2)
    sweep = PxAPEvaluator([0.75, 0.25])
    sweep.update([m], [g])
    assert sweep.compute()["pxap"] == pytest.approx(42.5)
    # exact mode merges (two halves = the whole) and matches sklearn on finite scores with ignore pixels
    from sklearn.metrics import average_precision_score

    rng = np.random.default_rng(1)
    maps = [np.round(rng.random((6, 7)), 2).astype(np.float32) for _ in range(4)]
    masks = [rng.integers(0, 2, (6, 7)).astype(np.uint8) for _ in range(4)]
    for k in masks:
        k[0, :3] = IGNORE_VALUE
    a, b, whole = PxAPEvaluator("exact"), PxAPEvaluator("exact"), PxAPEvaluator("exact")
    a.update(maps[:2], masks[:2])
    b.update(maps[2:], masks[2:])
    whole.update(maps, masks)
    a.merge(b)
    assert a.compute()["pxap"] == pytest.approx(whole.compute()["pxap"])
    keep = np.concatenate([k.ravel() != IGNORE_VALUE for k in masks])
    y = np.concatenate([k.ravel() for k in masks])[keep] == 1
    s = np.concatenate([x.ravel() for x in maps])[keep]
    assert whole.compute()["pxap"] == pytest.approx(100 * average_precision_score(y, s))
    # a sweep through every distinct value gives the same number as the exact mode
    sw = PxAPEvaluator(np.unique(np.concatenate([x.ravel() for x in maps])))
    sw.update(maps, masks)
    assert sw.compute()["pxap"] == pytest.approx(whole.compute()["pxap"])
    with pytest.raises(ValueError, match="exact"):
        PxAPEvaluator("all")


# ----------------------------------------------------------------------------- the protocol pipeline
def test_merge_ten_crops_geometry():
    from camlib.evaluation.localize import merge_ten_crops, ten_crop_offsets

    assert ten_crop_offsets(256, 224) == [(0, 0), (0, 32), (32, 0), (32, 32), (16, 16)]
    ones = torch.ones(1, 10, 1, 7, 7)
    cover = merge_ten_crops(ones)[0, 0]
    assert cover.shape == (256, 256)
    assert (
        cover[0, 0] == 2
        and cover[128, 128] == 10
        and cover[0, 255] == 2
        and cover[20, 20] == 4
        and cover[20, 40] == 6
    )
    # a hot pixel at the left edge of every crop's map: mirrored crops put it at the crop's right edge
    hot = torch.zeros(1, 10, 1, 224, 224)
    hot[:, :, 0, 100, 0] = 1.0
    m = merge_ten_crops(hot)[0, 0]
    expect = {(t + 100, s) for t, s in ten_crop_offsets()} | {
        (t + 100, s + 223) for t, s in ten_crop_offsets()
    }
    assert {tuple(p) for p in torch.nonzero(m).tolist()} == expect


def test_ten_crop_transform_and_cam_path():
    from PIL import Image

    from camlib.core.cam import CAM
    from camlib.evaluation.localize import TenCrop, class_maps

    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (50, 70, 3), dtype=np.uint8))
    tc = TenCrop(lambda x: x / 255.0, size=40, crop=32)
    x = tc(img)
    assert x.shape == (10, 3, 32, 32)
    torch.testing.assert_close(x[5], x[0].flip(-1))
    from camlib.models import SmallGAPNet

    net = SmallGAPNet(6, channels=(8, 8), width=8).eval()
    logits, pred, maps = class_maps(CAM(net), torch.stack([tc(img), tc(img)]), topk=3, gt_labels=[0, 1])
    assert logits.shape == (2, 6) and pred.shape == (2, 3) and maps.shape == (2, 4, 256, 256)
    assert torch.allclose(logits.exp().sum(1), torch.ones(2))  # log of averaged softmax


def test_protocols_on_procedural_data_with_masks():
    from camlib.datasets import ProceduralShapes
    from camlib.evaluation.localize import Protocols, evaluate_protocols, mask_batches
    from camlib.models import SmallGAPNet

    torch.manual_seed(0)
    data = ProceduralShapes(24, seed=0, size=48, split="test")
    net = SmallGAPNet(6, channels=(8, 8), width=16).eval()
    r = evaluate_protocols(net, mask_batches(data.images, data.labels, data.boxes, data.masks, batch_size=10),
                           protocols=Protocols(fractions=(0.2, 0.5)), keep_predictions=True)  # fmt: skip
    assert r["n_images"] == 24 and r["n_skipped"] == 0
    assert set(r["paper"]) == {"0.2", "0.5"} and "pxap" in r and 0 <= r["pxap"]["pxap"] <= 100
    for key in ("released", "heuristic", "heuristic_released", "wsol", "gt_known_sweep"):
        assert key in r
    # the relative sweep at 0.2 is the paper rule's GT-known, image by image
    g = r["evaluators"]["gt_known_sweep"]
    i = int(np.argmin(np.abs(np.asarray(g.thresholds) - 0.2)))
    assert r["gt_known_sweep"]["curves"]["largest"]["0.5"][i] == r["paper"]["0.2"]["gt_known_loc_acc"]
    # the heuristic's five boxes are the paper rule's tight and loose boxes of the top-3 classes
    p = r["predictions"][0]
    assert p["boxes"]["heuristic"][1] == p["boxes"]["paper@0.2"][0]
    # GT-known can never be below top-1 localization (same box, one more condition on the latter)
    pa = r["paper"]["0.2"]
    assert pa["gt_known_loc_acc"] >= pa["top1_loc_acc"]


def test_sample_protocols_agree_with_the_single_rule_pipeline(ilsvrc_sample):
    from torch.utils.data import Subset

    from camlib.core.cam import CAM
    from camlib.datasets.ilsvrc import make_loader, open_ilsvrc_val
    from camlib.evaluation.localize import PAPER_OPTIONS, Protocols, evaluate_localization, evaluate_protocols
    from camlib.models import load_efficientnet_lite0

    net = load_efficientnet_lite0()
    ds = Subset(open_ilsvrc_val(ilsvrc_sample, net.preprocess), range(10))
    cam = CAM(net.model)
    r = evaluate_protocols(
        cam, make_loader(ds, 10), protocols=Protocols(fractions=(0.2, 0.4), released=False)
    )
    ref = evaluate_localization(cam, make_loader(ds, 10), fractions=(0.2, 0.4), options=PAPER_OPTIONS)
    for f in (0.2, 0.4):
        for key in ("top1_loc_err", "top5_loc_err", "gt_known_loc_acc"):
            assert r["paper"][f"{f:g}"][key] == ref["localization"][f][key]
    assert r["classification"] == ref["classification"]


def test_held_out_threshold_choice():
    from camlib.evaluation.wsol import held_out_threshold, random_halves

    a, b = random_halves(10, seed=3)
    assert len(a) == 5 and len(b) == 5 and not set(a) & set(b) and sorted({*a, *b}) == list(range(10))
    hits = np.zeros((4, 3), bool)
    hits[0, 0] = hits[1, 0] = True  # the choosing images like threshold 0
    hits[2, 2] = hits[3, 2] = True  # the reported images like threshold 2
    r = held_out_threshold(hits, [0.1, 0.2, 0.3], choose=[0, 1], report=[2, 3])
    assert r["threshold"] == 0.1 and r["choose_acc"] == 100.0 and r["report_acc"] == 0.0
    assert r["oracle_threshold"] == 0.3 and r["oracle_report_acc"] == 100.0 and r["optimism"] == 100.0
    with pytest.raises(ValueError, match="overlap"):
        held_out_threshold(hits, [0.1, 0.2, 0.3], choose=[0, 1], report=[1, 2])


def test_comparison_rows_name_paper_keys():
    import yaml

    from camlib.evaluation.localize import comparison_rows
    from tests.conftest import REPO

    loc = {"top1_loc_err": 60.0, "top5_loc_err": 50.0, "top1_loc_acc": 40.0}
    res = {"paper": {"0.2": loc}, "released": loc, "heuristic": {"top5_loc_err": 45.0},
           "heuristic_released": {"top5_loc_err": 44.0}, "wsol": {"maxboxacc_v2": 55.0}}  # fmt: skip
    rows = comparison_rows(res, "net X", cam_key="googlenet_gap", heuristics=True, choe_key="imagenet.resnet50",
                           cutmix_key="imagenet.resnet50")  # fmt: skip
    rows += comparison_rows(res, "net X", backprop=True, rule="released")
    keys = yaml.safe_load((REPO / "results" / "paper.yaml").read_text())
    assert all(r["paper_ref"] in keys for r in rows) and len(rows) == 9
    assert {r["reproduced"] for r in rows if "heuristics" in r["paper_ref"]} == {45.0}
