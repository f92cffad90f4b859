"""Figures: one writer (camlib.core.viz.save_figure, fixed DPI) and nothing in the notebooks bypasses it."""

from __future__ import annotations

import re

import matplotlib.pyplot as plt
import numpy as np
import pytest
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
    fig = plot_cam_grid(
        imgs, maps, ["a", "b"], pred_boxes=preds, gt_boxes=gts, ncols=2, peaks=[(3, 4), (10, 10)]
    )
    ax0, ax1 = fig.axes
    assert len(ax0.patches) == 3 and len(ax1.patches) == 1  # 2 predicted + 1 GT; no predicted + 1 GT
    assert [tuple(ln.get_xydata()[0]) for ln in (ax0.lines[0], ax1.lines[0])] == [(3, 4), (10, 10)]


def _decodes(path) -> bool:
    try:
        with Image.open(path) as im:
            im.load()
        return True
    except Exception:
        return False


def test_failing_savefig_leaves_the_previous_figure_intact(tmp_path):
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.imshow(np.eye(8))
    path = save_figure(fig, "same", tmp_path)
    before = path.read_bytes()
    assert _decodes(path)

    def half_then_fail(fname, **kwargs):  # writes part of a PNG, then dies (disk full, Ctrl-C, a bug)
        with open(fname, "wb") as fh:
            fh.write(before[: len(before) // 2])
        raise OSError("disk full")

    fig.savefig = half_then_fail
    with pytest.raises(OSError, match="disk full"):
        save_figure(fig, "same", tmp_path)
    plt.close(fig)
    assert path.read_bytes() == before and _decodes(path)  # the previous figure, byte for byte
    assert [p.name for p in tmp_path.iterdir()] == ["same.png"]  # no temporary file left behind


def test_save_figure_replaces_whole_files_only(tmp_path):
    """Two runs saving the same name: the file is always one complete PNG, the last one written."""
    sizes = []
    for n in (4, 40):
        fig, ax = plt.subplots(figsize=(2, 2))
        ax.imshow(np.random.default_rng(n).random((n, n)))
        sizes.append(len(save_figure(fig, "same", tmp_path).read_bytes()))
        plt.close(fig)
    assert _decodes(tmp_path / "same.png") and (tmp_path / "same.png").stat().st_size == sizes[-1]
    assert [p.name for p in tmp_path.iterdir()] == ["same.png"]
    assert oct((tmp_path / "same.png").stat().st_mode & 0o777) == oct(0o644)


def test_atomic_helpers_replace_or_keep(tmp_path):
    from camlib.core.io import atomic_path, atomic_write_bytes, atomic_write_text
    from camlib.tools.results import atomic_write_text as results_writer

    target = tmp_path / "sub" / "f.txt"
    atomic_write_text(target, "one\n")
    assert target.read_text() == "one\n"
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(target) as tmp:
            assert tmp.parent == target.parent and tmp.name.startswith(".") and tmp.suffix == ".txt"
            tmp.write_text("half")
            raise KeyboardInterrupt
    assert target.read_text() == "one\n" and [p.name for p in target.parent.iterdir()] == ["f.txt"]
    atomic_write_bytes(target, b"two")
    assert target.read_bytes() == b"two"
    results_writer(target, "three")  # results.py writes through the same helper
    assert target.read_text() == "three"
    assert "mkstemp" not in (REPO / "camlib/tools/results.py").read_text()  # one helper, not two copies
