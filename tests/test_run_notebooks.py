"""camlib.tools.run_notebooks: papermill runs, parameters, the summary and clear failures."""

from __future__ import annotations

import json
import os
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from camlib.tools import run_notebooks as rn
from camlib.tools.run_notebooks import main, parse_param, parse_params

KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


def _notebook(path: Path, *cells: str) -> Path:
    nb = new_notebook(metadata={"kernelspec": KERNELSPEC})
    nb.cells = [new_code_cell('PROFILE = "paper"\nSEED = 0', metadata={"tags": ["parameters"]})]
    nb.cells += [new_code_cell(src) for src in cells]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))
    return path


def test_parse_param():
    assert parse_param("SEED=3") == ("SEED", 3)
    assert parse_param("SIZES=[224, 256]") == ("SIZES", [224, 256])
    assert parse_param("INTERACTIVE=false") == ("INTERACTIVE", False)
    assert parse_param("INTERACTIVE=False") == ("INTERACTIVE", False)
    assert parse_param("DEVICE=cuda:0") == ("DEVICE", "cuda:0")
    assert parse_param('NAME="a=b"') == ("NAME", "a=b")
    assert parse_param("EMPTY=") == ("EMPTY", "")
    assert parse_params(["A=1", "A=2"]) == {"A": 2}
    for bad in ("SEED", "1X=2", "=3"):
        with pytest.raises(ValueError, match="expected KEY=VALUE"):
            parse_param(bad)
    with pytest.raises(ValueError, match="--profile"):
        parse_param("PROFILE=paper")


def test_no_notebooks_given(capsys):
    assert main(["--profile", "quick", "--out", "build"]) == 2
    assert "no notebooks given" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_runs_notebooks_and_fails_clearly(tmp_path, capsys):
    good = _notebook(
        tmp_path / "notebooks" / "01_good.ipynb",
        'import json\nfrom pathlib import Path\nPath("../out.json").write_text(json.dumps({"profile": PROFILE, "seed": SEED}))',
    )
    bad = _notebook(tmp_path / "notebooks" / "02_bad.ipynb", "x = 1", 'raise ValueError("boom: bad data")')
    after = _notebook(tmp_path / "other" / "03_after.ipynb", 'open("ran.txt", "w").write(PROFILE)')
    out = tmp_path / "executed"

    rc = main(
        [
            "--profile",
            "quick",
            "--out",
            str(out),
            "--results-dir",
            str(tmp_path / "res"),
            "--param",
            "SEED=7",
            str(good),
            str(bad),
            str(after),
        ]
    )
    captured = capsys.readouterr()

    assert rc == 1
    # the good notebook ran in its own folder with the injected parameters
    assert json.loads((tmp_path / "out.json").read_text()) == {"profile": "quick", "seed": 7}
    # the failure is named with its cell error, and the next notebook still ran
    assert "FAILED" in captured.err and "02_bad.ipynb" in captured.err
    assert "ValueError: boom: bad data" in captured.err
    assert (tmp_path / "other" / "ran.txt").read_text() == "quick"
    # the failed copy is named (and its metadata says) so; the complete ones have the notebook's name
    assert {p.name for p in out.iterdir()} == {"01_good.ipynb", "02_bad.failed.ipynb", "03_after.ipynb"}
    assert "3 notebook(s), 1 failed" in captured.out
    assert "executed copy: " + str(out / "02_bad.failed.ipynb") in captured.err
    executed = nbformat.read(str(out / "01_good.ipynb"), as_version=4)
    assert any("injected-parameters" in c.metadata.get("tags", []) for c in executed.cells)
    assert rn.RUN_METADATA not in executed.metadata
    failed = nbformat.read(str(out / "02_bad.failed.ipynb"), as_version=4)
    assert failed.metadata[rn.RUN_METADATA]["status"] == "failed"
    assert "ValueError: boom" in failed.metadata[rn.RUN_METADATA]["error"]


def test_missing_notebook_is_reported(tmp_path, capsys):
    assert (
        main(
            [
                "--profile",
                "quick",
                "--out",
                str(tmp_path / "out"),
                "--results-dir",
                str(tmp_path / "res"),
                str(tmp_path / "nb" / "nope.ipynb"),
            ]
        )
        == 1
    )
    assert "notebook not found" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_jobs_run_at_once_with_threads_per_kernel(tmp_path, capsys):
    """--jobs 2: every notebook runs, the summary keeps the given order, each kernel sees --threads."""
    src = 'import os\nopen("threads_%s.txt", "w").write(os.environ.get("OMP_NUM_THREADS", "unset"))'
    nbs = [_notebook(tmp_path / "nb" / f"0{i}_n.ipynb", src % i) for i in range(1, 4)]
    bad = _notebook(tmp_path / "nb" / "04_bad.ipynb", 'raise RuntimeError("boom")')
    before = os.environ.get("OMP_NUM_THREADS")
    rc = main(
        [
            "--profile",
            "quick",
            "--jobs",
            "2",
            "--threads",
            "1",
            "--out",
            str(tmp_path / "ex"),
            "--results-dir",
            str(tmp_path / "res"),
            *map(str, nbs),
            str(bad),
        ]
    )
    out = capsys.readouterr()
    assert rc == 1 and "2 at a time, 1 thread(s) each" in out.out
    assert [(tmp_path / "nb" / f"threads_{i}.txt").read_text() for i in range(1, 4)] == ["1", "1", "1"]
    table = [ln.split()[0] for ln in out.out.splitlines() if ln.startswith("0") and " s" in ln]
    assert table == ["01_n.ipynb", "02_n.ipynb", "03_n.ipynb", "04_bad.ipynb"]
    assert "RuntimeError: boom" in out.err
    assert os.environ.get("OMP_NUM_THREADS") == before  # the caller's environment is restored
    with pytest.raises(SystemExit):
        main(["--profile", "quick", "--jobs", "x", "--out", str(tmp_path / "ex"), str(nbs[0])])


def test_folders_passed_relative_to_each_notebook(tmp_path, monkeypatch):
    """RESULTS_DIR / FIGURES_DIR: the run's folders seen from the notebook's folder; --param wins."""
    monkeypatch.chdir(tmp_path)
    nb = tmp_path / "notebooks" / "01_x.ipynb"
    assert rn._with_folders({}, nb, tmp_path / "r", tmp_path / "f") == {
        "RESULTS_DIR": "../r",
        "FIGURES_DIR": "../f",
    }
    _notebook(nb)  # declares PROFILE and SEED only: no folder is passed (papermill would warn)
    assert rn._with_folders({"SEED": 1}, nb, tmp_path / "r", tmp_path / "f") == {"SEED": 1}
    nbf = nbformat.read(str(nb), as_version=4)
    nbf.cells[0].source += '\nRESULTS_DIR = "../results"\nFIGURES_DIR = "../figures"'
    nbformat.write(nbf, str(nb))
    res, fig = rn._folder(None, "build/results", nb.parent), rn._folder(None, "build/figures", nb.parent)
    assert res == tmp_path / "build" / "results"
    params = rn._with_folders({"PROFILE": "quick"}, nb, res, fig)
    assert params == {
        "PROFILE": "quick",
        "RESULTS_DIR": "../build/results",
        "FIGURES_DIR": "../build/figures",
    }
    assert rn._with_folders({"RESULTS_DIR": "/abs"}, nb, res, fig)["RESULTS_DIR"] == "/abs"
    assert rn._folder("../results", "build/results", nb.parent) == tmp_path / "results"
    assert rn.RESULTS_DIR == "build/results" and rn.FIGURES_DIR == "build/figures"


def test_paper_yaml_copied_into_a_run_folder_without_one(tmp_path):
    source = tmp_path / "paper.yaml"
    source.write_text("a.b: {value: 1.0, unit: '%', what: x, source: y}\n")
    rn._copy_paper_yaml(tmp_path / "run", source)
    assert (tmp_path / "run" / "paper.yaml").read_text() == source.read_text()
    (tmp_path / "run" / "paper.yaml").write_text("kept")
    rn._copy_paper_yaml(tmp_path / "run", source)  # an existing one is left alone
    assert (tmp_path / "run" / "paper.yaml").read_text() == "kept"
    assert rn.REFERENCE_PAPER.parent.name == "results"


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_run_writes_to_its_build_folders_not_the_reference(tmp_path, monkeypatch):
    """A notebook whose defaults are ../results and ../figures (the committed reference) writes its
    results and figures, with or without an explicit folder, to the run's folders instead."""
    monkeypatch.chdir(tmp_path)
    nb = new_notebook(metadata={"kernelspec": KERNELSPEC})
    nb.cells = [
        new_code_cell(
            'PROFILE = "paper"\nRESULTS_DIR = "../results"\nFIGURES_DIR = "../figures"',
            metadata={"tags": ["parameters"]},
        ),
        new_code_cell(
            "from pathlib import Path\nimport matplotlib\nmatplotlib.use('Agg')\n"
            "import matplotlib.pyplot as plt\nfrom camlib.core.viz import save_figure\n"
            "Path(RESULTS_DIR).mkdir(parents=True, exist_ok=True)\n"
            "Path(RESULTS_DIR, '01_w.txt').write_text(RESULTS_DIR)\n"
            "fig = plt.figure(figsize=(1, 1))\n"
            "save_figure(fig, 'explicit', FIGURES_DIR)\nsave_figure(fig, 'default')"
        ),
    ]
    (tmp_path / "notebooks").mkdir()
    nbformat.write(nb, str(tmp_path / "notebooks" / "01_w.ipynb"))
    assert main(["--profile", "quick", "--out", "build/notebooks", "notebooks/01_w.ipynb"]) == 0
    assert (tmp_path / "build" / "results" / "01_w.txt").read_text() == "../build/results"
    assert sorted(p.name for p in (tmp_path / "build" / "figures").iterdir()) == [
        "default.png",
        "explicit.png",
    ]
    assert (tmp_path / "build" / "results" / "paper.yaml").is_file()  # copied from the reference
    assert not (tmp_path / "results").exists() and not (tmp_path / "figures").exists()
    assert rn.FIGURES_ENV not in os.environ  # restored


def test_out_in_the_notebooks_folder_is_refused_before_any_work(tmp_path, capsys):
    """--out the notebooks' own folder (directly, inside it, or through a link) would overwrite the sources."""
    nb = _notebook(tmp_path / "notebooks" / "01_x.ipynb", "x = 1")
    source = nb.read_bytes()
    (tmp_path / "link").symlink_to(tmp_path / "notebooks", target_is_directory=True)
    for out in ("notebooks", "notebooks/executed", "link", "link/executed", "notebooks/../notebooks"):
        rc = main(
            [
                "--profile",
                "quick",
                "--out",
                str(tmp_path / out),
                "--results-dir",
                str(tmp_path / "res"),
                str(nb),
            ]
        )
        err = capsys.readouterr().err
        assert rc == 2 and f"--out {tmp_path / out}" in err and str(tmp_path / "notebooks") in err
        assert "overwrite or mix with the source notebooks" in err and "Fix: pass a folder outside it" in err
    assert nb.read_bytes() == source  # untouched
    assert (
        not (tmp_path / "notebooks" / "executed").exists() and not (tmp_path / "res").exists()
    )  # no work done
    assert rn.check_out_dir(tmp_path / "build", [nb]) == (tmp_path / "build").resolve()  # outside: fine


def test_stopped_copy_is_marked_and_its_cells_tell_the_truth(tmp_path):
    """A partial copy as papermill leaves it when interrupted (every cell "completed") becomes
    <stem>.interrupted.ipynb: metadata says so, the cell that was stopped reads "interrupted", the one that
    never ran "pending"; the previous complete copy is left as it was; a later complete run clears the marks."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "01_x.ipynb").write_text("previous complete copy")
    nb = new_notebook(metadata={"kernelspec": KERNELSPEC})
    ran = {"start_time": "t0", "end_time": "t1", "status": "completed", "exception": False}
    nb.cells = [
        new_code_cell("x = 1", metadata={"papermill": dict(ran)}),
        new_code_cell(
            "sleep()",
            metadata={"papermill": dict(ran)},
            outputs=[nbformat.v4.new_output("error", ename="KeyboardInterrupt", evalue="", traceback=[])],
        ),
        new_code_cell("y = 2", metadata={"papermill": {**ran, "start_time": None, "end_time": None}}),
    ]
    partial = rn.marked_copy(out / "01_x.ipynb", rn.INCOMPLETE)
    nbformat.write(nb, str(partial))
    marked = rn._finish_marked(partial, out / "01_x.ipynb", rn.INTERRUPTED, "interrupted (KeyboardInterrupt)")
    assert marked == out / "01_x.interrupted.ipynb" and not partial.exists()
    got = nbformat.read(str(marked), as_version=4)
    assert got.metadata[rn.RUN_METADATA] == {
        "status": "interrupted",
        "error": "interrupted (KeyboardInterrupt)",
    }
    assert [c.metadata.papermill["status"] for c in got.cells] == ["completed", "interrupted", "pending"]
    assert (out / "01_x.ipynb").read_text() == "previous complete copy"
    rn._clear_marks(out / "01_x.ipynb")  # what a complete run does after its rename
    assert sorted(p.name for p in out.iterdir()) == ["01_x.ipynb"]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_sigterm_leaves_a_marked_copy_and_the_previous_one(tmp_path):
    """A real run stopped by SIGTERM: exit 130, OUT/<stem>.interrupted.ipynb, the old copy intact."""
    import signal
    import subprocess
    import sys
    import time

    nb = _notebook(
        tmp_path / "nb" / "01_slow.ipynb",
        "x = 1",
        'import time, pathlib\npathlib.Path("started").write_text("1")\ntime.sleep(120)',
        "y = 2",
    )
    out = tmp_path / "out"
    out.mkdir()
    (out / "01_slow.ipynb").write_text("previous complete copy")
    env = {**os.environ, "PYTHONPATH": str(Path(rn.__file__).resolve().parents[2])}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "camlib.tools.run_notebooks",
            "--profile",
            "quick",
            "--out",
            str(out),
            "--results-dir",
            str(tmp_path / "res"),
            str(nb),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 240
    while not (nb.parent / "started").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted (signal SIGTERM)" in err
    assert (out / "01_slow.ipynb").read_text() == "previous complete copy"
    got = nbformat.read(str(out / "01_slow.interrupted.ipynb"), as_version=4)
    assert got.metadata[rn.RUN_METADATA]["status"] == "interrupted"
    assert [c.metadata.papermill["status"] for c in got.cells][-2:] == ["interrupted", "pending"]
    assert not (out / "01_slow.incomplete.ipynb").exists()


def test_longest_first_orders_by_the_reference_runtime(tmp_path):
    ref = tmp_path / "ref"
    ref.mkdir()
    for stem, seconds in (("01_a", 50.0), ("02_b", 300.0), ("03_c", 120.0)):
        (ref / f"{stem}.json").write_text(json.dumps({"runtime_s": seconds}))
    (ref / "05_e.json").write_text("{not json")
    paths = [Path(f"notebooks/{s}.ipynb") for s in ("01_a", "02_b", "03_c", "04_d", "05_e")]
    # no or unreadable reference time first (in the given order), then longest first
    assert rn.longest_first(paths, ref) == [3, 4, 1, 2, 0]
    # the committed reference: every notebook has a time, so 02/03 start before the short 04
    nbs = sorted(Path("notebooks").glob("[0-9][0-9]_*.ipynb"))
    order = [nbs[i].stem for i in rn.longest_first(nbs)]
    times = [json.loads(Path(f"results/{s}.json").read_text())["runtime_s"] for s in order]
    assert times == sorted(times, reverse=True)


def test_malloc_settings_reach_the_kernels_and_match_the_makefile(tmp_path, monkeypatch):
    for k in rn.MALLOC_ENV:
        monkeypatch.delenv(k, raising=False)
    src = "import os\nopen('malloc.txt', 'w').write(os.environ.get('MALLOC_MMAP_THRESHOLD_', 'unset') + ' ' + os.environ.get('MALLOC_TRIM_THRESHOLD_', 'unset'))"
    nb = _notebook(tmp_path / "nb" / "01_m.ipynb", src)
    [run] = rn.run_notebooks(
        [nb], tmp_path / "out", "paper", results_dir=tmp_path / "r", figures_dir=tmp_path / "f"
    )
    assert run.ok, run.error
    text = (tmp_path / "nb" / "malloc.txt").read_text()
    assert text == f"{rn.MALLOC_ENV['MALLOC_MMAP_THRESHOLD_']} {rn.MALLOC_ENV['MALLOC_TRIM_THRESHOLD_']}"
    assert all(k not in os.environ for k in rn.MALLOC_ENV)  # the caller's environment is restored
    makefile = (Path(__file__).resolve().parents[1] / "Makefile").read_text()
    for k, v in rn.MALLOC_ENV.items():
        assert f"export {k} ?= {v}\n" in makefile, k
