"""README.md is a newcomer's entry: every command it gives is run by a test here, elsewhere, or by CI.

``COVERAGE`` maps each command of the README (code blocks and inline code) to what exercises it; a new
command in the README without an entry fails :func:`test_every_readme_command_is_exercised`. The make
targets run for real on small inputs (a one-cell notebook for ``make quick``, copies for
``make clean-notebooks``); the paper profile and the benchmarks, which need datasets, a GPU or many
minutes, are checked as far as they can be without those (dry run, argument parsing, ``--help``).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from .conftest import REPO

README = (REPO / "README.md").read_text(encoding="utf-8")
MAKEFILE = (REPO / "Makefile").read_text(encoding="utf-8")
STAMP = ".venv/.camlib-setup"  # `make -o STAMP`: run a target without redoing `make setup` under the test
# and `GIT_HOOK=`: without installing the git hooks into the checkout under test (test_precommit.py does, in a copy)

#: README command (prefix) -> what runs it: "tests/<file>.py::<test>" or "CI: <file>".
COVERAGE: dict[str, list[str]] = {
    "make quick": ["tests/test_readme.py::test_make_quick_runs_notebooks_then_the_report"],
    "make test": ["CI: .ci/run"],
    "make setup": [
        "CI: .ci/run",  # the first prerequisite of make test; its git-hook step:
        "tests/test_precommit.py::test_setup_installs_the_hooks_once_and_nbstripout_filters_notebooks",
    ],
    "make lab": ["tests/test_browser.py::test_notebook01_explorer_in_jupyterlab"],
    "make report": [
        "tests/test_readme.py::test_make_quick_runs_notebooks_then_the_report",
        "tests/test_report.py::test_deterministic",
    ],
    "make reproduce": [
        "tests/test_readme.py::test_paper_profile_commands",
        "tests/test_paper_paths.py::test_reproduce_stops_at_the_first_failing_notebook",
        "tests/test_paper_profiles.py::test_every_paper_profile_runs_on_real_jpegs",
    ],
    "make plan": ["tests/test_plan.py::test_tiny_plan_prints_every_notebook_and_the_totals"],
    "make refresh-results": [
        "tests/test_readme.py::test_quick_writes_build_and_refresh_results_the_reference"
    ],
    "make clean-notebooks": ["tests/test_readme.py::test_make_clean_notebooks_and_student"],
    "make student": ["tests/test_readme.py::test_make_clean_notebooks_and_student"],
    "make site": [
        "tests/test_site.py::test_make_site_builds_from_nb_out",
        "tests/test_site.py::test_site_in_a_browser",
    ],
    "make bench": ["tests/test_readme.py::test_make_bench_scripts"],
    "make lint": [
        "tests/test_readme.py::test_make_lint",
        "tests/test_precommit.py::test_pre_commit_passes_on_a_fresh_copy_and_catches_outputs",
        "CI: .ci/run",
    ],
    "jupytext --sync": ["tests/test_notebook_tools.py::test_edit_the_pair_then_sync"],
    "make help": ["tests/test_readme.py::test_make_help_lists_the_readme_targets"],
    "python -m camlib.run_notebooks": [
        "tests/test_readme.py::test_paper_profile_commands",
        "tests/test_run_notebooks.py::test_runs_notebooks_and_fails_clearly",
    ],
    "python -m camlib.video": ["tests/test_video.py::test_cli_runs_lite0_on_a_tiny_clip"],
    "conda env create -f environment.yml": ["tests/test_packaging.py::test_same_packages"],
    "make lock": ["tests/test_packaging.py::test_make_lock_command"],
    "make verify": [
        "tests/test_readme.py::test_make_verify_compares_with_the_reference",
        "tests/test_verify.py::test_identical_results_pass_and_a_changed_metric_is_flagged",
    ],
    "apt-get install --no-install-recommends chromium": [
        "CI: .ci/run",
        "tests/test_browser.py::test_ensure_chromium_respects_no_apt",
    ],
}
_INLINE = re.compile(r"`((?:make|python|\.venv/bin/python|conda|apt-get|sudo apt-get) [^`]*)`")


def readme_commands(text: str = README) -> list[str]:
    """Shell commands of the README: lines of ```bash blocks (comments and ``export`` dropped,
    continuations joined) and inline code that starts with make, python, conda or apt-get."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if line and not line.startswith(("#", "export ")):
                commands.append(line)
    commands += _INLINE.findall(re.sub(r"```.*?```", "", text, flags=re.S).replace("\n", " "))
    return [normalize(c) for c in commands]


def normalize(command: str) -> str:
    command = re.sub(r"\s+", " ", command.strip())
    return re.sub(r"^(sudo )?(\.venv/bin/)?", "", command)


def coverage_of(command: str) -> list[str]:
    keys = [k for k in COVERAGE if command == k or command.startswith(k + " ")]
    return COVERAGE[max(keys, key=len)] if keys else []


def make(*args: str, timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", "--no-print-directory", "-o", STAMP, "GIT_HOOK=", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=os.environ | env,
    )


# -- the README's promises -----------------------------------------------------------------------------
def test_readme_commands_are_found():
    cmds = readme_commands()
    for expected in (
        "make quick",
        "make test",
        "make lab",
        "make student",
        'make reproduce PAPER_ARGS="--param DEVICE=cuda"',
    ):
        assert expected in cmds
    assert readme_commands(
        "```bash\nmake x  # c\n# only a comment\nexport A=1\n.venv/bin/python -m y \\\n  z\n```\n"
        "and `make lint` inline"
    ) == ["make x", "python -m y z", "make lint"]


def test_every_readme_command_is_exercised():
    missing = [c for c in readme_commands() if not coverage_of(c)]
    assert not missing, (
        f"README commands that no test or CI runs (add a test and an entry in COVERAGE): {missing}"
    )
    for where in {w for ws in COVERAGE.values() for w in ws}:
        if where.startswith("CI: "):
            ci = (REPO / where[4:]).read_text()
            assert "make test" in ci, f"{where} does not run `make test`"
            continue
        path, name = where.split("::")
        assert re.search(rf"^def {name}\(", (REPO / path).read_text(), flags=re.M), f"{where} does not exist"


def test_readme_make_targets_exist():
    targets = {c.split()[1] for c in readme_commands() if c.startswith("make ")}
    assert {"quick", "test", "lab"} <= targets
    for t in targets:
        assert re.search(rf"^{re.escape(t)}:", MAKEFILE, flags=re.M), (
            f"README names `make {t}`; the Makefile has no {t}:"
        )


def test_ci_runs_exactly_the_readme_test_command():
    lines = [
        ln
        for ln in (REPO / ".ci" / "run").read_text().splitlines()
        if ln and not ln.startswith(("#", "set ", "cd "))
    ]
    assert lines == ["make test"]
    recipe = MAKEFILE.split("\ntest:", 1)[1].split("\n\n", 1)[0]
    assert "camlib.browser ensure" in recipe and recipe.index("browser ensure") < recipe.index("pytest")


def test_notebook_guide_lists_every_notebook():
    rows = [r for r in README.splitlines() if r.startswith("| `")]
    named = {re.match(r"\| `([^`]+)`", r)[1]: r for r in rows}
    for nb in sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        assert nb.stem in named, f"README's notebook table has no row for {nb.stem}"
        assert re.search(r"; (\d+ s|runtime not measured yet) \|", named[nb.stem]), (
            f"{nb.stem}: no quick runtime in its row"
        )
    for stem, row in named.items():
        if re.match(r"\d\d_", stem) and not (REPO / "notebooks" / f"{stem}.ipynb").exists():
            assert "being written" in row, (
                f"README lists {stem}, which does not exist (mark it as being written)"
            )


def test_readme_links_and_figures_exist():
    for target in re.findall(r"\]\(([^)#]+)\)", README):
        if not target.startswith("http"):
            assert (REPO / target).exists(), f"README links to {target}, which is missing"
    figures = re.findall(r"figures/[\w.-]+\.png", README)
    assert figures and all((REPO / f).is_file() for f in figures)
    assert "results/README.md" in README


# -- CAM on your own model -----------------------------------------------------------------------------
def own_model_block() -> str:
    section = README.split("## CAM on your own model", 1)[1]
    return re.search(r"```python\n(.*?)```", section, flags=re.S)[1]


def test_own_model_snippet_runs(tmp_path, monkeypatch):
    """The README's block as written, on a small ResNet with random weights instead of the downloaded
    ResNet-50 (the block's only network access), and a photo saved as my_photo.jpg."""
    import torch
    import torchvision
    from PIL import Image

    from camlib.datasets.photos import load_photo

    code = own_model_block()
    assert len([ln for ln in code.splitlines() if ln.strip()]) <= 12, "the README promises about 10 lines"
    Image.fromarray(load_photo("chelsea")).save(tmp_path / "my_photo.jpg")
    monkeypatch.chdir(tmp_path)
    made = []

    def small_resnet(weights=None):
        torch.manual_seed(0)
        made.append(torchvision.models.resnet18(weights=None, num_classes=len(weights.meta["categories"])))
        return made[-1]

    monkeypatch.setattr(torchvision.models, "resnet50", small_resnet)
    ns: dict = {}
    exec(compile(code, "README.md", "exec"), ns)  # noqa: S102 - the README's own example
    out, maps, box, x = ns["out"], ns["maps"], ns["box"], ns["x"]
    assert made and out.maps.shape == (1, 5, 7, 7) and maps.shape == (1, 5, 224, 224)
    assert 0 <= box[0] <= box[2] < 224 and 0 <= box[1] <= box[3] < 224
    with torch.no_grad():  # the CAM identity: mean of the raw map + bias = the logit
        logits = made[0](x)[0, out.classes[0]]
        from_maps = out.maps[0].mean((1, 2)) + made[0].fc.bias[out.classes[0]]
    torch.testing.assert_close(from_maps, logits, atol=1e-4, rtol=1e-4)


# -- the make targets, on small inputs ------------------------------------------------------------------
def tiny_notebook(path: Path, results: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell(
        f'PROFILE = "quick"\nSEED = 0\nDEVICE = "cpu"\nINTERACTIVE = False\nRESULTS_DIR = "{results}"'
    )
    params.metadata["tags"] = ["parameters"]
    body = nbformat.v4.new_code_cell(
        "import time\nfrom camlib.tools.results import write_results\n"
        f'write_results("{path.stem}", metrics={{"ok": 1.0}}, profile=PROFILE, parameters={{"SEED": SEED}}, '
        "started=time.time(), results_dir=RESULTS_DIR)"
    )
    nb.cells = [params, body]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(path))
    return path


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_make_quick_runs_notebooks_then_the_report(tmp_path):
    results = tmp_path / "results"
    (tmp_path / "nb").mkdir()
    nb = tiny_notebook(
        tmp_path / "nb" / "98_readme_check.ipynb", results
    )  # executed copies go outside its folder
    done = make("quick", f"NOTEBOOKS={nb}", f"NB_OUT={tmp_path / 'out'}", f"RESULTS={results}")
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "out" / nb.name).is_file()
    assert (results / "98_readme_check.json").is_file()
    assert "98_readme_check" in (results / "README.md").read_text()


@pytest.mark.timeout(300)
def test_make_clean_notebooks_and_student(tmp_path):
    from camlib.tools.notebook_tools import check_notebook, read

    dirty = tmp_path / "01_cam_basics.ipynb"
    nb = read(REPO / "notebooks" / "01_cam_basics.ipynb")
    code = next(c for c in nb.cells if c.cell_type == "code")
    code.outputs = [nbformat.v4.new_output("stream", text="left over\n")]
    code.execution_count = 3
    nbformat.write(nb, str(dirty))
    assert check_notebook(read(dirty))
    done = make("clean-notebooks", f"NOTEBOOKS={dirty}")
    assert done.returncode == 0, done.stderr
    assert check_notebook(read(dirty)) == []

    notebooks = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    done = make("student", f"STUDENT_OUT={tmp_path / 'student'}")
    assert done.returncode == 0, done.stderr
    for path in notebooks:
        copy = read(tmp_path / "student" / path.name)
        assert not [
            c for c in copy.cells if "solution" in c.metadata.get("tags", []) and "Your turn" not in c.source
        ], f"{path.name}: a solution survived"
        assert not [c for c in copy.cells if "instructor" in c.metadata.get("tags", [])], path.name


def test_quick_writes_build_and_refresh_results_the_reference():
    """`make quick` (and its report) writes build/results + build/figures; `make refresh-results`
    (or RESULTS=results) the committed reference results/ + figures/."""
    quick = make("-n", "quick", timeout=60)
    assert quick.returncode == 0, quick.stderr
    run = next(ln for ln in quick.stdout.splitlines() if "camlib.run_notebooks" in ln)
    assert "--results-dir build/results --figures-dir build/figures" in run
    assert "--results build/results --reference results" in quick.stdout
    assert "--out build/results/README.md" in quick.stdout
    for args in (["refresh-results"], ["quick", "RESULTS=results"]):
        done = make("-n", *args, timeout=60)
        assert done.returncode == 0, done.stderr
        assert "--results-dir results --figures-dir figures" in done.stdout
        assert "--out results/README.md" in done.stdout


def test_make_lint():
    """`make lint` is pre-commit on every file, and `make test` lints before the tests. (It runs for real in
    tests/test_precommit.py, on a fresh copy: pre-commit rewrites what it fixes, so not on this checkout.)"""
    done = make("-n", "lint", timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    (line,) = [ln for ln in done.stdout.splitlines() if "pre-commit" in ln]
    assert "pre-commit run --all-files" in line
    assert re.search(r"^test: setup lint\b", MAKEFILE, flags=re.M), "make test must run lint first"


def test_make_help_lists_the_readme_targets():
    done = make("help", timeout=60)
    assert done.returncode == 0, done.stderr
    listed = {ln.split()[0] for ln in done.stdout.splitlines() if ln.strip()}
    assert {c.split()[1] for c in readme_commands() if c.startswith("make ")} <= listed


def test_paper_profile_commands():
    """What the README's paper-profile commands would run: every notebook, PROFILE=paper, DEVICE=cuda."""
    from camlib.tools.run_notebooks import parse_params

    done = make("-n", "reproduce", "PAPER_ARGS=--param DEVICE=cuda", timeout=60)
    assert done.returncode == 0, done.stderr
    run = next(ln for ln in done.stdout.splitlines() if "camlib.run_notebooks" in ln)
    assert "--profile paper" in run and "--param DEVICE=cuda" in run
    assert all(nb.name in run for nb in (REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert "camlib.report" in done.stdout
    assert parse_params(["DEVICE=cuda"]) == {"DEVICE": "cuda"} == parse_params(['DEVICE="cuda"'])


@pytest.mark.timeout(120)
def test_make_verify_compares_with_the_reference(tmp_path):
    """`make verify NOTEBOOKS=...` runs camlib.tools.verify on the chosen notebooks into build/verify (here on
    hand-made results with --no-run: the notebooks' own runs are what `make refresh-results` does)."""
    done = make("-n", "verify", "NOTEBOOKS=01 03", timeout=60)
    line = next(ln for ln in done.stdout.splitlines() if "camlib.tools.verify" in ln)
    assert done.returncode == 0 and "--out build/verify" in line and line.endswith(" 01 03")
    import time

    from camlib.tools.results import write_results

    (tmp_path / "nbs").mkdir()
    (tmp_path / "nbs" / "01_toy.ipynb").write_text("{}")
    for folder, value in ((tmp_path / "ref", 1.0), (tmp_path / "out" / "results", 2.0)):
        write_results(
            "01_toy",
            metrics={"m": value},
            profile="quick",
            parameters={},
            started=time.time(),
            results_dir=folder,
        )
    args = (
        f"--no-run --reference {tmp_path / 'ref'} --out {tmp_path / 'out'} --notebook-dir {tmp_path / 'nbs'}"
    )
    done = make("verify", f"PY={sys.executable}", "NOTEBOOKS=01", f"VERIFY_ARGS={args}", timeout=120)
    assert done.returncode != 0 and "OUTSIDE m: reference 1.0, run 2.0" in done.stdout, (
        done.stdout + done.stderr
    )


def test_make_bench_scripts():
    """`make bench` runs the benchmark scripts (minutes of timing; here: they exist and start)."""
    done = make("-n", "bench", timeout=60)
    scripts = sorted(set(re.findall(r"(benchmarks/\w+\.py)", done.stdout)))
    assert done.returncode == 0 and scripts, done.stdout + done.stderr
    for script in scripts:
        started = subprocess.run(
            [sys.executable, script, "--help"], cwd=REPO, capture_output=True, text=True, timeout=60
        )
        assert started.returncode == 0, started.stderr
