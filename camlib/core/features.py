"""Generic localizable deep features (paper section 4): the pooled CAM feature layer and its disk cache.

The paper uses the layer CAM maps come from as a generic image descriptor: global-average-pool the last
convolutional features ``f_k(x, y)`` into ``F_k`` (k = 1..K) and train a linear classifier on ``F`` for a
new task (Tables 4 and 5; the SVM probe and its CAMs are in :mod:`camlib.core.probe`).

- :func:`extract_features` / :func:`gap_features`: the pooled output of the feature layer that
  :func:`camlib.core.cam.find_head` finds (or of any named layer: e.g. AlexNet's fc7 for Table 5), for a
  whole dataset, in eval mode (:func:`camlib.core.cam.eval_mode`), the forward pass stopping right after
  that layer (:func:`camlib.core.cam.capture` with ``stop_after``; :func:`layer_output`).
- :class:`FeatureCache` / :func:`cached_features`: the one feature cache. Entries are keyed on the
  model's name AND a hash of its weights (:func:`model_fingerprint`), the layer and pooling, the
  preprocessing description and the dataset's identity: change any of them and the cache misses.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from camlib.core.cam import HeadSpec, capture, eval_mode, find_head
from camlib.core.digest import array_digest, model_fingerprint

__all__ = [
    "FEATURES_VERSION",
    "FeatureCache",
    "FeatureSet",
    "array_digest",
    "cached_features",
    "extract_features",
    "extract_layers",
    "first_input",
    "gap_features",
    "iter_batches",
    "layer_output",
    "model_fingerprint",
    "pool_features",
]

#: Bumped when the way features are computed changes (part of every cache key).
FEATURES_VERSION = 1


# --------------------------------------------------------------------------- extraction


def layer_output(model: nn.Module, layer: str, x: Tensor, calls: int | None = None) -> tuple[Tensor, int]:
    """The output of the submodule ``layer`` for input ``x``, and how often the layer ran.

    A layer may run several times in one forward pass (EfficientNet's ``_swish`` serves the stem AND the
    head): the LAST output is the one that feeds the head, as in :class:`camlib.core.cam.CAM`. With
    ``calls`` (the count seen on an earlier full pass) the forward pass stops right after that call.
    """
    with capture(model, layer, stop_after=calls) as out:
        model(x)
    n = out.calls.get(layer, 0)
    if n == 0:
        raise RuntimeError(f"layer {layer!r} of {type(model).__name__} was not called in the forward pass")
    if layer not in out:
        raise TypeError(f"layer {layer!r} returned something other than a tensor")
    return out[layer], n


def pool_features(out: Tensor, pool: str, relu: bool) -> Tensor:
    """``F_k = pool_{x,y} a(f_k(x, y))`` of a (B, K, h, w) layer output (``a`` = ReLU when ``relu``,
    ``pool`` "avg" or "max"); a (B, K) output (a fully connected layer) is returned as it is."""
    if relu:
        out = out.relu()
    if out.ndim == 4:
        if pool == "avg":
            return out.mean((2, 3))
        if pool == "max":
            return out.amax((2, 3))
        raise ValueError(f"pool must be 'avg' or 'max' for a (B, K, h, w) layer, got {pool!r}")
    if out.ndim == 2:
        return out
    raise ValueError(f"expected a (B, K, h, w) or (B, K) layer output, got shape {tuple(out.shape)}")


def iter_batches(data, batch_size: int, num_workers: int = 0, pin_memory: bool = False):
    """(x, y-or-None) batches of a (N, 3, H, W) tensor, or of a dataset of (x, y) pairs / tensors
    (loaded by ``num_workers`` worker processes, into pinned memory when ``pin_memory``)."""
    if isinstance(data, Tensor):
        for s in range(0, len(data), batch_size):
            yield data[s : s + batch_size], None
        return
    from torch.utils.data import DataLoader

    loader = DataLoader(
        data, batch_size=batch_size, shuffle=False, num_workers=num_workers, pin_memory=pin_memory
    )
    for item in loader:
        if isinstance(item, (list, tuple)):
            yield (
                item[0],
                torch.as_tensor(item[1]) if len(item) > 1 and not isinstance(item[1], dict) else None,
            )
        else:
            yield item, None


@torch.inference_mode()
def extract_features(
    model: nn.Module,
    data,
    layer: str,
    *,
    pool: str = "avg",
    relu: bool = False,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    num_workers: int = 0,
    progress: bool = True,
    desc: str = "features",
    shard: bool = False,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Pooled outputs of ``layer`` for every image of ``data`` -> ``(X (N, K) float32, labels or None)``.

    ``data``: a (N, 3, H, W) tensor of network inputs, or a dataset of ``(input, label)`` pairs (or
    inputs). A (B, K, h, w) layer output is globally pooled (``pool`` "avg"/"max", after a ReLU when
    ``relu``); a (B, K) output (a fully connected layer) is kept as it is. The model runs in eval
    mode (its own train/eval flags are restored afterwards) and stops after ``layer``. On CUDA the
    batches are loaded into pinned memory and copied asynchronously.

    ``shard=True`` under ``torch.distributed`` (:mod:`camlib.core.distributed`, launched by torchrun): each
    process extracts a contiguous, batch-aligned block of ``data`` and the blocks are gathered in
    order, so every process returns the features of the whole dataset, equal to a one-process run.
    """
    from camlib.core import distributed

    if shard:
        data = distributed.shard(data, block=batch_size)
    feats, labels = [], []
    total = None
    try:
        total = -(-len(data) // batch_size)
    except TypeError:
        pass
    pin = torch.device(device).type == "cuda"
    with eval_mode(model):
        calls = None
        for x, y in tqdm(
            iter_batches(data, batch_size, num_workers, pin),
            total=total,
            desc=desc,
            leave=False,
            disable=not progress,
        ):
            out, calls = layer_output(model, layer, x.to(device, non_blocking=pin), calls)
            feats.append(pool_features(out.float(), pool, relu).cpu())
            if y is not None:
                labels.append(y.reshape(-1).cpu())
    X = torch.cat(feats).numpy().astype(np.float32, copy=False) if feats else np.zeros((0, 0), np.float32)
    y_all = torch.cat(labels).numpy().astype(np.int64) if labels else None
    if shard:
        X = distributed.gather_rows(X if len(X) else None)
        y_all = distributed.gather_rows(y_all)
    return X, y_all


@torch.inference_mode()
def extract_layers(
    model: nn.Module,
    data,
    layers: Sequence[str],
    *,
    pool: str = "avg",
    flatten: Sequence[str] = (),
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    progress: bool = True,
    desc: str = "features",
) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """Pooled outputs of SEVERAL layers from ONE forward pass per batch -> ``({layer: X (N, K)}, labels)``.

    Each layer's LAST output of the pass is pooled (``pool``, no ReLU), as :func:`extract_features` does
    for one layer: e.g. ``"_swish"`` of EfficientNet-Lite0 is its CAM layer (the ReLU6 after the head
    conv; the stem's call comes first), ``"_blocks.10"`` the trunk at stride 16. The full network runs.
    Layers named in ``flatten`` are flattened instead of pooled (e.g. a small resampled copy of the input).
    """
    feats: dict[str, list[Tensor]] = {n: [] for n in layers}
    labels = []
    with eval_mode(model):
        for x, y in tqdm(iter_batches(data, batch_size), desc=desc, leave=False, disable=not progress):
            with capture(model, list(layers)) as out:
                model(x.to(device))
            for n in layers:
                f = out[n].float()
                feats[n].append((f.flatten(1) if n in flatten else pool_features(f, pool, False)).cpu())
            if y is not None:
                labels.append(y.reshape(-1).cpu())
    X = {n: torch.cat(v).numpy().astype(np.float32, copy=False) for n, v in feats.items()}
    return X, (torch.cat(labels).numpy().astype(np.int64) if labels else None)


def first_input(data) -> Tensor:
    """The first network input of ``data`` (a tensor of inputs or a dataset of (input, ...) items) as a batch of one."""
    if isinstance(data, Tensor):
        return data[:1]
    item = data[0]
    x = item[0] if isinstance(item, (list, tuple)) else item
    return x[None]


def gap_features(
    model: nn.Module, data, *, head: HeadSpec | None = None, **kwargs
) -> tuple[np.ndarray, np.ndarray | None]:
    """The globally pooled CAM feature layer (the paper's GAP features): :func:`extract_features` on the
    layer, pooling and ReLU of ``head`` (found by :func:`camlib.core.cam.find_head` on the first image when None), so
    that ``model.fc(features) == logits``."""
    head = head if head is not None else find_head(model, first_input(data).to(kwargs.get("device", "cpu")))
    return extract_features(model, data, head.feature_layer, pool=head.pool, relu=head.relu, **kwargs)


# --------------------------------------------------------------------------- the cache


class FeatureCache:
    """Features on disk: ``<root>/<key>.npz`` (arrays) + ``<key>.json`` (what the key was made of).

    ``hits`` / ``misses`` count lookups; :meth:`get_or_compute` writes atomically, so an interrupted
    run never leaves a half-written entry.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(parts: dict) -> str:
        text = json.dumps(parts, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:24]

    def path(self, parts: dict) -> Path:
        return self.root / f"{self.key(parts)}.npz"

    def get_or_compute(
        self, parts: dict, compute: Callable[[], dict[str, np.ndarray]]
    ) -> tuple[dict[str, np.ndarray], bool]:
        """``(arrays, hit)``: the stored arrays of ``parts``, or ``compute()``'s, stored for next time."""
        path = self.path(parts)
        if path.is_file():
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
            self.hits += 1
            return arrays, True
        arrays = compute()
        self.misses += 1
        self.root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".tmp-", suffix=".npz")
        os.close(fd)
        try:
            np.savez(tmp, **arrays)
            os.replace(tmp, path)
        finally:
            Path(tmp).unlink(missing_ok=True)
        path.with_suffix(".json").write_text(json.dumps(parts, sort_keys=True, indent=1, default=str) + "\n")
        return arrays, False


@dataclass
class FeatureSet:
    """Features of one dataset: ``X`` (N, K), ``y`` (N,) or None, the cache ``key`` parts, ``cached``
    (True when read from disk) and the ``seconds`` it took."""

    X: np.ndarray
    y: np.ndarray | None
    parts: dict
    cached: bool
    seconds: float


def cached_features(
    model: nn.Module,
    data,
    *,
    model_name: str,
    preprocessing: str,
    dataset: str,
    cache: FeatureCache | str | Path | None = None,
    layer: str | None = None,
    pool: str | None = None,
    relu: bool = False,
    **kwargs,
) -> FeatureSet:
    """:func:`extract_features` through a :class:`FeatureCache`.

    ``layer=None``: the CAM feature layer with its pooling (:func:`gap_features`). The cache key holds
    ``model_name``, :func:`model_fingerprint` of the weights, the layer, pooling and ReLU,
    ``preprocessing`` (a description of how the inputs were made: size, normalisation, crops) and
    ``dataset`` (which images: name, split, count, seed; include :func:`array_digest` of crop boxes).
    ``cache=None`` computes without storing.
    """
    t0 = time.perf_counter()
    if layer is None:
        head = find_head(model, first_input(data).to(kwargs.get("device", "cpu")))
        layer, pool, relu = head.feature_layer, head.pool, head.relu
    pool = pool or "avg"
    parts = {
        "version": FEATURES_VERSION,
        "model": model_name,
        "weights_sha256": model_fingerprint(model),
        "layer": layer,
        "pool": pool,
        "relu": bool(relu),
        "preprocessing": preprocessing,
        "dataset": dataset,
    }

    def compute() -> dict[str, np.ndarray]:
        X, y = extract_features(model, data, layer, pool=pool, relu=relu, **kwargs)
        return {"X": X} if y is None else {"X": X, "y": y}

    if cache is None:
        arrays, hit = compute(), False
    else:
        store = cache if isinstance(cache, FeatureCache) else FeatureCache(cache)
        arrays, hit = store.get_or_compute(parts, compute)
    return FeatureSet(arrays["X"], arrays.get("y"), parts, hit, time.perf_counter() - t0)
