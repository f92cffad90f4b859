""".pre-commit-config.yaml: local hooks only, the same nbstripout flags as the git filter `make setup`
installs, and `pre-commit run --all-files` passing on a fresh copy of the checkout (no network); `make
setup`'s hook step is idempotent and makes nbstripout the notebooks' git filter."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

from .conftest import REPO

CONFIG = yaml.safe_load((REPO / ".pre-commit-config.yaml").read_text(encoding="utf-8"))
HOOKS = {hook["id"]: hook for repo in CONFIG["repos"] for hook in repo["hooks"]}
BIN = Path(sys.executable).parent  # the environment's scripts: pre-commit, ruff, nbstripout
#: hooks skipped on the fresh copy: none since the formatting commit over the tree (`make lint` runs every hook).
SKIP_UNTIL_FORMATTED = ""


def _command(entry: str) -> list[str]:
    """The command inside a hook's ``bash -c '... exec CMD ARGS "$@"' --`` entry."""
    outer = shlex.split(entry)
    assert outer[:2] == ["bash", "-c"] and outer[-1] == "--", entry
    inner = shlex.split(outer[2])
    assert inner[0].startswith("PATH=") and inner[1] == "exec" and inner[-1] == "$@", inner
    return inner[2:-1]


def test_every_hook_is_local_and_runs_an_installed_package():
    assert CONFIG["repos"] and all(repo["repo"] == "local" for repo in CONFIG["repos"])
    assert set(HOOKS) == {"ruff-check", "ruff-format", "nbstripout", "notebook-rules"}
    for hook in HOOKS.values():
        assert hook["language"] in ("unsupported", "system"), hook["id"]  # nothing to download
        assert "additional_dependencies" not in hook
    assert _command(HOOKS["ruff-check"]["entry"])[:2] == ["ruff", "check"]
    assert _command(HOOKS["ruff-format"]["entry"])[:2] == ["ruff", "format"]
    assert _command(HOOKS["notebook-rules"]["entry"]) == [
        "python",
        "-m",
        "camlib.tools.notebook_tools",
        "check",
    ]
    files = re.compile(CONFIG["files"])
    for path in (
        "camlib/core/cam.py",
        "tests/test_cam.py",
        "benchmarks/bench.py",
        "notebooks/01_cam_basics.ipynb",
    ):
        assert files.search(path), path
    assert not files.search("docs/CONTRIBUTING.md") and not files.search("results/README.md")
    assert "jupyter" in HOOKS["ruff-check"]["types_or"]  # ruff reads the notebooks natively


def test_the_hook_and_the_git_filter_strip_alike():
    done = subprocess.run(
        [
            "make",
            "-n",
            "--no-print-directory",
            "-o",
            ".venv/.camlib-setup",
            "hooks",
            "GIT_HOOK=build/x/pre-commit",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    (clean,) = [ln for ln in done.stdout.splitlines() if "filter.nbstripout.clean" in ln]
    value = shlex.split(clean)[-1]  # git config KEY VALUE
    filter_args = shlex.split(value)
    assert filter_args[1:3] == ["-m", "nbstripout"]
    assert filter_args[3:] == _command(HOOKS["nbstripout"]["entry"])[1:]
    assert "--keep-id" in filter_args  # the committed cell ids stay as they are


def _fresh_copy(tmp_path: Path) -> Path:
    """The checkout's files (tracked and new, not ignored) in a new git repository, with .venv pointing at
    this environment, as a fresh clone after `make setup` would have it."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    root = tmp_path / "clone"
    for name in filter(None, listed):
        if (REPO / name).is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, root / name)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    subprocess.run([*git, "commit", "-q", "--no-verify", "-m", "copy"], cwd=root, check=True)
    (root / ".venv").symlink_to(Path(sys.prefix))
    return root


def _pre_commit(root: Path, *args: str, skip: str = SKIP_UNTIL_FORMATTED) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SKIP")}
    env |= {
        "SKIP": skip,
        "PRE_COMMIT_HOME": str(root.parent / "pre-commit-home"),
        "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
    }
    return subprocess.run(
        [str(BIN / "pre-commit"), "run", *args],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_pre_commit_passes_on_a_fresh_copy_and_catches_outputs(tmp_path):
    root = _fresh_copy(tmp_path)
    done = _pre_commit(root, "--all-files")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Passed" in done.stdout and "Failed" not in done.stdout

    nb_path = root / "notebooks" / "01_cam_basics.ipynb"
    nb = nbformat.read(str(nb_path), as_version=4)
    code = next(c for c in nb.cells if c.cell_type == "code")
    code.outputs, code.execution_count = [nbformat.v4.new_output("stream", text="left over\n")], 7
    nbformat.write(nb, str(nb_path))
    done = _pre_commit(root, "--files", "notebooks/01_cam_basics.ipynb")
    assert done.returncode == 1 and "files were modified by this hook" in done.stdout, done.stdout
    assert subprocess.run(["git", "diff", "--quiet"], cwd=root).returncode == 0  # nbstripout put it back
    assert _pre_commit(root, "--files", "notebooks/01_cam_basics.ipynb").returncode == 0


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_setup_installs_the_hooks_once_and_nbstripout_filters_notebooks(tmp_path):
    root = _fresh_copy(tmp_path)
    stamp = Path(sys.prefix) / ".camlib-setup"
    make = ["make", "--no-print-directory", "-o", str(stamp), f"VENV={sys.prefix}", "hooks"]
    env = os.environ | {"PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home")}
    first = subprocess.run(make, cwd=root, capture_output=True, text=True, timeout=120, env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert (root / ".git" / "hooks" / "pre-commit").is_file()
    again = subprocess.run(make, cwd=root, capture_output=True, text=True, timeout=120, env=env)
    assert again.returncode == 0 and "pre-commit install" not in again.stdout, again.stdout  # nothing redone
    subprocess.run(["touch", ".pre-commit-config.yaml"], cwd=root, check=True)
    third = subprocess.run(make, cwd=root, capture_output=True, text=True, timeout=120, env=env)
    assert third.returncode == 0 and "pre-commit install" in third.stdout  # a changed config: reinstalled
    attributes = (root / ".git" / "info" / "attributes").read_text()
    assert attributes.count("*.ipynb filter=nbstripout") == 1
    config = subprocess.run(
        ["git", "config", "filter.nbstripout.clean"], cwd=root, capture_output=True, text=True
    )
    assert "-m nbstripout --keep-id" in config.stdout

    # a committed notebook passes through the filter unchanged (one: each filter run starts a Python);
    # with outputs it is staged without them
    subprocess.run(["git", "add", "--renormalize", "notebooks/01_cam_basics.ipynb"], cwd=root, check=True)
    assert (
        subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True).stdout
        == ""
    )
    nb_path = root / "notebooks" / "01_cam_basics.ipynb"
    nb = nbformat.read(str(nb_path), as_version=4)
    code = next(c for c in nb.cells if c.cell_type == "code")
    code.outputs, code.execution_count = [nbformat.v4.new_output("stream", text="left over\n")], 7
    nbformat.write(nb, str(nb_path))
    subprocess.run(["git", "add", "notebooks/01_cam_basics.ipynb"], cwd=root, check=True)
    staged = json.loads(
        subprocess.run(
            ["git", "show", ":notebooks/01_cam_basics.ipynb"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    assert all(
        not c.get("outputs") and c.get("execution_count") is None
        for c in staged["cells"]
        if c["cell_type"] == "code"
    )
    assert (
        subprocess.run(["git", "diff", "--cached", "--quiet"], cwd=root).returncode == 0
    )  # same as committed
