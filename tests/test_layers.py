"""The import rule of camlib's layers, checked on the source (ast), imports inside functions included.

    camlib.core, camlib.models  ->  nothing above them: not camlib.datasets, paper, evaluation, tools
    camlib.datasets             ->  core (and models) at most: not paper, evaluation, tools, and not the
                                    experiment machinery of core (core.features, core.probe: feature
                                    extraction, caches, SVMs), so that "data" stays only data
    nothing under these three   ->  the top-level shims (camlib/cam.py, boxes.py, evaluate.py, ...):
                                    they exist for old imports / ``python -m camlib.<name>`` only

What the core needs (checked when this test was written): core imports only core, torch, numpy,
scipy, skimage, sklearn, matplotlib; it never reads a dataset. Models import core and torchvision.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from .conftest import REPO

PACKAGE = REPO / "camlib"

#: module prefixes each layer must not import
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "core": ("camlib.datasets", "camlib.paper", "camlib.evaluation", "camlib.tools"),
    "models": ("camlib.datasets", "camlib.paper", "camlib.evaluation", "camlib.tools"),
    "datasets": (
        "camlib.paper",
        "camlib.evaluation",
        "camlib.tools",
        "camlib.core.features",
        "camlib.core.probe",
    ),
    "evaluation": ("camlib.paper", "camlib.tools"),
    "paper": ("camlib.tools",),
}

# No exceptions: every module of the data layer is data only.
ALLOWED_FUNCTIONS: set[tuple[str, str]] = set()


def _shims(package: Path) -> tuple[str, ...]:
    """``camlib.<name>`` of every top-level module except the package's ``__init__``: the thin shims."""
    return tuple(f"{package.name}.{p.stem}" for p in sorted(package.glob("*.py")) if p.stem != "__init__")


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, root: Path) -> list[tuple[int, str, str | None]]:
    """Every module ``path`` imports: ``(line, dotted name, enclosing top-level function or None)``.

    ``from a.b import c`` counts as ``a.b`` AND ``a.b.c`` (``c`` may be a submodule); relative imports
    are resolved against the module's package; ``importlib.import_module("...")`` with a literal counts.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = _module_name(path, root).split(".")
    if path.stem != "__init__":
        package = package[:-1]
    found: list[tuple[int, str, str | None]] = []

    def visit(node: ast.AST, func: str | None) -> None:
        for child in ast.iter_child_nodes(node):
            owner = func
            if func is None and isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                owner = child.name
            if isinstance(child, ast.Import):
                found.extend((child.lineno, a.name, owner) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    up = package[: len(package) - (child.level - 1)]
                    base = ".".join([*up, base] if base else up)
                found.append((child.lineno, base, owner))
                found.extend((child.lineno, f"{base}.{a.name}", owner) for a in child.names if a.name != "*")
            elif (
                isinstance(child, ast.Call)
                and isinstance(child.func, (ast.Attribute, ast.Name))
                and getattr(child.func, "attr", getattr(child.func, "id", None)) == "import_module"
                and child.args
                and isinstance(child.args[0], ast.Constant)
                and isinstance(child.args[0].value, str)
            ):
                found.append((child.lineno, child.args[0].value, owner))
            visit(child, owner)

    visit(tree, None)
    return found


def layer_violations(package: Path, allowed: set[tuple[str, str]] = frozenset()) -> list[str]:
    """``"file:line imports X"`` for every import that breaks the rule (see the module docstring)."""
    root = package.parent
    shims = _shims(package)
    out: list[str] = []
    for layer, banned in FORBIDDEN.items():
        for path in sorted((package / layer).rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            seen = set()
            for line, name, func in imports_of(path, root):
                if (rel, func) in allowed:
                    continue
                bad = [p for p in (*banned, *shims) if name == p or name.startswith(p + ".")]
                if bad and (line, bad[0]) not in seen:
                    seen.add((line, bad[0]))
                    out.append(f"{rel}:{line} imports {name}")
    return out


def test_layers_import_only_downwards():
    problems = layer_violations(PACKAGE, ALLOWED_FUNCTIONS)
    assert not problems, "layer rule broken (see tests/test_layers.py):\n" + "\n".join(problems)


def test_the_rule_catches_imports_anywhere(tmp_path):
    pkg = tmp_path / "camlib"
    for sub in ("core", "models", "datasets", "paper", "evaluation", "tools"):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "cam.py").write_text("from camlib.core.cam import *  # noqa\n")  # a shim
    (pkg / "datasets" / "ok.py").write_text(
        "import numpy\nfrom camlib.core.boxes import iou\nfrom . import ok\n"
    )
    (pkg / "datasets" / "bad.py").write_text(
        "import numpy\n"
        "def f():\n"
        "    from camlib.paper.vqa import Vocabulary\n"  # line 3: inside a function
        "    return Vocabulary\n"
        "from camlib.core import features\n"  # line 5: core's experiment machinery
        "from ..evaluation import wsol\n"  # line 6: relative
        "import camlib.cam\n"  # line 7: a shim
        "def table5_probe():\n"
        "    import camlib.tools.results\n"  # line 9: allowed below
    )
    (pkg / "core" / "bad.py").write_text(
        "class A:\n    def m(self):\n        import importlib\n"
        "        return importlib.import_module('camlib.datasets.files')\n"
    )
    (pkg / "models" / "ok.py").write_text("from camlib.core.cam import CAM\n")
    problems = layer_violations(pkg, {("camlib/datasets/bad.py", "table5_probe")})
    assert problems == [
        "camlib/core/bad.py:4 imports camlib.datasets.files",
        "camlib/datasets/bad.py:3 imports camlib.paper.vqa",
        "camlib/datasets/bad.py:5 imports camlib.core.features",
        "camlib/datasets/bad.py:6 imports camlib.evaluation",
        "camlib/datasets/bad.py:7 imports camlib.cam",
    ]
    assert "camlib/datasets/bad.py:9 imports camlib.tools.results" in layer_violations(pkg)


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_every_layer_has_modules(layer):
    assert list((PACKAGE / layer).rglob("*.py")), f"camlib/{layer} is empty: the rule would check nothing"
