"""Pattern discovery with CAMs of linear detectors on generic GAP features (paper section 4.2, Figs. 9-11).

The paper trains linear SVMs on the GAP features ``F_k = mean_{x,y} f_k(x, y)`` of its network and,
since an SVM is linear in ``F``, reads each SVM's class activation map ``M_c(x, y) = sum_k w_k^c
f_k(x, y)`` (:func:`probe_cams` runs it over a data set with the building blocks of
:mod:`camlib.core.cam`). Three uses, each with the numbers the paper only showed as pictures:

1. **Informative objects in scenes** (Fig. 9). For every image of scene ``c``, the high-activation
   region ``R = {M_c >= fraction * max M_c}`` (the paper's box rule before the box) and every annotated
   object instance ``O``: the object *overlaps the high-CAM region* when ``|R ∩ O| / |O| >= min_cover``
   (:func:`object_hits`). Its score for the scene is the share of the scene's images in which it does
   (:func:`object_rankings`), next to plain frequency (the share of images that contain it). A ranking
   is scored against known informativeness with precision at k and Spearman's rank correlation
   (:func:`ranking_scores`).
2. **Concept localization from weak labels** (Fig. 10). Positives: images whose caption holds a
   phrase; negatives: images whose caption has none of its words
   (:func:`camlib.datasets.captions.phrase_split`). :func:`mine_hard_negatives` trains the linear
   detector with hard-negative mining: start from random negatives, then repeatedly add the pool's
   negatives that violate the margin (decision value ``> -1``), highest first, and refit. The CAM's
   peak (:func:`cam_peaks`) localizes the concept; pointing accuracy uses
   :func:`camlib.paper.vqa.points_in_boxes`.
3. **Text detector** (Fig. 11). One box per image judged to hold text: the paper's box
   (:func:`camlib.core.boxes.paper_box`) of the text CAM. :func:`detection_scores` matches predicted to true
   boxes one-to-one at IoU >= 0.5 (:func:`camlib.core.boxes.iou`) and reports precision and recall.

Baselines: frequency ranking, the image's centre point (:func:`centre_points`) and a centre box of the
mean true box size (:func:`centre_box`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from camlib.core.boxes import NO_BOX, iou, paper_box
from camlib.core.cam import (
    CAMOptions,
    HeadSpec,
    capture,
    eval_mode,
    maps_from_features,
    postprocess,
    select_classes,
)
from camlib.core.features import layer_output, pool_features
from camlib.core.probe import SVMProbe, fit_linear_svm
from camlib.datasets import files as _files
from camlib.datasets.download import DatasetNotFoundError
from camlib.datasets.splits import stratified_split as split_halves
from camlib.datasets.transforms import OnUnitRange, WholeImage, lite0_input

__all__ = [
    "CAMPass",
    "ImageFiles",
    "MiningResult",
    "cam_peaks",
    "cams_from_maps",
    "centre_box",
    "centre_points",
    "choose_fraction",
    "detect_boxes",
    "detection_scores",
    "feature_maps",
    "ignored_predictions",
    "lite0_input",
    "match_boxes",
    "mine_hard_negatives",
    "object_hits",
    "object_hits_batch",
    "object_rankings",
    "plot_concepts",
    "plot_informative_objects",
    "plot_text_detections",
    "probe_cams",
    "ranking_scores",
    "require_folder",
    "split_halves",
    "tfidf_scores",
    "top_objects",
]


# --------------------------------------------------------------------------- inputs and data folders


def require_folder(root, what: str, layout: str, fetch: str) -> Path:
    """``Path(root)`` when it is an existing folder; otherwise :class:`DatasetNotFoundError` saying
    which parameter to set (``what``), the expected ``layout`` and how to get the data (``fetch``).
    The paper profile never falls back to other data."""
    if root is not None and Path(root).is_dir():
        return Path(root)
    where = "is not set (None)" if root is None else f"= {str(root)!r} is not a folder"
    raise DatasetNotFoundError(
        f"PROFILE='paper' needs {what}, which {where}.\nExpected layout:\n{layout}\nHow to get it: {fetch}"
    )


def ImageFiles(
    paths: Sequence[str | Path],
    size: int | tuple[int, int],
    labels: Sequence[int] | None = None,
    normalize: Callable[[Tensor], Tensor] = lite0_input,
) -> _files.ImageFiles:
    """Image files as network inputs: a :class:`camlib.datasets.files.ImageFiles` whose item ``i`` is
    ``(x, label)`` with ``x`` the image resized to ``size`` x ``size`` (or ``size = (H, W)``; no crop,
    PIL bilinear), RGB,
    in [0, 1], passed through ``normalize`` (default :func:`lite0_input`); labels default to 0.
    Its :meth:`~camlib.datasets.files.ImageFiles.image` gives the resized uint8 picture and
    :meth:`~camlib.datasets.files.ImageFiles.original_size` the file's (H, W) (read from its header)."""
    labels = np.zeros(len(paths), np.int64) if labels is None else labels
    return _files.ImageFiles(
        paths, labels, WholeImage(OnUnitRange(normalize), size, resample="pil"), display_size=size
    )


# --------------------------------------------------------------------------- CAMs of a linear probe


def _batches(data, batch_size: int, num_workers: int = 0):
    if isinstance(data, Tensor):
        for s in range(0, len(data), batch_size):
            yield data[s : s + batch_size]
        return
    from torch.utils.data import DataLoader

    for item in DataLoader(data, batch_size=batch_size, shuffle=False, num_workers=num_workers):
        yield item[0] if isinstance(item, (list, tuple)) else item


def _targets_of(targets, start: int, n: int) -> list[int] | list[list[int]] | None:
    """The slice of ``targets`` (None, one int, one class per image or an (N, n) table) for one batch."""
    if targets is None:
        return None
    if isinstance(targets, (int, np.integer)):
        return [int(targets)] * n
    return np.asarray(targets[start : start + n], dtype=np.int64).tolist()


@torch.inference_mode()
def probe_cams(
    model: nn.Module,
    probe: SVMProbe | Sequence[SVMProbe],
    data,
    head: HeadSpec,
    size: tuple[int, int],
    *,
    targets: Sequence[int] | Sequence[Sequence[int]] | np.ndarray | int | None = None,
    batch_size: int = 32,
    device: str | torch.device = "cpu",
    progress: bool = False,
    features: bool = False,
    num_workers: int = 0,
) -> tuple[np.ndarray, ...]:
    """SVM decision values and CAMs for every image of ``data``, in ONE pass of the network.

    ``head`` names the feature layer (and its pooling / ReLU) the SVMs were trained on. Several probes
    are stacked into one linear layer (W, b): their classes are numbered in order (a two-class probe has
    two rows, ``(-s, s)``; see :meth:`camlib.core.probe.SVMProbe.linear_weights`), so with probes
    ``[p, q]`` of two classes each, class 3 is ``q``'s positive class. Per image, with ``f`` the layer's
    output (caught by :func:`camlib.core.cam.capture`, the model in :func:`camlib.core.cam.eval_mode`)::

        s_c = sum_k W_ck F_k + b_c,   F_k = pool_{x,y} a(f_k(x, y))      (the SVM's decision value)
        M_c(x, y) = sum_k W_ck a(f_k(x, y))                              (camlib.core.cam.maps_from_features)

    ``targets`` (:func:`camlib.core.cam.select_classes`): one int for all images, one class per image,
    or an (N, n) table of classes per image; None = the top class. Each chosen map is upsampled
    bilinearly to ``size`` = (H, W) and divided by its max (:func:`camlib.core.cam.postprocess`; the
    paper's "fraction of the max" scale; a map whose max is <= 0 becomes 0). Returns ``scores`` (N, C)
    and ``maps`` (N, H, W), or (N, n, H, W) for a table of targets, and with ``features`` also the
    pooled features ``F`` (N, K) the SVMs read. ``data``: a (N, 3, h, w) tensor of network inputs or a
    dataset of (input, ...) items. The SVM weights are not a layer of ``model``, so they are passed to
    ``maps_from_features`` directly rather than read with ``fc_weights``.
    """
    W, b = _stacked_weights(probe, device)
    options = CAMOptions(upsample="bilinear", size=tuple(size), normalize="max")
    table = targets is not None and not isinstance(targets, (int, np.integer)) and np.ndim(targets) == 2
    scores, maps, pooled, start = [], [], [], 0
    total = -(-len(data) // batch_size) if hasattr(data, "__len__") else None
    with eval_mode(model), capture(model, head.feature_layer) as seen:
        for x in tqdm(
            _batches(data, batch_size, num_workers),
            total=total,
            desc="CAMs",
            leave=False,
            disable=not progress,
        ):
            model(x.to(device))
            s, m, F_ = _scores_and_maps(seen[head.feature_layer], W, b, head, targets, start, options, table)
            scores.append(s)
            maps.append(m)
            if features:
                pooled.append(F_)
            start += len(x)
    return _stack_outputs(scores, maps, pooled if features else None)


def _stacked_weights(probe: SVMProbe | Sequence[SVMProbe], device) -> tuple[Tensor, Tensor]:
    """The probes' classes stacked into one linear layer (W, b), as :func:`probe_cams` numbers them."""
    probes = [probe] if isinstance(probe, SVMProbe) else list(probe)
    weights = [p.linear_weights() for p in probes]
    # row-major copies: BLAS sums in an order that depends on the memory layout (a multi-class SVM's
    # weights come out column-major), and the decision values must not move with it
    W = torch.tensor(
        np.ascontiguousarray(np.concatenate([w for w, _ in weights])), dtype=torch.float32, device=device
    )
    b = torch.tensor(
        np.ascontiguousarray(np.concatenate([c for _, c in weights])), dtype=torch.float32, device=device
    )
    return W, b


def _scores_and_maps(
    f: Tensor, W: Tensor, b: Tensor, head: HeadSpec, targets, start: int, options: CAMOptions, table: bool
) -> tuple[Tensor, Tensor, Tensor]:
    """One batch of feature-layer outputs ``f`` -> (decision values, chosen CAMs, pooled features), CPU."""
    F_ = pool_features(f, head.pool, head.relu)
    logits = torch.nn.functional.linear(F_, W, b)
    classes = select_classes(logits, _targets_of(targets, start, len(f)))
    m = postprocess(maps_from_features(f, W, b, classes, "linear", relu=head.relu).float().cpu(), options)
    return logits.float().cpu(), (m if table else m[:, 0]), F_.float().cpu()


def _stack_outputs(scores, maps, pooled) -> tuple[np.ndarray, ...]:
    out_maps = torch.cat(maps).numpy().astype(np.float32)
    if pooled is not None:
        return torch.cat(scores).numpy(), out_maps, torch.cat(pooled).numpy()
    return torch.cat(scores).numpy(), out_maps


@torch.inference_mode()
def feature_maps(
    model: nn.Module,
    data,
    head: HeadSpec,
    *,
    batch_size: int = 32,
    device: str | torch.device = "cpu",
    num_workers: int = 0,
) -> tuple[Tensor, np.ndarray]:
    """The outputs ``f`` of ``head.feature_layer`` for every image of ``data``, kept -> ``(f (N, K, h, w)
    on the CPU, F (N, K) pooled as the SVMs read them)``, from ONE forward pass per batch that stops
    right after the layer (:func:`camlib.core.features.layer_output`).

    For a protocol that trains several SVMs on the pooled features and then needs the CAMs of each on
    some of the SAME images (leave-one-out): :func:`cams_from_maps` turns ``f`` into the CAMs without a
    second pass of the network. Memory: N x K x h x w floats (the 99 text-detector photos of notebook 06
    at 384 x 672: 99 x 672 x 24 x 42, about 270 MB)."""
    out, pooled, calls = [], [], None
    with eval_mode(model):
        for x in _batches(data, batch_size, num_workers):
            f, calls = layer_output(model, head.feature_layer, x.to(device), calls)
            out.append(f.float().cpu())
            pooled.append(pool_features(f, head.pool, head.relu).float().cpu())
    return torch.cat(out), torch.cat(pooled).numpy().astype(np.float32)


@torch.inference_mode()
def cams_from_maps(
    probe: SVMProbe | Sequence[SVMProbe],
    maps: Tensor,
    head: HeadSpec,
    size: tuple[int, int],
    *,
    targets=None,
    batch_size: int = 32,
    features: bool = False,
) -> tuple[np.ndarray, ...]:
    """:func:`probe_cams` on feature-layer outputs kept by :func:`feature_maps` (no network pass): the same
    decision values, CAMs (upsampled to ``size``, divided by their max) and, with ``features``, pooled
    features, computed by the same code per batch."""
    W, b = _stacked_weights(probe, maps.device)
    options = CAMOptions(upsample="bilinear", size=tuple(size), normalize="max")
    table = targets is not None and not isinstance(targets, (int, np.integer)) and np.ndim(targets) == 2
    scores, out, pooled = [], [], []
    for start in range(0, len(maps), batch_size):
        s, m, F_ = _scores_and_maps(
            maps[start : start + batch_size], W, b, head, targets, start, options, table
        )
        scores.append(s)
        out.append(m)
        pooled.append(F_)
    return _stack_outputs(scores, out, pooled if features else None)


@dataclass(frozen=True)
class CAMPass:
    """:func:`probe_cams` with the network, head, map size and batching fixed: ``cams(probe, data,
    targets)`` -> ``(scores, maps)`` (``features=True``: also the pooled features). What the section 4.2
    protocols of :mod:`camlib.paper.discovery_study` call for every CAM they need."""

    model: nn.Module
    head: HeadSpec
    size: tuple[int, int]
    batch_size: int = 32
    device: str | torch.device = "cpu"
    num_workers: int = 0

    def __call__(
        self, probe: SVMProbe | Sequence[SVMProbe], data, targets=None, *, features: bool = False
    ) -> tuple[np.ndarray, ...]:
        return probe_cams(
            self.model,
            probe,
            data,
            self.head,
            self.size,
            targets=targets,
            batch_size=self.batch_size,
            device=self.device,
            features=features,
            num_workers=self.num_workers,
        )

    def feature_maps(self, data) -> tuple[Tensor, np.ndarray]:
        """:func:`feature_maps` of this network and head: ``(f, pooled features)`` of every image, one pass."""
        return feature_maps(
            self.model,
            data,
            self.head,
            batch_size=self.batch_size,
            device=self.device,
            num_workers=self.num_workers,
        )

    def from_maps(
        self, probe, maps: Tensor, targets=None, *, features: bool = False
    ) -> tuple[np.ndarray, ...]:
        """:func:`cams_from_maps` at this pass's size: what ``self(probe, data, targets)`` returns for the
        images whose feature-layer outputs ``maps`` are (from :meth:`feature_maps`), without the network."""
        return cams_from_maps(
            probe, maps, self.head, self.size, targets=targets, batch_size=self.batch_size, features=features
        )


# --------------------------------------------------------------------------- 1. informative objects


def object_hits(
    cam: np.ndarray,
    instances: np.ndarray,
    types: np.ndarray,
    n_types: int,
    *,
    fraction: float = 0.5,
    min_cover: float = 0.5,
) -> tuple[np.ndarray, np.ndarray]:
    """Which object types of one image overlap its high-CAM region -> ``(hit, present)``, (n_types,) bool.

    ``R = cam >= fraction * max(cam)`` (nothing when the max is not positive). Instance ``k`` (pixels
    ``instances == k + 1``, type ``types[k]``; -1 = no object) HITS when ``|R ∩ O_k| / |O_k| >=
    min_cover``; a type hits when any of its instances does. ``present``: the type has a visible instance.
    """
    cam = np.asarray(cam, dtype=np.float64)
    inst = np.asarray(instances).astype(np.int64, copy=False)
    types = np.asarray(types)
    if cam.shape != inst.shape:
        raise ValueError(f"map {cam.shape} and instance map {inst.shape} differ; upsample the map first")
    hi = np.nanmax(cam) if np.isfinite(cam).any() else 0.0
    region = (cam >= fraction * hi) if hi > 0 else np.zeros(cam.shape, bool)
    k = len(types) + 1
    area = np.bincount(inst.ravel(), minlength=k)[:k]
    inside = np.bincount(inst[region].ravel(), minlength=k)[:k]
    hit, present = np.zeros(n_types, bool), np.zeros(n_types, bool)
    for slot, t in enumerate(types):
        if t < 0 or area[slot + 1] == 0:
            continue
        present[t] = True
        hit[t] |= inside[slot + 1] >= min_cover * area[slot + 1]
    return hit, present


def object_hits_batch(
    maps, instances, types, n_types: int, *, fraction: float = 0.5, min_cover: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`object_hits` for every image -> ``(hits, present)``, both (N, n_types) bool. ``maps``,
    ``instances`` and ``types`` are sequences (or stacked arrays) with one entry per image."""
    rows = [
        object_hits(m, i, t, n_types, fraction=fraction, min_cover=min_cover)
        for m, i, t in zip(maps, instances, types, strict=True)
    ]
    if not rows:
        return np.zeros((0, n_types), bool), np.zeros((0, n_types), bool)
    return np.stack([r[0] for r in rows]), np.stack([r[1] for r in rows])


def tfidf_scores(frequency: np.ndarray) -> np.ndarray:
    """A frequency ranking that discounts objects present in every scene (tf-idf with one "document"
    per scene): ``tfidf(o, c) = P(o | c) * log(C / df(o))`` with ``P(o | c)`` the share of scene ``c``'s
    images containing ``o`` (``frequency``, (C, O)) and ``df(o) = sum_c' P(o | c')`` the number of
    scenes containing ``o``, counted softly: an object in every image of every scene (sky, ground) has
    ``df = C`` and scores 0; one in 90% of one scene's images and 8% of the others' has ``df ~ 1.1``.
    (Counting a scene as soon as ONE of its images holds the object would give every object that
    appears anywhere ``df = C``, hence 0.) Objects never seen (``df = 0``) score 0. Scenes without
    images (a zero row) are left out of ``C``."""
    f = np.asarray(frequency, float)
    seen = f.sum(1) > 0
    df = f[seen].sum(0)
    idf = np.where(df > 0, np.log(max(int(seen.sum()), 1) / np.where(df > 0, df, 1.0)), 0.0)
    return f * np.maximum(idf, 0.0)[None]


def object_rankings(
    hits: np.ndarray, present: np.ndarray, labels: np.ndarray, n_classes: int
) -> dict[str, np.ndarray]:
    """Per class ``c`` and object ``o`` (over the images labelled ``c``): ``"cam"`` = share of images in
    which ``o`` overlaps the high-CAM region, ``"frequency"`` = share of images that contain ``o``,
    ``"tfidf"`` = :func:`tfidf_scores` of the frequencies (objects present in every scene discounted);
    all (n_classes, n_objects); ``"n"`` (n_classes,) images per class (a class without images: 0s)."""
    hits, present, labels = np.asarray(hits, float), np.asarray(present, float), np.asarray(labels)
    n = np.bincount(labels, minlength=n_classes)[:n_classes]
    cam = np.zeros((n_classes, hits.shape[1]))
    freq = np.zeros_like(cam)
    for c in range(n_classes):
        if n[c]:
            cam[c] = hits[labels == c].mean(0)
            freq[c] = present[labels == c].mean(0)
    return {"cam": cam, "frequency": freq, "tfidf": tfidf_scores(freq), "n": n}


def _order(scores: np.ndarray) -> np.ndarray:
    return np.argsort(-np.asarray(scores, float), kind="stable")  # ties: the earlier object first


def top_objects(scores: np.ndarray, names: Sequence[str], k: int = 6) -> list[tuple[str, float]]:
    """The ``k`` best ``(name, score)`` of one class's scores (ties: vocabulary order)."""
    return [(names[i], float(scores[i])) for i in _order(scores)[:k]]


def ranking_scores(
    scores: np.ndarray, truth: np.ndarray, k: int = 3, names: Sequence[str] | None = None
) -> dict:
    """How well each row of ``scores`` (C, O) ranks objects by ``truth`` (C, O), averaged over rows.

    ``precision_at_k`` (%): share of the ``k`` top-scored objects that are among the ``k`` truest
    (ties broken by vocabulary order in both); ``spearman``: Spearman's rank correlation of the two
    rows (0 when either row is constant). Also ``per_class`` lists.
    """
    from scipy.stats import spearmanr

    scores, truth = np.asarray(scores, float), np.asarray(truth, float)
    if scores.shape != truth.shape:
        raise ValueError(f"scores {scores.shape} and truth {truth.shape} differ")
    prec, rho = [], []
    for s, t in zip(scores, truth, strict=True):
        prec.append(100.0 * len(set(_order(s)[:k]) & set(_order(t)[:k])) / k)
        r = spearmanr(s, t).statistic if np.ptp(s) > 0 and np.ptp(t) > 0 else 0.0
        rho.append(float(r) if np.isfinite(r) else 0.0)
    out = {
        "precision_at_k": float(np.mean(prec)),
        "spearman": float(np.mean(rho)),
        "k": k,
        "per_class_precision_at_k": prec,
        "per_class_spearman": rho,
    }
    if names is not None:
        out["per_class"] = {
            str(n): {"precision_at_k": p, "spearman": r} for n, p, r in zip(names, prec, rho, strict=True)
        }
    return out


# --------------------------------------------------------------------------- 2. hard-negative mining


@dataclass
class MiningResult:
    """The detector after mining (``probe``), the pool indices of the negatives it was trained on
    (``negatives``, in the order they were added) and one ``history`` row per fit: ``n_negatives``,
    ``pool_false_positives`` (pool negatives scored > 0), ``pool_violations`` (scored > -1), ``added``."""

    probe: SVMProbe
    negatives: np.ndarray
    history: list[dict] = field(default_factory=list)


def _fit_default(seed: int) -> Callable[[np.ndarray, np.ndarray], SVMProbe]:
    return lambda X, y: fit_linear_svm(X, y, Cs=(0.001, 0.01, 0.1), cv=3, seed=seed)


def mine_hard_negatives(
    X_pos: np.ndarray,
    X_pool: np.ndarray,
    *,
    n_initial: int,
    rounds: int = 3,
    per_round: int | None = None,
    initial: Sequence[int] | None = None,
    fit: Callable[[np.ndarray, np.ndarray], SVMProbe] | None = None,
    seed: int = 0,
) -> MiningResult:
    """A linear detector (positives vs negatives) trained with hard-negative mining.

    Round 0 fits on ``X_pos`` and ``n_initial`` random negatives of ``X_pool`` (or the pool indices
    ``initial``). Each of ``rounds`` rounds scores the whole pool with the current detector, takes the
    negatives not yet used whose decision value is ``> -1`` (inside the margin or wrong: the "hard"
    ones), adds the ``per_round`` highest-scoring of them (default: ``n_initial``) and refits. Stops
    early when no hard negative is left. ``fit(X, y)`` returns an :class:`SVMProbe` (default:
    :func:`camlib.core.probe.fit_linear_svm`, C chosen by 3-fold CV on the current training set).
    """
    X_pos, X_pool = np.asarray(X_pos, np.float32), np.asarray(X_pool, np.float32)
    if len(X_pos) == 0 or len(X_pool) == 0:
        raise ValueError("need positives and a pool of negatives")
    fit = fit if fit is not None else _fit_default(seed)
    per_round = int(per_round if per_round is not None else n_initial)
    if initial is not None:
        chosen = [int(i) for i in initial]
    else:
        rng = np.random.default_rng(seed)
        chosen = [
            int(i) for i in rng.choice(len(X_pool), size=min(int(n_initial), len(X_pool)), replace=False)
        ]
    history: list[dict] = []
    for r in range(rounds + 1):
        X = np.concatenate([X_pos, X_pool[chosen]])
        y = np.r_[np.ones(len(X_pos), np.int64), np.zeros(len(chosen), np.int64)]
        probe = fit(X, y)
        s = np.asarray(probe.decision_function(X_pool), dtype=np.float64).reshape(len(X_pool), -1)[:, -1]
        used = np.zeros(len(X_pool), bool)
        used[chosen] = True
        hard = np.flatnonzero(~used & (s > -1.0))
        add = hard[np.argsort(-s[hard], kind="stable")][:per_round] if r < rounds else hard[:0]
        history.append(
            {
                "round": r,
                "n_negatives": len(chosen),
                "pool_false_positives": int((s > 0).sum()),
                "pool_violations": int((s > -1.0).sum()),
                "added": len(add),
            }
        )
        if len(add) == 0:
            break
        chosen += [int(i) for i in add]
    return MiningResult(probe, np.asarray(chosen, dtype=np.int64), history)


def cam_peaks(maps: np.ndarray) -> np.ndarray:
    """(N, 2) integer ``(x, y)`` of each map's maximum (maps (N, H, W), already at image size)."""
    m = np.asarray(maps)
    flat = np.nan_to_num(m.reshape(len(m), -1), nan=-np.inf).argmax(1)
    y, x = np.divmod(flat, m.shape[-1])
    return np.stack([x, y], axis=1).astype(np.int64)


def centre_points(n: int, size: tuple[int, int]) -> np.ndarray:
    """(n, 2) copies of the centre pixel ``(W // 2, H // 2)`` of an (H, W) image: the pointing baseline."""
    H, W = size
    return np.tile(np.array([W // 2, H // 2], dtype=np.int64), (n, 1))


# --------------------------------------------------------------------------- 3. detection


def centre_box(size: tuple[int, int], wh: tuple[float, float]) -> np.ndarray:
    """An inclusive box of width/height ``wh`` (clipped to the image) centred on an (H, W) image."""
    H, W = size
    w, h = min(max(int(round(wh[0])), 1), W), min(max(int(round(wh[1])), 1), H)
    x0, y0 = (W - w) // 2, (H - h) // 2
    return np.array([x0, y0, x0 + w - 1, y0 + h - 1], dtype=np.int64)


def detect_boxes(maps: np.ndarray, fire: np.ndarray, fraction: float) -> list[np.ndarray]:
    """One paper box (:func:`camlib.core.boxes.paper_box` at ``fraction``) per image where ``fire`` is True,
    none elsewhere (and none when the map has no region) -> a list of (0 or 1, 4) arrays."""
    out = []
    for m, f in zip(maps, np.asarray(fire, bool), strict=True):
        b = paper_box(m, fraction) if f else NO_BOX
        out.append(b[None].astype(np.int64) if b[0] >= 0 else np.zeros((0, 4), np.int64))
    return out


def _boxes(b) -> np.ndarray:
    b = np.asarray(b).reshape(-1, 4)
    return b[b[:, 0] >= 0]


def ignored_predictions(
    pred, gt, ignored, iou_threshold: float = 0.5, ignore_precision: float = 0.5
) -> np.ndarray:
    """Which predicted boxes of ONE image are set aside because of unreadable ("ignore") words -> (k,) bool.

    mmocr's rule (``HmeanIOUMetric``): a prediction is dropped before matching when more than
    ``ignore_precision`` of its area lies inside one ignored word, ``|P ∩ I| / |P| > ignore_precision``.
    Added here: a prediction that reaches IoU >= ``iou_threshold`` with an ignored word and with no
    readable word (``gt``) is dropped too (at IoU 0.5 mmocr's rule already covers it; at a looser IoU
    it would otherwise count as a false positive for finding a word that is not scored)."""
    p, g, ig = _boxes(pred), _boxes(gt), _boxes(ignored)
    out = np.zeros(len(p), bool)
    if len(p) == 0 or len(ig) == 0:
        return out
    ix = np.minimum(p[:, None, 2], ig[None, :, 2]) - np.maximum(p[:, None, 0], ig[None, :, 0]) + 1
    iy = np.minimum(p[:, None, 3], ig[None, :, 3]) - np.maximum(p[:, None, 1], ig[None, :, 1]) + 1
    area = ((p[:, 2] - p[:, 0] + 1) * (p[:, 3] - p[:, 1] + 1)).astype(float)
    inside = (np.clip(ix, 0, None) * np.clip(iy, 0, None)) / area[:, None]
    only_ignored = iou(p, ig).max(1) >= iou_threshold
    if len(g):
        only_ignored &= iou(p, g).max(1) < iou_threshold
    return (inside > ignore_precision).any(1) | only_ignored


def match_boxes(pred, gt, iou_threshold: float = 0.5) -> int:
    """Matched pairs in ONE image: predicted and true boxes paired one-to-one greedily by decreasing IoU
    (:func:`camlib.core.boxes.iou`) while IoU >= ``iou_threshold`` (rows with x0 < 0 are no box)."""
    p, g = _boxes(pred), _boxes(gt)
    if len(p) == 0 or len(g) == 0:
        return 0
    m, tp = iou(p, g), 0
    while True:
        i, j = np.unravel_index(np.argmax(m), m.shape)
        if m[i, j] < iou_threshold or m[i, j] <= 0:
            return tp
        tp += 1
        m[i, :], m[:, j] = -1.0, -1.0


def detection_scores(
    pred: Sequence[np.ndarray],
    gt: Sequence[np.ndarray],
    iou_threshold: float = 0.5,
    ignored: Sequence[np.ndarray] | None = None,
) -> dict:
    """Precision and recall (%) of predicted boxes against true boxes, image by image.

    In each image, pairs are matched one-to-one by :func:`match_boxes` (greedy, decreasing IoU, IoU >=
    ``iou_threshold``). ``precision = matched / predicted``, ``recall = matched / true``, ``f1`` their
    harmonic mean (0 when undefined); also the counts ``tp``, ``n_pred``, ``n_gt``. With ``ignored``
    (per image, the boxes of unreadable words): they are never misses (not in ``n_gt``), and the
    predictions :func:`ignored_predictions` sets aside are neither hits nor false positives (not in
    ``n_pred``; counted in ``n_pred_ignored``).
    """
    if len(pred) != len(gt) or (ignored is not None and len(ignored) != len(gt)):
        raise ValueError(
            f"{len(pred)} images of predictions for {len(gt)} images of ground truth"
            + ("" if ignored is None else f" and {len(ignored)} of ignored words")
        )
    tp = n_pred = n_gt = n_ign = 0
    for k, (p, g) in enumerate(zip(pred, gt, strict=True)):
        p, g = _boxes(p), _boxes(g)
        if ignored is not None:
            drop = ignored_predictions(p, g, ignored[k], iou_threshold)
            p, n_ign = p[~drop], n_ign + int(drop.sum())
        n_pred, n_gt = n_pred + len(p), n_gt + len(g)
        tp += match_boxes(p, g, iou_threshold)
    precision = 100.0 * tp / n_pred if n_pred else 0.0
    recall = 100.0 * tp / n_gt if n_gt else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    out = {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "tp": tp,
        "n_pred": n_pred,
        "n_gt": n_gt,
        "iou_threshold": float(iou_threshold),
    }
    if ignored is not None:
        out["n_pred_ignored"] = n_ign
    return out


def choose_fraction(
    maps: np.ndarray, fire: np.ndarray, gt: Sequence[np.ndarray], fractions: Sequence[float]
) -> tuple[float, dict]:
    """The box fraction with the best F1 of :func:`detection_scores` (ties: the smaller fraction), and
    the F1 of every fraction. Call it on VALIDATION images only."""
    f1 = {float(f): detection_scores(detect_boxes(maps, fire, f), gt)["f1"] for f in fractions}
    best = max(f1, key=lambda f: (f1[f], -f))
    return best, f1


# --------------------------------------------------------------------------- figures (paper Figs. 9-11)


def plot_informative_objects(
    images,
    maps,
    class_names: Sequence[str],
    rows: dict[str, np.ndarray],
    object_names: Sequence[str],
    k: int = 5,
):
    """Fig. 9: per class, example images with the class's CAM, then its top-``k`` objects by CAM overlap
    next to the top-``k`` of each other ranking. ``images``/``maps``: per class a list of examples; ``rows``:
    ``{"CAM overlap": (C, O), "frequency": (C, O), ...}``, one column each."""
    import matplotlib.pyplot as plt

    from camlib.core.viz import FIG_DPI, overlay

    n_ex = max(len(v) for v in images)
    C = len(class_names)
    text_w = 0.9 * max(len(rows), 2)  # one column of top objects per ranking
    fig, axes = plt.subplots(
        C,
        n_ex + 1,
        figsize=(2.0 * n_ex + 2 * text_w, 2.1 * C),
        dpi=FIG_DPI,
        squeeze=False,
        gridspec_kw={"width_ratios": [1] * n_ex + [text_w]},
    )
    for c in range(C):
        for j in range(n_ex):
            ax = axes[c, j]
            if j < len(images[c]):
                ax.imshow(overlay(images[c][j], maps[c][j]))
            ax.set_xticks([])
            ax.set_yticks([])
        axes[c, 0].set_ylabel(class_names[c], fontsize=10)
        ax = axes[c, -1]
        ax.axis("off")
        for col, (title, table) in enumerate(rows.items()):
            lines = [f"{n} {s:.2f}" for n, s in top_objects(table[c], object_names, k)]
            ax.text(
                0.02 + 1.04 / max(len(rows), 2) * col,
                0.98,
                title + ":\n" + "\n".join(lines),
                va="top",
                fontsize=7.5,
                family="monospace",
                transform=ax.transAxes,
            )
    fig.tight_layout()
    return fig


def plot_concepts(images, maps, titles: Sequence[str], boxes=None, peaks=None, ncols: int = 6):
    """Fig. 10: CAMs of concept detectors; the true concept box (red) and the CAM peak (a cross)."""
    from camlib.core.viz import plot_cam_grid

    return plot_cam_grid(images, maps, titles, gt_boxes=boxes, ncols=ncols, peaks=peaks)


def plot_text_detections(
    images, maps, pred: Sequence[np.ndarray], gt: Sequence[np.ndarray], titles: Sequence[str], ncols: int = 6
):
    """Fig. 11: text CAMs with the predicted boxes (green) and the true text boxes (red)."""
    from camlib.core.viz import plot_cam_grid

    return plot_cam_grid(images, maps, titles, pred_boxes=pred, gt_boxes=gt, ncols=ncols)
