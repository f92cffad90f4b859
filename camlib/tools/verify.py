"""``make verify``: re-run notebooks and check that their numbers come back.

Each notebook is deterministic for a fixed machine, package versions and thread count (re-runs are
bit-identical), but its numbers move with any of them: float reductions are summed in another order with
another thread count or CPU, and a moved logit can flip a top-1 or a box. So the check has two levels:

- **same setup** (the run's ``machine`` dict, package ``versions`` and profile equal the reference's;
  the thread count is part of ``machine``): every metric must be IDENTICAL to the committed one;
- **another setup**: a number stored with its 95% interval (an Estimate dict, ``{"value", "low", "high",
  "n", "level"}``) passes when the new value lies inside the reference interval; a plain number, string,
  list or flag that differs cannot be judged without an interval and is listed as ``unjudged`` (a
  failure only with ``--strict``).

Timings, memory, cache state and file paths (``seconds``, ``*_s``, ``fps``, ``rss_*``, ``*_mb``,
``*_cached``, ``root``, ``input``, ...; :func:`is_resource_metric`) are never compared: they describe the
machine and the run (a checkout elsewhere finds ``../shared`` at another absolute path), not the method. A reference metric missing from the run
is a mismatch; a metric only in the run is listed as ``new``. Comparison rows' ``reproduced`` values are
checked like metrics (``comparisons[<metric>]``).

Command line (``make verify NOTEBOOKS="01 03"``)::

    python -m camlib.tools.verify [NOTEBOOK ...] [--reference results] [--out build/verify] [--jobs 1]
        [--threads N] [--no-run] [--strict]

NOTEBOOK is a path, a file name or a prefix (``01``); none means every ``notebooks/NN_*.ipynb``. The runs
use the quick profile and, unless ``--threads`` says otherwise, the thread count recorded in the reference
(:data:`REFERENCE_THREADS` for the committed files), writing executed notebooks, results and figures under
``--out`` (never over ``results/``). ``--no-run`` compares results already in ``<out>/results``. Every
metric outside is printed; ``<out>/verify.json`` holds the whole comparison. Exit status 0: all agree;
1: a mismatch; 2: a notebook failed or a file is missing.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from camlib.tools.report import flatten
from camlib.tools.results import is_estimate, load_results

__all__ = [
    "REFERENCE_THREADS",
    "Verdict",
    "compare_results",
    "is_resource_metric",
    "main",
    "same_setup",
    "select_notebooks",
]

#: the torch/OpenMP threads per kernel the committed reference results were made with (``make
#: refresh-results``: JOBS=2, one thread each); tests/test_verify.py checks every committed file says so
REFERENCE_THREADS = 1

_RESOURCE_SEGMENT = re.compile(
    r"^(seconds|cpu_seconds|timings_s|fps|peak_rss_ratio|rss_growth_ratio|peak_within_1p5x)$"
    r"|_seconds$|^seconds_|_s$|^rss_|_mb$|_cached$"
    r"|^(root|input|output|path|gif)$|_(path|root|dir)$"
)


def is_resource_metric(name: str) -> bool:
    """True for a metric that measures the machine or the run's conditions (time, speed, memory, whether a
    cache was warm, where the files lie), by any dotted segment of its name: ``seconds``, ``*_seconds``,
    ``seconds_*``, ``*_s``, ``fps``, ``rss_*``, ``*_mb``, the memory ratios, ``*_cached``, and the paths
    ``root``, ``input``, ``output``, ``path``, ``gif``, ``*_path``, ``*_root``, ``*_dir``."""
    return any(_RESOURCE_SEGMENT.search(seg) for seg in name.split("."))


def same_setup(ref: dict, new: dict) -> bool:
    """Would the run reproduce the reference bit for bit: same profile, machine (platform, Python, CPU
    count, torch threads, CUDA device) and package versions."""
    return (
        ref.get("profile") == new.get("profile")
        and ref.get("machine") == new.get("machine")
        and ref.get("versions") == new.get("versions")
    )


@dataclass
class Verdict:
    """One notebook's comparison: ``identical``, ``within_ci`` and ``skipped`` (resource) counts, and the
    rows ``outside`` (mismatches), ``missing`` (reference metrics the run lacks), ``unjudged`` (differ,
    no interval, another setup) and ``new`` (metrics only in the run)."""

    notebook: str
    same_setup: bool
    identical: int = 0
    within_ci: int = 0
    skipped: int = 0
    outside: list[dict] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unjudged: list[dict] = field(default_factory=list)
    new: list[str] = field(default_factory=list)

    def ok(self, strict: bool = False) -> bool:
        return not self.outside and not self.missing and not (strict and self.unjudged)


def _values(record: dict) -> dict[str, Any]:
    vals = flatten(record.get("metrics", {}))
    for row in record.get("comparisons", []):
        vals[f"comparisons[{row.get('metric')}]"] = row.get("reproduced")
    return vals


def _point(v: Any) -> Any:
    return v["value"] if is_estimate(v) else v


def compare_results(ref: dict, new: dict, *, same: bool | None = None) -> Verdict:
    """Compare a run's results record with the reference record of the same notebook (module docstring).
    ``same``: force the setup decision (default :func:`same_setup`)."""
    same = same_setup(ref, new) if same is None else same
    out = Verdict(ref.get("notebook", "?"), same)
    rv, nv = _values(ref), _values(new)
    out.new = sorted(k for k in nv if k not in rv)
    for key, r in rv.items():
        if is_resource_metric(key):
            out.skipped += 1
            continue
        if key not in nv:
            out.missing.append(key)
            continue
        n = nv[key]
        if n == r:
            out.identical += 1
            continue
        row = {"metric": key, "reference": r, "run": n}
        if same:
            out.outside.append({**row, "why": "differs on the same setup"})
        elif is_estimate(r) and isinstance(_point(n), (int, float)) and not isinstance(_point(n), bool):
            if r["low"] <= _point(n) <= r["high"]:
                out.within_ci += 1
            else:
                out.outside.append({**row, "why": f"outside the reference {100 * r['level']:g}% CI"})
        else:
            out.unjudged.append({**row, "why": "differs; no interval to judge it on another setup"})
    return out


def select_notebooks(names: Sequence[str], folder: str | Path = "notebooks") -> list[Path]:
    """Notebook paths for paths, file names or prefixes (``01``, ``01_cam_basics``); all when empty."""
    folder = Path(folder)
    every = sorted(folder.glob("[0-9][0-9]_*.ipynb"))
    if not names:
        return every
    chosen: list[Path] = []
    for name in names:
        p = Path(name)
        if p.suffix == ".ipynb" and p.is_file():
            chosen.append(p)
            continue
        hits = [nb for nb in every if nb.stem == p.stem or nb.name.startswith(p.name)]
        if len(hits) != 1:
            known = ", ".join(nb.stem for nb in every)
            raise ValueError(f"{name!r} names {len(hits)} notebooks of {folder} (one needed; known: {known})")
        chosen.append(hits[0])
    return list(dict.fromkeys(chosen))


def _short(v: Any) -> str:
    text = json.dumps(v, default=str)
    return text if len(text) <= 70 else text[:67] + "..."


def report(verdicts: Sequence[Verdict], strict: bool = False) -> str:
    lines = []
    for v in verdicts:
        status = "OK" if v.ok(strict) else "MISMATCH"
        mode = "same setup: identical required" if v.same_setup else "other setup: within the reference CIs"
        lines.append(
            f"{v.notebook}: {status} ({mode}) — identical {v.identical}, within CI {v.within_ci}, "
            f"outside {len(v.outside)}, missing {len(v.missing)}, unjudged {len(v.unjudged)}, "
            f"new {len(v.new)}, timing/memory skipped {v.skipped}"
        )
        for row in v.outside:
            lines.append(
                f"  OUTSIDE {row['metric']}: reference {_short(row['reference'])}, run {_short(row['run'])} "
                f"({row['why']})"
            )
        for key in v.missing:
            lines.append(f"  MISSING {key}")
        for row in v.unjudged:
            flag = "UNJUDGED(strict: mismatch)" if strict else "unjudged"
            lines.append(
                f"  {flag} {row['metric']}: reference {_short(row['reference'])}, run {_short(row['run'])}"
            )
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m camlib.tools.verify",
        description="Re-run notebooks (quick profile) and compare their metrics with results/.",
    )
    p.add_argument("notebooks", nargs="*", help="paths, names or prefixes (01); default: every notebook")
    p.add_argument("--reference", default="results", help="the committed results folder (default results)")
    p.add_argument("--out", default="build/verify", help="where the runs write (default build/verify)")
    p.add_argument("--notebook-dir", default="notebooks", help="where the notebooks are (default notebooks)")
    p.add_argument("--jobs", type=int, default=1, help="notebooks run at once (default 1)")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="threads per kernel (default: the thread count recorded in the reference files)",
    )
    p.add_argument("--no-run", action="store_true", help="compare the results already in <out>/results")
    p.add_argument("--strict", action="store_true", help="values that differ without an interval fail too")
    return p


def _reference_threads(refs: dict[str, dict]) -> int:
    counts = {r["machine"].get("torch_threads") for r in refs.values()}
    if len(counts) != 1 or None in counts:
        raise ValueError(
            f"the reference files were made with different thread counts {sorted(map(str, counts))}; "
            "give --threads or verify them apart"
        )
    return int(counts.pop())


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        paths = select_notebooks(args.notebooks, args.notebook_dir)
        ref_dir, out = Path(args.reference), Path(args.out)
        refs = {}
        for nb in paths:
            f = ref_dir / f"{nb.stem}.json"
            if not f.is_file():
                raise FileNotFoundError(f"no reference {f} for {nb}; run make refresh-results first")
            refs[nb.stem] = load_results(f)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    failed: list[str] = []
    if not args.no_run:
        from camlib.tools.run_notebooks import run_notebooks

        threads = args.threads or _reference_threads(refs)
        print(
            f"verify: running {len(paths)} notebook(s), quick profile, {threads} thread(s) each, into {out}",
            flush=True,
        )
        runs = run_notebooks(
            paths,
            out / "notebooks",
            "quick",
            jobs=args.jobs,
            threads=threads,
            results_dir=out / "results",
            figures_dir=out / "figures",
        )
        failed = [r.notebook.name for r in runs if not r.ok]
    verdicts = []
    for name, ref in refs.items():
        f = out / "results" / f"{name}.json"
        if not f.is_file():
            failed.append(f"{name} (no {f})")
            continue
        verdicts.append(compare_results(ref, load_results(f)))
    text = report(verdicts, args.strict)
    print(text)
    from camlib.core.io import atomic_write_text

    atomic_write_text(
        out / "verify.json",
        json.dumps(
            {"strict": args.strict, "failed": failed, "verdicts": [asdict(v) for v in verdicts]},
            indent=1,
            default=str,
        ),
    )
    if failed:
        print(f"verify: FAILED to produce results for {', '.join(failed)}", file=sys.stderr)
        return 2
    bad = [v.notebook for v in verdicts if not v.ok(args.strict)]
    print(
        f"verify: {len(verdicts) - len(bad)} of {len(verdicts)} notebook(s) agree with {args.reference}/"
        + (f"; mismatch in {', '.join(bad)}" if bad else "")
    )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
