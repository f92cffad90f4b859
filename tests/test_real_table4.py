"""Table 4 on a CUB folder without boxes, Lite0's one-pass features + CAM boxes, Table 5 on a Caltech folder
(notebooks 04 and 05 on real photos), on tiny fixtures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from camlib.core import features as FT
from camlib.core import probe as PR
from camlib.core.cam import CAM
from camlib.datasets.caltech101 import open_caltech101
from camlib.datasets.cub import read_cub_metadata
from camlib.datasets.splits import cap_per_class
from camlib.models import SmallGAPNet
from camlib.paper import fine_grained as fg
from camlib.paper import generic_features as gf

SVM = dict(Cs=(0.1, 1.0), cv=3, seed=0)


def _square_image(path: Path, label: int, rng, size: int = 48) -> None:
    """Noise with one coloured square (its colour channel = the class) at a random place."""
    img = rng.integers(0, 80, (size, size, 3)).astype(np.uint8)
    x, y = rng.integers(0, size - 12, 2)
    img[y : y + 12, x : x + 12] = 0
    img[y : y + 12, x : x + 12, label] = 255
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path)


def _cub_without_boxes(folder: Path, n_train: int = 4, n_test: int = 3) -> Path:
    """A CUB folder as ../shared/data/cub-100 has it: 3 species (ids 5, 9, 17), the official text files,
    NO bounding_boxes.txt."""
    rng = np.random.default_rng(0)
    rows, image_id = [], 1
    for label, cid in enumerate((5, 9, 17)):
        for k in range(n_train + n_test):
            rel = f"{cid:03d}.S{cid}/img_{k}.jpg"
            _square_image(folder / "images" / rel, label, rng)
            rows.append((image_id, rel, cid, int(k < n_train)))
            image_id += 1
    (folder / "images.txt").write_text("".join(f"{i} {p}\n" for i, p, _, _ in rows))
    (folder / "image_class_labels.txt").write_text("".join(f"{i} {c}\n" for i, _, c, _ in rows))
    (folder / "train_test_split.txt").write_text("".join(f"{i} {t}\n" for i, _, _, t in rows))
    (folder / "classes.txt").write_text("5 005.S5\n9 009.S9\n17 017.S17\n")
    return folder


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return SmallGAPNet(3, channels=(8, 16), width=16).eval()


class _Spy:
    """Records every features call (split, setting, crop boxes given?) and what it returned."""

    def __init__(self, inner):
        self.inner, self.calls = inner, []

    def __call__(self, split, boxes, setting):
        X = self.inner(split, boxes, setting)
        self.calls.append((split.name, setting, boxes is not None, X))
        return X


def _table4(folder, net, tmp_path):
    pre = fg.lite0_transform(32)  # any whole-image transform; the network here is a small random GAP net
    train, test = fg.cub_splits(folder, pre)
    features = fg.NetworkCropFeatures(
        net, "small", pre, "32 px", FT.FeatureCache(tmp_path / "cache"), batch_size=8, progress=False
    )
    spy = _Spy(features)
    return fg.table4(train, test, spy, features.locate, svm=SVM, seed=0), spy, train, test


def test_cub_without_boxes_reports_the_gt_row_not_measurable(tmp_path, net):
    folder = _cub_without_boxes(tmp_path / "cub")
    assert not read_cub_metadata(folder).has_boxes
    result, _, train, test = _table4(folder, net, tmp_path)
    assert train.gt_boxes is None and test.gt_boxes is None and not result.has_gt
    assert (
        set(result.probes) == {"full", "cam_crop"}
        and result.loc_iou50 is None
        and result.ordering_holds is None
    )
    summary = result.summary()
    assert (
        summary["gt_crop"] == summary["loc_iou50"] == fg.NOT_MEASURABLE
        and "bounding_boxes.txt" in summary["no_boxes"]
    )
    v = result.verdicts()
    assert v["gt_crop_minus_cam_crop"]["verdict"] == v["loc_minus_random_box"]["verdict"] == "not measurable"
    assert v["cam_crop_minus_full"]["verdict"] in ("agrees", "reversed", "not resolved")
    ci = result.accuracy_ci()
    assert (
        ci["full"]["n"] == len(test) == 9 and ci["full"]["low"] <= ci["full"]["value"] <= ci["full"]["high"]
    )
    assert "NOT MEASURABLE" in result.sentence("on the fixture")
    rows = fg.table4_comparisons(result, "fixture")
    assert [r["paper_ref"] for r in rows] == [
        "table4.googlenet_gap_full.acc",
        "table4.googlenet_gap_cam_crop.acc",
    ]
    assert all(r["comparable"] is False and r["reproduced"]["n"] == 9 for r in rows)


def test_cam_crops_are_re_extracted_for_train_and_test(tmp_path, net):
    folder = _cub_without_boxes(tmp_path / "cub")
    result, spy, train, test = _table4(folder, net, tmp_path)
    seen = [(s, setting, cropped) for s, setting, cropped, _ in spy.calls]
    assert seen == [
        ("train", "full", False),
        ("test", "full", False),
        ("train", "cam_crop", True),
        ("test", "cam_crop", True),
    ]
    X = {(s, setting): x for s, setting, _, x in spy.calls}
    for split in ("train", "test"):
        assert X[(split, "full")].shape == X[(split, "cam_crop")].shape
        assert not np.allclose(X[(split, "full")], X[(split, "cam_crop")])  # the crops changed the features
    boxes = result.boxes["train"]
    assert boxes.shape == (len(train), 4) and (boxes[:, 2] <= 47).all() and (boxes[:, 0] >= 0).all()
    assert ((boxes[:, 2] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 1] + 1) < 48 * 48).any()  # real crops


def test_features_and_boxes_is_gap_features_plus_cam_boxes(net):
    x = torch.rand(5, 3, 32, 32)
    out = PR.features_and_boxes(net, x, sizes=(48, 40), fractions=(0.2, 0.5), progress=False)
    X, _ = FT.gap_features(net, x, progress=False)
    assert np.allclose(out["X"], X, atol=1e-5)
    boxes, classes = PR.cam_boxes_of(CAM(net), x, sizes=(48, 40), fractions=(0.2, 0.5), progress=False)
    assert np.array_equal(out["boxes@0.2"], boxes[0.2]) and np.array_equal(out["boxes@0.5"], boxes[0.5])
    assert np.array_equal(out["classes"], classes) and "y" not in out


def test_extract_layers_is_extract_features_per_layer(net):
    x = torch.rand(6, 3, 32, 32)
    names = [n for n, m in net.named_modules() if isinstance(m, torch.nn.Conv2d)][-2:]
    X, y = FT.extract_layers(net, x, names, batch_size=4, progress=False)
    assert y is None
    for n in names:
        assert np.allclose(X[n], FT.extract_features(net, x, n, progress=False)[0], atol=1e-6)
    flat, _ = FT.extract_layers(net, x, names[:1], flatten=names[:1], progress=False)
    with FT.capture(net, names[0]) as out:
        net(x)
    assert np.allclose(flat[names[0]], out[names[0]].flatten(1).detach().numpy(), atol=1e-6)


def test_capped_cub_subset_is_per_class_and_seeded(tmp_path):
    meta = read_cub_metadata(_cub_without_boxes(tmp_path / "cub", n_train=5, n_test=4))
    a, b, c = meta.capped(2, 1, seed=3), meta.capped(2, 1, seed=3), meta.capped(2, 1, seed=4)
    assert np.array_equal(a.image_ids, b.image_ids) and not np.array_equal(a.image_ids, c.image_ids)
    assert (
        np.bincount(a.labels[a.is_train]).tolist() == [2, 2, 2]
        and np.bincount(a.labels[~a.is_train]).tolist() == [1] * 3
    )
    assert len(meta.capped(None, None).labels) == len(meta.labels)
    assert np.array_equal(cap_per_class([0, 0, 1], None), [0, 1, 2])
    with pytest.raises(ValueError, match="at least 1"):
        cap_per_class([0, 1], 0)


def test_per_class_weights_give_the_mean_per_class_accuracy():
    labels = np.array([0, 0, 0, 0, 1, 2, 2])
    hits = np.array([1, 1, 0, 0, 1, 0, 1], float)
    per_class = np.mean([0.5, 1.0, 0.5])
    assert np.isclose(np.mean(hits * gf.per_class_weights(labels)), per_class)


def _caltech(root: Path, per_class: int = 34) -> Path:
    rng = np.random.default_rng(1)
    for label, c in enumerate(("BACKGROUND_Google", "ant", "bee")):
        for i in range(per_class):
            _square_image(root / "101_ObjectCategories" / c / f"image_{i + 1:04d}.jpg", label, rng, size=40)
    return root


def test_caltech_table_30_train_per_class_seeded(tmp_path):
    root = _caltech(tmp_path / "caltech")
    caltech, found = gf.find_caltech(root, seed=5)
    assert found.kind == "param" and caltech.protocol.startswith("seeded split (seed 5): 30 train")
    again = open_caltech101(root, seed=5)
    assert [r.path for r in caltech.train] == [r.path for r in again.train]
    assert [r.path for r in open_caltech101(root, seed=6).train] != [r.path for r in caltech.train]
    cache = FT.FeatureCache(tmp_path / "cache")
    X, y = gf.caltech_features(caltech, input_size=32, cache=cache, progress=False)
    assert np.bincount(y["train"]).tolist() == [30, 30, 30] and np.bincount(y["test"]).tolist() == [4, 4, 4]
    assert {k: v.shape[1] for k, v in X["train"].items()} == {
        "pixels": 192,
        "s16_gap": 112,
        "block15": 320,
        "gap": 1280,
    }
    X2, _ = gf.caltech_features(caltech, input_size=32, cache=cache, progress=False)
    assert cache.hits == 2 and np.array_equal(X2["test"]["gap"], X["test"]["gap"])
    table = gf.caltech_table(X, y, svm=dict(Cs=(1.0,), cv=3, seed=0))
    assert (
        table["train_per_class"] == [30]
        and table["n_test"] == 12
        and list(table["rows"]) == list(gf.CALTECH_ROWS)
    )
    assert table["rows"]["gap"]["mean_per_class_acc"]["n"] == 12
    assert table["verdicts"]["s16_gap_as_good_as_gap"]["verdict"] in ("agrees", "reversed", "not resolved")
    rows = gf.caltech_comparisons(table, 32)
    assert len(rows) == 2 and all(r["comparable"] is False and "30/class" in r["setting"] for r in rows)
    assert "Caltech-101, 3 classes, 90 train / 12 test" in gf.caltech_sentence(table)


@pytest.mark.parametrize("n_classes", [2, 5])
def test_lbfgs_solver_solves_linearsvc_problem(n_classes):
    """SquaredHingeSVC minimises LinearSVC's objective: the same predictions and nearly the same weights."""
    rng = np.random.default_rng(n_classes)
    y = np.arange(150) % n_classes
    X = (rng.normal(size=(150, 12)) + 1.5 * np.eye(12)[y][:, :12]).astype(np.float32)
    a = PR.fit_linear_svm(X, y, Cs=(0.01, 0.1), cv=3, solver="lbfgs")
    b = PR.fit_linear_svm(X, y, Cs=(0.01, 0.1), cv=3, solver="liblinear", max_iter=100000)
    assert type(a.pipeline.named_steps["svm"]).__name__ == "SquaredHingeSVC" and a.best_C == b.best_C
    assert np.mean(a.predict(X) == b.predict(X)) >= 0.98
    Wa, ba = a.linear_weights()
    Wb, bb = b.linear_weights()
    assert (
        Wa.shape == Wb.shape == (n_classes, 12)
        and np.allclose(Wa, Wb, atol=2e-2)
        and np.allclose(ba, bb, atol=2e-2)
    )
    assert np.allclose(
        a.decision_function(X[:5]),
        X[:5] @ Wa.T + ba if n_classes > 2 else (X[:5] @ Wa.T + ba)[:, 1],
        atol=1e-3,
    )
    with pytest.raises(ValueError, match="solver must be"):
        PR.fit_linear_svm(X, y, solver="sag")


def test_bird_localization_on_a_tiny_wsol_folder(tmp_path):
    """Only the images of ImageNet bird classes count; the paper rule is 0.2; the tuned row is chosen on
    one half and reported on the other, and says it is not comparable."""
    root, rng = tmp_path / "wsol", np.random.default_rng(2)
    labels = [10, 11, 130, 94, 500, 10, 22, 3]  # 6 birds, a container ship (500) and a tiger shark (3)
    keys = [f"val/ILSVRC2012_val_{i + 1:08d}.JPEG" for i in range(len(labels))]
    for k in keys:
        _square_image(root / "images" / k.split("/")[1], 0, rng, size=40)
    (root / "image_ids.txt").write_text("".join(f"{k}\n" for k in keys))
    (root / "class_labels.txt").write_text("".join(f"{k},{c}\n" for k, c in zip(keys, labels, strict=True)))
    (root / "image_sizes.txt").write_text("".join(f"{k},40,40\n" for k in keys))
    (root / "localization.txt").write_text(
        "".join(f"{k},2,2,30,30\n" for k in keys) + f"{keys[0]},0,0,39,39\n"
    )
    birds = fg.bird_localization(root, input_size=64, fractions=(0.2, 0.5), seed=0, progress=False)
    assert birds["n_images"] == 6 and birds["n_boxes"] == 7 and birds["paper_rule"]["fraction"] == 0.2
    assert birds["paper_rule"]["loc_iou50"]["n"] == 6
    t = birds["tuned"]
    assert t["n_choose"] == t["n_report"] == 3 and t["loc_iou50"]["n"] == 3 and "NOT comparable" in t["note"]
    assert set(birds["per_fraction_iou50"]) == {"0.2", "0.5"}


def test_procedural_localization_row_is_at_the_paper_rule_not_the_tuned_fraction():
    from types import SimpleNamespace

    from tests.test_fine_grained_paper import _features, _split

    train, test = _split("train", 0), _split("test", 1)
    result = fg.table4(
        train, test, _features, lambda s, probe: s.gt_boxes, svm=SVM, seed=0
    )  # tuned boxes: perfect
    corner = np.tile([0, 0, 3, 3], (len(test), 1))  # the paper-rule boxes: mostly wrong
    rows = fg.procedural_comparisons(
        result, SimpleNamespace(boxes_at={"test": {0.2: corner}}), test, "fixture"
    )
    loc = [r for r in rows if r["paper_ref"] == "table4.cub_loc_iou50"]
    assert result.loc_iou50 == 100.0 and len(loc) == 1 and "paper rule 0.2" in loc[0]["metric"]
    assert loc[0]["reproduced"]["value"] < 50 and loc[0]["reproduced"]["n"] == len(test)
    assert all(r["comparable"] is False for r in rows) and len(rows) == 4
