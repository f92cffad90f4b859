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
from camlib.core.io import load_checkpoint
from camlib.evaluation.stats import paired_diff_ci, verdict
from camlib.paper.fine_grained import probe_with_hits

__all__ = [
    "MARGIN",
    "ROWS",
    "gap_vs_original_verdicts",
    "open_paper_datasets",
    "paper_networks",
    "paper_table",
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
        X[part] = FT.cached_features(model, Subset(data.dataset, idx.tolist()), model_name=model_name,
                                     preprocessing=preprocessing, dataset=data.identity(part), cache=cache,
                                     layer=layer, pool=pool, desc=f"{data.name} {part}", **feature_kwargs).X
    return PR.linear_probe(X["train"], data.labels[data.train], X["test"], data.labels[data.test], **(svm or {}))


# --------------------------------------------------------------------------- verdicts


def gap_vs_original_verdicts(hits: dict[str, dict[str, np.ndarray]], *, margin: float = MARGIN,
                             seed: int = 0) -> dict[str, dict]:
    """Per dataset: the paired bootstrap interval of ``gap - original`` accuracy (points) and
    ``verdict((low + margin, high + margin), +1)`` (as good: not worse by more than ``margin``); and
    whether each network beats raw pixels (``verdict`` of ``network - pixels``, paper sign +1) when a
    ``"pixels"`` row is given. ``hits``: row -> dataset -> per-test-image 0/1."""
    out = {}
    for d in hits["gap"]:
        est = paired_diff_ci(hits["gap"][d], hits["original"][d], seed=seed)
        row = {"gap_minus_original": est.to_dict(), "margin": margin,
               "as_good": verdict((est.low + margin, est.high + margin), 1)}
        if "pixels" in hits:
            row["beat_pixels"] = {n: verdict(paired_diff_ci(hits[n][d], hits["pixels"][d], seed=seed), 1)
                                  for n in ("original", "gap")}
        out[d] = row
    return out


def _sentence(acc: dict, verdicts: dict) -> str:
    diff = {d: acc["gap"][d] - acc["original"][d] for d in verdicts}
    parts = ", ".join(f"{d} {diff[d]:+.1f} [{v['gap_minus_original']['low']:+.1f}, {v['gap_minus_original']['high']:+.1f}]"
                      for d, v in verdicts.items())
    good = [d for d, v in verdicts.items() if v["as_good"] == "agrees"]
    worse = [d for d, v in verdicts.items() if v["as_good"] == "reversed"]
    open_ = [d for d, v in verdicts.items() if v["as_good"] == "not resolved"]
    text = (f"GAP minus original, per target set (points, paired 95% interval): {parts} "
            f"(mean {np.mean(list(diff.values())):+.1f}). As good (not worse by more than {MARGIN:g} points, "
            f"the whole interval): AGREES with the paper's Table 5 on {len(good)} of {len(verdicts)} sets")
    text += f"; REVERSED (worse by more than {MARGIN:g}) on {', '.join(worse)}" if worse else ""
    text += f"; NOT RESOLVED on {', '.join(open_)}" if open_ else ""
    if all("beat_pixels" in v for v in verdicts.values()):
        both = sum(all(r == "agrees" for r in v["beat_pixels"].values()) for v in verdicts.values())
        text += f". Both networks beat raw pixels (interval above 0) on {both} of {len(verdicts)} sets"
    return text + "."


# --------------------------------------------------------------------------- quick profile


def train_toy_networks(seed: int, *, size: int = 32, n_source: int = 2000, device: str = "cpu",
                       verbose: bool = True) -> tuple[dict[str, torch.nn.Module], dict[str, float]]:
    """The toy "GAP network" (3 conv blocks + 3x3 conv, 96 units, 8x8 maps at 32 px) and "original
    network" (4 blocks, 4x4 maps), both trained the same way on ``n_source`` procedural shapes (6
    classes) and frozen; returns them (eval mode) and their accuracy (%) on 500 held-out shapes. Both
    are built before either is trained (the global torch RNG gives their initial weights)."""
    from camlib.datasets import ProceduralShapes
    from camlib.models import SmallGAPNet
    from camlib.models.train import TrainConfig, evaluate_logits, fit

    source = ProceduralShapes(n_source, seed=seed, size=size, split="train")
    source_val = ProceduralShapes(500, seed=seed, size=size, split="val")
    nets = {"gap": SmallGAPNet(6, channels=(16, 32, 64), width=96),
            "original": SmallGAPNet(6, channels=(16, 32, 64, 96), width=96)}
    cfg = TrainConfig(epochs=5, batch_size=64, lr=0.05, lr_step_every=4 * 32, seed=seed)
    source_acc = {}
    for name, net in nets.items():
        t0 = time.time()
        fit(net, source, cfg, device=device)
        logits, labels = evaluate_logits(net.eval(), source_val)
        source_acc[name] = 100.0 * float((logits.argmax(1) == labels).float().mean())
        if verbose:
            print(f"{name:8s}: trained in {time.time() - t0:.0f} s, source val accuracy {source_acc[name]:.1f}% "
                  f"(feature layer {FT.find_head(net, source_val[0][0][None]).feature_layer}, "
                  f"{net.fc.in_features} features)")
    return nets, source_acc


def _tiny(x: torch.Tensor) -> np.ndarray:
    """'Tiny images': 4x4 average pooling, flattened (8 x 8 x 3 = 192 numbers at 32 px)."""
    return torch.nn.functional.avg_pool2d(x, 4).reshape(len(x), -1).numpy()


def quick_table(targets: dict, nets: dict, *, svm: dict, size: int, seed: int, cache=None,
                device: str = "cpu") -> tuple[dict, dict]:
    """Linear-SVM probes of every target set with raw pixels (:func:`_tiny`), the original network's
    and the GAP network's pooled features -> ``(table row -> dataset -> probe dict, hits row -> dataset
    -> per-test-image 0/1)``."""
    table = {row: {} for row in ROWS}
    hits = {row: {} for row in ROWS}
    for t in targets.values():
        table["pixels"][t.name], _, hits["pixels"][t.name] = probe_with_hits(
            _tiny(t.x_train), t.y_train, _tiny(t.x_test), t.y_test, **svm)
        for name in ("original", "gap"):
            X = {part: FT.cached_features(nets[name], x, model_name=f"toy_{name}_net", cache=cache, device=device,
                                          preprocessing=f"{size}x{size}, [0, 1]", dataset=f"{t.name}({part}, seed={seed})",
                                          progress=False).X for part, x in (("train", t.x_train), ("test", t.x_test))}
            table[name][t.name], _, hits[name][t.name] = probe_with_hits(X["train"], t.y_train, X["test"], t.y_test, **svm)
    return table, hits


def quick_metrics(table: dict, hits: dict, *, seed: int, **extra) -> dict:
    """``metrics["quick"]`` of notebook 05: accuracies, probes, GAP - original per set, the verdicts and
    their sentence; ``extra`` (source accuracy, sizes) merged in."""
    acc = {row: {d: r["acc"] for d, r in cols.items()} for row, cols in table.items()}
    verdicts = gap_vs_original_verdicts(hits, seed=seed)
    return {"accuracy": acc, "svm": table, "gap_minus_original": {d: acc["gap"][d] - acc["original"][d] for d in acc["gap"]},
            "verdict": _sentence(acc, verdicts), "verdicts": verdicts, **extra}


def quick_comparisons(acc: dict, targets: dict) -> list[dict]:
    """Stand-in comparison rows: the quick 'shapes' set for Caltech101, 'textures' for Scene15."""
    rows = []
    for d, key in {"shapes": "caltech101", "textures": "scene15"}.items():
        for row, ref in (("gap", "gap_googlenet_gap"), ("original", "avepool_googlenet")):
            rows.append({
                "metric": f"linear SVM accuracy (%), {row} features", "paper_ref": f"table5.{ref}.{key}",
                "reproduced": acc[row][d],
                "setting": f"STAND-IN, not {key}: quick profile '{d}' set ({targets[d].description}); toy {row} "
                           f"network trained on 32 px procedural shapes; LinearSVC, C by 3-fold CV on train"})
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


# --------------------------------------------------------------------------- paper profile


def open_paper_datasets(names: str, root, preprocess, *, seed: int = 0) -> tuple[dict, dict]:
    """The Table 5 datasets named in the comma-separated ``names`` (ValueError for an unknown name; a
    missing dataset raises DatasetNotFoundError with its layout) -> ``(name -> Table5Data, skipped
    name -> reason)``; SUN Attribute (multi-label) is skipped with the reason."""
    from camlib.datasets.table5 import TABLE5_DATASETS, open_table5

    wanted = [d.strip() for d in names.split(",") if d.strip()]
    unknown = [d for d in wanted if d not in TABLE5_DATASETS]
    if unknown:
        raise ValueError(f"TABLE5_DATASETS: unknown dataset(s) {unknown}; choose from {list(TABLE5_DATASETS)}")
    datasets, skipped = {}, {}
    for d in wanted:
        try:
            datasets[d] = open_table5(d, root, preprocess, seed=seed)
        except NotImplementedError as exc:
            skipped[d] = str(exc).splitlines()[0]
            print(f"{d}: not run: {skipped[d]}")
    return datasets, skipped


def paper_networks(gap_checkpoint: str | Path | None, device: str = "cpu") -> dict[str, tuple]:
    """row -> (model, layer, pool, name): ``gap`` GoogLeNet-GAP from ``gap_checkpoint`` (skipped, with a
    message, without one), ``avepool`` torchvision GoogLeNet, ``fc7`` AlexNet's ``classifier.5``."""
    from camlib.models import googlenet_gap, load_torchvision

    networks = {}
    if gap_checkpoint:
        gap_net = googlenet_gap(1000, weights=None)
        state = load_checkpoint(gap_checkpoint, fix="Train GoogLeNet-GAP with notebook 02 and give its checkpoint.")
        gap_net.load_state_dict(state.get("model", state))
        networks["gap"] = (gap_net, None, None, "googlenet_gap")
    else:
        print("GAP_CHECKPOINT not given: the GoogLeNet-GAP row is not run (train it with notebook 02 first)")
    networks["avepool"] = (load_torchvision("googlenet", device=device).model, None, None, "googlenet")
    networks["fc7"] = (load_torchvision("alexnet", device=device).model, "classifier.5", "avg", "alexnet")
    return networks


def paper_table(datasets: dict, networks: dict, *, prep_desc: str, svm: dict, cache=None, device: str = "cpu",
                skipped: dict | None = None) -> tuple[dict, list[dict]]:
    """Every (dataset, network) of Table 5 -> ``(metrics["paper"], comparison rows)``."""
    from camlib.datasets.table5 import TABLE5_DATASETS

    paper = {row: {} for row in networks}
    for d, data in datasets.items():
        for row, (model, layer, pool, mname) in networks.items():
            r = table5_probe(model.eval().to(device), data, model_name=mname, preprocessing=prep_desc, layer=layer,
                             pool=pool, cache=cache, svm=svm, device=device, batch_size=64)
            paper[row][d] = r
            print(f"{d:18s} {row:8s} {r['acc']:.2f}% ({len(data.train)} train / {len(data.test)} test, {data.protocol})")
    rows = [{"metric": f"linear SVM accuracy (%), {row} features", "paper_ref": f"table5.{PAPER_REFS[row]}.{d}",
             "reproduced": r["acc"], "setting": f"{d}: {TABLE5_DATASETS[d].note}; {networks[row][3]} features "
                                                f"({prep_desc}); LinearSVC, C by 3-fold CV on train"}
            for row, per in paper.items() for d, r in per.items()]
    metrics = {"accuracy": {row: {d: r["acc"] for d, r in v.items()} for row, v in paper.items()},
               "svm": paper, "not_run": skipped or {}}
    return metrics, rows
