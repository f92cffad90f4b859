"""Section 4.1 and Table 4: fine-grained recognition from CAM crops, ONE protocol for every data set.

:func:`table4` is the protocol; the quick profile (procedural birds) and the paper profile
(CUB-200-2011) differ only in what they pass to it:

1. ``features(split, None, "full")``: pooled features of the whole images of the train and test
   splits; a linear SVM (standardised features, ``LinearSVC``, ``C`` by k-fold CV on TRAIN only) is
   scored once on test -> "full image" accuracy;
2. ``locate(split, full_probe)``: one box per image (train AND test) from a class activation map (the
   paper: GoogLeNet-GAP's CAM of its own top class, boxed at 20% of the max); features re-extracted from
   the crops, a new SVM -> "CAM crop" accuracy; the share of test images whose box overlaps the
   ground truth with IoU >= 0.5 -> the localization number (paper: 41.0%, chance 5.5%);
3. the same on the ground-truth boxes -> "GT box" accuracy.

Every "does it agree with the paper" statement comes from :func:`camlib.evaluation.stats.verdict` on a
paired bootstrap interval over the test images (:meth:`Table4Result.verdicts`): CAM crop - full image
(the paper: +4.8 points), GT box - CAM crop (+2.7) and CAM-box hits - random-box hits (+35.5).

Pieces for the quick profile: :func:`train_bird_detector` (the CAM network: a small GAP network that
learns bird / no bird from image-level labels) and :class:`Lite0CropFeatures` (ImageNet features of
EfficientNet-Lite0). For CUB: :func:`cub_splits`, :class:`NetworkCropFeatures`, :func:`cam_locator`
and the one-call :func:`table4_cub`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from camlib.core import features as FT
from camlib.core import probe as PR
from camlib.core.cam import CAM, CAMOptions, postprocess
from camlib.core.io import load_checkpoint
from camlib.evaluation.stats import paired_diff_ci, verdict

__all__ = [
    "FRACTIONS",
    "SETTINGS",
    "BirdDetector",
    "Lite0CropFeatures",
    "NetworkCropFeatures",
    "Table4Result",
    "Table4Split",
    "birds_split",
    "cam_locator",
    "cub_splits",
    "load_table4_network",
    "paper_table4",
    "plot_accuracy_bars",
    "plot_crops_vs_gt",
    "plot_species",
    "probe_with_hits",
    "procedural_metrics",
    "random_box_ious",
    "smallnet_feature_probes",
    "svm_cam_loc_iou50",
    "table4",
    "table4_comparisons",
    "table4_cub",
    "train_bird_detector",
]

SETTINGS = ("full", "cam_crop", "gt_crop")
FRACTIONS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7)  #: box thresholds tried on the detector's held-out images
PAPER_KEYS = {
    "full": "table4.googlenet_gap_full.acc",
    "cam_crop": "table4.googlenet_gap_cam_crop.acc",
    "gt_crop": "table4.googlenet_gap_gt_bbox.acc",
    "loc": "table4.cub_loc_iou50",
    "chance": "table4.cub_loc_iou50_chance",
}


# --------------------------------------------------------------------------- the protocol


@dataclass
class Table4Split:
    """One split as the protocol sees it: ``items`` (what the feature and box functions read: a
    :class:`~camlib.datasets.fine_grained.FineGrainedBirds`, a :class:`~camlib.datasets.cub.CUBDataset`),
    ``labels`` (N,), inclusive ground-truth ``gt_boxes`` (N, 4) and the image ``sizes``: one (H, W) for
    all images or (N, 2)."""

    name: str
    items: Any
    labels: np.ndarray
    gt_boxes: np.ndarray
    sizes: tuple[int, int] | np.ndarray

    def __len__(self) -> int:
        return len(self.labels)


Features = Callable[[Table4Split, "np.ndarray | None", str], np.ndarray]  # (split, boxes | None, setting) -> X
Locate = Callable[[Table4Split, PR.SVMProbe], np.ndarray]  # (split, SVM on full-image features) -> boxes


def probe_with_hits(X_train, y_train, X_test, y_test, **svm_kwargs) -> tuple[dict, PR.SVMProbe, np.ndarray]:
    """:func:`camlib.core.probe.linear_probe` (the same dict) plus the fitted probe and the per-test-image
    hits ``predict(X_test) == y_test`` (0/1), which paired bootstrap intervals need."""
    probe = PR.fit_linear_svm(X_train, y_train, **svm_kwargs)
    hits = (probe.predict(X_test) == np.asarray(y_test)).astype(np.float64)
    result = {
        "acc": float(100.0 * np.mean(hits)),
        "best_C": probe.best_C,
        "cv_acc": {f"{c:g}": v for c, v in probe.cv_scores.items()},
        "n_train": int(len(y_train)),
        "n_test": int(len(y_test)),
        "dim": int(np.asarray(X_train).shape[1]),
    }
    return result, probe, hits


def random_box_ious(gt_boxes: np.ndarray, sizes, seed: int = 0) -> np.ndarray:
    """Chance localization: per image, a box of the MEAN ground-truth size ``(mean(x1 - x0), mean(y1 - y0))``
    (truncated to int) at a uniformly random position ``rng.integers(0, (W, H) - size)``; its IoU with
    the ground truth. ``sizes``: one (H, W) or (N, 2)."""
    gt = np.asarray(gt_boxes)
    rng = np.random.default_rng(seed)
    wh = (gt[:, 2:] - gt[:, :2]).mean(0).astype(int)
    high = np.asarray(sizes)[..., ::-1] - wh
    xy = rng.integers(0, np.maximum(high, 1), size=(len(gt), 2))
    return PR.paired_iou(np.c_[xy, xy + wh], gt)


@dataclass
class Table4Result:
    """What :func:`table4` measured: ``probes`` (setting -> linear_probe dict), per-test-image SVM ``hits``,
    the CAM ``boxes`` per split, the test boxes' ``ious`` and a random box's ``chance_ious``."""

    probes: dict[str, dict]
    hits: dict[str, np.ndarray]
    boxes: dict[str, np.ndarray]
    ious: np.ndarray
    chance_ious: np.ndarray
    full_probe: PR.SVMProbe = field(repr=False)
    seed: int = 0

    @property
    def accuracy(self) -> dict[str, float]:
        return {k: self.probes[k]["acc"] for k in SETTINGS}

    @property
    def loc_iou50(self) -> float:
        """Test images whose CAM box has IoU >= 0.5 with the ground truth (%)."""
        return float(100.0 * np.mean(self.ious >= 0.5))

    @property
    def chance_iou50(self) -> float:
        return float(100.0 * np.mean(self.chance_ious >= 0.5))

    @property
    def ordering_holds(self) -> bool:
        """The point estimates are ordered as in the paper: full < CAM crop <= GT box."""
        a = self.accuracy
        return bool(a["full"] < a["cam_crop"] <= a["gt_crop"])

    def verdicts(self, paper: dict[str, float] | None = None) -> dict[str, dict]:
        """The paper's three claims, each decided by :func:`~camlib.evaluation.stats.verdict` on a paired
        bootstrap 95% interval over the test images: ``cam_crop_minus_full``, ``gt_crop_minus_cam_crop``
        (SVM hits) and ``loc_minus_random_box`` (IoU >= 0.5 hits). ``paper``: :func:`paper_table4`."""
        p = paper_table4() if paper is None else paper
        pairs = {
            "cam_crop_minus_full": (self.hits["cam_crop"], self.hits["full"], p["cam_crop"] - p["full"]),
            "gt_crop_minus_cam_crop": (self.hits["gt_crop"], self.hits["cam_crop"], p["gt_crop"] - p["cam_crop"]),
            "loc_minus_random_box": (self.ious >= 0.5, self.chance_ious >= 0.5, p["loc"] - p["chance"]),
        }
        out = {}
        for name, (a, b, paper_diff) in pairs.items():
            est = paired_diff_ci(a, b, seed=self.seed)
            out[name] = {"estimate": est.to_dict(), "paper": round(paper_diff, 2),
                         "verdict": verdict(est, 1 if paper_diff > 0 else -1)}
        return out

    def sentence(self, where: str = "here", paper: dict[str, float] | None = None) -> str:
        """The measured accuracies and the three verdicts in words."""
        p = paper_table4() if paper is None else paper
        a, v = self.accuracy, self.verdicts(p)
        names = {"cam_crop_minus_full": "CAM crop - full image", "gt_crop_minus_cam_crop": "GT box - CAM crop",
                 "loc_minus_random_box": "CAM box - random box, test images localized at IoU >= 0.5"}
        claims = "; ".join(
            f"{names[k]}: {r['estimate']['value']:+.1f} points, 95% CI [{r['estimate']['low']:+.1f}, "
            f"{r['estimate']['high']:+.1f}] (paper {r['paper']:+.1f}): {r['verdict'].upper()}"
            for k, r in v.items()
        )
        return (f"Measured {where}: full image {a['full']:.1f}%, CAM crop {a['cam_crop']:.1f}%, GT box "
                f"{a['gt_crop']:.1f}% (paper on CUB: {p['full']} / {p['cam_crop']} / {p['gt_crop']}); the CAM box "
                f"localizes {self.loc_iou50:.1f}% of the test images at IoU >= 0.5, a random box of the mean "
                f"size {self.chance_iou50:.1f}% (paper: {p['loc']}%, chance {p['chance']}%). {claims}.")

    def summary(self) -> dict:
        """JSON: the three probes, the localization numbers and the verdicts."""
        return {**{k: self.probes[k] for k in SETTINGS}, "loc_iou50": self.loc_iou50,
                "mean_iou": float(self.ious.mean()), "loc_iou50_chance_random_box": self.chance_iou50,
                "verdicts": self.verdicts()}


def table4(train: Table4Split, test: Table4Split, features: Features, locate: Locate, *, svm: dict,
           seed: int = 0) -> Table4Result:
    """The Table 4 protocol (see the module doc) for one (feature network, CAM network, data set).

    ``svm``: keyword arguments of :func:`camlib.core.probe.fit_linear_svm` (``Cs``, ``cv``, ``seed``,
    ...). ``seed`` seeds the random boxes and the bootstrap intervals.
    """
    splits = (train, test)
    X = {s.name: features(s, None, "full") for s in splits}
    probes, hits = {}, {}
    probes["full"], full_probe, hits["full"] = probe_with_hits(X[train.name], train.labels, X[test.name],
                                                               test.labels, **svm)
    boxes = {s.name: np.asarray(locate(s, full_probe), dtype=np.int64).reshape(-1, 4) for s in splits}
    for setting, crop in (("cam_crop", boxes), ("gt_crop", {s.name: s.gt_boxes for s in splits})):
        X = {s.name: features(s, crop[s.name], setting) for s in splits}
        probes[setting], _, hits[setting] = probe_with_hits(X[train.name], train.labels, X[test.name],
                                                            test.labels, **svm)
    return Table4Result(probes, hits, boxes, PR.paired_iou(boxes[test.name], test.gt_boxes),
                        random_box_ious(test.gt_boxes, test.sizes, seed), full_probe, seed)


def paper_table4(paper_yaml: str | Path | None = None) -> dict[str, float]:
    """The paper's Table 4 numbers (%) from ``results/paper.yaml``: full, cam_crop, gt_crop, loc, chance."""
    from camlib.evaluation.paper_numbers import paper_values

    values = paper_values(*PAPER_KEYS.values(), paper_yaml=paper_yaml)
    return {k: values[key] for k, key in PAPER_KEYS.items()}


def table4_comparisons(result: Table4Result, setting: str, tag: str = "") -> list[dict]:
    """The four comparison rows of ``results/<notebook>.json`` (three accuracies + localization)."""
    a = result.accuracy
    rows = [("accuracy, full image (%)", "full", a["full"]), ("accuracy, CAM crop (%)", "cam_crop", a["cam_crop"]),
            ("accuracy, GT box crop (%)", "gt_crop", a["gt_crop"]),
            ("test images localized, IoU >= 0.5 (%)", "loc", result.loc_iou50)]
    return [{"metric": f"{metric}{tag}", "paper_ref": PAPER_KEYS[key], "reproduced": value, "setting": setting}
            for metric, key, value in rows]


# --------------------------------------------------------------------------- quick profile: procedural birds


def birds_split(ds) -> Table4Split:
    """A :class:`~camlib.datasets.fine_grained.FineGrainedBirds` split for :func:`table4`."""
    return Table4Split(ds.split, ds, ds.labels, ds.boxes, (ds.size, ds.size))


def _whole(n: int) -> np.ndarray:
    return np.full((n, 4), -1)  # NO_BOX rows: the whole image


@dataclass
class Lite0CropFeatures:
    """Pooled EfficientNet-Lite0 features of a region of in-memory images: the region (whole image, CAM
    box or GT box, aspect ratio not kept) resampled to ``input_size`` with ``crop_resize``, Lite0's input
    scaling ``(255 x - 127) / 128``, cached on disk by ``cache``."""

    lite0: Any  # camlib.models.ImageNetModel
    cache: FT.FeatureCache | None = None
    input_size: int = 112
    device: str = "cpu"

    def inputs(self, images: np.ndarray, boxes: np.ndarray | None) -> torch.Tensor:
        from camlib.datasets.transforms import lite0_input

        boxes = _whole(len(images)) if boxes is None else boxes
        return lite0_input(PR.crop_resize(images, boxes, self.input_size))

    def __call__(self, split: Table4Split, boxes: np.ndarray | None, setting: str) -> np.ndarray:
        ds = split.items
        boxes = _whole(len(split)) if boxes is None else boxes
        return FT.cached_features(
            self.lite0.model, self.inputs(ds.images, boxes), model_name=self.lite0.name, cache=self.cache,
            device=self.device, desc=f"{setting} {ds.split}",
            preprocessing=(f"crop_resize (roi_align, 2x2 samples) to {self.input_size}x{self.input_size}, "
                           "(255x-127)/128"),
            dataset=f"{ds.identity()}|{setting}|boxes={FT.array_digest(boxes)}").X


@dataclass
class BirdDetector:
    """The quick profile's CAM network: a SmallGAPNet that tells bird from no bird (image-level labels
    only); its CAM of class "bird", upsampled to the ``render`` size and boxed at ``fraction`` of its max,
    is the crop. Calling it on a split returns those boxes (and keeps the paper's 0.2 boxes in
    ``boxes_at[split][0.2]``)."""

    model: nn.Module
    render: int
    input_size: int
    val_acc: float
    steps: int
    n_train: int
    fraction_val_iou50: dict[float, float]
    fraction: float
    device: str = "cpu"
    boxes_at: dict[str, dict[float, np.ndarray]] = field(default_factory=dict)

    def inputs(self, images: np.ndarray) -> torch.Tensor:
        return PR.crop_resize(images, _whole(len(images)), self.input_size)

    def boxes(self, images: np.ndarray, fractions=FRACTIONS) -> dict[float, np.ndarray]:
        """``{fraction: (N, 4) boxes}`` at the render size, from the CAM of class 1 ("bird")."""
        x = self.inputs(images)
        return PR.cam_boxes_of(CAM(self.model), x, sizes=(self.render, self.render), targets=[1] * len(x),
                               fractions=fractions)[0]

    def maps(self, images: np.ndarray) -> torch.Tensor:
        """(N, render, render) "bird" CAMs, bilinear, min-max normalised (for figures)."""
        x = self.inputs(images)
        out = CAM(self.model)(x, targets=[1] * len(x)).maps
        return postprocess(out, CAMOptions(size=(self.render, self.render)))[:, 0]

    def __call__(self, split: Table4Split, probe=None) -> np.ndarray:
        self.boxes_at[split.name] = self.boxes(split.items.images, (self.fraction, 0.2))
        return self.boxes_at[split.name][self.fraction]


def train_bird_detector(seed: int, *, render: int = 128, input_size: int = 64, n_train: int = 1000,
                        n_val: int = 300, fractions=FRACTIONS, device: str = "cpu") -> BirdDetector:
    """Train the bird/no-bird SmallGAPNet on ``n_train`` new scenes (:func:`make_detection_arrays`, shrunk
    to ``input_size``), measure it on ``n_val`` held-out scenes and choose the box fraction there: the
    one with the most boxes at IoU >= 0.5 on the held-out birds (ties: the smaller fraction). The
    species images are never seen. Uses the global torch RNG for the initial weights (seed first)."""
    from camlib.datasets.fine_grained import make_detection_arrays
    from camlib.models import SmallGAPNet
    from camlib.models.train import TrainConfig, fit

    det = make_detection_arrays(n_train, seed=seed, size=render, split="train")
    val = make_detection_arrays(n_val, seed=seed, size=render, split="val")
    model = SmallGAPNet(2, channels=(16, 32, 64), width=64)
    x = PR.crop_resize(det["images"], _whole(len(det["images"])), input_size)
    cfg = TrainConfig(epochs=4, batch_size=64, lr=0.05, lr_step_every=48, seed=seed)
    state = fit(model, torch.utils.data.TensorDataset(x, torch.as_tensor(det["labels"])), cfg, device=device)
    model.eval()
    with torch.no_grad():
        logits = model(PR.crop_resize(val["images"], _whole(len(val["images"])), input_size))
    acc = 100.0 * float((logits.argmax(1).numpy() == val["labels"]).mean())
    out = BirdDetector(model, render, input_size, acc, state.step, len(det["labels"]), {}, 0.2, device)
    pos = val["labels"] == 1
    boxes = out.boxes(val["images"][pos], fractions)
    out.fraction_val_iou50 = {f: 100.0 * float(np.mean(PR.paired_iou(b, val["boxes"][pos]) >= 0.5))
                              for f, b in boxes.items()}
    out.fraction = max(fractions, key=lambda f: (out.fraction_val_iou50[f], -f))
    return out


def svm_cam_loc_iou50(features: Lite0CropFeatures, result: Table4Result, test: Table4Split, n: int = 64) -> float:
    """The paper's own CAM route with Lite0: CAMs of the full-image SVM (its weights folded onto Lite0's
    pooled features, :func:`camlib.core.probe.cam_boxes`) on the first ``n`` test images, boxed at 0.2;
    the share with IoU >= 0.5 (%)."""
    sub = np.arange(n)
    x = features.inputs(test.items.images, None)[sub]
    boxes, _ = PR.cam_boxes(features.lite0.model, result.full_probe, x, sizes=test.sizes, device=features.device)
    return 100.0 * float(np.mean(PR.paired_iou(boxes, test.gt_boxes[sub]) >= 0.5))


def smallnet_feature_probes(detector: BirdDetector, train: Table4Split, test: Table4Split, *, svm: dict) -> dict:
    """SVM accuracy (%) on the detector's OWN pooled features, whole images and GT crops (resampled to
    its input size): how weak a feature extractor the small network is next to Lite0."""
    out = {}
    for name in ("full", "gt_crop"):
        f = {s.name: FT.gap_features(detector.model, PR.crop_resize(
            s.items.images, _whole(len(s)) if name == "full" else s.gt_boxes, detector.input_size),
            progress=False)[0] for s in (train, test)}
        out[name] = PR.linear_probe(f[train.name], train.labels, f[test.name], test.labels, **svm)["acc"]
    return out


def procedural_metrics(result: Table4Result, detector: BirdDetector, train: Table4Split, test: Table4Split,
                       **extra) -> dict:
    """``metrics["procedural"]`` of notebook 04 (quick profile); ``extra`` (e.g. the roads not taken) is
    merged in."""
    paper_rule = 100.0 * float(np.mean(PR.paired_iou(detector.boxes_at[test.name][0.2], test.gt_boxes) >= 0.5))
    return {
        "accuracy": result.accuracy, "svm": {k: result.probes[k] for k in SETTINGS},
        "loc_iou50": {"chosen": result.loc_iou50, "paper_rule_0.2": paper_rule},
        "loc_iou50_chance_random_box": result.chance_iou50, "mean_iou": float(result.ious.mean()),
        "fraction": detector.fraction, "fraction_val_iou50": {str(k): v for k, v in detector.fraction_val_iou50.items()},
        "detector": {"val_acc": detector.val_acc, "steps": detector.steps, "n_train": detector.n_train},
        "ordering_holds": result.ordering_holds, "verdict": result.sentence("on the procedural birds"),
        "verdicts": result.verdicts(), "n_train": len(train), "n_test": len(test),
        "n_classes": len(train.items.classes), **extra,
    }


# --------------------------------------------------------------------------- paper profile: CUB-200-2011


def cub_splits(root: str | Path | None, preprocess: Callable, *, download: bool = False) -> tuple[Table4Split, Table4Split]:
    """The official train and test splits of CUB-200-2011 under ``root`` (see :func:`camlib.datasets.cub.cub_folder`),
    with image sizes read from the JPEG headers and ground-truth boxes clipped to the images."""
    from camlib.datasets.cub import CUBDataset, cub_folder, read_cub_metadata

    meta = read_cub_metadata(cub_folder(root, download=download))
    out = []
    for name in ("train", "test"):
        ds = CUBDataset(split=name, transform=preprocess, metadata=meta)
        out.append(Table4Split(name, ds, ds.labels, ds.gt_boxes(), ds.sizes()))
    return out[0], out[1]


@dataclass
class NetworkCropFeatures:
    """Pooled CAM-layer features of one network on CUB images or their crops (PIL crop, then
    ``preprocess``), cached by ``cache`` under the model's weights, ``preprocessing`` and the crops."""

    model: nn.Module
    model_name: str
    preprocess: Callable
    preprocessing: str
    cache: FT.FeatureCache | None = None
    batch_size: int = 64
    num_workers: int = 0
    device: str = "cpu"
    progress: bool = True

    def __call__(self, split: Table4Split, boxes: np.ndarray | None, setting: str) -> np.ndarray:
        from camlib.datasets.cub import CUBDataset

        ds = split.items if boxes is None else CUBDataset(split=split.items.split, transform=self.preprocess,
                                                          metadata=split.items.meta, crop_boxes=boxes)
        return FT.cached_features(self.model, ds, dataset=ds.identity(), model_name=self.model_name,
                                  preprocessing=self.preprocessing, cache=self.cache, batch_size=self.batch_size,
                                  num_workers=self.num_workers, device=self.device, progress=self.progress).X


def cam_locator(model: nn.Module, cam_source: str = "network", *, fraction: float = 0.2, batch_size: int = 64,
                device: str = "cpu", progress: bool = True) -> Locate:
    """Boxes at ``fraction`` of the max of the CAM of the network's own top-1 class
    (``cam_source="network"``) or of the full-image SVM (``"svm"``: the labelled class on train images,
    the SVM's prediction on test images), upsampled to each image's size."""
    if cam_source not in ("network", "svm"):
        raise ValueError(f"cam_source must be 'network' or 'svm', got {cam_source!r}")

    def locate(split: Table4Split, probe: PR.SVMProbe) -> np.ndarray:
        sizes = [tuple(int(v) for v in hw) for hw in np.asarray(split.sizes).reshape(-1, 2)]
        if cam_source == "network":
            return PR.cam_boxes_of(CAM(model), split.items, sizes=sizes, fractions=(fraction,), batch_size=batch_size,
                                   device=device, progress=progress)[0][float(fraction)]
        targets = list(split.labels) if split.name == "train" else None
        return PR.cam_boxes(model, probe, split.items, sizes=sizes, targets=targets, fraction=fraction,
                            batch_size=batch_size, device=device, progress=progress)[0]

    return locate


@dataclass
class Table4Network:
    model: nn.Module
    name: str
    description: str


def load_table4_network(arch: str, gap_checkpoint: str | Path | None = None, device: str = "cpu") -> Table4Network:
    """``"googlenet_gap"`` from ``gap_checkpoint`` (notebook 02's fine-tuned GoogLeNet-GAP); without one, the
    unmodified torchvision GoogLeNet (said in the description and printed); any other name: that
    torchvision classifier with ImageNet weights. In eval mode on ``device``."""
    from camlib.models import googlenet_gap, load_torchvision

    if arch == "googlenet_gap" and gap_checkpoint:
        model = googlenet_gap(1000, weights=None)
        state = load_checkpoint(gap_checkpoint, fix="Train GoogLeNet-GAP with notebook 02 and give its checkpoint.")
        model.load_state_dict(state.get("model", state))
        return Table4Network(model.eval().to(device), "googlenet_gap", f"GoogLeNet-GAP from {gap_checkpoint}")
    tv = "googlenet" if arch == "googlenet_gap" else arch
    if arch == "googlenet_gap":
        print("GAP_CHECKPOINT not given: using the unmodified torchvision GoogLeNet instead of GoogLeNet-GAP")
    loaded = load_torchvision(tv, device=device)
    return Table4Network(loaded.model.eval().to(device), tv, loaded.description)


def table4_cub(
    model,
    *,
    model_name: str,
    preprocess: Callable,
    preprocessing: str,
    root: str | Path | None = None,
    cache=None,
    cam_source: str = "network",
    fraction: float = 0.2,
    Cs=(0.001, 0.01, 0.1, 1.0),
    cv: int = 3,
    seed: int = 0,
    batch_size: int = 64,
    num_workers: int = 0,
    device="cpu",
    n_jobs: int | None = None,
    progress: bool = True,
) -> dict:
    """:func:`table4` on CUB-200-2011 for one CAM-ready network (features and CAMs from ``model``), as JSON:
    :meth:`Table4Result.summary` plus ``fraction``, ``cam_source`` and the feature layer."""
    train, test = cub_splits(root, preprocess)
    features = NetworkCropFeatures(model, model_name, preprocess, preprocessing, cache, batch_size, num_workers,
                                   device, progress)
    locate = cam_locator(model, cam_source, fraction=fraction, batch_size=batch_size, device=device, progress=progress)
    result = table4(train, test, features, locate, svm=dict(Cs=Cs, cv=cv, seed=seed, n_jobs=n_jobs), seed=seed)
    layer = FT.find_head(model, test.items[0][0][None].to(device)).feature_layer
    return {**result.summary(), "fraction": float(fraction), "cam_source": cam_source, "feature_layer": layer}


# --------------------------------------------------------------------------- figures


def plot_species(ds, classes):
    """One training image per species with its ground-truth box."""
    import matplotlib.pyplot as plt

    from camlib.core.viz import draw_box

    n = len(classes)
    fig, axes = plt.subplots(2, (n + 1) // 2, figsize=(16, 4.4))
    for ax, c in zip(axes.ravel(), range(n), strict=True):
        i = int(np.flatnonzero(ds.labels == c)[0])
        ax.imshow(ds.images[i])
        draw_box(ax, ds.boxes[i], "#ff1744")
        ax.set_title(classes[c], fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    return fig


def plot_crops_vs_gt(detector: BirdDetector, result: Table4Result, test: Table4Split, n: int = 8, crop_size: int = 96):
    """Top row: the detector's "bird" CAM with its box (green) and the ground truth (red), from the best
    IoU to the worst; below: the CAM crop and the GT crop as the feature network sees them."""
    import matplotlib.pyplot as plt

    from camlib.core.viz import draw_box, overlay

    ds, cam_boxes = test.items, result.boxes[test.name]
    show = np.argsort(-result.ious)[:: max(1, len(ds) // n)][:n]
    maps = detector.maps(ds.images[show])
    crops = {k: PR.crop_resize(ds.images[show], b, crop_size) for k, b in
             (("CAM crop", cam_boxes[show]), ("GT crop", test.gt_boxes[show]))}
    fig, axes = plt.subplots(3, len(show), figsize=(2.1 * len(show), 6.6))
    for j, i in enumerate(show):
        axes[0, j].imshow(overlay(ds.images[i], maps[j]))
        draw_box(axes[0, j], cam_boxes[i])
        draw_box(axes[0, j], test.gt_boxes[i], "#ff1744")
        axes[0, j].set_title(f"{ds.classes[test.labels[i]]}\nIoU {result.ious[i]:.2f}", fontsize=8)
        for r, (k, c) in enumerate(crops.items(), 1):
            axes[r, j].imshow(c[j].permute(1, 2, 0).numpy())
            axes[r, j].set_title(k, fontsize=8)
    for ax in axes.ravel():
        ax.axis("off")
    fig.tight_layout()
    return fig


def plot_accuracy_bars(result: Table4Result, n_classes: int):
    """Test accuracy of the three settings, chance dashed."""
    import matplotlib.pyplot as plt

    a = result.accuracy
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.bar(["full image", "CAM crop", "GT box"], [a["full"], a["cam_crop"], a["gt_crop"]],
           color=["#90a4ae", "#00c853", "#ff1744"])
    ax.axhline(100 / n_classes, ls="--", c="k", lw=1, label="chance")
    ax.set_ylabel("test accuracy (%)")
    ax.legend()
    return fig
