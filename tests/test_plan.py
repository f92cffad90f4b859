"""camlib.tools.plan (`make plan`): the projection arithmetic and a tiny run that reports every notebook;
benchmarks/gpu_check.py stops with a clear message where there is no CUDA."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from camlib.tools import plan

REPO = Path(__file__).resolve().parents[1]


def _rates(device: str) -> plan.Rates:
    return plan.Rates(device, train_s={"net": 0.01}, eval_s={"net": 0.002}, gflops={"net": 1.0},
                      params={"net": 10}, decode_train_s=0.02, decode_eval_s=0.01, boxes_s=0.001, workers=4,
                      how="test")  # fmt: skip


def test_projection_adds_on_a_cpu_and_overlaps_on_a_gpu():
    work = (plan.Stage("01_x", "train", "net", "train", 1000, boxes=0),
            plan.Stage("01_x", "ten-crop", "net", "eval", 100, passes=10, boxes=2),
            plan.Stage("02_y", "backprop", "net", "backprop", 100, passes=5))  # fmt: skip
    cpu = plan.project(_rates("cpu"), work)
    # train: 1000 x 0.01 s compute, 1000 x 0.02 s decode over 4 workers
    assert cpu[0]["compute_s"] == pytest.approx(10.0) and cpu[0]["decode_s"] == pytest.approx(5.0)
    assert cpu[0]["wall_s"] == pytest.approx(15.0) and cpu[0]["gpu_hours"] == 0.0
    # ten-crop: 100 x 10 x 0.002 compute; (100 x 0.01 decode + 100 x 2 x 0.001 boxes) / 4
    assert cpu[1]["compute_s"] == pytest.approx(2.0) and cpu[1]["decode_s"] == pytest.approx(0.3)
    # backprop top-5: a forward + 5 backward passes = 11 forwards
    assert cpu[2]["compute_s"] == pytest.approx(100 * 0.002 * 11)
    gpu = plan.project(_rates("cuda"), work)
    assert gpu[0]["wall_s"] == pytest.approx(10.0) and gpu[0]["gpu_hours"] == pytest.approx(10 / 3600)
    assert gpu[0]["bound"] == "compute"
    projected = plan.gpu_projection(_rates("cpu"), tflops=2.0, cpus=8)
    assert projected.eval_s["net"] == pytest.approx(0.5e-3) and projected.train_s["net"] == pytest.approx(
        1.5e-3
    )
    assert projected.workers == 8 and projected.device.startswith("cuda")


def test_every_notebook_has_work_and_every_network_a_builder():
    notebooks = sorted(p.stem for p in (REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert sorted({st.notebook for st in plan.WORK}) == notebooks
    assert {st.network for st in plan.WORK} <= set(plan.NETWORKS)
    assert set(plan.DATA_GB) == set(notebooks)


def test_tiny_plan_prints_every_notebook_and_the_totals(capsys):
    assert plan.main(["--tiny", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    for nb in sorted(p.stem for p in (REPO / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        assert out.count(f"{nb}:") >= 2, nb  # in this machine's plan and in the one-GPU projection
    assert "make reproduce:" in out and "GPU-hours" in out and "## Assumptions" in out
    assert "160,000 iterations x batch 64" in out


def test_unknown_network_is_named():
    with pytest.raises(SystemExit, match="unknown"):
        plan.main(["--tiny", "--networks", "resnet51"])


@pytest.mark.skipif(torch.cuda.is_available(), reason="this checks the message of a machine WITHOUT CUDA")
def test_gpu_check_stops_with_a_clear_message_without_cuda(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("gpu_check", REPO / "benchmarks" / "gpu_check.py")
    gpu_check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_check)  # type: ignore[union-attr]
    out = tmp_path / "gpu.json"
    assert gpu_check.main(["--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "needs a CUDA GPU" in err and "torch.cuda.is_available() is False" in err and "Nothing was" in err
    assert not out.exists()
