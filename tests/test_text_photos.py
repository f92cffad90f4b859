"""The text detector on real photos (camlib.paper.discovery_study.text_photo_detector and its data) and the
tf-idf baseline of the informative-objects ranking, on tiny fixtures: a fake mmocr JSON, a fake
wsolevaluation ILSVRC folder of generated images, and a stand-in CAM pass whose maps are given."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from camlib.datasets.roots import resolve_root
from camlib.evaluation.stats import verdict
from camlib.paper import discovery as D
from camlib.paper import discovery_study as DS

SVM = dict(Cs=(1.0,), cv=2, seed=0)


# --------------------------------------------------------------------------- tf-idf baseline


def test_tfidf_discounts_objects_present_in_every_scene():
    # objects: sky (every image of every scene), house (90% of scene 0, 8% elsewhere), tree (50% of scene 1 only)
    freq = np.array([[1.0, 0.9, 0.0], [1.0, 0.08, 0.5], [1.0, 0.08, 0.0]])
    t = D.tfidf_scores(freq)
    assert t[:, 0].tolist() == [0.0, 0.0, 0.0]  # the plain frequency ranks sky first in every scene
    assert np.isclose(t[0, 1], 0.9 * np.log(3 / 1.06)) and np.isclose(t[1, 2], 0.5 * np.log(3 / 0.5))
    assert t[0].argmax() == 1 and t[1].argmax() == 2 and t[2, 2] == 0.0
    # a scene without images (all-zero row) does not count as a scene
    assert np.allclose(D.tfidf_scores(np.r_[freq, np.zeros((1, 3))])[:3], t)


def test_object_rankings_carry_the_tfidf_ranking():
    present = np.array([[1, 1, 0], [1, 0, 1], [1, 1, 0], [1, 0, 1]], bool)
    r = D.object_rankings(present, present, np.array([0, 1, 0, 1]), 2)
    assert np.allclose(r["tfidf"], D.tfidf_scores(r["frequency"])) and r["tfidf"][:, 0].tolist() == [0.0, 0.0]


# --------------------------------------------------------------------------- ignore rule


def test_ignored_predictions_follow_mmocr_and_the_looser_iou_rule():
    words = np.array([[0, 0, 9, 9]])
    ignored = np.array([[20, 0, 29, 9]])
    pred = np.array(
        [
            [21, 0, 29, 9],  # inside the ignored word: set aside (mmocr)
            [0, 0, 9, 9],  # a readable word: kept
            [14, 0, 29, 9],  # 10/16 of its area on the ignored word (> 0.5): set aside
            [17, 0, 35, 9],
        ]
    )  # IoU 10/19 = 0.53 with the ignored word, 10/19 of it inside it: set aside
    assert D.ignored_predictions(pred, words, ignored, 0.5).tolist() == [True, False, True, True]
    # a word and an ignored word side by side; a box over half of each: IoU 70/170 = 0.41 with both, half of
    # it (not more) inside the ignored word, so mmocr keeps it
    word, ign, both = np.array([[0, 0, 9, 9]]), np.array([[10, 0, 19, 9]]), np.array([[3, 0, 16, 9]])
    assert D.ignored_predictions(both, word, ign, 0.5).tolist() == [False]
    assert D.ignored_predictions(both, word, ign, 0.3).tolist() == [False]  # reaches a readable word at 0.3
    assert D.ignored_predictions(both, np.zeros((0, 4)), ign, 0.3).tolist() == [
        True
    ]  # reaches only the ignored one
    assert D.ignored_predictions(both, np.zeros((0, 4)), ign, 0.5).tolist() == [False]


def test_detection_scores_do_not_count_ignored_words_as_misses_or_their_boxes_as_false_positives():
    words = [np.array([[0, 0, 9, 9]]), np.zeros((0, 4), np.int64)]
    ignored = [np.array([[20, 0, 29, 9]]), np.array([[0, 0, 9, 9]])]
    pred = [np.array([[21, 0, 29, 9]]), np.array([[0, 0, 9, 9]])]
    plain = D.detection_scores(pred, words)
    assert (plain["tp"], plain["n_pred"], plain["n_gt"]) == (0, 2, 1)
    r = D.detection_scores(pred, words, ignored=ignored)
    assert (r["tp"], r["n_pred"], r["n_gt"], r["n_pred_ignored"]) == (0, 0, 1, 2) and r["precision"] == 0.0
    hit = D.detection_scores([np.array([[0, 0, 9, 8]]), np.zeros((0, 4))], words, ignored=ignored)
    assert (hit["tp"], hit["n_pred"], hit["recall"]) == (1, 1, 100.0)


# --------------------------------------------------------------------------- data


def _img(path: Path, size: tuple[int, int], colour=(90, 90, 90)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)


def _scene_text(root: Path, n: int = 4) -> Path:
    """n photos of 64 x 32 (W x H); photo k has a readable word at x = 8k .. 8k + 15, y = 12 .. 19 and an
    ignored one."""
    items = []
    for k in range(n):
        _img(root / f"imgs/test/img_{k + 1}.jpg", (64, 32), (200, 200, 200))
        items.append(
            {
                "img_path": f"imgs/test/img_{k + 1}.jpg",
                "height": 32,
                "width": 64,
                "instances": [
                    {
                        "polygon": [],
                        "bbox": [8.0 * k, 12.0, 8.0 * k + 15, 19.0],
                        "bbox_label": 0,
                        "ignore": False,
                    },
                    {"polygon": [], "bbox": [50.0, 20.0, 60.0, 28.0], "bbox_label": 0, "ignore": True},
                ],
            }
        )
    (root / "textdet_test.json").write_text(json.dumps({"metainfo": {}, "data_list": items}, indent=1))
    return root


def _ilsvrc(root: Path, classes: list[int]) -> Path:
    keys = [f"ILSVRC2012_val_{i + 1:08d}.JPEG" for i in range(len(classes))]
    for k in keys:
        _img(root / "images" / k, (40, 30), (20, 40, 60))
    (root / "image_ids.txt").write_text("".join(f"val/{k}\n" for k in keys))
    (root / "class_labels.txt").write_text(
        "".join(f"val/{k},{c}\n" for k, c in zip(keys, classes, strict=True))
    )
    (root / "localization.txt").write_text("".join(f"val/{k},1,1,20,20\n" for k in keys))
    return root


def test_load_text_photos_scales_words_and_leaves_out_text_prone_negatives(tmp_path):
    classes = [1, 919, 2, 3, 920, 4, 5, 6]  # 919 street sign and 920 traffic light are text-prone
    src = DS.text_photo_source(_scene_text(tmp_path / "st"), _ilsvrc(tmp_path / "il", classes))
    assert src and "REAL photos" in src.message() and src.text.kind == "param"
    ph = DS.load_text_photos(src, (16, 32), max_negatives=5, seed=0)
    assert ph.n_pos == 4 and len(ph.labels) == 9 and ph.labels.tolist() == [1] * 4 + [0] * 5
    assert sorted(ph.excluded.values()) == ["street sign", "traffic light"]
    assert ph.words[1].tolist() == [[4, 6, 11, 9]]  # (8, 12, 23, 19) at 64 x 32 -> half size: floor
    assert ph.ignored[0].tolist() == [[25, 10, 30, 14]] and ph.words[5].shape == (0, 4)
    assert ph.files[0][0].shape == (3, 16, 32) and ph.files.image(6).shape == (16, 32, 3)
    assert [d["n_images"] for d in ph.data] == [4, 5] and ph.data[0]["name"] == "scene-text"
    assert (
        all(d["root_kind"] == "param" for d in ph.data)
        and "text-prone classes left out: 2" in ph.data[1]["caveat"]
    )
    assert "4 street photos with 4 readable words (+ 4 'ignore' words) vs 5 ILSVRC" in ph.describe()
    with pytest.raises(ValueError, match="only 1 usable negatives"):
        DS.load_text_photos(
            DS.text_photo_source(tmp_path / "st", _ilsvrc(tmp_path / "il2", [919, 1])), (16, 32)
        )


def test_text_photo_source_says_where_the_real_photos_come_from_when_missing(tmp_path):
    src = DS.TextPhotoSource(
        resolve_root("scene-text", environ={}, data=tmp_path, shared=tmp_path),
        resolve_root("ilsvrc", _ilsvrc(tmp_path / "il", [1, 2])),
    )
    msg = src.message()
    assert not src and "PROCEDURAL text set" in msg and "`make data` cannot fetch" in msg
    assert "ICDAR 2015" in msg and "SCENE_TEXT_ROOT" in msg and str(tmp_path / "scene-text") in msg
    with pytest.raises(FileNotFoundError, match="PROCEDURAL"):
        DS.load_text_photos(src, (16, 32))


# --------------------------------------------------------------------------- the leave-one-out protocol


class _Cams:
    """Stands in for CAMPass on a TextPhotos' files: each image's map is given (by its index)."""

    def __init__(self, maps, size):
        self.maps, self.size, self.calls = maps, size, []

    def __call__(self, probe, data, targets=None, features=False):
        idx = np.asarray(data.indices)
        self.calls.append(idx.tolist())
        d = np.asarray(probe.decision_function(self.X[idx])).reshape(-1)
        return np.c_[-d, d], self.maps[idx]


def test_text_photo_detector_leaves_each_photo_out_and_counts_words(tmp_path, monkeypatch):
    src = DS.text_photo_source(_scene_text(tmp_path / "st"), _ilsvrc(tmp_path / "il", list(range(1, 13))))
    ph = DS.load_text_photos(src, (32, 64))  # the input size = the JSON's: word boxes unchanged
    n = len(ph.labels)
    rng = np.random.default_rng(0)
    X = np.c_[ph.labels * 2.0 + rng.normal(0, 0.3, n), rng.normal(0, 1, (n, 2))].astype(np.float32)
    maps = np.zeros((n, 32, 64), np.float32)
    for k in range(4):  # photos 0, 1 on their word; photo 2 on the ignored word; photo 3 on a half-size blob
        if k < 2:
            x0, y0, x1, y1 = ph.words[k][0]
        elif k == 2:
            x0, y0, x1, y1 = ph.ignored[k][0]
        else:
            x0, y0, x1, y1 = 24, 12, 31, 19  # the word is x 24..39: IoU 8/16 = 0.5 with it
        maps[k, y0 : y1 + 1, x0 : x1 + 1] = 1.0
        maps[k, (y0 + y1) // 2, (x0 + x1) // 2] = 2.0  # the peak
    maps[4:, 28:, 0:4] = 1.0
    cams = _Cams(maps / maps.reshape(n, -1).max(1)[:, None, None], (32, 64))
    cams.X = X
    seen = []
    real_fit = DS.fit_linear_svm

    def spy(Xtr, ytr, **kw):
        seen.append({tuple(np.round(r, 5)) for r in Xtr})
        return real_fit(Xtr, ytr, **kw)

    monkeypatch.setattr(DS, "fit_linear_svm", spy)
    r = DS.text_photo_detector(cams, X, ph, svm=SVM, fraction=0.5, tuned_fraction=0.9)
    # every image tested exactly once, by an SVM that never saw it
    tested = [i for c in cams.calls for i in c]
    assert sorted(tested) == list(range(n)) and len(cams.calls) == 4
    for f, call in enumerate(cams.calls):
        assert not {tuple(np.round(X[i], 5)) for i in call} & seen[f]
        assert sum(ph.labels[call]) == 1 and len(seen[f]) == n - len(call)
    rows = {row["photo"]: row for row in r.per_photo}
    assert [rows[f"img_{k}.jpg"]["cam_found_iou_0.5"] for k in (1, 2, 3, 4)] == [1, 1, 0, 1]
    assert rows["img_3.jpg"]["cam_box_set_aside_iou_0.5"] and rows["img_3.jpg"]["pointing_hit"] is False
    assert rows["img_3.jpg"]["pointing_hit_any_word"] is True and rows["img_1.jpg"]["pointing_hit"] is True
    assert (
        r.totals()["words"] == 4 and r.totals()["cam_found_iou_0.5"] == 3 and r.totals()["pointing_hit"] == 3
    )
    rec = r.rates["cam_recall_iou_0.5"]
    assert rec.value == 75.0 and rec.n == 4 and rec.low <= 75.0 <= rec.high
    assert {"centre_recall_iou_0.3", "tuned_recall_iou_0.5", "cam_pointing", "centre_pointing"} <= set(
        r.rates
    )
    # CAM - centre on the same photos: pointing 3 vs 1 of 4 photos (+50 points), words found 3 vs 1 at IoU 0.5
    d = r.rates["cam_minus_centre_pointing"]
    assert d.value == 50.0 and d.n == 4 and r.rates["cam_minus_centre_found_iou_0.5"].value == 0.5
    assert set(r.verdicts()) == {
        "cam_minus_centre_pointing",
        "cam_minus_centre_found_iou_0.5",
        "cam_minus_centre_found_iou_0.3",
    }
    assert r.verdicts()["cam_minus_centre_pointing"] == verdict(d, 1)
    # the centre box: the mean training word size (16 x 8) at the centre of the 64 x 32 input: x 24..39, y 12..19
    assert r.centre_wh[0] == (16.0, 8.0) and rows["img_4.jpg"]["centre_found_iou_0.5"] == 1
    assert rows["img_3.jpg"]["centre_found_iou_0.5"] == 0 and rows["img_3.jpg"]["centre_found_iou_0.3"] == 1
    assert (
        rows["img_4.jpg"]["centre_pointing_hit"] is True and rows["img_1.jpg"]["centre_pointing_hit"] is False
    )
    # detector mode: negatives' boxes (where the SVM fires) are false positives, ignored words never misses
    det = r.detector["iou_0.5"]
    assert det["n_gt"] == 4 and det["tp"] <= 3 and r.calls["n_negatives"] == n - 4
    # kept feature-layer maps (notebook 06's one pass): each fold's CAMs come from them, the network never runs
    cams.from_maps = lambda probe, maps, targets=None: cams(
        probe, torch.utils.data.Subset(ph.files, maps.tolist())
    )
    before = len(cams.calls)
    kept = DS.text_photo_detector(
        cams, X, ph, svm=SVM, fraction=0.5, tuned_fraction=0.9, layer_maps=torch.arange(n)
    )  # stands in for the (n, K, h, w) maps: row i = image i
    assert len(cams.calls) == before + 4 and kept.per_photo == r.per_photo
    m = r.metrics()
    assert m["box_fraction"] == 0.5 and "PROCEDURAL" in m["tuned_box_fraction_source"]
    assert set(m["rates"]["cam_pointing"]) == {"value", "low", "high", "n", "level"}
    assert (
        "img_3.jpg" in r.table()
        and "peak in word" in r.table()
        and "finds 3 words at IoU 0.5" in r.measured()
    )


def test_folds_put_one_photo_and_a_share_of_the_negatives_in_each():
    labels = np.r_[np.ones(3, int), np.zeros(10, int)]
    f = DS._folds(labels, 0)
    assert f[:3].tolist() == [0, 1, 2] and sorted(np.bincount(f[3:]).tolist()) == [3, 3, 4]
    assert np.array_equal(f, DS._folds(labels, 0)) and not np.array_equal(f, DS._folds(labels, 1))


def test_image_files_take_a_height_and_width(tmp_path):
    _img(tmp_path / "a.jpg", (40, 30))
    files = D.ImageFiles([tmp_path / "a.jpg"], (12, 20))
    assert files.image(0).shape == (12, 20, 3) and files[0][0].shape == torch.Size([3, 12, 20])
    assert D.ImageFiles([tmp_path / "a.jpg"], 8).image(0).shape == (8, 8, 3)
