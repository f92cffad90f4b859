"""camlib.core.distributed: shards, mergeable evaluator counts, and a 2-process torchrun run equal to 1 process."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from camlib.core import distributed
from camlib.evaluation.metrics import ClassificationEvaluator, LocalizationEvaluator, merge_states
from camlib.evaluation.wsol import BoxAccSweep, PxAPEvaluator

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("n", [0, 1, 7, 50, 64])
@pytest.mark.parametrize("world", [1, 2, 3, 4])
@pytest.mark.parametrize("block", [1, 8])
def test_shards_are_contiguous_disjoint_aligned_and_cover_everything(n, world, block):
    shards = [distributed.shard_range(n, r, world, block) for r in range(world)]
    assert [i for s in shards for i in s] == list(range(n))
    for s in shards:
        assert s.start % block == 0  # whole batches: the batches one process would see
    sizes = [len(s) for s in shards]
    assert max(sizes) - min(sizes) <= block  # balanced to within one batch


def test_shard_range_rejects_bad_arguments():
    with pytest.raises(ValueError):
        distributed.shard_range(10, 2, 2)
    with pytest.raises(ValueError):
        distributed.shard_range(10, 0, 2, block=0)


def test_without_torchrun_everything_is_one_process(monkeypatch):
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    ctx = distributed.init("cpu")
    assert (ctx.rank, ctx.world_size, ctx.backend, ctx.is_main, ctx.distributed) == (0, 1, None, True, False)
    data = torch.arange(10)
    assert distributed.shard(data, ctx, block=4) is data
    assert distributed.gather_list([1, 2]) == [1, 2]
    assert distributed.all_sum(3) == 3
    ev = ClassificationEvaluator((1,))
    ev.update(torch.eye(3), [0, 1, 0])
    distributed.sync_evaluators(ev, None)  # no group: unchanged
    assert ev.compute()["top1_acc"] == pytest.approx(200 / 3)


def _maps_and_boxes(n: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    maps = torch.nn.functional.interpolate(
        torch.rand(n, 1, 5, 5, generator=g), size=(32, 32), mode="bilinear"
    )[:, 0]
    rng = np.random.default_rng(seed)
    boxes = [np.array([[x, y, x + 10, y + 12]]) for x, y in rng.integers(0, 20, (n, 2))]
    masks = maps.numpy() > 0.6
    return maps.numpy(), boxes, masks


def _split_equals_whole(make, feed, n=12, cut=5):
    whole, a, b = make(), make(), make()
    feed(whole, slice(0, n))
    feed(a, slice(0, cut))
    feed(b, slice(cut, n))
    merged = make().merge(a, b.state())  # evaluators and states both merge
    return whole, merged


def test_every_evaluator_merges_to_the_single_pass_result():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(12, 6))
    labels = rng.integers(0, 6, 12)
    maps, boxes, masks = _maps_and_boxes(12)
    pred = np.argsort(-logits, 1)[:, :5]
    pboxes = rng.integers(0, 30, (12, 5, 4)).cumsum(-1) % 32
    gk = rng.integers(0, 16, (12, 4)) + np.array([0, 0, 10, 10])

    cases = [
        (lambda: ClassificationEvaluator((1, 5)), lambda e, s: e.update(logits[s], labels[s])),
        (lambda: LocalizationEvaluator((1, 5)),
         lambda e, s: e.update(pred[s], pboxes[s], labels[s], boxes[s], gk[s])),
        (lambda: BoxAccSweep(np.linspace(0, 0.95, 20), keep_per_image=True), lambda e, s: e.update(maps[s], boxes[s])),
        (lambda: PxAPEvaluator(np.linspace(0, 0.95, 20)), lambda e, s: e.update(maps[s], masks[s])),
    ]  # fmt: skip
    for make, feed in cases:
        whole, merged = _split_equals_whole(make, feed)
        assert merged.compute() == whole.compute(), type(whole).__name__
    whole, merged = _split_equals_whole(*cases[2])
    for x, y in zip(whole.per_image(), merged.per_image(), strict=True):
        np.testing.assert_array_equal(x, y)  # per-image tables in shard order = dataset order


def test_merging_evaluators_with_other_settings_is_refused():
    with pytest.raises(ValueError, match="different settings"):
        merge_states([ClassificationEvaluator((1, 5)).state(), ClassificationEvaluator((1,)).state()])
    with pytest.raises(ValueError, match="other settings"):
        BoxAccSweep((0.1, 0.2)).load_state(BoxAccSweep((0.1, 0.3)).state())


def _run(cmd: list[str], cwd) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": REPO_ROOT}
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, f"{' '.join(cmd)}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"


def test_two_torchrun_processes_give_the_single_process_metrics_and_features(tmp_path):
    from camlib.datasets import CLASSES
    from camlib.models import SmallGAPNet

    torch.manual_seed(1)
    ckpt = tmp_path / "small.pt"
    torch.save(SmallGAPNet(len(CLASSES)).state_dict(), ckpt)
    # 50 images in batches of 8: 7 batches, split 3 / 4 over the two processes, the last one short
    common = ["-m", "camlib.evaluate", "--data", "procedural", "--num-images", "50", "--image-size", "48",
              "--model", "small_gap", "--checkpoint", str(ckpt), "--batch-size", "8", "--threads", "1"]  # fmt: skip
    _run([sys.executable, *common, "--out", "one.json", "--features-out", "one.npz"], tmp_path)
    _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *common,
          "--out", "two.json", "--features-out", "two.npz"], tmp_path)  # fmt: skip
    one, two = (json.loads((tmp_path / f).read_text()) for f in ("one.json", "two.json"))
    assert (one["world_size"], two["world_size"], two["backend"]) == (1, 2, "gloo")
    assert one["metrics"]["n_images"] == two["metrics"]["n_images"] == 50
    assert two["metrics"] == one["metrics"]  # classification, every box rule, MaxBoxAcc/V2, PxAP: exact
    assert two["pxap"] == one["pxap"] and one["pxap"] is not None
    f1, f2 = np.load(tmp_path / "one.npz"), np.load(tmp_path / "two.npz")
    assert f1["X"].shape == (50, 96)
    np.testing.assert_array_equal(f2["X"], f1["X"])  # gathered in dataset order, bit for bit
    np.testing.assert_array_equal(f2["y"], f1["y"])
