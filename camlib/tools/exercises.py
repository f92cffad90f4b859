"""Self-checking exercises: ``cl.check("02.1", globals())`` after each exercise of a notebook.

Each exercise of a notebook's "Exercises" section has ONE entry in :data:`EXERCISES` (id
``"<notebook number>.<exercise number>"``): the names its solution leaves in the notebook's namespace
(``needs``), what a right result looks like (``expect``), a test of those values, and a hint. The
notebook's check cell passes its namespace; :func:`check` prints one line and returns

- ``True`` (``✓``) when the values pass,
- ``False`` (``✗`` + the first problem found + the hint) when they do not,
- ``None`` (``…``) when a needed name is not defined yet: the solution has not run (a student copy,
  another profile, or an exercise switched off by its ``RUN_EXERCISE_N`` flag).

The tests are ranges and relations that follow from the exercise's setting (percentages in
[0, 100], above the chance level of the task, the same number as the notebook's own cell for the
same setting, a second-best class that is not the best), never a number copied from one run: a
re-run with another seed must still pass. ``tests/test_exercises.py`` checks every entry against
values shaped as the solution leaves them, that every exercise of every notebook has its check cell,
and that every solution cell is tagged ``solution`` (stripped by ``make student``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["EXERCISES", "Exercise", "check", "outcome"]

PASS, FAIL, MISSING = "✓", "✗", "…"


class _Wrong(Exception):
    """A value failed a test; the message says which and how."""


class _Missing(KeyError):
    """A name the test reads is not defined in the notebook (yet)."""


class _Namespace(dict):
    """The notebook's names; reading an undefined one raises :class:`_Missing` (``.get`` does not)."""

    def __missing__(self, name: str) -> Any:
        raise _Missing(name)


@dataclass(frozen=True)
class Exercise:
    """One exercise: the names it reads, what a right result is, the test (raises ``_Wrong``), a hint."""

    id: str
    needs: tuple[str, ...]
    expect: str
    test: Callable[[Mapping[str, Any]], None]
    hint: str


def _pct(value: Any, what: str, above: float = 0.0) -> float:
    """``value`` as a percentage in [0, 100] and, when ``above`` is given (a chance level), above it."""
    v = float(value)
    if not math.isfinite(v) or not 0.0 <= v <= 100.0:
        raise _Wrong(f"{what} is {v!r}, not a percentage in [0, 100]")
    if above > 0 and v <= above:
        raise _Wrong(f"{what} is {v:.1f}%, not above chance ({above:.1f}%)")
    return v


def _that(cond: bool, message: str) -> None:
    if not cond:
        raise _Wrong(message)


def _sweep(res: Any, fractions: tuple[float, ...], key: str = "gt_known_loc_acc") -> None:
    loc = res["localization"]
    _that(
        {round(float(f), 6) for f in loc} == {round(f, 6) for f in fractions},
        f"thresholds {sorted(loc)} evaluated, expected {list(fractions)}",
    )
    for f in fractions:
        _pct(loc[f][key], f"{key} at {f}")


def _e01_1(ns):
    gt, ref = ns["gt_known"], ns["ilsvrc"]["localization"][0.2]["gt_known_loc_acc"]
    _that(sorted(gt) == [0.1, 0.2, 0.6], f"thresholds {sorted(gt)}, expected [0.1, 0.2, 0.6]")
    for f, v in gt.items():
        _pct(v, f"GT-known at {f}")
    _that(
        abs(gt[0.2] - ref) < 1e-6,
        f"GT-known at 0.2 is {gt[0.2]:.1f}%, but section 5 measured {ref:.1f}% "
        "with the same protocol: the two must agree",
    )


def _e01_2(ns):
    r = ns["r"]
    _that(
        r is ns["explained"]["coffee"],
        "`r` is not explained['coffee']: the exercise asks for the coffee photo",
    )
    _that(
        len(r["names"]) >= 2 and r["names"][0] != r["names"][1],
        "need the two best classes, and two different ones",
    )
    _that(float(r["probs"][0]) >= float(r["probs"][1]), "the 2nd class has a higher probability than the 1st")


def _e01_3(ns):
    ev = ns["gmp_eval"]
    _pct(ev["classification"]["top1_acc"], "GMP accuracy", above=100.0 / len(ns["CLASSES"]))
    _pct(ev["localization"][0.2]["gt_known_loc_acc"], "GMP GT-known at 0.2")


def _e02_1(ns):
    _sweep(ns["res"], (0.1, 0.35, 0.6))


def _e02_2(ns):
    res, swapped = ns["res"], ns["swapped"]
    _that(
        type(swapped.pool).__name__ == "AdaptiveMaxPool2d",
        f"swapped.pool is {type(swapped.pool).__name__}, expected nn.AdaptiveMaxPool2d(1)",
    )
    _pct(res["classification"]["top1_acc"], "accuracy with max pooling swapped in")
    _that(res["head"]["pool"] is not None, "res['head'] does not say which pooling CAM found")


def _e02_3(ns):
    classes, m = list(ns["classes"]), ns["m"]
    n = len(classes) // 2
    _that(
        n > 0 and len(classes) == 2 * n, "classes should hold the best, then the 2nd-best class of each image"
    )
    _that(
        all(a != b for a, b in zip(classes[:n], classes[n:], strict=True)),
        "a 2nd-best class equals the best one",
    )
    _that(len(m) == len(classes), f"{len(m)} maps for {len(classes)} classes")


def _e03_1(ns):
    ex1, studies, run = ns["EX1"], ns["STUDIES"], ns["CAM_RUN"]
    _that(set(ex1) == set(studies), "one result per set: {key: heuristic_held_out(...) for key in STUDIES}")
    for key, h in ex1.items():
        _pct(getattr(h["chosen_err_B"], "value", h["chosen_err_B"]), f"{key}: top-5 loc. error on half B")
        _that(
            h["n_choose"] + h["n_report"] == h["n"] and abs(h["n_choose"] - h["n_report"]) <= 1,
            f"{key}: halves A and B must split the images in two",
        )
        _that(
            h["chosen"]["loose"] <= h["chosen"]["tight"], f"{key}: the loose threshold exceeds the tight one"
        )
        ref = studies[key].results[run]["heuristic"]["top5_loc_err"]
        _that(
            abs(h["fixed_err_all"] - ref) < 1e-6,
            f"{key}: the fixed 0.4/0.2 heuristic over all images gives {h['fixed_err_all']:.2f}%, but the "
            f"protocol run measured {ref:.2f}% with the same boxes: the two must agree",
        )


def _e03_2(ns):
    raw, blur = list(ns["hits_raw"]), list(ns["hits_blur"])
    _that(len(raw) == len(blur) > 0, "hits_raw and hits_blur must score the same images")
    _that(all(isinstance(bool(h), bool) for h in raw + blur), "hits must be True/False per image")


def _svm(ns, key="r", n_classes=None):
    n = n_classes if n_classes is not None else len(ns["CLASSES"])
    return _pct(ns[key]["acc"], "SVM test accuracy", above=100.0 / n)


def _e04_1(ns):
    boxes = ns["at02"]
    _that(
        len(boxes["train"]) == len(ns["train"]) and len(boxes["test"]) == len(ns["test"]),
        "one box per image of each split",
    )
    _pct(ns["r"]["acc"], "SVM test accuracy on the crops at 0.2")  # loose crops can fall to chance: no floor


def _e04_2(ns):
    _that(set(ns["settings"]) == {"full", "cam_crop", "gt_crop"}, "refit all three settings")
    _svm(ns)


def _e04_3(ns):
    half = ns["half"]
    _that(0 < int(half.sum()) < len(half), "half must keep some training images, not all")
    _svm(ns)


def _e05_1(ns):
    _svm(ns, n_classes=len(ns["t"].classes))


def _e05_2(ns):
    _that(ns["Xtr"].shape[0] == len(ns["t"].y_train), "one feature row per training image")
    _svm(ns, n_classes=len(ns["t"].classes))


def _e05_3(ns):
    maps = ns["maps"]
    _that(
        tuple(maps.shape[1:]) == (ns["SIZE"], ns["SIZE"]),
        f"maps of shape {tuple(maps.shape)}, expected "
        f"(n, {ns['SIZE']}, {ns['SIZE']}): upsample to the image size",
    )
    _that(bool(((maps >= 0) & (maps <= 1)).all()), "postprocessed maps should lie in [0, 1]")


def _e06_1(ns):
    _pct(ns["r"]["precision"], "box precision")
    _pct(ns["r"]["recall"], "box recall")
    _that(len(ns["fire_last"]) == len(ns["m_last"]), "one detection decision per test image")


def _e06_2(ns):
    r = ns["r"]
    _pct(r["precision_at_k"], "precision at 3")
    _that(-1.0 <= float(r["spearman"]) <= 1.0, f"Spearman {r['spearman']} outside [-1, 1]")


def _e06_3(ns):
    _pct(ns["ap"], "average precision")


def _e07_1(ns):
    import torch

    models, i, test_set, train = ns["models"], ns["i"], ns["test_set"], ns["train_set"]
    yes = list(train.answers.tokens).index("yes")
    x, (co, sh) = test_set.image_tensor([i]), (ns["co"], ns["sh"])
    qs = [torch.from_numpy(train.vocab.bow([f"is there a {co[k]} {sh[k]}?"])) for k in (0, 1)]
    same = {name: torch.equal(*(m.cam(x, q, answers=[yes]).maps for q in qs)) for name, m in models.items()}
    paper, gated = same.get("paper_model"), same.get("gated_not_in_paper")
    _that(paper is not None and gated is not None, "models must hold 'paper_model' and 'gated_not_in_paper'")
    _that(
        paper,
        "the paper model's 'yes' maps differ between the questions: the question should enter it only "
        "as an offset",
    )
    _that(not gated, "the gated model's 'yes' maps are identical: the gate should use the question")


def _e07_2(ns):
    _pct(ns["acc"]["overall"], "fine-tuned accuracy")
    _pct(ns["pt"]["cam_answer"], "pointing of the true answer")


def _e07_3(ns):
    shares = ns["shares"]
    _that(len(shares) > 0 and all(len(v) for v in shares.values()), "one list of shares per question type")
    _that(all(0.0 <= float(s) <= 1.0 for v in shares.values() for s in v), "a share lies outside [0, 1]")


def _in_box(d):
    _pct(d["top"]["value"], "top units' in-box rate")
    _pct(d["random"]["value"], "random units' in-box rate")
    _that(
        d["diff"]["low"] <= d["diff"]["value"] <= d["diff"]["high"],
        "the difference lies outside its interval",
    )
    _that(d["n_pairs"] > 0, "no image scored")


def _e08_1(ns):
    if ns.get("REAL"):
        _in_box(ns["d"])
    else:
        rate = ns["hits95"].rate(ns["rand_units"])
        _that(0.0 <= float(rate) <= 1.0, f"part-hit rate {rate} outside [0, 1]")


def _e08_2(ns):
    W = ns["W"]
    for name, _units, w in ns["neg_rows"]:
        c = ns["CLASSES"].index(name.split()[0])
        _that(
            min(w) == float(W[c].min()),
            f"{name}: the most negative weight of the class is not among the units",
        )


def _e08_3(ns):
    _that(0.0 <= float(ns["hits_g"].rate(ns["top_g"])) <= 1.0, "part-hit rate outside [0, 1]")


def _e08_4(ns):
    _in_box(ns["d"])


def _e09_1(ns):
    r = ns["r"]
    _that(0 < r.frames <= 32, f"{r.frames} frames: the exercise reads the first 32")
    _that(0 <= ns["V"].label_switches(r.records) < r.frames, "switches must be fewer than frames")


def _e09_2(ns):
    _that(ns["r"].fps > 0, "frames per second must be positive")


def _e09_3(ns):
    _that(ns["r"].frames > 0 and len(ns["r"].records) == ns["r"].frames, "one record per frame of your clip")


_GT = "GT-known localization accuracies (%)"
EXERCISES: dict[str, Exercise] = {
    e.id: e
    for e in [
        Exercise(
            "01.1",
            ("gt_known", "ilsvrc"),
            f"`gt_known`: {{0.1: ..., 0.2: ..., 0.6: ...}}, {_GT}; at 0.2 the number of section 5",
            _e01_1,
            "evaluate as section 5 does, with fractions=(0.1, 0.2, 0.6)",
        ),
        Exercise(
            "01.2",
            ("r", "explained"),
            "`r = explained['coffee']`: its two best classes, the 2nd less probable",
            _e01_2,
            "take r['maps'][:2], r['names'][:2] of the coffee photo",
        ),
        Exercise(
            "01.3",
            ("gmp_eval", "CLASSES"),
            "`gmp_eval`: evaluate_localization of SmallGAPNet(pool='max'), accuracy above chance",
            _e01_3,
            "train with the same `config` as section 4, then evaluate as there",
        ),
        Exercise(
            "02.1",
            ("res",),
            f"`res`: localization_sweep at [0.1, 0.35, 0.6], {_GT}",
            _e02_1,
            "localization_sweep(model, test_set, [0.1, 0.35, 0.6])",
        ),
        Exercise(
            "02.2",
            ("res", "swapped"),
            "`swapped`: a copy with nn.AdaptiveMaxPool2d(1); `res` its sweep",
            _e02_2,
            "copy.deepcopy the GAP network, set .pool = nn.AdaptiveMaxPool2d(1), sweep at [0.2]",
        ),
        Exercise(
            "02.3",
            ("classes", "m"),
            "`classes`: best then 2nd-best class per image; `m`: their maps",
            _e02_3,
            "model(x).topk(2, dim=1).indices gives both",
        ),
        Exercise(
            "03.1",
            ("EX1", "STUDIES", "CAM_RUN"),
            "`EX1`: per set, tight/loose chosen on half A and the top-5 loc. error on half B (%); "
            "the fixed choice over all images = the protocol run's heuristic number",
            _e03_1,
            "rec.heuristic_held_out(st.results[CAM_RUN], seed=SEED) for each study",
        ),
        Exercise(
            "03.2",
            ("hits_raw", "hits_blur"),
            "hits of the raw and the blurred gradient on the same images",
            _e03_2,
            "box paper_box(m, 0.2) and paper_box(gaussian_filter(m, 8), 0.2) of each image",
        ),
        Exercise(
            "04.1",
            ("r", "at02", "train", "test"),
            "`r`: the SVM on CAM crops at 0.2, a test accuracy (%)",
            _e04_1,
            "use detector.boxes_at[split][0.2] as the crops",
        ),
        Exercise(
            "04.2",
            ("r", "settings", "CLASSES"),
            "`r`: an SVM with C fixed, accuracy above chance",
            _e04_2,
            "pass Cs=(0.1,) to PR.linear_probe",
        ),
        Exercise(
            "04.3",
            ("r", "half", "CLASSES"),
            "`r`: the SVM on half the training images, above chance",
            _e04_3,
            "index the training features and labels with a boolean mask `half`",
        ),
        Exercise(
            "05.1",
            ("r", "t"),
            "`r`: a linear probe on max-pooled cam_conv features, above chance",
            _e05_1,
            "FT.extract_features(net, x, 'cam_conv', pool='max')",
        ),
        Exercise(
            "05.2",
            ("r", "t", "Xtr"),
            "`r`: a linear probe on the pooled `features` block, above chance",
            _e05_2,
            "FT.extract_features(net, x, 'features', pool='avg')",
        ),
        Exercise(
            "05.3",
            ("maps", "SIZE"),
            "`maps`: the face SVM's CAMs at the image size, in [0, 1]",
            _e05_3,
            "cl.postprocess(PR.svm_cam(...).maps, cl.CAMOptions(size=(SIZE, SIZE)))",
        ),
        Exercise(
            "06.1",
            ("r", "fire_last", "m_last"),
            "`r`: box precision and recall of the last-layer detector",
            _e06_1,
            "D.detection_scores(D.detect_boxes(maps, fires, fraction), true boxes)",
        ),
        Exercise(
            "06.2",
            ("r",),
            "`r`: precision at 3 and Spearman of the min_cover 0.1 ranking",
            _e06_2,
            "scenes.ranking_at(..., min_cover=0.1), then D.ranking_scores",
        ),
        Exercise(
            "06.3",
            ("ap",),
            "`ap`: the unmined detector's average precision (%)",
            _e06_3,
            "average_precision_score on the test positives and negatives, times 100",
        ),
        Exercise(
            "07.1",
            ("models", "i", "co", "sh", "test_set", "train_set"),
            "the baseline's 'yes' map is the same for both questions, the gated model's is not",
            _e07_1,
            "the baseline adds the question after pooling: can it change WHERE the map is high?",
        ),
        Exercise(
            "07.2",
            ("acc", "pt"),
            "`acc`, `pt`: accuracy and pointing of the fine-tuned copy",
            _e07_2,
            "accuracy_by_group and pointing_summary, as in the notebook's cells above",
        ),
        Exercise(
            "07.3",
            ("shares",),
            "`shares`: per question type, |offset| / (|offset| + |image part|)",
            _e07_3,
            "use res.question_offsets and res.image_scores of the predicted answer",
        ),
        Exercise(
            "08.1",
            ("REAL",),
            "real photos: `d` the in-box study at another REL; fallback: `hits95`",
            _e08_1,
            "R.in_box_study(..., rel=0.3) (real) or U.scan_units(..., quantile=0.95) (fallback)",
        ),
        Exercise(
            "08.2",
            ("neg_rows", "W", "CLASSES"),
            "fallback run (no ILSVRC photos) only: `neg_rows`, the most negative units of each class",
            _e08_2,
            "U.rank_units(W, class_index, TOP_UNITS, lowest=True)",
        ),
        Exercise(
            "08.3",
            ("hits_g", "top_g"),
            "fallback run only, RUN_EXERCISE_3 = True: `hits_g`, part hits of the GMP network's top units",
            _e08_3,
            "set RUN_EXERCISE_3 = True, train with pool='max', scan and rank as before",
        ),
        Exercise(
            "08.4",
            ("d",),
            "`d`: the in-box study with the top 10 units",
            _e08_4,
            "R.in_box_study(..., top_units=10, n_random=10)",
        ),
        Exercise(
            "09.1",
            ("r", "V"),
            "`r`: the last smoothing's result on the first 32 frames",
            _e09_1,
            "V.process_video(..., smooth=s, max_frames=32), then V.label_switches(r.records)",
        ),
        Exercise(
            "09.2",
            ("r",),
            "`r`: a run with a measured frames-per-second",
            _e09_2,
            "V.process_video(..., batch_size=bs, max_frames=16); r.fps",
        ),
        Exercise(
            "09.3",
            ("r",),
            "`r`: your clip processed, one record per frame",
            _e09_3,
            "VD.synthesize_clip(path, names, ...), then V.process_video on it",
        ),
    ]
}
ID = re.compile(r"^\d\d\.\d+$")  #: an exercise id: notebook number, dot, exercise number


def outcome(exercise: str, namespace: Mapping[str, Any]) -> tuple[bool | None, str]:
    """``(passed, message)`` of one exercise on ``namespace``; ``passed`` None when a needed name is missing."""
    ex = EXERCISES.get(exercise)
    if ex is None:
        raise KeyError(f"no exercise {exercise!r}; known: {', '.join(EXERCISES)}")
    missing = [n for n in ex.needs if n not in namespace]
    try:
        if missing:
            raise _Missing(*missing)
        ex.test(_Namespace(namespace))
    except _Missing as exc:
        names = ", ".join(f"`{n}`" for n in exc.args)
        return None, f"{MISSING} exercise {ex.id}: not checked yet: define {names} (expected: {ex.expect})"
    except _Wrong as exc:
        return False, f"{FAIL} exercise {ex.id}: {exc}. Hint: {ex.hint}"
    except (KeyError, AttributeError, TypeError, IndexError, ValueError) as exc:
        return False, (
            f"{FAIL} exercise {ex.id}: the result does not have the expected form ({type(exc).__name__}: "
            f"{exc}); expected: {ex.expect}. Hint: {ex.hint}"
        )
    return True, f"{PASS} exercise {ex.id}: {ex.expect}"


def check(exercise: str, namespace: Mapping[str, Any] | None = None, **values: Any) -> bool | None:
    """Print whether the exercise's result is in the expected range (a hint when not); True / False / None.

    ``namespace``: the notebook's ``globals()``; ``values`` override or add names.
    """
    ns = {**(namespace or {}), **values}
    passed, message = outcome(exercise, ns)
    print(message)
    return passed
