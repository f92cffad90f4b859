"""The paper's numbers, typed once in ``results/paper.yaml`` and read from there by everything else.

``key -> {value, unit, what, source}`` (e.g. ``table2.googlenet_gap.top1_loc_err``). Sentences that compare
with the paper take their numbers from here (:func:`paper_values`), the report and the results writer
check comparison rows against it (:func:`load_paper`). Bad YAML gives the file, line and a fix.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import yaml

__all__ = ["PAPER_FIELDS", "PAPER_YAML", "PAPER_YAML_FIX", "load_paper", "paper_values", "read_paper_yaml"]

PAPER_FIELDS = ("value", "unit", "what", "source")
#: the committed file, beside camlib in the repository
PAPER_YAML = Path(__file__).resolve().parents[2] / "results" / "paper.yaml"

PAPER_YAML_FIX = (
    "each entry is one key per line, `table2.googlenet_gap.top1_loc_err: {value: 56.40, unit: '%', what: ..., "
    "source: ...}` (or the same as an indented block); check the indentation, the braces and the quotes at that "
    "line: a value holding ':', '#', '{' or a leading quote must be quoted"
)


def read_paper_yaml(path: str | Path) -> Any:
    """The parsed YAML of ``paper.yaml``; a syntax error raises ValueError naming the file, the line and
    column, YAML's own description and :data:`PAPER_YAML_FIX` (not a raw YAML traceback)."""
    path = Path(path)
    try:
        with path.open(encoding="utf-8") as fh:
            return yaml.safe_load(fh)
    except yaml.YAMLError as exc:
        mark, start = getattr(exc, "problem_mark", None), getattr(exc, "context_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        problem = ": ".join(
            str(x) for x in (getattr(exc, "context", None), getattr(exc, "problem", None)) if x
        )
        if start is not None and mark is not None and start.line != mark.line:
            problem += f"; it starts on line {start.line + 1}"
        raise ValueError(f"{where}: not valid YAML ({problem or exc}). Fix: {PAPER_YAML_FIX}") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text ({exc}). Fix: save paper.yaml as UTF-8") from None


def load_paper(path: str | Path) -> dict[str, dict[str, Any]]:
    """Read paper.yaml: ``key -> {value, unit, what, source}``; raise ValueError on a bad entry or bad YAML
    (:func:`read_paper_yaml`). Every error names the file and the line (``paper.yaml:12: ...``): a key given
    twice (YAML would keep the last silently), an entry without its four fields, a value that is not a
    finite number."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: paper numbers not found; pass --paper results/paper.yaml")
    paper = read_paper_yaml(path) or {}
    if not isinstance(paper, dict):
        raise ValueError(f"{path}:1: expected a mapping of keys to {{value, unit, what, source}}")
    lines = _key_lines(path)
    for key, entry in paper.items():
        _check_paper_entry(f"{path}:{lines.get(str(key), ['?'])[0]}", key, entry)
    return paper


def _key_lines(path: Path) -> dict[str, list[int]]:
    """The line(s) of each top-level key (1-based); a key on two lines is an error naming both."""
    node = yaml.compose(path.read_text(encoding="utf-8"))
    lines: dict[str, list[int]] = {}
    if isinstance(node, yaml.MappingNode):
        for k, _ in node.value:
            lines.setdefault(str(k.value), []).append(k.start_mark.line + 1)
    twice = {k: v for k, v in lines.items() if len(v) > 1}
    if twice:
        k, v = next(iter(twice.items()))
        raise ValueError(
            f"{path}:{v[1]}: key {k!r} is given again (first on line {v[0]}); YAML would keep "
            f"only the last silently. Fix: keep one entry per key"
        )
    return lines


def _check_paper_entry(where: str, key: Any, entry: Any) -> None:
    if not isinstance(entry, dict) or any(f not in entry for f in PAPER_FIELDS):
        have = sorted(entry) if isinstance(entry, dict) else type(entry).__name__
        raise ValueError(
            f"{where}: {key!r} must be a mapping with {', '.join(PAPER_FIELDS)} (has {have}). "
            f"Fix: {PAPER_YAML_FIX}"
        )
    value = entry["value"]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{where}: {key}.value must be a finite number, got {value!r}")


def paper_values(*keys: str, paper_yaml: str | Path | None = None) -> dict[str, float]:
    """The paper's numbers for ``keys`` of ``results/paper.yaml`` (the one place they are typed), so that a
    sentence comparing with the paper never types them again; KeyError naming the unknown keys."""
    path = Path(paper_yaml) if paper_yaml is not None else PAPER_YAML
    paper = load_paper(path)
    unknown = [k for k in keys if k not in paper]
    if unknown:
        raise KeyError(f"{path}: no paper number {', '.join(map(repr, unknown))}")
    return {k: float(paper[k]["value"]) for k in keys}
