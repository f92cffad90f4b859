"""The procedural fine-grained birds (camlib.datasets.fine_grained)."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from camlib.datasets import fine_grained as FG


@pytest.fixture(scope="module")
def arrays():
    t0 = time.perf_counter()
    a = FG.make_bird_arrays(160, seed=3, size=128)
    a["seconds"] = time.perf_counter() - t0
    return a


def test_classes_are_crest_times_wing():
    assert len(FG.CLASSES) == 16 and len(set(FG.CLASSES)) == 16
    s = FG.make_bird_sample(5, seed=0)
    assert s.class_name == f"{s.crest}/{s.wing}" == FG.CLASSES[s.label]
    assert s.image.shape == (128, 128, 3) and s.image.dtype == np.uint8


def test_deterministic_and_splits_differ():
    a, b = FG.make_bird_sample(11, seed=2), FG.make_bird_sample(11, seed=2)
    assert np.array_equal(a.image, b.image) and a.label == b.label and a.box == b.box
    assert not np.array_equal(a.image, FG.make_bird_sample(11, seed=3).image)
    tr, te = FG.FineGrainedBirds(4, seed=0, split="train"), FG.FineGrainedBirds(4, seed=0, split="test")
    assert not any(np.array_equal(x, y) for x in tr.images for y in te.images)
    assert tr.identity() != te.identity()
    x, y = tr[1]
    assert (
        x.shape == (3, 128, 128) and x.dtype == torch.float32 and 0 <= float(x.min()) and float(x.max()) <= 1
    )
    assert y == int(tr.labels[1])


def test_boxes_masks_parts(arrays):
    for i in range(len(arrays["labels"])):
        m = arrays["masks"][i]
        ys, xs = np.nonzero(m)
        assert tuple(arrays["boxes"][i]) == (xs.min(), ys.min(), xs.max(), ys.max())
        assert np.array_equal(arrays["parts"][i] > 0, m)
        assert not (arrays["distractors"][i] & m).any()
        crest = FG.CRESTS[arrays["labels"][i] // 4]
        assert ((arrays["parts"][i] == 6).any()) == (crest != "none")
        assert (arrays["parts"][i] == 7).any()  # every wing mark is visible


def test_birds_are_small_and_parts_smaller(arrays):
    b = arrays["boxes"]
    width = b[:, 2] - b[:, 0] + 1
    assert 20 <= width.min() and width.max() <= 0.4 * 128  # small in the scene
    assert np.median(width) < 0.32 * 128
    # the discriminative parts (crest + wing mark) are a small share of the image
    share = ((arrays["parts"] == 6) | (arrays["parts"] == 7)).mean(axis=(1, 2))
    assert share.max() < 0.03
    assert arrays["distractors"].any(axis=(1, 2)).all()  # every scene is cluttered


def test_species_balanced_and_fast(arrays):
    counts = np.bincount(arrays["labels"], minlength=16)
    assert counts.min() >= 3 and counts.max() <= 20  # 160 draws of 16 classes
    assert arrays["seconds"] < 10.0  # ~3 ms per 128 x 128 image on one core


def test_detection_set_has_birds_and_clutter_only():
    d = FG.make_detection_arrays(8, seed=0)
    assert d["labels"].tolist() == [0, 1] * 4
    for i in range(8):
        if d["labels"][i]:
            assert d["masks"][i].any() and d["boxes"][i][0] >= 0 and d["species"][i] >= 0
        else:
            assert not d["masks"][i].any() and d["boxes"][i].tolist() == [-1] * 4 and d["species"][i] == -1
            assert not d["parts"][i].any() and d["distractors"][i].any()
    sp = FG.FineGrainedBirds(8, seed=0, split="train")
    assert not any(np.array_equal(x, y) for x in d["images"] for y in sp.images)


def test_bad_arguments():
    with pytest.raises(ValueError):
        FG.make_bird_sample(-1)
    with pytest.raises(ValueError):
        FG.make_bird_sample(0, size=48)
    with pytest.raises(ValueError):
        FG.FineGrainedBirds(3, split="holdout")
