"""Figures: one writer (camlib.core.viz.save_figure, fixed DPI) and nothing in the notebooks bypasses it."""

from __future__ import annotations

import re

import matplotlib.pyplot as plt
import numpy as np
from PIL import Image

from camlib.core.viz import FIG_DPI, save_figure
from camlib.tools.notebook_tools import read

from .conftest import REPO

#: files allowed to call savefig: the helper itself, and the explorer's in-memory PNG for its widget
SAVEFIG_ALLOWED = {"camlib/core/viz.py", "camlib/tools/explorer.py"}
_WRITES_IMAGE = re.compile(r"\.savefig\(|plt\.imsave\(|imageio\.|\.imwrite\(")


def test_save_figure_writes_png_at_the_fixed_dpi(tmp_path):
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.imshow(np.zeros((8, 8)))
    path = save_figure(fig, "check", tmp_path / "figs")
    plt.close(fig)
    assert path == tmp_path / "figs" / "check.png"
    with Image.open(path) as im:
        assert round(im.info["dpi"][0]) == FIG_DPI
        w, h = im.size
    assert w <= 4 * FIG_DPI + 2 and h <= 3 * FIG_DPI + 2  # the figure's own size, trimmed to its content


def test_notebooks_write_figures_only_through_save_figure():
    offenders = []
    for nb in sorted((REPO / "notebooks").glob("*.ipynb")):
        for i, cell in enumerate(read(nb).cells):
            if cell.cell_type == "code" and _WRITES_IMAGE.search(cell.source):
                offenders.append(f"{nb.name} cell {i}")
    for py in sorted((REPO / "camlib").rglob("*.py")):
        rel = py.relative_to(REPO).as_posix()
        if rel not in SAVEFIG_ALLOWED and _WRITES_IMAGE.search(py.read_text()):
            offenders.append(rel)
    assert not offenders, f"figures must be written with camlib.core.viz.save_figure: {offenders}"



def test_cam_grid_draws_several_boxes_per_image_and_peaks():
    import matplotlib

    matplotlib.use("Agg")
    import numpy as np

    from camlib.core.viz import plot_cam_grid

    imgs = np.zeros((2, 20, 20, 3), np.uint8)
    maps = np.random.default_rng(0).random((2, 20, 20))
    preds = [np.array([[1, 1, 5, 5], [8, 8, 12, 12]]), np.zeros((0, 4))]  # two boxes, then none
    gts = [np.array([[0, 0, 6, 6]]), np.array([[2, 2, 9, 9]])]
    fig = plot_cam_grid(imgs, maps, ["a", "b"], pred_boxes=preds, gt_boxes=gts, ncols=2, peaks=[(3, 4), (10, 10)])
    ax0, ax1 = fig.axes
    assert len(ax0.patches) == 3 and len(ax1.patches) == 1  # 2 predicted + 1 GT; no predicted + 1 GT
    assert [tuple(ln.get_xydata()[0]) for ln in (ax0.lines[0], ax1.lines[0])] == [(3, 4), (10, 10)]
