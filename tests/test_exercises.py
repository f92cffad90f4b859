"""Self-checking exercises: every solution cell tagged, every exercise checked, every check tested.

A SOLUTION CELL is a code cell whose first line is a comment ``# Exercise N`` (any cell of a notebook,
not only under "Exercises"); it must be tagged ``solution`` so that ``make student`` strips it. A CHECK
CELL is a code cell calling ``cl.check("NN.k", ...)``, tagged ``check`` and never ``solution`` (students
keep it). Each numbered exercise of a notebook's "## Exercises" cell (``1. **Title.**``) has exactly one
check cell, after its solution cells, unless it is listed in :data:`OPEN` with the reason.
"""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from camlib.tools import exercises as E
from camlib.tools.notebook_tools import read

from .conftest import REPO

NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
SOLUTION = re.compile(r"^#\s*Exercise\s+(\d+)")
CHECK = re.compile(r"""cl\.check\(\s*["'](\d\d)\.(\d+)["']""")
ITEM = re.compile(r"^(\d+)\.\s+\*\*", re.M)
#: exercises without a solution and a check yet, with the reason (keep this list short and honest)
OPEN: dict[str, str] = {}


def _tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def _exercise_items(nb) -> list[int]:
    heads = [
        c for c in nb.cells if c.cell_type == "markdown" and re.search(r"^##\s+Exercises", c.source, re.M)
    ]
    assert len(heads) == 1, "one '## Exercises' markdown cell per notebook"
    return [int(n) for n in ITEM.findall(heads[0].source)]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem[:2])
def test_every_solution_cell_is_tagged(path):
    nb = read(path)
    untagged = [
        i
        for i, c in enumerate(nb.cells)
        if c.cell_type == "code" and SOLUTION.match(c.source.lstrip()) and "solution" not in _tags(c)
    ]
    assert not untagged, (
        f"{path.name}: cells {untagged} start with '# Exercise N' but are not tagged 'solution'"
    )
    checks_as_solutions = [
        i for i, c in enumerate(nb.cells) if CHECK.search(c.source) and "solution" in _tags(c)
    ]
    assert not checks_as_solutions, f"{path.name}: check cells {checks_as_solutions} are tagged 'solution'"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem[:2])
def test_every_exercise_ends_with_its_check_cell(path):
    nb, num = read(path), path.name[:2]
    items = _exercise_items(nb)
    assert items == list(range(1, len(items) + 1)), f"{path.name}: exercises numbered {items}"
    checks = [
        (i, f"{m.group(1)}.{m.group(2)}")
        for i, c in enumerate(nb.cells)
        if c.cell_type == "code"
        for m in [CHECK.search(c.source)]
        if m
    ]
    ids = [e for _, e in checks]
    want = [f"{num}.{k}" for k in items if f"{num}.{k}" not in OPEN]
    assert ids == want, f"{path.name}: check cells for {ids}, expected one per exercise, in order: {want}"
    for i, ex in checks:
        assert "check" in _tags(nb.cells[i]), f"{path.name}: the check cell of {ex} is not tagged 'check'"
        assert ex in E.EXERCISES, (
            f"{path.name}: cl.check({ex!r}) has no entry in camlib.tools.exercises.EXERCISES"
        )
        k = int(ex.split(".")[1])
        sols = [
            j
            for j, c in enumerate(nb.cells)
            if c.cell_type == "code" and (m := SOLUTION.match(c.source.lstrip())) and int(m.group(1)) == k
        ]
        assert sols, (
            f"{path.name}: exercise {ex} has a check but no solution cell ('# Exercise {k}' first line)"
        )
        assert max(sols) < i, f"{path.name}: the check of {ex} comes before its solution"


def test_every_registered_exercise_is_in_its_notebook():
    sources = {p.name[:2]: p.read_text(encoding="utf-8") for p in NOTEBOOKS}
    for ex in E.EXERCISES:
        assert E.ID.match(ex)
        assert f'cl.check(\\"{ex}\\"' in sources[ex[:2]], (
            f"exercise {ex} is registered but no notebook checks it"
        )
    assert not set(OPEN) & set(E.EXERCISES)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem[:2])
def test_learning_goals_and_instructor_notes(path):
    nb = read(path)
    goals = [
        i
        for i, c in enumerate(nb.cells)
        if c.cell_type == "markdown" and c.source.startswith("**Learning goals.**")
    ]
    assert goals and goals[0] <= 2, f"{path.name}: a '**Learning goals.**' markdown cell at the top"
    assert len(nb.cells[goals[0]].source.strip().splitlines()) == 2, "learning goals in two lines"
    for c in nb.cells:
        if "instructor" in _tags(c):
            assert c.cell_type == "markdown"
            # a note explains; the numbers are in the outputs and the results table, which a re-run moves
            assert not re.search(r"\d+\.\d+\s*%|\d+\s*%", c.source), (
                f"{path.name}: a number in an instructor note"
            )


# --------------------------------------------------------------------------- the checks themselves


def _sweep(fractions, value=40.0):
    return {
        "localization": {f: {"gt_known_loc_acc": value} for f in fractions},
        "classification": {"top1_acc": 55.0},
        "head": {"pool": "max"},
    }


def _in_box(diff=(4.0, -1.0, 9.0)):
    return {
        "top": {"value": 60.0},
        "random": {"value": 56.0},
        "n_pairs": 120,
        "diff": {"value": diff[0], "low": diff[1], "high": diff[2]},
    }


class _Hits:
    def __init__(self, rate):
        self._rate = rate

    def rate(self, units):
        return self._rate


def _video(frames=32, fps=12.0, switches=3):
    return SimpleNamespace(frames=frames, fps=fps, records=[{"class": i % 2} for i in range(frames)])


def _heuristic_ex(fixed_all=37.5):
    from camlib.evaluation.stats import Estimate

    return {"n": 1000, "n_choose": 500, "n_report": 500, "chosen": {"tight": 0.45, "loose": 0.15},
            "chosen_err_B": Estimate(36.2, 32.0, 40.4, 500), "fixed_err_all": fixed_all}  # fmt: skip


def _study(heuristic_err):
    return SimpleNamespace(results={"net/cam": {"heuristic": {"top5_loc_err": heuristic_err}}})


CLASSES = ["house", "tree", "car", "flower", "snowman", "mushroom"]
W = np.array([[0.5, -0.9, 0.1, -0.2], [0.3, 0.2, -0.4, 0.0]] + [[0.0] * 4] * 4)
coffee = {"names": ["espresso", "cup"], "probs": [0.6, 0.2]}
V = SimpleNamespace(
    label_switches=lambda records: sum(a != b for a, b in zip(records[:-1], records[1:], strict=True))
)

#: exercise -> (a namespace shaped as the solution leaves it, a namespace with one thing wrong)
CASES = {
    "01.1": (
        {"gt_known": {0.1: 20.0, 0.2: 33.0, 0.6: 25.0}, "ilsvrc": _sweep((0.2,), 33.0)},
        {"gt_known": {0.1: 20.0, 0.2: 31.0, 0.6: 25.0}, "ilsvrc": _sweep((0.2,), 33.0)},
    ),
    "01.2": (
        {"r": coffee, "explained": {"coffee": coffee}},
        {"r": {"names": ["cat", "dog"], "probs": [0.5, 0.1]}, "explained": {"coffee": coffee}},
    ),
    "01.3": (
        {"gmp_eval": _sweep((0.2,)), "CLASSES": CLASSES},
        {"gmp_eval": {**_sweep((0.2,)), "classification": {"top1_acc": 10.0}}, "CLASSES": CLASSES},
    ),
    "02.1": ({"res": _sweep((0.1, 0.35, 0.6))}, {"res": _sweep((0.2,))}),
    "02.2": (
        {"res": _sweep((0.2,)), "swapped": SimpleNamespace(pool=type("AdaptiveMaxPool2d", (), {})())},
        {"res": _sweep((0.2,)), "swapped": SimpleNamespace(pool=type("AdaptiveAvgPool2d", (), {})())},
    ),
    "02.3": (
        {"classes": np.array([0, 1, 2, 3, 2, 0]), "m": np.zeros((6, 4, 4))},
        {"classes": np.array([0, 1, 2, 0, 1, 5]), "m": np.zeros((6, 4, 4))},
    ),
    "03.1": (
        {"EX1": {"1k": _heuristic_ex()}, "STUDIES": {"1k": _study(37.5)}, "CAM_RUN": "net/cam"},
        {"EX1": {"1k": _heuristic_ex()}, "STUDIES": {"1k": _study(36.0)}, "CAM_RUN": "net/cam"},
    ),
    "03.2": (
        {"hits_raw": [True, False] * 6, "hits_blur": [True] * 12},
        {"hits_raw": [True] * 12, "hits_blur": [True] * 11},
    ),
    "04.1": (
        {
            "r": {"acc": 22.8},
            "at02": {"train": [0] * 5, "test": [0] * 3},
            "train": [0] * 5,
            "test": [0] * 3,
            "CLASSES": list(range(10)),
        },
        {
            "r": {"acc": 22.8},
            "at02": {"train": [0] * 4, "test": [0] * 3},
            "train": [0] * 5,
            "test": [0] * 3,
            "CLASSES": list(range(10)),
        },
    ),
    "04.2": (
        {
            "r": {"acc": 40.0},
            "settings": {"full": 0, "cam_crop": 0, "gt_crop": 0},
            "CLASSES": list(range(10)),
        },
        {
            "r": {"acc": 140.0},
            "settings": {"full": 0, "cam_crop": 0, "gt_crop": 0},
            "CLASSES": list(range(10)),
        },
    ),
    "04.3": (
        {"r": {"acc": 30.0}, "half": np.arange(8) % 2 == 0, "CLASSES": list(range(10))},
        {"r": {"acc": 30.0}, "half": np.ones(8, bool), "CLASSES": list(range(10))},
    ),
    "05.1": (
        {"r": {"acc": 70.0}, "t": SimpleNamespace(classes=list(range(6)))},
        {"r": {"acc": 12.0}, "t": SimpleNamespace(classes=list(range(6)))},
    ),
    "05.2": (
        {
            "r": {"acc": 70.0},
            "Xtr": np.zeros((30, 64)),
            "t": SimpleNamespace(classes=[0, 1], y_train=[0] * 30),
        },
        {
            "r": {"acc": 70.0},
            "Xtr": np.zeros((29, 64)),
            "t": SimpleNamespace(classes=[0, 1], y_train=[0] * 30),
        },
    ),
    "05.3": ({"maps": np.full((6, 32, 32), 0.5), "SIZE": 32}, {"maps": np.full((6, 8, 8), 0.5), "SIZE": 32}),
    "06.1": (
        {
            "r": {"precision": 30.0, "recall": 28.0},
            "fire_last": np.ones(80, bool),
            "m_last": np.zeros((80, 4, 4)),
        },
        {
            "r": {"precision": 30.0, "recall": float("nan")},
            "fire_last": np.ones(80, bool),
            "m_last": np.zeros((80, 4, 4)),
        },
    ),
    "06.2": (
        {"r": {"precision_at_k": 66.7, "spearman": 0.4}},
        {"r": {"precision_at_k": 66.7, "spearman": 1.4}},
    ),
    "06.3": ({"ap": 0.0}, {"ap": 0.81 * -1}),  # 0% is a possible answer, not a wrong one
    "07.2": ({"acc": {"overall": 90.0}, "pt": {"cam_answer": 70.0}}, {"acc": {"overall": 90.0}, "pt": {}}),
    "07.3": (
        {"shares": {"colour": [0.2, 0.3], "exists": [0.7]}},
        {"shares": {"colour": [0.2, 1.3], "exists": [0.7]}},
    ),
    "08.1": ({"REAL": True, "d": _in_box()}, {"REAL": True, "d": _in_box((12.0, -1.0, 9.0))}),
    "08.2": (
        {"neg_rows": [("house (neg)", [1, 3], [-0.9, -0.2])], "W": W, "CLASSES": CLASSES},
        {"neg_rows": [("house (neg)", [3], [-0.2])], "W": W, "CLASSES": CLASSES},
    ),
    "08.3": ({"hits_g": _Hits(0.4), "top_g": [1, 2]}, {"hits_g": _Hits(4.0), "top_g": [1, 2]}),
    "08.4": ({"d": _in_box()}, {"d": {**_in_box(), "n_pairs": 0}}),
    "09.1": ({"r": _video(32), "V": V}, {"r": _video(64), "V": V}),
    "09.2": ({"r": _video(16, fps=20.0)}, {"r": _video(16, fps=0.0)}),
    "09.3": ({"r": _video(20)}, {"r": SimpleNamespace(frames=20, records=[])}),
}


def test_every_exercise_has_a_case():
    assert set(CASES) | {"07.1"} == set(E.EXERCISES)  # 07.1: below, on real (tiny) models


@pytest.mark.parametrize("exercise", sorted(CASES))
def test_check_passes_the_solution_and_fails_a_wrong_answer_with_a_hint(exercise, capsys):
    right, wrong = CASES[exercise]
    assert E.check(exercise, right) is True
    assert capsys.readouterr().out.startswith(f"✓ exercise {exercise}")
    assert E.check(exercise, wrong) is False
    out = capsys.readouterr().out
    assert out.startswith(f"✗ exercise {exercise}") and f"Hint: {E.EXERCISES[exercise].hint}" in out


@pytest.mark.parametrize("exercise", sorted(E.EXERCISES))
def test_check_before_the_solution_ran_says_what_to_define(exercise, capsys):
    assert E.check(exercise, {"PROFILE": "quick"}) is None
    out = capsys.readouterr().out
    assert out.startswith(f"… exercise {exercise}: not checked yet: define `")


def test_check_reads_names_the_test_needs_beyond_needs():
    """08.1's fallback branch reads hits95 / rand_units: missing, they mean 'not yet', not a wrong answer."""
    assert E.outcome("08.1", {"REAL": False})[0] is None
    assert E.outcome("08.1", {"REAL": False, "hits95": _Hits(0.3), "rand_units": [1]})[0] is True


def test_check_is_the_front_door_and_rejects_unknown_ids():
    import camlib as cl

    assert cl.check is E.check
    with pytest.raises(KeyError, match="no exercise"):
        E.check("99.9", {})


def test_vqa_yes_map_check_on_tiny_models(capsys):
    """07.1 on real (tiny, untrained) models of notebook 07's classes: the baseline's 'yes' map cannot
    depend on the question, the gated one's does; a 'baseline' that gates fails the check."""
    torch = pytest.importorskip("torch")
    from torch import nn

    from camlib.datasets.vqa_shapes import VQAShapes
    from camlib.paper import vqa_study as vs
    from camlib.paper.vqa import BowGAPVQA, small_backbone

    train = VQAShapes(200, seed=0, size=32)
    test = VQAShapes(40, seed=0, size=32, split="test", vocab=train.vocab, answers=train.answers)
    torch.manual_seed(0)
    models = {}
    for name, gate in (("paper_model", False), ("gated_not_in_paper", True)):
        bb, k = small_backbone((8, 8), 16)
        models[name] = BowGAPVQA(bb, k, len(train.vocab), len(train.answers), question_gate=gate)
    nn.init.normal_(models["gated_not_in_paper"].gate.weight)
    i, sh, co = vs.demo_scene(test)
    ns = {"models": models, "i": i, "sh": sh, "co": co, "test_set": test, "train_set": train}
    assert E.check("07.1", ns) is True
    assert (
        E.check(
            "07.1",
            {
                **ns,
                "models": {
                    "paper_model": models["gated_not_in_paper"],
                    "gated_not_in_paper": models["gated_not_in_paper"],
                },
            },
        )
        is False
    )
    assert E.check("07.1", {**ns, "models": {"gated_not_in_paper": models["gated_not_in_paper"]}}) is False
    assert "Hint:" in capsys.readouterr().out


def test_checks_pass_on_the_executed_solutions():
    """After `make quick` (build/notebooks, or $CAMLIB_EXECUTED_NOTEBOOKS): no check cell of an executed
    notebook printed ✗, i.e. every check passes on the solution's real values (or had nothing to check yet)."""
    import os

    folder = Path(os.environ.get("CAMLIB_EXECUTED_NOTEBOOKS", REPO / "build" / "notebooks"))
    executed = [p for p in sorted(folder.glob("[0-9][0-9]_*.ipynb")) if p.stem.count(".") == 0]
    if not executed:
        pytest.skip(f"no executed notebooks in {folder}: run `make quick` first")
    checked = cells = 0
    for path in executed:
        for cell in read(path).cells:
            if cell.cell_type == "code" and CHECK.search(cell.source):
                cells += 1
                text = "".join(o.get("text", "") for o in cell.get("outputs", []))
                assert not text.startswith(E.FAIL), f"{path.name}: {text.strip()}"
                checked += text.startswith(E.PASS)
    if not cells:
        pytest.skip(f"the executed notebooks in {folder} predate the check cells: run `make quick` again")
    assert checked > 0, f"no check passed in {len(executed)} executed notebook(s) of {folder}"
