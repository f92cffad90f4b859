"""Generic localizable deep features (paper section 4): pooled CAM features, a linear SVM, CAMs from it.

The paper uses the layer CAM maps come from as a generic image descriptor: global-average-pool the last
convolutional features ``f_k(x, y)`` into ``F_k`` (k = 1..K), train a linear SVM on ``F`` for a new
task (Tables 4 and 5), and, because the SVM is linear in ``F``, read a class activation map out of its
weights exactly as from a softmax layer: ``M_c(x, y) = sum_k w_k^c f_k(x, y)`` (Figures 9-11).

This module does the three steps, each once:

- :func:`gap_features` / :func:`extract_features`: the pooled output of the feature layer that
  :class:`camlib.core.cam.CAM` finds (or of any named layer: e.g. AlexNet's fc7 for Table 5), for a whole
  dataset, in eval mode, stopping the forward pass right after that layer. :func:`cached_features`
  stores them on disk under a key made of the model's name AND a hash of its weights
  (:func:`model_fingerprint`), the layer and pooling, the preprocessing description and the
  dataset's identity: change any of them and the cache misses.
- :func:`fit_linear_svm`: scikit-learn's ``LinearSVC`` on standardised features, ``C`` chosen by
  cross-validation (``GridSearchCV``, stratified folds) on the TRAINING features only; the test
  features are touched once, by :meth:`SVMProbe.accuracy`.
- :func:`svm_cam`: CAMs of the SVM's classes. The SVM's weights, folded back onto the raw pooled
  features (:meth:`SVMProbe.linear_weights`), become the ``fc`` layer of :class:`LinearOnFeatures`,
  a ``features -> pooling -> linear`` head on the backbone, and :class:`camlib.core.cam.CAM` computes the
  maps with its own code (nothing re-derived here). :func:`cam_boxes` boxes them with the paper's rule.

Crops for Table 4 (:func:`crop_resize`, :func:`square_boxes`): the region of a box, resampled to the
network's input size (``torchvision.ops.roi_align``: bilinear, averaging 2 x 2 samples per output
pixel, so downscaling is anti-aliased).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from camlib.core.boxes import paper_boxes
from camlib.core.cam import CAM, CAMOptions, CAMResult, HeadSpec, postprocess
from camlib.core.digest import array_digest, model_fingerprint

__all__ = [
    "FEATURES_VERSION",
    "FeatureCache",
    "FeatureSet",
    "LinearOnFeatures",
    "SVMProbe",
    "array_digest",
    "cached_features",
    "cam_boxes",
    "cam_boxes_of",
    "crop_resize",
    "extract_features",
    "find_head",
    "fit_linear_svm",
    "gap_features",
    "linear_probe",
    "model_fingerprint",
    "paired_iou",
    "square_boxes",
    "svm_cam",
]

#: Bumped when the way features are computed changes (part of every cache key).
FEATURES_VERSION = 1


# --------------------------------------------------------------------------- extraction


class _Stop(Exception):
    """Raised by the capture hook: nothing after the feature layer needs to run."""


def _module(model: nn.Module, name: str) -> nn.Module:
    modules = dict(model.named_modules())
    if name not in modules:
        raise ValueError(f"{type(model).__name__} has no layer {name!r}; some it has: {', '.join(list(modules)[-8:])}")
    return modules[name]


def _capture(model: nn.Module, layer: nn.Module, x: Tensor, calls: int | None = None) -> tuple[Tensor, int]:
    """The output of ``layer`` for input ``x`` and how often the layer ran.

    A layer may run several times in one forward pass (EfficientNet's ``_swish`` serves the stem AND the
    head): the LAST output is the one that feeds the head, as in :class:`CAM`. With ``calls`` (the count
    seen on an earlier full pass) the forward pass stops right after that call.
    """
    box: dict[str, object] = {"n": 0}

    def hook(_m, _i, out):
        box["out"] = out
        box["n"] = int(box["n"]) + 1
        if calls is not None and box["n"] == calls:
            raise _Stop

    handle = layer.register_forward_hook(hook)
    try:
        model(x)
    except _Stop:
        pass
    finally:
        handle.remove()
    if "out" not in box:
        raise RuntimeError(f"layer {type(layer).__name__} was not called in the forward pass")
    out = box["out"]
    if not isinstance(out, Tensor):
        raise TypeError(f"the layer returned {type(out).__name__}, not a tensor")
    return out, int(box["n"])


def _pool(out: Tensor, pool: str, relu: bool) -> Tensor:
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


def _batches(data, batch_size: int, num_workers: int, pin_memory: bool = False):
    """(x, y-or-None) batches of a (N, 3, H, W) tensor, or of a dataset of (x, y) pairs / tensors
    (loaded by ``num_workers`` worker processes, into pinned memory when ``pin_memory``)."""
    if isinstance(data, Tensor):
        for s in range(0, len(data), batch_size):
            yield data[s : s + batch_size], None
        return
    from torch.utils.data import DataLoader

    loader = DataLoader(data, batch_size=batch_size, shuffle=False, num_workers=num_workers, pin_memory=pin_memory)
    for item in loader:
        if isinstance(item, (list, tuple)):
            yield item[0], torch.as_tensor(item[1]) if len(item) > 1 and not isinstance(item[1], dict) else None
        else:
            yield item, None


def find_head(model: nn.Module, example: Tensor) -> HeadSpec:
    """The CAM head of ``model`` (feature layer, pooling, fc) found by :class:`CAM` on ``example``."""
    cam = CAM(model)
    cam(example[:1])
    assert cam.head is not None
    return cam.head


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
    target = _module(model, layer)
    was = [(m, m.training) for m in model.modules()]
    model.eval()
    feats, labels = [], []
    total = None
    try:
        total = -(-len(data) // batch_size)
    except TypeError:
        pass
    pin = torch.device(device).type == "cuda"
    try:
        calls = None
        for x, y in tqdm(_batches(data, batch_size, num_workers, pin), total=total, desc=desc, leave=False,
                         disable=not progress):
            out, calls = _capture(model, target, x.to(device, non_blocking=pin), calls)
            feats.append(_pool(out.float(), pool, relu).cpu())
            if y is not None:
                labels.append(y.reshape(-1).cpu())
    finally:
        for m, flag in was:
            m.training = flag
    X = torch.cat(feats).numpy().astype(np.float32, copy=False) if feats else np.zeros((0, 0), np.float32)
    y_all = torch.cat(labels).numpy().astype(np.int64) if labels else None
    if shard:
        X = distributed.gather_rows(X if len(X) else None)
        y_all = distributed.gather_rows(y_all)
    return X, y_all


def _first_input(data) -> Tensor:
    if isinstance(data, Tensor):
        return data[:1]
    item = data[0]
    x = item[0] if isinstance(item, (list, tuple)) else item
    return x[None]


def gap_features(model: nn.Module, data, *, head: HeadSpec | None = None, **kwargs) -> tuple[np.ndarray, np.ndarray | None]:
    """The globally pooled CAM feature layer (the paper's GAP features): :func:`extract_features` on the
    layer, pooling and ReLU of ``head`` (found by :func:`find_head` on the first image when None), so
    that ``model.fc(features) == logits``."""
    head = head if head is not None else find_head(model, _first_input(data).to(kwargs.get("device", "cpu")))
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

    def get_or_compute(self, parts: dict, compute: Callable[[], dict[str, np.ndarray]]) -> tuple[dict[str, np.ndarray], bool]:
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
        head = find_head(model, _first_input(data).to(kwargs.get("device", "cpu")))
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


# --------------------------------------------------------------------------- the linear SVM


@dataclass
class SVMProbe:
    """A fitted ``StandardScaler -> LinearSVC`` with ``C`` chosen by cross-validation on the train set.

    ``best_C``; ``cv_scores``: mean CV accuracy (%) per C; ``search``: the ``GridSearchCV``.
    """

    search: object
    best_C: float
    cv_scores: dict[float, float]
    n_train: int
    classes: np.ndarray = field(repr=False)

    @property
    def pipeline(self):
        return self.search.best_estimator_

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.pipeline.predict(np.asarray(X, dtype=np.float32))

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        return self.pipeline.decision_function(np.asarray(X, dtype=np.float32))

    def accuracy(self, X: np.ndarray, y: np.ndarray) -> float:
        """Accuracy (%) on held-out features: the one time test data meets the SVM."""
        return float(100.0 * np.mean(self.predict(X) == np.asarray(y)))

    def linear_weights(self) -> tuple[np.ndarray, np.ndarray]:
        """``(W (C, K), b (C,))`` on the RAW pooled features: ``F @ W.T + b == decision_function(F)``.

        The scaler is folded in: ``W = coef / scale``, ``b = intercept - W @ mean``. A two-class SVM
        (one score ``s``) becomes two rows ``(-s, s)`` so that every class has its own map.
        """
        scaler, svm = self.pipeline.named_steps["scale"], self.pipeline.named_steps["svm"]
        coef = np.asarray(svm.coef_, dtype=np.float64)
        intercept = np.asarray(svm.intercept_, dtype=np.float64)
        W = coef / scaler.scale_[None, :]
        b = intercept - W @ scaler.mean_
        if W.shape[0] == 1 and len(self.classes) == 2:
            W, b = np.concatenate([-W, W]), np.concatenate([-b, b])
        return W.astype(np.float32), b.astype(np.float32)


def fit_linear_svm(
    X_train: np.ndarray,
    y_train: np.ndarray,
    *,
    Cs: Sequence[float] = (0.001, 0.01, 0.1, 1.0),
    cv: int = 3,
    seed: int = 0,
    max_iter: int = 5000,
    n_jobs: int | None = None,
    estimator=None,
) -> SVMProbe:
    """Linear SVM on TRAINING features, ``C`` picked by ``cv``-fold stratified cross-validation on them.

    The pipeline standardises each feature (mean 0, variance 1, fitted inside each fold) and fits
    ``LinearSVC(C, squared hinge, one-vs-rest)``; the best ``C`` is refitted on all training features.
    Test features never enter this function. ``estimator`` replaces ``LinearSVC`` (tests pass a spy).
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    X = np.asarray(X_train, dtype=np.float32)
    y = np.asarray(y_train)
    if X.ndim != 2 or len(X) != len(y):
        raise ValueError(f"expected X (N, K) and y (N,), got {X.shape} and {y.shape}")
    counts = np.unique(y, return_counts=True)[1]
    if len(counts) < 2:
        raise ValueError("need at least two classes in the training labels")
    if counts.min() < cv:
        raise ValueError(f"every class needs at least cv={cv} training examples; the smallest has {counts.min()}")
    svm = estimator if estimator is not None else LinearSVC(dual="auto", max_iter=max_iter, random_state=seed)
    pipe = Pipeline([("scale", StandardScaler()), ("svm", svm)])
    search = GridSearchCV(
        pipe,
        {"svm__C": [float(c) for c in Cs]},
        cv=StratifiedKFold(n_splits=cv, shuffle=True, random_state=seed),
        scoring="accuracy",
        n_jobs=n_jobs,
        refit=True,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        search.fit(X, y)
    scores = {float(c): 100.0 * float(s) for c, s in zip(search.cv_results_["param_svm__C"],
                                                         search.cv_results_["mean_test_score"], strict=True)}
    return SVMProbe(search, float(search.best_params_["svm__C"]), scores, len(y), np.unique(y))


# --------------------------------------------------------------------------- CAMs from the SVM


class LinearOnFeatures(nn.Module):
    """``model``'s CAM feature layer -> the same global pooling -> a NEW linear layer ``fc`` (W, b).

    With the SVM's :meth:`SVMProbe.linear_weights` as (W, b) its logits are the SVM's decision values,
    and :class:`camlib.core.cam.CAM` (``feature_layer="model." + head.feature_layer``, ``fc_layer="fc"``)
    gives the SVM's class activation maps. The backbone stops right after the feature layer.
    """

    def __init__(self, model: nn.Module, head: HeadSpec, weight, bias) -> None:
        super().__init__()
        W = torch.as_tensor(np.asarray(weight), dtype=torch.float32)
        b = torch.as_tensor(np.asarray(bias), dtype=torch.float32)
        if W.ndim != 2 or b.shape != (W.shape[0],):
            raise ValueError(f"weight must be (C, K) and bias (C,), got {tuple(W.shape)} and {tuple(b.shape)}")
        self.model = model
        self.head = head
        self.fc = nn.Linear(W.shape[1], W.shape[0])
        with torch.no_grad():
            self.fc.weight.copy_(W)
            self.fc.bias.copy_(b)
        self._layer = _module(model, head.feature_layer)
        self._calls: int | None = None  # calls of the layer per forward pass, learnt on the first one

    @property
    def feature_layer(self) -> str:
        return f"model.{self.head.feature_layer}"

    def forward(self, x: Tensor) -> Tensor:
        f, self._calls = _capture(self.model, self._layer, x, self._calls)
        return self.fc(_pool(f, self.head.pool, self.head.relu))


def svm_cam(model: nn.Module, probe: SVMProbe, x: Tensor, head: HeadSpec | None = None, **cam_kwargs) -> CAMResult:
    """CAMs of the SVM's classes for the images ``x``: ``M_c(x, y) = sum_k W_ck f_k(x, y)``.

    ``cam_kwargs`` go to the :class:`CAM` call (``targets=``, ``topk=``, ``all_classes=True``; none =
    the SVM's top class). ``result.logits`` are the SVM's decision values.
    """
    head = head if head is not None else find_head(model, x[:1])
    W, b = probe.linear_weights()
    wrapper = LinearOnFeatures(model, head, W, b)
    return CAM(wrapper, feature_layer=wrapper.feature_layer, fc_layer="fc")(x, **cam_kwargs)


def cam_boxes_of(
    cam: CAM,
    data,
    *,
    sizes: Sequence[tuple[int, int]] | tuple[int, int],
    targets: Sequence[int] | None = None,
    fractions: Sequence[float] = (0.2,),
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> tuple[dict[float, np.ndarray], np.ndarray]:
    """Paper boxes of one CAM per image -> ``({fraction: boxes (N, 4)}, classes (N,))``.

    The map of ``targets[i]`` (or of the top-scoring class when None) is upsampled bilinearly to
    ``sizes[i]`` (H, W) (one size for all images, or one per image: where the boxes will be used),
    divided by its max and boxed at each ``fraction`` of the max (largest connected component).
    """
    options = CAMOptions(upsample="bilinear", size="original", relu=False, normalize="max")
    one_size = isinstance(sizes, tuple) and len(sizes) == 2 and all(isinstance(s, (int, np.integer)) for s in sizes)
    boxes: dict[float, list[np.ndarray]] = {float(f): [] for f in fractions}
    classes = []
    start = 0
    total = None
    try:
        total = -(-len(data) // batch_size)
    except TypeError:
        pass
    for x, _ in tqdm(_batches(data, batch_size, 0), total=total, desc="CAM boxes", leave=False, disable=not progress):
        B = len(x)
        t = None if targets is None else [int(v) for v in targets[start : start + B]]
        out = cam(x.to(device), targets=t)
        for i in range(B):
            size = sizes if one_size else sizes[start + i]
            m = postprocess(out.maps[i : i + 1, :1].float().cpu(), options, original_size=tuple(int(s) for s in size))
            for f in boxes:
                boxes[f].append(paper_boxes(m[0, 0], f))
        classes.append(out.classes[:, 0].cpu())
        start += B
    return {f: np.stack(b).astype(np.int64) for f, b in boxes.items()}, torch.cat(classes).numpy()


def cam_boxes(
    model: nn.Module,
    probe: SVMProbe,
    data,
    *,
    sizes: Sequence[tuple[int, int]] | tuple[int, int],
    targets: Sequence[int] | None = None,
    fraction: float = 0.2,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Paper boxes of the SVM's CAMs (:func:`svm_cam`) -> ``(boxes (N, 4), classes (N,))``; the class is
    ``targets[i]`` or, when None, the SVM's prediction. See :func:`cam_boxes_of`."""
    head = find_head(model, _first_input(data).to(device))
    W, b = probe.linear_weights()
    wrapper = LinearOnFeatures(model, head, W, b).to(device)
    cam = CAM(wrapper, feature_layer=wrapper.feature_layer, fc_layer="fc")
    boxes, classes = cam_boxes_of(cam, data, sizes=sizes, targets=targets, fractions=(fraction,),
                                  batch_size=batch_size, device=device, progress=progress)
    return boxes[float(fraction)], classes


def linear_probe(X_train, y_train, X_test, y_test, **svm_kwargs) -> dict:
    """:func:`fit_linear_svm` on the training features, then accuracy (%) on the test features once.

    Returns ``{"acc", "best_C", "cv_acc" (mean CV accuracy per C), "n_train", "n_test", "dim"}``.
    """
    probe = fit_linear_svm(X_train, y_train, **svm_kwargs)
    return {
        "acc": probe.accuracy(X_test, y_test),
        "best_C": probe.best_C,
        "cv_acc": {f"{c:g}": v for c, v in probe.cv_scores.items()},
        "n_train": int(len(y_train)),
        "n_test": int(len(y_test)),
        "dim": int(np.asarray(X_train).shape[1]),
    }


def paired_iou(pred, gt) -> np.ndarray:
    """IoU of ``pred[i]`` with ``gt[i]`` for every i (inclusive boxes; NO_BOX rows give 0)."""
    from camlib.core.boxes import iou

    p, g = np.asarray(pred).reshape(-1, 4), np.asarray(gt).reshape(-1, 4)
    if len(p) != len(g):
        raise ValueError(f"{len(p)} predicted boxes for {len(g)} ground-truth boxes")
    return np.array([iou(a, b)[0, 0] for a, b in zip(p, g, strict=True)], dtype=np.float64)


# --------------------------------------------------------------------------- crops


def square_boxes(boxes, image_size: tuple[int, int] | Sequence[tuple[int, int]], margin: float = 0.0) -> np.ndarray:
    """Grow inclusive boxes to squares of side ``max(w, h) * (1 + margin)`` around their centres, shifted
    (and if need be shrunk) to stay inside the image (H, W). :data:`camlib.core.boxes.NO_BOX` rows become
    the whole image."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    sizes = np.broadcast_to(np.asarray(image_size, dtype=np.float64).reshape(-1, 2), (len(b), 2))
    out = np.empty((len(b), 4), dtype=np.int64)
    for i, ((x0, y0, x1, y1), (H, W)) in enumerate(zip(b, sizes, strict=True)):
        if x0 < 0 or x1 < x0 or y1 < y0:
            out[i] = (0, 0, W - 1, H - 1)
            continue
        side = min(max(x1 - x0 + 1, y1 - y0 + 1) * (1.0 + margin), H, W)
        cx, cy = (x0 + x1 + 1) / 2.0, (y0 + y1 + 1) / 2.0
        nx0 = int(round(min(max(cx - side / 2, 0.0), W - side)))
        ny0 = int(round(min(max(cy - side / 2, 0.0), H - side)))
        s = int(round(side))
        out[i] = (nx0, ny0, min(nx0 + s - 1, int(W) - 1), min(ny0 + s - 1, int(H) - 1))
    return out


def crop_resize(images, boxes, size: int | tuple[int, int], *, batch_size: int = 256) -> Tensor:
    """The regions of inclusive ``boxes`` of ``images`` resampled to ``size`` -> (N, 3, h, w) float in [0, 1].

    ``images``: (N, H, W, 3) uint8 or (N, 3, H, W) float; ``boxes``: (N, 4) (NO_BOX rows = the whole
    image). ``torchvision.ops.roi_align`` with ``aligned=True`` on the box's pixel extent
    ``[x0, x1 + 1) x [y0, y1 + 1)`` and 2 x 2 samples per output pixel.
    """
    from torchvision.ops import roi_align

    size = (int(size), int(size)) if isinstance(size, (int, np.integer)) else tuple(int(s) for s in size)
    imgs = torch.as_tensor(np.asarray(images)) if not isinstance(images, Tensor) else images
    if imgs.dtype == torch.uint8:
        imgs = imgs.permute(0, 3, 1, 2)
    b = torch.as_tensor(np.asarray(boxes), dtype=torch.float32).reshape(-1, 4).clone()
    if len(b) != len(imgs):
        raise ValueError(f"{len(imgs)} images but {len(b)} boxes")
    H, W = imgs.shape[-2:]
    bad = (b[:, 0] < 0) | (b[:, 2] < b[:, 0]) | (b[:, 3] < b[:, 1])
    b[bad] = torch.tensor([0.0, 0.0, W - 1.0, H - 1.0])
    b[:, 2:] += 1.0
    out = []
    for s in range(0, len(imgs), batch_size):
        chunk = imgs[s : s + batch_size].float()
        if imgs.dtype == torch.uint8:
            chunk = chunk / 255.0
        rois = torch.cat([torch.arange(len(chunk), dtype=torch.float32)[:, None], b[s : s + batch_size]], 1)
        out.append(roi_align(chunk, rois, size, spatial_scale=1.0, sampling_ratio=2, aligned=True))
    return torch.cat(out).clamp_(0.0, 1.0)
