"""GAP vs GMP on real photos (camlib.paper.pooling_study): surgery, identical starts, the reader's split,
the threshold chosen on the other half, the verdict path; all on tiny fake data / random weights."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from camlib.core.cam import CAM
from camlib.datasets.targets import Target
from camlib.evaluation.stats import Estimate
from camlib.paper import pooling_study as ps


@pytest.fixture(scope="module")
def lite0():
    """EfficientNet-Lite0 with RANDOM weights (the architecture only)."""
    from efficientnet_lite_pytorch import EfficientNet

    torch.manual_seed(0)
    return EfficientNet.from_name("efficientnet-lite0").eval()


# --------------------------------------------------------------------------- surgery


@pytest.mark.parametrize("pool, tuned", [("avg", 0), ("max", 0), ("avg", 1), ("max", 1)])
def test_surgery_gives_14x14_maps_and_a_head_cam_accepts(lite0, pool, tuned):
    assert ps.stride16_end(lite0) == 10
    model = ps.build_cut_lite0(lite0, pool, width=16, tuned_blocks=tuned, seed=1)
    x = torch.randn(1, 3, 224, 224)
    cam = CAM(model)
    out = cam(x, targets=[3])
    assert cam.head.pool == pool and cam.head.fc_layer == "net.head.fc"
    assert out.maps.shape == (1, 1, 14, 14)
    # the trained part alone, on the cached input of the part before it, gives the same maps
    with torch.inference_mode():
        z = model.frozen(x)
    logits, maps = ps.class_maps_of(model.net, z, [3])
    assert z.shape[1:] == (112, 14, 14)  # the input of block 10 (tuned) or of the head (frozen)
    np.testing.assert_allclose(maps, out.maps[:, 0].numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(logits, out.logits.numpy(), rtol=1e-4, atol=1e-4)


def test_surgery_cuts_before_the_stride_32_block(lite0):
    model = ps.build_cut_lite0(lite0, "avg", width=8, tuned_blocks=3)
    assert (model.start, model.cut) == (8, 10)
    assert len(model.net.tuned) == 3 and len(model.frozen) == 1 + 8
    assert not any(p.requires_grad for p in model.frozen.parameters())
    model.train()
    assert not model.frozen.training and not model.net.tuned.training and model.net.head.training
    with pytest.raises(ValueError, match="tuned_blocks"):
        ps.build_cut_lite0(lite0, "avg", tuned_blocks=12)
    with pytest.raises(ValueError, match="pool"):
        ps.build_cut_lite0(lite0, "sum")


def test_identical_initial_weights_for_both_poolings_at_a_seed(lite0):
    a = ps.build_cut_lite0(lite0, "avg", width=8, tuned_blocks=1, seed=5).state_dict()
    b = ps.build_cut_lite0(lite0, "max", width=8, tuned_blocks=1, seed=5).state_dict()
    c = ps.build_cut_lite0(lite0, "avg", width=8, tuned_blocks=1, seed=6).state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["net.head.conv.weight"], c["net.head.conv.weight"])
    # the tuned block is the trunk's own, not re-initialised
    assert torch.equal(a["net.tuned.0._project_conv.weight"], lite0._blocks[10]._project_conv.weight)


def test_same_seed_same_samples_and_mirrors_whatever_the_pooling():
    """Two nets trained with the same config draw the same batches and mirrors (fit's seeded RNG)."""
    z = torch.randn(12, 4, 5, 5)
    zm = -z
    y = torch.arange(12) % 3
    seen = {}
    for pool in ("avg", "max"):
        net = ps.HeadNet(torch.nn.Sequential(), ps.PoolingHead(4, 6, 3, pool))
        batches = []
        orig_forward = net.forward

        def spy(x, orig_forward=orig_forward, batches=batches):
            batches.append(x.detach().clone())
            return orig_forward(x)

        net.forward = spy
        ps.train_head(net, z, y, ps._config(12, 2, 5, 0.01, seed=3), mirrored=zm)
        seen[pool] = batches
    assert len(seen["avg"]) == len(seen["max"]) == 6
    assert all(torch.equal(a, b) for a, b in zip(seen["avg"], seen["max"], strict=True))
    flat = torch.cat(seen["avg"])
    assert (flat.flatten(1)[:, 0] != 0).all()
    # some samples come mirrored, some not
    from_z = [any(torch.equal(r, zi) for zi in z) for r in flat]
    assert 0 < sum(from_z) < len(flat)


# --------------------------------------------------------------------------- the reader


def _fake_imagenette(root, size=(40, 30)):
    """2 classes; ILSVRC val files in train/ AND val/; one ILSVRC val file without wsol lines."""
    w, h = size
    files = {
        "train/n01440764": ["n01440764_1.JPEG", "n01440764_2.JPEG", "ILSVRC2012_val_00000001.JPEG"],
        "train/n03888257": ["n03888257_1.JPEG", "n03888257_2.JPEG"],
        "val/n01440764": ["n01440764_9.JPEG"],
        "val/n03888257": ["n03888257_9.JPEG", "ILSVRC2012_val_00000002.JPEG", "ILSVRC2012_val_00000003.JPEG"],
    }
    rng = np.random.default_rng(0)
    for d, names in files.items():
        (root / d).mkdir(parents=True)
        for n in names:
            Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(root / d / n)
    wsol = root / "wsol"
    wsol.mkdir()
    ids = ["train/ILSVRC2012_val_00000001.JPEG", "val/ILSVRC2012_val_00000002.JPEG"]
    (wsol / "image_ids.txt").write_text("\n".join(ids) + "\n")
    (wsol / "class_labels.txt").write_text(f"{ids[0]},0\n{ids[1]},701\n")
    (wsol / "image_sizes.txt").write_text(f"{ids[0]},400,300\n{ids[1]},200,100\n")  # width, height
    (wsol / "localization.txt").write_text(
        f"{ids[0]},100.0,30.0,299.0,269.0\n{ids[1]},0.0,0.0,99.0,49.0\n{ids[1]},100.0,50.0,199.0,99.0\n"
    )
    return root


def test_reader_keeps_every_ilsvrc_val_file_out_of_training_and_scales_boxes(tmp_path):
    items = ps.study_items(_fake_imagenette(tmp_path))
    names = [p.name for p in items.train_paths]
    assert len(names) == 6 and not any(n.startswith("ILSVRC2012_val_") for n in names)
    assert [p.name for p in items.test_paths] == [
        "ILSVRC2012_val_00000001.JPEG",
        "ILSVRC2012_val_00000002.JPEG",
    ]
    assert [p.name for p in items.unboxed] == ["ILSVRC2012_val_00000003.JPEG"]
    assert items.test_labels.tolist() == [0, 9] and items.test_labels_1000.tolist() == [0, 701]
    t0, t1 = items.test_targets
    assert t0.size == (30, 40)
    # x * 40 / 400, y * 30 / 300
    np.testing.assert_array_equal(t0.boxes, [[10, 3, 30, 27]])
    # x * 40 / 200, y * 30 / 100 (a squashed copy: per-axis factors differ)
    np.testing.assert_array_equal(t1.boxes, [[0, 0, 20, 15], [20, 15, 39, 29]])


def test_reader_errors_name_the_file_and_line(tmp_path):
    root = _fake_imagenette(tmp_path)
    (root / "wsol" / "image_sizes.txt").write_text("train/ILSVRC2012_val_00000001.JPEG,400\n")
    with pytest.raises(ValueError, match=r"image_sizes.txt:1"):
        ps.study_items(root)
    root2 = _fake_imagenette(tmp_path / "b")
    (root2 / "wsol" / "class_labels.txt").write_text(
        "train/ILSVRC2012_val_00000001.JPEG,5\nval/ILSVRC2012_val_00000002.JPEG,701\n"
    )
    with pytest.raises(ValueError, match="sits in"):
        ps.study_items(root2)


# --------------------------------------------------------------------------- measures


def _target(box, size=(20, 20)):
    return Target(0, np.array([box]), size, "x")


def test_localization_records_on_a_hand_made_map():
    m = np.zeros((1, 20, 20), np.float32)
    m[0, 5:10, 4:12] = 1.0  # at the map's resolution == image size: no resampling
    rec = ps.localization_records(m, np.array([True]), [_target((4, 5, 11, 9))], (0.2, 0.5))
    assert rec.iou[0].tolist() == [1.0, 1.0]
    assert rec.area_ratio[0] == pytest.approx(1.0) and rec.region_in_box[0] == pytest.approx(1.0)
    assert rec.gt_known(0.2).tolist() == [True] and rec.top1(0.2).tolist() == [True]
    rec2 = ps.localization_records(m, np.array([False]), [_target((0, 0, 3, 3))], (0.2,))
    assert rec2.gt_known().tolist() == [False] and rec2.region_in_box[0] == 0.0
    with pytest.raises(ValueError, match="0.2"):
        ps.localization_records(m, np.array([True]), [_target((4, 5, 11, 9))], (0.5,))
    # a box twice the GT box's area: log2 ratio +1; a missing box: -10 (1/1024)
    np.testing.assert_allclose(ps._log2(np.array([2.0, 1.0, 0.0])), [1.0, 0.0, -10.0])


def test_heldout_threshold_is_chosen_on_the_other_half():
    n = 10
    perm = np.random.default_rng(0).permutation(n)
    a, b = perm[:5], perm[5:]
    ious = np.zeros((n, 2))
    ious[a, 0] = 0.9  # half A localizes at fraction 0.1 only
    ious[b, 1] = 0.9  # half B at fraction 0.3 only
    rec = ps.LocRecords((0.1, 0.3), ious, np.ones(n, bool), np.ones(n), np.ones(n))
    hits, chosen = ps.heldout_threshold_hits(rec, seed=0)
    assert chosen == (0.1, 0.3)
    assert not hits.any()  # each half is scored at the OTHER half's choice, where it misses


# --------------------------------------------------------------------------- verdicts


def _run(pool, seed, hits, correct):
    n = len(hits)
    ious = np.repeat(np.where(hits, 0.8, 0.1)[:, None], 2, axis=1)
    rec = ps.LocRecords((0.1, 0.2), ious, np.asarray(correct, bool), np.ones(n), np.ones(n))
    held, chosen = ps.heldout_threshold_hits(rec)
    return ps.PoolingRun("s", pool, seed, 0.01, rec, held, chosen, [], 0.0)


@pytest.mark.parametrize(
    "gap_rate, gmp_rate, expected",
    [(0.9, 0.3, "agrees"), (0.3, 0.9, "reversed"), (0.5, 0.5, "not resolved")],
)
def test_verdict_path_on_hand_made_numbers(gap_rate, gmp_rate, expected):
    n = 200
    rng = np.random.default_rng(1)
    u = rng.random(n)
    correct = np.ones(n, bool)
    runs = [_run("avg", s, u < gap_rate, correct) for s in (0, 1)]
    runs += [
        _run("max", s, (u < gmp_rate) if gap_rate != gmp_rate else (u < gap_rate), correct) for s in (0, 1)
    ]
    out = ps.summarize_setup(runs, n_resamples=500)
    assert out["primary"] == ps.PRIMARY_METRIC
    assert out["verdict"] == expected
    assert out["per_metric"]["gt_known@0.2"] == expected
    assert out["per_metric"]["cls_acc"] == "not resolved" and out["cls_about_equal"]
    d = out["diff"]["top1_loc@0.2"]
    assert d["ci"]["value"] == pytest.approx(
        100 * (np.mean(u < gap_rate) - np.mean(u < gmp_rate)) if gap_rate != gmp_rate else 0.0
    )
    assert d["seeds"]["std"] == 0.0 and len(d["seeds"]["values"]) == 2
    assert out["per_pool"]["avg"]["top1_loc@0.2"]["mean"] == pytest.approx(100 * np.mean(u < gap_rate))
    json.dumps(out)


def test_setup_verdict_from_intervals_and_the_classification_tolerance():
    e = lambda lo, hi: Estimate((lo + hi) / 2, lo, hi, 500)  # noqa: E731
    out = ps.setup_verdict(
        {"top1_loc@0.2": e(-6.0, -1.0), "gt_known@0.2": e(0.5, 4.0), "cls_acc": e(-4.0, 1.0)}
    )
    assert out["verdict"] == "reversed"
    assert out["per_metric"] == {
        "top1_loc@0.2": "reversed",
        "gt_known@0.2": "agrees",
        "cls_acc": "not resolved",
    }
    assert not out["cls_about_equal"]  # -4 is beyond the 3-point tolerance
    assert ps.setup_verdict({"top1_loc@0.2": e(-1, 1), "cls_acc": e(-2, 2)})["cls_about_equal"]
    with pytest.raises(KeyError, match="primary"):
        ps.setup_verdict({"cls_acc": e(-1, 1)})


def test_summarize_refuses_unpaired_seeds():
    runs = [
        _run("avg", 0, np.ones(4, bool), np.ones(4, bool)),
        _run("max", 1, np.ones(4, bool), np.ones(4, bool)),
    ]
    with pytest.raises(ValueError, match="same seeds"):
        ps.summarize_setup(runs)


# --------------------------------------------------------------------------- features, end to end


def _small_preprocess(im):
    x = torch.as_tensor(np.array(im.resize((64, 64))), dtype=torch.float32).permute(2, 0, 1)
    return (x - 127.0) / 128.0


def test_trunk_features_cache_mirror_and_reference(lite0, tmp_path):
    root = _fake_imagenette(tmp_path / "data")
    items = ps.study_items(root)
    kw = {
        "preprocessing": "64x64 test",
        "dataset": "fake",
        "cache": tmp_path / "cache",
        "mirror": True,
        "reference_classes": items.test_labels_1000.tolist(),
    }
    arrays, hit = ps.cached_trunk_features(lite0, items.test_paths, [9, 10], _small_preprocess, **kw)
    assert not hit
    assert arrays["block10"].shape == (2, 112, 4, 4) and arrays["block10"].dtype == np.float16
    assert arrays["block9_mirror"].shape == (2, 112, 4, 4)
    assert arrays["ref_logits"].shape == (2, 1000) and arrays["ref_maps"].shape == (2, 2, 2)
    # the reference map is Lite0's own CAM: its mean + bias is the class's logit
    b = lite0._fc.bias.detach().numpy()[items.test_labels_1000]
    np.testing.assert_allclose(
        arrays["ref_maps"].mean((1, 2)) + b,
        arrays["ref_logits"][[0, 1], items.test_labels_1000],
        rtol=1e-3,
        atol=1e-3,
    )
    again, hit = ps.cached_trunk_features(lite0, items.test_paths, [9, 10], _small_preprocess, **kw)
    assert hit and np.array_equal(again["block10"], arrays["block10"])
    _, hit = ps.cached_trunk_features(
        lite0, items.test_paths[:1], [9, 10], _small_preprocess, **{**kw, "reference_classes": [0]}
    )
    assert not hit  # other files: another key


@pytest.mark.slow
def test_run_pooling_study_end_to_end_on_fake_data(tmp_path):
    """The whole path (real embedded weights, fake photos, a tiny budget): numbers, verdicts, figures."""
    import matplotlib.pyplot as plt

    root = _fake_imagenette(tmp_path / "data")
    budget = ps.StudyBudget(
        name="test",
        setups=(ps.SetupSpec("frozen", 0, 1, (0, 1)), ps.SetupSpec("tuned", 1, 1, (0,))),
        train_per_class=2,
        width=8,
        batch_size=4,
        lr_grid=(0.01,),
        lr_epochs=1,
        holdout_fraction=0.5,
        fractions=(0.1, 0.2),
        n_resamples=100,
    )
    study = ps.run_pooling_study(root, budget, cache=tmp_path / "cache")
    s = study.summary()
    json.dumps(s, allow_nan=False)
    assert s["n_test"] == 2 and s["n_train"] == 4
    assert set(s["setups"]) == {"frozen", "tuned"} and s["setups"]["frozen"]["seeds"] == [0, 1]
    assert s["setups"]["tuned"]["verdict"] in ("agrees", "reversed", "not resolved")
    assert s["lr_choice"]["avg"]["lr"] == 0.01
    assert s["cache_hits"] == {"test": False, "train": False}
    rows = ps.real_photo_comparisons(s)
    assert len(rows) == 8 and {r["paper_ref"] for r in rows} >= {"table2.googlenet_gap.top1_loc_err"}
    for fig in (
        ps.plot_pooling_maps(study, "tuned", [0, 1]),
        ps.plot_threshold_curves(s),
        ps.plot_paired_differences(s),
    ):
        assert isinstance(fig, plt.Figure)
        plt.close(fig)
    assert ps.run_pooling_study(root, budget, cache=tmp_path / "cache").cache_hits == {
        "test": True,
        "train": True,
    }


# --------------------------------------------------------------------------- sentences from the numbers


def test_curve_crossings_interpolates_sign_changes():
    curves = {
        "fractions": [0.1, 0.2, 0.3, 0.4],
        "avg": {"value": [0.5, 0.6, 0.4, 0.3]},
        "max": {"value": [0.6, 0.5, 0.4, 0.5]},
    }
    # d = -0.1, +0.1, 0, -0.2: crossings at 0.15 and at the zero 0.3
    np.testing.assert_allclose(ps.curve_crossings(curves), [0.15, 0.3])
    assert (
        ps.curve_crossings(
            {"fractions": [0.1, 0.2], "avg": {"value": [0.6, 0.7]}, "max": {"value": [0.5, 0.5]}}
        )
        == []
    )


def _hand_summary(primary_ci, cls_ci, gk_ci):
    def ci(v):
        return {"value": v[0], "low": v[1], "high": v[2]}

    diffs = {"top1_loc@0.2": ci(primary_ci), "cls_acc": ci(cls_ci), "gt_known@0.2": ci(gk_ci)}
    s = {
        "seeds": [0, 1],
        "n_test": 500,
        "lr": {"avg": 0.01, "max": 0.001},
        "per_pool": {p: {"cls_acc": {"mean": 80.0, "std": 1.0}} for p in ("avg", "max")},
        "diff": {m: {"ci": v} for m, v in diffs.items()},
        "curves": {"fractions": [0.1, 0.2], "avg": {"value": [0.5, 0.6]}, "max": {"value": [0.6, 0.5]}},
    }
    s.update(ps.setup_verdict(diffs))
    return {"setups": {"a": s}}


def test_setup_sentences_follow_the_numbers():
    holds = ps.setup_sentences(_hand_summary((5, 2, 8), (10, 7, 13), (-1, -3, 1)))["a"]
    assert "HOLDS" in holds[0] and "Caveat" in holds[1] and "GMP trained worse" in holds[1]
    assert "not resolved" in holds[2] and "cross at t = 0.15" in holds[3]
    rev = ps.setup_sentences(_hand_summary((-5, -8, -2), (1, -1, 2), (-4, -6, -2)))["a"]
    assert "REVERSED" in rev[0] and "about equal" in rev[1] and rev[2].endswith("-> reversed.")
    assert "NOT RESOLVED" in ps.setup_sentences(_hand_summary((1, -2, 4), (0, -1, 1), (1, -1, 3)))["a"][0]


# --------------------------------------------------------------------------- the learning-rate rule


def test_choose_lr_flags_a_rate_at_the_edge_of_its_grid():
    """A separable toy (class = sign of the mean input) learns at every rate of the grid; with ties the
    rule takes the smaller rate, the grid's smallest, which is flagged as at the edge."""
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 20)
    x = (rng.normal(size=(40, 4, 3, 3)) + np.where(y == 1, 3.0, -3.0)[:, None, None, None]).astype(np.float32)

    def make():
        torch.manual_seed(0)
        return ps.HeadNet(torch.nn.Sequential(), ps.PoolingHead(4, 4, 2, pool="avg"))

    out = ps.choose_lr(make, x, y, (0.01, 0.03), epochs=3, batch_size=8, holdout_fraction=0.25)
    assert set(out["grid"]) == {0.01, 0.03} and out["n_holdout"] == 10
    assert out["lr"] in (0.01, 0.03) and out["at_edge"] is True  # two rates: both are edges
    mid = ps.choose_lr(make, x, y, (0.0, 0.03, 1e9), epochs=3, batch_size=8, holdout_fraction=0.25)
    assert mid["lr"] == 0.03 and mid["at_edge"] is False  # lr 0 learns nothing, 1e9 diverges
