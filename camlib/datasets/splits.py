"""Seeded train/test splits of a dataset's indices: the ONE family of split helpers in camlib.

- :func:`split_per_class`: per class, ``n_train`` random images for training, then ``n_test`` (None:
  all the rest) for test (the Table 5 protocols);
- :func:`stratified_split`: per class, a random ``train_share`` of the images for training, the rest
  for test (pattern discovery; ``train_share=0.5`` gives stratified halves);
- :func:`random_halves`: ``range(n)`` cut in two random halves, ignoring classes (held-out threshold
  choice).

The per-class splits draw ONE ``np.random.default_rng(seed).permutation`` per class, classes in
increasing order, so a split is a pure function of ``(labels, seed)`` and its parameters. Every
function returns ``(train, test)``: sorted int64 index arrays, disjoint.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

__all__ = ["cap_per_class", "random_halves", "split_per_class", "stratified_split"]


def _shuffled_classes(labels, seed: int) -> Iterator[tuple[int, np.ndarray]]:
    """``(class, its indices in a random order)`` per class, classes ascending, one RNG for all."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    for c in np.unique(labels):
        yield c, rng.permutation(np.flatnonzero(labels == c))


def _joined(parts: list[np.ndarray]) -> np.ndarray:
    return np.sort(np.concatenate(parts)).astype(np.int64, copy=False) if parts else np.zeros(0, np.int64)


def split_per_class(
    labels, n_train: int, n_test: int | None = None, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Per class: ``n_train`` random images for training, then ``n_test`` (None = all the rest) for test.

    A class with no more than ``n_train`` images raises (it would have no test image).
    """
    train, test = [], []
    for c, idx in _shuffled_classes(labels, seed):
        if len(idx) <= n_train:
            raise ValueError(f"class {c} has {len(idx)} images, not more than n_train={n_train}")
        train.append(idx[:n_train])
        test.append(idx[n_train:] if n_test is None else idx[n_train : n_train + n_test])
    return _joined(train), _joined(test)


def stratified_split(labels, seed: int = 0, train_share: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Per class, ``k = max(floor(n_c * train_share), 1 if n_c > 1 else 0)`` random images for training
    and the other ``n_c - k`` for test (a class of one image goes to test)."""
    train, test = [], []
    for _, idx in _shuffled_classes(labels, seed):
        k = max(int(len(idx) * train_share), 1 if len(idx) > 1 else 0)
        train.append(idx[:k])
        test.append(idx[k:])
    return _joined(train), _joined(test)


def random_halves(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A random split of ``range(n)`` into two halves (``n // 2`` and the rest; sorted indices),
    reproducible from ``seed``."""
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[: n // 2]), np.sort(perm[n // 2 :])


def cap_per_class(labels, n: int | None, seed: int = 0) -> np.ndarray:
    """Sorted indices of at most ``n`` random images per class (all of a class with fewer; ``n=None``:
    every image), reproducible from ``seed``: a stated, seeded subset of a split."""
    labels = np.asarray(labels)
    if n is None:
        return np.arange(len(labels), dtype=np.int64)
    if n < 1:
        raise ValueError(f"n must be at least 1 (or None for all), got {n}")
    return _joined([idx[:n] for _, idx in _shuffled_classes(labels, seed)])
