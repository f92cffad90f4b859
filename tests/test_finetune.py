"""camlib.paper.gap_vs_gmp: the recipe on fit (exact resume, 10x head lr), augmentation, ILSVRC folders, and the
GAP-vs-GMP helpers (threshold chosen on val, summaries, the verdict sentence)."""

from __future__ import annotations

import math
import shutil

import numpy as np
import papermill as pm
import pytest
import torch
from PIL import Image

from camlib.datasets import ProceduralShapes
from camlib.models import SmallGAPNet, alexnet_gap
from camlib.models.train import TrainConfig
from camlib.paper.gap_vs_gmp import (
    PadCropFlip,
    best_fraction,
    cam_extent,
    evaluate_ilsvrc,
    finetune,
    gt_cams,
    ilsvrc_train_folder,
    paper_comparisons,
    paper_config,
    pooling_verdict,
    quick_comparisons,
    summarize_runs,
    train_pooling_run,
)
from camlib.tools.results import write_results

from .conftest import REPO, run_notebook


@pytest.fixture(scope="module")
def shapes():
    return ProceduralShapes(24, seed=0, size=32)


def _model(seed=0, pool="avg"):
    torch.manual_seed(seed)
    m = SmallGAPNet(6, pool=pool, channels=(8, 8), width=16)
    m.head_prefixes = ("cam_conv", "fc")
    return m


# 24 images, batch 8 -> 3 steps per epoch; 3 epochs = 9 steps; decay after 4; head at 10x
CFG = TrainConfig(epochs=3, batch_size=8, lr=0.01, lr_step_every=4, head_lr_mult=10.0, seed=7)


def test_resume_after_interrupt_equals_uninterrupted(shapes, tmp_path):
    ref = _model()
    s_ref = finetune(ref, shapes, CFG, augment=PadCropFlip(2), progress=False)
    assert s_ref.finished and s_ref.step == 9
    ck = tmp_path / "gap.pt"
    m = _model()
    s1 = finetune(m, shapes, CFG, checkpoint=ck, augment=PadCropFlip(2), stop_after=4, progress=False)
    assert not s1.finished and s1.step == 4 and ck.exists()  # stopped mid-epoch 2
    saved = torch.load(ck, weights_only=True)
    lrs = sorted(g["lr"] for g in saved["optimizer"]["param_groups"])
    assert lrs == pytest.approx([0.01, 0.1])  # backbone lr and the head at 10x (before the decay)
    m2 = _model(seed=99)  # as a fresh process: every bit of state must come from the checkpoint
    s2 = finetune(m2, shapes, CFG, checkpoint=ck, augment=PadCropFlip(2), progress=False)
    assert s2.finished and s2.resumed_from == 4 and s2.step == 9
    for (k, a), b in zip(ref.state_dict().items(), m2.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, msg=f"{k} differs after resume")
    # and the run really learned something different from its start (the test can fail)
    assert not torch.equal(_model().fc.weight, m2.fc.weight)


def test_finetune_needs_head_layers_for_a_head_lr(shapes):
    m = SmallGAPNet(6, channels=(8, 8), width=16)  # no head_prefixes attribute
    with pytest.raises(ValueError, match="head_prefixes"):
        finetune(m, shapes, CFG, progress=False)
    finetune(m, shapes, CFG, head_prefixes=("fc",), stop_after=1, progress=False)


def test_pad_crop_flip_is_a_shifted_window_and_seeded():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8)
    aug = PadCropFlip(pad=2, flip=False, mode="constant")
    torch.manual_seed(0)
    y = aug(x)
    torch.manual_seed(0)
    assert torch.equal(y, aug(x))  # same seed, same crops (what fit's exact resume relies on)
    assert y.shape == x.shape
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(2):  # each output is some 8x8 window of the padded image
        windows = [padded[i, :, a : a + 8, b : b + 8] for a in range(5) for b in range(5)]
        assert any(torch.equal(y[i], w) for w in windows)
    assert torch.equal(PadCropFlip(pad=0, flip=False)(x), x)
    torch.manual_seed(1)
    flipped = PadCropFlip(pad=0, flip=True)(x.repeat(8, 1, 1, 1))
    kinds = {
        ("same" if torch.equal(f, x[i % 2]) else "mirror" if torch.equal(f, x[i % 2].flip(-1)) else "?")
        for i, f in enumerate(flipped)
    }
    assert kinds == {"same", "mirror"}


def test_paper_config_follows_the_released_schedule():
    full = paper_config(1_281_167)
    assert (full.lr, full.momentum, full.weight_decay, full.batch_size) == (1e-3, 0.9, 5e-4, 64)
    assert full.max_iters == 160_000 and full.lr_step_every == 40_000 and full.head_lr_mult == 10.0
    assert full.epochs * math.ceil(1_281_167 / 64) >= 160_000
    small = paper_config(1000, iters=100, batch_size=10)
    assert small.lr_step_every == 25 and small.epochs == 1 and small.max_iters == 100


def _image(path, size=(40, 30), colour=(200, 30, 30)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)


def test_ilsvrc_train_folder_errors_say_where_to_put_data(tmp_path):
    with pytest.raises(FileNotFoundError, match="n01440764"):
        ilsvrc_train_folder(None)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ilsvrc_train_folder(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no class sub-folders"):
        ilsvrc_train_folder(tmp_path / "empty")
    for wnid in ("n02", "n01"):
        _image(tmp_path / "train" / wnid / f"{wnid}_1.JPEG")
    with pytest.raises(ValueError, match="2 class folders, expected 1000"):
        ilsvrc_train_folder(tmp_path / "train")
    ds = ilsvrc_train_folder(tmp_path / "train", expect_classes=2)
    assert ds.classes == ["n01", "n02"]  # sorted WordNet ids = torchvision's class order
    torch.manual_seed(0)
    x, y = ds[0]
    assert x.shape == (3, 224, 224) and x.dtype == torch.float32 and y == 0


def test_evaluate_ilsvrc_uses_the_localization_path(ilsvrc_sample):
    torch.manual_seed(0)
    model = alexnet_gap(num_classes=1000)
    out = evaluate_ilsvrc(model, ilsvrc_sample, limit=6, batch_size=3)
    assert out["n_images"] == 6
    assert out["classification"]["n"] == 6 and "top5_err" in out["classification"]
    loc = out["localization"][0.2]
    assert {"top1_loc_err", "top5_loc_err", "gt_known_loc_acc"} <= set(loc)
    assert out["head"]["feature_layer"] == "cam_conv"


def _fake_sweep(values: dict[float, float]) -> dict:
    return {"localization": {f: {"gt_known_loc_acc": v} for f, v in values.items()}}


def test_best_fraction_argmax_with_ties_to_the_smallest():
    assert best_fraction(_fake_sweep({0.3: 50.0, 0.1: 40.0, 0.2: 55.0})) == 0.2
    assert best_fraction(_fake_sweep({0.5: 60.0, 0.2: 60.0, 0.7: 10.0})) == 0.2


def _runs(values_avg, values_max, cls_avg, cls_max):
    mk = lambda locs, cls: [{"metrics": {"loc": a, "cls_acc": c}} for a, c in zip(locs, cls, strict=True)]  # noqa: E731
    return {"avg": summarize_runs(mk(values_avg, cls_avg)), "max": summarize_runs(mk(values_max, cls_max))}


def test_summaries_and_the_verdict_follow_the_numbers():
    s = summarize_runs([{"metrics": {"a": v}} for v in (1.0, 2.0, 6.0)])["a"]
    assert s["mean"] == pytest.approx(3.0) and s["std"] == pytest.approx(np.std([1, 2, 6], ddof=1))
    assert (s["min"], s["max"], s["values"]) == (1.0, 6.0, [1.0, 2.0, 6.0])
    agree = pooling_verdict(_runs([60, 62, 61], [40, 45, 42], [90, 91, 89], [91, 90, 92]), loc_key="loc")
    assert agree["loc_agrees"] and agree["cls_agrees"] and "agrees with the paper" in agree["sentence"]
    assert "61.0" in agree["sentence"] and "42.3" in agree["sentence"]
    against = pooling_verdict(_runs([40, 42, 41], [60, 61, 62], [80, 81, 79], [91, 90, 92]), loc_key="loc")
    assert not against["loc_agrees"] and not against["cls_agrees"] and "disagrees" in against["sentence"]
    noisy = pooling_verdict(_runs([50, 70, 60], [55, 58, 59], [90, 90, 90], [90, 90, 90]), loc_key="loc")
    assert not noisy["loc_agrees"] and "too weak" in noisy["sentence"]


def test_train_pooling_run_chooses_the_threshold_on_val(shapes):
    val = ProceduralShapes(12, seed=0, size=32, split="val")
    test = ProceduralShapes(12, seed=0, size=32, split="test")
    cfg = TrainConfig(epochs=1, batch_size=8, lr=0.01, seed=0)
    run = train_pooling_run(
        lambda: _model(pool="max"), shapes, val, test, cfg, fractions=(0.1, 0.4, 0.7), progress=False
    )
    m = run["metrics"]
    assert m["best_fraction"] == best_fraction(
        {"localization": {f: {"gt_known_loc_acc": v} for f, v in run["val_curve"].items()}}
    )
    assert m["val_gt_known_loc_acc@best"] == max(run["val_curve"].values())
    x = torch.as_tensor(np.asarray(test.images))
    x = x.permute(0, 3, 1, 2).float() / 255.0 if x.dtype == torch.uint8 else x.float()
    with torch.no_grad():
        right = run["model"].eval()(x).argmax(1).numpy() == np.asarray(test.labels)
    assert m["cls_acc"] == pytest.approx(100.0 * right.mean())  # the model's own top-1 accuracy on test
    # top-1 loc counts the test images whose top-1 class is right AND whose box (of that class's map, i.e. the
    # GT class's, the one GT-known loc boxes) hits: the images counted by both cls_acc and GT-known loc. So it
    # lies within Frechet's bounds of those two, and it is a whole number of the len(test) images.
    for at in ("0.2", "best"):
        top1, gt_known, cls = m[f"top1_loc_acc@{at}"], m[f"gt_known_loc_acc@{at}"], m["cls_acc"]
        assert max(0.0, cls + gt_known - 100) - 1e-9 <= top1 <= min(cls, gt_known) + 1e-9, (
            at,
            top1,
            gt_known,
            cls,
        )
        assert top1 * len(test) / 100 == pytest.approx(round(top1 * len(test) / 100)), (at, top1)
    maps = gt_cams(run["model"], test.images[:3], test.labels[:3])
    assert maps.shape == (3, 32, 32) and np.nanmax(maps) <= 1.0 + 1e-6
    ext = cam_extent(run["model"], test, 0.2)
    # the same three means counted image by image here (was: bounds 0..100 that any number passes)
    from camlib.core.boxes import paper_box

    all_maps = gt_cams(run["model"], test.images, test.labels)
    cover, on_obj, ratio = [], [], []
    for m, mask, box in zip(all_maps, np.asarray(test.masks, bool), np.asarray(test.boxes), strict=True):
        peak = np.nanmax(m)  # a map whose max is <= 0 is all zeros after "max" normalisation: no region
        region = {(y, x) for y, x in zip(*np.nonzero(m >= 0.2 * peak), strict=True)} if peak > 0 else set()
        obj = {(y, x) for y, x in zip(*np.nonzero(mask), strict=True)}
        cover.append(len(region & obj) / max(len(obj), 1))
        on_obj.append(len(region & obj) / max(len(region), 1))
        b = paper_box(m, 0.2)
        area = lambda q: (q[2] - q[0] + 1) * (q[3] - q[1] + 1) if q[0] >= 0 else 0  # noqa: E731 - inclusive; NO_BOX 0
        ratio.append(area(b) / area(box.reshape(-1, 4)[0]))
    assert ext["mask_coverage"] == pytest.approx(100 * np.mean(cover))
    assert ext["region_on_object"] == pytest.approx(100 * np.mean(on_obj))
    assert ext["box_area_ratio"] == pytest.approx(100 * np.mean(ratio))
    # threshold 0 keeps every pixel whose map is >= 0: at least as much of the object as t = 0.2
    assert cam_extent(run["model"], test, 0.0)["mask_coverage"] >= ext["mask_coverage"]


def test_comparison_rows_name_paper_keys(tmp_path):
    summary = _runs([60, 61, 62], [50, 51, 52], [90, 90, 90], [91, 91, 91])
    for pool in ("avg", "max"):
        summary[pool]["top1_loc_acc@0.2"] = summary[pool]["loc"]
    rows = quick_comparisons(summary, "SmallGAPNet-{pool}, procedural")
    assert [r["paper_ref"] for r in rows] == [
        "table1.googlenet_gap.top1_err",
        "table2.googlenet_gap.top1_loc_err",
        "table1.googlenet_gmp.top1_err",
        "table2.googlenet_gmp.top1_loc_err",
    ]
    assert (
        rows[0]["reproduced"] == pytest.approx(10.0) and rows[0]["setting"] == "SmallGAPNet-GAP, procedural"
    )
    fake = {
        "paper_key": "googlenet_gmp",
        "steps": 5,
        "description": "GoogLeNet-GMP",
        "n_images": 3,
        "classification": {"top1_err": 40.0, "top5_err": 20.0},
        "localization": {"top1_loc_err": 60.0, "top5_loc_err": 50.0},
    }
    rows += paper_comparisons([fake, {**fake, "paper_key": None}])
    assert len(rows) == 8 and rows[-1]["paper_ref"] == "table2.googlenet_gmp.top5_loc_err"
    shutil.copy(REPO / "results" / "paper.yaml", tmp_path / "paper.yaml")
    write_results(
        "02_test",
        metrics={},
        profile="quick",
        parameters={},
        started=0.0,
        comparisons=rows,
        results_dir=tmp_path,
    )  # raises if a paper_ref is not a key of paper.yaml


def _run_notebook_02(tmp_path, **parameters):
    return run_notebook("02_gap_vs_gmp", tmp_path, CHECKPOINT_DIR=str(tmp_path / "ck"), **parameters)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_notebook_02_quick_profile_runs_headless(tmp_path):
    (tmp_path / "results").mkdir()
    shutil.copy(REPO / "results" / "paper.yaml", tmp_path / "results" / "paper.yaml")
    res = _run_notebook_02(tmp_path, N_TRAIN=64, EPOCHS=1, N_VAL=24, N_TEST=24, N_SEEDS=2, REAL_PHOTOS=False)
    q = res["metrics"]["quick"]
    assert res["profile"] == "quick" and len(q["GAP"]["cls_acc"]["values"]) == 2
    assert {"sentence", "loc_agrees", "cls_agrees"} <= set(q["verdict"]["chosen_threshold"])
    assert [c["paper_ref"] for c in res["comparisons"]][0] == "table1.googlenet_gap.top1_err"
    assert (tmp_path / "figures" / "02_threshold_sweep.png").is_file()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_notebook_02_paper_profile_on_a_fake_train_folder(tmp_path, ilsvrc_sample):
    """The paper profile's code path end to end: 1000 one-image class folders (links to the val sample's
    images) as the "train folder", a random-init AlexNet-GAP/-GMP fine-tuned 2 iterations, evaluated
    on the 100-image val sample. Numbers are meaningless; the path, checkpoints and rows are checked."""
    images = sorted((ilsvrc_sample / "images").glob("*.JPEG"))
    for i in range(1000):
        d = tmp_path / "train" / f"n{i:08d}"
        d.mkdir(parents=True)
        (d / f"n{i:08d}_1.JPEG").symlink_to(images[i % len(images)])
    res = _run_notebook_02(
        tmp_path,
        PROFILE="paper",
        ILSVRC_TRAIN=str(tmp_path / "train"),
        ILSVRC_VAL=str(ilsvrc_sample),
        PAPER_ARCHS=["alexnet_gap"],
        WEIGHTS=None,
        ITERS=2,
        PAPER_BATCH_SIZE=4,
        NUM_WORKERS=0,
        REAL_PHOTOS=False,
    )
    rows = res["metrics"]["paper"]
    assert [(r["arch"], r["pool"], r["steps"]) for r in rows] == [
        ("alexnet_gap", "avg", 2),
        ("alexnet_gap", "max", 2),
    ]
    assert rows[1]["head"]["pool"] == "max" and rows[0]["n_images"] == 100
    assert (tmp_path / "ck" / "alexnet_gap_max.pt").is_file()
    assert [c["paper_ref"] for c in res["comparisons"]] == [
        "table1.alexnet_gap.top1_err",
        "table1.alexnet_gap.top5_err",
        "table2.alexnet_gap.top1_loc_err",
        "table2.alexnet_gap.top5_loc_err",
    ]  # AlexNet-GMP has no row in the paper


@pytest.mark.slow
def test_notebook_02_paper_profile_without_data_says_where_to_put_it(tmp_path, monkeypatch, ilsvrc_sample):
    """The ILSVRC inputs are checked before Part A (real photos, found in ../shared when present), so the
    missing-data errors come in seconds even with REAL_PHOTOS left on."""
    monkeypatch.delenv("ILSVRC_ROOT", raising=False)
    monkeypatch.delenv("ILSVRC_TRAIN_ROOT", raising=False)
    with pytest.raises(pm.PapermillExecutionError, match="ILSVRC_VAL"):
        _run_notebook_02(tmp_path, PROFILE="paper")
    with pytest.raises(pm.PapermillExecutionError, match="holds no ILSVRC val annotations"):
        _run_notebook_02(tmp_path, PROFILE="paper", ILSVRC_VAL=str(tmp_path))
    with pytest.raises(pm.PapermillExecutionError, match="n01440764"):
        _run_notebook_02(tmp_path, PROFILE="paper", ILSVRC_VAL=str(ilsvrc_sample))


def test_pooling_study_and_its_sweep_figure(shapes):
    import matplotlib

    matplotlib.use("Agg")
    from camlib.paper.gap_vs_gmp import plot_threshold_sweep, pooling_study

    val = ProceduralShapes(8, seed=0, size=32, split="val")
    test = ProceduralShapes(8, seed=0, size=32, split="test")
    fractions = (0.2, 0.5)
    runs, options = pooling_study(shapes, val, test, seeds=[0], epochs=1, batch_size=8, lr=0.01, fractions=fractions,
                                  pad=2, width=8)  # fmt: skip
    assert [len(runs[p]) for p in ("avg", "max")] == [1, 1]
    assert runs["avg"][0]["head"].pool == "avg" and runs["max"][0]["head"].pool == "max"
    assert options["train"]["seed"] == "SEED + i" and "SmallGAPNet" in options["model"]
    assert set(runs["avg"][0]["val_curve"]) == {"0.2", "0.5"} and "mask_coverage" in runs["avg"][0]["extent"]
    fig = plot_threshold_sweep(runs, fractions)
    assert len(fig.axes[0].lines) >= 4  # two mean curves, one chosen threshold per run, the paper's line
