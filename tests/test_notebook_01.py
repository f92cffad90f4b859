"""Papermill smoke run of notebook 01 with a tiny training budget (results go to a temp folder)."""

from __future__ import annotations

import nbformat
import pytest

from .conftest import run_notebook


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_notebook_01_runs_headless(tmp_path):
    out = tmp_path / "01.ipynb"
    res = run_notebook("01_cam_basics", tmp_path, N_TRAIN=256, N_TEST=64, EPOCHS=1)
    assert res["profile"] == "quick"
    assert res["metrics"]["identity_max_abs_err"] < 1e-4
    assert (tmp_path / "figures" / "01_top5_cams_chelsea.png").stat().st_size > 10_000
    # the explorer's static fallback (INTERACTIVE = False): one figure, shown once
    explorer_cell = next(
        c
        for c in nbformat.read(str(out), as_version=4).cells
        if c.cell_type == "code" and "explorer.show(interactive=INTERACTIVE)" in c.source
    )
    assert [o.output_type for o in explorer_cell.outputs] == ["display_data"]
    assert "image/png" in explorer_cell.outputs[0].data
