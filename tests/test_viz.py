"""Figures: one writer (camlib.viz.save_figure, fixed DPI) and nothing in the notebooks bypasses it."""

from __future__ import annotations

import re

import matplotlib.pyplot as plt
import numpy as np
from PIL import Image

from camlib.notebook_tools import read
from camlib.viz import FIG_DPI, save_figure

from .conftest import REPO

#: files allowed to call savefig: the helper itself, and the explorer's in-memory PNG for its widget
SAVEFIG_ALLOWED = {"camlib/viz.py", "camlib/explorer.py"}
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
    assert not offenders, f"figures must be written with camlib.viz.save_figure: {offenders}"

