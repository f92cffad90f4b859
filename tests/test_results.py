"""camlib.tools.results: the one writer of results/<notebook>.json and its schema."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import pytest

from camlib.evaluation.stats import Estimate
from camlib.tools.report import load_paper
from camlib.tools.results import (
    COMPARISON_KEYS,
    SCHEMA_VERSION,
    TOP_LEVEL_KEYS,
    DataSource,
    git_revision,
    load_results,
    validate_results,
    write_results,
)

REPO = Path(__file__).resolve().parent.parent
COMMITTED = sorted((REPO / "results").glob("[0-9][0-9]_*.json"))  # notebook results (benchmarks write others)
ROW = {
    "metric": "top-5 localization error (%)",
    "paper_ref": "table2.googlenet_gap.top5_loc_err",
    "reproduced": 47.25,
    "setting": "EfficientNet-Lite0, 100-image ILSVRC val sample",
}


def _write(tmp_path: Path, **overrides) -> Path:
    kwargs = dict(
        metrics={"top1_err": 30.5, "loc": {"top5_loc_err": 47.25, "n_images": 100}, "model": "lite0"},
        profile="quick",
        parameters={"PROFILE": "quick", "SEED": 0, "DEVICE": "cpu", "INTERACTIVE": False},
        started=time.time() - 2.0,
        comparisons=[ROW],
        options={"upsample": "bicubic", "relu": False},
        results_dir=tmp_path,
    )
    kwargs.update(overrides)
    return write_results("01_cam_basics", **kwargs)


def test_round_trip(tmp_path):
    path = _write(tmp_path)
    assert path == tmp_path / "01_cam_basics.json"
    record = load_results(path)
    assert set(record) == set(TOP_LEVEL_KEYS)
    assert record["schema_version"] == SCHEMA_VERSION
    assert record["notebook"] == "01_cam_basics"
    assert record["metrics"]["loc"] == {"top5_loc_err": 47.25, "n_images": 100}
    assert record["comparisons"] == [ROW]
    assert record["options"] == {"upsample": "bicubic", "relu": False}
    assert 1.5 < record["runtime_s"] < 60
    assert record["created"].endswith("Z")
    assert {"platform", "python", "cpu_count", "torch_threads", "cuda_device"} <= set(record["machine"])
    assert "torch" in record["versions"] and "numpy" in record["versions"]


def test_file_format_is_sorted_indented_with_newline(tmp_path):
    text = _write(tmp_path).read_text()
    assert text.endswith("}\n")
    record = json.loads(text)
    assert text == json.dumps(record, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def test_defaults_and_numpy_scalars(tmp_path):
    np = pytest.importorskip("numpy")
    path = _write(
        tmp_path,
        metrics={"acc": np.float32(0.5), "n": np.int64(3), "curve": (1, 2.5), "flag": np.bool_(True)},
        comparisons=None,
        options=None,
    )
    record = load_results(path)
    assert record["metrics"] == {"acc": 0.5, "n": 3, "curve": [1, 2.5], "flag": True}
    assert type(record["metrics"]["n"]) is int
    assert record["comparisons"] == [] and record["options"] == {}


def test_zero_dim_tensors_accepted_larger_refused(tmp_path):
    import torch

    path = _write(tmp_path, metrics={"acc": torch.tensor(0.25), "ok": torch.tensor(True)})
    assert load_results(path)["metrics"] == {"acc": 0.25, "ok": True}
    with pytest.raises(
        ValueError, match=r"metrics\.maps: Tensor is not JSON data \(use \.item\(\) or \.tolist\(\)\)"
    ):
        _write(tmp_path, metrics={"maps": torch.zeros(2, 2)})
    with pytest.raises(ValueError, match=r"metrics\.acc: nan is not allowed"):
        _write(tmp_path, metrics={"acc": torch.tensor(float("nan"))})


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_nan_and_inf_rejected(tmp_path, bad):
    with pytest.raises(ValueError, match=r"metrics\.loc\.err: .* not allowed"):
        _write(tmp_path, metrics={"loc": {"err": bad}})
    assert list(tmp_path.iterdir()) == []


def test_non_json_types_rejected(tmp_path):
    with pytest.raises(ValueError, match=r"metrics\.when: object is not JSON data"):
        _write(tmp_path, metrics={"when": object()})
    with pytest.raises(ValueError, match="keys must be strings"):
        _write(tmp_path, metrics={1: 2.0})
    with pytest.raises(ValueError, match=r"comparisons\[0\]\.reproduced must be a finite number"):
        _write(tmp_path, comparisons=[{**ROW, "reproduced": "47"}])
    with pytest.raises(ValueError, match=r"comparisons\[0\]: missing key\(s\) 'setting'"):
        _write(tmp_path, comparisons=[{k: v for k, v in ROW.items() if k != "setting"}])


def test_bad_arguments_rejected(tmp_path):
    with pytest.raises(ValueError, match="'profile' is 'fast'"):
        _write(tmp_path, profile="fast")
    with pytest.raises(ValueError, match="pass time.time"):
        _write(tmp_path, started=time.time() + 3600)
    with pytest.raises(ValueError, match="without folder"):
        write_results(
            "notebooks/01_x",
            metrics={},
            profile="quick",
            parameters={},
            started=time.time(),
            results_dir=tmp_path,
        )


def test_notebook_suffix_is_dropped(tmp_path):
    path = write_results(
        "02_boxes.ipynb",
        metrics={},
        profile="paper",
        parameters={},
        started=time.time(),
        results_dir=tmp_path,
    )
    assert path.name == "02_boxes.json"


def test_paper_refs_checked_when_paper_yaml_is_there(tmp_path):
    (tmp_path / "paper.yaml").write_text(
        "table2.googlenet_gap.top5_loc_err: {value: 43.0, unit: '%', what: x, source: Table 2}\n"
    )
    _write(tmp_path)  # known key: fine
    with pytest.raises(ValueError, match="'table9.nothing' not found in"):
        _write(tmp_path, comparisons=[{**ROW, "paper_ref": "table9.nothing"}])


def test_atomic_write_leaves_no_temporary_files(tmp_path, monkeypatch):
    _write(tmp_path)
    _write(tmp_path)  # overwrite
    assert sorted(p.name for p in tmp_path.iterdir()) == ["01_cam_basics.json"]

    import camlib.tools.results as results

    def broken_replace(src, dst):
        raise OSError("disk full")

    before = (tmp_path / "01_cam_basics.json").read_text()
    monkeypatch.setattr(results.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        _write(tmp_path, metrics={"other": 1})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["01_cam_basics.json"]
    assert (tmp_path / "01_cam_basics.json").read_text() == before


@pytest.mark.parametrize("key", TOP_LEVEL_KEYS)
def test_validate_names_a_missing_key(tmp_path, key):
    record = load_results(_write(tmp_path))
    del record[key]
    with pytest.raises(ValueError, match=f"missing key\\(s\\) '{key}'"):
        validate_results(record)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("schema_version", 3, "'schema_version' is 3"),
        ("schema_version", True, "'schema_version' is True"),
        ("data", {}, "'data' must be a list"),
        ("profile", "slow", "'profile' is 'slow'"),
        ("metrics", [], "'metrics' must be a dict"),
        ("runtime_s", -1, "'runtime_s' is -1"),
        ("git_revision", 5, "'git_revision' is 5"),
        ("created", "yesterday", "'created' is 'yesterday'"),
        ("extra", 1, "unknown key\\(s\\) 'extra'"),
    ],
)
def test_validate_names_a_bad_key(tmp_path, key, value, message):
    record = load_results(_write(tmp_path))
    record[key] = value
    with pytest.raises(ValueError, match=message):
        validate_results(record)


@pytest.mark.parametrize("key", COMPARISON_KEYS)
def test_validate_names_a_bad_comparison(tmp_path, key):
    record = load_results(_write(tmp_path))
    del record["comparisons"][0][key]
    with pytest.raises(ValueError, match=f"comparisons\\[0\\]: missing key\\(s\\) '{key}'"):
        validate_results(record)


def test_load_rejects_nan_text_and_name_mismatch(tmp_path):
    record = load_results(_write(tmp_path))
    nan_file = tmp_path / "01_cam_basics.json"
    nan_file.write_text(json.dumps({**record, "runtime_s": math.nan}))
    with pytest.raises(ValueError, match="NaN is not allowed"):
        load_results(nan_file)
    other = tmp_path / "02_other.json"
    other.write_text(json.dumps(record))
    with pytest.raises(ValueError, match="'notebook' is '01_cam_basics' but the file is 02_other.json"):
        load_results(other)


def test_git_revision_never_fails(tmp_path):
    assert git_revision(tmp_path) is None  # not a checkout
    assert git_revision(tmp_path / "missing") is None
    rev = git_revision()
    assert rev is None or (isinstance(rev, str) and rev)


def test_committed_results_match_schema(tmp_path):
    """Every results/*.json in the repository (none is fine) plus the writer's own output."""
    paths = [*COMMITTED, _write(tmp_path)]
    paper_yaml = REPO / "results" / "paper.yaml"
    paper = load_paper(paper_yaml) if paper_yaml.is_file() else None
    for path in paths:
        record = load_results(path)  # validates; raises naming the file
        if paper is not None:
            unknown = [row["paper_ref"] for row in record["comparisons"] if row["paper_ref"] not in paper]
            assert not unknown, f"{path}: paper_ref not in results/paper.yaml: {unknown}"


DATA = [
    DataSource("ilsvrc-val-sample", "shared", 100, "small objects"),
    {"name": "procedural shapes", "root_kind": "procedural", "n_images": 600, "caveat": ""},
]


def test_data_and_estimates_round_trip(tmp_path):
    est = Estimate(47.0, 37.0, 57.0, 100)
    path = _write(
        tmp_path,
        data=DATA,
        metrics={"loc": {"top5_loc_err": est}, "n": 3},
        comparisons=[{**ROW, "reproduced": est, "comparable": False}, {**ROW, "comparable": True}],
    )
    record = load_results(path)
    assert record["schema_version"] == SCHEMA_VERSION == 2
    assert record["data"] == [
        {"name": "ilsvrc-val-sample", "root_kind": "shared", "n_images": 100, "caveat": "small objects"},
        DATA[1],
    ]
    assert (
        record["metrics"]["loc"]["top5_loc_err"]
        == est.to_dict()
        == {"value": 47.0, "low": 37.0, "high": 57.0, "n": 100, "level": 0.95}
    )
    assert record["comparisons"][0]["reproduced"] == est.to_dict()
    assert [r.get("comparable") for r in record["comparisons"]] == [False, True]
    assert load_results(_write(tmp_path))["data"] == []  # not given: recorded as "not recorded"


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({**DATA[1], "root_kind": "disk"}, r"data\[0\]\.root_kind is 'disk': expected one of param, env"),
        ({**DATA[1], "n_images": -1}, r"data\[0\]\.n_images must be an int >= 0"),
        ({**DATA[1], "n_images": 2.5}, r"data\[0\]\.n_images must be an int >= 0"),
        ({**DATA[1], "caveat": None}, r"data\[0\]\.caveat must be a string"),
        ({**DATA[1], "name": " "}, r"data\[0\]\.name must be a non-empty string"),
        ({**DATA[1], "root": "/x"}, r"data\[0\]: unknown key\(s\) 'root'"),
        ({k: v for k, v in DATA[1].items() if k != "n_images"}, r"data\[0\]: missing key\(s\) 'n_images'"),
    ],
)
def test_bad_data_rows_are_named(tmp_path, row, message):
    with pytest.raises(ValueError, match=message):
        _write(tmp_path, data=[row])
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("est", "message"),
    [
        (
            {"value": 1.0, "low": 2.0, "high": 0.5, "n": 10, "level": 0.95},
            r": interval \[2.0, 0.5\] is inverted",
        ),
        ({"value": 1.0, "low": 0.0, "high": 2.0, "n": 0, "level": 0.95}, r"\.n must be the number of units"),
        (
            {"value": 1.0, "low": 0.0, "high": 2.0, "n": 10, "level": 95},
            r"\.level must be a confidence level",
        ),
        ({"value": "1", "low": 0.0, "high": 2.0, "n": 10, "level": 0.95}, r"\.value must be a finite number"),
    ],
)
def test_bad_estimates_are_named(tmp_path, est, message):
    with pytest.raises(ValueError, match=r"metrics\.loc\.err" + message):
        _write(tmp_path, metrics={"loc": {"err": est}})
    with pytest.raises(ValueError, match=r"comparisons\[0\]\.reproduced" + message):
        _write(tmp_path, comparisons=[{**ROW, "reproduced": est}])


def test_comparable_must_be_a_bool(tmp_path):
    with pytest.raises(ValueError, match=r"comparisons\[0\]\.comparable must be true or false"):
        _write(tmp_path, comparisons=[{**ROW, "comparable": "yes"}])


def test_schema_1_files_still_load(tmp_path):
    """Files written before ``data`` (schema 1) load with data = [] and keep their version."""
    record = json.loads(_write(tmp_path).read_text())
    del record["data"]
    record["schema_version"] = 1
    old = tmp_path / "01_cam_basics.json"
    old.write_text(json.dumps(record))
    loaded = load_results(old)
    assert loaded["schema_version"] == 1 and loaded["data"] == []
    with pytest.raises(ValueError, match="unknown key\\(s\\) 'data' \\(schema_version 1\\)"):
        validate_results({**record, "data": []})
    with pytest.raises(ValueError, match="missing key\\(s\\) 'data'"):
        validate_results({**record, "schema_version": 2})


def test_git_revision_ignores_the_reference_folders(tmp_path):
    import subprocess

    def git(*args: str) -> None:
        subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
            cwd=tmp_path,
            check=True,
            capture_output=True,
        )

    for name in ("results/a.json", "figures/a.png", "code.py"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("1")
    git("init", "-q")
    git("add", ".")
    git("commit", "-qm", "x")
    (tmp_path / "results" / "a.json").write_text("2")
    (tmp_path / "figures" / "a.png").write_text("2")
    assert not git_revision(tmp_path).endswith("-dirty")  # refreshing the reference is not a code change
    (tmp_path / "code.py").write_text("2")
    assert git_revision(tmp_path).endswith("-dirty")
