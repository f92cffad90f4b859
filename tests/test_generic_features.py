"""camlib.paper.generic_features: the Table 5 probe and the verdicts of notebook 05."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from camlib.core import features as FT
from camlib.paper import generic_features as gf


def _hits(rate: float, n: int = 200, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).random(n) < rate).astype(float)


def test_as_good_is_non_inferiority_within_the_margin():
    same = _hits(0.7)
    much_worse = same * (np.random.default_rng(1).random(200) < 0.5)  # loses about half of its hits
    v = gf.gap_vs_original_verdicts(
        {
            "gap": {"a": same, "b": much_worse, "c": same},
            "original": {"a": same, "b": same, "c": _hits(0.7, seed=2)},
        }
    )
    assert v["a"]["as_good"] == "agrees"  # identical hits: [0, 0] + 2 > 0
    assert v["b"]["as_good"] == "reversed"  # about -35 points: the whole interval below -2
    assert v["c"]["as_good"] == "not resolved"  # independent draws: the interval is wider than the margin
    assert v["a"]["gap_minus_original"]["value"] == 0.0 and v["a"]["margin"] == gf.MARGIN
    assert "beat_pixels" not in v["a"]


def test_quick_metrics_sentence_and_pixels_verdicts():
    ones, zeros = np.ones(50), np.zeros(50)
    table = {
        row: {"s": {"acc": 100.0 * h.mean()}}
        for row, h in (("pixels", zeros), ("original", ones), ("gap", ones))
    }
    hits = {"pixels": {"s": zeros}, "original": {"s": ones}, "gap": {"s": ones}}
    m = gf.quick_metrics(table, hits, seed=0, size=32)
    assert m["gap_minus_original"] == {"s": 0.0} and m["size"] == 32
    assert m["verdicts"]["s"]["beat_pixels"] == {"original": "agrees", "gap": "agrees"}
    assert "AGREES with the paper's Table 5 on 1 of 1 sets" in m["verdict"]
    assert "beat raw pixels (interval above 0) on 1 of 1 sets" in m["verdict"]


def test_table5_probe_on_a_tiny_folder(tmp_path):
    from camlib.datasets.table5 import open_table5
    from camlib.models import SmallGAPNet

    rng = np.random.default_rng(0)
    for c, colour in (("RockClimbing", 0), ("polo", 2)):
        d = tmp_path / "uiuc_event8" / c
        d.mkdir(parents=True)
        for i in range(140):
            img = rng.integers(0, 80, (16, 16, 3), dtype=np.uint8)
            img[..., colour] = 200
            Image.fromarray(img).save(d / f"{i}.png")

    def preprocess(im):
        return torch.from_numpy(np.asarray(im, dtype=np.float32) / 255.0).permute(2, 0, 1)

    data = open_table5("uiuc_event8", tmp_path, preprocess, seed=0)
    torch.manual_seed(0)
    net = SmallGAPNet(2, channels=(8,), width=8).eval()
    cache = FT.FeatureCache(tmp_path / "cache")
    r = gf.table5_probe(
        net,
        data,
        model_name="tiny",
        preprocessing="16x16",
        cache=cache,
        svm=dict(Cs=(1.0,), cv=3),
        progress=False,
    )
    assert r["n_train"] == 140 and r["n_test"] == 120 and r["acc"] > 90


def test_open_paper_datasets_refuses_unknown_names():
    with pytest.raises(ValueError, match="unknown dataset.*'imagenet'"):
        gf.open_paper_datasets("scene15, imagenet", None, None)
