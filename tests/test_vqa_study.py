"""camlib.paper.vqa_study: notebook 07's pointing verdicts agree with vqa.pointing_summary."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from camlib.paper import vqa_study as vs
from camlib.paper.vqa_eval import pointing_summary


def _case(n: int = 120, seed: int = 0, cam_good: bool = True):
    rng = np.random.default_rng(seed)
    boxes = np.tile([10, 10, 19, 19], (n, 1))
    boxes[::7] = -1  # questions without an object
    inside, outside = np.tile([15, 15], (n, 1)), np.tile([40, 40], (n, 1))
    hit = rng.random(n) < (0.9 if cam_good else 0.05)
    pointing = {"peak_answer": np.where(hit[:, None], inside, outside), "peak_pred": inside,
                "peak_wrong": np.where((rng.random(n) < 0.3)[:, None], inside, outside)}
    labels = rng.integers(0, 5, n)
    labels[::11] = -1  # unknown answers
    qtypes = np.array(["colour", "shape", "exists"])[np.arange(n) % 3]
    return pointing, SimpleNamespace(boxes=boxes, labels=labels, qtypes=qtypes.tolist())


def test_pointing_hits_average_to_pointing_summary():
    pointing, ts = _case()
    hits, has = vs.pointing_hits(pointing, ts.boxes, (48, 48), ts.labels)
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
