"""camlib.paper.vqa_study: notebook 07's pointing verdicts agree with vqa.pointing_summary."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from camlib.paper import vqa_study as vs
from camlib.paper.vqa_eval import pointing_hits, pointing_summary


def _case(n: int = 120, seed: int = 0, cam_good: bool = True):
    rng = np.random.default_rng(seed)
    boxes = np.tile([10, 10, 19, 19], (n, 1))
    boxes[::7] = -1  # questions without an object
    inside, outside = np.tile([15, 15], (n, 1)), np.tile([40, 40], (n, 1))
    hit = rng.random(n) < (0.9 if cam_good else 0.05)
    pointing = {
        "peak_answer": np.where(hit[:, None], inside, outside),
        "peak_pred": inside,
        "peak_wrong": np.where((rng.random(n) < 0.3)[:, None], inside, outside),
    }
    labels = rng.integers(0, 5, n)
    labels[::11] = -1  # unknown answers
    qtypes = np.array(["colour", "shape", "exists"])[np.arange(n) % 3]
    return pointing, SimpleNamespace(
        boxes=boxes, about_boxes=boxes[:, None], labels=labels, qtypes=qtypes.tolist()
    )


def test_pointing_hits_average_to_pointing_summary():
    pointing, ts = _case()
    hits, has = pointing_hits(pointing, ts.boxes, (48, 48), ts.labels)
    summary = pointing_summary(pointing, ts.boxes, ts.qtypes, (48, 48), ts.labels)
    assert summary["n"] == int(has.sum())
    for key, values in hits.items():
        assert np.isclose(100 * values[has].mean(), summary[key]), key


def test_pointing_verdicts():
    pointing, ts = _case()
    v = vs.pointing_verdicts(pointing, ts, (48, 48), seed=0)
    assert set(v) == {"all", "colour", "exists", "shape"}
    assert v["all"]["verdict"] == "agrees" and v["all"]["best_baseline"] == "cam_wrong_answer"
    assert v["all"]["difference"]["low"] > 0
    bad = vs.pointing_verdicts(*_case(cam_good=False)[:1], ts, (48, 48))
    assert bad["all"]["verdict"] == "reversed"
    line = vs.verdict_lines("baseline", {"all": v["all"]})[0]
    assert line.startswith("baseline (all): the true answer's CAM") and line.endswith("AGREES")


def test_accuracy_per_type_against_chance():
    qtypes = ["count"] * 60 + ["colour"] * 100
    correct = np.r_[np.ones(60), np.arange(100) % 5 == 0]  # count always right; colour at chance (20%)
    t = vs.accuracy_per_type(correct, qtypes, seed=0)
    assert list(t) == ["all", "colour", "count"]
    assert t["count"]["accuracy"]["value"] == 100 and t["count"]["accuracy"]["n"] == 60
    assert t["count"]["kind"] == "image-only" and t["count"]["chance"] == pytest.approx(100 / 3)
    assert t["count"]["above_chance"] == "agrees"
    assert (
        t["colour"]["accuracy"]["value"] == pytest.approx(20)
        and t["colour"]["above_chance"] == "not resolved"
    )
    assert t["colour"]["accuracy"]["low"] < 20 < t["colour"]["accuracy"]["high"]
    assert t["all"]["chance"] == pytest.approx((60 * 100 / 3 + 100 * 20) / 160)
    assert vs.accuracy_lines("gated_not_in_paper", t)[0].startswith("gated (NOT in the paper)")


def test_pointing_when_correct_counts_only_right_answers_about_objects():
    n = 90
    boxes = np.full((n, 2, 4), -1)
    boxes[:, 0] = [0, 0, 9, 9]  # every question about the top-left object ...
    boxes[::3, 1] = [30, 30, 39, 39]  # ... a third of them (the count questions) about a second one too
    boxes[1::9] = -1  # some with no object at all (an "exists" answered "no")
    qtypes = np.where(np.arange(n) % 3 == 0, "count", "colour")
    labels = np.zeros(n, dtype=int)
    pred = np.where(np.arange(n) % 2 == 0, 0, 1)  # half right
    peak = np.where((np.arange(n) % 3 == 0)[:, None], [35, 35], [5, 5])  # count: in the 2nd box, else the 1st
    pointing = {"peak_answer": peak, "peak_pred": peak, "peak_wrong": peak, "pred": pred}
    ts = SimpleNamespace(about_boxes=boxes, labels=labels, qtypes=qtypes.tolist())
    out = vs.pointing_when_correct(pointing, ts, (48, 48), seed=0)
    right = (pred == labels) & (boxes[:, :, 0] >= 0).any(1)
    assert out["all"]["n"] == int(right.sum()) and out["count"]["n"] == int(
        (right & (qtypes == "count")).sum()
    )
    assert out["all"]["cam_predicted"]["value"] == 100 and out["all"]["verdict"] == "agrees"
    assert out["count"]["random_point"]["value"] == pytest.approx(200 / 48**2 * 100)
    assert out["colour"]["centre"]["value"] == 0 and out["colour"]["best_baseline"] == "random_point"
    none = vs.pointing_when_correct({**pointing, "pred": np.ones(n, dtype=int)}, ts, (48, 48))
    assert (
        none["all"] == {"n": 0}
        and "no correctly answered" in vs.correct_pointing_lines("paper_model", none)[1]
    )


def test_pretrained_backbone_is_cached_on_its_training_data(tmp_path):
    from camlib.core.digest import model_fingerprint
    from camlib.datasets.vqa_shapes import VQAShapes

    tr = VQAShapes(40, seed=0, size=32)
    te = VQAShapes(20, seed=0, size=32, split="test", vocab=tr.vocab, answers=tr.answers)
    first = vs.pretrain_backbone(tr, te, epochs=1, seed=0, cache_dir=tmp_path)
    again = vs.pretrain_backbone(tr, te, epochs=1, seed=0, cache_dir=tmp_path)
    assert not first.metrics["cached"] and again.metrics["cached"] and len(list(tmp_path.glob("*.pt"))) == 1
    assert (
        model_fingerprint(first.net) == model_fingerprint(again.net)
        and again.metrics["mAP"] == first.metrics["mAP"]
    )
    other = VQAShapes(40, seed=1, size=32)  # other scenes: another key, trained afresh
    assert not vs.pretrain_backbone(other, te, epochs=1, seed=0, cache_dir=tmp_path).metrics["cached"]
    assert not vs.pretrain_backbone(tr, te, epochs=2, seed=0, cache_dir=tmp_path).metrics["cached"]
    assert len(list(tmp_path.glob("*.pt"))) == 3


def test_paper_profile_root_and_data_row(monkeypatch, tmp_path):
    monkeypatch.delenv("VQA_ROOT", raising=False)
    assert vs.paper_vqa_root(None) == (Path("../data/vqa"), "data")
    monkeypatch.setenv("VQA_ROOT", str(tmp_path))
    assert vs.paper_vqa_root(None) == (tmp_path, "env")
    assert vs.paper_vqa_root(str(tmp_path / "x")) == (tmp_path / "x", "param")

    class Recs(list):
        version = "v2"

        def __init__(self, n_questions, n_images):
            super().__init__(range(n_questions))
            self.image_paths = {i: f"{i}.jpg" for i in range(n_images)}

    data = SimpleNamespace(train=Recs(30, 10), val=Recs(12, 4))
    (row,) = vs.paper_data_row(data, "env")
    assert (row.name, row.root_kind, row.n_images) == ("VQA v2 (train2014 + val2014)", "env", 14)
    assert "30 train / 12 val questions" in row.caveat
