"""environment.yml and pyproject.toml must name the same packages (with the same version specs), and
requirements.lock (``make lock``) must pin every one of them, and everything they need, at versions that
satisfy those specs; ``make setup`` installs from the lock."""

from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

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


# -- the lock file ---------------------------------------------------------------------------------
LOCK = REPO / "requirements.lock"
MAKEFILE = (REPO / "Makefile").read_text()


def _environment(python: str, sys_platform: str, machine: str) -> dict[str, str]:
    """Marker values of a target interpreter (what pip evaluates ``; python_full_version == ...`` against)."""
    platform_system = {"linux": "Linux", "darwin": "Darwin", "win32": "Windows"}[sys_platform]
    return {
        "implementation_name": "cpython", "implementation_version": python, "os_name": "nt" if sys_platform == "win32" else "posix",
        "platform_machine": machine, "platform_python_implementation": "CPython", "platform_release": "",
        "platform_system": platform_system, "platform_version": "", "python_full_version": python,
        "python_version": ".".join(python.split(".")[:2]), "sys_platform": sys_platform,
    }  # fmt: skip


#: where the lock must give one version of every package: the project's machines (CPython 3.11 on Linux
#: x86_64: CI, environment.yml, the shared venv) first, then other interpreters and systems pyproject allows
TARGETS = {
    "linux-x86_64-3.11": _environment("3.11.7", "linux", "x86_64"),
    "linux-x86_64-3.10": _environment("3.10.14", "linux", "x86_64"),
    "linux-x86_64-3.12": _environment("3.12.4", "linux", "x86_64"),
    "macos-arm64-3.11": _environment("3.11.9", "darwin", "arm64"),
    "windows-amd64-3.12": _environment("3.12.4", "win32", "AMD64"),
}


def lock_entries(text: str | None = None) -> list[Requirement]:
    """The requirement lines of the lock (``name==version ; marker``), comments and ``# via`` notes dropped."""
    text = LOCK.read_text() if text is None else text
    return [
        Requirement(line) for line in text.splitlines() if line.strip() and not line.startswith(("#", " "))
    ]


def pinned(entries: list[Requirement], env: dict[str, str]) -> dict[str, Version]:
    """PEP 503 name -> the one version the lock installs in ``env``; two entries for one name there fail."""
    out: dict[str, Version] = {}
    for req in entries:
        if req.marker is not None and not req.marker.evaluate(env):
            continue
        name = normalize(req.name)
        assert name not in out, (
            f"requirements.lock gives {name} twice for {env['python_full_version']} {env['sys_platform']}"
        )
        (spec,) = req.specifier
        out[name] = Version(spec.version)
    return out


def test_lock_pins_exact_versions_and_names_no_index():
    text = LOCK.read_text()
    entries = lock_entries(text)
    assert len(entries) > 100, "requirements.lock looks empty or truncated: run `make lock`"
    for req in entries:
        specs = list(req.specifier)
        assert len(specs) == 1 and specs[0].operator == "==" and "*" not in specs[0].version, (
            f"not an exact pin: {req}"
        )
        assert not req.url and not req.extras, f"requirements.lock must name released versions only: {req}"
    # installable from the package registry alone: no index, find-links or local path (pip.conf on one
    # machine may add those; the lock must not depend on them)
    options = [ln for ln in text.splitlines() if ln.startswith(("-", "--"))]
    assert not options, f"requirements.lock must not carry pip options: {options}"
    assert "file:" not in text and "/opt/" not in text and "+cpu" not in text
    assert text.startswith("# This file was autogenerated by uv") and "#    make lock" in text.splitlines()[1]


def test_lock_parser_selects_one_version_per_target():
    """The parser of these tests: markers select one version per target, and a duplicate is refused."""
    entries = lock_entries(
        "numpy==2.2.6 ; python_full_version < '3.11'\n    # via x\nnumpy==2.4.6 ; python_full_version >= '3.11'\n"
    )
    assert pinned(entries, TARGETS["linux-x86_64-3.10"]) == {"numpy": Version("2.2.6")}
    assert pinned(entries, TARGETS["linux-x86_64-3.11"]) == {"numpy": Version("2.4.6")}
    with pytest.raises(AssertionError, match="twice"):
        pinned(lock_entries("a==1\na==2\n"), TARGETS["linux-x86_64-3.11"])


@pytest.mark.parametrize("target", list(TARGETS))
def test_lock_pins_every_dependency_within_the_pyproject_spec(target):
    versions = pinned(lock_entries(), TARGETS[target])
    missing, outside = [], []
    for name, spec in pyproject_requirements().items():
        if name not in versions:
            missing.append(name)
        elif not SpecifierSet(spec).contains(versions[name], prereleases=True):
            outside.append(f"{name}=={versions[name]} (pyproject: {spec})")
    assert not missing, f"requirements.lock has no pin of {missing} for {target}: run `make lock`"
    assert not outside, (
        f"requirements.lock pins versions that pyproject.toml excludes: {outside}; run `make lock`"
    )


def test_lock_versions_satisfy_environment_yml():
    """environment.yml stays in step: conda resolves its own builds, but within specs the lock satisfies."""
    versions = pinned(lock_entries(), TARGETS["linux-x86_64-3.11"])
    outside = {n: (s, str(versions.get(n))) for n, s in environment_requirements().items()
               if n not in versions or not SpecifierSet(s).contains(versions[n], prereleases=True)}  # fmt: skip
    assert not outside, f"environment.yml spec vs requirements.lock pin: {outside}"
    assert "requirements.lock" in (REPO / "environment.yml").read_text()


def test_lock_has_the_torch_pair_of_constraints_txt():
    versions = pinned(lock_entries(), TARGETS["linux-x86_64-3.11"])
    lines = [ln.split("#")[0].strip() for ln in (REPO / "constraints.txt").read_text().splitlines()]
    constraints = {normalize(r.name): r.specifier for r in map(Requirement, filter(None, lines))}
    assert set(constraints) == {"torch", "torchvision"}
    for name, spec in constraints.items():
        exact = [s.version for s in spec if s.operator == "=="]
        assert exact and versions[name] == Version(exact[0]), (
            f"lock {name}=={versions[name]}, constraints.txt {spec}"
        )


def test_lock_holds_everything_the_installed_packages_need():
    """Closure: walk pyproject's requirements (+ dev) through the installed packages' metadata; every package
    reached must be pinned. (Checked on this interpreter, with the versions installed here.)"""
    env = default_environment()
    versions = pinned(lock_entries(), env)
    todo = [Requirement(r) for r in _pyproject_requirement_strings()]
    seen: set[tuple[str, frozenset[str]]] = set()
    unpinned = []
    while todo:
        req = todo.pop()
        key = (normalize(req.name), frozenset(req.extras))
        if key in seen:
            continue
        seen.add(key)
        if key[0] not in versions:
            unpinned.append(key[0])
            continue
        try:
            requires = metadata.requires(req.name) or []
        except metadata.PackageNotFoundError:
            continue  # not installed here: nothing to read (test_installed_versions_match_the_lock reports it)
        for line in requires:
            dep = Requirement(line)
            if dep.marker is None or any(dep.marker.evaluate(env | {"extra": e}) for e in ("", *req.extras)):
                todo.append(dep)
    assert not unpinned, (
        f"installed packages need {sorted(set(unpinned))}, which requirements.lock does not pin: run `make lock`"
    )


def test_installed_versions_match_the_lock():
    """What runs the tests is what the lock pins (after `make setup`); a drifted package is named."""
    versions = pinned(lock_entries(), default_environment())
    drift = {}
    for name, version in versions.items():
        try:
            installed = Version(metadata.version(name))
        except metadata.PackageNotFoundError:
            drift[name] = (str(version), "missing")
            continue
        if Version(installed.public) != version:
            drift[name] = (str(version), str(installed))
    assert not drift, (
        f"installed packages differ from requirements.lock (lock, installed): {drift}; `make setup`"
    )


def _pyproject_requirement_strings() -> list[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return [*project["dependencies"], *project["optional-dependencies"]["dev"]]


def _recipe(target: str) -> tuple[str, str]:
    """(prerequisites, recipe text) of a Makefile rule."""
    head, body = re.search(
        rf"^{re.escape(target)}:([^\n]*)\n((?:\t[^\n]*\n?)*)", MAKEFILE, flags=re.M
    ).groups()
    return head, body.replace("\\\n", " ")


def test_setup_installs_from_the_lock():
    assert re.search(r"^LOCK := requirements\.lock$", MAKEFILE, flags=re.M)
    prereqs, recipe = _recipe("$(STAMP)")
    assert "$(LOCK)" in prereqs, "make setup must re-run when requirements.lock changes"
    installs = [ln.strip() for ln in recipe.splitlines() if "pip install" in ln]
    assert any("-r $(LOCK)" in ln and "-c constraints.txt" in ln for ln in installs), installs
    assert any("--no-deps -e ." in ln for ln in installs), "camlib itself: editable, no dependency resolution"
    others = [
        ln
        for ln in installs
        if "-r $(LOCK)" not in ln and "--no-deps" not in ln and "--upgrade pip" not in ln
    ]
    assert not others, f"make setup installs packages outside the lock: {others}"


def test_make_lock_command():
    _, recipe = _recipe("lock")
    compile_line = next(ln for ln in recipe.splitlines() if "pip compile" in ln)
    for part in (
        "uv pip compile",
        "--no-config",
        "pyproject.toml",
        "--extra dev",
        "-c constraints.txt",
        "--universal",
        "-o $(LOCK)",
    ):
        assert part in compile_line, f"make lock: {part!r} missing from {compile_line!r}"
    assert "$(VENV)" not in recipe and "$(PY)" not in recipe, "make lock must not touch the project's .venv"
