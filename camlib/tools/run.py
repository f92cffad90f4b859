"""The first and the last line of every notebook: :func:`start_run` and :meth:`Run.write_results`.

::

    import camlib as cl

    RUN = cl.start_run("04_fine_grained_cub", globals())
    ...
    RUN.write_results(metrics=metrics, comparisons=comparisons, options=options)

:func:`start_run` checks ``PROFILE`` (``"quick"`` or ``"paper"``, else a ValueError saying how to set it),
seeds python, numpy and torch with ``SEED`` (:func:`camlib.models.train.seed_everything`), starts the
clock, and records the notebook's parameters: their NAMES from the notebook's cell tagged
``parameters`` (read from ``notebooks/<name>.ipynb``, the one place they are declared) and their VALUES
from the namespace it is given, i.e. after papermill injected its overrides. :meth:`Run.write_results`
then calls :func:`camlib.tools.results.write_results` with ``parameters``, ``profile`` and ``started``
filled in, so no notebook types its parameters twice.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any

from camlib.evaluation.paper_numbers import paper_values  # noqa: F401  (re-exported: camlib.paper_values)

__all__ = ["PROFILES", "Run", "find_notebook", "notebook_parameter_names", "paper_values", "start_run"]

PROFILES = ("quick", "paper")


def find_notebook(name: str, search: Iterable[str | Path] | None = None) -> Path:
    """The file ``<name>.ipynb``: looked up in ``search`` (default: the working directory, which papermill
    and Jupyter set to ``notebooks/``, then ``./notebooks``, then the ``notebooks/`` folder beside the
    camlib package). FileNotFoundError naming the folders tried and the fix otherwise."""
    stem = name.removesuffix(".ipynb")
    if search is None:
        repo = Path(__file__).resolve().parents[2]
        search = (Path.cwd(), Path.cwd() / "notebooks", repo / "notebooks")
    tried = []
    for folder in search:
        path = Path(folder) / f"{stem}.ipynb"
        if path.is_file():
            return path
        tried.append(str(Path(folder)))
    raise FileNotFoundError(
        f"notebook {stem}.ipynb not found in {', '.join(tried)}: start_run reads the names of the "
        f"parameters from its cell tagged 'parameters'; pass notebook_path=... or parameter_names=[...]"
    )


def notebook_parameter_names(path: str | Path) -> list[str]:
    """Names assigned in the notebook's one cell tagged ``parameters``, in order (ValueError otherwise)."""
    from camlib.tools.notebook_tools import PARAMETERS_TAG, parameter_names, read

    cells = [c for c in read(path).cells if PARAMETERS_TAG in c.get("metadata", {}).get("tags", [])]
    if len(cells) != 1:
        raise ValueError(f"{path}: {len(cells)} cells tagged 'parameters', expected exactly one")
    try:
        return parameter_names(cells[0].source)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from exc


def _plain(value: Any) -> Any:
    """Paths (anywhere in lists, tuples and dicts) become strings, as the results files store them."""
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


@dataclass
class Run:
    """One execution of a notebook: its name, profile, seed, start time and parameters (name -> value)."""

    notebook: str
    profile: str
    seed: int
    parameters: dict[str, Any]
    started: float = field(default_factory=time.time)
    results_dir: str | Path = "../results"

    @property
    def elapsed(self) -> float:
        """Seconds since :func:`start_run`."""
        return time.time() - self.started

    def write_results(
        self,
        *,
        metrics: dict,
        comparisons: list[dict] | None = None,
        options: dict | None = None,
        parameters: Mapping[str, Any] | None = None,
        data: list | None = None,
        results_dir: str | Path | None = None,
        quiet: bool = False,
    ) -> Path:
        """Write ``<results_dir>/<notebook>.json`` (:func:`camlib.tools.results.write_results`) and return it.

        The recorded parameters are every parameter of the notebook's ``parameters`` cell, updated with
        ``parameters`` (values computed from them, e.g. a resolved data folder, or settings that are not
        papermill parameters such as the SVM's C grid); Paths are stored as strings. ``data``: the data
        measured (:func:`camlib.tools.results.write_results`' provenance rows). ``results_dir``
        defaults to the notebook's ``RESULTS_DIR`` parameter. Prints where it wrote, unless ``quiet``.
        """
        from camlib.tools.results import write_results

        path = write_results(
            self.notebook,
            metrics=metrics,
            profile=self.profile,
            parameters=_plain({**self.parameters, **(parameters or {})}),
            started=self.started,
            comparisons=comparisons,
            options=options,
            data=data,
            results_dir=self.results_dir if results_dir is None else results_dir,
        )
        if not quiet:
            print(f"wrote {path} after {self.elapsed:.0f} s")
        return path


def start_run(
    notebook: str,
    namespace: Mapping[str, Any],
    *,
    notebook_path: str | Path | None = None,
    parameter_names: Iterable[str] | None = None,
    seed: bool = True,
) -> Run:
    """Begin a notebook run: validate ``PROFILE``, seed everything with ``SEED``, start the clock.

    ``notebook``: the file name without folder, e.g. ``"04_fine_grained_cub"``. ``namespace``: the
    notebook's ``globals()``. The parameter names come from ``parameter_names`` when given, else from
    the cell tagged ``parameters`` of ``notebook_path`` (default :func:`find_notebook`); each must be
    defined in ``namespace``. Values are copied now, so later cells cannot change what is recorded.
    """
    started = time.time()
    names = (
        list(parameter_names)
        if parameter_names is not None
        else notebook_parameter_names(notebook_path if notebook_path is not None else find_notebook(notebook))
    )
    missing = [n for n in ("PROFILE", "SEED", *names) if n not in namespace]
    if missing:
        raise NameError(
            f"{notebook}: parameter(s) {', '.join(dict.fromkeys(missing))} not defined: run the "
            "parameters cell before start_run"
        )
    profile = namespace["PROFILE"]
    if profile not in PROFILES:
        raise ValueError(
            f"{notebook}: PROFILE must be 'quick' or 'paper', got {profile!r} "
            "(set it in the parameters cell, or run with `-p PROFILE quick`)"
        )
    seed_value = namespace["SEED"]
    if isinstance(seed_value, bool) or not isinstance(seed_value, int):
        raise ValueError(f"{notebook}: SEED must be an int, got {seed_value!r}")
    if seed:
        from camlib.models.train import seed_everything

        seed_everything(seed_value)
    values = {n: copy.deepcopy(namespace[n]) for n in names}
    return Run(
        notebook=notebook.removesuffix(".ipynb"),
        profile=profile,
        seed=seed_value,
        parameters=values,
        started=started,
        results_dir=namespace.get("RESULTS_DIR", "../results"),
    )
