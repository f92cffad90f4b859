"""``python -m camlib.datasets.fetch NAME...`` (``make data``): download the public real-data sets into ``data/``.

Every download goes through the one registry :data:`camlib.datasets.download.REGISTRY` (mirrors,
resume, checksum, safe extraction). Names (:data:`FETCHABLE`):

- ``imagenette``: imagenette2-160 (md5 checked) + the wsolevaluation ILSVRC val metadata (no published
  checksum: its sha256 is printed); then ``<imagenette2-160>/wsol/`` is written with the lines of the
  ILSVRC2012_val_* files of the tree (:func:`camlib.datasets.imagenette.write_wsol_subset`), the layout
  of ``../shared/data/imagenette``, so :func:`~camlib.datasets.imagenette.open_imagenette` reads both;
- ``imagenette-320``: the same with imagenette2-320;
- ``caltech101``: Caltech-101 (md5 checked), into torchvision's layout ``caltech101/101_ObjectCategories``;
- ``cub``: CUB-200-2011 (md5 checked), ``CUB_200_2011/`` with ``bounding_boxes.txt``.

``--root`` replaces ``data/`` (default :func:`camlib.datasets.download.default_data_root`). A set
already complete is not downloaded again; an interrupted download resumes. ``make quick`` and
``make test`` never call this.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from camlib.datasets.download import REGISTRY, default_data_root, prepare

__all__ = ["FETCHABLE", "fetch", "main"]

#: name -> (registry entries, the set of camlib.datasets.roots it fills)
FETCHABLE: dict[str, tuple[tuple[str, ...], str]] = {
    "imagenette": (("imagenette2_160", "wsol_ilsvrc_val"), "imagenette"),
    "imagenette-320": (("imagenette2_320", "wsol_ilsvrc_val"), "imagenette"),
    "caltech101": (("caltech101",), "caltech101"),
    "cub": (("cub200_2011",), "cub"),
}
DEFAULT = ("imagenette", "caltech101", "cub")


def fetch(name: str, root: str | Path | None = None, *, download: bool = True, progress: bool = True) -> Path:
    """Make set ``name`` of :data:`FETCHABLE` ready under ``root`` (default ``data/``); return its folder."""
    if name not in FETCHABLE:
        raise KeyError(f"cannot fetch {name!r}; known: {', '.join(FETCHABLE)}")
    root = Path(root) if root is not None else default_data_root()
    entries, _ = FETCHABLE[name]
    folders = [prepare(REGISTRY[e], root, download=download, progress=progress) for e in entries]
    if name.startswith("imagenette"):
        from camlib.datasets.imagenette import write_wsol_subset

        n = write_wsol_subset(folders[1], folders[0])
        print(f"{folders[0] / 'wsol'}: wsolevaluation lines of {n} ILSVRC2012 val images", file=sys.stderr)
    return folders[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m camlib.datasets.fetch", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "names",
        nargs="*",
        help=f"sets to fetch (default: {' '.join(DEFAULT)}); known: " + ", ".join(FETCHABLE),
    )
    parser.add_argument("--root", default=None, help="where to put them (default: data/ or $CAMLIB_DATA)")
    parser.add_argument(
        "--list", action="store_true", help="list the sets, their archives and checksums; fetch nothing"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    names = args.names or list(DEFAULT)
    unknown = [n for n in names if n not in FETCHABLE]
    if unknown:
        parser.error(f"unknown set(s) {', '.join(unknown)}; known: {', '.join(FETCHABLE)}")
    if args.list:
        for n in names:
            for e in FETCHABLE[n][0]:
                spec = REGISTRY[e]
                check = ", ".join(f"{k} {v}" for k, v in (("md5", spec.md5), ("sha256", spec.sha256)) if v)
                print(
                    f"{n}: {e}: {spec.filename or ', '.join(spec.files)} from {spec.urls[0]} "
                    f"({check or 'UNVERIFIED: ' + spec.unverified})"
                )
        return 0
    from camlib.datasets.roots import resolve_root

    root = Path(args.root) if args.root else default_data_root()
    for n in names:
        folder = fetch(n, root, progress=not args.no_progress)
        info = resolve_root(FETCHABLE[n][1], folder).info
        print(f"{n}: {folder} ({info.n_images} {info.unit})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
