"""benchmarks/: camlib's maps against torchcam's CAM and pytorch-grad-cam's GradCAM, and a quick bench run.

The comparisons need the ``bench`` extra (``make bench`` installs it) and are skipped without it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
import torchvision.models as tvm

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import methods  # noqa: E402
import sweep  # noqa: E402

from camlib.models import SmallGAPNet  # noqa: E402


def _models():
    torch.manual_seed(0)
    small = SmallGAPNet(5).eval()
    r18 = methods.calibrate_batchnorm(tvm.resnet18(num_classes=20), size=64, batch_size=4)
    return {"small_gap": small, "resnet18": r18}


@pytest.mark.parametrize("name", ["small_gap", "resnet18"])
def test_camlib_equals_torchcam_cam_after_the_same_normalisation(name):
    pytest.importorskip("torchcam")
    x = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    res = methods.torchcam_agreement(_models()[name], x)
    assert res["classes_equal"]
    assert res["max_abs_diff"] < 1e-4


@pytest.mark.parametrize("name", ["small_gap", "resnet18"])
def test_gradcam_on_a_gap_linear_head_is_proportional_to_cam(name):
    pytest.importorskip("pytorch_grad_cam")
    x = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    res = methods.gradcam_agreement(_models()[name], x)
    assert res["raw_rel_err"] < 1e-4  # h w * Grad-CAM == CAM at feature resolution
    assert res["corr_raw_min"] > 0.99
    assert res["corr_input_min"] > 0.99


def test_every_method_returns_maps_of_the_input_size():
    model = _models()["resnet18"]
    x = torch.randn(2, 3, 64, 64)
    have = {lib for lib, mod in (("torchcam", "torchcam"), ("gradcam", "pytorch_grad_cam"))
            if __import__("importlib").util.find_spec(mod)}  # fmt: skip
    fns = methods.make_methods(model, x, have)
    assert set(fns) == {"plain", "camlib_top1", "camlib_all"} | have
    for name, fn in fns.items():
        out = fn()
        if name == "plain":
            assert tuple(out.shape) == (2, 20)
        elif name == "camlib_all":
            assert tuple(out.shape) == (2, 20, 2, 2)
        else:
            assert tuple(out.shape)[-2:] == (64, 64) and out.shape[0] == 2


def test_vectorised_sweep_matches_the_skimage_loop_and_mostly_the_contour_loop():
    res = sweep.measure_sweep(6, 25, repeats=1, size=48, with_cv2=False)
    assert res["identical_to_skimage_loop"]
    pytest.importorskip("cv2")
    maps, gts = sweep.cam_like_maps(6, 48)
    thr = [i / 25 for i in range(25)]
    from camlib.evaluation.wsol import box_hits

    fast, loop = box_hits(maps, gts, thr), sweep.contour_loop(maps, gts, thr)
    # contours on a uint8 map with ">" differ from pixel components with ">=" only near the edges
    assert (fast[0] == loop[0]).mean() > 0.9 and (fast[1] == loop[1]).mean() > 0.9


@pytest.mark.slow
def test_quick_bench_writes_the_record_and_the_figures(tmp_path):
    import bench

    rec = bench.main(["--quick", "--out", str(tmp_path / "bench.json"), "--figures", str(tmp_path)])
    saved = json.loads((tmp_path / "bench.json").read_text())
    assert saved["quick"] is True and saved["threads"] >= 1 and "torch" in saved["versions"]
    assert set(saved["targets"]) == set(bench.TARGETS)
    assert {(r["model"], r["batch"]) for r in saved["throughput"]} == {
        (m, b) for m in bench.QUICK["models"] for b in bench.QUICK["batches"]
    }
    for r in saved["throughput"]:
        assert r["ratios"]["camlib_top1_vs_plain"] > 0
    assert all(s["identical_to_skimage_loop"] for s in saved["sweep"])
    assert all(saved["agreement_pass"].values())
    assert {r["axis"] for r in saved["cost_growth"]} == {"batch", "size", "classes"}
    for f in rec["figures"]:
        assert Path(f).is_file()
