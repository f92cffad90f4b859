"""Pattern discovery (paper section 4.2): rankings, hard-negative mining, detection scores, CAMs of a
linear probe, and the caption / text generators and paper-profile readers they run on."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from camlib.core.cam import HeadSpec
from camlib.core.features import extract_features
from camlib.core.probe import fit_linear_svm
from camlib.datasets.captions import (
    CONCEPTS,
    CONFUSERS,
    CaptionImages,
    caption_words,
    has_phrase,
    load_caption_folder,
    make_caption_arrays,
    make_caption_sample,
    phrase_split,
)
from camlib.datasets.download import DatasetNotFoundError
from camlib.datasets.text import (
    TextImages,
    font_path,
    list_images,
    make_text_arrays,
    make_text_sample,
    read_svt,
    render_text_mask,
)
from camlib.paper import discovery as D

# --------------------------------------------------------------------------- 1. informative objects


def test_object_hits_hand_case():
    cam = np.full((10, 10), 0.1)
    cam[:4, :4] = 1.0
    inst = np.ones((10, 10), np.int64)  # instance 1: background (type 0)
    inst[:4, :4] = 2  # instance 2 (type 2): exactly the hot block
    inst[8:, 8:] = 3  # instance 3 (type 1): far from it
    inst[4:6, 0:4] = 4  # instance 4 (type 3): 8 pixels, 0 inside
    hit, present = D.object_hits(cam, inst, np.array([0, 2, 1, 3]), 5, fraction=0.5, min_cover=0.5)
    assert hit.tolist() == [False, False, True, False, False]
    assert present.tolist() == [True, True, True, True, False]
    cam[4, 0:4] = 1.0  # now half of instance 4 is hot: exactly min_cover
    hit, _ = D.object_hits(cam, inst, np.array([0, 2, 1, 3]), 5, fraction=0.5, min_cover=0.5)
    assert hit[3]
    hit, _ = D.object_hits(cam, inst, np.array([0, 2, 1, 3]), 5, fraction=0.5, min_cover=0.6)
    assert not hit[3]
    hit, present = D.object_hits(np.zeros((10, 10)), inst, np.array([0, 2, 1, 3]), 5)
    assert not hit.any() and present.sum() == 4  # a map without a positive max highlights nothing
    with pytest.raises(ValueError, match="upsample"):
        D.object_hits(np.zeros((5, 5)), inst, np.array([0]), 1)


def test_object_rankings_and_ranking_scores_hand_case():
    hits = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 1], [0, 0, 1]], bool)
    present = np.array([[1, 1, 1], [1, 1, 1], [1, 0, 1], [1, 1, 1]], bool)
    r = D.object_rankings(hits, present, np.array([0, 0, 1, 1]), 3)
    assert np.allclose(r["cam"], [[1.0, 0.5, 0.0], [0.0, 0.0, 1.0], [0, 0, 0]])
    assert np.allclose(r["frequency"], [[1, 1, 1], [1, 0.5, 1], [0, 0, 0]]) and r["n"].tolist() == [2, 2, 0]
    truth = np.array([[1.0, 0.0, 0.8, 0.2], [1.0, 0.0, 0.8, 0.2]])
    scores = np.array([[0.9, 0.1, 0.5, 0.3], [0.1, 0.9, 0.3, 0.5]])
    out = D.ranking_scores(scores, truth, k=2, names=["a", "b"])
    assert out["per_class_precision_at_k"] == [100.0, 0.0] and out["precision_at_k"] == 50.0
    assert out["per_class_spearman"] == pytest.approx([1.0, -1.0]) and out["spearman"] == pytest.approx(0.0)
    assert out["per_class"]["a"]["precision_at_k"] == 100.0
    flat = D.ranking_scores(np.ones((1, 4)), truth[:1], k=2)  # ties go to vocabulary order; no correlation
    assert flat["precision_at_k"] == 50.0 and flat["spearman"] == 0.0
    assert D.top_objects(np.array([0.2, 0.9, 0.9]), ["x", "y", "z"], 2) == [("y", 0.9), ("z", 0.9)]


# --------------------------------------------------------------------------- 2. hard-negative mining


def _toy(seed=0):
    """Positives at x in [1, 2]; 400 easy negatives far left, 12 hard ones just left of the positives.
    The right boundary lies between x = 0.7 and x = 1; fitted on easy negatives only, it falls far left."""
    rng = np.random.default_rng(seed)
    pos = np.c_[rng.uniform(1.0, 2.0, 40), rng.normal(0, 1, 40)]
    easy = np.c_[rng.uniform(-6.0, -4.0, 400), rng.normal(0, 1, 400)]
    hard = np.c_[rng.uniform(0.3, 0.7, 12), rng.normal(0, 1, 12)]
    return pos.astype(np.float32), np.concatenate([easy, hard]).astype(np.float32), np.arange(400, 412)


def test_hard_negative_mining_recovers_the_right_boundary():
    pos, pool, hard = _toy()
    fit = lambda X, y: fit_linear_svm(X, y, Cs=(10.0,), cv=2)  # noqa: E731  (a hard-margin-like SVM)
    res = D.mine_hard_negatives(
        pos, pool, n_initial=20, initial=np.arange(20), rounds=3, per_round=20, fit=fit
    )
    first, last = res.history[0], res.history[-1]
    assert (
        first["pool_false_positives"] >= 12
    )  # random (easy) negatives: every hard negative is called positive
    assert last["pool_false_positives"] == 0  # after mining: none
    assert set(hard.tolist()) <= set(res.negatives.tolist())  # it found every hard negative
    assert len(res.negatives) < 20 + 3 * 20  # and stopped adding once nothing violated the margin
    assert (res.probe.decision_function(pos) > 0).all()
    # the boundary crosses y = 0 between the hard negatives and the positives
    grid = np.c_[np.linspace(-1, 2, 301), np.zeros(301)].astype(np.float32)
    crossing = grid[np.argmax(res.probe.decision_function(grid) > 0), 0]
    assert 0.7 <= crossing <= 1.0
    without = fit(np.concatenate([pos, pool[:20]]), np.r_[np.ones(40), np.zeros(20)].astype(int))
    assert (without.decision_function(pool[hard]) > 0).all()  # the wrong boundary the mining corrected


def test_mining_defaults_are_seeded():
    pos, pool, _ = _toy(1)
    a = D.mine_hard_negatives(pos, pool, n_initial=10, rounds=2, seed=3)
    b = D.mine_hard_negatives(pos, pool, n_initial=10, rounds=2, seed=3)
    assert np.array_equal(a.negatives, b.negatives) and a.history == b.history
    assert a.history[0]["n_negatives"] == 10
    with pytest.raises(ValueError, match="positives"):
        D.mine_hard_negatives(pos[:0], pool, n_initial=5)


def test_peaks_and_centre_points():
    maps = np.zeros((2, 6, 8))
    maps[0, 1, 5] = 1.0
    maps[1, 4, 2] = 3.0
    assert D.cam_peaks(maps).tolist() == [[5, 1], [2, 4]]
    assert D.centre_points(2, (6, 8)).tolist() == [[4, 3], [4, 3]]


# --------------------------------------------------------------------------- 3. detection


def test_detection_scores_hand_boxes():
    pred = [np.array([[0, 0, 9, 9]]), np.array([[0, 0, 9, 9]]), np.zeros((0, 4)), np.array([[3, 3, 5, 5]])]
    gt = [np.array([[0, 0, 9, 9]]), np.array([[5, 5, 14, 14]]), np.array([[0, 0, 3, 3]]), np.zeros((0, 4))]
    out = D.detection_scores(pred, gt)
    assert (out["tp"], out["n_pred"], out["n_gt"]) == (1, 3, 3)
    assert out["precision"] == pytest.approx(100 / 3) and out["recall"] == pytest.approx(100 / 3)
    twice = D.detection_scores(
        [np.array([[0, 0, 9, 9], [0, 0, 9, 9]])], [np.array([[0, 0, 9, 9], [-1, -1, -1, -1]])]
    )
    assert (twice["tp"], twice["precision"], twice["recall"]) == (
        1,
        50.0,
        100.0,
    )  # one-to-one; -1 rows ignored
    loose = D.detection_scores(pred[1:2], gt[1:2], iou_threshold=0.1)
    assert loose["tp"] == 1
    assert D.detection_scores([np.zeros((0, 4))], [np.zeros((0, 4))])["f1"] == 0.0
    with pytest.raises(ValueError):
        D.detection_scores(pred, gt[:2])


def test_centre_box_detect_boxes_and_choose_fraction():
    assert D.centre_box((10, 20), (4, 2)).tolist() == [8, 4, 11, 5]
    assert D.centre_box((10, 20), (40, 2)).tolist() == [0, 4, 19, 5]
    m = np.zeros((10, 10))
    m[0:8, 0:8] = 0.3
    m[2:6, 2:6] = 1.0
    maps = np.stack([m, m])
    gt = [np.array([[2, 2, 5, 5]]), np.array([[2, 2, 5, 5]])]
    boxes = D.detect_boxes(maps, [True, False], 0.5)
    assert boxes[0].tolist() == [[2, 2, 5, 5]] and boxes[1].shape == (0, 4)
    best, f1 = D.choose_fraction(maps, np.array([True, True]), gt, (0.2, 0.5))
    assert best == 0.5 and f1[0.2] == 0.0 and f1[0.5] == 100.0


# --------------------------------------------------------------------------- CAMs of a linear probe


class _Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.bn = nn.BatchNorm2d(6)
        self.fc = nn.Linear(6, 2)

    def forward(self, x):
        return self.fc(self.bn(self.conv(x)).relu().mean((2, 3)))


def test_probe_cams_are_the_svm_weights_on_the_feature_maps():
    torch.manual_seed(0)
    net = _Tiny().eval()
    x = torch.randn(24, 3, 8, 8)
    head = HeadSpec("bn", "fc", "avg", True)
    X, _ = extract_features(net, x, "bn", relu=True, progress=False)
    y = (X[:, 0] > np.median(X[:, 0])).astype(int)
    probe = fit_linear_svm(X, y, Cs=(1.0,), cv=2)
    scores, maps = D.probe_cams(net, probe, x, head, (8, 8), targets=1, batch_size=10)
    assert np.allclose(scores[:, 1], probe.decision_function(X), atol=1e-4)
    W, _ = probe.linear_weights()
    with torch.no_grad():
        f = net.bn(net.conv(x)).relu().numpy()
    raw = np.einsum("k,nkhw->nhw", W[1], f)
    expect = np.where(raw.max((1, 2), keepdims=True) > 0, raw / raw.max((1, 2), keepdims=True), 0)
    assert np.allclose(maps, expect, atol=1e-4)
    _, top = D.probe_cams(net, probe, x[:3], head, (16, 16))  # the top class's maps, upsampled
    peak = top.max((1, 2))
    assert top.shape == (3, 16, 16) and (np.isclose(peak, 1.0, atol=1e-5) | (peak == 0)).all()
    # two probes stacked: one pass, the second probe's classes come after the first's
    other = fit_linear_svm(X, 1 - y, Cs=(1.0,), cv=2)
    both, table, pooled = D.probe_cams(
        net, [probe, other], x, head, (8, 8), targets=np.tile([1, 3], (24, 1)), features=True
    )
    assert both.shape == (24, 4) and table.shape == (24, 2, 8, 8) and np.allclose(pooled, X, atol=1e-5)
    assert np.allclose(both[:, 3], other.decision_function(X), atol=1e-4) and np.allclose(
        table[:, 0], maps, atol=1e-5
    )


def test_require_folder_and_image_files(tmp_path):
    with pytest.raises(
        DatasetNotFoundError, match=r"(?s)PROFILE='paper' needs SUN_ROOT.*not set.*Expected layout"
    ):
        D.require_folder(None, "SUN_ROOT", "<SUN_ROOT>/Images/...", "download SUN2012")
    with pytest.raises(DatasetNotFoundError, match="is not a folder"):
        D.require_folder(tmp_path / "missing", "SVT_ROOT", "svt1/", "prepare('svt')")
    assert D.require_folder(tmp_path, "X", "", "") == tmp_path
    for i, shape in enumerate([(30, 50), (40, 20)]):
        Image.fromarray(np.full((*shape, 3), 40 * i, np.uint8)).save(tmp_path / f"im{i}.png")
    files = D.ImageFiles(list_images(tmp_path), 16, labels=[0, 1])
    x, label = files[1]
    assert x.shape == (3, 16, 16) and label == 1
    assert torch.allclose(x, torch.full_like(x, (40 - 127) / 128))
    assert files.original_size(0) == (30, 50) and files.image(0).shape == (16, 16, 3)


# --------------------------------------------------------------------------- captions


def test_phrase_split_and_word_matching():
    caps = [
        "A lake; mirror in lake below a house",
        "a mirror on a wall",
        "a still pond",
        "Lake view",
        "mirror-in-lake!",
    ]
    assert caption_words("Mirror-in lake!") == ["mirror", "in", "lake"]
    assert has_phrase(caps[0], "mirror in lake") and has_phrase(caps[4], "Mirror in lake")
    assert not has_phrase(caps[1], "mirror in lake")
    pos, neg = phrase_split(caps, "mirror in lake")
    assert pos.tolist() == [0, 4] and neg.tolist() == [2]  # 1 and 3 hold a word of the phrase: neither
    with pytest.raises(ValueError, match="content word"):
        phrase_split(caps, "in the")


def test_caption_generator_is_deterministic_and_boxes_match_captions():
    a, b = make_caption_sample(5, seed=1), make_caption_sample(5, seed=1)
    assert np.array_equal(a.image, b.image) and a.caption == b.caption
    t0 = time.perf_counter()
    arr = make_caption_arrays(200, seed=0, size=96)
    assert time.perf_counter() - t0 < 8
    S = 96
    for c, (phrase, confuser) in enumerate(zip(CONCEPTS, CONFUSERS, strict=True)):
        has_box = arr["concept_boxes"][:, c, 0] >= 0
        assert 20 < has_box.sum() < 90
        pos, neg = phrase_split(arr["captions"], phrase)
        assert set(pos.tolist()) == set(np.flatnonzero(has_box).tolist())
        conf = np.flatnonzero(arr["confuser_boxes"][:, c, 0] >= 0)
        assert len(conf) > 10 and all(confuser in arr["captions"][i] for i in conf)
        if c < 2:  # a confuser's caption never names its concept's words: a (hard) negative
            assert set(conf.tolist()) <= set(neg.tolist())
        assert not (has_box & (arr["confuser_boxes"][:, c, 0] >= 0)).any()
    boxes = np.concatenate([arr["concept_boxes"], arr["confuser_boxes"]], 1).reshape(-1, 4)
    boxes = boxes[boxes[:, 0] >= 0]
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 2:] < S).all() and (boxes[:, 2:] >= boxes[:, :2]).all()
    ds = CaptionImages(6, size=96, split="val")
    assert ds.tensors().shape == (6, 3, 96, 96) and "split=val" in ds.identity()


def test_caption_folder_readers(tmp_path):
    for name in ("a.jpg", "b.jpg"):
        Image.new("RGB", (8, 8)).save(tmp_path / name)
    (tmp_path / "captions.tsv").write_text(
        "# comment\na.jpg\tA mirror in lake\nb.jpg\tcows\na.jpg\tcalm\nzz.jpg\tgone\n"
    )
    paths, caps = load_caption_folder(tmp_path)
    assert [p.name for p in paths] == ["a.jpg", "b.jpg"] and caps == ["A mirror in lake ; calm", "cows"]
    coco = tmp_path / "coco"
    (coco / "annotations").mkdir(parents=True)
    (coco / "val2014").mkdir()
    Image.new("RGB", (8, 8)).save(coco / "val2014" / "x.jpg")
    (coco / "annotations" / "captions_val2014.json").write_text(
        json.dumps(
            {
                "images": [{"id": 7, "file_name": "x.jpg"}],
                "annotations": [{"image_id": 7, "caption": "a view out of window"}],
            }
        )
    )
    paths, caps = load_caption_folder(coco)
    assert [p.name for p in paths] == ["x.jpg"] and caps == ["a view out of window"]
    with pytest.raises(FileNotFoundError, match="captions.tsv"):
        load_caption_folder(tmp_path / "empty")


# --------------------------------------------------------------------------- text


def test_font_ships_with_matplotlib_and_renders():
    assert font_path().endswith("DejaVuSans.ttf") and font_path(True).endswith("DejaVuSans-Bold.ttf")
    m = render_text_mask("OPEN", 20)
    assert m.dtype == np.uint8 and m.max() == 255
    assert m[0].any() and m[-1].any() and m[:, 0].any() and m[:, -1].any()  # cropped to the glyphs


def test_text_boxes_cover_the_rendered_glyphs():
    t0 = time.perf_counter()
    a = make_text_arrays(120, seed=0, size=96)
    assert time.perf_counter() - t0 < 8
    assert a["labels"].tolist() == [0, 1] * 60
    for j in range(60):
        neg, pos = 2 * j, 2 * j + 1
        diff = (a["images"][pos] != a["images"][neg]).any(-1)  # the pair shares its background
        mask = a["masks"][pos]
        assert diff.any() and not (diff & ~mask).any()  # the text image differs only on glyph pixels
        x0, y0, x1, y1 = a["boxes"][pos]
        assert 0 <= x0 <= x1 < 96 and 0 <= y0 <= y1 < 96
        inside = np.zeros_like(mask)
        inside[y0 : y1 + 1, x0 : x1 + 1] = True
        assert not (mask & ~inside).any()  # the box covers every glyph pixel ...
        ys, xs = np.nonzero(mask)
        assert (xs.min(), ys.min(), xs.max(), ys.max()) == (x0, y0, x1, y1)  # ... tightly
        assert (a["boxes"][neg] == -1).all() and not a["masks"][neg].any()
    s1, s2 = make_text_sample(9, seed=2, size=96), make_text_sample(9, seed=2, size=96)
    assert np.array_equal(s1.image, s2.image) and s1.text == s2.text and s1.text
    assert not np.array_equal(s1.image, make_text_sample(9, seed=3, size=96).image)
    ds = TextImages(4, size=96, split="test")
    assert not np.array_equal(ds.images, TextImages(4, size=96, split="train").images)
    with pytest.raises(ValueError, match="even"):
        TextImages(3, size=96)


SVT_XML = """<?xml version="1.0" encoding="utf-8"?>
<tagset>
  <image>
    <imageName>img/00_01.jpg</imageName>
    <address>1 Main St</address>
    <lex>OPEN,CAFE</lex>
    <Resolution x="60" y="40"/>
    <taggedRectangles>
      <taggedRectangle height="10" width="20" x="5" y="6"><tag>OPEN</tag></taggedRectangle>
      <taggedRectangle height="12" width="30" x="45" y="-2"><tag>CAFE</tag></taggedRectangle>
    </taggedRectangles>
  </image>
</tagset>"""


def test_svt_reader(tmp_path):
    (tmp_path / "svt1" / "img").mkdir(parents=True)
    (tmp_path / "svt1" / "train.xml").write_text(SVT_XML)
    Image.new("RGB", (60, 40)).save(tmp_path / "svt1" / "img" / "00_01.jpg")
    (im,) = read_svt(tmp_path / "svt1" / "train.xml")
    assert im.path == tmp_path / "svt1" / "img" / "00_01.jpg" and im.path.is_file()
    assert im.size == (40, 60) and im.words == ["OPEN", "CAFE"]
    assert im.boxes.tolist() == [[5, 6, 24, 15], [45, 0, 59, 9]]  # x + w - 1; clipped to the image
    assert list_images(tmp_path) == [im.path]
    with pytest.raises(FileNotFoundError, match="svt1"):
        read_svt(tmp_path / "svt1" / "test.xml")


def test_object_hits_batch_and_split_halves():
    maps = np.zeros((2, 4, 4))
    maps[0, :2, :2] = 1.0
    maps[1, 2:, 2:] = 1.0
    inst = np.ones((2, 4, 4), np.int64)
    inst[:, :2, :2] = 2
    hits, present = D.object_hits_batch(maps, inst, np.array([[0, 1], [0, 1]]), 2)
    assert hits.tolist() == [[False, True], [False, False]] and present.all()
    assert D.object_hits_batch([], [], [], 3)[0].shape == (0, 3)
    labels = np.array([0] * 10 + [1] * 5 + [2])
    tr, te = D.split_halves(labels, seed=1)
    assert len(set(tr) & set(te)) == 0 and len(tr) + len(te) == 16
    assert np.bincount(labels[tr], minlength=3).tolist() == [5, 2, 0]
    assert np.array_equal(tr, D.split_halves(labels, seed=1)[0])
