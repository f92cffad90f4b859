"""Atomic file output: the one place camlib replaces a file it writes.

A file is written to a temporary file in the SAME folder (so the final step is a rename on one file
system, never a copy), flushed to disk, then renamed over the target with :func:`os.replace`. A
reader, or a second run saving the same file at the same time, sees either the previous complete file
or the new complete file, never a half-written one; when writing fails (an exception, Ctrl-C) the
temporary file is removed and the previous file is left exactly as it was. Two concurrent writers each
get their own temporary name (:func:`tempfile.mkstemp`); the last rename wins.

Use :func:`atomic_path` for writers that want a file name (matplotlib's ``savefig``, a video encoder)
and :func:`atomic_write_text` / :func:`atomic_write_bytes` for data already in memory.

:func:`check_output_path` is the check a command makes BEFORE its work: the output's folder can be
written, the output is not a folder, and it is none of the inputs (after resolving links), so a
mistyped or hostile output path fails in a second instead of after an hour, and never overwrites an
input.

:func:`load_checkpoint` is the one way camlib reads a ``.pt`` file: ``torch.load(weights_only=True)``
with errors that name the file and the way out (an empty or text file used to give ``EOFError:`` or
``KeyError: 101``).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = [
    "CheckpointError",
    "OutputPathError",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "check_output_path",
    "load_checkpoint",
]


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read as tensors (empty, text, truncated, or holding code)."""


def load_checkpoint(path: str | Path, *, map_location="cpu", fix: str = "") -> Any:
    """``torch.load(path, weights_only=True)`` with clear errors naming ``path`` and the way out.

    FileNotFoundError when ``path`` is missing or a folder; :class:`CheckpointError` (a ValueError) when
    it is empty (0 bytes: an interrupted save or download), is not a PyTorch file (text, HTML from a
    failed download, a truncated zip) or holds objects other than tensors and plain containers (which
    ``weights_only`` refuses to run). ``fix`` is added to the message (e.g. how to make the checkpoint).
    """
    import pickle
    import zipfile

    import torch

    p = Path(path).expanduser()
    tail = f" {fix}" if fix else ""
    if not p.is_file():
        raise FileNotFoundError(f"checkpoint {p} not found{' (it is a folder)' if p.is_dir() else ''}.{tail}")
    size = p.stat().st_size
    if size == 0:
        raise CheckpointError(
            f"checkpoint {p} is empty (0 bytes): an interrupted save or download; "
            f"delete it and save or download it again.{tail}"
        )
    with open(p, "rb") as fh:
        magic = fh.read(4)
    try:
        return torch.load(p, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch.save writes a zip (PK..) or, in the legacy format, a pickle (0x80 protocol byte)
        if "Weights only load failed" in str(exc) and (
            magic.startswith(b"PK\x03\x04") or magic[:1] == b"\x80"
        ):
            raise CheckpointError(
                f"checkpoint {p} holds Python objects other than tensors, which camlib does not load "
                f"(torch.load weights_only=True refused it): save model.state_dict() instead.{tail}"
            ) from None
        raise CheckpointError(_not_a_checkpoint(p, size, exc, tail)) from None
    except (EOFError, KeyError, RuntimeError, ValueError, zipfile.BadZipFile, OSError) as exc:
        raise CheckpointError(_not_a_checkpoint(p, size, exc, tail)) from None


def _not_a_checkpoint(p: Path, size: int, exc: BaseException, tail: str) -> str:
    with open(p, "rb") as fh:
        head = fh.read(64)
    looks = " (it starts like text)" if head and all(32 <= b < 127 or b in (9, 10, 13) for b in head) else ""
    first = (str(exc).strip().splitlines() or [""])[0][:120]
    if first.startswith("Weights only load failed"):  # torch's advice to unpickle anyway does not apply
        first = "not a torch.save file"
    return (
        f"{p} ({size:,} bytes) is not a PyTorch checkpoint{looks}: torch.load failed "
        f"({type(exc).__name__}: {first}). It may be truncated, a failed download (an HTML page) or another "
        f"file; make it with torch.save(model.state_dict(), path).{tail}"
    )


class OutputPathError(ValueError):
    """An output path that cannot or must not be written (found before any work)."""


def _same_file(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)  # hard links
    except OSError:
        return False


def check_output_path(path: str | Path, *, inputs=(), what: str = "output") -> Path:
    """Check, before any work, that ``path`` can be written and is none of ``inputs``; return it.

    Raises :class:`OutputPathError` (a ValueError) naming the path when ``path`` is one of ``inputs``
    (compared after resolving symbolic links, and by inode for hard links), is an existing folder, or
    its folder cannot be created or written (a temporary file is created there and removed). The folder
    is created when missing.
    """
    p = Path(path).expanduser()
    for src in inputs:
        if src is not None and _same_file(p, Path(src).expanduser()):
            raise OutputPathError(
                f"{what} {p} is the input {src} (after resolving links): writing it would destroy the input; "
                "choose another output file"
            )
    if p.is_dir():
        raise OutputPathError(f"{what} {p} is a folder; give a file name")
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=p.parent, prefix=".camlib-write-check.")
        os.close(fd)
        os.unlink(name)
    except OSError as exc:
        raise OutputPathError(
            f"cannot write {what} {p}: its folder {p.parent} is not writable ({exc.strerror or exc}); "
            "choose a folder you can write to"
        ) from exc
    return p


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable where the platform allows it (POSIX); best effort elsewhere."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: str | Path, *, mode: int = 0o644) -> Iterator[Path]:
    """Yield a fresh temporary path beside ``path``; on a clean exit it replaces ``path`` atomically.

    The block writes the temporary file by name (it exists, empty, when the block starts). On a clean
    exit the file is fsync'ed, given permissions ``mode`` and renamed onto ``path``; if the block raises,
    the temporary file is deleted, ``path`` is untouched and the exception propagates. The temporary
    name keeps ``path``'s suffix last (``.<name>.<random><suffix>``), so tools that infer the format
    from the extension still see it, and starts with a dot, so it stays out of globs such as ``*.png``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        _fsync_file(tmp)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_path`)."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically as UTF-8 with ``\\n`` line ends (see :func:`atomic_path`)."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(text)
