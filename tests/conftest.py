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
