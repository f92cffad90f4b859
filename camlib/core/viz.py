"""Figures: heat-map overlays, predicted vs ground-truth boxes, the paper's Figure 4 layout.

Images are shown as (H, W, 3) uint8 or float in [0, 1]; maps as 2-D arrays at the image's size
(upsample first with :func:`camlib.core.cam.postprocess`). Boxes use the inclusive pixel convention of
:mod:`camlib.core.boxes`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.patches import Rectangle

from camlib.core.io import atomic_path

__all__ = [
    "FIG_DPI",
    "draw_box",
    "overlay",
    "plot_cam_grid",
    "plot_localization",
    "plot_topk_cams",
    "save_figure",
    "to_image",
]

FIG_DPI = 110  #: resolution of every saved figure (:func:`save_figure`)
PRED_COLOR, GT_COLOR = "#00e676", "#ff1744"


def to_image(img) -> np.ndarray:
    """PIL image, (3, H, W) / (H, W, 3) tensor or array -> (H, W, 3) float in [0, 1]."""
    if isinstance(img, torch.Tensor):
        img = img.detach().cpu()
        if img.ndim == 3 and img.shape[0] in (1, 3):
            img = img.permute(1, 2, 0)
        img = img.numpy()
    a = np.asarray(img)
    if a.dtype == np.uint8:
        a = a.astype(np.float32) / 255.0
    a = a.astype(np.float32)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    if a.min() < 0 or a.max() > 1:  # a normalised network input: stretch back for display
        a = (a - a.min()) / max(float(a.max() - a.min()), 1e-8)
    return a


def overlay(image, cam, alpha: float = 0.5, cmap: str = "jet") -> np.ndarray:
    """Blend a map (scaled to [0, 1] per map, NaN as 0) over an image: ``(1-alpha) img + alpha heat``."""
    img = to_image(image)
    m = np.nan_to_num(
        np.asarray(cam.detach().cpu() if isinstance(cam, torch.Tensor) else cam, dtype=np.float32)
    )
    if m.shape != img.shape[:2]:
        raise ValueError(f"map {m.shape} and image {img.shape[:2]} differ in size; upsample the map first")
    span = m.max() - m.min()
    m = (m - m.min()) / span if span > 0 else np.zeros_like(m)
    heat = plt.get_cmap(cmap)(m)[..., :3]
    return np.clip((1 - alpha) * img + alpha * heat, 0, 1)


def draw_box(ax, box, color: str = PRED_COLOR, label: str | None = None, lw: float = 2.0) -> None:
    """Draw an inclusive (x0, y0, x1, y1) box on a matplotlib axis; (-1, ...) boxes are skipped."""
    x0, y0, x1, y1 = (float(v) for v in box)
    if x0 < 0 or x1 < x0 or y1 < y0:
        return
    ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0 + 1, y1 - y0 + 1, fill=False, ec=color, lw=lw))
    if label:
        ax.text(
            x0,
            y0 - 2,
            label,
            color="white",
            fontsize=8,
            va="bottom",
            bbox={"facecolor": color, "alpha": 0.8, "pad": 1, "lw": 0},
        )


def _clean(ax) -> None:
    ax.set_xticks([])
    ax.set_yticks([])


def plot_topk_cams(
    image, maps, classes: Sequence[str], scores: Sequence[float], title: str | None = None, boxes=None
) -> plt.Figure:
    """The paper's Figure 4: the image, then the CAM of each of its top-k classes with name and score."""
    k = len(classes)
    fig, axes = plt.subplots(1, k + 1, figsize=(2.4 * (k + 1), 2.7), dpi=FIG_DPI)
    axes[0].imshow(to_image(image))
    axes[0].set_title(title or "input", fontsize=9)
    for j in range(k):
        ax = axes[j + 1]
        ax.imshow(overlay(image, maps[j]))
        ax.set_title(f"{classes[j][:22]}\n{scores[j]:.3f}", fontsize=8)
        if boxes is not None:
            draw_box(ax, boxes[j])
    for ax in axes:
        _clean(ax)
    fig.tight_layout()
    return fig


def plot_localization(
    image, cam, pred_box, gt_boxes, title: str = "", ax=None, hit: bool | None = None, peak=None
):
    """Overlay + predicted box(es) (green) + ground-truth boxes (red) + an optional ``peak`` point
    ``(x, y)`` (a white cross, the pointing game); the title says hit or miss."""
    if ax is None:
        _, ax = plt.subplots(figsize=(3, 3), dpi=FIG_DPI)
    ax.imshow(overlay(image, cam) if cam is not None else to_image(image))
    for g in np.asarray(gt_boxes).reshape(-1, 4):
        draw_box(ax, g, GT_COLOR)
    for p in np.asarray(pred_box).reshape(-1, 4):
        draw_box(ax, p, PRED_COLOR)
    if peak is not None:
        ax.plot(*peak, "w+", ms=10, mew=2)
    if hit is not None:
        title = f"{title} {'hit' if hit else 'miss'}".strip()
        ax.set_title(title, fontsize=8, color="darkgreen" if hit else "darkred")
    elif title:
        ax.set_title(title, fontsize=8)
    _clean(ax)
    return ax


def plot_cam_grid(
    images,
    maps,
    titles: Sequence[str],
    pred_boxes=None,
    gt_boxes=None,
    ncols: int = 6,
    hits: Sequence[bool] | None = None,
    peaks=None,
) -> plt.Figure:
    """A grid of overlays with optional predicted/GT boxes (one or several per image) and peak points
    (the usual 'where does it look' figure)."""
    n = len(images)
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.1 * ncols, 2.3 * nrows), dpi=FIG_DPI, squeeze=False)
    for i, ax in enumerate(axes.ravel()):
        if i >= n:
            ax.axis("off")
            continue
        plot_localization(
            images[i],
            maps[i],
            pred_boxes[i] if pred_boxes is not None else (-1, -1, -1, -1),
            gt_boxes[i] if gt_boxes is not None else np.zeros((0, 4)),
            titles[i],
            ax=ax,
            hit=None if hits is None else bool(hits[i]),
            peak=None if peaks is None else peaks[i],
        )
    fig.tight_layout()
    return fig


def save_figure(fig: plt.Figure, name: str, folder: str | Path | None = None) -> Path:
    """Save a figure as ``<folder>/<name>.png`` (the one place figures are written; README links them).

    ``folder`` None: ``$CAMLIB_FIGURES_DIR`` when set (``camlib.tools.run_notebooks`` sets it to the
    run's figures folder, ``build/figures`` unless told otherwise), else ``../figures``.

    Always PNG at :data:`FIG_DPI`; the size is the ``figsize`` the figure was made with (every figure
    in camlib and the notebooks sets one), trimmed to its content. ``tests/test_viz.py`` checks that
    nothing else writes figures.

    Written atomically (:func:`camlib.core.io.atomic_path`): the PNG goes to a temporary file in the
    same folder, renamed over ``<name>.png`` only once it is complete, so a failing ``savefig`` or a
    second run saving the same figure at the same time never leaves a PNG that does not decode, and a
    failure leaves the previous figure as it was.
    """
    if folder is None:
        folder = os.environ.get("CAMLIB_FIGURES_DIR") or "../figures"
    path = Path(folder) / f"{name}.png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=FIG_DPI, bbox_inches="tight")
    return path
