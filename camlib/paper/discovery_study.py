"""The three pattern-discovery studies of paper section 4.2 (Figs. 9-11), one protocol each.

Notebook 06 runs every study twice over: on generated data whose answer is known (quick profile:
:mod:`camlib.datasets.scenes`, :mod:`~camlib.datasets.captions`, :mod:`~camlib.datasets.text`) and
on the paper's kind of data (SUN2012, an image-caption folder, SVT). Both profiles call the SAME
function here; only the data (and settings such as the fractions tried) differ, so the two cannot
drift apart. Each data split is described by a small record (:class:`SceneSplit`,
:class:`CaptionSplit`, :class:`TextSplit`) with a builder for each profile's data.

1. :func:`informative_objects` (Fig. 9): a linear SVM per scene on GAP features; for each test image
   the high-CAM region ``R = {M_c >= t max M_c}`` of its own scene ``c``; an object overlaps ``R`` when
   ``|R ∩ O| / |O| >= min_cover``; its score = share of the scene's images where it does, next to its
   frequency; both rankings scored against the informativeness ``g(o, s)`` (precision at k, Spearman).
   ``t`` is chosen on validation images (largest Spearman) when several are given.
2. :func:`concept_localization` (Fig. 10): per phrase, positives = images whose caption holds it,
   negatives = images whose caption has none of its words; a detector trained with hard-negative
   mining (:func:`camlib.paper.discovery.mine_hard_negatives`) next to one on as many random negatives;
   scored by average precision and, where concept boxes are known, by pointing accuracy of the CAM's
   peak (baseline: the image centre) and the false-positive rate on confusers.
3. :func:`text_detector` (Fig. 11): text vs no-text SVM; one paper box per image it calls text, at the
   box fraction with the best validation F1; precision/recall at IoU >= 0.5 (baseline: a centre box of
   the mean training text size).

The building blocks (CAMs of a probe, object hits, rankings, mining, detection scores, figures) are
in :mod:`camlib.paper.discovery`; this module only composes them. It is a module of its own because
discovery.py would otherwise pass 800 lines with two subjects: building blocks and protocols.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset, Subset

from camlib.core.features import SVMProbe, fit_linear_svm
from camlib.datasets.captions import CONCEPTS, phrase_split
from camlib.datasets.scenes import informativeness, rasterize_objects
from camlib.paper.discovery import (
    CAMPass,
    MiningResult,
    cam_peaks,
    centre_box,
    centre_points,
    choose_fraction,
    detect_boxes,
    detection_scores,
    mine_hard_negatives,
    object_hits,
    object_rankings,
    plot_concepts,
    plot_informative_objects,
    plot_text_detections,
    ranking_scores,
    top_objects,
)
from camlib.paper.vqa import points_in_boxes

__all__ = [
    "CaptionSplit",
    "ConceptDetector",
    "ConceptLocalization",
    "InformativeObjects",
    "SceneSplit",
    "TextDetection",
    "TextSplit",
    "caption_files",
    "concept_localization",
    "fig9_comparisons",
    "informative_objects",
    "plot_concept_examples",
    "plot_scene_examples",
    "plot_text_examples",
    "procedural_captions",
    "procedural_scenes",
    "procedural_text",
    "sun_scenes",
    "svt_text",
    "text_detector",
    "train_concept_detectors",
    "training_informativeness",
]

Inputs = Tensor | Dataset


def _take(inputs: Inputs, index) -> Inputs:
    """The images ``index`` (a range, list or int array) of a tensor of network inputs or a dataset."""
    if isinstance(inputs, Tensor):
        if isinstance(index, range):
            return inputs[index.start : index.stop]
        return inputs[torch.as_tensor(np.asarray(index, dtype=np.int64))]
    return Subset(inputs, [int(i) for i in index])


def _chunks(n: int, chunk: int):
    for s0 in range(0, n, chunk):
        yield range(s0, min(s0 + chunk, n))


# --------------------------------------------------------------------------- 1. informative objects (Fig. 9)


@dataclass
class SceneSplit:
    """One split of scene images as :func:`informative_objects` reads it: network ``inputs`` ((N, 3, S, S)
    tensor or a dataset of (input, label)), scene ``labels`` (N,), ``objects(i)`` -> (instance map
    (S, S) with instance k as k + 1, types (n,) vocabulary index or -1) at the input size, and
    ``image(i)`` -> the (S, S, 3) uint8 picture for figures."""

    inputs: Inputs
    labels: np.ndarray
    objects: Callable[[int], tuple[np.ndarray, np.ndarray]]
    image: Callable[[int], np.ndarray]

    def __len__(self) -> int:
        return len(self.labels)


def procedural_scenes(ds, inputs: Inputs) -> SceneSplit:
    """A :class:`SceneSplit` of :class:`camlib.datasets.scenes.ProceduralScenes` (quick profile)."""
    return SceneSplit(inputs, np.asarray(ds.labels), lambda i: (ds.instances[i], ds.types[i]), lambda i: ds.images[i])


def sun_scenes(images: Sequence, files, index, vocabulary: Sequence[str], size: int) -> SceneSplit:
    """A :class:`SceneSplit` of the SUN images ``index`` (paper profile). ``images``: the
    :class:`camlib.datasets.scenes.SunImage` list, ``files``: the image-file dataset of the same images
    in the same order (its ``labels`` are the scenes). Polygons are scaled from the image's (H, W)
    (the XML's, else the file header's) to the ``size`` x ``size`` input and rasterized on demand."""
    index = np.asarray(index, dtype=np.int64)
    if len(images) != len(files):
        raise ValueError(f"{len(images)} annotated images but {len(files)} files; build both from the same list")

    def objects(j: int) -> tuple[np.ndarray, np.ndarray]:
        i = int(index[j])
        H, W = images[i].size or files.original_size(i)
        return rasterize_objects(images[i].objects, vocabulary, (size, size), scale=(size / H, size / W))

    return SceneSplit(Subset(files, index), np.asarray(files.labels)[index], objects, lambda j: files.image(int(index[j])))


def training_informativeness(present: np.ndarray, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """``g(o, s) = P(o | s) - mean_{s' != s} P(o | s')`` from the TRAINING images' object presence
    (N, O) bool: the reference ranking on real data, where no true informativeness is known."""
    present = np.asarray(present)
    return informativeness(object_rankings(present, present, labels, n_classes)["frequency"])


@dataclass
class InformativeObjects:
    """The outcome of :func:`informative_objects`: the scene ``probe``, its test ``accuracy`` (%), the
    region ``fraction`` (and the validation Spearman of each one tried), ``rank`` = object_rankings of
    the test images, ``scored`` = ranking_scores of the "cam" and "frequency" rankings, and the test
    ``maps`` (N, S, S) when they were kept."""

    probe: SVMProbe
    accuracy: float
    fraction: float
    val_spearman: dict[float, float]
    min_cover: float
    rank: dict[str, np.ndarray]
    scored: dict[str, dict]
    n_train: int
    n_val: int | None
    n_test: int
    maps: np.ndarray | None = None

    def ranking_at(self, split: SceneSplit, n_objects: int, *, fraction: float, min_cover: float) -> dict[str, np.ndarray]:
        """The test rankings again at another region ``fraction`` / ``min_cover`` (for looking, never
        for choosing; needs ``keep_maps=True``)."""
        if self.maps is None:
            raise ValueError("the test maps were not kept: run informative_objects(..., keep_maps=True)")
        hits, present = _hits(self.maps, split, range(len(split)), n_objects, [fraction], min_cover)
        return object_rankings(hits[fraction], present, split.labels, len(self.rank["n"]))

    def summary(self, class_names: Sequence[str], vocabulary: Sequence[str], top: int = 5) -> str:
        """Printable lines: the SVM, the fraction choice, each scene's top objects, the two scores."""
        n_cls = len(class_names)
        lines = [f"scene SVM: C = {self.probe.best_C:g}, test accuracy {self.accuracy:.1f}% (chance {100 / n_cls:.0f}%) "
                 f"on {self.n_test} test images"]
        if self.val_spearman:
            lines.append("validation Spearman per region fraction: "
                         f"{ {f: round(v, 3) for f, v in self.val_spearman.items()} } -> t = {self.fraction}")
        width = max(len(c) for c in class_names)
        for s, scene in enumerate(class_names):
            for label, key in (("CAM overlap", "cam"), ("frequency", "frequency")):
                objs = ", ".join(f"{n} {v:.2f}" for n, v in top_objects(self.rank[key][s], vocabulary, top))
                lines.append(f"{scene if key == 'cam' else '':>{width}} {label + ':':<12} {objs}")
        for name, r in self.scored.items():
            lines.append(f"{name:>9} ranking: precision at {r['k']} = {r['precision_at_k']:.1f}%, "
                         f"Spearman with g = {r['spearman']:.3f}")
        return "\n".join(lines)

    def measured(self) -> str:
        """The result in words, decided from the numbers."""
        cam, freq = self.scored["cam"], self.scored["frequency"]
        k = cam["k"]
        gain = cam["precision_at_k"] - freq["precision_at_k"]
        drho = cam["spearman"] - freq["spearman"]
        return (f"Measured: the CAM ranking puts {cam['precision_at_k']:.0f}% of the true informative objects in its top {k}, "
                f"the frequency ranking {freq['precision_at_k']:.0f}% ({gain:+.0f} points): "
                + ("as in the paper, the CAM finds the informative objects where frequency finds the ubiquitous ones. "
                   if gain > 0 else "unlike the paper's examples, the CAM ranking does NOT beat frequency at the top. ")
                + f"Over the whole list, Spearman {cam['spearman']:.2f} vs {freq['spearman']:.2f} "
                + ("(about equal: both put the other scenes' objects last, and the CAM leaves most objects tied at 0)."
                   if abs(drho) < 0.05 else "(CAM higher)." if drho > 0
                   else "(frequency higher: the CAM leaves most objects tied at 0)."))

    def metrics(self, class_names: Sequence[str], vocabulary: Sequence[str]) -> dict:
        """The results-file entry (top objects: six, as the paper lists)."""
        out = {"classification_acc": self.accuracy, "chance_acc": 100.0 / len(class_names), "best_C": self.probe.best_C,
               "region_fraction": self.fraction, "min_cover": self.min_cover,
               "cam_ranking": self.scored["cam"], "frequency_ranking": self.scored["frequency"],
               "top_objects_cam": {s: top_objects(self.rank["cam"][i], vocabulary, 6) for i, s in enumerate(class_names)},
               "top_objects_frequency": {s: top_objects(self.rank["frequency"][i], vocabulary, 6)
                                         for i, s in enumerate(class_names)},
               "n_train": self.n_train, "n_test": self.n_test}
        if self.n_val is not None:
            out["region_fraction_val_spearman"] = {str(k): v for k, v in self.val_spearman.items()}
            out["n_val"] = self.n_val
        return out


def _hits(maps, split: SceneSplit, index: range, n_objects: int, fractions: Sequence[float],
          min_cover: float) -> tuple[dict[float, np.ndarray], np.ndarray]:
    """(``{fraction: hits (n, O)}``, ``present`` (n, O)) of the images ``index`` with their ``maps``."""
    hits: dict[float, list] = {float(f): [] for f in fractions}
    present = []
    for j, m in zip(index, maps, strict=True):
        inst, types = split.objects(j)
        for f in hits:
            h, p = object_hits(m, inst, types, n_objects, fraction=f, min_cover=min_cover)
            hits[f].append(h)
        present.append(p)
    empty = np.zeros((0, n_objects), bool)
    return ({f: np.array(v) if v else empty for f, v in hits.items()}, np.array(present) if present else empty)


def _scene_pass(cams: CAMPass, probe: SVMProbe, split: SceneSplit, n_objects: int, fractions: Sequence[float],
                min_cover: float, chunk: int, keep_maps: bool):
    """ONE CAM pass over a split, in chunks (full-size maps of thousands of images do not fit in memory):
    scores (N, C), ``{fraction: hits}``, present, and the maps when kept."""
    scores, hits, present, maps = [], {float(f): [] for f in fractions}, [], []
    for index in _chunks(len(split), chunk):
        s, m = cams(probe, _take(split.inputs, index), split.labels[index.start : index.stop])
        h, p = _hits(m, split, index, n_objects, fractions, min_cover)
        scores.append(s)
        present.append(p)
        for f in hits:
            hits[f].append(h[f])
        if keep_maps:
            maps.append(m)
    return (np.concatenate(scores), {f: np.concatenate(v) for f, v in hits.items()}, np.concatenate(present),
            np.concatenate(maps) if keep_maps else None)


def informative_objects(
    cams: CAMPass,
    X_train: np.ndarray,
    y_train: np.ndarray,
    test: SceneSplit,
    truth: np.ndarray,
    *,
    n_objects: int,
    svm: Mapping,
    val: SceneSplit | None = None,
    fractions: Sequence[float] = (0.5,),
    min_cover: float = 0.5,
    k: int = 3,
    class_names: Sequence[str] | None = None,
    chunk: int = 256,
    keep_maps: bool = False,
) -> InformativeObjects:
    """Fig. 9's protocol: which objects does each scene's SVM look at?

    Fits ``fit_linear_svm(X_train, y_train, **svm)`` (the scene SVMs on GAP features), then for every
    image the CAM of its OWN scene (:class:`CAMPass`) and :func:`~camlib.paper.discovery.object_hits`.
    With several ``fractions`` the region fraction ``t`` maximizes the Spearman correlation of the CAM
    ranking with ``truth`` on ``val`` (ties: the smaller ``t``); with one it is used as given (decided
    before looking at any result). On ``test``: ``rank`` (CAM overlap and frequency per scene and
    object), both scored against ``truth`` (C, O) with :func:`~camlib.paper.discovery.ranking_scores` at
    ``k``, and the scene accuracy ``100 * mean(argmax_c s_c == label)``.
    """
    fractions = [float(f) for f in fractions]
    if len(fractions) > 1 and val is None:
        raise ValueError(f"choosing the region fraction among {fractions} needs validation images (val=)")
    n_classes = np.asarray(truth).shape[0]
    probe = fit_linear_svm(X_train, y_train, **svm)
    val_rho: dict[float, float] = {}
    if val is not None:
        _, hits, present, _ = _scene_pass(cams, probe, val, n_objects, fractions, min_cover, chunk, False)
        val_rho = {f: ranking_scores(object_rankings(hits[f], present, val.labels, n_classes)["cam"], truth)["spearman"]
                   for f in fractions}
        fraction = max(fractions, key=lambda f: (val_rho[f], -f))
    else:
        fraction = fractions[0]
    scores, hits, present, maps = _scene_pass(cams, probe, test, n_objects, [fraction], min_cover, chunk, keep_maps)
    rank = object_rankings(hits[fraction], present, test.labels, n_classes)
    scored = {key: ranking_scores(rank[key], truth, k=k, names=class_names) for key in ("cam", "frequency")}
    accuracy = 100.0 * float(np.mean(scores.argmax(1) == test.labels))
    return InformativeObjects(probe, accuracy, fraction, val_rho, float(min_cover), rank, scored, len(X_train),
                              None if val is None else len(val), len(test), maps)


def plot_scene_examples(cams: CAMPass, result: InformativeObjects, test: SceneSplit, class_names: Sequence[str],
                        vocabulary: Sequence[str], per_class: int = 3):
    """Fig. 9 figure: the first ``per_class`` test images of each scene with the CAM of their scene, and
    the top objects by CAM overlap next to the most frequent ones (maps recomputed if not kept)."""
    ex = [np.flatnonzero(test.labels == s)[:per_class] for s in range(len(class_names))]
    if result.maps is not None:
        maps = [result.maps[e] for e in ex]
    else:
        maps = [cams(result.probe, _take(test.inputs, e), test.labels[e])[1] for e in ex]
    return plot_informative_objects([[test.image(int(i)) for i in e] for e in ex], maps, class_names,
                                    {"CAM overlap": result.rank["cam"], "frequency": result.rank["frequency"]}, vocabulary)


def fig9_comparisons(result: InformativeObjects, class_names: Sequence[str], vocabulary: Sequence[str],
                     setting: str, scene: str = "dining_room",
                     objects: Sequence[str] = ("table", "chair", "chandelier", "plate", "vase", "flowers")) -> list[dict]:
    """Comparison rows with the paper's Fig. 9 scores (dining room: table .96, chair .85, ...): the share of
    ``scene``'s test images in which each object overlaps the high-CAM region, in %. None when the
    scene is not among ``class_names``; objects outside the vocabulary are left out."""
    if scene not in class_names:
        return []
    d = list(class_names).index(scene)
    return [{"metric": f"{scene.replace('_', ' ')}: {obj} overlaps the high-CAM region (% of images)",
             "paper_ref": f"fig9.{scene}.{obj}", "reproduced": 100.0 * result.rank["cam"][d, list(vocabulary).index(obj)],
             "setting": setting} for obj in objects if obj in vocabulary]


# --------------------------------------------------------------------------- 2. concept localization (Fig. 10)


@dataclass
class CaptionSplit:
    """One split of captioned images as :func:`concept_localization` reads it: network ``inputs``,
    ``captions`` (N,), ``image(i)`` for figures and, where the data knows them (quick profile), per
    phrase the concept's true box (N, 4) (-1 where absent) and which images hold its confuser (N,)."""

    inputs: Inputs
    captions: Sequence[str]
    image: Callable[[int], np.ndarray]
    concept_boxes: Mapping[str, np.ndarray] | None = None
    confusers: Mapping[str, np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.captions)


def procedural_captions(ds, inputs: Inputs) -> CaptionSplit:
    """A :class:`CaptionSplit` of :class:`camlib.datasets.captions.CaptionImages` (quick profile)."""
    return CaptionSplit(inputs, list(ds.captions), lambda i: ds.images[i],
                        {p: ds.concept_boxes[:, c] for c, p in enumerate(CONCEPTS)},
                        {p: ds.confuser_boxes[:, c, 0] >= 0 for c, p in enumerate(CONCEPTS)})


def caption_files(files, index, captions: Sequence[str]) -> CaptionSplit:
    """A :class:`CaptionSplit` of the images ``index`` of an image-file dataset (paper profile);
    ``captions`` holds one caption per file."""
    index = np.asarray(index, dtype=np.int64)
    return CaptionSplit(Subset(files, index), [captions[i] for i in index], lambda j: files.image(int(index[j])))


@dataclass
class ConceptDetector:
    """One phrase's detectors: ``mined`` (hard negatives) and ``random`` (as many random negatives), the
    training ``positives`` and negative ``pool`` (indices into the training images), the ``random_negatives``
    drawn, and how many confusers each detector was trained on (None when unknown)."""

    phrase: str
    positives: np.ndarray
    pool: np.ndarray
    mined: MiningResult
    random: SVMProbe
    random_negatives: np.ndarray
    confusers: dict[str, int] | None = None


def train_concept_detectors(
    X: np.ndarray,
    captions: Sequence[str],
    phrases: Sequence[str],
    *,
    svm: Mapping,
    seed: int = 0,
    negatives_per_positive: float,
    added_per_positive: float | None = None,
    rounds: int = 3,
    confusers: Mapping[str, np.ndarray] | None = None,
) -> dict[str, ConceptDetector]:
    """Per phrase, from GAP features ``X`` (N, K) of captioned training images: positives and negative
    pool by :func:`camlib.datasets.captions.phrase_split`; the mined detector starts from
    ``min(pool, int(negatives_per_positive * positives))`` random negatives and adds
    ``int(added_per_positive * positives)`` hard ones per round (None: as many as it started with);
    the random detector gets ``min(pool, mined negatives)`` negatives drawn with ``seed + 1``."""
    out = {}
    for phrase in phrases:
        pos, neg = phrase_split(captions, phrase)
        n_initial = min(len(neg), int(len(pos) * negatives_per_positive))
        per_round = None if added_per_positive is None else int(len(pos) * added_per_positive)
        mined = mine_hard_negatives(X[pos], X[neg], n_initial=n_initial, rounds=rounds, per_round=per_round, seed=seed)
        rand = np.random.default_rng(seed + 1).choice(neg, min(len(neg), len(mined.negatives)), replace=False)
        random_probe = fit_linear_svm(X[np.r_[pos, rand]], np.r_[np.ones(len(pos)), np.zeros(len(rand))].astype(int), **svm)
        conf = None
        if confusers is not None:
            c = np.asarray(confusers[phrase])
            conf = {"mined": int(c[neg[mined.negatives]].sum()), "random": int(c[rand].sum())}
        out[phrase] = ConceptDetector(phrase, pos, neg, mined, random_probe, rand, conf)
    return out


@dataclass
class ConceptLocalization:
    """The outcome of :func:`concept_localization`: the ``detectors``, per phrase a results ``rows``
    entry, the ``skipped`` phrases (with the reason), the test ``scores`` (N, 2 per detector), the CAM
    ``peaks`` (N, n_detectors, 2) and, when kept, ``maps`` (N, n_detectors, S, S) and the test GAP
    ``features`` (N, K). Detector ``2 i`` is phrase i's mined one, ``2 i + 1`` its random one."""

    detectors: dict[str, ConceptDetector]
    rows: dict[str, dict]
    skipped: dict[str, str]
    scores: np.ndarray
    peaks: np.ndarray
    n_train: int
    n_test: int
    maps: np.ndarray | None = None
    features: np.ndarray | None = None

    def detector_index(self, phrase: str, which: str = "mined") -> int:
        """The map / peak column of ``phrase``'s ``which`` ("mined" | "random") detector."""
        return 2 * list(self.detectors).index(phrase) + (which == "random")

    def score(self, phrase: str, which: str = "mined") -> np.ndarray:
        """(N,) test decision values of a detector (its "concept" class)."""
        return self.scores[:, 2 * self.detector_index(phrase, which) + 1]

    def means(self) -> dict[str, dict[str, float]]:
        """Means over the phrases of pointing accuracy, confuser false positives and AP (what is known)."""
        rows = list(self.rows.values())
        if not rows:
            return {}
        out = {"mean_ap": {"mined": float(np.mean([r["mined"]["ap"] for r in rows])),
                           "random_negatives": float(np.mean([r["random"]["ap"] for r in rows]))}}
        if "centre_point_acc" in rows[0]:
            out["mean_pointing_acc"] = {"mined": float(np.mean([r["mined"]["pointing_acc"] for r in rows])),
                                        "random_negatives": float(np.mean([r["random"]["pointing_acc"] for r in rows])),
                                        "centre_point": float(np.mean([r["centre_point_acc"] for r in rows]))}
        if "n_test_confusers" in rows[0]:
            out["mean_confuser_false_positive_rate"] = {
                k: float(np.mean([r[w]["confuser_false_positive_rate"] for r in rows]))
                for k, w in (("mined", "mined"), ("random_negatives", "random"))}
        return out

    def summary(self) -> str:
        """Printable lines: mining per phrase, then each phrase's scores."""
        lines = [f"{p!r}: skipped ({why})" for p, why in self.skipped.items()]
        for phrase, d in self.detectors.items():
            line = (f"{phrase!r}: {len(d.positives)} positives, pool of {len(d.pool)} negatives; mining: "
                    + " -> ".join(f"{h['n_negatives']} negatives ({h['pool_false_positives']} pool false positives)"
                                  for h in d.mined.history))
            if d.confusers is not None:
                line += f"; confusers among the negatives: mined {d.confusers['mined']}, random {d.confusers['random']}"
            lines.append(line)
        for phrase, r in self.rows.items():
            line = f"{phrase!r}: AP {r['mined']['ap']:.1f} (mined) vs {r['random']['ap']:.1f} (random negatives)"
            if "centre_point_acc" in r:
                line += (f"; pointing {r['mined']['pointing_acc']:.1f}% (random negatives "
                         f"{r['random']['pointing_acc']:.1f}%, centre {r['centre_point_acc']:.1f}%)")
            if "n_test_confusers" in r:
                line += (f"; confusers called positive {r['mined']['confuser_false_positive_rate']:.1f}% vs "
                         f"{r['random']['confuser_false_positive_rate']:.1f}%")
            lines.append(line)
        return "\n".join(lines)

    def measured(self) -> str:
        """The result in words, decided from the numbers (what the data allows to say)."""
        m = self.means()
        if not m:
            return "Measured: no phrase had enough positives to train a detector."
        ap = m["mean_ap"]
        if "mean_pointing_acc" not in m:
            return (f"Measured, mean over {len(self.rows)} phrases: AP {ap['mined']:.1f} with mined negatives, "
                    f"{ap['random_negatives']:.1f} with random ones (no concept boxes here, so no pointing accuracy).")
        pt = m["mean_pointing_acc"]
        fp = m.get("mean_confuser_false_positive_rate")
        n_pos = [r["n_test_pos"] for r in self.rows.values()]
        text = (f"Measured, mean over the {len(self.rows)} phrases: pointing accuracy {pt['mined']:.1f}% with mined "
                f"negatives, {pt['random_negatives']:.1f}% with random ones, {pt['centre_point']:.1f}% for the centre point")
        if fp is not None:
            text += f"; confusers called positive {fp['mined']:.1f}% vs {fp['random_negatives']:.1f}%"
        text += (f"; AP {ap['mined']:.1f} vs {ap['random_negatives']:.1f}. The paper shows such maps without numbers; "
                 "here a detector trained from captions alone points at its concept "
                 + ("far more often than the centre does. " if pt["mined"] > pt["centre_point"]
                    else "NOT more often than the centre does. "))
        if fp is not None:
            text += ("Mining " + ("lowers" if fp["mined"] < fp["random_negatives"] else "does NOT lower")
                     + " the false positives on the confusers; it ")
        else:
            text += "Mining "
        text += (("does not improve" if pt["mined"] <= pt["random_negatives"] else "also improves") + " where the CAM points "
                 f"(on {min(n_pos)}-{max(n_pos)} test images per phrase, differences of a few points are within noise).")
        return text

    def metrics(self) -> dict:
        """The results-file entry."""
        per_phrase = {}
        for phrase, r in self.rows.items():
            d = self.detectors[phrase]
            entry = {**r, "n_train_pos": len(d.positives), "n_neg_pool": len(d.pool)}
            if d.confusers is not None:
                entry["confusers_among_negatives"] = d.confusers
            entry["mining_history"] = d.mined.history
            per_phrase[phrase] = entry
        return {"per_phrase": per_phrase, **self.means(), "n_train": self.n_train, "n_test": self.n_test}


def _concept_pass(cams: CAMPass, detectors: list[SVMProbe], split: CaptionSplit, chunk: int, keep_maps: bool):
    """ONE CAM pass over a split for all detectors (the map of each one's "concept" class): scores,
    peaks, features, and the maps when kept."""
    positive = np.arange(1, 2 * len(detectors), 2)  # the rows of the "concept" classes
    scores, peaks, feats, maps = [], [], [], []
    for index in _chunks(len(split), chunk):
        s, m, f = cams(detectors, _take(split.inputs, index), np.tile(positive, (len(index), 1)), features=True)
        scores.append(s)
        feats.append(f)
        peaks.append(np.stack([cam_peaks(m[:, j]) for j in range(len(detectors))], axis=1))
        if keep_maps:
            maps.append(m)
    return (np.concatenate(scores), np.concatenate(peaks), np.concatenate(feats),
            np.concatenate(maps) if keep_maps else None)


def _ap(scores: np.ndarray, pos: np.ndarray, neg: np.ndarray) -> float:
    from sklearn.metrics import average_precision_score

    y = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
    return 100.0 * float(average_precision_score(y, np.r_[scores[pos], scores[neg]]))


def concept_localization(
    cams: CAMPass,
    X_train: np.ndarray,
    train_captions: Sequence[str],
    test: CaptionSplit,
    phrases: Sequence[str],
    *,
    svm: Mapping,
    seed: int = 0,
    negatives_per_positive: float,
    added_per_positive: float | None = None,
    rounds: int = 3,
    train_confusers: Mapping[str, np.ndarray] | None = None,
    min_train_positives: int = 10,
    min_test_positives: int = 2,
    chunk: int = 256,
    keep_maps: bool = False,
) -> ConceptLocalization:
    """Fig. 10's protocol: detectors of caption phrases trained with hard-negative mining, and their CAMs.

    Phrases with fewer than ``min_train_positives`` training or ``min_test_positives`` test captions
    are skipped. The others get :func:`train_concept_detectors`; ONE CAM pass over ``test`` then gives
    every detector's decision values ``s`` and the map of its concept class. Per phrase and detector:
    ``ap`` = average precision (%) of ``s`` (test positives vs negatives); with concept boxes
    ``pointing_acc`` = % of positives whose CAM peak lies in the concept's box (and
    ``centre_point_acc``, the image centre's); with confusers ``confuser_false_positive_rate`` = % of
    the confuser images with ``s > 0``.
    """
    skipped, kept = {}, []
    for phrase in phrases:
        n_tr, n_te = len(phrase_split(train_captions, phrase)[0]), len(phrase_split(test.captions, phrase)[0])
        if n_tr < min_train_positives or n_te < min_test_positives:
            skipped[phrase] = f"only {n_tr} training / {n_te} test positives"
        else:
            kept.append(phrase)
    detectors = train_concept_detectors(X_train, train_captions, kept, svm=svm, seed=seed,
                                        negatives_per_positive=negatives_per_positive,
                                        added_per_positive=added_per_positive, rounds=rounds, confusers=train_confusers)
    if not detectors:
        empty = np.zeros((len(test), 0))
        return ConceptLocalization({}, {}, skipped, empty, np.zeros((len(test), 0, 2), np.int64), len(X_train), len(test))
    probes = [p for d in detectors.values() for p in (d.mined.probe, d.random)]
    scores, peaks, features, maps = _concept_pass(cams, probes, test, chunk, keep_maps)
    centre = centre_points(len(test), cams.size)
    rows = {}
    for i, phrase in enumerate(detectors):
        pos, neg = phrase_split(test.captions, phrase)
        row: dict = {"n_test_pos": len(pos), "n_test_neg": len(neg)}
        boxes = None if test.concept_boxes is None else np.asarray(test.concept_boxes[phrase])
        conf = None if test.confusers is None else neg[np.asarray(test.confusers[phrase])[neg]]
        if conf is not None:
            row["n_test_confusers"] = len(conf)
        if boxes is not None:
            row["centre_point_acc"] = 100.0 * float(points_in_boxes(centre[pos], boxes[pos]).mean())
        for j, name in ((2 * i, "mined"), (2 * i + 1, "random")):
            s = scores[:, 2 * j + 1]
            entry = {}
            if boxes is not None:
                entry["pointing_acc"] = 100.0 * float(points_in_boxes(peaks[pos, j], boxes[pos]).mean())
            entry["ap"] = _ap(s, pos, neg)
            if conf is not None:
                entry["confuser_false_positive_rate"] = 100.0 * float((s[conf] > 0).mean())
            row[name] = entry
        rows[phrase] = row
    return ConceptLocalization(detectors, rows, skipped, scores, peaks, len(X_train), len(test), maps, features)


def plot_concept_examples(cams: CAMPass, result: ConceptLocalization, test: CaptionSplit, per_phrase: int = 4,
                          ncols: int = 6):
    """Fig. 10 figure, the mined detectors' CAMs. With concept boxes: each phrase's first test positives,
    with the box (red), the CAM peak (cross) and hit / miss. Without: the test images each detector
    scores highest (what it finds). None when no detector was trained."""
    imgs, maps, titles, boxes, peaks = [], [], [], [], []
    for phrase, d in result.detectors.items():
        j = result.detector_index(phrase)
        if test.concept_boxes is not None:
            show = phrase_split(test.captions, phrase)[0][:per_phrase]
        else:
            show = np.argsort(-result.score(phrase), kind="stable")[:per_phrase]
        m = result.maps[show, j] if result.maps is not None else cams(d.mined.probe, _take(test.inputs, show), 1)[1]
        imgs += [test.image(int(i)) for i in show]
        maps += list(m)
        if test.concept_boxes is not None:
            box = np.asarray(test.concept_boxes[phrase])[show]
            hit = points_in_boxes(result.peaks[show, j], box)
            boxes += list(box)
            peaks += list(cam_peaks(m))
            titles += [f"{phrase} ({'hit' if h else 'miss'})" for h in hit]
        else:
            titles += [phrase] * len(show)
    if not imgs:
        return None
    return plot_concepts(imgs, maps, titles, boxes or None, peaks or None, ncols=ncols)


# --------------------------------------------------------------------------- 3. text detector (Fig. 11)


@dataclass
class TextSplit:
    """One split of text / no-text images as :func:`text_detector` reads it: network ``inputs``,
    ``labels`` (N,) 1 = text, true text ``boxes`` per image ((n, 4) inclusive, at the input size; rows
    with x0 < 0 are no box) and ``image(i)`` for figures."""

    inputs: Inputs
    labels: np.ndarray
    boxes: Sequence[np.ndarray]
    image: Callable[[int], np.ndarray]

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index) -> TextSplit:
        """The images ``index`` of this split."""
        index = np.asarray(index, dtype=np.int64)
        return TextSplit(_take(self.inputs, index), np.asarray(self.labels)[index], [self.boxes[i] for i in index],
                         lambda j: self.image(int(index[j])))


def procedural_text(ds, inputs: Inputs) -> TextSplit:
    """A :class:`TextSplit` of :class:`camlib.datasets.text.TextImages` (quick profile)."""
    return TextSplit(inputs, np.asarray(ds.labels), [b[None] for b in ds.boxes], lambda i: ds.images[i])


def svt_text(files, images: Sequence, size: int) -> TextSplit:
    """A :class:`TextSplit` of an image-file dataset whose first ``len(images)`` files are the SVT
    ``images`` (:class:`camlib.datasets.text.SVTImage`, in order) and the rest negatives without text.
    Word boxes go to the ``size`` x ``size`` input as ``floor(x * size / W)``, ``floor(y * size / H)``
    with (H, W) the XML's resolution, else the file header's."""
    boxes = []
    for j, im in enumerate(images):
        if Path(files.paths[j]) != Path(im.path):
            raise ValueError(f"file {j} is {files.paths[j]}, not the SVT image {im.path}: list the SVT images first")
        H, W = im.size or files.original_size(j)
        boxes.append(np.floor(im.boxes * np.array([size / W, size / H] * 2)).astype(np.int64))
    boxes += [np.zeros((0, 4), np.int64)] * (len(files) - len(images))
    return TextSplit(files, np.asarray(files.labels), boxes, files.image)


@dataclass
class TextDetection:
    """The outcome of :func:`text_detector`: the ``probe``, test ``accuracy`` (%), the box ``fraction``
    (and each one's validation F1), the ``detections`` scores (CAM boxes at the chosen fraction, at the
    paper's 0.2, at a looser IoU; the centre box), the centre box size ``centre_wh`` and the test
    ``maps``, ``fire`` (the SVM says text) and predicted boxes ``pred``."""

    probe: SVMProbe
    accuracy: float
    fraction: float
    val_f1: dict[float, float]
    detections: dict[str, dict]
    centre_wh: tuple[float, float]
    maps: np.ndarray
    fire: np.ndarray
    pred: list[np.ndarray]
    n_train: int
    n_val: int
    n_test: int
    loose_iou: float = 0.3
    map_side: int = 0

    def summary(self) -> str:
        """Printable lines: the SVM, the fraction choice and each detector's precision / recall."""
        lines = [f"text / no-text SVM: C = {self.probe.best_C:g}, test accuracy {self.accuracy:.1f}% (chance 50%)",
                 f"validation F1 per box fraction: { {f: round(v, 1) for f, v in self.val_f1.items()} } -> {self.fraction}"]
        for k, r in self.detections.items():
            lines.append(f"{k:>29}: precision {r['precision']:.1f}%, recall {r['recall']:.1f}% "
                         f"(IoU >= {r['iou_threshold']}, {r['tp']} of {r['n_gt']} text boxes)")
        return "\n".join(lines)

    def measured(self) -> str:
        """The result in words."""
        c, b = self.detections["cam_boxes"], self.detections["centre_box"]
        loose = self.detections[f"cam_boxes_iou_{self.loose_iou}"]
        return (f"Measured: CAM boxes reach precision {c['precision']:.1f}% / recall {c['recall']:.1f}% at IoU 0.5, the "
                f"centre box {b['precision']:.1f}% / {b['recall']:.1f}%. The paper shows CAMs that highlight text and gives "
                f"no numbers. At IoU {self.loose_iou} the CAM boxes reach {loose['precision']:.1f}% / {loose['recall']:.1f}%"
                + (f": they find the text line but, from {self.map_side} x {self.map_side} maps, come out taller than a "
                   "thin line of text." if loose["precision"] > c["precision"] else "."))

    def metrics(self) -> dict:
        """The results-file entry."""
        return {"classification_acc": self.accuracy, "chance_acc": 50.0, "best_C": self.probe.best_C,
                "box_fraction": self.fraction, "box_fraction_val_f1": {str(k): v for k, v in self.val_f1.items()},
                **self.detections, "centre_box_wh": [float(self.centre_wh[0]), float(self.centre_wh[1])],
                "n_train": self.n_train, "n_val": self.n_val, "n_test": self.n_test}


def text_detector(
    cams: CAMPass,
    X_train: np.ndarray,
    y_train: np.ndarray,
    train_boxes: Sequence[np.ndarray],
    val: TextSplit,
    test: TextSplit,
    *,
    svm: Mapping,
    fractions: Sequence[float] = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7),
    paper_fraction: float = 0.2,
    loose_iou: float = 0.3,
) -> TextDetection:
    """Fig. 11's protocol: a weakly supervised text detector.

    ``fit_linear_svm(X_train, y_train, **svm)`` separates text (1) from no-text (0). On ``val`` the box
    fraction with the best F1 (:func:`~camlib.paper.discovery.choose_fraction`; images the SVM calls
    text, ``s_1 > 0``, get one paper box of the text CAM). On ``test``: accuracy, and
    :func:`~camlib.paper.discovery.detection_scores` of the CAM boxes at that fraction (IoU >= 0.5), at
    ``paper_fraction``, at IoU >= ``loose_iou``, and of the baseline: a box of the mean ``train_boxes``
    size at the image centre, for the same images.
    """
    allb = np.concatenate([np.asarray(b).reshape(-1, 4) for b in train_boxes])
    allb = allb[allb[:, 0] >= 0]
    if len(allb) == 0:
        raise ValueError("no true text box among the training images: the centre-box baseline needs their size")
    wh = ((allb[:, 2] - allb[:, 0] + 1).mean(), (allb[:, 3] - allb[:, 1] + 1).mean())
    probe = fit_linear_svm(X_train, y_train, **svm)
    sv, mv = cams(probe, val.inputs, 1)
    fraction, val_f1 = choose_fraction(mv, sv[:, 1] > 0, val.boxes, fractions)
    st, mt = cams(probe, test.inputs, 1)
    fire = st[:, 1] > 0
    accuracy = 100.0 * float(np.mean(fire == (np.asarray(test.labels) == 1)))
    pred = detect_boxes(mt, fire, fraction)
    det = {"cam_boxes": detection_scores(pred, test.boxes),
           f"cam_boxes_paper_fraction_{paper_fraction}": detection_scores(detect_boxes(mt, fire, paper_fraction), test.boxes),
           f"cam_boxes_iou_{loose_iou}": detection_scores(pred, test.boxes, iou_threshold=loose_iou)}
    cbox = centre_box(cams.size, wh)
    det["centre_box"] = detection_scores([cbox[None] if f else np.zeros((0, 4)) for f in fire], test.boxes)
    side = int(np.ceil(cams.size[0] / 16))
    return TextDetection(probe, accuracy, float(fraction), val_f1, det, (float(wh[0]), float(wh[1])), mt, fire, pred,
                         len(X_train), len(val), len(test), loose_iou, side)


def plot_text_examples(result: TextDetection, test: TextSplit, n: int = 12, ncols: int = 6):
    """Fig. 11 figure: the first ``n`` test images with text, their CAM, the predicted box (green) and
    the true ones (red), titled hit / miss / no text found."""
    show = np.flatnonzero(np.asarray(test.labels) == 1)[:n]
    titles = ["hit" if len(result.pred[i]) and detection_scores([result.pred[i]], [test.boxes[i]])["tp"] else
              ("miss" if len(result.pred[i]) else "no text found") for i in show]
    return plot_text_detections([test.image(int(i)) for i in show], result.maps[show], [result.pred[i] for i in show],
                                [test.boxes[i] for i in show], titles, ncols=ncols)
