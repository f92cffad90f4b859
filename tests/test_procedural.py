"""Tests of the procedural shapes dataset (camlib.datasets.procedural)."""

from __future__ import annotations

import hashlib
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from camlib.datasets import (
    CLASSES,
    PART_NAMES,
    SPLIT_OFFSETS,
    ProceduralShapes,
    Sample,
    make_arrays,
    make_sample,
)

SIZE = 64


@pytest.fixture(scope="module")
def timed2000() -> tuple[dict[str, np.ndarray], float]:
    t0 = time.perf_counter()
    arrays = make_arrays(2000, seed=0, size=SIZE)
    return arrays, time.perf_counter() - t0


@pytest.fixture(scope="module")
def arrays600(timed2000) -> dict[str, np.ndarray]:
    return {k: v[:600] for k, v in timed2000[0].items()}


def _tight_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())


# ------------------------------------------------------------------------------------------------
# API and determinism
# ------------------------------------------------------------------------------------------------


def test_api_shapes_and_types() -> None:
    assert len(CLASSES) == 6 and len(set(CLASSES)) == 6
    assert set(PART_NAMES) == set(CLASSES)
    assert all(2 <= len(PART_NAMES[c]) <= 3 for c in CLASSES)
    s = make_sample(3, seed=0, size=SIZE)
    assert isinstance(s, Sample)
    assert s.image.shape == (SIZE, SIZE, 3) and s.image.dtype == np.uint8
    assert s.mask.shape == (SIZE, SIZE) and s.mask.dtype == bool
    assert s.parts.shape == (SIZE, SIZE) and s.parts.dtype == np.uint8
    assert isinstance(s.label, int) and 0 <= s.label < len(CLASSES)
    assert isinstance(s.box, tuple) and len(s.box) == 4 and all(isinstance(v, int) for v in s.box)
    assert s.class_name == CLASSES[s.label]
    big = make_sample(3, seed=0, size=96)
    assert big.image.shape == (96, 96, 3) and big.label == s.label


def test_same_seed_and_index_is_identical() -> None:
    for i in (0, 7, 12345):
        a, b = make_sample(i, seed=5), make_sample(i, seed=5)
        for field in ("image", "mask", "parts", "distractors"):
            np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
        assert (a.label, a.box) == (b.label, b.box)


def test_different_seeds_and_indices_differ() -> None:
    a, b, c = make_sample(4, seed=0), make_sample(4, seed=1), make_sample(5, seed=0)
    assert not np.array_equal(a.image, b.image)
    assert not np.array_equal(a.image, c.image)


def test_make_arrays_matches_make_sample_in_any_order() -> None:
    arrays = make_arrays(6, seed=3, start=40)
    assert arrays["images"].shape == (6, SIZE, SIZE, 3) and arrays["images"].dtype == np.uint8
    assert arrays["labels"].dtype == np.int64 and arrays["boxes"].dtype == np.int64
    assert arrays["boxes"].shape == (6, 4)
    assert arrays["masks"].dtype == bool and arrays["parts"].dtype == np.uint8
    for j in reversed(range(6)):  # random access, reverse order
        s = make_sample(40 + j, seed=3)
        np.testing.assert_array_equal(arrays["images"][j], s.image)
        np.testing.assert_array_equal(arrays["masks"][j], s.mask)
        np.testing.assert_array_equal(arrays["parts"][j], s.parts)
        assert arrays["labels"][j] == s.label
        assert tuple(arrays["boxes"][j]) == s.box


def test_splits_are_disjoint_and_reproducible() -> None:
    hashes = {}
    for split in ("train", "val", "test"):
        ds = ProceduralShapes(150, seed=0, split=split)
        hashes[split] = {hashlib.sha1(img.tobytes()).hexdigest() for img in ds.images}
        assert len(hashes[split]) == 150
        k = 17
        s = make_sample(SPLIT_OFFSETS[split] + k, seed=0)
        np.testing.assert_array_equal(ds.images[k], s.image)
    assert not hashes["train"] & hashes["val"]
    assert not hashes["train"] & hashes["test"]
    assert not hashes["val"] & hashes["test"]


def test_dataset_items_and_ground_truth() -> None:
    ds = ProceduralShapes(12, seed=2, split="val", transform=lambda x: x * 2.0)
    assert len(ds) == 12 and ds.classes == CLASSES and ds.size == SIZE
    assert ds.images.shape == (12, SIZE, SIZE, 3) and ds.boxes.shape == (12, 4)
    x, y = ds[3]
    assert isinstance(y, int) and y == int(ds.labels[3])
    assert x.dtype == torch.float32 and x.shape == (3, SIZE, SIZE)
    plain = ProceduralShapes(12, seed=2, split="val")
    x0, _ = plain[3]
    assert 0.0 <= float(x0.min()) and float(x0.max()) <= 1.0
    torch.testing.assert_close(x, x0 * 2.0)
    torch.testing.assert_close(x0, torch.from_numpy(ds.images[3]).permute(2, 0, 1).float() / 255)
    xs, ys = plain.tensors()
    assert xs.shape == (12, 3, SIZE, SIZE) and ys.dtype == torch.int64
    torch.testing.assert_close(xs[3], x0)
    s = ds.sample(-1)
    ref = make_sample(SPLIT_OFFSETS["val"] + 11, seed=2)
    np.testing.assert_array_equal(s.image, ref.image)
    np.testing.assert_array_equal(s.parts, ref.parts)
    assert s.box == ref.box and s.label == ref.label
    with pytest.raises(IndexError):
        ds[12]
    loader = torch.utils.data.DataLoader(plain, batch_size=5)
    xb, yb = next(iter(loader))
    assert xb.shape == (5, 3, SIZE, SIZE) and yb.shape == (5,)


@pytest.mark.parametrize(
    "call",
    [
        lambda: ProceduralShapes(0),
        lambda: ProceduralShapes(-3),
        lambda: ProceduralShapes(5, size=31),
        lambda: ProceduralShapes(5, split="training"),
        lambda: make_arrays(0),
        lambda: make_arrays(3, size=16),
        lambda: make_sample(-1),
        lambda: make_sample(0, seed=-1),
        lambda: make_sample(0, size=20),
    ],
)
def test_invalid_inputs_raise(call) -> None:
    with pytest.raises(ValueError):
        call()


# ------------------------------------------------------------------------------------------------
# Ground truth consistency
# ------------------------------------------------------------------------------------------------


def test_box_is_tight_box_of_mask_and_inside(arrays600) -> None:
    for mask, box in zip(arrays600["masks"], arrays600["boxes"], strict=True):
        assert mask.any()
        assert tuple(box) == _tight_box(mask)
        x0, y0, x1, y1 = box
        assert 0 <= x0 <= x1 < SIZE and 0 <= y0 <= y1 < SIZE
    # The object is never cut by the image border.
    m = arrays600["masks"]
    assert not (m[:, 0].any() or m[:, -1].any() or m[:, :, 0].any() or m[:, :, -1].any())


def test_object_scale(arrays600) -> None:
    b = arrays600["boxes"]
    longest = np.maximum(b[:, 2] - b[:, 0] + 1, b[:, 3] - b[:, 1] + 1) / SIZE
    assert longest.min() >= 0.2 and longest.max() <= 0.8
    assert np.quantile(longest, 0.1) < 0.4 and np.quantile(longest, 0.9) > 0.6  # scales vary widely


def test_parts_agree_with_mask_and_all_parts_present(arrays600) -> None:
    np.testing.assert_array_equal(arrays600["parts"] > 0, arrays600["masks"])
    for parts, label in zip(arrays600["parts"], arrays600["labels"], strict=True):
        present = set(np.unique(parts)) - {0}
        assert present == set(range(1, len(PART_NAMES[CLASSES[label]]) + 1))


def test_classes_roughly_balanced(arrays600) -> None:
    counts = np.bincount(arrays600["labels"], minlength=len(CLASSES))
    assert counts.min() >= 70 and counts.max() <= 130, counts


def test_distractors_outside_object_and_visible(arrays600) -> None:
    """Clutter is real: pixels outside the object that stand out from a smooth background fit.

    Per image, fit a quadratic colour surface to the pixels outside the object's (dilated) box,
    robustly (refit without large residuals), and count the pixels whose colour is far from it.
    """
    n = 150
    images, boxes, dis = arrays600["images"][:n], arrays600["boxes"][:n], arrays600["distractors"][:n]
    assert not (dis & arrays600["masks"][:n]).any()
    yy, xx = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    basis = np.stack([np.ones_like(xx), xx, yy, xx * xx, yy * yy, xx * yy], -1).reshape(-1, 6)
    n_strong, precision = [], []
    for img, (x0, y0, x1, y1), d in zip(images, boxes, dis, strict=True):
        rgb = img.reshape(-1, 3).astype(np.float64)
        outside = np.ones((SIZE, SIZE), bool)
        outside[max(y0 - 2, 0) : y1 + 3, max(x0 - 2, 0) : x1 + 3] = False
        outside = outside.ravel()
        keep = outside
        for _ in range(3):  # weighted least squares via the 6x6 normal equations
            bk = basis * keep[:, None]
            coef = np.linalg.solve(bk.T @ basis, bk.T @ rgb)
            resid = np.linalg.norm(rgb - basis @ coef, axis=1)
            keep = outside & (resid < 40)
        strong = outside & (resid > 60)
        n_strong.append(int(strong.sum()))
        if strong.any():
            precision.append((strong & d.ravel()).sum() / strong.sum())
        # Distractors stay (almost) out of the object's box.
        if d.any():
            assert d[y0 : y1 + 1, x0 : x1 + 1].sum() <= 0.2 * d.sum()
    n_strong = np.array(n_strong)
    assert (n_strong >= 10).mean() > 0.75  # most images have clutter that stands out
    assert np.mean(precision) > 0.9  # and what stands out is the recorded distractors
    assert (dis.sum(axis=(1, 2)) >= 10).mean() > 0.75


# ------------------------------------------------------------------------------------------------
# Speed and learnability
# ------------------------------------------------------------------------------------------------


def test_generation_speed(timed2000) -> None:
    _, seconds = timed2000
    print(f"\nmake_arrays(2000, size=64): {seconds:.2f} s ({seconds / 2000 * 1e3:.2f} ms/sample)")
    assert seconds < 30.0


def _ridge_accuracy(features: np.ndarray, labels: np.ndarray, n_train: int, alpha: float = 10.0) -> float:
    """Test accuracy of a one-vs-rest ridge classifier on standardised features (closed form)."""
    f = features.astype(np.float64)
    mu, sd = f[:n_train].mean(axis=0), f[:n_train].std(axis=0) + 1e-8
    f = np.concatenate([(f - mu) / sd, np.ones((len(f), 1))], axis=1)
    targets = 2.0 * np.eye(len(CLASSES))[labels[:n_train]] - 1.0
    a = f[:n_train].T @ f[:n_train] + alpha * np.eye(f.shape[1])
    coef = np.linalg.solve(a, f[:n_train].T @ targets)
    return float(((f[n_train:] @ coef).argmax(axis=1) == labels[n_train:]).mean())


def test_not_separable_by_colour_but_learnable(timed2000) -> None:
    arrays, _ = timed2000
    images, labels = arrays["images"], arrays["labels"]
    n_train = 1500
    chance = 1.0 / len(CLASSES)

    # 1) The mean colour of an image says (almost) nothing about its class.
    acc_colour = _ridge_accuracy(images.reshape(len(images), -1, 3).mean(axis=1), labels, n_train)
    # 2) Nor do raw 16x16 pixels (the object moves, scales, and changes colour).
    x16 = F.avg_pool2d(torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255, 4)
    acc_pixels = _ridge_accuracy(x16.flatten(1).numpy(), labels, n_train)
    # 3) Translation-invariant shape features of the same 16x16 images (64 fixed random 3x3 filters,
    #    ReLU, global max and mean pooling: an untrained one-layer CNN) carry the class well above chance.
    g = torch.Generator().manual_seed(0)
    w = torch.randn(64, 3, 3, 3, generator=g)
    w -= w.mean(dim=(1, 2, 3), keepdim=True)
    with torch.no_grad():
        r = F.relu(F.conv2d(x16, w))
        feats = torch.cat([r.amax(dim=(2, 3)), r.mean(dim=(2, 3))], dim=1).numpy()
    acc_conv = _ridge_accuracy(feats, labels, n_train)
    print(
        f"\naccuracy: mean colour {acc_colour:.3f}, 16x16 pixels {acc_pixels:.3f}, random conv {acc_conv:.3f}"
    )
    assert acc_colour < 0.3
    assert acc_pixels < 0.45
    assert acc_conv > chance + 0.12
