"""The linear probe of the paper's section 4: a linear SVM on pooled CAM features, its CAMs, and crops.

Because the SVM is linear in the pooled features ``F_k`` (:mod:`camlib.core.features`), a class activation
map can be read out of its weights exactly as from a softmax layer: ``M_c(x, y) = sum_k w_k^c f_k(x, y)``
(Figures 9-11).

- :func:`fit_linear_svm` / :func:`linear_probe`: scikit-learn's ``LinearSVC`` on standardised features,
  ``C`` chosen by cross-validation (``GridSearchCV``, stratified folds) on the TRAINING features only;
  the test features are touched once, by :meth:`SVMProbe.accuracy`.
- :func:`svm_cam`: CAMs of the SVM's classes. The SVM's weights, folded back onto the raw pooled
  features (:meth:`SVMProbe.linear_weights`), become the ``fc`` layer of :class:`LinearOnFeatures`, a
  ``features -> pooling -> linear`` head on the backbone, and :class:`camlib.core.cam.CAM` computes the
  maps with its own code (nothing re-derived here). :func:`cam_boxes` boxes them with the paper's rule.

Crops for Table 4 (:func:`crop_resize`, :func:`square_boxes`): the region of a box, resampled to the
network's input size (``torchvision.ops.roi_align``: bilinear, averaging 2 x 2 samples per output
pixel, so downscaling is anti-aliased).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from torch import Tensor, nn
from tqdm.auto import tqdm

from camlib.core.boxes import paper_boxes
from camlib.core.cam import CAM, PAPER_OPTIONS, CAMResult, HeadSpec, find_head, postprocess
from camlib.core.features import first_input, iter_batches, layer_output, pool_features

__all__ = [
    "LinearOnFeatures",
    "SVMProbe",
    "SquaredHingeSVC",
    "cam_boxes",
    "cam_boxes_of",
    "crop_resize",
    "features_and_boxes",
    "fit_linear_svm",
    "linear_probe",
    "paired_iou",
    "square_boxes",
    "svm_cam",
]


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
    solver: str = "liblinear",
) -> SVMProbe:
    """Linear SVM on TRAINING features, ``C`` picked by ``cv``-fold stratified cross-validation on them.

    The pipeline standardises each feature (mean 0, variance 1, fitted inside each fold) and fits
    ``LinearSVC(C, squared hinge, one-vs-rest)``; the best ``C`` is refitted on all training features.
    Test features never enter this function. ``estimator`` replaces ``LinearSVC`` (tests pass a spy);
    ``solver="lbfgs"`` uses :class:`SquaredHingeSVC`, the same objective solved for all classes at once
    (much faster with many classes; the real-photo runs of notebooks 04 and 05 use it).
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
        raise ValueError(
            f"every class needs at least cv={cv} training examples; the smallest has {counts.min()}"
        )
    if solver not in ("liblinear", "lbfgs"):
        raise ValueError(f"solver must be 'liblinear' or 'lbfgs', got {solver!r}")
    if estimator is not None:
        svm = estimator
    elif solver == "lbfgs":
        svm = SquaredHingeSVC(max_iter=min(max_iter, 500))
    else:
        svm = LinearSVC(dual="auto", max_iter=max_iter, random_state=seed)
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
    scores = {
        float(c): 100.0 * float(s)
        for c, s in zip(
            search.cv_results_["param_svm__C"], search.cv_results_["mean_test_score"], strict=True
        )
    }
    return SVMProbe(search, float(search.best_params_["svm__C"]), scores, len(y), np.unique(y))


class SquaredHingeSVC(ClassifierMixin, BaseEstimator):
    """LinearSVC's primal problem solved for ALL classes at once (``solver="lbfgs"`` of :func:`fit_linear_svm`).

    One-vs-rest, L2-regularised squared hinge with the bias as a constant feature (liblinear's
    ``intercept_scaling=1``, so the bias is regularised too): per class ``c``,
    ``min 0.5 |[w_c; b_c]|^2 + C sum_i max(0, 1 - y_ic (w_c . x_i + b_c))^2`` with ``y_ic = +-1``, the
    objective of ``LinearSVC(loss="squared_hinge", penalty="l2")``. liblinear solves the classes one by
    one; here one full-batch L-BFGS (torch, float32) solves them together with matrix products, many
    times faster on 100 classes. A two-class problem has one score (positive = ``classes_[1]``), as in
    scikit-learn. A scikit-learn estimator, so ``GridSearchCV`` clones it.
    """

    def __init__(self, C: float = 1.0, max_iter: int = 500, tol: float = 1e-5) -> None:
        self.C, self.max_iter, self.tol = C, max_iter, tol

    def fit(self, X, y) -> SquaredHingeSVC:
        self.classes_ = np.unique(y)
        y = np.asarray(y)
        pos = self.classes_[1:] if len(self.classes_) == 2 else self.classes_
        Y = torch.as_tensor(np.where(y[:, None] == pos[None, :], 1.0, -1.0), dtype=torch.float32)
        Xb = torch.cat([torch.as_tensor(np.asarray(X, dtype=np.float32)), torch.ones(len(y), 1)], 1)
        W = torch.zeros(Xb.shape[1], Y.shape[1], requires_grad=True)
        opt = torch.optim.LBFGS(
            [W],
            lr=1,
            max_iter=self.max_iter,
            tolerance_grad=self.tol,
            tolerance_change=1e-9,
            history_size=20,
            line_search_fn="strong_wolfe",
        )

        def closure():
            opt.zero_grad()
            margin = (1.0 - Y * (Xb @ W)).clamp(min=0.0)
            loss = 0.5 * (W * W).sum() + float(self.C) * (margin * margin).sum()
            loss.backward()
            return loss

        with torch.enable_grad():
            opt.step(closure)
        W = W.detach().numpy().astype(np.float64)
        self.coef_, self.intercept_ = W[:-1].T.copy(), W[-1].copy()
        return self

    def decision_function(self, X) -> np.ndarray:
        s = np.asarray(X, dtype=np.float64) @ self.coef_.T + self.intercept_
        return s[:, 0] if s.shape[1] == 1 else s

    def predict(self, X) -> np.ndarray:
        s = self.decision_function(X)
        return self.classes_[(s > 0).astype(int)] if s.ndim == 1 else self.classes_[s.argmax(1)]


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
            raise ValueError(
                f"weight must be (C, K) and bias (C,), got {tuple(W.shape)} and {tuple(b.shape)}"
            )
        self.model = model
        self.head = head
        self.fc = nn.Linear(W.shape[1], W.shape[0])
        with torch.no_grad():
            self.fc.weight.copy_(W)
            self.fc.bias.copy_(b)
        if head.feature_layer not in dict(model.named_modules()):
            raise ValueError(f"{type(model).__name__} has no layer {head.feature_layer!r} (head {head})")
        self._calls: int | None = None  # calls of the layer per forward pass, learnt on the first one

    @property
    def feature_layer(self) -> str:
        return f"model.{self.head.feature_layer}"

    def forward(self, x: Tensor) -> Tensor:
        f, self._calls = layer_output(self.model, self.head.feature_layer, x, self._calls)
        return self.fc(pool_features(f, self.head.pool, self.head.relu))


def svm_cam(
    model: nn.Module, probe: SVMProbe, x: Tensor, head: HeadSpec | None = None, **cam_kwargs
) -> CAMResult:
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
    options = PAPER_OPTIONS  # bilinear to the given size, M / max(M)
    one_size = (
        isinstance(sizes, tuple) and len(sizes) == 2 and all(isinstance(s, (int, np.integer)) for s in sizes)
    )
    boxes: dict[float, list[np.ndarray]] = {float(f): [] for f in fractions}
    classes = []
    start = 0
    total = None
    try:
        total = -(-len(data) // batch_size)
    except TypeError:
        pass
    for x, _ in tqdm(
        iter_batches(data, batch_size, 0), total=total, desc="CAM boxes", leave=False, disable=not progress
    ):
        B = len(x)
        t = None if targets is None else [int(v) for v in targets[start : start + B]]
        out = cam(x.to(device), targets=t)
        _box_batch(out, sizes if one_size else sizes[start : start + B], one_size, boxes, options)
        classes.append(out.classes[:, 0].cpu())
        start += B
    return {f: np.stack(b).astype(np.int64) for f, b in boxes.items()}, torch.cat(classes).numpy()


def _box_batch(
    out: CAMResult, sizes, one_size: bool, boxes: dict[float, list[np.ndarray]], options=PAPER_OPTIONS
) -> None:
    """Append the paper box of each image's first map, at every fraction of ``boxes``, to ``boxes``."""
    for i in range(len(out.maps)):
        size = sizes if one_size else sizes[i]
        m = postprocess(
            out.maps[i : i + 1, :1].float().cpu(), options, original_size=tuple(int(s) for s in size)
        )
        for f in boxes:
            boxes[f].append(paper_boxes(m[0, 0], f))


@torch.inference_mode()
def features_and_boxes(
    model: nn.Module,
    data,
    *,
    sizes: Sequence[tuple[int, int]] | tuple[int, int],
    fractions: Sequence[float] = (0.2,),
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> dict[str, np.ndarray]:
    """ONE pass of :class:`CAM` over ``data``: the pooled CAM-layer features (what
    :func:`camlib.core.features.gap_features` gives) AND the paper boxes of the CAM of the network's
    OWN top-1 class (its classifier on those same features), upsampled to ``sizes`` (one (H, W) or one
    per image) and boxed at each fraction of the max.

    Returns ``{"X": (N, K), "y": labels (when data has them), "classes": top-1 (N,),
    "boxes@<f>": (N, 4) per fraction}`` (arrays only, so a :class:`~camlib.core.features.FeatureCache`
    can store it).
    """
    cam = CAM(model)
    one_size = (
        isinstance(sizes, tuple) and len(sizes) == 2 and all(isinstance(s, (int, np.integer)) for s in sizes)
    )
    boxes: dict[float, list[np.ndarray]] = {float(f): [] for f in fractions}
    feats, labels, classes, start = [], [], [], 0
    for x, y in tqdm(
        iter_batches(data, batch_size, 0), desc="features + CAM boxes", leave=False, disable=not progress
    ):
        out = cam(x.to(device))
        feats.append(pool_features(out.features.float(), out.head.pool, out.head.relu).cpu())
        _box_batch(out, sizes if one_size else sizes[start : start + len(x)], one_size, boxes)
        classes.append(out.classes[:, 0].cpu())
        if y is not None:
            labels.append(y.reshape(-1).cpu())
        start += len(x)
    result = {"X": torch.cat(feats).numpy().astype(np.float32), "classes": torch.cat(classes).numpy()}
    result.update({f"boxes@{f:g}": np.stack(b).astype(np.int64) for f, b in boxes.items()})
    if labels:
        result["y"] = torch.cat(labels).numpy().astype(np.int64)
    return result


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
    head = find_head(model, first_input(data).to(device))
    W, b = probe.linear_weights()
    wrapper = LinearOnFeatures(model, head, W, b).to(device)
    cam = CAM(wrapper, feature_layer=wrapper.feature_layer, fc_layer="fc")
    boxes, classes = cam_boxes_of(
        cam,
        data,
        sizes=sizes,
        targets=targets,
        fractions=(fraction,),
        batch_size=batch_size,
        device=device,
        progress=progress,
    )
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


def square_boxes(
    boxes, image_size: tuple[int, int] | Sequence[tuple[int, int]], margin: float = 0.0
) -> np.ndarray:
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
