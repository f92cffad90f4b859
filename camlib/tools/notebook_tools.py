"""The notebook rules no tool checks, and thin wrappers over the Jupyter tools that do the rest.

    python -m camlib.notebook_tools check NB...              # exit 1 listing notebooks that break the rules
    python -m camlib.notebook_tools strip NB...              # clear outputs + volatile metadata, in place
    python -m camlib.notebook_tools student --out DIR NB...  # copies without `solution` / `instructor` cells

The rules (``check``, hand-written because no tool has them): no outputs; exactly one cell tagged
``parameters`` holding only ``NAME = <literal>`` lines, among them PROFILE, SEED, DEVICE and INTERACTIVE;
kernelspec ``python3``; no code cell (the parameters cell aside) with more than :data:`MAX_LOGIC_LINES`
lines of logic (:func:`logic_lines`): notebooks narrate and call, camlib computes.

The rest is the ecosystem's: ``strip`` and ``student`` run nbconvert's preprocessors (ClearOutput,
ClearMetadata, TagRemove); outputs never reach a commit because nbstripout is a git filter (``make
setup``) and a pre-commit hook; notebooks are authored as percent scripts with jupytext (``jupytext.toml``
pairs ``notebooks/NN_name.ipynb`` with ``notebooks/NN_name.py``; ``jupytext --sync``).
"""

from __future__ import annotations

import argparse
import ast
import copy
import io
import sys
import tokenize
from collections.abc import Sequence
from pathlib import Path

import nbformat
from nbconvert.preprocessors import ClearMetadataPreprocessor, ClearOutputPreprocessor, TagRemovePreprocessor
from nbformat import NotebookNode

__all__ = [
    "KERNELSPEC",
    "MAX_LOGIC_LINES",
    "REQUIRED_PARAMETERS",
    "STUDENT_REMOVED_TAGS",
    "check_notebook",
    "logic_lines",
    "main",
    "parameter_names",
    "strip_notebook",
    "student_copy",
]

KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}
REQUIRED_PARAMETERS = ("PROFILE", "SEED", "DEVICE", "INTERACTIVE")
MAX_LOGIC_LINES = 15  # per code cell; the parameters cell is exempt (it only declares)
PARAMETERS_TAG = "parameters"
INJECTED_TAG = "injected-parameters"  # papermill's cell in executed copies
SOLUTION_TAG = "solution"
STUDENT_REMOVED_TAGS = frozenset({SOLUTION_TAG, "instructor"})
PLACEHOLDER = "# Your turn: write your solution here (the exercise is described above).\n"


def read(path: str | Path) -> NotebookNode:
    """Read a notebook as nbformat v4."""
    return nbformat.read(str(path), as_version=4)


def write(nb: NotebookNode, path: str | Path) -> bool:
    """Write ``nb`` (validated) to ``path`` unless the file already holds that text; True if written."""
    nb = nbformat.from_dict(nb)
    nbformat.validate(nb)
    text = nbformat.writes(nb, version=4)
    text = text if text.endswith("\n") else text + "\n"
    path = Path(path)
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return False
    path.write_text(text, encoding="utf-8")
    return True


def _tags(cell: NotebookNode) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


# --------------------------------------------------------------------------- nbconvert


def strip_notebook(nb: NotebookNode) -> NotebookNode:
    """nbconvert's preprocessors: papermill's injected cell removed (TagRemove), outputs and execution
    counts cleared (ClearOutput), code-cell metadata but ``tags`` and notebook metadata but
    ``kernelspec`` and ``language_info.name`` dropped (ClearMetadata); the kernelspec set to python3."""
    for pre in (
        TagRemovePreprocessor(remove_cell_tags={INJECTED_TAG}),
        ClearOutputPreprocessor(),
        ClearMetadataPreprocessor(
            preserve_cell_metadata_mask={"tags"},
            preserve_nb_metadata_mask={"kernelspec", ("language_info", "name")},
        ),
    ):
        nb, _ = pre.preprocess(nb, {})
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    return nb


def student_copy(nb: NotebookNode) -> tuple[NotebookNode, int]:
    """A copy for students, stripped: cells tagged ``solution`` or ``instructor`` removed by nbconvert's
    TagRemovePreprocessor; in place of each solution code cell an ``exercise`` cell with
    :data:`PLACEHOLDER` (what a student sees: the exercise text, then a cell to write in). Returns the
    copy and how many cells were removed."""
    nb = copy.deepcopy(nb)
    removed = sum(bool(STUDENT_REMOVED_TAGS & set(_tags(c))) for c in nb.cells)
    cells = []
    for cell in nb.cells:
        if cell.cell_type == "code" and SOLUTION_TAG in _tags(cell):
            tags = [t for t in _tags(cell) if t not in STUDENT_REMOVED_TAGS] + ["exercise"]
            placeholder = nbformat.v4.new_code_cell(PLACEHOLDER, metadata={"tags": tags})
            placeholder.id = cell.get("id", placeholder.id)  # the solution's id: the copy is deterministic
            cells.append(placeholder)
        cells.append(cell)
    nb.cells = cells
    nb, _ = TagRemovePreprocessor(remove_cell_tags=set(STUDENT_REMOVED_TAGS)).preprocess(nb, {})
    return strip_notebook(nb), removed


# --------------------------------------------------------------------------- check


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


_NOT_LOGIC = {
    tokenize.COMMENT,
    tokenize.NL,
    tokenize.NEWLINE,
    tokenize.INDENT,
    tokenize.DEDENT,
    tokenize.ENDMARKER,
}


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


# --------------------------------------------------------------------------- CLI


def _cmd_strip(paths: Sequence[str]) -> int:
    for path in paths:
        print(f"{'stripped' if write(strip_notebook(read(path)), path) else 'clean   '} {path}")
    return 0


def _cmd_student(paths: Sequence[str], out_dir: str) -> int:
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    for path in paths:
        nb, removed = student_copy(read(path))
        out = Path(out_dir) / Path(path).name
        write(nb, out)
        print(f"{out}: {removed} solution/instructor cell(s) removed")
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m camlib.notebook_tools", description=__doc__.splitlines()[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("check", help="exit 1 listing notebooks that break the rules").add_argument(
        "notebooks", nargs="*"
    )
    sub.add_parser("strip", help="clear outputs and volatile metadata in place (nbconvert)").add_argument(
        "notebooks", nargs="*"
    )
    student = sub.add_parser("student", help="copies without solution / instructor cells (nbconvert)")
    student.add_argument("--out", required=True)
    student.add_argument("notebooks", nargs="+")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "student":
            return _cmd_student(args.notebooks, args.out)
        if not args.notebooks:
            print(f"camlib.tools.notebook_tools {args.command}: no notebooks given", file=sys.stderr)
            return 2
        return (_cmd_strip if args.command == "strip" else _cmd_check)(args.notebooks)
    except (OSError, ValueError, nbformat.ValidationError) as exc:
        print(f"camlib.tools.notebook_tools {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
