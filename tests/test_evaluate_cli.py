"""The evaluate CLI: every setting of notebook 03, output paths checked before any work, the exact file
name honoured, fractions range-checked on every path, and a killed run that resumes to the same numbers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from .conftest import REPO

COMMON = ["-m", "camlib.evaluate", "--data", "procedural", "--num-images", "24", "--image-size", "48",
          "--model", "small_gap", "--batch-size", "4", "--threads", "1"]  # fmt: skip


def _cli(args, cwd, check=True):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    if check:
        assert done.returncode == 0, f"{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.mark.slow
def test_killed_evaluation_resumes_to_the_uninterrupted_numbers(tmp_path):
    """kill -9 right after the 3rd state write (inside the first setting), then the same command again:
    the same numbers, every setting, as one uninterrupted run; the state is removed at the end."""
    _cli([*COMMON, "--out", "whole.json"], tmp_path)
    killed = _cli(
        [*COMMON, "--out", "resumed.json", "--save-every", "1", "--stop-after-checkpoints", "3"],
        tmp_path,
        check=False,
    )
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert (
        not (tmp_path / "resumed.json").exists() and (tmp_path / "resumed.json.state" / "rank0.pkl").is_file()
    )
    again = _cli([*COMMON, "--out", "resumed.json", "--save-every", "1"], tmp_path)
    assert "resuming from" in again.stdout and "cam at batch 3" in again.stdout
    whole, resumed = (json.loads((tmp_path / f).read_text()) for f in ("whole.json", "resumed.json"))
    assert set(whole["runs"]) == {"cam", "backprop"} and whole["not_run"] == resumed["not_run"]
    assert resumed["runs"] == whole["runs"]  # every protocol, both settings, exact
    assert resumed["metrics"]["n_images"] == 24
    assert not (tmp_path / "resumed.json.state").exists()


def test_a_state_of_other_settings_is_refused(tmp_path):
    _cli(
        [
            *COMMON,
            "--settings",
            "cam",
            "--out",
            "a.json",
            "--save-every",
            "1",
            "--stop-after-checkpoints",
            "1",
        ],
        tmp_path,
        check=False,
    )
    other = _cli(
        [*COMMON, "--settings", "cam", "--batch-size", "8", "--out", "a.json"], tmp_path, check=False
    )
    assert other.returncode != 0 and "of another run" in other.stderr and "--restart" in other.stderr


@pytest.mark.parametrize("out", ["afile/out.json", "adir"])
def test_bad_out_fails_before_any_work(tmp_path, out):
    (tmp_path / "afile").write_text("a file, not a folder")
    (tmp_path / "adir").mkdir()
    t0 = time.time()
    done = _cli([*COMMON, "--num-images", "100000", "--out", out], tmp_path, check=False)
    assert done.returncode == 2, done.stderr
    assert "--out" in done.stderr and ("cannot be written" in done.stderr or "is a folder" in done.stderr)
    assert "rank 0" not in done.stderr  # no evaluation bar: nothing ran
    assert time.time() - t0 < 60
    assert not (tmp_path / "adir.state").exists()


def test_bad_fractions_are_refused_on_every_path(tmp_path):
    done = _cli([*COMMON, "--fractions", "1.5", "-0.2", "--out", "x.json"], tmp_path, check=False)
    assert done.returncode == 2 and "(0, 1]" in done.stderr
    from camlib.datasets import CLASSES, ProceduralShapes
    from camlib.evaluation.localize import Protocols, evaluate_localization, evaluate_protocols, mask_batches
    from camlib.models import SmallGAPNet

    d = ProceduralShapes(4, seed=0, size=48, split="test")
    net = SmallGAPNet(len(CLASSES)).eval()
    for bad in ((1.5,), (-0.2,), (0.0,)):
        with pytest.raises(ValueError, match=r"\(0, 1\]"):
            evaluate_protocols(
                net, mask_batches(d.images, d.labels, d.boxes, d.masks), protocols=Protocols(fractions=bad)
            )
        with pytest.raises(ValueError, match=r"\(0, 1\]"):
            evaluate_localization(net, mask_batches(d.images, d.labels, d.boxes, d.masks), fractions=bad)


def test_features_out_gets_exactly_the_name_given(tmp_path):
    _cli([*COMMON, "--settings", "cam", "--out", "s.json", "--features-out", "x.bin"], tmp_path)
    assert (tmp_path / "x.bin").is_file() and not (tmp_path / "x.bin.npz").exists()
    with np.load(tmp_path / "x.bin") as f:
        assert f["X"].shape == (24, 96) and f["y"].shape == (24,)


def test_capped_maps_score_like_full_size_maps_and_keep_boxes_in_image_pixels():
    """max_map_side: maps of large images are boxed on a capped grid (targets scaled there) and the kept
    boxes come back in the image's pixels; on 96-px images capped at 48 the scores stay close."""
    import torch

    from camlib.datasets import CLASSES, ProceduralShapes
    from camlib.evaluation.localize import Protocols, evaluate_protocols, mask_batches
    from camlib.evaluation.loop import cap_target
    from camlib.models import SmallGAPNet

    torch.manual_seed(0)
    d = ProceduralShapes(16, seed=0, size=96, split="test")
    net = SmallGAPNet(len(CLASSES)).eval()
    p = Protocols(fractions=(0.2,))
    full = evaluate_protocols(
        net, mask_batches(d.images, d.labels, d.boxes, d.masks), protocols=p, keep_predictions=True
    )
    capped = evaluate_protocols(
        net,
        mask_batches(d.images, d.labels, d.boxes, d.masks),
        protocols=p,
        keep_predictions=True,
        max_map_side=48,
    )
    assert capped["n_images"] == full["n_images"] == 16
    a, b = full["paper"][0.2]["gt_known_loc_acc"], capped["paper"][0.2]["gt_known_loc_acc"]
    assert abs(a - b) <= 100 * 3 / 16, (a, b)  # a pixel of rounding on a 48 grid moves at most a few images
    for pred in capped["predictions"]:
        assert pred["size"] == [96, 96]
        box = np.asarray(pred["gt_known_box"]["paper@0.2"])
        assert box.max() <= 95 and (box.min() >= 0 or (box == -1).all())
    from camlib.datasets.targets import Target

    t, scale = cap_target(Target(label=0, boxes=[[100, 200, 3999, 2999]], size=(3000, 4000)), 1000)
    assert t.size == (750, 1000) and scale == (4.0, 4.0) and t.boxes.tolist() == [[25, 50, 999, 749]]
    assert cap_target(t, 1000)[1] is None  # fits: unchanged
