"""The section 4.2 protocols of camlib.paper.discovery_study (one function per study for both profiles)
and the CAM pass they run on: hand cases with known answers and a tiny network where a bright patch is
the pattern to find."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.metrics import average_precision_score
from torch import nn

from camlib.core.cam import CAM, HeadSpec
from camlib.core.features import extract_features
from camlib.core.probe import fit_linear_svm
from camlib.datasets.scenes import SunImage
from camlib.datasets.text import SVTImage
from camlib.paper import discovery as D
from camlib.paper import discovery_study as DS

SVM = dict(Cs=(0.1, 1.0), cv=2, seed=0)


class _Net(nn.Module):
    """conv -> BN -> ReLU -> GAP -> dropout -> fc; conv channel k < 3 passes input channel k through,
    channel 3 is silent (a feature without variance)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        with torch.no_grad():
            self.conv.weight.zero_()
            self.conv.bias.zero_()
            for k in range(3):
                self.conv.weight[k, k, 1, 1] = 1.0
        self.bn = nn.BatchNorm2d(4)
        self.drop = nn.Dropout(0.5)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(self.drop(self.bn(self.conv(x)).relu().mean((2, 3))))


HEAD = HeadSpec("bn", "fc", "avg", True)


def _patch_images(n: int, with_patch: np.ndarray, rng: np.random.Generator, size: int = 16, side: int = 4):
    """Black images with faint noise in red; where ``with_patch`` a bright red square at a random place
    -> (x, boxes (n, 4), -1 = none)."""
    x = torch.zeros(n, 3, size, size)
    x[:, 0] = torch.from_numpy(rng.normal(0, 0.05, (n, size, size)).astype(np.float32))
    boxes = np.full((n, 4), -1, np.int64)
    for i in np.flatnonzero(with_patch):
        x0, y0 = rng.integers(0, size - side, 2)
        x[i, 0, y0 : y0 + side, x0 : x0 + side] = 3.0
        boxes[i] = [x0, y0, x0 + side - 1, y0 + side - 1]
    return x, boxes


# --------------------------------------------------------------------------- the CAM pass


def test_probe_cams_leave_the_model_as_it_was_and_match_the_cam_core():
    net = _Net().train()  # dropout on, BN on batch statistics: probe_cams must switch both off, then restore
    x, _ = _patch_images(12, np.arange(12) % 2 == 0, np.random.default_rng(0))
    X, _ = extract_features(net.eval(), x, "bn", relu=True, progress=False)
    net.train()
    probe = fit_linear_svm(X, np.arange(12) % 3, Cs=(1.0,), cv=2)  # three classes: column-major SVM weights
    cams = D.CAMPass(net, HEAD, (16, 16), batch_size=5)
    scores, maps, pooled = cams(probe, x, None, features=True)
    assert net.training and net.drop.training and not net.bn._forward_hooks and not net.conv._forward_hooks
    assert np.allclose(pooled, X, atol=1e-5) and np.allclose(scores, probe.decision_function(X), atol=1e-4)
    # the same maps as the CAM core on a network whose own classifier IS the SVM
    W, b = probe.linear_weights()
    with torch.no_grad():
        net.fc.weight.copy_(torch.tensor(W))
        net.fc.bias.copy_(torch.tensor(b))
    out = CAM(net, "bn", "fc")(x)
    raw = out.maps[:, 0].numpy()
    top = raw.max((1, 2), keepdims=True)
    small = D.CAMPass(net, HEAD, (4, 4))(probe, x)[
        1
    ]  # the conv keeps 16 x 16, so upsampling is a no-op at 16
    assert np.array_equal(out.classes[:, 0].numpy(), scores.argmax(1))
    assert np.allclose(
        maps, np.where(top > 0, raw / np.where(top > 0, top, 1), 0), atol=1e-5
    ) and small.shape == (12, 4, 4)


def test_kept_feature_maps_give_the_same_scores_maps_and_features_as_the_network_pass():
    """feature_maps (one pass, stops after the layer) + cams_from_maps == probe_cams, which runs the network:
    the leave-one-out text detector of notebook 06 relies on it to pass each photo through Lite0 once."""
    net = _Net().eval()
    x, _ = _patch_images(11, np.arange(11) % 2 == 0, np.random.default_rng(1))
    X, _ = extract_features(net, x, "bn", relu=True, progress=False)
    probe = fit_linear_svm(X, np.arange(11) % 2, Cs=(1.0,), cv=2)
    cams = D.CAMPass(net, HEAD, (8, 8), batch_size=4)
    f, pooled = cams.feature_maps(x)
    assert f.shape == (11, 4, 16, 16) and np.allclose(pooled, X, atol=1e-6)
    ref = cams(probe, x, 1, features=True)
    kept = cams.from_maps(probe, f, 1, features=True)
    assert all(np.allclose(a, b, atol=1e-6) for a, b in zip(ref, kept, strict=True))
    sub = torch.as_tensor([1, 4, 7])  # a subset, as one fold tests: the same rows
    s_sub, m_sub = cams.from_maps(probe, f[sub], 1)
    assert np.allclose(s_sub, ref[0][sub.numpy()], atol=1e-6) and np.allclose(
        m_sub, ref[1][sub.numpy()], atol=1e-6
    )


# --------------------------------------------------------------------------- 1. informative objects


class _FakeCams:
    """Stands in for CAMPass: each image's map is given, its scores say the true class (or not)."""

    def __init__(self, maps, scores, size=(4, 4)):
        self.maps, self.scores, self.size, self.calls = maps, scores, size, []

    def __call__(self, probe, data, targets=None, features=False):
        idx = data.numpy().astype(int)[:, 0, 0, 0]
        self.calls.append(len(idx))
        return self.scores[idx], self.maps[idx]


def _scene_split(n: int, offset: int):
    """n images, class i % 2; object 0 fills the left half, object 1 the right half. Inputs carry the
    image number (offset + i) so the fake CAM pass knows which map to return."""
    labels = np.arange(n) % 2
    inst = np.ones((4, 4), np.int64)
    inst[:, 2:] = 2
    inputs = torch.arange(offset, offset + n, dtype=torch.float32)[:, None, None, None].expand(n, 3, 4, 4)
    split = DS.SceneSplit(
        inputs, labels, lambda i: (inst, np.array([0, 1])), lambda i: np.zeros((4, 4, 3), np.uint8)
    )
    return split


def test_informative_objects_hand_case_chooses_the_fraction_on_validation_only():
    n_val, n_test = 6, 8
    maps = np.zeros((n_val + n_test, 4, 4))
    for i in range(n_val + n_test):
        cls = i % 2
        maps[i, :, 2 * cls : 2 * cls + 2] = 1.0  # the own scene's object is hot ...
        maps[i, :, 2 - 2 * cls : 4 - 2 * cls] = (
            0.45  # ... the other one lukewarm: in the region only when t <= 0.45
        )
    scores = np.zeros((n_val + n_test, 2))
    scores[np.arange(n_val + n_test), np.arange(n_val + n_test) % 2] = 1.0
    scores[n_val, :] = [0.0, 2.0]  # one test image of class 0 misclassified
    truth = np.array([[1.0, -1.0], [-1.0, 1.0]])
    X, y = np.random.default_rng(0).normal(size=(10, 3)), np.arange(10) % 2
    cams = _FakeCams(maps, scores)
    res = DS.informative_objects(
        cams,
        X,
        y,
        _scene_split(n_test, n_val),
        truth,
        n_objects=2,
        svm=SVM,
        val=_scene_split(n_val, 0),
        fractions=(0.4, 0.5),
        k=1,
        class_names=["a", "b"],
        chunk=3,
        keep_maps=True,
    )
    assert res.fraction == 0.5 and res.val_spearman == pytest.approx(
        {0.4: 0.0, 0.5: 1.0}
    )  # t = 0.4: both objects, ties
    assert res.rank["cam"].tolist() == [[1.0, 0.0], [0.0, 1.0]] and res.rank["frequency"].tolist() == [
        [1, 1],
        [1, 1],
    ]
    assert res.scored["cam"]["precision_at_k"] == 100.0 and res.scored["frequency"]["spearman"] == 0.0
    assert res.accuracy == 100.0 * 7 / 8 and cams.calls == [3, 3, 3, 3, 2]  # chunks of 3
    assert np.array_equal(res.maps, maps[n_val:])
    m = res.metrics(["a", "b"], ["left", "right"])
    assert m["top_objects_cam"]["a"][0] == ("left", 1.0) and m["n_val"] == 6 and m["chance_acc"] == 50.0
    # both objects are in every image of both scenes: the tf-idf baseline scores them 0, and says so in the results
    assert res.rank["tfidf"].tolist() == [[0.0, 0.0], [0.0, 0.0]] and m["tfidf_ranking"]["spearman"] == 0.0
    assert "tf-idf" in res.measured() and "tf-idf:" in res.summary(["a", "b"], ["left", "right"])
    assert res.ranking_at(_scene_split(n_test, n_val), 2, fraction=0.4, min_cover=0.5)["cam"].tolist() == [
        [1, 1],
        [1, 1],
    ]
    assert "t = 0.5" in res.summary(["a", "b"], ["left", "right"]) and "Measured" in res.measured()
    # one fraction: used as given, no validation needed; several without validation: refused
    fixed = DS.informative_objects(
        _FakeCams(maps, scores),
        X,
        y,
        _scene_split(n_test, n_val),
        truth,
        n_objects=2,
        svm=SVM,
        fractions=(0.4,),
        k=1,
    )
    assert (
        fixed.fraction == 0.4
        and fixed.val_spearman == {}
        and "n_val" not in fixed.metrics(["a", "b"], ["l", "r"])
    )
    with pytest.raises(ValueError, match="validation"):
        DS.informative_objects(
            cams, X, y, _scene_split(n_test, n_val), truth, n_objects=2, svm=SVM, fractions=(0.4, 0.5)
        )


def test_sun_scenes_rasterize_at_the_input_size_and_fig9_rows(tmp_path):
    paths = []
    for i, (w, h) in enumerate([(40, 20), (20, 20)]):
        paths.append(tmp_path / f"im{i}.png")
        Image.new("RGB", (w, h)).save(paths[-1])
    square = np.array([[0, 0], [19, 0], [19, 9], [0, 9]], float)  # x 0..19, y 0..9: a quarter of image 0
    sun = [
        SunImage(paths[0], "dining_room", None, [("table", square)]),
        SunImage(paths[1], "kitchen", (20, 20), [("table", square), ("lamp", square)]),
    ]
    files = D.ImageFiles(paths, 8, labels=[0, 1])
    split = DS.sun_scenes(sun, files, [1, 0], ["table", "wall"], 8)
    assert split.labels.tolist() == [1, 0] and len(split) == 2 and split.image(1).shape == (8, 8, 3)
    inst, types = split.objects(1)  # image 0: 40 x 20 (from the file header) -> 8 x 8
    assert (
        types.tolist() == [0] and inst.shape == (8, 8) and (inst[:4, :4] == 1).all() and (inst[4:] == 0).all()
    )
    assert split.objects(0)[1].tolist() == [0, -1]  # "lamp" is outside the vocabulary
    with pytest.raises(ValueError, match="same list"):
        DS.sun_scenes(sun[:1], files, [0], ["table"], 8)
    res = DS.InformativeObjects(
        None, 0.0, 0.5, {}, 0.5, {"cam": np.array([[0.96, 0.1], [0.0, 0.0]])}, {}, 1, None, 1
    )
    rows = DS.fig9_comparisons(res, ["dining_room", "kitchen"], ["table", "wall"], "tiny")
    assert [(r["paper_ref"], r["reproduced"]) for r in rows] == [("fig9.dining_room.table", 96.0)]
    assert DS.fig9_comparisons(res, ["kitchen", "bath"], ["table"], "tiny") == []


# --------------------------------------------------------------------------- 2. concepts


def test_concept_localization_points_at_the_patch_and_beats_the_centre():
    rng = np.random.default_rng(0)
    net = _Net().eval()
    n_tr, n_te = 120, 60
    caps = [("a mirror in lake by a tree" if i % 3 == 0 else "a dog on grass") for i in range(n_tr + n_te)]
    has = np.array([c.startswith("a mirror") for c in caps])
    x, boxes = _patch_images(n_tr + n_te, has, rng)
    X = extract_features(net, x[:n_tr], "bn", relu=True, progress=False)[0]
    confusers = {"mirror in lake": np.zeros(n_te, bool)}
    confusers["mirror in lake"][1::3] = True  # some negatives named confusers (here: plain negatives)
    test = DS.CaptionSplit(
        x[n_tr:],
        caps[n_tr:],
        lambda i: np.zeros((16, 16, 3), np.uint8),
        {"mirror in lake": boxes[n_tr:]},
        confusers,
    )
    cams = D.CAMPass(net, HEAD, (16, 16), batch_size=16)
    res = DS.concept_localization(
        cams,
        X,
        caps[:n_tr],
        test,
        ["mirror in lake", "lonely owl"],
        svm=SVM,
        seed=0,
        negatives_per_positive=0.5,
        added_per_positive=0.25,
        rounds=2,
        chunk=25,
        keep_maps=True,
    )
    assert list(res.detectors) == ["mirror in lake"] and "lonely owl" in res.skipped
    row = res.rows["mirror in lake"]
    assert row["n_test_pos"] == 20 and row["n_test_neg"] == 40 and row["n_test_confusers"] == 20
    assert row["mined"]["pointing_acc"] >= 90.0 > row["centre_point_acc"]
    assert row["mined"]["ap"] >= 95.0 and row["mined"]["confuser_false_positive_rate"] <= 10.0
    # AP of the CAM pass's decision values == AP of the SVM on the test GAP features
    d = res.detectors["mirror in lake"]
    X_te = extract_features(net, x[n_tr:], "bn", relu=True, progress=False)[0]
    assert np.allclose(res.features, X_te, atol=1e-5)
    assert np.allclose(res.score("mirror in lake"), d.mined.probe.decision_function(X_te), atol=1e-4)
    pos = np.flatnonzero(has[n_tr:])
    ap = 100 * average_precision_score(has[n_tr:], d.mined.probe.decision_function(X_te))
    assert row["mined"]["ap"] == pytest.approx(ap, abs=1e-6)
    assert len(d.random_negatives) == len(d.mined.negatives) and d.confusers is None
    assert res.maps.shape == (n_te, 2, 16, 16) and np.array_equal(
        res.peaks[pos, 0], D.cam_peaks(res.maps[pos, 0])
    )
    m = res.metrics()
    assert set(m) == {
        "per_phrase",
        "mean_ap",
        "mean_pointing_acc",
        "mean_confuser_false_positive_rate",
        "n_train",
        "n_test",
    }
    assert m["per_phrase"]["mirror in lake"]["n_train_pos"] == 40 and "Measured" in res.measured()
    # without concept boxes / confusers (the paper's caption folders): AP only
    bare = DS.CaptionSplit(x[n_tr:], caps[n_tr:], lambda i: np.zeros((16, 16, 3), np.uint8))
    res2 = DS.concept_localization(
        cams,
        X,
        caps[:n_tr],
        bare,
        ["mirror in lake"],
        svm=SVM,
        seed=0,
        negatives_per_positive=0.5,
        added_per_positive=0.25,
        rounds=2,
    )
    assert (
        set(res2.rows["mirror in lake"]["mined"]) == {"ap"}
        and res2.rows["mirror in lake"]["mined"]["ap"] == row["mined"]["ap"]
    )
    assert res2.maps is None and set(res2.metrics()) == {"per_phrase", "mean_ap", "n_train", "n_test"}


def test_train_concept_detectors_sizes_and_confuser_counts():
    rng = np.random.default_rng(1)
    caps = ["a view out of window"] * 20 + ["a cat"] * 60
    X = rng.normal(size=(80, 5)).astype(np.float32)
    X[:20, 0] += 3.0
    conf = np.zeros(80, bool)
    conf[20:30] = True
    det = DS.train_concept_detectors(
        X,
        caps,
        ["view out of window"],
        svm=SVM,
        seed=0,
        negatives_per_positive=0.5,
        added_per_positive=0.25,
        rounds=1,
        confusers={"view out of window": conf},
    )
    d = det["view out of window"]
    assert d.mined.history[0]["n_negatives"] == 10 and d.mined.history[0]["added"] <= 5
    assert set(d.pool.tolist()) == set(range(20, 80)) and d.positives.tolist() == list(range(20))
    assert d.confusers == {
        "mined": int(conf[d.pool[d.mined.negatives]].sum()),
        "random": int(conf[d.random_negatives].sum()),
    }


# --------------------------------------------------------------------------- 3. text


def test_text_detector_finds_the_patch_and_reports_every_score():
    rng = np.random.default_rng(2)
    net = _Net().eval()
    splits = {}
    for name, n in (("train", 80), ("val", 30), ("test", 40)):
        labels = np.arange(n) % 2
        x, boxes = _patch_images(n, labels == 1, rng)
        splits[name] = DS.TextSplit(
            x, labels, [b[None] for b in boxes], lambda i: np.zeros((16, 16, 3), np.uint8)
        )
    X = extract_features(net, splits["train"].inputs, "bn", relu=True, progress=False)[0]
    cams = D.CAMPass(net, HEAD, (16, 16))
    res = DS.text_detector(
        cams,
        X,
        splits["train"].labels,
        splits["train"].boxes,
        splits["val"],
        splits["test"],
        svm=SVM,
        fractions=(0.3, 0.5, 0.7),
    )
    assert res.fraction in (0.3, 0.5, 0.7) and res.val_f1[res.fraction] == max(res.val_f1.values())
    assert res.accuracy >= 90.0 and res.centre_wh == (4.0, 4.0)
    assert set(res.detections) == {
        "cam_boxes",
        "cam_boxes_paper_fraction_0.2",
        "cam_boxes_iou_0.3",
        "centre_box",
    }
    assert res.detections["cam_boxes"]["recall"] > res.detections["centre_box"]["recall"]
    assert res.detections["cam_boxes_iou_0.3"]["tp"] >= res.detections["cam_boxes"]["tp"]
    assert res.metrics()["n_train"] == 80 and res.metrics()["box_fraction_val_f1"].keys() == {
        "0.3",
        "0.5",
        "0.7",
    }
    sub = splits["test"].subset([3, 1])
    assert sub.labels.tolist() == [1, 1] and np.array_equal(sub.boxes[0], splits["test"].boxes[3])
    with pytest.raises(ValueError, match="no true text box"):
        DS.text_detector(
            cams, X, splits["train"].labels, [np.full((1, 4), -1)], splits["val"], splits["test"], svm=SVM
        )


def test_svt_text_scales_word_boxes_with_floor_and_checks_the_order(tmp_path):
    paths = []
    for name, (w, h) in (("svt.png", (40, 20)), ("neg.png", (10, 10))):
        paths.append(tmp_path / name)
        Image.new("RGB", (w, h)).save(paths[-1])
    svt = [SVTImage(paths[0], None, np.array([[5, 3, 24, 9]]), ["OPEN"])]
    split = DS.svt_text(D.ImageFiles(paths, 16, labels=[1, 0]), svt, 16)
    assert split.boxes[0].tolist() == [[2, 2, 9, 7]] and split.boxes[1].shape == (
        0,
        4,
    )  # floor(x*16/40), floor(y*16/20)
    assert split.labels.tolist() == [1, 0]
    with pytest.raises(ValueError, match="SVT images first"):
        DS.svt_text(D.ImageFiles(paths[::-1], 16, labels=[0, 1]), svt, 16)
