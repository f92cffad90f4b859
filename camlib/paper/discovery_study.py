"""The three pattern-discovery studies of paper section 4.2 (Figs. 9-11), one protocol each.

Notebook 06 runs every study twice over: on generated data whose answer is known (quick profile:
:mod:`camlib.datasets.scenes`, :mod:`~camlib.datasets.captions`, :mod:`~camlib.datasets.text`) and
on the paper's kind of data (SUN2012, an image-caption folder, SVT). Both profiles call the SAME
function here; only the data (and settings such as the fractions tried) differ, so the two cannot
drift apart. Each data split is described by a small record (:class:`SceneSplit`,
:class:`CaptionSplit`, :class:`TextSplit`) with a builder for each profile's data.

1. :func:`informative_objects` (Fig. 9): a linear SVM per scene on GAP features; for each test image
   the high-CAM region ``R = {M_c >= t max M_c}`` of its own scene ``c``; an object overlaps ``R`` when
   ``|R ∩ O| / |O| >= min_cover``; its score = share of the scene's images where it does, next to two
   baselines: its frequency, and its frequency discounted for objects present in every scene (tf-idf,
   :func:`~camlib.paper.discovery.tfidf_scores`); all three rankings scored against the
   informativeness ``g(o, s)`` (precision at k, Spearman).
   ``t`` is chosen on validation images (largest Spearman) when several are given.
2. :func:`concept_localization` (Fig. 10): per phrase, positives = images whose caption holds it,
   negatives = images whose caption has none of its words; a detector trained with hard-negative
   mining (:func:`camlib.paper.discovery.mine_hard_negatives`) next to one on as many random negatives;
   scored by average precision and, where concept boxes are known, by pointing accuracy of the CAM's
   peak (baseline: the image centre) and the false-positive rate on confusers.
3. :func:`text_detector` (Fig. 11): text vs no-text SVM; one paper box per image it calls text, at the
   box fraction with the best validation F1; precision/recall at IoU >= 0.5 (baseline: a centre box of
   the mean training text size). On REAL photos (too few to train and validate on):
   :func:`text_photo_detector`, leave one photo out, the paper's box rule at a fraction fixed in
   advance, words found per photo at IoU 0.5 and 0.3 with mmocr's treatment of "ignore" words, CAM-peak
   pointing, and the centre box / centre point beside them (data: :func:`text_photo_source`,
   :func:`load_text_photos`: the scene-text photos vs ILSVRC val photos of classes that rarely show text).

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

from camlib.core.probe import SVMProbe, fit_linear_svm
from camlib.datasets.captions import CONCEPTS, phrase_split
from camlib.datasets.scenes import informativeness, rasterize_objects
from camlib.evaluation.stats import Estimate, bootstrap_ci, paired_diff_ci, verdict
from camlib.paper.discovery import (
    CAMPass,
    ImageFiles,
    MiningResult,
    cam_peaks,
    centre_box,
    centre_points,
    choose_fraction,
    detect_boxes,
    detection_scores,
    ignored_predictions,
    match_boxes,
    mine_hard_negatives,
    object_hits,
    object_rankings,
    plot_concepts,
    plot_informative_objects,
    plot_text_detections,
    ranking_scores,
    top_objects,
)
from camlib.paper.vqa_eval import points_in_boxes

__all__ = [
    "CaptionSplit",
    "ConceptDetector",
    "ConceptLocalization",
    "InformativeObjects",
    "SceneSplit",
    "SCENE_TEXT_ORIGIN",
    "TEXT_PRONE_CLASSES",
    "TextDetection",
    "TextPhotoDetection",
    "TextPhotoSource",
    "TextPhotos",
    "TextSplit",
    "caption_files",
    "concept_localization",
    "fig9_comparisons",
    "informative_objects",
    "load_text_photos",
    "plot_concept_examples",
    "plot_scene_examples",
    "plot_text_examples",
    "plot_text_photos",
    "procedural_captions",
    "procedural_scenes",
    "procedural_text",
    "sun_scenes",
    "svt_text",
    "text_detector",
    "text_photo_detector",
    "text_photo_source",
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
    return SceneSplit(
        inputs, np.asarray(ds.labels), lambda i: (ds.instances[i], ds.types[i]), lambda i: ds.images[i]
    )


def sun_scenes(images: Sequence, files, index, vocabulary: Sequence[str], size: int) -> SceneSplit:
    """A :class:`SceneSplit` of the SUN images ``index`` (paper profile). ``images``: the
    :class:`camlib.datasets.scenes.SunImage` list, ``files``: the image-file dataset of the same images
    in the same order (its ``labels`` are the scenes). Polygons are scaled from the image's (H, W)
    (the XML's, else the file header's) to the ``size`` x ``size`` input and rasterized on demand."""
    index = np.asarray(index, dtype=np.int64)
    if len(images) != len(files):
        raise ValueError(
            f"{len(images)} annotated images but {len(files)} files; build both from the same list"
        )

    def objects(j: int) -> tuple[np.ndarray, np.ndarray]:
        i = int(index[j])
        H, W = images[i].size or files.original_size(i)
        return rasterize_objects(images[i].objects, vocabulary, (size, size), scale=(size / H, size / W))

    return SceneSplit(
        Subset(files, index), np.asarray(files.labels)[index], objects, lambda j: files.image(int(index[j]))
    )


def training_informativeness(present: np.ndarray, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """``g(o, s) = P(o | s) - mean_{s' != s} P(o | s')`` from the TRAINING images' object presence
    (N, O) bool: the reference ranking on real data, where no true informativeness is known."""
    present = np.asarray(present)
    return informativeness(object_rankings(present, present, labels, n_classes)["frequency"])


@dataclass
class InformativeObjects:
    """The outcome of :func:`informative_objects`: the scene ``probe``, its test ``accuracy`` (%), the
    region ``fraction`` (and the validation Spearman of each one tried), ``rank`` = object_rankings of
    the test images, ``scored`` = ranking_scores of the "cam", "frequency" and "tfidf" rankings, and
    the test ``maps`` (N, S, S) when they were kept."""

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

    def ranking_at(
        self, split: SceneSplit, n_objects: int, *, fraction: float, min_cover: float
    ) -> dict[str, np.ndarray]:
        """The test rankings again at another region ``fraction`` / ``min_cover`` (for looking, never
        for choosing; needs ``keep_maps=True``)."""
        if self.maps is None:
            raise ValueError("the test maps were not kept: run informative_objects(..., keep_maps=True)")
        hits, present = _hits(self.maps, split, range(len(split)), n_objects, [fraction], min_cover)
        return object_rankings(hits[fraction], present, split.labels, len(self.rank["n"]))

    def summary(self, class_names: Sequence[str], vocabulary: Sequence[str], top: int = 5) -> str:
        """Printable lines: the SVM, the fraction choice, each scene's top objects, the two scores."""
        n_cls = len(class_names)
        lines = [
            f"scene SVM: C = {self.probe.best_C:g}, test accuracy {self.accuracy:.1f}% (chance {100 / n_cls:.0f}%) "
            f"on {self.n_test} test images"
        ]
        if self.val_spearman:
            lines.append(
                "validation Spearman per region fraction: "
                f"{ {f: round(v, 3) for f, v in self.val_spearman.items()} } -> t = {self.fraction}"
            )
        width = max(len(c) for c in class_names)
        for s, scene in enumerate(class_names):
            for label, key in (("CAM overlap", "cam"), ("frequency", "frequency"), ("tf-idf", "tfidf")):
                objs = ", ".join(f"{n} {v:.2f}" for n, v in top_objects(self.rank[key][s], vocabulary, top))
                lines.append(f"{scene if key == 'cam' else '':>{width}} {label + ':':<12} {objs}")
        for name, r in self.scored.items():
            lines.append(
                f"{name:>9} ranking: precision at {r['k']} = {r['precision_at_k']:.1f}%, "
                f"Spearman with g = {r['spearman']:.3f}"
            )
        return "\n".join(lines)

    def measured(self) -> str:
        """The result in words, decided from the numbers (against both baselines)."""
        cam, freq, tfidf = self.scored["cam"], self.scored["frequency"], self.scored["tfidf"]
        k = cam["k"]
        gain = cam["precision_at_k"] - freq["precision_at_k"]
        gain_t = cam["precision_at_k"] - tfidf["precision_at_k"]
        drho = cam["spearman"] - freq["spearman"]
        drho_t = cam["spearman"] - tfidf["spearman"]
        return (
            f"Measured: the CAM ranking puts {cam['precision_at_k']:.0f}% of the true informative objects in its top {k}, "
            f"the frequency ranking {freq['precision_at_k']:.0f}% ({gain:+.0f} points): "
            + (
                "as in the paper, the CAM finds the informative objects where frequency finds the ubiquitous ones. "
                if gain > 0
                else "unlike the paper's examples, the CAM ranking does NOT beat frequency at the top. "
            )
            + f"Over the whole list, Spearman {cam['spearman']:.2f} vs {freq['spearman']:.2f} "
            + (
                "(about equal: both put the other scenes' objects last, and the CAM leaves most objects tied at 0). "
                if abs(drho) < 0.05
                else "(CAM higher). "
                if drho > 0
                else "(frequency higher: the CAM leaves most objects tied at 0). "
            )
            + f"The fair baseline, frequency discounted for objects present in every scene (tf-idf), puts "
            f"{tfidf['precision_at_k']:.0f}% in its top {k} and reaches Spearman {tfidf['spearman']:.2f}: the CAM "
            f"ranking {_versus(gain_t, 0.5)} it at the top ({gain_t:+.0f} points) and {_versus(drho_t, 0.05)} it over "
            f"the whole list ({drho_t:+.2f})"
            + (
                ": counting objects per scene, once the ubiquitous ones are discounted, does as well as the CAM."
                if gain_t < 0.5 and drho_t < 0.05
                else "."
            )
        )

    def metrics(self, class_names: Sequence[str], vocabulary: Sequence[str]) -> dict:
        """The results-file entry (top objects: six, as the paper lists)."""
        out = {
            "classification_acc": self.accuracy,
            "chance_acc": 100.0 / len(class_names),
            "best_C": self.probe.best_C,
            "region_fraction": self.fraction,
            "min_cover": self.min_cover,
            "cam_ranking": self.scored["cam"],
            "frequency_ranking": self.scored["frequency"],
            "tfidf_ranking": self.scored["tfidf"],
            "top_objects_cam": {
                s: top_objects(self.rank["cam"][i], vocabulary, 6) for i, s in enumerate(class_names)
            },
            "top_objects_frequency": {
                s: top_objects(self.rank["frequency"][i], vocabulary, 6) for i, s in enumerate(class_names)
            },
            "top_objects_tfidf": {
                s: top_objects(self.rank["tfidf"][i], vocabulary, 6) for i, s in enumerate(class_names)
            },
            "n_train": self.n_train,
            "n_test": self.n_test,
        }
        if self.n_val is not None:
            out["region_fraction_val_spearman"] = {str(k): v for k, v in self.val_spearman.items()}
            out["n_val"] = self.n_val
        return out


def _versus(diff: float, tie: float) -> str:
    """'beats' / 'ties with' (|diff| < tie) / 'loses to'."""
    return "ties with" if abs(diff) < tie else "beats" if diff > 0 else "loses to"


def _hits(
    maps, split: SceneSplit, index: range, n_objects: int, fractions: Sequence[float], min_cover: float
) -> tuple[dict[float, np.ndarray], np.ndarray]:
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
    return (
        {f: np.array(v) if v else empty for f, v in hits.items()},
        np.array(present) if present else empty,
    )


def _scene_pass(
    cams: CAMPass,
    probe: SVMProbe,
    split: SceneSplit,
    n_objects: int,
    fractions: Sequence[float],
    min_cover: float,
    chunk: int,
    keep_maps: bool,
):
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
    return (
        np.concatenate(scores),
        {f: np.concatenate(v) for f, v in hits.items()},
        np.concatenate(present),
        np.concatenate(maps) if keep_maps else None,
    )


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
    before looking at any result). On ``test``: ``rank`` (CAM overlap, frequency and tf-idf per scene and
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
        val_rho = {
            f: ranking_scores(object_rankings(hits[f], present, val.labels, n_classes)["cam"], truth)[
                "spearman"
            ]
            for f in fractions
        }
        fraction = max(fractions, key=lambda f: (val_rho[f], -f))
    else:
        fraction = fractions[0]
    scores, hits, present, maps = _scene_pass(
        cams, probe, test, n_objects, [fraction], min_cover, chunk, keep_maps
    )
    rank = object_rankings(hits[fraction], present, test.labels, n_classes)
    scored = {
        key: ranking_scores(rank[key], truth, k=k, names=class_names) for key in ("cam", "frequency", "tfidf")
    }
    accuracy = 100.0 * float(np.mean(scores.argmax(1) == test.labels))
    return InformativeObjects(
        probe,
        accuracy,
        fraction,
        val_rho,
        float(min_cover),
        rank,
        scored,
        len(X_train),
        None if val is None else len(val),
        len(test),
        maps,
    )


def plot_scene_examples(
    cams: CAMPass,
    result: InformativeObjects,
    test: SceneSplit,
    class_names: Sequence[str],
    vocabulary: Sequence[str],
    per_class: int = 3,
):
    """Fig. 9 figure: the first ``per_class`` test images of each scene with the CAM of their scene, and
    the top objects by CAM overlap next to the most frequent ones (maps recomputed if not kept)."""
    ex = [np.flatnonzero(test.labels == s)[:per_class] for s in range(len(class_names))]
    if result.maps is not None:
        maps = [result.maps[e] for e in ex]
    else:
        maps = [cams(result.probe, _take(test.inputs, e), test.labels[e])[1] for e in ex]
    return plot_informative_objects(
        [[test.image(int(i)) for i in e] for e in ex],
        maps,
        class_names,
        {
            "CAM overlap": result.rank["cam"],
            "frequency": result.rank["frequency"],
            "tf-idf": result.rank["tfidf"],
        },
        vocabulary,
    )


def fig9_comparisons(
    result: InformativeObjects,
    class_names: Sequence[str],
    vocabulary: Sequence[str],
    setting: str,
    scene: str = "dining_room",
    objects: Sequence[str] = ("table", "chair", "chandelier", "plate", "vase", "flowers"),
) -> list[dict]:
    """Comparison rows with the paper's Fig. 9 scores (dining room: table .96, chair .85, ...): the share of
    ``scene``'s test images in which each object overlaps the high-CAM region, in %. None when the
    scene is not among ``class_names``; objects outside the vocabulary are left out."""
    if scene not in class_names:
        return []
    d = list(class_names).index(scene)
    return [
        {
            "metric": f"{scene.replace('_', ' ')}: {obj} overlaps the high-CAM region (% of images)",
            "paper_ref": f"fig9.{scene}.{obj}",
            "reproduced": 100.0 * result.rank["cam"][d, list(vocabulary).index(obj)],
            "setting": setting,
        }
        for obj in objects
        if obj in vocabulary
    ]


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
    return CaptionSplit(
        inputs,
        list(ds.captions),
        lambda i: ds.images[i],
        {p: ds.concept_boxes[:, c] for c, p in enumerate(CONCEPTS)},
        {p: ds.confuser_boxes[:, c, 0] >= 0 for c, p in enumerate(CONCEPTS)},
    )


def caption_files(files, index, captions: Sequence[str]) -> CaptionSplit:
    """A :class:`CaptionSplit` of the images ``index`` of an image-file dataset (paper profile);
    ``captions`` holds one caption per file."""
    index = np.asarray(index, dtype=np.int64)
    return CaptionSplit(
        Subset(files, index), [captions[i] for i in index], lambda j: files.image(int(index[j]))
    )


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
        mined = mine_hard_negatives(
            X[pos], X[neg], n_initial=n_initial, rounds=rounds, per_round=per_round, seed=seed
        )
        rand = np.random.default_rng(seed + 1).choice(neg, min(len(neg), len(mined.negatives)), replace=False)
        random_probe = fit_linear_svm(
            X[np.r_[pos, rand]], np.r_[np.ones(len(pos)), np.zeros(len(rand))].astype(int), **svm
        )
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
        out = {
            "mean_ap": {
                "mined": float(np.mean([r["mined"]["ap"] for r in rows])),
                "random_negatives": float(np.mean([r["random"]["ap"] for r in rows])),
            }
        }
        if "centre_point_acc" in rows[0]:
            out["mean_pointing_acc"] = {
                "mined": float(np.mean([r["mined"]["pointing_acc"] for r in rows])),
                "random_negatives": float(np.mean([r["random"]["pointing_acc"] for r in rows])),
                "centre_point": float(np.mean([r["centre_point_acc"] for r in rows])),
            }
        if "n_test_confusers" in rows[0]:
            out["mean_confuser_false_positive_rate"] = {
                k: float(np.mean([r[w]["confuser_false_positive_rate"] for r in rows]))
                for k, w in (("mined", "mined"), ("random_negatives", "random"))
            }
        return out

    def summary(self) -> str:
        """Printable lines: mining per phrase, then each phrase's scores."""
        lines = [f"{p!r}: skipped ({why})" for p, why in self.skipped.items()]
        for phrase, d in self.detectors.items():
            line = (
                f"{phrase!r}: {len(d.positives)} positives, pool of {len(d.pool)} negatives; mining: "
                + " -> ".join(
                    f"{h['n_negatives']} negatives ({h['pool_false_positives']} pool false positives)"
                    for h in d.mined.history
                )
            )
            if d.confusers is not None:
                line += f"; confusers among the negatives: mined {d.confusers['mined']}, random {d.confusers['random']}"
            lines.append(line)
        for phrase, r in self.rows.items():
            line = (
                f"{phrase!r}: AP {r['mined']['ap']:.1f} (mined) vs {r['random']['ap']:.1f} (random negatives)"
            )
            if "centre_point_acc" in r:
                line += (
                    f"; pointing {r['mined']['pointing_acc']:.1f}% (random negatives "
                    f"{r['random']['pointing_acc']:.1f}%, centre {r['centre_point_acc']:.1f}%)"
                )
            if "n_test_confusers" in r:
                line += (
                    f"; confusers called positive {r['mined']['confuser_false_positive_rate']:.1f}% vs "
                    f"{r['random']['confuser_false_positive_rate']:.1f}%"
                )
            lines.append(line)
        return "\n".join(lines)

    def measured(self) -> str:
        """The result in words, decided from the numbers (what the data allows to say)."""
        m = self.means()
        if not m:
            return "Measured: no phrase had enough positives to train a detector."
        ap = m["mean_ap"]
        if "mean_pointing_acc" not in m:
            return (
                f"Measured, mean over {len(self.rows)} phrases: AP {ap['mined']:.1f} with mined negatives, "
                f"{ap['random_negatives']:.1f} with random ones (no concept boxes here, so no pointing accuracy)."
            )
        pt = m["mean_pointing_acc"]
        fp = m.get("mean_confuser_false_positive_rate")
        n_pos = [r["n_test_pos"] for r in self.rows.values()]
        text = (
            f"Measured, mean over the {len(self.rows)} phrases: pointing accuracy {pt['mined']:.1f}% with mined "
            f"negatives, {pt['random_negatives']:.1f}% with random ones, {pt['centre_point']:.1f}% for the centre point"
        )
        if fp is not None:
            text += f"; confusers called positive {fp['mined']:.1f}% vs {fp['random_negatives']:.1f}%"
        text += (
            f"; AP {ap['mined']:.1f} vs {ap['random_negatives']:.1f}. The paper shows such maps without numbers; "
            "here a detector trained from captions alone points at its concept "
            + (
                "far more often than the centre does. "
                if pt["mined"] > pt["centre_point"]
                else "NOT more often than the centre does. "
            )
        )
        if fp is not None:
            text += (
                "Mining "
                + ("lowers" if fp["mined"] < fp["random_negatives"] else "does NOT lower")
                + " the false positives on the confusers; it "
            )
        else:
            text += "Mining "
        text += (
            ("does not improve" if pt["mined"] <= pt["random_negatives"] else "also improves")
            + " where the CAM points "
            f"(on {min(n_pos)}-{max(n_pos)} test images per phrase, differences of a few points are within noise)."
        )
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
        s, m, f = cams(
            detectors, _take(split.inputs, index), np.tile(positive, (len(index), 1)), features=True
        )
        scores.append(s)
        feats.append(f)
        peaks.append(np.stack([cam_peaks(m[:, j]) for j in range(len(detectors))], axis=1))
        if keep_maps:
            maps.append(m)
    return (
        np.concatenate(scores),
        np.concatenate(peaks),
        np.concatenate(feats),
        np.concatenate(maps) if keep_maps else None,
    )


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
    detectors = train_concept_detectors(
        X_train,
        train_captions,
        kept,
        svm=svm,
        seed=seed,
        negatives_per_positive=negatives_per_positive,
        added_per_positive=added_per_positive,
        rounds=rounds,
        confusers=train_confusers,
    )
    if not detectors:
        empty = np.zeros((len(test), 0))
        return ConceptLocalization(
            {}, {}, skipped, empty, np.zeros((len(test), 0, 2), np.int64), len(X_train), len(test)
        )
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
    return ConceptLocalization(
        detectors, rows, skipped, scores, peaks, len(X_train), len(test), maps, features
    )


def plot_concept_examples(
    cams: CAMPass, result: ConceptLocalization, test: CaptionSplit, per_phrase: int = 4, ncols: int = 6
):
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
        m = (
            result.maps[show, j]
            if result.maps is not None
            else cams(d.mined.probe, _take(test.inputs, show), 1)[1]
        )
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
        return TextSplit(
            _take(self.inputs, index),
            np.asarray(self.labels)[index],
            [self.boxes[i] for i in index],
            lambda j: self.image(int(index[j])),
        )


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
            raise ValueError(
                f"file {j} is {files.paths[j]}, not the SVT image {im.path}: list the SVT images first"
            )
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
        lines = [
            f"text / no-text SVM: C = {self.probe.best_C:g}, test accuracy {self.accuracy:.1f}% (chance 50%)",
            f"validation F1 per box fraction: { {f: round(v, 1) for f, v in self.val_f1.items()} } -> {self.fraction}",
        ]
        for k, r in self.detections.items():
            lines.append(
                f"{k:>29}: precision {r['precision']:.1f}%, recall {r['recall']:.1f}% "
                f"(IoU >= {r['iou_threshold']}, {r['tp']} of {r['n_gt']} text boxes)"
            )
        return "\n".join(lines)

    def measured(self) -> str:
        """The result in words."""
        c, b = self.detections["cam_boxes"], self.detections["centre_box"]
        loose = self.detections[f"cam_boxes_iou_{self.loose_iou}"]
        return (
            f"Measured: CAM boxes reach precision {c['precision']:.1f}% / recall {c['recall']:.1f}% at IoU 0.5, the "
            f"centre box {b['precision']:.1f}% / {b['recall']:.1f}%. The paper shows CAMs that highlight text and gives "
            f"no numbers. At IoU {self.loose_iou} the CAM boxes reach {loose['precision']:.1f}% / {loose['recall']:.1f}%"
            + (
                f": they find the text line but, from {self.map_side} x {self.map_side} maps, come out taller than a "
                "thin line of text."
                if loose["precision"] > c["precision"]
                else "."
            )
        )

    def metrics(self) -> dict:
        """The results-file entry."""
        return {
            "classification_acc": self.accuracy,
            "chance_acc": 50.0,
            "best_C": self.probe.best_C,
            "box_fraction": self.fraction,
            "box_fraction_val_f1": {str(k): v for k, v in self.val_f1.items()},
            **self.detections,
            "centre_box_wh": [float(self.centre_wh[0]), float(self.centre_wh[1])],
            "n_train": self.n_train,
            "n_val": self.n_val,
            "n_test": self.n_test,
        }


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
        raise ValueError(
            "no true text box among the training images: the centre-box baseline needs their size"
        )
    wh = ((allb[:, 2] - allb[:, 0] + 1).mean(), (allb[:, 3] - allb[:, 1] + 1).mean())
    probe = fit_linear_svm(X_train, y_train, **svm)
    sv, mv = cams(probe, val.inputs, 1)
    fraction, val_f1 = choose_fraction(mv, sv[:, 1] > 0, val.boxes, fractions)
    st, mt = cams(probe, test.inputs, 1)
    fire = st[:, 1] > 0
    accuracy = 100.0 * float(np.mean(fire == (np.asarray(test.labels) == 1)))
    pred = detect_boxes(mt, fire, fraction)
    det = {
        "cam_boxes": detection_scores(pred, test.boxes),
        f"cam_boxes_paper_fraction_{paper_fraction}": detection_scores(
            detect_boxes(mt, fire, paper_fraction), test.boxes
        ),
        f"cam_boxes_iou_{loose_iou}": detection_scores(pred, test.boxes, iou_threshold=loose_iou),
    }
    cbox = centre_box(cams.size, wh)
    det["centre_box"] = detection_scores([cbox[None] if f else np.zeros((0, 4)) for f in fire], test.boxes)
    side = int(np.ceil(cams.size[0] / 16))
    return TextDetection(
        probe,
        accuracy,
        float(fraction),
        val_f1,
        det,
        (float(wh[0]), float(wh[1])),
        mt,
        fire,
        pred,
        len(X_train),
        len(val),
        len(test),
        loose_iou,
        side,
    )


def plot_text_examples(result: TextDetection, test: TextSplit, n: int = 12, ncols: int = 6):
    """Fig. 11 figure: the first ``n`` test images with text, their CAM, the predicted box (green) and
    the true ones (red), titled hit / miss / no text found."""
    show = np.flatnonzero(np.asarray(test.labels) == 1)[:n]
    titles = [
        "hit"
        if len(result.pred[i]) and detection_scores([result.pred[i]], [test.boxes[i]])["tp"]
        else ("miss" if len(result.pred[i]) else "no text found")
        for i in show
    ]
    return plot_text_detections(
        [test.image(int(i)) for i in show],
        result.maps[show],
        [result.pred[i] for i in show],
        [test.boxes[i] for i in show],
        titles,
        ncols=ncols,
    )


# --------------------------------------------------------------------------- 3b. text detector on real photos

#: ImageNet classes (torchvision index -> name) whose photos often show words: signs, shops, screens,
#: keyboards, labelled bottles and boxes, lettered vehicles, jerseys. Images of these classes are left
#: out of the "no text" negatives (a rule fixed before looking at any image; photos of other classes
#: may still hold some text: a caveat of every number measured with these negatives).
TEXT_PRONE_CLASSES: dict[int, str] = {
    403: "aircraft carrier",
    404: "airliner",
    407: "ambulance",
    415: "bakery",
    424: "barbershop",
    436: "beach wagon",
    440: "beer bottle",
    446: "binder",
    453: "bookcase",
    454: "bookshop",
    466: "bullet train",
    467: "butcher shop",
    468: "cab",
    478: "carton",
    480: "cash machine",
    481: "cassette",
    487: "cellular telephone",
    498: "cinema",
    508: "computer keyboard",
    509: "confectionery",
    510: "container ship",
    527: "desktop computer",
    528: "dial telephone",
    530: "digital clock",
    531: "digital watch",
    547: "electric locomotive",
    549: "envelope",
    554: "fireboat",
    555: "fire engine",
    565: "freight car",
    569: "garbage truck",
    571: "gas pump",
    582: "grocery store",
    590: "hand-held computer",
    592: "hard disc",
    598: "home theater",
    605: "iPod",
    609: "jeep",
    610: "jersey",
    612: "jinrikisha",
    620: "laptop",
    624: "library",
    627: "limousine",
    628: "liner",
    637: "mailbox",
    654: "minibus",
    656: "minivan",
    661: "Model T",
    662: "modem",
    664: "monitor",
    665: "moped",
    675: "moving van",
    681: "notebook",
    685: "odometer",
    688: "oscilloscope",
    692: "packet",
    704: "parking meter",
    705: "passenger car",
    707: "pay-phone",
    713: "photocopier",
    717: "pickup",
    720: "pill bottle",
    734: "police van",
    737: "pop bottle",
    742: "printer",
    751: "racer",
    754: "radio",
    757: "recreational vehicle",
    761: "remote control",
    762: "restaurant",
    779: "school bus",
    781: "scoreboard",
    782: "screen",
    788: "shoe shop",
    800: "slot",
    802: "snowmobile",
    810: "space bar",
    817: "sports car",
    820: "steam locomotive",
    826: "stopwatch",
    829: "streetcar",
    838: "sunscreen",
    841: "sweatshirt",
    848: "tape player",
    851: "television",
    860: "tobacco shop",
    864: "tow truck",
    865: "toyshop",
    866: "tractor",
    867: "trailer truck",
    874: "trolleybus",
    878: "typewriter keyboard",
    886: "vending machine",
    898: "water bottle",
    907: "wine bottle",
    916: "web site",
    917: "comic book",
    918: "crossword puzzle",
    919: "street sign",
    920: "traffic light",
    921: "book jacket",
    922: "menu",
    981: "ballplayer",
}

SCENE_TEXT_ORIGIN = (
    "10 ICDAR 2015 incidental-scene-text test photos with mmocr word polygons, from the test "
    "fixtures of an Apache-2.0 text detection project (the project's ../shared/data/scene-text); "
    "the full ICDAR 2015 set needs a registration at rrc.cvc.uab.es"
)


@dataclass(frozen=True)
class TextPhotoSource:
    """Where the real text-detector data were looked for: the scene-text photos (``text``) and the
    ILSVRC val folder the negatives come from (``negatives``), both :class:`~camlib.datasets.roots.DataRoot`."""

    text: object
    negatives: object

    def __bool__(self) -> bool:
        return bool(self.text) and bool(self.negatives)

    def message(self) -> str:
        """The line a notebook prints first: which data part 3 uses, and how to get the real photos."""
        if self:
            return (
                f"Text detector data: REAL photos, scene-text from {self.text.path} (found via {self.text.kind}: "
                f"{self.text.info.n_images} photos) as positives, ILSVRC val photos from {self.negatives.path} "
                f"(via {self.negatives.kind}) as negatives; the procedural text set runs too (its validation "
                "images choose the 'tuned' box fraction)."
            )
        missing = [r for r in (self.text, self.negatives) if not r]
        return (
            "Text detector data: the PROCEDURAL text set (camlib.datasets.text), because "
            + " and ".join(r.message().rstrip(".") for r in missing)
            + f". `make data` cannot fetch the scene-text photos: they are {SCENE_TEXT_ORIGIN}; put such a "
            "folder (textdet_test.json + imgs/) in data/scene-text or point SCENE_TEXT_ROOT (or the notebook "
            "parameter SCENE_TEXT_ROOT) at it."
        )


def text_photo_source(text_root=None, negatives_root=None) -> TextPhotoSource:
    """Resolve the scene-text folder and the ILSVRC val folder (:func:`camlib.datasets.roots.resolve_root`:
    parameter -> ``SCENE_TEXT_ROOT`` / ``ILSVRC_ROOT`` -> ``data/`` -> ``../shared/data``)."""
    from camlib.datasets.roots import resolve_root

    return TextPhotoSource(resolve_root("scene-text", text_root), resolve_root("ilsvrc", negatives_root))


def _scale_boxes(boxes: np.ndarray, src: tuple[int, int], dst: tuple[int, int]) -> np.ndarray:
    """Inclusive boxes from an (H, W) image to an (h, w) one: ``floor(x * w / W)``, ``floor(y * h / H)``."""
    (H, W), (h, w) = src, dst
    return np.floor(np.asarray(boxes, float).reshape(-1, 4) * np.array([w / W, h / H] * 2)).astype(np.int64)


@dataclass
class TextPhotos:
    """Real photos for the weakly supervised text detector: ``files`` (:class:`~camlib.paper.discovery.ImageFiles`
    at ``size`` = (H, W), the positives first), ``labels`` (1 = text), per image the readable ``words`` and the
    ``ignored`` words as inclusive boxes in input pixels (negatives: none), ``names`` (file names),
    ``excluded`` (negatives left out as text-prone: id -> class name) and ``data`` (provenance rows for
    :func:`camlib.tools.results.write_results`)."""

    files: object
    labels: np.ndarray
    words: list[np.ndarray]
    ignored: list[np.ndarray]
    names: list[str]
    excluded: dict[str, str]
    data: list[dict]

    @property
    def n_pos(self) -> int:
        return int((self.labels == 1).sum())

    def identity(self) -> str:
        """A feature-cache key of these images: the count, the input size and a digest of the file paths."""
        import hashlib

        digest = hashlib.sha1("\n".join(str(p) for p in self.files.paths).encode()).hexdigest()[:16]
        return f"scene-text+negatives|{len(self.labels)}|{self.files.display_size[0]}x{self.files.display_size[1]}|{digest}"

    def split(self) -> TextSplit:
        """All images as a :class:`TextSplit` (boxes = the readable words)."""
        return TextSplit(self.files, self.labels, self.words, self.files.image)

    def describe(self) -> str:
        """One paragraph: what the positives and negatives are."""
        n_neg = len(self.labels) - self.n_pos
        w = sum(len(b) for b in self.words)
        ig = sum(len(b) for b in self.ignored)
        return (
            f"{self.n_pos} street photos with {w} readable words (+ {ig} 'ignore' words) vs {n_neg} ILSVRC val "
            f"photos without text ({len(self.excluded)} of the folder's images left out as text-prone: "
            f"{', '.join(sorted(set(self.excluded.values())))}); inputs {self.files.display_size[1]} x {self.files.display_size[0]} "
            "(W x H), the photos' aspect ratio."
        )


def load_text_photos(
    source: TextPhotoSource,
    size: tuple[int, int],
    *,
    max_negatives: int = 100,
    seed: int = 0,
    exclude: Mapping[int, str] = TEXT_PRONE_CLASSES,
) -> TextPhotos:
    """The scene-text photos (positives) and up to ``max_negatives`` ILSVRC val photos whose class is not
    in ``exclude`` (a seeded random choice, kept in file order) as negatives, all resized to ``size``
    (H, W), no crop. Word boxes go from the JSON's (height, width) to ``size`` (:func:`_scale_boxes`)."""
    from camlib.datasets.ilsvrc import open_ilsvrc_val
    from camlib.datasets.textdet import open_scene_text

    if not source:
        raise FileNotFoundError(source.message())
    pos = open_scene_text(source.text.path)
    neg = open_ilsvrc_val(source.negatives.path)
    keep = [i for i, c in enumerate(neg.labels) if c not in exclude]
    excluded = {neg.ids[i]: exclude[c] for i, c in enumerate(neg.labels) if c in exclude}
    if len(keep) > max_negatives:
        keep = sorted(np.random.default_rng(seed).choice(keep, max_negatives, replace=False).tolist())
    if len(keep) < len(pos):
        raise ValueError(
            f"only {len(keep)} usable negatives in {source.negatives.path}; need at least {len(pos)}"
        )
    size = (int(size[0]), int(size[1]))
    words = [_scale_boxes(r.target.boxes, r.target.size, size) for r in pos]
    ignored = [_scale_boxes(r.target.extra["ignored_boxes"], r.target.size, size) for r in pos]
    empty = np.zeros((0, 4), np.int64)
    files = ImageFiles(
        [r.path for r in pos] + [neg.paths[i] for i in keep], size, [1] * len(pos) + [0] * len(keep)
    )
    ti, ni = source.text.info, source.negatives.info
    # write_results' data rows (camlib.tools.results.DATA_KEYS)
    data = [
        {"name": "scene-text", "root_kind": source.text.kind, "n_images": len(pos), "caveat": ti.caveat},
        {
            "name": f"{ni.name} ({Path(ni.root).name}), negatives",
            "root_kind": source.negatives.kind,
            "n_images": len(keep),
            "caveat": f"{len(keep)} of {len(neg)} images (text-prone classes left out: "
            f"{len(excluded)}); {ni.caveat}",
        },
    ]
    return TextPhotos(
        files,
        np.asarray(files.labels),
        words + [empty] * len(keep),
        ignored + [empty] * len(keep),
        [Path(r.path).name for r in pos] + [neg.paths[i].name for i in keep],
        excluded,
        data,
    )


def _ratio_ci(num, den, seed: int = 0) -> Estimate:
    """``100 * sum(num) / sum(den)`` over photos with a bootstrap interval resampling PHOTOS (the words
    of one photo are not independent); a resample without any ``den`` counts as 0."""
    num, den = np.asarray(num, float), np.asarray(den, float)

    def ratio(idx: np.ndarray) -> float:
        i = idx.astype(np.int64)
        d = den[i].sum()
        return float(num[i].sum() / d) if d > 0 else 0.0

    return bootstrap_ci(np.arange(len(num)), ratio, seed=seed)


def _in_any(point: np.ndarray, boxes: np.ndarray) -> bool:
    b = np.asarray(boxes).reshape(-1, 4)
    x, y = point
    return bool(((b[:, 0] <= x) & (x <= b[:, 2]) & (b[:, 1] <= y) & (y <= b[:, 3])).any())


def _found(box: np.ndarray, words: np.ndarray, ignored: np.ndarray, thr: float) -> tuple[int, bool]:
    """(words matched, box set aside by the ignore rule) for one image's predicted ``box`` (0 or 1 rows)."""
    drop = ignored_predictions(box, words, ignored, thr)
    return match_boxes(box[~drop], words, thr), bool(drop.any())


@dataclass
class TextPhotoDetection:
    """The outcome of :func:`text_photo_detector`: per positive photo a row of counts (``per_photo``),
    the held-out decision values ``scores`` and ``maps`` of every image, the ``fold`` each image was
    tested in, the box ``fraction`` (and ``tuned_fraction``), per-fold ``best_C``, the rates with
    bootstrap CIs over photos (``rates``), the SVM's calls (``calls``) and the detector-mode scores
    (``detector``: boxes only where the SVM says text, negatives included)."""

    per_photo: list[dict]
    scores: np.ndarray
    maps: np.ndarray
    fold: np.ndarray
    boxes: list[np.ndarray]
    fraction: float
    tuned_fraction: float | None
    best_C: list[float]
    rates: dict[str, Estimate]
    calls: dict
    detector: dict
    centre_wh: list[tuple[float, float]]
    ious: tuple[float, ...]

    def totals(self) -> dict:
        """Sums of the per-photo counts."""
        keys = [
            k
            for k, v in self.per_photo[0].items()
            if isinstance(v, (int, np.integer)) and not isinstance(v, bool)
        ]
        out = {k: int(sum(r[k] for r in self.per_photo)) for k in keys}
        for k in (
            "pointing_hit",
            "centre_pointing_hit",
            "pointing_hit_any_word",
            "centre_pointing_hit_any_word",
        ):
            out[k] = int(sum(bool(r[k]) for r in self.per_photo if r[k] is not None))
        out["photos_with_readable_words"] = int(sum(r["words"] > 0 for r in self.per_photo))
        return out

    def table(self) -> str:
        """The per-photo counts as printable lines."""
        a, b = self.ious
        head = (
            f"{'photo':<11}{'words':>6}{'ignored':>8}{'SVM s':>7}  CAM found @{a}/@{b}  centre @{a}/@{b}  "
            "peak in word  centre in word"
        )
        lines = [head]
        for r in self.per_photo:
            pt = "-" if r["pointing_hit"] is None else ("yes" if r["pointing_hit"] else "no")
            cp = "-" if r["centre_pointing_hit"] is None else ("yes" if r["centre_pointing_hit"] else "no")
            lines.append(
                f"{r['photo']:<11}{r['words']:>6}{r['ignored_words']:>8}{r['svm_score']:>7.2f}  "
                f"{r[f'cam_found_iou_{a}']:>8} / {r[f'cam_found_iou_{b}']:<6}  {r[f'centre_found_iou_{a}']:>5} / "
                f"{r[f'centre_found_iou_{b}']:<4}  {pt:>11}  {cp:>13}"
            )
        t = self.totals()
        lines.append(
            f"{'total':<11}{t['words']:>6}{t['ignored_words']:>8}{'':>7}  {t[f'cam_found_iou_{a}']:>8} / "
            f"{t[f'cam_found_iou_{b}']:<6}  {t[f'centre_found_iou_{a}']:>5} / {t[f'centre_found_iou_{b}']:<4}  "
            f"{t['pointing_hit']:>7} of {t['photos_with_readable_words']}  "
            f"{t['centre_pointing_hit']:>8} of {t['photos_with_readable_words']}"
        )
        return "\n".join(lines)

    def summary(self) -> str:
        """The per-photo table, then the rates with their 95% intervals."""
        c = self.calls
        lines = [
            self.table(),
            "",
            f"SVM (leave one photo out, C per fold {sorted(set(self.best_C))}): {c['positives_called_text']} of "
            f"{c['n_positives']} held-out text photos called text, {c['negatives_called_text']} of "
            f"{c['n_negatives']} held-out negatives.",
        ]
        for k, e in self.rates.items():
            lines.append(f"{k:>36}: {e}")
        for k, r in self.detector.items():
            lines.append(
                f"{'detector (boxes where the SVM fires) ' + k:>36}: precision {r['tp']}/{r['n_pred']}, recall "
                f"{r['tp']}/{r['n_gt']} ({r['n_pred_ignored']} boxes set aside on 'ignore' words)"
            )
        return "\n".join(lines)

    def measured(self) -> str:
        """The result in words, from the counts."""
        t, (a, b), c = self.totals(), self.ious, self.calls
        n = t["photos_with_readable_words"]
        svm_ok = c["positives_called_text"] / c["n_positives"] > c["negatives_called_text"] / max(
            c["n_negatives"], 1
        )
        text = (
            f"Measured on {len(self.per_photo)} real photos ({t['words']} readable words): one CAM box per photo at "
            f"{self.fraction} of the max finds {_n(t[f'cam_found_iou_{a}'], 'word')} at IoU {a} and "
            f"{t[f'cam_found_iou_{b}']} at IoU {b}; the centre box {t[f'centre_found_iou_{a}']} and "
            f"{t[f'centre_found_iou_{b}']}. The CAM peak lies on a readable word in {t['pointing_hit']} of {n} "
            f"photos (the image centre: {t['centre_pointing_hit']} of {n}). The held-out SVMs call "
            f"{c['positives_called_text']} of {c['n_positives']} photos and {c['negatives_called_text']} of "
            f"{c['n_negatives']} negatives text"
        )
        names = {
            "cam_minus_centre_pointing": "CAM - centre, pointing (points)",
            **{
                f"cam_minus_centre_found_iou_{i}": f"CAM - centre, words found per photo at IoU {i}"
                for i in self.ious
            },
        }
        text += ". " + "; ".join(
            f"{names[k]}: {self.rates[k].value:+.2f} "
            f"[{self.rates[k].low:+.2f}, {self.rates[k].high:+.2f}] -> {v.upper()}"
            for k, v in self.verdicts().items()
        )
        if svm_ok and t["pointing_hit"] <= t["centre_pointing_hit"]:
            text += (
                ": they tell these photos from the negatives, but their CAMs do not point at the words, so what "
                "separates the two sets here is not (only) text: with 10 street photos against ordinary ImageNet "
                "photos, the scene itself differs"
            )
        return text + (
            ". With so few photos, only a difference of several photos would mean anything; the intervals "
            "above say how wide the uncertainty is. The paper shows pictures of this experiment and gives no "
            "numbers."
        )

    def verdicts(self) -> dict[str, str]:
        """Does the CAM beat the centre baseline on the same photos? ``verdict`` of each paired CAM - centre
        interval (pointing, in points; words found per photo, per IoU), claimed sign +1."""
        return {k: verdict(e, 1) for k, e in self.rates.items() if k.startswith("cam_minus_centre_")}

    def metrics(self) -> dict:
        """The results-file entry (rates as Estimate dicts)."""
        return {
            "box_fraction": self.fraction,
            "verdicts_cam_vs_centre": self.verdicts(),
            "box_fraction_rule": "paper rule, fixed in advance (not tuned on these photos)",
            "tuned_box_fraction": self.tuned_fraction,
            "tuned_box_fraction_source": None
            if self.tuned_fraction is None
            else "best F1 on the PROCEDURAL text validation images (not on these photos)",
            "per_photo": self.per_photo,
            "totals": self.totals(),
            "rates": {k: e.to_dict() for k, e in self.rates.items()},
            "svm_calls": self.calls,
            "best_C_per_fold": self.best_C,
            "detector": self.detector,
            "centre_box_wh_per_fold": [[float(w), float(h)] for w, h in self.centre_wh],
            "ignore_rule": (
                "mmocr: 'ignore' words are never misses; a box more than half inside one ignore word is "
                "set aside (neither hit nor false positive), and so is a box reaching the IoU threshold "
                "with an ignore word and no readable word"
            ),
            "protocol": (
                "leave one photo out: fold i tests photo i and the i-th tenth of the negatives with an SVM "
                "trained on the other photos and negatives; every photo gets one paper box of its text CAM "
                "(localization given that the photo holds text); detector: boxes only where the SVM says "
                "text, on photos and negatives"
            ),
        }


def _n(k: int, noun: str) -> str:
    return f"{k} {noun}" + ("" if k == 1 else "s")


def _folds(labels: np.ndarray, seed: int) -> np.ndarray:
    """Fold of each image: positive ``j`` (in order) is fold ``j``; the negatives, in a seeded random
    order, go round-robin to the folds, so each fold tests one positive and about ``1 / n_pos`` of them."""
    labels = np.asarray(labels)
    pos, neg = np.flatnonzero(labels == 1), np.flatnonzero(labels != 1)
    fold = np.empty(len(labels), np.int64)
    fold[pos] = np.arange(len(pos))
    fold[np.random.default_rng(seed).permutation(neg)] = np.arange(len(neg)) % len(pos)
    return fold


def text_photo_detector(
    cams: CAMPass,
    X: np.ndarray,
    photos: TextPhotos,
    *,
    svm: Mapping,
    fraction: float = 0.2,
    tuned_fraction: float | None = None,
    ious: tuple[float, float] = (0.5, 0.3),
    balanced: bool = True,
    seed: int = 0,
    layer_maps=None,
) -> TextPhotoDetection:
    """Fig. 11's weakly supervised text detector on real photos, leave one photo out.

    Fold ``i`` (:func:`_folds`): the linear SVM ``fit_linear_svm(X[train], labels[train], **svm)``
    (``balanced``: ``LinearSVC(class_weight="balanced")``, so the few positives weigh as much as the
    negatives) is trained on every image NOT in fold ``i`` and scores the images in it (one positive
    photo and its share of the negatives): decision value ``s``, text CAM ``M`` (:class:`CAMPass`,
    upsampled to the input, divided by its max). No image is both trained on and tested by one SVM.

    Per positive photo (localization given text): ONE paper box of ``M`` at ``fraction`` (the paper's
    rule, fixed in advance) and, when given, at ``tuned_fraction`` (chosen elsewhere); words found =
    :func:`~camlib.paper.discovery.match_boxes` at each IoU of ``ious`` after the ignore rule
    (:func:`~camlib.paper.discovery.ignored_predictions`); pointing = the peak of ``M`` inside a
    readable word box (photos without readable words: ``None``); baselines: a box of the mean readable
    word size of the fold's TRAINING photos at the image centre, and the centre point. Rates (%, 95%
    bootstrap over photos): recall = words found / words, pointing = hits / photos with words.
    Detector mode: boxes only where ``s > 0``, on the photos AND negatives
    (:func:`~camlib.paper.discovery.detection_scores` with the ignored words).

    ``layer_maps``: the feature-layer outputs of ``photos.files`` kept by ``cams.feature_maps`` (which also
    gives ``X``): each fold's CAMs then come from them (``cams.from_maps``) instead of a second pass of
    the network over the photos; the numbers are the same.
    """
    labels = np.asarray(photos.labels)
    X = np.asarray(X)
    if len(X) != len(labels):
        raise ValueError(
            f"{len(X)} feature rows for {len(labels)} images: extract the features of photos.files"
        )
    if photos.n_pos < 3:
        raise ValueError(f"leave-one-out needs at least 3 text photos, got {photos.n_pos}")
    fold = _folds(labels, seed)
    svm = dict(svm)
    if balanced and "estimator" not in svm:
        from sklearn.svm import LinearSVC

        svm["estimator"] = LinearSVC(
            dual="auto", max_iter=5000, random_state=svm.get("seed", 0), class_weight="balanced"
        )
    H, W = cams.size
    scores = np.zeros(len(labels))
    maps = np.zeros((len(labels), H, W), np.float32)
    best_C, centre_wh = [], []
    for f in range(photos.n_pos):
        test = np.flatnonzero(fold == f)
        train = np.flatnonzero(fold != f)
        probe = fit_linear_svm(X[train], labels[train], **svm)
        if layer_maps is not None:
            s, m = cams.from_maps(probe, layer_maps[torch.as_tensor(test)], 1)
        else:
            s, m = cams(probe, Subset(photos.files, test.tolist()), 1)
        scores[test], maps[test] = s[:, 1], m
        best_C.append(float(probe.best_C))
        wb = np.concatenate([photos.words[i] for i in train if labels[i] == 1] or [np.zeros((0, 4))])
        centre_wh.append(
            (float((wb[:, 2] - wb[:, 0] + 1).mean()), float((wb[:, 3] - wb[:, 1] + 1).mean()))
            if len(wb)
            else (W / 4, H / 10)
        )
    peaks = cam_peaks(maps)
    centre = centre_points(1, (H, W))[0]
    pos = np.flatnonzero(labels == 1)
    boxes = detect_boxes(maps, np.ones(len(labels), bool), fraction)
    tuned = (
        detect_boxes(maps[pos], np.ones(len(pos), bool), tuned_fraction)
        if tuned_fraction is not None
        else None
    )
    rows = []
    for j, i in enumerate(pos):
        words, ign = photos.words[i], photos.ignored[i]
        cbox = centre_box((H, W), centre_wh[fold[i]])[None]
        row = {
            "photo": photos.names[i],
            "words": len(words),
            "ignored_words": len(ign),
            "svm_score": float(scores[i]),
            "called_text": bool(scores[i] > 0),
            "cam_box": boxes[i][0].tolist() if len(boxes[i]) else None,
            "cam_peak": peaks[i].tolist(),
        }
        for thr in ious:
            row[f"cam_found_iou_{thr}"], row[f"cam_box_set_aside_iou_{thr}"] = _found(
                boxes[i], words, ign, thr
            )
            row[f"centre_found_iou_{thr}"] = _found(cbox, words, ign, thr)[0]
            if tuned is not None:
                row[f"tuned_found_iou_{thr}"] = _found(tuned[j], words, ign, thr)[0]
        row["pointing_hit"] = _in_any(peaks[i], words) if len(words) else None
        row["centre_pointing_hit"] = _in_any(centre, words) if len(words) else None
        row["pointing_hit_any_word"] = _in_any(peaks[i], np.r_[words.reshape(-1, 4), ign.reshape(-1, 4)])
        row["centre_pointing_hit_any_word"] = _in_any(centre, np.r_[words.reshape(-1, 4), ign.reshape(-1, 4)])
        rows.append(row)
    n_words = [r["words"] for r in rows]
    rates: dict[str, Estimate] = {}
    for thr in ious:
        for who in ("cam", "centre") + (("tuned",) if tuned is not None else ()):
            rates[f"{who}_recall_iou_{thr}"] = _ratio_ci(
                [r[f"{who}_found_iou_{thr}"] for r in rows], n_words, seed
            )
    with_words = [r for r in rows if r["words"]]
    if with_words:
        rates["cam_pointing"] = bootstrap_ci([r["pointing_hit"] for r in with_words], seed=seed)
        rates["centre_pointing"] = bootstrap_ci([r["centre_pointing_hit"] for r in with_words], seed=seed)
        # CAM - centre on the SAME photos (paired): points of pointing rate, words found per photo
        rates["cam_minus_centre_pointing"] = paired_diff_ci(
            [r["pointing_hit"] for r in with_words], [r["centre_pointing_hit"] for r in with_words], seed=seed
        )
    for thr in ious:
        rates[f"cam_minus_centre_found_iou_{thr}"] = paired_diff_ci(
            [r[f"cam_found_iou_{thr}"] for r in rows],
            [r[f"centre_found_iou_{thr}"] for r in rows],
            scale=1.0,
            seed=seed,
        )
    fire = scores > 0
    neg = labels != 1
    rates["svm_positives_called_text"] = bootstrap_ci(fire[pos], seed=seed)
    rates["svm_negatives_called_text"] = bootstrap_ci(fire[neg], seed=seed)
    calls = {
        "n_positives": int(len(pos)),
        "positives_called_text": int(fire[pos].sum()),
        "n_negatives": int(neg.sum()),
        "negatives_called_text": int(fire[neg].sum()),
    }
    fired = [b if f else np.zeros((0, 4), np.int64) for b, f in zip(boxes, fire, strict=True)]
    detector = {
        f"iou_{thr}": detection_scores(fired, photos.words, thr, ignored=photos.ignored) for thr in ious
    }
    return TextPhotoDetection(
        rows,
        scores,
        maps,
        fold,
        boxes,
        float(fraction),
        tuned_fraction,
        best_C,
        rates,
        calls,
        detector,
        centre_wh,
        tuple(ious),
    )


def plot_text_photos(result: TextPhotoDetection, photos: TextPhotos, ncols: int = 5):
    """Fig. 11 on the real photos: each text photo with its held-out text CAM, the CAM box (green), the
    readable words (red) and the CAM peak (cross), titled with the words found at the first IoU."""
    from camlib.core.viz import plot_cam_grid

    pos = np.flatnonzero(np.asarray(photos.labels) == 1)
    a = result.ious[0]
    titles = [f"{r['photo']}: {r[f'cam_found_iou_{a}']}/{r['words']} @{a}" for r in result.per_photo]
    return plot_cam_grid(
        [photos.files.image(int(i)) for i in pos],
        result.maps[pos],
        titles,
        pred_boxes=[result.boxes[i] for i in pos],
        gt_boxes=[photos.words[i] for i in pos],
        ncols=ncols,
        peaks=cam_peaks(result.maps[pos]),
    )
