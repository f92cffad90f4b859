"""environment.yml and pyproject.toml must name the same packages (with the same version specs)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import yaml

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = pytest.importorskip("tomli")

REPO = Path(__file__).resolve().parent.parent
# conda-forge name -> PyPI name, where they differ
CONDA_TO_PYPI = {"pytorch": "torch"}
# conda-only entries of environment.yml (the interpreter and the installer)
CONDA_ONLY = {"python", "pip"}
_REQ = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\S.*)?$")


def normalize(name: str) -> str:
    """PEP 503 name: lower case, runs of -_. as one dash."""
    return re.sub(r"[-_.]+", "-", name).lower()


def split_requirement(text: str) -> tuple[str, str]:
    """``"torch>=2.2"`` -> ``("torch", ">=2.2")``; conda's ``"python=3.11"`` -> ``("python", "=3.11")``."""
    match = _REQ.match(text.split(";")[0])
    assert match, f"cannot read requirement {text!r}"
    return normalize(match[1]), (match[2] or "").replace(" ", "")


def pyproject_requirements() -> dict[str, str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    items = [*project["dependencies"], *project["optional-dependencies"]["dev"]]
    return dict(split_requirement(item) for item in items)


def environment_requirements() -> dict[str, str]:
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    assert env["name"] == "camlib"
    assert "conda-forge" in env["channels"]
    reqs: dict[str, str] = {}
    for item in env["dependencies"]:
        if isinstance(item, dict):
            pip_items = [p for p in item["pip"] if not p.startswith("-e")]
            reqs.update(split_requirement(p) for p in pip_items)
            assert "-e ." in item["pip"], "environment.yml must install camlib itself (pip: -e .)"
            continue
        name, spec = split_requirement(item)
        if name not in CONDA_ONLY:
            reqs[normalize(CONDA_TO_PYPI.get(name, name))] = spec
    return reqs


def test_environment_pins_python_and_pip():
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    assert "python=3.11" in env["dependencies"] and "pip" in env["dependencies"]


def test_same_packages():
    in_pyproject, in_environment = pyproject_requirements(), environment_requirements()
    only_pyproject = sorted(set(in_pyproject) - set(in_environment))
    only_environment = sorted(set(in_environment) - set(in_pyproject))
    assert not only_pyproject, f"add to environment.yml (conda-forge or pip: section): {only_pyproject}"
    assert not only_environment, f"add to pyproject.toml dependencies or the dev extra: {only_environment}"


def test_same_version_specs():
    in_pyproject, in_environment = pyproject_requirements(), environment_requirements()
    differ = {
        n: (in_pyproject[n], in_environment[n])
        for n in in_pyproject
        if in_pyproject[n] != in_environment.get(n)
    }
    assert not differ, f"version specs differ (pyproject, environment.yml): {differ}"


def test_name_map():
    assert split_requirement("pytorch>=2.2") == ("pytorch", ">=2.2")
    assert split_requirement("efficientnet_lite_pytorch == 0.1.0") == ("efficientnet-lite-pytorch", "==0.1.0")
    assert normalize("scikit_image") == "scikit-image"
