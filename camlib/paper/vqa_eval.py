"""Scoring the VQA study (Zhou et al., CVPR 2016, section 4.2, Fig. 12): answers, CAM pointing, the figure.

- **VQA accuracy** (:func:`vqa_accuracy`, :func:`vqa_scores`): the official 10-answer consensus
  ``min(1, #humans who gave the answer / 3)``, averaged over the leave-one-out subsets of the human
  answers, after the official normalisation (:func:`camlib.datasets.vqa.normalize_answer`);
  :func:`accuracy_by_group` per question / answer type.
- **CAM pointing** (:func:`vqa_cam_pointing`, :func:`pointing_hits`, :func:`pointing_summary`): does
  the peak of an answer's CAM (``argmax`` of the map upsampled to the image) fall inside the box of
  an object the question is about (one box, or several: ``(N, M, 4)``)? For the true answer, the
  predicted one and the best-scoring WRONG answer, next to the centre-pixel and random-pixel baselines.
- :func:`plot_vqa_cams`: the paper's Figure 12 layout.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from camlib.core.cam import CAMOptions, postprocess
from camlib.datasets.vqa import normalize_answer, process_punctuation
from camlib.paper.vqa_train import vqa_batch

if TYPE_CHECKING:
    from camlib.paper.vqa import BowGAPVQA

__all__ = [
    "accuracy_by_group",
    "box_union_fraction",
    "plot_vqa_cams",
    "pointing_hits",
    "pointing_summary",
    "points_in_boxes",
    "vqa_accuracy",
    "vqa_cam_pointing",
    "vqa_scores",
]


# ============================================================================ VQA accuracy


def vqa_accuracy(predicted: str, human_answers: Sequence[str], official: bool = True) -> float:
    """VQA accuracy of one predicted answer against the (usually 10) human answers, in [0, 1].

    ``official=True``: the evaluation server's rule, ``min(1, n/3)`` averaged over the leave-one-out
    subsets of the human answers (with 10 answers: 1 match -> 0.3, 2 -> 0.6, 3 -> 0.9, >= 4 -> 1.0),
    with the official normalisation. ``official=False``: the formula of the VQA paper, ``min(1, n/3)``
    over all answers (3 matches -> 1.0), with the same normalisation.
    """
    if len(human_answers) == 0:
        raise ValueError("no human answers")
    pred = normalize_answer(predicted)
    gts = [a.replace("\n", " ").replace("\t", " ").strip() for a in human_answers]
    if len(set(gts)) > 1:
        gts = [process_punctuation(a) for a in gts]
    matches = [g == pred for g in gts]
    if not official:
        return min(1.0, sum(matches) / 3.0)
    total = sum(matches)
    return float(np.mean([min(1.0, (total - m) / 3.0) for m in matches]))


def vqa_scores(
    predicted: Sequence[str], human_answers: Sequence[Sequence[str]], official: bool = True
) -> np.ndarray:
    """(N,) per-question VQA accuracies in [0, 1]."""
    if len(predicted) != len(human_answers):
        raise ValueError(f"{len(predicted)} predictions for {len(human_answers)} questions")
    return np.asarray([vqa_accuracy(p, h, official) for p, h in zip(predicted, human_answers, strict=True)])


def accuracy_by_group(correct: np.ndarray, groups: Sequence[str]) -> dict[str, float]:
    """Mean of ``correct`` (bool or [0, 1] scores) in percent: ``overall`` and per group name."""
    c = np.asarray(correct, dtype=np.float64)
    g = np.asarray(groups)
    out = {"overall": 100.0 * float(c.mean())}
    for name in sorted(set(g.tolist())):
        out[str(name)] = 100.0 * float(c[g == name].mean())
    return out


# ============================================================================ CAM pointing


def _peaks(maps: Tensor, size: tuple[int, int], upsample: str) -> Tensor:
    """(B, n, 2) integer (x, y) pixel of each map's maximum after upsampling to ``size``."""
    up = postprocess(maps, CAMOptions(upsample=upsample, size=size, normalize="none"))
    B, n, H, W = up.shape
    flat = up.reshape(B, n, H * W).argmax(-1)
    return torch.stack([flat % W, flat // W], dim=-1)


def points_in_boxes(points: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """(N,) bool: point ``(x, y)`` of row i inside the inclusive box of row i (``boxes`` (N, 4)), or inside
    ANY of the boxes of row i (``boxes`` (N, M, 4)); ``-1`` boxes contain nothing."""
    p, b = np.asarray(points), np.asarray(boxes)
    if b.ndim == 2:
        b = b[:, None]
    x, y = p[:, 0, None], p[:, 1, None]
    inside = (b[..., 0] >= 0) & (x >= b[..., 0]) & (x <= b[..., 2]) & (y >= b[..., 1]) & (y <= b[..., 3])
    return inside.any(1)


def box_union_fraction(boxes: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(N,) share of the ``size = (H, W)`` image's pixels inside the box (``(N, 4)``) or inside the union
    of the boxes (``(N, M, 4)``) of each row: where a uniformly random pixel lands, in expectation."""
    b = np.asarray(boxes)
    if b.ndim == 2:
        b = b[:, None]
    H, W = size
    ys, xs = np.arange(H)[:, None], np.arange(W)[None, :]
    out = np.empty(len(b))
    for i, row in enumerate(b):
        covered = np.zeros((H, W), dtype=bool)
        for x0, y0, x1, y1 in row[row[:, 0] >= 0]:
            covered |= (xs >= x0) & (xs <= x1) & (ys >= y0) & (ys <= y1)
        out[i] = covered.mean()
    return out


@torch.no_grad()
def vqa_cam_pointing(
    model: BowGAPVQA,
    dataset,
    wrong_candidates: np.ndarray,
    *,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    upsample: str = "bilinear",
) -> dict[str, np.ndarray | float]:
    """Where the answer CAMs peak, for every question of ``dataset`` (which needs ``batch``, ``labels``).

    Three maps per question: of the ground-truth answer, of the predicted answer, and of the WRONG
    answer the model scores highest among ``wrong_candidates[i]`` (a (N, A) bool table, e.g. the other
    answers of the same question type; the ground truth is always excluded). Maps are upsampled to the
    image size (``upsample``) and their argmax pixel taken. Returns ``logits`` (N, A), ``pred`` (N,),
    ``wrong`` (N,), ``peak_answer``/``peak_pred``/``peak_wrong`` (N, 2) (x, y) and
    ``identity_error`` (max |logit - mean map - question offset - bias| over all maps).
    """
    n = len(dataset)
    labels = torch.as_tensor(np.asarray(dataset.labels), dtype=torch.long)
    cand = torch.as_tensor(np.asarray(wrong_candidates, dtype=bool))
    if cand.shape[0] != n:
        raise ValueError(f"wrong_candidates has {cand.shape[0]} rows for {n} questions")
    out = {k: [] for k in ("logits", "pred", "wrong", "peak_answer", "peak_pred", "peak_wrong")}
    err = 0.0
    for s in range(0, n, batch_size):
        idx = torch.arange(s, min(n, s + batch_size))
        x, q, _ = vqa_batch(dataset, idx)
        x, q = x.to(device), q.to(device)
        y = labels[idx].to(device)
        first = model.cam(x, q, topk=1)
        logits = first.logits
        pred = logits.argmax(1)
        c = cand[idx].to(device).clone()
        c[torch.arange(len(idx)), y.clamp_min(0)] &= ~(y >= 0)
        masked = logits.masked_fill(~c, -torch.inf)
        wrong = masked.argmax(1)
        y_safe = torch.where(y >= 0, y, pred)
        res = model.cam(x, q, torch.stack([y_safe, pred, wrong], dim=1))
        err = max(err, res.identity_error())
        peaks = _peaks(res.maps, tuple(x.shape[-2:]), upsample).cpu()
        out["logits"].append(logits.cpu())
        out["pred"].append(pred.cpu())
        out["wrong"].append(wrong.cpu())
        out["peak_answer"].append(peaks[:, 0])
        out["peak_pred"].append(peaks[:, 1])
        out["peak_wrong"].append(peaks[:, 2])
    result: dict[str, np.ndarray | float] = {k: torch.cat(v).numpy() for k, v in out.items()}
    result["identity_error"] = err
    return result


def pointing_hits(
    pointing: dict, boxes: np.ndarray, size: tuple[int, int], labels: np.ndarray | None = None
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Per question, 1.0 when a map's peak (or the centre pixel) lies in the asked-about box (``boxes``
    (N, 4)) or in one of the asked-about boxes (``(N, M, 4)``), and the boxes' share of the image for a
    random point (:func:`box_union_fraction`). Keys: ``cam_answer`` (the true answer's CAM),
    ``cam_predicted``, ``cam_wrong_answer`` (the best-scoring wrong answer's: an answer-specific map
    should point elsewhere), ``centre`` (pixel ``(W // 2, H // 2)``), ``random_point``. Returns ``(hits,
    has)``; ``has`` marks the questions that count (a box, and a known answer when ``labels``)."""
    boxes = np.asarray(boxes)
    H, W = size
    has = (boxes[:, 0] >= 0) if boxes.ndim == 2 else (boxes[..., 0] >= 0).any(1)
    if labels is not None:
        has &= np.asarray(labels) >= 0
    hits = {
        "cam_answer": points_in_boxes(pointing["peak_answer"], boxes),
        "cam_predicted": points_in_boxes(pointing["peak_pred"], boxes),
        "cam_wrong_answer": points_in_boxes(pointing["peak_wrong"], boxes),
        "centre": points_in_boxes(np.tile([W // 2, H // 2], (len(boxes), 1)), boxes),
        "random_point": box_union_fraction(boxes, size),
    }
    return {k: np.asarray(v, dtype=np.float64) for k, v in hits.items()}, has


def pointing_summary(
    pointing: dict,
    boxes: np.ndarray,
    groups: Sequence[str],
    size: tuple[int, int],
    labels: np.ndarray | None = None,
) -> dict:
    """Pointing accuracy (%) over the questions that have a box (and a known answer when ``labels``):
    the mean of each of :func:`pointing_hits`' keys, overall, per group (question type) and ``n``."""
    hits, has = pointing_hits(pointing, boxes, size, labels)
    g = np.asarray(groups)

    def rates(sel: np.ndarray) -> dict:
        r = {k: 100.0 * float(np.mean(v[sel])) for k, v in hits.items()} if sel.any() else {}
        r["n"] = int(sel.sum())
        return r

    out = rates(has)
    out["per_type"] = {str(t): rates(has & (g == t)) for t in sorted(set(g[has].tolist()))}
    return out


# ============================================================================ figures


def plot_vqa_cams(
    images,
    questions: Sequence[str],
    answers: Sequence[str],
    maps,
    *,
    truths: Sequence[str] | None = None,
    boxes=None,
    ncols: int = 4,
    title: str | None = None,
):
    """The paper's Figure 12 layout: per example the image with its question, then the CAM of the
    predicted answer (named above it, with the true answer when it differs), the question's object
    boxed in red when ``boxes`` is given ((N, 4), or (N, M, 4) for several objects per question,
    ``-1`` rows skipped). ``maps`` at the image size (see :func:`postprocess`)."""
    import matplotlib.pyplot as plt

    from camlib.core.viz import FIG_DPI, GT_COLOR, draw_box, overlay, to_image

    n = len(questions)
    nrows = int(math.ceil(n / ncols))
    fig, axes = plt.subplots(
        nrows, 2 * ncols, figsize=(2.0 * 2 * ncols, 2.45 * nrows), dpi=FIG_DPI, squeeze=False
    )
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
        ax.axis("off")
    for i in range(n):
        r, c = divmod(i, ncols)
        a0, a1 = axes[r, 2 * c], axes[r, 2 * c + 1]
        a0.axis("on")
        a1.axis("on")
        a0.imshow(to_image(images[i]))
        a0.set_title("\n".join(_wrap(questions[i], 24)), fontsize=7)
        a1.imshow(overlay(images[i], maps[i]))
        label = f"A: {answers[i]}"
        ok = truths is None or answers[i] == truths[i]
        if not ok:
            label += f" (true: {truths[i]})"
        a1.set_title(label, fontsize=7, color="darkgreen" if ok else "darkred")
        if boxes is not None:
            for box in np.asarray(boxes[i]).reshape(-1, 4):
                draw_box(a1, box, GT_COLOR, lw=1.2)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def _wrap(text: str, width: int) -> list[str]:
    lines, cur = [], ""
    for w in text.split():
        if cur and len(cur) + 1 + len(w) > width:
            lines.append(cur)
            cur = w
        else:
            cur = f"{cur} {w}".strip()
    return [*lines, cur]
