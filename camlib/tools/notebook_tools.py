"""Keep the committed notebooks clean, checkable and authorable as plain scripts.

    python -m camlib.notebook_tools strip NB...          # drop outputs, counts, volatile metadata
    python -m camlib.notebook_tools check NB...          # exit 1 listing notebooks that break the rules
    python -m camlib.notebook_tools to-py NB OUT.py      # notebook -> "percent" script
    python -m camlib.notebook_tools from-py IN.py OUT    # "percent" script -> notebook

The rules (``check``): no outputs; exactly one cell tagged ``parameters`` holding only
``NAME = <literal>`` lines, among them PROFILE, SEED, DEVICE and INTERACTIVE; kernelspec ``python3``;
no code cell (the parameters cell aside) with more than :data:`MAX_LOGIC_LINES` lines of logic
(:func:`logic_lines`): notebooks narrate and call, camlib computes.

Percent scripts: ``# %%`` starts a code cell, ``# %% [markdown]`` a markdown cell whose lines are
prefixed with ``# ``, ``# %% tags=["parameters"]`` the parameters cell; cells are separated by a
blank line.
"""

from __future__ import annotations

import argparse
import ast
import copy
import io
import json
import re
import sys
import tokenize
from collections.abc import Sequence
from pathlib import Path

import nbformat
from nbformat import NotebookNode

__all__ = [
    "KERNELSPEC",
    "MAX_LOGIC_LINES",
    "REQUIRED_PARAMETERS",
    "check_notebook",
    "logic_lines",
    "main",
    "notebook_from_py",
    "notebook_to_py",
    "parameter_names",
    "strip_notebook",
]

KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}
LANGUAGE_INFO = {"name": "python"}
REQUIRED_PARAMETERS = ("PROFILE", "SEED", "DEVICE", "INTERACTIVE")
MAX_LOGIC_LINES = 15  # per code cell; the parameters cell is exempt (it only declares)
PARAMETERS_TAG = "parameters"
INJECTED_TAG = "injected-parameters"  # papermill's cell in executed copies
KEPT_CELL_METADATA = ("tags",)
_MARKER = re.compile(r"^# %%(?:\s+\[(?P<kind>markdown|raw)\])?(?:\s+tags=(?P<tags>\[.*\]))?\s*$")


def read(path: str | Path) -> NotebookNode:
    """Read a notebook as nbformat v4."""
    return nbformat.read(str(path), as_version=4)


def write(nb: NotebookNode, path: str | Path) -> bool:
    """Write ``nb`` (validated) to ``path`` unless the file already holds that text; True if written."""
    nbformat.validate(nb)
    text = nbformat.writes(nb, version=4)
    text = text if text.endswith("\n") else text + "\n"
    path = Path(path)
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return False
    path.write_text(text, encoding="utf-8")
    return True


# --------------------------------------------------------------------------- strip


def strip_notebook(nb: NotebookNode) -> NotebookNode:
    """Remove outputs, execution counts, papermill's injected cell and volatile metadata, in place.

    Kept: the cells' sources, their ``tags`` (``parameters`` included), attachments, and the
    notebook metadata ``kernelspec`` (set to python3) and ``language_info.name``.
    """
    nb.cells = [cell for cell in nb.cells if INJECTED_TAG not in _tags(cell)]
    for cell in nb.cells:
        cell.metadata = {k: cell.metadata[k] for k in KEPT_CELL_METADATA if cell.metadata.get(k)}
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    nb.metadata = {"kernelspec": dict(KERNELSPEC), "language_info": dict(LANGUAGE_INFO)}
    return nb


def strip_file(path: str | Path) -> bool:
    """Strip one notebook file in place; True when it changed."""
    return write(strip_notebook(read(path)), path)


# --------------------------------------------------------------------------- check


def _tags(cell: NotebookNode) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def parameter_names(source: str) -> list[str]:
    """Names assigned in a parameters cell; ValueError unless every statement is ``NAME = <literal>``."""
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise ValueError(f"parameters cell does not parse: {exc.msg} (line {exc.lineno})") from exc
    names = []
    for stmt in tree.body:
        if not (
            isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name)
        ):
            raise ValueError(
                f"parameters cell line {stmt.lineno}: only `NAME = <literal>` assignments are allowed "
                "(move computed values to the next cell)"
            )
        try:
            ast.literal_eval(stmt.value)
        except ValueError as exc:
            raise ValueError(
                f"parameters cell line {stmt.lineno}: {stmt.targets[0].id} is not a literal "
                "(papermill can only override literals; compute it in the next cell)"
            ) from exc
        names.append(stmt.targets[0].id)
    return names


_NOT_LOGIC = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
              tokenize.ENDMARKER}


def logic_lines(source: str) -> int:
    """Lines of logic in a code cell: lines holding a token other than comments, blank lines, import
    statements (every line of a multi-line import) and lone closing brackets / commas.

    A statement spread over several lines counts each line that carries code (a long call with one
    argument per line is long). IPython magics (``%``/``!`` lines) are not Python and count as logic.
    A cell that does not parse counts 0 (``check`` does not run code; ruff reports the syntax error).
    """
    lines = [line if not line.lstrip().startswith(("%", "!")) else "pass" for line in source.splitlines()]
    text = "\n".join(lines) + "\n"
    try:
        tree = ast.parse(text)
        tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (SyntaxError, tokenize.TokenError):
        return 0
    imports = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            imports.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
    code = {
        tok.start[0]
        for tok in tokens
        if tok.type not in _NOT_LOGIC and not (tok.type == tokenize.OP and tok.string in ")]},")
    }
    return len(code - imports)


def _check_long_cells(nb: NotebookNode, limit: int = MAX_LOGIC_LINES) -> list[str]:
    problems = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or PARAMETERS_TAG in _tags(cell):
            continue
        n = logic_lines(cell.source)
        if n > limit:
            first = next((line for line in cell.source.splitlines() if line.strip()), "")[:60]
            problems.append(
                f"cell {i} ({first!r}...) has {n} lines of logic, more than {limit}: move the computation "
                "into a camlib function and call it"
            )
    return problems


def check_notebook(nb: NotebookNode) -> list[str]:
    """Every rule ``nb`` breaks, as messages naming the fix; empty when the notebook is clean."""
    problems = []
    with_outputs = sum(1 for c in nb.cells if c.cell_type == "code" and (c.outputs or c.execution_count))
    if with_outputs:
        problems.append(f"{with_outputs} code cell(s) have outputs or execution counts (run `strip`)")
    if any(INJECTED_TAG in _tags(c) for c in nb.cells):
        problems.append("holds papermill's injected-parameters cell: an executed copy? (run `strip`)")
    kernel = nb.metadata.get("kernelspec", {}).get("name")
    if kernel != "python3":
        problems.append(f"kernelspec name is {kernel!r}, expected 'python3' (run `strip`)")
    problems += _check_parameters(nb)
    problems += _check_long_cells(nb)
    return problems


def _check_parameters(nb: NotebookNode) -> list[str]:
    cells = [c for c in nb.cells if PARAMETERS_TAG in _tags(c)]
    if len(cells) != 1:
        return [f"{len(cells)} cells tagged 'parameters', expected exactly one (code cell of NAME = literal)"]
    if cells[0].cell_type != "code":
        return ["the cell tagged 'parameters' is not a code cell"]
    try:
        names = parameter_names(cells[0].source)
    except ValueError as exc:
        return [str(exc)]
    missing = [n for n in REQUIRED_PARAMETERS if n not in names]
    if missing:
        return [
            f"parameters cell lacks {', '.join(missing)} (every notebook takes {', '.join(REQUIRED_PARAMETERS)})"
        ]
    return []


# --------------------------------------------------------------------------- percent scripts


def notebook_to_py(nb: NotebookNode) -> str:
    """The notebook as a percent script (sources with trailing blank lines dropped)."""
    blocks = []
    for i, cell in enumerate(nb.cells):
        tags = _tags(cell)
        marker = "# %%" + (f" [{cell.cell_type}]" if cell.cell_type != "code" else "")
        marker += f" tags={json.dumps(tags)}" if tags else ""
        body = cell.source.rstrip("\n").rstrip()
        if cell.cell_type == "code":
            if any(_MARKER.match(line) for line in body.splitlines()):
                raise ValueError(f"cell {i}: a code line looks like a '# %%' cell marker; reword it")
        else:
            body = "\n".join(f"# {line}".rstrip() for line in body.splitlines()) if body else ""
        blocks.append(marker + ("\n" + body if body else ""))
    return "\n\n".join(blocks) + "\n"


def notebook_from_py(text: str) -> NotebookNode:
    """Parse a percent script into a v4 notebook with the python3 kernelspec and stable cell ids."""
    cells: list[tuple[str, list[str], list[str]]] = []
    kind, tags, lines = "code", [], []
    started = False
    for lineno, line in enumerate(text.splitlines(), 1):
        if line.startswith("# %%"):
            match = _MARKER.match(line)
            if not match:
                raise ValueError(
                    f"line {lineno}: cannot read cell marker {line!r}; use '# %%', '# %% [markdown]' "
                    "or '# %% tags=[\"parameters\"]'"
                )
            if started or _strip_blank(lines):
                cells.append((kind, tags, lines))
            kind, tags, lines, started = match["kind"] or "code", _parse_tags(match["tags"], lineno), [], True
        else:
            lines.append(line)
    if started or _strip_blank(lines):
        cells.append((kind, tags, lines))
    nb = nbformat.v4.new_notebook(
        metadata={"kernelspec": dict(KERNELSPEC), "language_info": dict(LANGUAGE_INFO)}
    )
    nb.cells = [_new_cell(i, *cell) for i, cell in enumerate(cells)]
    return nb


def _parse_tags(raw: str | None, lineno: int) -> list[str]:
    if raw is None:
        return []
    try:
        tags = json.loads(raw)
    except ValueError as exc:
        raise ValueError(
            f'line {lineno}: tags must be a JSON list of strings, e.g. tags=["parameters"]'
        ) from exc
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise ValueError(f"line {lineno}: tags must be a JSON list of strings")
    return tags


def _strip_blank(lines: list[str]) -> list[str]:
    start, end = 0, len(lines)
    while start < end and not lines[start].strip():
        start += 1
    while end > start and not lines[end - 1].strip():
        end -= 1
    return lines[start:end]


def _uncomment(line: str) -> str:
    if line == "#":
        return ""
    return line[2:] if line.startswith("# ") else line


def _new_cell(index: int, kind: str, tags: list[str], lines: list[str]) -> NotebookNode:
    if kind != "code":
        lines = [_uncomment(line) for line in lines]
    source = "\n".join(_strip_blank(lines))
    metadata = {"tags": tags} if tags else {}
    make = {"code": nbformat.v4.new_code_cell, "markdown": nbformat.v4.new_markdown_cell}.get(
        kind, nbformat.v4.new_raw_cell
    )
    cell = make(source=source, metadata=metadata)
    cell.id = f"cell-{index:03d}"
    return cell


SOLUTION_TAG = "solution"
PLACEHOLDER = "# Your turn: write your solution here (the exercise is described above).\n"


def student_copy(nb: NotebookNode) -> tuple[NotebookNode, int]:
    """A copy for students: code cells tagged ``solution`` become a placeholder; outputs stripped."""
    nb = strip_notebook(copy.deepcopy(nb))
    removed = 0
    for cell in nb.cells:
        if cell.cell_type == "code" and SOLUTION_TAG in _tags(cell):
            cell.source = PLACEHOLDER
            cell.metadata["tags"] = [t for t in _tags(cell) if t != SOLUTION_TAG] + ["exercise"]
            removed += 1
    return nb, removed


def _cmd_student(paths: Sequence[str], out_dir: str) -> int:
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    for path in paths:
        nb, removed = student_copy(read(path))
        out = Path(out_dir) / Path(path).name
        write(nb, out)
        print(f"{out}: {removed} solution cell(s) removed")
    return 0


# --------------------------------------------------------------------------- CLI


def _cmd_strip(paths: Sequence[str]) -> int:
    for path in paths:
        print(f"{'stripped' if strip_file(path) else 'clean   '} {path}")
    return 0


def _cmd_check(paths: Sequence[str]) -> int:
    bad = 0
    for path in paths:
        problems = check_notebook(read(path))
        bad += bool(problems)
        for problem in problems:
            print(f"{path}: {problem}")
    if bad:
        print(f"{bad} of {len(paths)} notebook(s) need fixing", file=sys.stderr)
        return 1
    print(f"ok: {len(paths)} notebook(s) clean")
    return 0


def _cmd_to_py(notebook: str, out: str) -> int:
    Path(out).write_text(notebook_to_py(read(notebook)), encoding="utf-8")
    print(f"wrote {out}")
    return 0


def _cmd_from_py(script: str, out: str) -> int:
    write(notebook_from_py(Path(script).read_text(encoding="utf-8")), out)
    print(f"wrote {out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m camlib.notebook_tools", description=__doc__.splitlines()[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("strip", help="remove outputs and volatile metadata in place").add_argument(
        "notebooks", nargs="*"
    )
    sub.add_parser("check", help="exit 1 listing notebooks that break the rules").add_argument(
        "notebooks", nargs="*"
    )
    to_py = sub.add_parser("to-py", help="notebook -> percent script")
    to_py.add_argument("notebook")
    to_py.add_argument("out")
    from_py = sub.add_parser("from-py", help="percent script -> notebook")
    from_py.add_argument("script")
    from_py.add_argument("out")
    student = sub.add_parser("student", help="copies with solution cells replaced by placeholders")
    student.add_argument("--out", required=True)
    student.add_argument("notebooks", nargs="+")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        if args.command in ("strip", "check"):
            if not args.notebooks:
                print(f"camlib.tools.notebook_tools {args.command}: no notebooks given", file=sys.stderr)
                return 2
            return (_cmd_strip if args.command == "strip" else _cmd_check)(args.notebooks)
        if args.command == "student":
            return _cmd_student(args.notebooks, args.out)
        if args.command == "to-py":
            return _cmd_to_py(args.notebook, args.out)
        return _cmd_from_py(args.script, args.out)
    except (OSError, ValueError, nbformat.ValidationError) as exc:
        print(f"camlib.tools.notebook_tools {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
