"""Section 4 and Table 5: are the GAP network's pooled features still good GENERIC features?

The protocol (one function per step, :mod:`camlib.core.features`): pooled features of a network's CAM
layer (``cached_features``), a linear SVM with ``C`` chosen by cross-validation on the training images
only, test accuracy measured once (:func:`camlib.paper.fine_grained.probe_with_hits`, which also keeps
the per-image hits). :func:`table5_probe` runs it for one (network, Table 5 dataset).

The paper's claim: GoogLeNet-GAP's features are about as good as GoogLeNet's (within about 1-2 points
on every dataset). :func:`gap_vs_original_verdicts` decides it per dataset with
:func:`camlib.evaluation.stats.verdict` as a NON-INFERIORITY claim: the paired bootstrap 95% interval
of ``GAP - original`` accuracy (same test images), shifted by the margin of :data:`MARGIN` points,
must lie above 0 ("agrees"); it lies below 0 when GAP is worse by more than the margin ("reversed").

Quick profile: :func:`train_toy_networks` (a GAP network and a deeper "original" on procedural shapes)
and :func:`quick_table` on the embedded target sets of :func:`camlib.datasets.table5.quick_datasets`.
Paper profile: :func:`open_paper_datasets`, :func:`paper_networks` and :func:`paper_table`.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from camlib.core import features as FT
from camlib.core import probe as PR
from camlib.evaluation.stats import paired_diff_ci, verdict
from camlib.paper.fine_grained import probe_with_hits

__all__ = [
    "CALTECH_REFS",
    "CALTECH_ROWS",
    "LITE0_ROWS",
    "MARGIN",
    "ROWS",
    "caltech_comparisons",
    "caltech_features",
    "caltech_sentence",
    "caltech_table",
    "find_caltech",
    "gap_vs_original_verdicts",
    "open_paper_datasets",
    "paper_networks",
    "paper_table",
    "per_class_weights",
    "plot_caltech_bars",
    "plot_quick_bars",
    "plot_targets",
    "quick_comparisons",
    "quick_metrics",
    "quick_table",
    "table5_probe",
    "train_toy_networks",
]

MARGIN = 2.0  #: points: "as good as" = not worse by more than this (the paper's differences are within 1.5)
ROWS = ("pixels", "original", "gap")  #: quick-profile feature rows: tiny images, the two toy networks
PAPER_REFS = {"gap": "gap_googlenet_gap", "avepool": "avepool_googlenet", "fc7": "fc7_alexnet"}


# --------------------------------------------------------------------------- one (network, dataset)


def table5_probe(
    model,
    data,
    *,
    model_name: str,
    preprocessing: str,
    layer: str | None = None,
    pool: str | None = None,
    cache=None,
    svm: dict | None = None,
    **feature_kwargs,
) -> dict:
    """Table 5 for one (network, :class:`~camlib.datasets.table5.Table5Data`): features of the protocol's
    train and test images (the CAM feature layer when ``layer`` is None, else ``layer`` pooled with
    ``pool``), a linear SVM with C chosen by CV on train, accuracy on test
    (:func:`camlib.core.probe.linear_probe`'s dict)."""
    from torch.utils.data import Subset

    X = {}
    for part, idx in (("train", data.train), ("test", data.test)):
        X[part] = FT.cached_features(
            model,
            Subset(data.dataset, idx.tolist()),
            model_name=model_name,
            preprocessing=preprocessing,
            dataset=data.identity(part),
            cache=cache,
            layer=layer,
            pool=pool,
            desc=f"{data.name} {part}",
            **feature_kwargs,
        ).X
    return PR.linear_probe(
        X["train"], data.labels[data.train], X["test"], data.labels[data.test], **(svm or {})
    )


# --------------------------------------------------------------------------- verdicts


def gap_vs_original_verdicts(
    hits: dict[str, dict[str, np.ndarray]], *, margin: float = MARGIN, seed: int = 0
) -> dict[str, dict]:
    """Per dataset: the paired bootstrap interval of ``gap - original`` accuracy (points) and
    ``verdict((low + margin, high + margin), +1)`` (as good: not worse by more than ``margin``); and
    whether each network beats raw pixels (``verdict`` of ``network - pixels``, paper sign +1) when a
    ``"pixels"`` row is given. ``hits``: row -> dataset -> per-test-image 0/1."""
    out = {}
    for d in hits["gap"]:
        est = paired_diff_ci(hits["gap"][d], hits["original"][d], seed=seed)
        row = {
            "gap_minus_original": est.to_dict(),
            "margin": margin,
            "as_good": verdict((est.low + margin, est.high + margin), 1),
        }
        if "pixels" in hits:
            row["beat_pixels"] = {
                n: verdict(paired_diff_ci(hits[n][d], hits["pixels"][d], seed=seed), 1)
                for n in ("original", "gap")
            }
        out[d] = row
    return out


def _sentence(acc: dict, verdicts: dict) -> str:
    diff = {d: acc["gap"][d] - acc["original"][d] for d in verdicts}
    parts = ", ".join(
        f"{d} {diff[d]:+.1f} [{v['gap_minus_original']['low']:+.1f}, {v['gap_minus_original']['high']:+.1f}]"
        for d, v in verdicts.items()
    )
    good = [d for d, v in verdicts.items() if v["as_good"] == "agrees"]
    worse = [d for d, v in verdicts.items() if v["as_good"] == "reversed"]
    open_ = [d for d, v in verdicts.items() if v["as_good"] == "not resolved"]
    text = (
        f"GAP minus original, per target set (points, paired 95% interval): {parts} "
        f"(mean {np.mean(list(diff.values())):+.1f}). As good (not worse by more than {MARGIN:g} points, "
        f"the whole interval): AGREES with the paper's Table 5 on {len(good)} of {len(verdicts)} sets"
    )
    text += f"; REVERSED (worse by more than {MARGIN:g}) on {', '.join(worse)}" if worse else ""
    text += f"; NOT RESOLVED on {', '.join(open_)}" if open_ else ""
    if all("beat_pixels" in v for v in verdicts.values()):
        both = sum(all(r == "agrees" for r in v["beat_pixels"].values()) for v in verdicts.values())
        text += f". Both networks beat raw pixels (interval above 0) on {both} of {len(verdicts)} sets"
    return text + "."


# --------------------------------------------------------------------------- quick profile


def train_toy_networks(
    seed: int, *, size: int = 32, n_source: int = 2000, device: str = "cpu", verbose: bool = True
) -> tuple[dict[str, torch.nn.Module], dict[str, float]]:
    """The toy "GAP network" (3 conv blocks + 3x3 conv, 96 units, 8x8 maps at 32 px) and "original
    network" (4 blocks, 4x4 maps), both trained the same way on ``n_source`` procedural shapes (6
    classes) and frozen; returns them (eval mode) and their accuracy (%) on 500 held-out shapes. Both
    are built before either is trained (the global torch RNG gives their initial weights)."""
    from camlib.datasets import ProceduralShapes
    from camlib.models import SmallGAPNet
    from camlib.models.train import TrainConfig, evaluate_logits, fit

    source = ProceduralShapes(n_source, seed=seed, size=size, split="train")
    source_val = ProceduralShapes(500, seed=seed, size=size, split="val")
    nets = {
        "gap": SmallGAPNet(6, channels=(16, 32, 64), width=96),
        "original": SmallGAPNet(6, channels=(16, 32, 64, 96), width=96),
    }
    cfg = TrainConfig(epochs=5, batch_size=64, lr=0.05, lr_step_every=4 * 32, seed=seed)
    source_acc = {}
    for name, net in nets.items():
        t0 = time.time()
        fit(net, source, cfg, device=device)
        logits, labels = evaluate_logits(net.eval(), source_val)
        source_acc[name] = 100.0 * float((logits.argmax(1) == labels).float().mean())
        if verbose:
            print(
                f"{name:8s}: trained in {time.time() - t0:.0f} s, source val accuracy {source_acc[name]:.1f}% "
                f"(feature layer {FT.find_head(net, source_val[0][0][None]).feature_layer}, "
                f"{net.fc.in_features} features)"
            )
    return nets, source_acc


def _tiny(x: torch.Tensor) -> np.ndarray:
    """'Tiny images': 4x4 average pooling, flattened (8 x 8 x 3 = 192 numbers at 32 px)."""
    return torch.nn.functional.avg_pool2d(x, 4).reshape(len(x), -1).numpy()


def quick_table(
    targets: dict, nets: dict, *, svm: dict, size: int, seed: int, cache=None, device: str = "cpu"
) -> tuple[dict, dict]:
    """Linear-SVM probes of every target set with raw pixels (:func:`_tiny`), the original network's
    and the GAP network's pooled features -> ``(table row -> dataset -> probe dict, hits row -> dataset
    -> per-test-image 0/1)``."""
    table = {row: {} for row in ROWS}
    hits = {row: {} for row in ROWS}
    for t in targets.values():
        table["pixels"][t.name], _, hits["pixels"][t.name] = probe_with_hits(
            _tiny(t.x_train), t.y_train, _tiny(t.x_test), t.y_test, **svm
        )
        for name in ("original", "gap"):
            X = {
                part: FT.cached_features(
                    nets[name],
                    x,
                    model_name=f"toy_{name}_net",
                    cache=cache,
                    device=device,
                    preprocessing=f"{size}x{size}, [0, 1]",
                    dataset=f"{t.name}({part}, seed={seed})",
                    progress=False,
                ).X
                for part, x in (("train", t.x_train), ("test", t.x_test))
            }
            table[name][t.name], _, hits[name][t.name] = probe_with_hits(
                X["train"], t.y_train, X["test"], t.y_test, **svm
            )
    return table, hits


def quick_metrics(table: dict, hits: dict, *, seed: int, **extra) -> dict:
    """``metrics["quick"]`` of notebook 05: accuracies, probes, GAP - original per set, the verdicts and
    their sentence; ``extra`` (source accuracy, sizes) merged in."""
    acc = {row: {d: r["acc"] for d, r in cols.items()} for row, cols in table.items()}
    verdicts = gap_vs_original_verdicts(hits, seed=seed)
    return {
        "accuracy": acc,
        "svm": table,
        "gap_minus_original": {d: acc["gap"][d] - acc["original"][d] for d in acc["gap"]},
        "verdict": _sentence(acc, verdicts),
        "verdicts": verdicts,
        **extra,
    }


def quick_comparisons(acc: dict, targets: dict) -> list[dict]:
    """Stand-in comparison rows: the quick 'shapes' set for Caltech101, 'textures' for Scene15."""
    rows = []
    for d, key in {"shapes": "caltech101", "textures": "scene15"}.items():
        for row, ref in (("gap", "gap_googlenet_gap"), ("original", "avepool_googlenet")):
            rows.append(
                {
                    "metric": f"linear SVM accuracy (%), {row} features",
                    "paper_ref": f"table5.{ref}.{key}",
                    "reproduced": acc[row][d],
                    "setting": f"STAND-IN, not {key}: quick profile '{d}' set ({targets[d].description}); toy {row} "
                    f"network trained on 32 px procedural shapes; LinearSVC, C by 3-fold CV on train",
                }
            )
    return rows


def plot_targets(targets: dict, per_set: int = 3):
    """``per_set`` training images of every target set."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(targets) * per_set, figsize=(2 * len(targets) * per_set / 1.6, 1.6))
    for j, t in enumerate(targets.values()):
        for k in range(per_set):
            ax = axes[per_set * j + k]
            ax.imshow(t.x_train[k * (len(t.y_train) // per_set)].permute(1, 2, 0).numpy())
            ax.set_title(t.name if k == per_set // 2 else "", fontsize=8)
            ax.axis("off")
    return fig


def plot_quick_bars(acc: dict):
    """Accuracy per target set and feature row."""
    import matplotlib.pyplot as plt

    names = list(acc["gap"])
    fig, ax = plt.subplots(figsize=(8, 3))
    w = 0.27
    for k, row in enumerate(ROWS):
        ax.bar(np.arange(len(names)) + (k - 1) * w, [acc[row][d] for d in names], w, label=row)
    ax.set_xticks(np.arange(len(names)), names)
    ax.set_ylabel("linear SVM test accuracy (%)")
    ax.legend(fontsize=8)
    return fig


# --------------------------------------------------------------------------- real photos: Caltech-101 with Lite0

#: Feature rows on Caltech-101: name -> (Lite0 layer, what it is). All from ONE forward pass per image.
LITE0_ROWS = {
    "gap": ("_swish", "GAP layer of the full Lite0 (ReLU6 after conv_head + BN, 1280 channels, stride 32)"),
    "block15": (
        "_blocks.15",
        "an earlier pooled layer: the last MBConv block before the head conv (320, stride 32)",
    ),
    "s16_gap": (
        "_blocks.10",
        "the same trunk cut at stride 16 + GAP (112 channels): the '-GAP' analogue, "
        "without the paper's added 3x3 conv and fine-tuning",
    ),
}
CALTECH_ROWS = ("pixels", "s16_gap", "block15", "gap")
PIXELS_SIZE = (
    8  #: raw-pixel floor ("tiny images"): the network input averaged down to 8 x 8 x 3 = 192 numbers
)
#: row -> the paper's Table 5 row it stands in for (never comparable: another network, capped test side)
CALTECH_REFS = {
    "gap": "table5.avepool_googlenet.caltech101",
    "s16_gap": "table5.gap_googlenet_gap.caltech101",
}


def find_caltech(root=None, use: bool = True, seed: int = 0):
    """``(Caltech101 or None, DataRoot or None)``: the set found by :func:`camlib.datasets.roots.resolve_root`
    (parameter -> ``$CALTECH101_ROOT`` -> ``data/`` -> ``../shared/data``), opened with its lists (or the
    seeded 30-per-class split of a full archive); None when absent or ``use`` is False (printed)."""
    from camlib.datasets.caltech101 import open_caltech101
    from camlib.datasets.roots import resolve_root

    if not use:
        print("REAL_PHOTOS = False: the toy stand-ins only")
        return None, None
    found = resolve_root("caltech101", root)
    if not found:
        print(found.message() + " -> the toy stand-ins instead")
        return None, found
    caltech = open_caltech101(found.path, seed=seed)
    print(f"caltech101: {found.path} (via {found.kind}; {caltech.protocol}; {found.info.caveat})")
    return caltech, found


def per_class_weights(labels) -> np.ndarray:
    """``w_i = N / (K n_{c(i)})``: ``mean(hits * w)`` is the mean per-class accuracy, so the bootstrap
    intervals of :mod:`camlib.evaluation.stats` apply to it unchanged (resampling images, weights fixed)."""
    labels = np.asarray(labels)
    classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    return len(labels) / (len(classes) * counts[inverse].astype(np.float64))


class _WithPixels(torch.nn.Module):
    """``net`` plus a ``pixels`` layer: its input averaged down to ``size`` x ``size`` (the raw-pixel row,
    captured in the same pass; the network's output is unchanged)."""

    def __init__(self, net: torch.nn.Module, size: int) -> None:
        super().__init__()
        self.net, self.pixels = net, torch.nn.AdaptiveAvgPool2d(size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.pixels(x)
        return self.net(x)


def caltech_features(
    caltech,
    *,
    input_size: int = 224,
    cache=None,
    device: str = "cpu",
    batch_size: int = 64,
    progress: bool = True,
) -> tuple[dict, dict]:
    """``({part: {row: X}}, {part: labels})`` of a :class:`~camlib.datasets.caltech101.Caltech101`: the three
    Lite0 rows of :data:`LITE0_ROWS` and the raw-pixel row (the network input averaged to
    :data:`PIXELS_SIZE`), all from ONE pass per photo (whole photo resized to ``input_size``, Lite0's
    scaling), each part cached in ``cache`` under the weights and the image list."""
    from camlib.datasets.manifest import LabelledRecords
    from camlib.models import load_efficientnet_lite0
    from camlib.paper.fine_grained import lite0_transform

    model = _WithPixels(load_efficientnet_lite0(device).model, PIXELS_SIZE).eval()
    layers = {row: f"net.{layer}" for row, (layer, _) in LITE0_ROWS.items()} | {"pixels": "pixels"}
    X, y = {}, {}
    for part in ("train", "test"):
        records = getattr(caltech, part)
        ids = FT.array_digest(np.array([str(r.target.image_id) for r in records]))
        parts = {
            "version": FT.FEATURES_VERSION,
            "model": "efficientnet_lite0",
            "weights_sha256": FT.model_fingerprint(model),
            "layers": layers,
            "pool": "avg",
            "preprocessing": f"lite0 whole image {input_size}, pixels {PIXELS_SIZE}",
            "dataset": f"caltech101({part}, n={len(records)}, {ids})",
        }

        def compute(records=records, part=part):
            feats, labels = FT.extract_layers(
                model,
                LabelledRecords(records, lite0_transform(input_size)),
                list(layers.values()),
                flatten=("pixels",),
                batch_size=batch_size,
                device=device,
                progress=progress,
                desc=f"caltech {part}",
            )
            return {**{row: feats[layer] for row, layer in layers.items()}, "y": labels}

        arrays = compute() if cache is None else cache.get_or_compute(parts, compute)[0]
        X[part], y[part] = {row: arrays[row] for row in CALTECH_ROWS}, arrays["y"]
    return X, y


def caltech_table(X: dict, y: dict, *, svm: dict, seed: int = 0, margin: float = MARGIN) -> dict:
    """A linear SVM per row of :data:`CALTECH_ROWS` (C by CV on train only), scored once on test:
    accuracy and MEAN PER-CLASS accuracy with bootstrap 95% intervals (n test images), and the verdicts:
    ``s16_gap`` as good as ``gap`` (non-inferiority within ``margin`` points, the paper's GoogLeNet-GAP
    vs GoogLeNet claim) and, as a sanity check that is not a paper claim, each network row above pixels."""
    from camlib.evaluation.stats import bootstrap_ci

    w = per_class_weights(y["test"])
    probes, hits = {}, {}
    for row in CALTECH_ROWS:
        probes[row], _, hits[row] = probe_with_hits(
            X["train"][row], y["train"], X["test"][row], y["test"], **svm
        )
    rows = {
        row: {
            "mean_per_class_acc": bootstrap_ci(hits[row] * w, seed=seed).to_dict(),
            "acc": bootstrap_ci(hits[row], seed=seed).to_dict(),
            "best_C": probes[row]["best_C"],
            "cv_acc": probes[row]["cv_acc"],
            "dim": probes[row]["dim"],
        }
        for row in CALTECH_ROWS
    }
    est = paired_diff_ci(hits["s16_gap"] * w, hits["gap"] * w, seed=seed)
    verdicts = {
        "s16_gap_as_good_as_gap": {
            "estimate": est.to_dict(),
            "margin": margin,
            "paper": "91.98 vs 92.05 (GoogLeNet-GAP vs GoogLeNet): as good",
            "verdict": verdict((est.low + margin, est.high + margin), 1),
        }
    }
    for row in ("s16_gap", "block15", "gap"):
        d = paired_diff_ci(hits[row] * w, hits["pixels"] * w, seed=seed)
        verdicts[f"{row}_above_pixels"] = {
            "estimate": d.to_dict(),
            "paper": "no claim (sanity check)",
            "verdict": verdict(d, 1),
        }
    counts = np.bincount(y["test"])
    return {
        "rows": rows,
        "verdicts": verdicts,
        "n_train": int(len(y["train"])),
        "n_test": int(len(y["test"])),
        "n_classes": int(len(np.unique(y["train"]))),
        "train_per_class": sorted(set(np.bincount(y["train"]).tolist())),
        "test_per_class": {"min": int(counts[counts > 0].min()), "max": int(counts.max())},
        "layers": {row: LITE0_ROWS[row][1] for row in LITE0_ROWS}
        | {"pixels": f"the input averaged to {PIXELS_SIZE}x{PIXELS_SIZE}x3"},
    }


def caltech_sentence(table: dict) -> str:
    """The measured mean per-class accuracies and the verdicts in words."""
    acc = ", ".join(
        f"{row} {r['mean_per_class_acc']['value']:.1f}% [{r['mean_per_class_acc']['low']:.1f}, "
        f"{r['mean_per_class_acc']['high']:.1f}]"
        for row, r in table["rows"].items()
    )
    v = table["verdicts"]["s16_gap_as_good_as_gap"]
    e = v["estimate"]
    return (
        f"Caltech-101, {table['n_classes']} classes, {table['n_train']} train / {table['n_test']} test images (test "
        f"capped at {table['test_per_class']['max']} per class): mean per-class accuracy {acc}. Stride-16 cut + GAP "
        f"minus full GAP layer: {e['value']:+.1f} points [{e['low']:+.1f}, {e['high']:+.1f}]; as good within "
        f"{v['margin']:g} points (the paper's claim for GoogLeNet-GAP): {v['verdict'].upper()}."
    )


def caltech_comparisons(table: dict, input_size: int) -> list[dict]:
    """Comparison rows (never ``comparable``): data, network, n and rule in each setting."""
    n = f"{table['n_train']} train (30/class) / {table['n_test']} test (<= 10/class)"
    return [
        {
            "metric": f"Caltech-101 mean per-class accuracy (%), Lite0 {row} features",
            "paper_ref": ref,
            "reproduced": table["rows"][row]["mean_per_class_acc"],
            "comparable": False,
            "setting": f"caltech101 ({table['n_classes']} classes incl. BACKGROUND_Google, {n}); EfficientNet-Lite0 "
            f"ImageNet weights, {LITE0_ROWS[row][1]}, whole image at {input_size} px; LinearSVC, C by "
            f"3-fold CV on train",
        }
        for row, ref in CALTECH_REFS.items()
    ]


def plot_caltech_bars(table: dict):
    """Mean per-class accuracy per feature row with its 95% interval."""
    import matplotlib.pyplot as plt

    rows = table["rows"]
    v = np.array([[r["mean_per_class_acc"][k] for k in ("value", "low", "high")] for r in rows.values()])
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.bar(list(rows), v[:, 0], yerr=[v[:, 0] - v[:, 1], v[:, 2] - v[:, 0]], capsize=4, color="#4c72b0")
    ax.set_ylabel("mean per-class accuracy (%)")
    ax.set_title(f"Caltech-101, linear SVM (n = {table['n_test']} test images)", fontsize=9)
    return fig


# --------------------------------------------------------------------------- paper profile


def open_paper_datasets(names: str, root, preprocess, *, seed: int = 0) -> tuple[dict, dict]:
    """The Table 5 datasets named in the comma-separated ``names`` (ValueError for an unknown name; a
    missing dataset raises DatasetNotFoundError with its layout) -> ``(name -> Table5Data, skipped
    name -> reason)``; SUN Attribute (multi-label) is skipped with the reason."""
    from camlib.datasets.table5 import TABLE5_DATASETS, open_table5

    wanted = [d.strip() for d in names.split(",") if d.strip()]
    unknown = [d for d in wanted if d not in TABLE5_DATASETS]
    if unknown:
        raise ValueError(
            f"TABLE5_DATASETS: unknown dataset(s) {unknown}; choose from {list(TABLE5_DATASETS)}"
        )
    datasets, skipped = {}, {}
    for d in wanted:
        try:
            datasets[d] = open_table5(d, root, preprocess, seed=seed)
        except NotImplementedError as exc:
            skipped[d] = str(exc).splitlines()[0]
            print(f"{d}: not run: {skipped[d]}")
    return datasets, skipped


def paper_networks(gap_checkpoint: str | Path | None, device: str = "cpu") -> dict[str, tuple]:
    """row -> (model, layer, pool, name): ``gap`` GoogLeNet-GAP from ``gap_checkpoint`` (``None``: the one
    notebook 02 left in :func:`camlib.models.checkpoint_dir`; skipped, with a message, without one),
    ``avepool`` torchvision GoogLeNet, ``fc7`` AlexNet's ``classifier.5``."""
    from camlib.evaluation.localize import load_gap_checkpoint
    from camlib.models import find_checkpoint, load_torchvision

    networks = {}
    if gap_checkpoint is None:
        gap_checkpoint = find_checkpoint("googlenet_gap")
    if gap_checkpoint:
        networks["gap"] = (
            load_gap_checkpoint("googlenet_gap", gap_checkpoint, device=device),
            None,
            None,
            "googlenet_gap",
        )
    else:
        print("GAP_CHECKPOINT not given: the GoogLeNet-GAP row is not run (train it with notebook 02 first)")
    networks["avepool"] = (load_torchvision("googlenet", device=device).model, None, None, "googlenet")
    networks["fc7"] = (load_torchvision("alexnet", device=device).model, "classifier.5", "avg", "alexnet")
    return networks


def paper_table(
    datasets: dict,
    networks: dict,
    *,
    prep_desc: str,
    svm: dict,
    cache=None,
    device: str = "cpu",
    skipped: dict | None = None,
) -> tuple[dict, list[dict]]:
    """Every (dataset, network) of Table 5 -> ``(metrics["paper"], comparison rows)``."""
    from camlib.datasets.table5 import TABLE5_DATASETS

    paper = {row: {} for row in networks}
    for d, data in datasets.items():
        for row, (model, layer, pool, mname) in networks.items():
            r = table5_probe(
                model.eval().to(device),
                data,
                model_name=mname,
                preprocessing=prep_desc,
                layer=layer,
                pool=pool,
                cache=cache,
                svm=svm,
                device=device,
                batch_size=64,
            )
            paper[row][d] = r
            print(
                f"{d:18s} {row:8s} {r['acc']:.2f}% ({len(data.train)} train / {len(data.test)} test, {data.protocol})"
            )
    rows = [
        {
            "metric": f"linear SVM accuracy (%), {row} features",
            "paper_ref": f"table5.{PAPER_REFS[row]}.{d}",
            "reproduced": r["acc"],
            "setting": f"{d}: {TABLE5_DATASETS[d].note}; {networks[row][3]} features "
            f"({prep_desc}); LinearSVC, C by 3-fold CV on train",
        }
        for row, per in paper.items()
        for d, r in per.items()
    ]
    metrics = {
        "accuracy": {row: {d: r["acc"] for d, r in v.items()} for row, v in paper.items()},
        "svm": paper,
        "not_run": skipped or {},
    }
    return metrics, rows
