"""MaxBoxAcc / MaxBoxAccV2 threshold sweeps: camlib's vectorised sweep against per-threshold loops.

Three implementations of the same question (for every map, box threshold tau and IoU threshold delta:
is the box of the largest region correct, is the best of all regions' boxes correct?):

- :func:`camlib.evaluation.wsol.box_hits`: every threshold at once (run-length encoding of all superlevel sets,
  one connected-components call; see :mod:`camlib.evaluation.wsol`);
- :func:`contour_loop`: a per-image, per-threshold loop like wsolevaluation's
  ``compute_bboxes_from_scoremaps``: the map scaled to uint8, ``cv2.threshold``,
  ``cv2.findContours`` (RETR_TREE, CHAIN_APPROX_SIMPLE), ``cv2.boundingRect`` of every contour (V2)
  and of the largest by ``cv2.contourArea`` (V1). OpenCV comes with the ``bench`` extra (grad-cam);
- :func:`camlib.evaluation.wsol.reference_box_hits`: the same loop with ``skimage.measure.label`` +
  ``regionprops`` on the float map: camlib's specification, identical results to ``box_hits``.

The contour loop's answers differ slightly by construction (uint8 quantisation, ``>`` instead of
``>=``, contours instead of pixel components, boxes one pixel wider); the agreement is recorded.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import torch

from camlib.core.boxes import iou
from camlib.evaluation.wsol import CHOE_IOU_THRESHOLDS, box_hits, reference_box_hits


def cam_like_maps(n: int, size: int = 224, seed: int = 0) -> tuple[np.ndarray, list[np.ndarray]]:
    """``n`` CAM-like maps (random 7 x 7 grids upsampled bicubically to ``size``, min-max normalised,
    float32) and one random ground-truth box per map."""
    g = torch.Generator().manual_seed(seed)
    maps = torch.nn.functional.interpolate(
        torch.rand(n, 1, 7, 7, generator=g), size=(size, size), mode="bicubic"
    )
    maps = maps[:, 0].numpy()
    lo, hi = maps.min(axis=(1, 2), keepdims=True), maps.max(axis=(1, 2), keepdims=True)
    maps = ((maps - lo) / (hi - lo)).astype(np.float32)
    rng = np.random.default_rng(seed)
    gts = []
    for _ in range(n):
        x0, y0 = rng.integers(0, size // 2, 2)
        w, h = rng.integers(size // 8, size // 2, 2)
        gts.append(np.array([[x0, y0, x0 + w, y0 + h]]))
    return maps, gts


def contour_loop(
    maps, gt_boxes, thresholds, iou_thresholds=CHOE_IOU_THRESHOLDS
) -> tuple[np.ndarray, np.ndarray]:
    """(largest, any) hit tables (B, D, T), one ``cv2.findContours`` per map and threshold."""
    import cv2

    deltas = np.asarray(iou_thresholds, dtype=np.float64)
    B, T = len(maps), len(thresholds)
    largest = np.zeros((B, deltas.size, T), bool)
    anyhit = np.zeros_like(largest)
    for b, m in enumerate(maps):
        img = (np.asarray(m) * 255).astype(np.uint8)
        H, W = img.shape
        top = int(img.max())
        for k, t in enumerate(thresholds):
            _, mask = cv2.threshold(img, int(t * top), 255, cv2.THRESH_BINARY)
            contours = cv2.findContours(mask, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[0]
            if not contours:
                continue
            rects = np.array([cv2.boundingRect(c) for c in contours])
            boxes = np.stack([rects[:, 0], rects[:, 1], np.minimum(rects[:, 0] + rects[:, 2], W - 1),
                              np.minimum(rects[:, 1] + rects[:, 3], H - 1)], axis=1)  # fmt: skip
            best = iou(boxes, gt_boxes[b]).max(axis=1)
            big = int(np.argmax([cv2.contourArea(c) for c in contours]))
            anyhit[b, :, k] = best.max() >= deltas
            largest[b, :, k] = best[big] >= deltas
    return largest, anyhit


def _timed(fn, repeats: int) -> tuple[object, list[float]]:
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return out, times


def measure_sweep(
    n: int,
    n_thresholds: int,
    *,
    n_reference: int | None = None,
    repeats: int = 3,
    size: int = 224,
    seed: int = 0,
    with_cv2: bool = True,
) -> dict:
    """Maps per second of the three implementations on the same ``n`` maps, ``n_thresholds`` thresholds.

    Calls alternate (vectorised, loop, vectorised, ...) so load drift hits both; maps/s from the best
    time, the speed-up is the median of the paired (same repeat) time ratios.
    The skimage reference runs once on the first ``n_reference`` maps (it is slow) and must give the
    vectorised sweep's answers exactly.
    """
    maps, gts = cam_like_maps(n, size, seed)
    thr = np.arange(n_thresholds) / n_thresholds
    vec_times, loop_times, fast, loop = [], [], None, None
    for _ in range(repeats):
        fast, t = _timed(lambda: box_hits(maps, gts, thr, CHOE_IOU_THRESHOLDS), 1)
        vec_times += t
        if with_cv2:
            loop, t = _timed(lambda: contour_loop(maps, gts, thr), 1)
            loop_times += t
    nr = n if n_reference is None else min(n, n_reference)
    ref, ref_t = _timed(lambda: reference_box_hits(maps[:nr], gts[:nr], thr, CHOE_IOU_THRESHOLDS), 1)
    identical = bool((fast[0][:nr] == ref[0]).all() and (fast[1][:nr] == ref[1]).all())
    out = {
        "maps": n, "size": size, "thresholds": n_thresholds, "iou_thresholds": list(CHOE_IOU_THRESHOLDS),
        "vectorised_s": vec_times, "vectorised_maps_per_s": n / min(vec_times),
        "skimage_loop_maps": nr, "skimage_loop_s": ref_t[0], "skimage_loop_maps_per_s": nr / ref_t[0],
        "identical_to_skimage_loop": identical,
        "speedup_vs_skimage_loop": (ref_t[0] / nr) / (min(vec_times) / n),
    }  # fmt: skip
    if with_cv2:
        out.update({
            "contour_loop_s": loop_times, "contour_loop_maps_per_s": n / min(loop_times),
            "speedup_vs_contour_loop": statistics.median(c / v for c, v in zip(loop_times, vec_times, strict=True)),
            "speedup_vs_contour_loop_best": min(loop_times) / min(vec_times),
            "contour_loop_agreement": {"largest": float((loop[0] == fast[0]).mean()),
                                       "any": float((loop[1] == fast[1]).mean())},
        })  # fmt: skip
    return out
