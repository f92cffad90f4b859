"""camlib.tools.run (start_run / Run.write_results) and the lazy public names of ``import camlib``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch
from nbformat.v4 import new_code_cell, new_notebook

import camlib
from camlib.tools.notebook_tools import parameter_names
from camlib.tools.run import Run, find_notebook, notebook_parameter_names, start_run

from .conftest import REPO

PARAMS = 'PROFILE = "quick"\nSEED = 3\nDEVICE = "cpu"\nINTERACTIVE = False\nDATA = None\nRESULTS_DIR = "res"'


def _notebook(tmp_path: Path, name: str = "42_tiny") -> Path:
    nb = new_notebook(
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    )
    nb.cells = [new_code_cell(PARAMS, metadata={"tags": ["parameters"]}), new_code_cell("x = 1")]
    path = tmp_path / f"{name}.ipynb"
    nbformat.write(nb, str(path))
    return path


def _namespace(tmp_path: Path, **overrides) -> dict:
    ns: dict = {}
    exec(PARAMS, ns)  # the parameters cell, as the kernel runs it
    ns.update(RESULTS_DIR=str(tmp_path / "res"), **overrides)  # papermill's injected overrides
    return ns


def test_start_run_reads_names_from_the_cell_and_values_from_the_namespace(tmp_path):
    path = _notebook(tmp_path)
    ns = _namespace(tmp_path, DATA=tmp_path / "data", EXTRA_NOT_A_PARAMETER=1)
    run = start_run("42_tiny", ns, notebook_path=path)
    assert isinstance(run, Run) and run.profile == "quick" and run.seed == 3
    assert list(run.parameters) == ["PROFILE", "SEED", "DEVICE", "INTERACTIVE", "DATA", "RESULTS_DIR"]
    assert run.parameters["DATA"] == tmp_path / "data"
    ns["SEED"] = 99  # later cells cannot change what is recorded
    assert run.parameters["SEED"] == 3


def test_start_run_seeds_everything(tmp_path):
    path = _notebook(tmp_path)
    start_run("42_tiny", _namespace(tmp_path), notebook_path=path)
    a = (torch.rand(3), np.random.rand(3))
    start_run("42_tiny", _namespace(tmp_path), notebook_path=path)
    b = (torch.rand(3), np.random.rand(3))
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1])


@pytest.mark.parametrize("profile", ["fast", None, "Quick"])
def test_start_run_refuses_a_bad_profile(tmp_path, profile):
    with pytest.raises(ValueError, match="PROFILE must be 'quick' or 'paper'.*-p PROFILE quick"):
        start_run("42_tiny", _namespace(tmp_path, PROFILE=profile), notebook_path=_notebook(tmp_path))


def test_start_run_names_a_missing_parameter_and_a_bad_seed(tmp_path):
    ns = _namespace(tmp_path)
    del ns["DATA"]
    with pytest.raises(NameError, match="DATA not defined"):
        start_run("42_tiny", ns, notebook_path=_notebook(tmp_path))
    with pytest.raises(ValueError, match="SEED must be an int"):
        start_run("42_tiny", _namespace(tmp_path, SEED="0"), notebook_path=_notebook(tmp_path))


def test_find_notebook(tmp_path, monkeypatch):
    assert find_notebook("04_fine_grained_cub") == REPO / "notebooks" / "04_fine_grained_cub.ipynb"
    _notebook(tmp_path)
    monkeypatch.chdir(tmp_path)  # papermill's cwd: the notebook's folder
    assert find_notebook("42_tiny.ipynb") == tmp_path / "42_tiny.ipynb"
    with pytest.raises(FileNotFoundError, match="notebook 43_none.ipynb not found in .*parameter_names"):
        find_notebook("43_none")


def test_write_results_fills_parameters_profile_and_started(tmp_path, capsys):
    path = _notebook(tmp_path)
    run = start_run("42_tiny", _namespace(tmp_path, DATA=tmp_path / "data"), notebook_path=path)
    out = run.write_results(
        metrics={"acc": np.float32(0.5)}, parameters={"svm_Cs": [0.1, 1.0], "DATA": Path("x")}
    )
    assert out == tmp_path / "res" / "42_tiny.json"
    assert f"wrote {out} after" in capsys.readouterr().out
    record = json.loads(out.read_text())
    assert record["profile"] == "quick" and record["metrics"] == {"acc": 0.5}
    assert record["parameters"] == {
        "PROFILE": "quick",
        "SEED": 3,
        "DEVICE": "cpu",
        "INTERACTIVE": False,
        "DATA": "x",
        "RESULTS_DIR": str(tmp_path / "res"),
        "svm_Cs": [0.1, 1.0],
    }
    assert 0 <= record["runtime_s"] < 60


def test_every_notebook_starts_and_ends_through_run():
    """The nine notebooks: the cell after the parameters cell calls start_run with the notebook's own
    name, the results are written through the run, and every parameter name can be read."""
    for path in sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        nb = nbformat.read(str(path), 4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        first = next(i for i, c in enumerate(code) if "parameters" in c.metadata.get("tags", []))
        assert f'RUN = cl.start_run("{path.stem}", globals())' in code[first + 1].source, path.name
        assert not any("PROFILE not in" in c.source or "assert PROFILE" in c.source for c in code), path.name
        assert sum("RUN.write_results(" in c.source for c in code) == 1, path.name
        assert notebook_parameter_names(path) == parameter_names(code[first].source)


def test_import_camlib_is_lazy_and_exports_the_core():
    code = "import sys, camlib; print(sorted(m for m in ('torch', 'numpy', 'camlib.core.cam') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert done.stdout.strip() == "[]"
    from camlib.core.cam import CAM, PAPER_OPTIONS
    from camlib.evaluation.stats import verdict

    assert camlib.CAM is CAM and camlib.PAPER_OPTIONS is PAPER_OPTIONS and camlib.verdict is verdict
    assert camlib.start_run is start_run
    for name in camlib.__all__:
        assert getattr(camlib, name) is not None, name
    assert "start_run" in dir(camlib)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        camlib.nope  # noqa: B018
