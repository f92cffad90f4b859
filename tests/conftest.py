"""Shared fixtures: quiet, deterministic, CPU-only tests."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib
import pytest
import torch

matplotlib.use("Agg")
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

REPO = Path(__file__).resolve().parents[1]
SHARED_SAMPLE = REPO.parent / "shared" / "data" / "ilsvrc-val-sample"


@pytest.fixture
def ilsvrc_sample() -> Path:
    if not (SHARED_SAMPLE / "localization.txt").is_file():
        pytest.skip(f"../shared ILSVRC sample not present at {SHARED_SAMPLE} (a user's fresh clone)")
    return SHARED_SAMPLE
