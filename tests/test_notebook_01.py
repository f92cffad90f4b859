"""Papermill smoke run of notebook 01 with a tiny training budget (results go to a temp folder)."""

from __future__ import annotations

import json

import nbformat
import papermill as pm
import pytest

from camlib.tools.results import validate_results

from .conftest import REPO


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_notebook_01_runs_headless(tmp_path):
    out = tmp_path / "01.ipynb"
    pm.execute_notebook(
        str(REPO / "notebooks" / "01_cam_basics.ipynb"),
        str(out),
        kernel_name="python3",
        cwd=str(REPO / "notebooks"),
        progress_bar=False,
        parameters={
            "N_TRAIN": 256,
            "N_TEST": 64,
            "EPOCHS": 1,
            "RESULTS_DIR": str(tmp_path / "results"),
            "FIGURES_DIR": str(tmp_path / "figures"),
        },
    )
    res = json.loads((tmp_path / "results" / "01_cam_basics.json").read_text())
    validate_results(res)
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
