"""camlib.models.train at speed: the step sampler, worker loading with per-sample seeds, SIGINT mid-step,
and data parallel over torchrun processes (gloo on CPU) through ``python -m camlib.finetune``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import TensorDataset

from camlib.models import SmallGAPNet
from camlib.models.train import StepSampler, TrainConfig, default_workers, fit, reads_files

REPO_ROOT = Path(__file__).resolve().parents[1]


def _jpeg_folder(root: Path, classes: int = 3, per_class: int = 8, size: int = 40, drop: int = 0) -> Path:
    """An ILSVRC-train-layout folder of small JPEGs (<root>/n0000000k/n0000000k_i.JPEG); ``drop`` removes
    the last images of the last class (uneven totals)."""
    rng = np.random.default_rng(0)
    for c in range(classes):
        d = root / f"n{c:08d}"
        d.mkdir(parents=True, exist_ok=True)
        for i in range(per_class - (drop if c == classes - 1 else 0)):
            img = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
            img[..., c % 3] = np.clip(img[..., c % 3].astype(int) + 90, 0, 255)
            Image.fromarray(img).save(d / f"n{c:08d}_{i}.JPEG", quality=90)
    return root


def _tiny(seed=0):
    torch.manual_seed(seed)
    return SmallGAPNet(3, channels=(4, 8), width=8)


def _weights(m):
    return {k: v.detach().clone() for k, v in m.state_dict().items()}


# --------------------------------------------------------------------------- the sampler


@pytest.mark.parametrize("world", [2, 3, 5])
def test_step_sampler_parts_are_the_one_process_batches(world):
    n, b = 23, 7  # 4 steps per epoch, the last global batch has 2 samples (< 3 and 5 processes)
    one = StepSampler(n, b, seed=3, start=0, stop=12)
    parts = [StepSampler(n, b, seed=3, start=0, stop=12, rank=r, world_size=world) for r in range(world)]
    batches = list(one)
    assert len(batches) == 12 and [len(x) for x in batches[:4]] == [7, 7, 7, 2]
    for step, batch in enumerate(batches):
        assert [it for p in parts for it in p.indices(step).tolist()] == [i for i, _ in batch]
        assert one.global_size(step) == len(batch)
    for epoch in range(3):  # each epoch is a permutation, the epochs differ
        assert sorted(i for bt in batches[4 * epoch : 4 * epoch + 4] for i, _ in bt) == list(range(n))
    assert [i for i, _ in batches[0]] != [i for i, _ in batches[4]]
    # (index, per-sample seed) items: the seeds depend on (seed, epoch, index) only, the same in every part
    for step in range(12):
        got = [it for p in parts for it in list(StepSampler(n, b, 3, step, step + 1, p.rank, world))[0]]
        assert got == batches[step], step
    resumed = list(StepSampler(n, b, seed=3, start=5, stop=12))
    assert resumed == batches[5:]


# --------------------------------------------------------------------------- workers = main process


def test_workers_give_bitwise_the_serial_run_with_random_crops(tmp_path):
    from torchvision.datasets import ImageFolder
    from torchvision.transforms import v2 as T

    root = _jpeg_folder(tmp_path / "train")
    tf = T.Compose([T.ToImage(), T.RandomResizedCrop(24, antialias=True), T.RandomHorizontalFlip(),
                    T.ToDtype(torch.float32, scale=True)])  # fmt: skip
    ds = ImageFolder(str(root), transform=tf)
    assert reads_files(ds) and default_workers(ds) >= 1
    assert (
        not reads_files(TensorDataset(torch.zeros(2, 3)))
        and default_workers(TensorDataset(torch.zeros(2))) == 0
    )
    cfg = TrainConfig(epochs=2, batch_size=5, lr=0.05, seed=11)  # 24 images: 5 steps/epoch, last batch 4
    runs = {}
    for workers in (0, 2):
        m = _tiny()
        st = fit(m, ds, cfg, augment=None, num_workers=workers, progress=False)
        assert st.finished and st.step == 10 and st.samples == 48
        runs[workers] = _weights(m)
    for k in runs[0]:
        assert torch.equal(runs[0][k], runs[2][k]), k
    # and the crops are random (per sample and epoch): another seed gives other weights
    m = _tiny()
    fit(
        m,
        ds,
        TrainConfig(epochs=2, batch_size=5, lr=0.05, seed=12),
        augment=None,
        num_workers=0,
        progress=False,
    )
    assert not all(torch.equal(runs[0][k], v) for k, v in _weights(m).items())


# --------------------------------------------------------------------------- Ctrl-C in the middle of a step


def _data(n=40):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, 3, 16, 16, generator=g)
    y = torch.randint(0, 3, (n,), generator=g)
    x[y == 1, 0] += 1.0
    return TensorDataset(x, y)


def test_sigint_in_the_middle_of_a_step_saves_the_step_boundary_and_resumes_exactly(tmp_path):
    from torch.optim.optimizer import register_optimizer_step_post_hook

    ds, cfg = _data(), TrainConfig(epochs=3, batch_size=16, lr=0.05, lr_step_every=4, seed=5)
    ref = _tiny()
    fit(ref, ds, cfg, progress=False)
    calls = {"n": 0}

    def ctrl_c_after_update(
        optimizer, args, kwargs
    ):  # the weights of step 4 are written, its bookkeeping is not
        calls["n"] += 1
        if calls["n"] == 4:
            os.kill(os.getpid(), signal.SIGINT)

    handle = register_optimizer_step_post_hook(ctrl_c_after_update)
    ck = tmp_path / "ck.pt"
    # Python's own Ctrl-C handler, as in a terminal (a pytest-xdist worker starts with SIGINT ignored)
    outer = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            fit(_tiny(), ds, cfg, checkpoint=ck, progress=False)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # fit put the handler back
    finally:
        handle.remove()
        signal.signal(signal.SIGINT, outer)
    saved = torch.load(ck, weights_only=True)
    assert saved["step"] == 4  # the step that was running when Ctrl-C came, completed and counted
    m = _tiny(seed=9)
    st = fit(m, ds, cfg, checkpoint=ck, progress=False)
    assert st.resumed_from == 4 and st.finished and st.step == 9
    for k, v in _weights(ref).items():
        assert torch.equal(v, m.state_dict()[k]), k


def test_amp_is_a_no_op_on_cpu_and_bad_values_are_refused():
    ds, cfg = _data(16), TrainConfig(epochs=1, batch_size=8, seed=1)
    a, b = _tiny(), _tiny()
    fit(a, ds, cfg, progress=False)
    fit(b, ds, cfg, progress=False, amp="bf16", channels_last=True)
    for k, v in _weights(a).items():
        torch.testing.assert_close(v, b.state_dict()[k].contiguous())
    with pytest.raises(ValueError, match="amp must be"):
        fit(_tiny(), ds, cfg, progress=False, amp="fp8")
    with pytest.raises(RuntimeError, match="torchrun"):
        fit(_tiny(), ds, cfg, progress=False, distributed=True)


# --------------------------------------------------------------------------- torchrun: 2 processes = 1 process


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{' '.join(cmd)}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def _finetune(tmp_path: Path, ckpt: str, procs: int, *extra: str) -> None:
    # 22 images in global batches of 7: 4 steps per epoch, the 4th holds ONE image (rank 1 gets none)
    common = ["-m", "camlib.finetune", "--train", str(tmp_path / "train"), "--arch", "alexnet_gap",
              "--weights", "none", "--expect-classes", "3", "--image-size", "48", "--iters", "7",
              "--batch-size", "7", "--lr", "0.05", "--checkpoint-every", "100", "--threads", "1",
              "--device", "cpu", "--no-progress", "--checkpoint", ckpt, *extra]  # fmt: skip
    if procs == 1:
        _run([sys.executable, *common], tmp_path)
    else:
        _run([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={procs}", *common],
             tmp_path)  # fmt: skip


def _model_of(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


@pytest.mark.slow
def test_two_torchrun_processes_train_the_one_process_weights_and_resume(tmp_path):
    _jpeg_folder(tmp_path / "train", classes=3, per_class=8, drop=2)
    _finetune(tmp_path, "one.pt", 1, "--workers", "0", "--out", "one.json")
    _finetune(tmp_path, "two.pt", 2, "--workers", "1", "--out", "two.json")
    _finetune(tmp_path, "cut.pt", 2, "--workers", "0", "--stop-after", "3")
    cut = _model_of(tmp_path / "cut.pt")
    assert cut["step"] == 3
    _finetune(tmp_path, "cut.pt", 2, "--workers", "0")  # the same command again: resumes under DDP
    one, two, resumed = (_model_of(tmp_path / f) for f in ("one.pt", "two.pt", "cut.pt"))
    assert one["step"] == two["step"] == resumed["step"] == 7
    import json

    s1, s2 = (json.loads((tmp_path / f).read_text()) for f in ("one.json", "two.json"))
    assert (s1["world_size"], s2["world_size"], s2["backend"]) == (1, 2, "gloo")
    assert s1["n_images"] == 22 and s2["steps"] == 7
    for k, v in one["model"].items():
        torch.testing.assert_close(two["model"][k], v, rtol=1e-4, atol=1e-5, msg=f"2 processes vs 1: {k}")
        torch.testing.assert_close(resumed["model"][k], v, rtol=1e-4, atol=1e-5, msg=f"resumed vs 1: {k}")
    moved = max(float((one["model"][k] - v).abs().max()) for k, v in cut["model"].items())
    off = max(float((two["model"][k] - v).abs().max()) for k, v in one["model"].items())
    assert moved > 1e-4 and off < moved / 1000, (
        moved,
        off,
    )  # steps 4-7 moved the weights far more than 2 vs 1 differ
    for h1, h2 in zip(s1["history"], s2["history"], strict=True):  # the same losses, merged over processes
        assert h1["loss"] == pytest.approx(h2["loss"], rel=1e-4) and h1["train_acc"] == h2["train_acc"]


def test_finetune_command_says_where_the_data_goes(tmp_path, capsys):
    from camlib.tools.finetune import main

    with pytest.raises(FileNotFoundError, match="WordNet id"):
        main(
            ["--train", str(tmp_path / "missing"), "--checkpoint", str(tmp_path / "c.pt"), "--device", "cpu"]
        )
