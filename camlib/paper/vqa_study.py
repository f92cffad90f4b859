"""Notebook 07's experiment (section 4.2, Figure 12), built from the model and metrics of
:mod:`camlib.paper.vqa` (imported from there, never copied).

Quick profile: :func:`pretrain_backbone` (a SmallGAPNet learns which colour-shape pairs a scene
holds: the stand-in for ImageNet), :func:`train_answer_layers` (the paper's additive answer layer,
``paper_model``, and a question-gated variant that is NOT in the paper, ``gated_not_in_paper``, both
trained on the frozen pooled features), :func:`accuracy_per_type` (accuracy per question type with
its bootstrap interval, against chance), :func:`pointing_when_correct` (the paper's reading of Figure
12: on the questions the model answers RIGHT, does the CAM of its answer peak on the object the
answer is about, more often than the centre pixel or a random pixel?), :func:`pointing_verdicts` (the
same for the TRUE answer's CAM on every question, against a wrong answer's CAM too) and
:func:`plot_answer_cams` ("ask your own question"). Every claim is decided by
:func:`camlib.evaluation.stats.verdict` on a bootstrap interval over the questions. Paper profile:
:func:`load_paper_vqa` and :func:`train_paper_head` on a VQA v1/v2 folder.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from camlib.datasets.roots import DataSource
from camlib.datasets.vqa import Vocabulary, load_vqa_split
from camlib.evaluation.stats import bootstrap_ci, paired_diff_ci, verdict
from camlib.paper.vqa import BowGAPVQA, attach_head, torchvision_gap_backbone
from camlib.paper.vqa_eval import accuracy_by_group, pointing_hits, vqa_scores
from camlib.paper.vqa_train import (
    FeatureVQASet,
    answer_strings,
    extract_pooled_features,
    fit_multilabel,
    fit_vqa,
    pool_features,
    predict_vqa,
    records_feature_set,
)

__all__ = [
    "BASELINES",
    "FIGURE_TITLES",
    "MODEL_LABELS",
    "MODEL_NOTES",
    "POINT_BASELINES",
    "AnswerModels",
    "PaperVQA",
    "Pretrained",
    "accuracy_lines",
    "accuracy_per_type",
    "correct_pointing_lines",
    "demo_scene",
    "load_paper_vqa",
    "paper_data_row",
    "paper_results",
    "paper_vqa_root",
    "plot_answer_cams",
    "plot_questions",
    "pointing_verdicts",
    "pointing_when_correct",
    "pretrain_backbone",
    "quick_data_row",
    "quick_results",
    "train_answer_layers",
    "train_paper_head",
    "verdict_lines",
]

BASELINES = ("cam_wrong_answer", "centre", "random_point")  # for the TRUE answer's CAM, every question
POINT_BASELINES = ("centre", "random_point")  # for the predicted answer's CAM on the questions answered right
# The two answer layers, by results key. The gated one is NOT the paper's model: every table row,
# figure title and results key that shows it says so (its CAMs are not Figure 12's).
MODEL_NOTES = {
    "paper_model": "the paper's model: concat(GAP features, bag of words) -> one linear softmax layer",
    "gated_not_in_paper": "NOT IN THE PAPER: sigmoid(G q) channel gate on the features before GAP",
}
MODEL_LABELS = {"paper_model": "paper model", "gated_not_in_paper": "gated (NOT in the paper)"}
FIGURE_TITLES = {
    "paper_model": "The paper's model (Fig. 12 style): CAM of the predicted answer",
    "gated_not_in_paper": "Gated variant, NOT IN THE PAPER (not Fig. 12): CAM of the predicted answer",
}


# --------------------------------------------------------------------------- quick profile: training


@dataclass
class Pretrained:
    """The scene-content network, its training config and its test metrics (mAP, label accuracy, ...)."""

    net: nn.Module
    config: object  # TrainConfig
    metrics: dict
    all_negative_label_acc: float  # labels right when every logit says "absent" (the floor)


BACKBONE = "SmallGAPNet(20 pair labels, channels=(16, 32), width=64)"


def _backbone_cache_file(cache_dir: str | Path, train_set, config) -> Path:
    """The cache file of a pretrained scene network: keyed on the architecture, the training config and
    a digest of the training images and labels (other scenes or settings never hit it)."""
    import hashlib
    import json

    from camlib.core.digest import array_digest

    key = json.dumps(
        {
            "version": 1,
            "backbone": BACKBONE,
            "config": config.to_dict(),
            "images": array_digest(train_set.images),
            "labels": array_digest(train_set.object_labels()),
        },
        sort_keys=True,
    )
    return Path(cache_dir) / f"vqa_backbone_{hashlib.sha256(key.encode()).hexdigest()[:16]}.pt"


def pretrain_backbone(
    train_set, test_set, *, epochs: int, seed: int, device: str = "cpu", cache_dir: str | Path | None = None
) -> Pretrained:
    """Train a SmallGAPNet (conv blocks, extra 3x3 conv, GAP, linear) to say which of the 20
    colour-shape pairs a scene contains (a sigmoid per label), never seeing a question, an answer or a
    box; score it on the test scenes: macro mAP, labels right at logit 0, scenes with all 20 right (%).

    ``cache_dir``: keep the trained weights there (``vqa_backbone_<key>.pt``, written atomically, keyed
    by :func:`_backbone_cache_file`) and load them instead of training when the key matches; the
    metrics then say ``cached: True`` and ``train_seconds`` is that of the run that trained them."""
    from sklearn.metrics import average_precision_score

    from camlib.core.io import atomic_path
    from camlib.datasets.vqa_shapes import PAIR_NAMES
    from camlib.models import SmallGAPNet
    from camlib.models.train import TrainConfig

    torch.manual_seed(seed)
    net = SmallGAPNet(len(PAIR_NAMES), channels=(16, 32), width=64)
    cfg = TrainConfig(epochs=epochs, batch_size=64, lr=3e-3, weight_decay=1e-4, seed=seed)
    path = None if cache_dir is None else _backbone_cache_file(cache_dir, train_set, cfg)
    if path is not None and path.is_file():
        saved = torch.load(path, map_location="cpu", weights_only=True)
        net.load_state_dict(saved["state_dict"])
        net.to(device)
        steps, seconds, cached = int(saved["steps"]), float(saved["train_seconds"]), True
    else:
        t0 = time.time()
        steps = fit_multilabel(net, train_set.images, train_set.object_labels(), cfg, device=device).step
        seconds, cached = time.time() - t0, False
        if path is not None:
            with atomic_path(path) as tmp:
                torch.save(
                    {
                        "state_dict": {k: v.cpu() for k, v in net.state_dict().items()},
                        "steps": steps,
                        "train_seconds": seconds,
                    },
                    tmp,
                )
    with torch.no_grad():
        net.eval()
        logits = torch.cat(
            [
                net(test_set.image_tensor(np.arange(s, min(s + 500, len(test_set)))).to(device)).cpu()
                for s in range(0, len(test_set), 500)
            ]
        )
    truth = test_set.object_labels() > 0.5
    ok = (logits > 0).numpy() == truth
    metrics = {
        "label_acc": 100 * float(ok.mean()),
        "exact_scene_acc": 100 * float(ok.all(1).mean()),
        "mAP": 100 * float(average_precision_score(truth, logits.numpy(), average="macro")),
        "train_seconds": seconds,
        "steps": steps,
        "cached": cached,
    }
    return Pretrained(net, cfg, metrics, 100 * (1 - float(truth.mean())))


@dataclass
class AnswerModels:
    """The frozen conv layers, the two full models (``paper_model``, ``gated_not_in_paper``), their
    histories, the answer layers' config and the seconds spent."""

    backbone: nn.Module
    models: dict[str, BowGAPVQA]
    histories: dict
    config: object  # TrainConfig
    timings: dict[str, float] = field(default_factory=dict)


def train_answer_layers(
    net: nn.Module, train_set, *, epochs: int, seed: int, device: str = "cpu"
) -> AnswerModels:
    """Freeze ``net``'s conv layers; train the paper's answer layer (``paper_model``: one linear layer on
    [GAP features, bag of words]) and the ``gated_not_in_paper`` variant on the pooled training features
    alone (``nn.Identity()`` backbone on 1 x 1 maps: seconds), then put the conv layers back under them."""
    from camlib.models.train import TrainConfig

    backbone = nn.Sequential(net.features, net.cam_conv).eval()
    for p in backbone.parameters():
        p.requires_grad_(False)
    t0 = time.time()
    feats = pool_features(backbone, train_set.images, device=device)
    timings = {"pool_s": time.time() - t0}
    data = FeatureVQASet(
        feats,
        np.arange(len(train_set)),
        [train_set.vocab.encode(q) for q in train_set.questions],
        train_set.labels,
        len(train_set.vocab),
    )
    cfg = TrainConfig(epochs=epochs, batch_size=64, lr=1e-2, weight_decay=0.0, seed=seed)
    models, histories = {}, {}
    for name, gate in (("paper_model", False), ("gated_not_in_paper", True)):
        torch.manual_seed(seed)
        head = BowGAPVQA(
            nn.Identity(), feats.shape[1], len(train_set.vocab), len(train_set.answers), question_gate=gate
        )
        t0 = time.time()
        histories[name] = fit_vqa(head, data, cfg, optimizer="adam", device=device)
        timings[f"head_{name}_s"] = time.time() - t0
        models[name] = attach_head(backbone, head).eval()
    return AnswerModels(backbone, models, histories, cfg, timings)


# --------------------------------------------------------------------------- pointing verdicts


def _claim(hits: dict, sel: np.ndarray, seed: int) -> dict:
    best = max(BASELINES, key=lambda b: float(np.mean(hits[b][sel])))
    est = paired_diff_ci(hits["cam_answer"][sel], hits[best][sel], seed=seed)
    return {
        "best_baseline": best,
        "cam_answer": 100 * float(np.mean(hits["cam_answer"][sel])),
        "baseline": 100 * float(np.mean(hits[best][sel])),
        "difference": est.to_dict(),
        "verdict": verdict(est, 1),
    }


def pointing_verdicts(pointing: dict, test_set, size: tuple[int, int], *, seed: int = 0) -> dict[str, dict]:
    """Does the CAM of the TRUE answer point at the asked-about object more often than the best of the
    baselines (a wrong answer's CAM, the centre, a random point)? The paper shows it in Figure 12 without
    a number; here ``verdict`` of the paired interval of (CAM hit - baseline hit) over the questions,
    paper sign +1; overall (``"all"``) and per question type."""
    hits, has = pointing_hits(pointing, test_set.about_boxes, size, test_set.labels)
    groups = np.asarray(test_set.qtypes)
    out = {"all": _claim(hits, has, seed)}
    for t in sorted(set(groups[has].tolist())):
        out[str(t)] = _claim(hits, has & (groups == t), seed)
    return out


def verdict_lines(name: str, verdicts: dict) -> list[str]:
    """The verdicts of one model in words."""
    lines = []
    for group, v in verdicts.items():
        d = v["difference"]
        lines.append(
            f"{MODEL_LABELS.get(name, name)} ({group}): the true answer's CAM {v['cam_answer']:.1f}% vs the best baseline, "
            f"{v['best_baseline']} {v['baseline']:.1f}%: {d['value']:+.1f} points, 95% CI "
            f"[{d['low']:+.1f}, {d['high']:+.1f}] -> {v['verdict'].upper()}"
        )
    return lines


# --------------------------------------------------------------------------- accuracy per type, pointing when right


def _groups(qtypes) -> list[tuple[str, np.ndarray]]:
    from camlib.datasets.vqa_shapes import QUESTION_TYPES

    g = np.asarray(qtypes)
    return [("all", np.ones(len(g), dtype=bool))] + [(t, g == t) for t in QUESTION_TYPES if (g == t).any()]


def accuracy_per_type(correct, qtypes, *, seed: int = 0) -> dict[str, dict]:
    """Answer accuracy (%) per question type and over all (``"all"``): each an
    :class:`~camlib.evaluation.stats.Estimate` dict (bootstrap 95% interval over the questions, ``n``),
    the type's kind (``binding`` / ``image-only``), its chance level (a uniformly random answer of the
    type; over all: the mean of the questions' chance levels) and ``above_chance``, the verdict of
    (accuracy - chance) with the claimed sign +1 ("agrees": the whole interval lies above chance)."""
    from camlib.datasets.vqa_shapes import CHANCE, QUESTION_KINDS

    c = np.asarray(correct, dtype=np.float64)
    chance = np.asarray([CHANCE[t] for t in qtypes])
    out = {}
    for name, sel in _groups(qtypes):
        est = bootstrap_ci(c[sel], seed=seed)
        level = float(chance[sel].mean())
        out[name] = {
            "kind": QUESTION_KINDS.get(name, "all"),
            "accuracy": est.to_dict(),
            "chance": level,
            "above_chance": verdict((est.low - level, est.high - level), 1),
        }
    return out


def accuracy_lines(name: str, table: dict) -> list[str]:
    """One row per question type of :func:`accuracy_per_type`, the model named as in :data:`MODEL_LABELS`."""
    lines = [f"{MODEL_LABELS.get(name, name)}: accuracy per question type (95% CI, n) vs chance"]
    for t, r in table.items():
        a = r["accuracy"]
        lines.append(
            f"  {t:>10} ({r['kind']:>10}): {a['value']:5.1f}% [{a['low']:5.1f}, {a['high']:5.1f}] "
            f"n={a['n']:4d}   chance {r['chance']:4.1f}%   above chance: {r['above_chance'].upper()}"
        )
    return lines


def pointing_when_correct(
    pointing: dict, test_set, size: tuple[int, int], *, seed: int = 0
) -> dict[str, dict]:
    """The paper's reading of Figure 12, measured: on the questions the model answers RIGHT (and that are
    about an object), does the CAM of its predicted answer peak inside the box of an object the answer is
    about (``test_set.about_boxes``: the asked-about object, or every object for an image-only type)?

    Per question type and over all (``"all"``): ``n``, the hit rate (%) of the CAM, of the image's centre
    pixel and of a uniformly random pixel (the boxes' share of the image), each with its bootstrap 95%
    interval, and ``verdict`` of the paired interval of (CAM hit - best of the two baselines), claimed
    sign +1. A type without a correctly answered question about an object gets ``{"n": 0}``."""
    hits, has = pointing_hits(pointing, test_set.about_boxes, size, test_set.labels)
    right = has & (np.asarray(pointing["pred"]) == np.asarray(test_set.labels))
    out = {}
    for name, sel in _groups(test_set.qtypes):
        sel = sel & right
        if not sel.any():
            out[name] = {"n": 0}
            continue
        rates = {
            k: bootstrap_ci(hits[k][sel], seed=seed).to_dict() for k in ("cam_predicted", *POINT_BASELINES)
        }
        best = max(POINT_BASELINES, key=lambda b: rates[b]["value"])
        diff = paired_diff_ci(hits["cam_predicted"][sel], hits[best][sel], seed=seed)
        out[name] = {
            "n": int(sel.sum()),
            **rates,
            "best_baseline": best,
            "difference": diff.to_dict(),
            "verdict": verdict(diff, 1),
        }
    return out


def correct_pointing_lines(name: str, table: dict) -> list[str]:
    """One row per question type of :func:`pointing_when_correct`."""
    lines = [
        f"{MODEL_LABELS.get(name, name)}: the predicted answer's CAM peak on the object, questions answered right"
    ]
    for t, r in table.items():
        if not r["n"]:
            lines.append(f"  {t:>10}: no correctly answered question about an object")
            continue
        c, d = r["cam_predicted"], r["difference"]
        lines.append(
            f"  {t:>10}: CAM {c['value']:5.1f}% [{c['low']:5.1f}, {c['high']:5.1f}]  centre "
            f"{r['centre']['value']:5.1f}%  random point {r['random_point']['value']:5.1f}%  n={r['n']:4d}"
            f"  CAM - {r['best_baseline']}: {d['value']:+.1f} [{d['low']:+.1f}, {d['high']:+.1f}] "
            f"-> {r['verdict'].upper()}"
        )
    return lines


# --------------------------------------------------------------------------- figures and questions


def plot_questions(test_set, n: int = 6):
    """The first ``n`` test scenes with their question, answer and the boxes of the objects it is about."""
    import matplotlib.pyplot as plt

    from camlib.core import viz

    fig, axes = plt.subplots(1, n, figsize=(2 * n, 2.6))
    for ax, i in zip(axes, range(n), strict=True):
        ax.imshow(test_set.images[i])
        for box in test_set.about_boxes[i]:
            viz.draw_box(ax, box, viz.GT_COLOR, lw=1.2)
        ax.set_title(f"{test_set.questions[i]}\n-> {test_set.answer_texts[i]}", fontsize=7)
        ax.axis("off")
    return fig


def demo_scene(test_set) -> tuple[int, list[str], list[str]]:
    """The first test scene of a binding question (all shapes and all colours differ) with 3+ objects:
    its index, its shapes and its colours (object order)."""
    from camlib.datasets.vqa_shapes import BINDING_TYPES, COLOUR_NAMES, SHAPES

    binding = np.isin(np.asarray(test_set.qtypes), BINDING_TYPES)
    i = int(np.flatnonzero(binding & ((test_set.object_shapes >= 0).sum(1) >= 3))[0])
    return (
        i,
        [SHAPES[k] for k in test_set.object_shapes[i] if k >= 0],
        [COLOUR_NAMES[k] for k in test_set.object_colours[i] if k >= 0],
    )


def plot_answer_cams(
    models: dict,
    vocab: Vocabulary,
    answers: Vocabulary,
    test_set,
    index: int,
    question: str,
    cam_view,
    topk: int = 3,
):
    """One test scene, one free-text question: each model's ``topk`` answers with their softmax
    probabilities and CAMs (words outside ``vocab`` become ``<unk>``)."""
    import matplotlib.pyplot as plt

    from camlib.core import viz
    from camlib.core.cam import postprocess

    x = test_set.image_tensor([index])
    q = torch.from_numpy(vocab.bow([question]))
    size = tuple(x.shape[-2:])
    fig, axes = plt.subplots(1, 1 + topk * len(models), figsize=(2.0 * (1 + topk * len(models)), 2.4))
    axes[0].imshow(test_set.images[index])
    axes[0].set_title("\n".join([question[i : i + 26] for i in range(0, len(question), 26)]), fontsize=7)
    for mi, (name, m) in enumerate(models.items()):
        res = m.cam(x, q, topk=topk)
        probs = res.logits.softmax(1)[0]
        maps = postprocess(res.maps, cam_view, input_size=size)[0]
        for j in range(topk):
            a = res.answers[0, j].item()
            ax = axes[1 + topk * mi + j]
            ax.imshow(viz.overlay(test_set.images[index], maps[j]))
            ax.set_title(f"{MODEL_LABELS.get(name, name)}:\n{answers.tokens[a]} {probs[a]:.2f}", fontsize=7)
    for ax in axes:
        ax.axis("off")
    return fig


# --------------------------------------------------------------------------- paper profile


@dataclass
class PaperVQA:
    """A VQA folder read for the paper profile: train/val records, vocabularies, the frozen backbone."""

    train: object  # VQARecords
    val: object
    vocab: Vocabulary
    answers: Vocabulary
    backbone: nn.Module
    feature_dim: int
    preprocess: object
    description: str


def paper_vqa_root(vqa_root: str | Path | None) -> tuple[Path, str]:
    """The VQA folder of the paper profile and how it was found (a ``data`` row's ``root_kind``): the
    parameter, else ``$VQA_ROOT``, else ``../data/vqa`` (relative to the notebooks folder)."""
    import os

    if vqa_root:
        return Path(vqa_root), "param"
    if os.environ.get("VQA_ROOT"):
        return Path(os.environ["VQA_ROOT"]), "env"
    return Path("../data/vqa"), "data"


def paper_data_row(data: PaperVQA, root_kind: str) -> list[DataSource]:
    """The ``data`` row of the paper profile: the VQA version, its train + val images."""
    n = len(data.train.image_paths) + len(data.val.image_paths)
    return [
        DataSource(
            f"VQA {data.train.version} (train2014 + val2014)",
            root_kind,
            n,
            f"{len(data.train)} train / {len(data.val)} val questions; scored on val2014, the paper on "
            "test-standard",
        )
    ]


def load_paper_vqa(
    root: str | Path,
    *,
    backbone: str,
    min_word_count: int,
    top_answers: int,
    max_train: int | None = None,
    max_val: int | None = None,
    device: str = "cpu",
) -> PaperVQA:
    """train2014 and val2014 of the VQA folder ``root`` (a clear error with the layout when missing), the
    question vocabulary (words seen ``min_word_count`` times in training), the ``top_answers`` most frequent
    training answers and the torchvision GAP ``backbone``."""
    train = load_vqa_split(root, "train2014", max_train)
    val = load_vqa_split(root, "val2014", max_val)
    vocab = Vocabulary.from_texts(train.questions, min_count=min_word_count)
    answers = Vocabulary.from_labels(train.majority, top_k=top_answers)
    net, K, preprocess, desc = torchvision_gap_backbone(backbone, device=device)
    return PaperVQA(train, val, vocab, answers, net, K, preprocess, desc)


def train_paper_head(
    data: PaperVQA,
    *,
    epochs: int,
    seed: int,
    feature_cache: str | Path | None = None,
    cache_name: str = "",
    num_workers: int = 0,
    device: str = "cpu",
):
    """Pooled features of every train and val image (cached in ``feature_cache`` when given), the
    paper's answer layer trained on train2014, the official VQA accuracy on val2014 per answer type.
    Returns ``(head, config, val feature set, accuracy, timings)``."""
    from camlib.models.train import TrainConfig

    feats, timings = {}, {}
    for recs in (data.train, data.val):
        ids = sorted(recs.image_paths)
        cache = None if feature_cache is None else Path(feature_cache) / f"{cache_name}_{recs.split}.pt"
        t0 = time.time()
        feats[recs.split] = (
            ids,
            extract_pooled_features(
                data.backbone,
                [recs.image_paths[i] for i in ids],
                data.preprocess,
                device=device,
                num_workers=num_workers,
                cache=cache,
                cache_key=data.description,
            ),
        )
        timings[f"features_{recs.split}_s"] = time.time() - t0
    train_fs = records_feature_set(data.train, *feats[data.train.split], data.vocab, data.answers)
    val_fs = records_feature_set(data.val, *feats[data.val.split], data.vocab, data.answers)
    torch.manual_seed(seed)
    head = BowGAPVQA(nn.Identity(), data.feature_dim, len(data.vocab), len(data.answers))
    cfg = TrainConfig(epochs=epochs, batch_size=256, lr=1e-3, weight_decay=0.0, seed=seed)
    t0 = time.time()
    fit_vqa(head, train_fs, cfg, optimizer="adam", device=device)
    timings["head_s"] = time.time() - t0
    predicted = answer_strings(predict_vqa(head, val_fs, device=device), data.answers)
    accuracy = accuracy_by_group(vqa_scores(predicted, data.val.answers), data.val.answer_types)
    return head, cfg, val_fs, accuracy, timings


# --------------------------------------------------------------------------- results


def quick_results(
    *,
    accuracy: dict,
    pointing_correct: dict,
    pointing: dict,
    verdicts: dict,
    identity_err: dict,
    timings: dict,
    train_set,
    test_set,
    cam_view,
    pretrain_config,
    head_config,
) -> tuple[dict, dict]:
    """``(metrics, options)`` of the quick profile for ``results/07_vqa.json``: per model (results keys
    ``paper_model`` and ``gated_not_in_paper``) the accuracy per question type
    (:func:`accuracy_per_type`), the pointing of the predicted answer's CAM on the questions answered
    right (:func:`pointing_when_correct`), the pointing table of every map
    (:func:`camlib.paper.vqa_eval.pointing_summary`) and the true answer's verdicts
    (:func:`pointing_verdicts`)."""
    from camlib.datasets.vqa_shapes import CHANCE, QUESTION_KINDS

    metrics = {
        "accuracy_per_type": accuracy,
        "pointing_when_correct": pointing_correct,
        "pointing": pointing,
        "pointing_verdicts": verdicts,
        "identity_max_abs_err": identity_err,
        "timings_s": timings,
        "n_train": len(train_set),
        "n_test": len(test_set),
    }
    options = {
        "cam": cam_view.to_dict(),
        "pointing": "argmax of the raw map upsampled bilinearly to the image, "
        "inside a box of an object the question is about (every object for an image-only type)",
        "question_types": {t: {"kind": QUESTION_KINDS[t], "chance": CHANCE[t]} for t in QUESTION_KINDS},
        "pretrain": pretrain_config.to_dict(),
        "head": head_config.to_dict(),
        "backbone": f"{BACKBONE}, pretrained on the training scenes' pair labels, then frozen",
        "models": dict(MODEL_NOTES),
    }
    return metrics, options


def quick_data_row(train_set, test_set) -> list[DataSource]:
    """The ``data`` row of the quick profile: procedural scenes, no real VQA data."""
    return [
        DataSource(
            "procedural VQA shapes (camlib.datasets.vqa_shapes)",
            "procedural",
            len(train_set) + len(test_set),
            f"no real VQA data: {len(train_set)} train / {len(test_set)} test drawn scenes, one question "
            "each; not comparable with the paper's VQA accuracy",
        )
    ]


def paper_results(
    data: PaperVQA, accuracy: dict, head_config, timings: dict, *, top_answers: int, min_word_count: int
) -> tuple[dict, list[dict], dict]:
    """``(metrics, comparisons, options)`` of the paper profile: the VQA accuracy row next to the paper's
    (Open-Ended test-standard, ``vqa.open_ended_test_standard``; here trained on train2014 and scored on
    val2014)."""
    metrics = {
        "vqa_accuracy": accuracy,
        "n_train": len(data.train),
        "n_val": len(data.val),
        "timings_s": timings,
    }
    comparisons = [
        {
            "metric": "VQA accuracy, overall (%)",
            "paper_ref": "vqa.open_ended_test_standard",
            "reproduced": accuracy["overall"],
            "setting": f"{data.description} GAP features + BoW, linear answer layer ({len(data.answers)} answers); "
            f"trained on VQA {data.train.version} train2014, scored on val2014 (paper: test-standard)",
        }
    ]
    options = {
        "backbone": data.description,
        "head": head_config.to_dict(),
        "top_answers": top_answers,
        "min_word_count": min_word_count,
        "metric": "official VQA accuracy (leave-one-out over 10 answers)",
    }
    return metrics, comparisons, options
