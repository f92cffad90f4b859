"""Shared fixtures: quiet, deterministic, CPU-only tests."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib
import pytest
import torch

matplotlib.use("Agg")
# `make test` runs the suite in pytest-xdist workers (PYTEST_XDIST_WORKER_COUNT of them): the cores are
# shared out, in this process and in the notebook kernels and subprocesses the tests start
WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
THREADS = max(1, min(2, (os.cpu_count() or 1) // WORKERS))
torch.set_num_threads(THREADS)
if WORKERS > 1:
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(THREADS))

REPO = Path(__file__).resolve().parents[1]
SHARED_SAMPLE = REPO.parent / "shared" / "data" / "ilsvrc-val-sample"


@pytest.fixture
def ilsvrc_sample() -> Path:
    if not (SHARED_SAMPLE / "localization.txt").is_file():
        pytest.skip(f"../shared ILSVRC sample not present at {SHARED_SAMPLE} (a user's fresh clone)")
    return SHARED_SAMPLE


def run_notebook(name: str, tmp_path: Path, **parameters) -> dict:
    """Run ``notebooks/<name>.ipynb`` headless with papermill (from ``notebooks/``, executed copy
    ``tmp_path/<NN>.ipynb``), its results and figures under ``tmp_path`` (``results/``, ``figures/``) unless
    ``parameters`` say otherwise; return its results file, validated. A failing cell raises papermill's error."""
    import json

    import papermill as pm

    from camlib.tools.results import validate_results

    params = {
        "RESULTS_DIR": str(tmp_path / "results"),
        "FIGURES_DIR": str(tmp_path / "figures"),
        **parameters,
    }
    pm.execute_notebook(
        str(REPO / "notebooks" / f"{name}.ipynb"),
        str(tmp_path / f"{name[:2]}.ipynb"),
        kernel_name="python3",
        cwd=str(REPO / "notebooks"),
        progress_bar=False,
        parameters=params,
    )
    res = json.loads((Path(params["RESULTS_DIR"]) / f"{name}.json").read_text())
    validate_results(res)
    return res


@pytest.fixture
def chromium_playwright():
    """``(chromium executable, playwright.sync_api)`` for the headless-browser checks; skipped, saying how
    to get what is missing, when there is no Chromium or no playwright."""
    from camlib.tools.browser import HOW_TO_GET, chromium_path

    chromium = chromium_path()
    if chromium is None:
        pytest.skip(f"browser check skipped: no Chromium found; {HOW_TO_GET}")
    sync_api = pytest.importorskip(
        "playwright.sync_api",
        reason="browser check skipped: playwright is not "
        "installed (it is in the dev extra: make setup, or pip install playwright)",
    )
    return chromium, sync_api
