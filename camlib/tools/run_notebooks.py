"""Execute notebooks with papermill, one after the other or a few at a time, and summarise how each went.

    python -m camlib.run_notebooks --profile quick --out build/notebooks notebooks/*.ipynb
    python -m camlib.run_notebooks --profile quick --jobs 2 --out build/notebooks notebooks/*.ipynb
    python -m camlib.run_notebooks --profile paper --out build/notebooks/paper --param SEED=1 notebooks/03_*.ipynb
    python -m camlib.run_notebooks --profile quick --out build/notebooks --results-dir results \
        --figures-dir figures notebooks/*.ipynb      # maintainers: regenerate the committed reference

Each notebook runs in its own folder (so ``../data`` resolves as in JupyterLab) with the parameters
``PROFILE``, ``RESULTS_DIR`` and ``FIGURES_DIR`` plus every ``--param KEY=VALUE`` (VALUE read as
JSON, else as a Python literal, else kept as a string). A failing notebook does not stop the others;
the exit status is 1 when any failed, naming it and its cell error. ``--stop-on-failure`` (what
``make reproduce`` uses: later notebooks read what earlier ones write, e.g. 03-05 the checkpoints of
02) runs them one at a time in the given order and stops at the first failure, naming it and the
notebooks not run.

Executed copies, never half-written, never over the sources:

- ``OUT`` must lie outside every given notebook's folder (compared after resolving links): an ``OUT``
  equal to or inside it is refused before anything runs (exit 2), since the executed copies would
  overwrite the source notebooks or mix with them.
- papermill writes each copy, cell by cell, to ``OUT/<stem>.incomplete.ipynb``; only a notebook that
  ran to its end is renamed (``os.replace``) to ``OUT/<name>.ipynb``, so a previous good copy stays as
  it was until a new one is complete. A notebook that fails is kept as ``OUT/<stem>.failed.ipynb``,
  one stopped by Ctrl-C / SIGTERM as ``OUT/<stem>.interrupted.ipynb``; the FILE NAME says so, and so
  does the notebook's metadata ``camlib_run = {"status": "failed" | "interrupted", "error": ...}`` (a
  copy killed outright, e.g. ``kill -9``, keeps its ``.incomplete`` name). A later complete run
  removes these marked copies of its notebook.

Reference vs your run: the committed ``results/*.json`` and ``figures/*.png`` are the reference
(made by a maintainer with ``../shared`` present). A run writes its results to ``--results-dir``
(default ``build/results``) and its figures to ``--figures-dir`` (default ``build/figures``), passed
to each notebook as ``RESULTS_DIR`` / ``FIGURES_DIR`` (relative to the notebook's folder, so the
recorded paths do not depend on where the checkout lies; a ``--param RESULTS_DIR=...`` still wins)
and, for ``save_figure`` calls without a folder, as ``$CAMLIB_FIGURES_DIR``. So a user's run never
rewrites the committed files. ``results/paper.yaml`` is copied into a results folder that has none,
so that notebooks reading ``RESULTS_DIR/paper.yaml`` and ``write_results``'s paper_ref check work.

``--jobs N`` runs N notebooks at once, each kernel limited to ``--threads`` torch/OpenMP threads
(default: the CPU count divided by N, at least 1), set through ``OMP_NUM_THREADS`` and
``MKL_NUM_THREADS`` in the kernels' environment. On 2 cores the small networks of the quick profile
gain little from a second intra-op thread, while the Python parts of two notebooks (data generation,
box extraction, plotting, kernel start-up) overlap: ``make quick`` uses ``--jobs 2``.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "NotebookRun",
    "main",
    "missing_parameter",
    "parse_param",
    "parse_params",
    "run_notebook",
    "run_notebooks",
]

PROFILES = ("quick", "paper")
KERNEL_NAME = "python3"
RESULTS_DIR = "build/results"  #: default folder of a run's results files (the reference is results/)
FIGURES_DIR = "build/figures"  #: default folder of a run's figures (the reference is figures/)
REFERENCE_PAPER = Path(__file__).resolve().parents[2] / "results" / "paper.yaml"
#: the committed reference results (their runtime_s orders --jobs runs)
REFERENCE_RESULTS = REFERENCE_PAPER.parent
FIGURES_ENV = "CAMLIB_FIGURES_DIR"
INCOMPLETE, FAILED, INTERRUPTED = "incomplete", "failed", "interrupted"  #: executed-copy name marks
RUN_METADATA = "camlib_run"  #: notebook metadata key of a failed / interrupted copy's status


@dataclass(frozen=True)
class NotebookRun:
    """Outcome of one notebook: where its executed copy is, how long it took, the error if any."""

    notebook: Path
    output: Path
    seconds: float
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def parse_value(text: str) -> Any:
    """``"3"`` -> 3, ``"[1, 2]"`` -> [1, 2], ``"true"``/``"True"`` -> True, ``"cpu"`` -> "cpu"."""
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text


def parse_param(item: str) -> tuple[str, Any]:
    """Split one ``KEY=VALUE`` into ``(KEY, parsed VALUE)``; raise ValueError on a bad item."""
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key.isidentifier():
        raise ValueError(f"--param {item!r}: expected KEY=VALUE with KEY a Python name, e.g. --param SEED=1")
    if key == "PROFILE":
        raise ValueError("--param PROFILE=...: set the profile with --profile quick|paper")
    return key, parse_value(raw)


def parse_params(items: Sequence[str]) -> dict[str, Any]:
    """All ``--param`` items as a dict (a later KEY wins)."""
    return dict(parse_param(item) for item in items)


def missing_parameter(key: str, example: str, notebook: str, what: str = "") -> FileNotFoundError:
    """The error a notebook raises when a paper-profile parameter is missing, with the syntax that works:
    ``python -m camlib.run_notebooks ... --param KEY=VALUE notebooks/<notebook>.ipynb`` (papermill's
    ``-p KEY VALUE`` is not this command's syntax), or the parameters cell in JupyterLab."""
    stem = Path(notebook).stem
    return FileNotFoundError(
        f"the paper profile of {stem} needs {key}{f' ({what})' if what else ''}. Run it as\n"
        f"  python -m camlib.run_notebooks --profile paper --out build/notebooks/paper "
        f"--param {key}={example} notebooks/{stem}.ipynb\n"
        f"(`make reproduce PAPER_ARGS='--param {key}={example}'` for every notebook), or set {key} in the "
        f"parameters cell in JupyterLab."
    )


def describe_error(exc: BaseException) -> str:
    """One line for the summary: the failing cell and its exception, or the papermill error."""
    from papermill.exceptions import PapermillExecutionError

    if isinstance(exc, PapermillExecutionError):
        count = exc.exec_count if exc.exec_count is not None else "?"
        first_line = (exc.evalue or "").strip().splitlines()
        message = f"{exc.ename}: {first_line[0] if first_line else ''}".rstrip(" :")
        return f"In [{count}]: {message} (cell {exc.cell_index} of the executed copy)"
    return f"{type(exc).__name__}: {exc}".strip()


def marked_copy(output: Path, mark: str) -> Path:
    """``OUT/<stem>.<mark>.ipynb``: where an executed copy that is ``incomplete``, ``failed`` or
    ``interrupted`` lies (``output`` is the complete copy ``OUT/<name>.ipynb``)."""
    return output.with_name(f"{output.stem}.{mark}{output.suffix}")


def _finish_marked(partial: Path, output: Path, status: str, error: str) -> Path:
    """Rename a partial executed copy to ``<stem>.<status>.ipynb`` with ``camlib_run`` metadata (through
    the one atomic writer); return that path (absent when papermill wrote nothing)."""
    import nbformat

    from camlib.tools.results import atomic_write_text

    target = marked_copy(output, status)
    if not partial.is_file():
        return target
    try:
        nb = nbformat.read(str(partial), as_version=4)
    except Exception:  # noqa: BLE001 - a copy cut mid-write: keep its bytes, the name still says what it is
        os.replace(partial, target)
        return target
    nb.metadata[RUN_METADATA] = {"status": status, "error": error}
    _mark_cells(nb)
    atomic_write_text(target, nbformat.writes(nb))
    partial.unlink(missing_ok=True)
    _clear_marks(output, keep=status)
    return target


def _mark_cells(nb) -> None:
    """Correct papermill's per-cell status in a stopped copy: papermill marks EVERY cell "completed" when
    interrupted. A cell that never started becomes "pending"; one that started without ending, or ended
    in a KeyboardInterrupt, "interrupted" (with ``exception: true``)."""
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("papermill")
        if cell.get("cell_type") != "code" or not isinstance(meta, dict):
            continue
        stopped = any(
            o.get("output_type") == "error" and o.get("ename") == "KeyboardInterrupt"
            for o in cell.get("outputs", [])
        )
        if meta.get("start_time") is None:
            meta["status"] = "pending"
        elif stopped or meta.get("end_time") is None:
            meta.update(status=INTERRUPTED, exception=True)


def _clear_marks(output: Path, keep: str | None = None) -> None:
    """Remove the failed / interrupted / incomplete copies of this notebook but ``keep``."""
    for mark in (FAILED, INTERRUPTED, INCOMPLETE):
        if mark != keep:
            marked_copy(output, mark).unlink(missing_ok=True)


def run_notebook(
    notebook: Path,
    out_dir: Path,
    parameters: dict[str, Any],
    *,
    log_output: bool = False,
    timeout: float | None = None,
) -> NotebookRun:
    """Execute one notebook into ``out_dir/<name>.ipynb`` through ``<stem>.incomplete.ipynb`` (renamed on
    success; see the module docstring); never raises for a notebook error. An interruption
    (KeyboardInterrupt, SystemExit) marks the copy ``interrupted`` and is re-raised."""
    import papermill as pm

    notebook = Path(notebook)
    output = Path(out_dir) / notebook.name
    partial = marked_copy(output, INCOMPLETE)
    start = time.perf_counter()
    if not notebook.is_file():
        return NotebookRun(notebook, output, 0.0, f"notebook not found: {notebook}")
    partial.unlink(missing_ok=True)
    try:
        pm.execute_notebook(
            str(notebook),
            str(partial.resolve()),
            parameters=parameters,
            kernel_name=KERNEL_NAME,
            cwd=str(notebook.resolve().parent),
            progress_bar=False,
            log_output=log_output,
            execution_timeout=timeout,
        )
    except Exception as exc:  # papermill errors, a dead kernel, a bad notebook file
        error = describe_error(exc)
        return NotebookRun(
            notebook, _finish_marked(partial, output, FAILED, error), time.perf_counter() - start, error
        )
    except BaseException as exc:  # Ctrl-C, SIGTERM (see main): mark the copy, then stop
        _finish_marked(
            partial,
            output,
            INTERRUPTED,
            f"interrupted ({type(exc).__name__}) after {time.perf_counter() - start:.1f} s",
        )
        raise
    os.replace(partial, output)
    _clear_marks(output)
    return NotebookRun(notebook, output, time.perf_counter() - start)


def check_out_dir(out_dir: str | Path, notebooks: Sequence[str | Path]) -> Path:
    """``out_dir`` resolved (links followed); ValueError when it is, or lies inside, the folder of one of
    ``notebooks``: the executed copies would overwrite the sources (``--out notebooks``) or mix with them."""
    out = Path(out_dir).expanduser().resolve()
    for nb in notebooks:
        folder = Path(nb).expanduser().resolve().parent
        if out == folder or folder in out.parents:
            where = "is" if out == folder else "lies inside"
            raise ValueError(
                f"--out {out_dir} ({out}) {where} the folder of {nb} ({folder}): the executed copies would "
                f"overwrite or mix with the source notebooks. Fix: pass a folder outside it, e.g. --out build/notebooks"
            )
    return out


def run_notebooks(
    notebooks: Sequence[str | Path],
    out_dir: str | Path,
    profile: str,
    params: dict[str, Any] | None = None,
    *,
    log_output: bool = False,
    timeout: float | None = None,
    jobs: int = 1,
    threads: int | None = None,
    results_dir: str | Path = RESULTS_DIR,
    figures_dir: str | Path = FIGURES_DIR,
    stop_on_failure: bool = False,
) -> list[NotebookRun]:
    """Run every notebook (all of them, even after a failure, unless ``stop_on_failure``); print one line
    each. With ``stop_on_failure`` (one at a time only) the list ends at the first failed notebook.

    ``jobs``: how many run at once, the next starting when one ends; with ``jobs > 1`` the longest first
    (:func:`longest_first`, by the reference run's ``runtime_s``), so the last to start are the short ones
    and no core idles while one long notebook finishes alone. The returned list keeps the given order. ``threads``: torch/OpenMP threads per kernel (``None``: unchanged when
    ``jobs == 1``, else ``cpu_count // jobs``, at least 1). ``results_dir`` / ``figures_dir``
    (relative to the current folder): where the notebooks write, passed as ``RESULTS_DIR`` /
    ``FIGURES_DIR`` unless ``params`` sets them.
    """
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    if profile not in PROFILES:
        raise ValueError(f"profile {profile!r}: expected one of {', '.join(PROFILES)}")
    if stop_on_failure and jobs != 1:
        raise ValueError("--stop-on-failure runs the notebooks one at a time, in order: drop --jobs")
    paths = [Path(nb) for nb in notebooks]
    _check_unique_names(paths)
    check_out_dir(out_dir, paths)  # before any work
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    parameters = {"PROFILE": profile, **(params or {})}
    base = paths[0].resolve().parent if paths else Path.cwd()
    results_dir = _folder(parameters.get("RESULTS_DIR"), results_dir, base)
    figures_dir = _folder(parameters.get("FIGURES_DIR"), figures_dir, base)
    _copy_paper_yaml(results_dir)
    per_notebook = [_with_folders(parameters, path, results_dir, figures_dir) for path in paths]
    if threads is None and jobs > 1:
        threads = max(1, (os.cpu_count() or 1) // jobs)
    n = len(paths)

    def done(i: int, run: NotebookRun) -> NotebookRun:
        status = "ok" if run.ok else f"FAILED: {run.error}"
        print(f"[{i}/{n}] {run.notebook.name}: {status} in {run.seconds:.1f} s -> {run.output}", flush=True)
        return run

    saved = {k: os.environ.get(k) for k in (*_THREAD_VARS, *MALLOC_ENV, FIGURES_ENV)}
    for k, v in MALLOC_ENV.items():  # the kernels' C allocator; a value the caller set is kept
        os.environ.setdefault(k, v)
    if threads is not None:  # the kernels papermill starts inherit this environment
        os.environ.update({k: str(threads) for k in _THREAD_VARS})
    os.environ[FIGURES_ENV] = str(figures_dir)  # save_figure(fig, name) without a folder
    try:
        if jobs == 1:
            runs = []
            for i, path in enumerate(paths, 1):
                print(f"[{i}/{n}] {path} ({profile}) ...", flush=True)
                runs.append(
                    done(
                        i,
                        run_notebook(path, out, per_notebook[i - 1], log_output=log_output, timeout=timeout),
                    )
                )
                if stop_on_failure and not runs[-1].ok:
                    rest = [p.name for p in paths[i:]]
                    print(
                        f"STOPPED at the first failure, {path.name}; not run: {', '.join(rest) or 'none'}",
                        flush=True,
                    )
                    break
            return runs
        from concurrent.futures import ProcessPoolExecutor, as_completed

        print(f"running {n} notebook(s), {jobs} at a time, {threads} thread(s) each", flush=True)
        with ProcessPoolExecutor(max_workers=min(jobs, n)) as pool:
            futures = {
                pool.submit(
                    run_notebook, paths[i], out, per_notebook[i], log_output=log_output, timeout=timeout
                ): i
                for i in longest_first(paths)
            }
            results: dict[int, NotebookRun] = {}
            for fut in as_completed(futures):
                i = futures[fut]
                results[i] = done(i + 1, fut.result())
        return [results[i] for i in range(n)]
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")

#: glibc malloc settings for the kernels (the Makefile exports the same for every target; a test ties them).
#: A CNN forward pass on CPU allocates activation buffers of tens of MiB per batch (Lite0 at 224 x 224: 32 MiB
#: for 8 images in its first layer). Above glibc's mmap threshold (dynamic, at most 32 MiB) each buffer is a
#: fresh mmap that the kernel must zero page by page, and free() trims the heap back: measured here, 40 images
#: through Lite0 in batches of 20 cost 1.4 s of compute and 2.2-2.7 s of system time; with these two settings
#: the system time is 0.0 s and the arithmetic (so every number) is the same. The cost: a kernel keeps up to
#: 1 GiB of freed memory for reuse instead of returning it to the system.
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(256 << 20), "MALLOC_TRIM_THRESHOLD_": str(1 << 30)}


def longest_first(paths: Sequence[Path], reference: str | Path = REFERENCE_RESULTS) -> list[int]:
    """Indices of ``paths`` in the order to start them on several workers: by the reference run's
    ``runtime_s`` (``<reference>/<notebook stem>.json``), longest first — the LPT rule, whose makespan is
    at most 4/3 of the best possible. A notebook without a readable reference time goes first (it may be
    long); ties keep the given order."""

    def seconds(path: Path) -> float:
        try:
            record = json.loads((Path(reference) / f"{path.stem}.json").read_text(encoding="utf-8"))
            return float(record["runtime_s"])
        except (OSError, ValueError, KeyError, TypeError):
            return float("inf")

    times = [seconds(p) for p in paths]
    return sorted(range(len(paths)), key=lambda i: -times[i])


def _folder(param: Any, default: str | Path, base: Path) -> Path:
    """The absolute folder a notebook will write to: a ``--param`` value (relative to the notebooks'
    folder ``base``, as the notebook reads it) or else ``default`` (relative to the current folder)."""
    if param is None:
        return Path(default).resolve()
    return (base / str(param)).resolve()


def _declared(notebook: Path) -> set[str] | None:
    """The names the notebook's ``parameters`` cell declares (None when it cannot be read)."""
    try:
        import papermill as pm

        return set(pm.inspect_notebook(str(notebook)))
    except Exception:  # missing or broken notebook: run_notebook reports it
        return None


def _with_folders(
    parameters: dict[str, Any], notebook: Path, results_dir: Path, figures_dir: Path
) -> dict[str, Any]:
    """``parameters`` plus RESULTS_DIR / FIGURES_DIR relative to ``notebook``'s folder, for the ones
    its parameters cell declares (papermill warns about others) and ``parameters`` does not set."""
    here = notebook.resolve().parent
    folders = {
        "RESULTS_DIR": os.path.relpath(results_dir, here),
        "FIGURES_DIR": os.path.relpath(figures_dir, here),
    }
    declared = _declared(notebook)
    return {**{k: v for k, v in folders.items() if declared is None or k in declared}, **parameters}


def _copy_paper_yaml(results_dir: Path, source: Path | None = None) -> None:
    """Put the reference ``results/paper.yaml`` into a results folder that has none (a build folder),
    through the one atomic writer."""
    from camlib.tools.results import atomic_write_text

    source = REFERENCE_PAPER if source is None else source
    target = results_dir / "paper.yaml"
    if source.is_file() and not target.exists():
        atomic_write_text(target, source.read_text(encoding="utf-8"))


def _check_unique_names(paths: Sequence[Path]) -> None:
    seen: dict[str, Path] = {}
    for path in paths:
        if path.name in seen and seen[path.name] != path:
            raise ValueError(
                f"{seen[path.name]} and {path} would both be written as {path.name}; run them apart"
            )
        seen[path.name] = path


def summary(runs: Sequence[NotebookRun]) -> str:
    """A fixed-width table: notebook, status, seconds; then the total."""
    width = max([len("notebook"), *(len(r.notebook.name) for r in runs)])
    lines = [f"{'notebook':<{width}}  status  time", f"{'-' * width}  ------  ------"]
    lines += [
        f"{r.notebook.name:<{width}}  {'ok' if r.ok else 'FAILED':<6}  {r.seconds:6.1f} s" for r in runs
    ]
    total = sum(r.seconds for r in runs)
    failed = sum(not r.ok for r in runs)
    lines.append(f"{len(runs)} notebook(s), {failed} failed, {total:.1f} s in all")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m camlib.run_notebooks", description="Execute notebooks with papermill."
    )
    parser.add_argument("--profile", required=True, choices=PROFILES, help="value of the PROFILE parameter")
    parser.add_argument("--out", required=True, help="folder for the executed copies")
    parser.add_argument(
        "--param", "-p", action="append", default=[], metavar="KEY=VALUE", help="extra parameter (repeatable)"
    )
    parser.add_argument("--log-output", action="store_true", help="stream the notebooks' output")
    parser.add_argument("--timeout", type=float, default=None, help="per-cell timeout in seconds")
    parser.add_argument("--jobs", "-j", type=int, default=1, help="notebooks run at once (default 1)")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch/OpenMP threads per kernel (default: CPU count / jobs when jobs > 1)",
    )
    parser.add_argument(
        "--results-dir",
        default=RESULTS_DIR,
        help=f"folder for the results files, passed as RESULTS_DIR (default {RESULTS_DIR}; "
        "the committed reference is results/)",
    )
    parser.add_argument(
        "--figures-dir",
        default=FIGURES_DIR,
        help=f"folder for the figures, passed as FIGURES_DIR (default {FIGURES_DIR}; "
        "the committed reference is figures/)",
    )
    parser.add_argument(
        "--stop-on-failure",
        "-x",
        action="store_true",
        help="stop at the first failed notebook (one at a time, in order; make reproduce)",
    )
    parser.add_argument("notebooks", nargs="*", metavar="NOTEBOOK")
    return parser


def _interrupt(signum: int, _frame) -> None:
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns 0 when every notebook ran, 1 when one failed, 2 on bad arguments, 130
    when interrupted (Ctrl-C or SIGTERM: the running notebooks' copies are marked ``interrupted``)."""
    args = build_parser().parse_args(argv)
    if not args.notebooks:
        print(
            "camlib.tools.run_notebooks: no notebooks given. Pass their paths, e.g.\n"
            "  python -m camlib.run_notebooks --profile quick --out build/notebooks notebooks/*.ipynb\n"
            "(`make quick` does this for notebooks/[0-9][0-9]_*.ipynb).",
            file=sys.stderr,
        )
        return 2
    main_thread = threading.current_thread() is threading.main_thread()  # signal handlers live there only
    previous = signal.signal(signal.SIGTERM, _interrupt) if main_thread else None  # SIGTERM: as Ctrl-C
    try:
        params = parse_params(args.param)
        runs = run_notebooks(
            args.notebooks,
            args.out,
            args.profile,
            params,
            log_output=args.log_output,
            timeout=args.timeout,
            jobs=args.jobs,
            threads=args.threads,
            results_dir=args.results_dir,
            figures_dir=args.figures_dir,
            stop_on_failure=args.stop_on_failure,
        )
    except ValueError as exc:
        print(f"camlib.tools.run_notebooks: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        print(
            f"camlib.tools.run_notebooks: interrupted ({exc or 'Ctrl-C'}); the running notebooks' copies in "
            f"{args.out} are named <notebook>.{INTERRUPTED}.ipynb",
            file=sys.stderr,
        )
        return 130
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
    print("\n" + summary(runs))
    failed = [r for r in runs if not r.ok]
    for run in failed:
        print(f"FAILED {run.notebook}: {run.error}\n  executed copy: {run.output}", file=sys.stderr)
    if failed and len(runs) < len(args.notebooks):
        rest = [Path(nb).name for nb in args.notebooks[len(runs) :]]
        print(
            f"STOPPED at {failed[-1].notebook.name} (--stop-on-failure); not run: {', '.join(rest)}",
            file=sys.stderr,
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
