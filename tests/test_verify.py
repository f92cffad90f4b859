"""camlib.tools.verify (make verify) on hand-made results files, and the committed reference's provenance."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from camlib.evaluation.stats import Estimate
from camlib.tools.results import load_results, write_results
from camlib.tools.verify import REFERENCE_THREADS, compare_results, is_resource_metric, main, select_notebooks

REPO = Path(__file__).resolve().parent.parent
COMMITTED = sorted((REPO / "results").glob("[0-9][0-9]_*.json"))  # notebook results (benchmarks write others)

METRICS = {
    "top1_acc": 69.0,
    "loc": {"gt_known": Estimate(50.0, 40.2, 59.8, 100).to_dict(), "label": "box rule: paper"},
    "train_seconds": 151.7,  # a timing: never compared
    "memory": {"rss_peak_mb": 812.0},
}


def _write(folder: Path, metrics: dict) -> Path:
    return write_results(
        "01_toy",
        metrics=metrics,
        profile="quick",
        parameters={"PROFILE": "quick"},
        started=time.time(),
        results_dir=folder,
    )


@pytest.fixture
def dirs(tmp_path):
    (tmp_path / "nbs").mkdir()
    (tmp_path / "nbs" / "01_toy.ipynb").write_text("{}")  # --no-run: only its name is used
    ref = _write(tmp_path / "ref", METRICS)
    return tmp_path, ref


def _verify(tmp_path, *extra) -> int:
    return main(
        [
            "01",
            "--no-run",
            "--reference",
            str(tmp_path / "ref"),
            "--out",
            str(tmp_path / "out"),
            "--notebook-dir",
            str(tmp_path / "nbs"),
            *extra,
        ]
    )


def test_identical_results_pass_and_a_changed_metric_is_flagged(dirs, capsys):
    tmp_path, ref = dirs
    _write(tmp_path / "out" / "results", METRICS)  # same machine, threads and versions as the reference
    assert _verify(tmp_path) == 0
    assert "01_toy: OK (same setup" in capsys.readouterr().out
    changed = {**METRICS, "top1_acc": 70.0, "train_seconds": 99.0}  # one metric moved, one timing moved
    _write(tmp_path / "out" / "results", changed)
    assert _verify(tmp_path) == 1
    out = capsys.readouterr().out
    assert "OUTSIDE top1_acc: reference 69.0, run 70.0 (differs on the same setup)" in out
    assert "train_seconds" not in out.split("MISMATCH")[1]  # timings are skipped, not flagged
    record = json.loads((tmp_path / "out" / "verify.json").read_text())
    assert record["verdicts"][0]["outside"][0]["metric"] == "top1_acc"
    # on the same setup even a value inside the CI must be identical
    _write(
        tmp_path / "out" / "results",
        {**METRICS, "loc": {**METRICS["loc"], "gt_known": Estimate(51.0, 41.0, 60.0, 100).to_dict()}},
    )
    assert _verify(tmp_path) == 1 and "OUTSIDE loc.gt_known" in capsys.readouterr().out


def test_other_setup_uses_the_reference_ci_and_lists_what_it_cannot_judge(dirs, capsys):
    tmp_path, ref = dirs
    record = json.loads(ref.read_text())
    record["machine"]["torch_threads"] += 7  # the reference was made with another thread count
    ref.write_text(json.dumps(record))
    inside = {
        **METRICS,
        "top1_acc": 70.0,
        "loc": {**METRICS["loc"], "gt_known": Estimate(55.0, 45.0, 64.0, 100).to_dict()},
    }
    _write(tmp_path / "out" / "results", inside)
    assert _verify(tmp_path) == 0  # 55.0 in [40.2, 59.8]; top1_acc has no CI: unjudged, listed
    out = capsys.readouterr().out
    assert "other setup" in out and "within CI 1" in out and "unjudged top1_acc" in out
    assert _verify(tmp_path, "--strict") == 1
    capsys.readouterr()
    outside = {**inside, "loc": {**inside["loc"], "gt_known": Estimate(61.0, 51.0, 70.0, 100).to_dict()}}
    _write(tmp_path / "out" / "results", outside)
    assert _verify(tmp_path) == 1
    assert "OUTSIDE loc.gt_known" in capsys.readouterr().out and "outside the reference 95% CI" in str(
        json.loads((tmp_path / "out" / "verify.json").read_text())
    )


def test_missing_metric_and_missing_run_fail(dirs, capsys):
    tmp_path, ref = dirs
    assert _verify(tmp_path) == 2  # no run results at all
    assert "FAILED to produce results for 01_toy" in capsys.readouterr().err
    less = {k: v for k, v in METRICS.items() if k != "top1_acc"}
    _write(tmp_path / "out" / "results", {**less, "extra": 1})
    assert _verify(tmp_path) == 1
    out = capsys.readouterr().out
    assert "MISSING top1_acc" in out and "new 1" in out


def test_compare_counts_and_resource_names():
    ref = {
        "notebook": "x",
        "metrics": {"a": 1, "b": {"c": [1, 2]}, "seconds": {"total": 3.0}},
        "comparisons": [{"metric": "err", "reproduced": 5.0}],
    }
    new = {
        "notebook": "x",
        "metrics": {"a": 1, "b": {"c": [1, 2]}, "seconds": {"total": 9.0}},
        "comparisons": [{"metric": "err", "reproduced": 6.0}],
    }
    v = compare_results(ref, new, same=True)
    assert (v.identical, v.skipped, [r["metric"] for r in v.outside]) == (2, 1, ["comparisons[err]"])
    for name in (
        "real_photos.seconds.total",
        "quick.GAP.seconds_eval",
        "procedural.train_seconds",
        "timings_s.data_s",
        "memory.long.rss_peak_mb",
        "video.fps",
        "memory.peak_within_1p5x",
        "ilsvrc.features_cached",
        "root",
        "memory.long.input",
        "data.cache_dir",
    ):
        assert is_resource_metric(name), name
    for name in (
        "ilsvrc.t0.2.gt_known_loc_acc",
        "video.input_fps",
        "labels",
        "ilsvrc.per_class.wall clock.top",
        "inputs",
        "n_roots",
    ):
        assert not is_resource_metric(name), name


def test_select_notebooks_by_prefix_name_or_all():
    every = select_notebooks([], REPO / "notebooks")
    assert len(every) == 9 and every[0].name.startswith("01_")
    assert select_notebooks(["03", "01_cam_basics"], REPO / "notebooks") == [every[2], every[0]]
    with pytest.raises(ValueError, match="names 0 notebooks"):
        select_notebooks(["42"], REPO / "notebooks")


# -- the committed reference ---------------------------------------------------------------------------------
@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: p.stem)
def test_committed_results_come_from_a_clean_commit_at_the_reference_thread_count(path):
    record = load_results(path)
    rev = record["git_revision"]
    assert rev and not rev.endswith("-dirty"), (
        f"{path.name} was made from a dirty tree ({rev}): make refresh-results"
    )
    assert record["machine"]["torch_threads"] == REFERENCE_THREADS, (
        f"{path.name} records {record['machine']['torch_threads']} torch threads; the reference (README, "
        f"camlib.tools.verify.REFERENCE_THREADS) is made with {REFERENCE_THREADS}"
    )
    assert record["profile"] == "quick"
    if shutil.which("git") and (REPO / ".git").exists():
        known = subprocess.run(["git", "cat-file", "-e", f"{rev}^{{commit}}"], cwd=REPO, capture_output=True)
        shallow = (
            subprocess.run(
                ["git", "rev-parse", "--is-shallow-repository"], cwd=REPO, capture_output=True, text=True
            ).stdout.strip()
            == "true"
        )
        assert known.returncode == 0 or shallow, (
            f"{path.name}: revision {rev} is not a commit of this repository"
        )


def test_committed_reference_covers_every_notebook():
    assert [p.stem for p in COMMITTED] == [nb.stem for nb in select_notebooks([], REPO / "notebooks")]
