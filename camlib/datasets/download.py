"""Download, verify and extract datasets: ONE registry, one code path for every archive.

:data:`REGISTRY` maps a dataset name to a :class:`DatasetSpec`: its mirror URLs, the archive's file
name and checksum (md5 and/or sha256), the folder the archive extracts to, a few files that prove an
extraction is complete, the expected folder layout (quoted in every "not found" error), how it is
fetched and its citation. ``fetch`` is

- ``"archive"``: camlib downloads (:func:`download_url`), verifies (:func:`verify_file`) and extracts
  (:func:`safe_extract`) it — :func:`prepare` does the three;
- ``"torchvision"``: torchvision's dataset class fetches it (:mod:`camlib.datasets.table5`); the entry
  records where it comes from and the layout;
- ``"files"``: plain files (no archive), each downloaded from ``<mirror><name>`` for every name of
  ``files`` into ``<root>/<folder>/`` (the wsolevaluation ILSVRC val metadata);
- ``"manual"``: no stable public URL with a known checksum; the entry says where to get it and how to
  lay it out (``data/README.md``).

An archive kept in a sub-folder (``subdir``, torchvision's layout for Caltech-101) is stored and
extracted there; ``inner_archives`` (e.g. Caltech-101's ``101_ObjectCategories.tar.gz`` inside its zip)
are then extracted the same safe way. An entry whose published checksum cannot be checked from here
says why in ``unverified``: it is downloaded all the same, and the sha256 computed is printed so that
it can be recorded (:func:`prepare`); ``python -m camlib.datasets.fetch`` (``make data``) fetches the
real-data sets of :mod:`camlib.datasets.roots` through this registry.

Downloads use ``urllib`` only. They go to ``<file>.part`` and RESUME from its size with an HTTP
``Range`` request; a server that ignores ``Range`` (answers 200 with the whole file) restarts the
file cleanly from byte 0. Only a complete file whose checksum matches is renamed to its final name.

Extraction refuses unsafe archives BEFORE writing anything: absolute member names, names with ``..``
that leave the target folder, links (symbolic or hard) pointing outside it, and device/FIFO members
(:class:`UnsafeArchiveError`).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tarfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal

from camlib.datasets.roots import DatasetNotFoundError

__all__ = [
    "REGISTRY",
    "ChecksumError",
    "DatasetNotFoundError",
    "DatasetSpec",
    "DownloadError",
    "UnsafeArchiveError",
    "default_data_root",
    "download_url",
    "file_digest",
    "prepare",
    "remove_partial",
    "safe_extract",
    "verify_file",
]


class DownloadError(RuntimeError):
    """A download failed (network error, HTTP error, or a server answer that makes no sense)."""


class ChecksumError(ValueError):
    """A file's checksum differs from the registry's: corrupted, truncated or tampered with."""


class UnsafeArchiveError(ValueError):
    """An archive member would be written outside the target folder (or is a link/device leading there)."""


@dataclass(frozen=True)
class DatasetSpec:
    """How to get one dataset and what it looks like on disk (see the module docstring)."""

    name: str
    title: str
    fetch: Literal["archive", "torchvision", "files", "manual"]
    homepage: str
    citation: str
    layout: str
    urls: tuple[str, ...] = ()
    filename: str | None = None
    md5: str | None = None
    sha256: str | None = None
    folder: str = ""  # the folder (under the data root) the archive extracts to / the dataset lives in
    check_files: tuple[str, ...] = ()  # paths under ``folder`` that exist when the dataset is complete
    subdir: str = ""  # the archive is kept and extracted in <root>/<subdir> (default: <root>)
    inner_archives: tuple[str, ...] = ()  # archives inside the extraction (relative to it), extracted in turn
    files: tuple[
        str, ...
    ] = ()  # fetch="files": file names, each downloaded from <url><name> into <root>/<folder>
    unverified: str = ""  # why no checksum can be verified (then the computed sha256 is printed)

    def where(self, root: str | Path) -> str:
        """Where the files must be, as a message: the archive and the extracted layout."""
        root = Path(root)
        lines = [f"{self.title} was not found under {root}."]
        if self.files:
            lines.append(f"Put the files {', '.join(self.files)} in {root / self.folder}")
            if self.urls:
                lines.append(f"  (download each from {self.urls[0]}<name>)")
            lines.append("so that this layout exists:")
        elif self.filename:
            sums = (
                ", ".join(f"{k} {v}" for k, v in (("md5", self.md5), ("sha256", self.sha256)) if v)
                or "no checksum"
            )
            lines.append(
                f"Either put the archive {self.filename} ({sums}) at {root / self.subdir / self.filename}"
            )
            if self.urls:
                lines.append(f"  (download it from {self.urls[0]})")
            lines.append("or extract it so that this layout exists:")
        else:
            lines.append(f"Get it from {self.homepage} and lay it out as:")
        lines.append(self.layout.replace("<root>", str(root)))
        return "\n".join(lines)


# --------------------------------------------------------------------------- the registry

_CUB_LAYOUT = """<root>/CUB_200_2011/
  images/001.Black_footed_Albatross/Black_Footed_Albatross_0001_796111.jpg ...  (11,788 JPEGs, 200 folders)
  images.txt              <image_id> <relative path>
  image_class_labels.txt  <image_id> <class_id 1..200>
  classes.txt             <class_id> <class folder name>
  train_test_split.txt    <image_id> <1 = train, 0 = test>   (5,994 train / 5,794 test)
  bounding_boxes.txt      <image_id> <x> <y> <width> <height>  (floats, pixels)"""


def _folder_layout(folder: str, extra: str = "") -> str:
    return (
        f"<root>/{folder}/\n  <class name>/<image>.jpg ...   (one sub-folder per class: the ImageFolder layout)"
        + (f"\n{extra}" if extra else "")
    )


REGISTRY: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec(
            name="cub200_2011",
            title="CUB-200-2011",
            fetch="archive",
            # CaltechDATA record 65de6-vp158 (the dataset's current home; the old
            # www.vision.caltech.edu/visipedia-data/CUB-200-2011/ link is the original mirror). The md5 is
            # the one used by public loaders of this archive (e.g. github.com/TDeVries/cub2011_dataset,
            # ContinualAI/avalanche's CUB200).
            urls=(
                "https://data.caltech.edu/records/65de6-vp158/files/CUB_200_2011.tgz?download=1",
                "http://www.vision.caltech.edu/visipedia-data/CUB-200-2011/CUB_200_2011.tgz",
            ),
            filename="CUB_200_2011.tgz",
            md5="97eceeb196236b17998738112f37df78",
            folder="CUB_200_2011",
            check_files=(
                "images.txt",
                "image_class_labels.txt",
                "train_test_split.txt",
                "bounding_boxes.txt",
                "classes.txt",
                "images",
            ),
            homepage="https://www.vision.caltech.edu/datasets/cub_200_2011/",
            citation="C. Wah, S. Branson, P. Welinder, P. Perona, S. Belongie. The Caltech-UCSD Birds-200-2011 "
            "Dataset. Technical Report CNS-TR-2011-001, California Institute of Technology, 2011.",
            layout=_CUB_LAYOUT,
        ),
        DatasetSpec(
            name="caltech101",
            title="Caltech101",
            # camlib fetches it itself (python -m camlib.datasets.fetch caltech101) into torchvision's layout,
            # so that table5's torchvision reader and camlib.datasets.caltech101 read the same folder.
            fetch="archive",
            urls=("https://data.caltech.edu/records/mzrjq-6wc02/files/caltech-101.zip",),
            filename="caltech-101.zip",
            md5="3138e1922a9193bfa496528edbbc45d0",  # torchvision.datasets.Caltech101
            folder="caltech101",
            subdir="caltech101",
            inner_archives=("caltech-101/101_ObjectCategories.tar.gz",),
            check_files=("101_ObjectCategories",),
            homepage="https://data.caltech.edu/records/mzrjq-6wc02",
            citation="L. Fei-Fei, R. Fergus, P. Perona. Learning generative visual models from few training "
            "examples. CVPR Workshop on Generative-Model Based Vision, 2004.",
            layout="<root>/caltech101/101_ObjectCategories/<class>/image_0001.jpg ...  (torchvision.datasets.Caltech101; "
            "BACKGROUND_Google is not a class)",
        ),
        DatasetSpec(
            name="caltech256",
            title="Caltech256",
            fetch="torchvision",
            urls=("https://data.caltech.edu/records/nyy15-4j048/files/256_ObjectCategories.tar",),
            filename="256_ObjectCategories.tar",
            md5="67b4f42ca05d46448c6bb8ecd2220f6d",  # torchvision.datasets.Caltech256
            folder="caltech256",
            check_files=("256_ObjectCategories",),
            homepage="https://data.caltech.edu/records/nyy15-4j048",
            citation="G. Griffin, A. Holub, P. Perona. Caltech-256 Object Category Dataset. Technical Report "
            "7694, California Institute of Technology, 2007.",
            layout="<root>/caltech256/256_ObjectCategories/001.ak47/001_0001.jpg ...  (torchvision.datasets.Caltech256; "
            "257.clutter is not used)",
        ),
        DatasetSpec(
            name="sun397",
            title="SUN397",
            fetch="torchvision",
            urls=("http://vision.princeton.edu/projects/2010/SUN/SUN397.tar.gz",),
            filename="SUN397.tar.gz",
            md5="8ca2778205c41d23104230ba66911c7a",  # torchvision.datasets.SUN397
            folder="SUN397",
            check_files=("ClassName.txt",),
            homepage="https://vision.princeton.edu/projects/2010/SUN/",
            citation="J. Xiao, J. Hays, K. Ehinger, A. Oliva, A. Torralba. SUN Database: Large-scale Scene "
            "Recognition from Abbey to Zoo. CVPR 2010.",
            layout="<root>/SUN397/ClassName.txt and <root>/SUN397/a/abbey/sun_*.jpg ...  (torchvision.datasets.SUN397)",
        ),
        DatasetSpec(
            name="mit_indoor67",
            title="MIT Indoor67",
            fetch="manual",
            folder="mit_indoor67",
            check_files=("Images",),
            homepage="https://web.mit.edu/torralba/www/indoor.html",
            citation="A. Quattoni, A. Torralba. Recognizing Indoor Scenes. CVPR 2009.",
            layout="<root>/mit_indoor67/Images/<class>/<image>.jpg ...  (indoorCVPR_09.tar extracted)\n"
            "<root>/mit_indoor67/TrainImages.txt, TestImages.txt  (the official 80/20 split: <class>/<image>.jpg per line)",
        ),
        DatasetSpec(
            name="scene15",
            title="Scene15",
            fetch="manual",
            folder="scene15",
            check_files=(),
            homepage="https://doi.org/10.6084/m9.figshare.7007177 (Lazebnik et al.'s 15-scene set)",
            citation="S. Lazebnik, C. Schmid, J. Ponce. Beyond Bags of Features: Spatial Pyramid Matching for "
            "Recognizing Natural Scene Categories. CVPR 2006.",
            layout=_folder_layout("scene15", "  15 classes (bedroom, CALsuburb, ..., tallbuilding)"),
        ),
        DatasetSpec(
            name="sun_attribute",
            title="SUN Attribute",
            fetch="manual",
            folder="sun_attribute",
            check_files=("images", "SUNAttributeDB"),
            homepage="https://cs.brown.edu/~gmpatter/sunattributes.html",
            citation="G. Patterson, J. Hays. SUN Attribute Database: Discovering, Annotating, and Recognizing "
            "Scene Attributes. CVPR 2012.",
            layout="<root>/sun_attribute/images/<letter>/<scene>/sun_*.jpg ...  (SUNAttributeDB_Images.tar.gz)\n"
            "<root>/sun_attribute/SUNAttributeDB/images.mat, attributes.mat, attributeLabels_continuous.mat\n"
            "(102 binary attributes per image: a multi-label task, scored by mean average precision)",
        ),
        DatasetSpec(
            name="stanford_action40",
            title="Stanford 40 Actions",
            fetch="manual",
            folder="stanford_action40",
            check_files=("JPEGImages", "ImageSplits"),
            homepage="http://vision.stanford.edu/Datasets/40actions.html",
            citation="B. Yao, X. Jiang, A. Khosla, A. L. Lin, L. Guibas, L. Fei-Fei. Human Action Recognition "
            "by Learning Bases of Action Attributes and Parts. ICCV 2011.",
            layout="<root>/stanford_action40/JPEGImages/applauding_001.jpg ...  (Stanford40_JPEGImages.zip)\n"
            "<root>/stanford_action40/ImageSplits/<action>_train.txt, <action>_test.txt  (Stanford40_ImageSplits.zip; "
            "100 train images per class)",
        ),
        DatasetSpec(
            name="uiuc_event8",
            title="UIUC Event8",
            fetch="manual",
            folder="uiuc_event8",
            check_files=(),
            homepage="http://vision.stanford.edu/lijiali/event_dataset/",
            citation="L.-J. Li, L. Fei-Fei. What, where and who? Classifying events by scene and object "
            "recognition. ICCV 2007.",
            layout=_folder_layout(
                "uiuc_event8",
                "  8 classes (RockClimbing, badminton, bocce, croquet, polo, rowing, sailing, snowboarding)",
            ),
        ),
        DatasetSpec(
            name="imagenette2_160",
            title="Imagenette (imagenette2-160)",
            fetch="archive",
            # fast.ai's bucket; the md5 is the one torchvision.datasets.Imagenette checks ("160px").
            urls=("https://s3.amazonaws.com/fast-ai-imageclas/imagenette2-160.tgz",),
            filename="imagenette2-160.tgz",
            md5="e793b78cc4c9e9a4ccc0c1155377a412",
            folder="imagenette2-160",
            check_files=("train", "val"),
            homepage="https://github.com/fastai/imagenette",
            citation="J. Howard. Imagenette: a smaller subset of 10 easily classified classes from Imagenet. "
            "github.com/fastai/imagenette, 2019.",
            layout="<root>/imagenette2-160/train/<wnid>/*.JPEG, <root>/imagenette2-160/val/<wnid>/*.JPEG  (10 wnids; "
            "shortest side 160 px; ILSVRC2012_val_* files among them)\n<root>/imagenette2-160/wsol/  (written by "
            "python -m camlib.datasets.fetch imagenette from the wsolevaluation metadata)",
        ),
        DatasetSpec(
            name="imagenette2_320",
            title="Imagenette (imagenette2-320)",
            fetch="archive",
            urls=("https://s3.amazonaws.com/fast-ai-imageclas/imagenette2-320.tgz",),
            filename="imagenette2-320.tgz",
            md5="3df6f0d01a2c9592104656642f5e78a3",  # torchvision.datasets.Imagenette ("320px")
            folder="imagenette2-320",
            check_files=("train", "val"),
            homepage="https://github.com/fastai/imagenette",
            citation="J. Howard. Imagenette: a smaller subset of 10 easily classified classes from Imagenet. "
            "github.com/fastai/imagenette, 2019.",
            layout="<root>/imagenette2-320/train/<wnid>/*.JPEG, <root>/imagenette2-320/val/<wnid>/*.JPEG  (shortest "
            "side 320 px)",
        ),
        DatasetSpec(
            name="wsol_ilsvrc_val",
            title="wsolevaluation ILSVRC2012 val metadata (classes and boxes of the 50,000 val images)",
            fetch="files",
            # clovaai/wsolevaluation's metadata/ILSVRC/test/ (their "test" split is the official val set), at a
            # pinned commit, then the default branch as a mirror. MIT licence.
            urls=(
                "https://raw.githubusercontent.com/clovaai/wsolevaluation/b5c1e8a99868d5b2e869aa7f3f5ad8c310b16ca3/"
                "metadata/ILSVRC/test/",
                "https://raw.githubusercontent.com/clovaai/wsolevaluation/master/metadata/ILSVRC/test/",
            ),
            files=("image_ids.txt", "class_labels.txt", "image_sizes.txt", "localization.txt"),
            folder="wsol_ilsvrc_val",
            check_files=("image_ids.txt", "class_labels.txt", "image_sizes.txt", "localization.txt"),
            unverified="the repository publishes no checksums and none could be established from this machine "
            "(no internet); the files are read and validated line by line (camlib.datasets.ilsvrc.read_wsol_metadata)",
            homepage="https://github.com/clovaai/wsolevaluation",
            citation="J. Choe, S. J. Oh, S. Lee, S. Chun, Z. Akata, H. Shim. Evaluating Weakly Supervised Object "
            "Localization Methods Right. CVPR 2020.",
            layout="<root>/wsol_ilsvrc_val/image_ids.txt, class_labels.txt, image_sizes.txt, localization.txt  "
            "(val/<file>,... lines; boxes in ORIGINAL pixels)",
        ),
        DatasetSpec(
            name="svt",
            title="Street View Text (SVT)",
            fetch="archive",
            # The md5 is the one open-mmlab/mmocr's SVT preparer (dataset_zoo/svt) checks for the IAPR-TC11
            # copy, which extracts to svt1/ (train.xml, test.xml, img/). mindee/doctr downloads the UCSD
            # original and checks sha256 63b3d55e6b6d1e036e2a844a20c034fe3af3c32e4d914d6e0c4a3cd43df3bebf
            # instead; camlib has not checked that both are the same file, so only the md5 is verified
            # (a different file at the second mirror would stop with a ChecksumError, nothing extracted).
            urls=(
                "http://www.iapr-tc11.org/dataset/SVT/svt.zip",
                "http://vision.ucsd.edu/~kai/svt/svt.zip",
            ),
            filename="svt.zip",
            md5="42d19160010d990ae6223b14f45eff88",
            folder="svt1",
            check_files=("train.xml", "test.xml", "img"),
            homepage="http://vision.ucsd.edu/~kai/svt/",
            citation="K. Wang, B. Babenko, S. Belongie. End-to-end Scene Text Recognition. ICCV 2011.",
            layout="<root>/svt1/train.xml, test.xml  (word boxes: <taggedRectangle x y width height><tag>WORD)\n"
            "<root>/svt1/img/*.jpg  (350 Google Street View images: 100 train, 250 test)",
        ),
    )
}


def default_data_root() -> Path:
    """``$CAMLIB_DATA`` if set, else the repository's ``data/`` folder (:func:`camlib.datasets.roots.data_dir`)."""
    from camlib.datasets.roots import data_dir

    return data_dir() or Path(__file__).resolve().parents[2] / "data"


# --------------------------------------------------------------------------- checksums


def file_digest(path: str | Path, algorithm: str = "sha256", chunk: int = 1 << 20) -> str:
    """Hex digest of a file, read in chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def verify_file(path: str | Path, *, md5: str | None = None, sha256: str | None = None) -> None:
    """Raise :class:`ChecksumError` unless ``path`` has the given md5 and/or sha256 (at least one needed)."""
    if not md5 and not sha256:
        raise ValueError("verify_file needs an md5 or a sha256 to compare with")
    for algorithm, expected in (("sha256", sha256), ("md5", md5)):
        if expected:
            got = file_digest(path, algorithm)
            if got.lower() != expected.lower():
                raise ChecksumError(
                    f"{path}: {algorithm} is {got}, expected {expected}. The file is corrupted, truncated or "
                    "not the published archive: delete it and download again."
                )


# --------------------------------------------------------------------------- downloading


def _content_range_start(value: str | None) -> int | None:
    """``bytes 100-199/200`` -> 100; anything else -> None."""
    if not value or not value.startswith("bytes "):
        return None
    try:
        return int(value[6:].split("-", 1)[0])
    except ValueError:
        return None


def download_url(
    url: str,
    dest: str | Path,
    *,
    timeout: float = 60.0,
    chunk: int = 1 << 16,
    progress: bool = True,
    user_agent: str = "camlib-downloader",
) -> Path:
    """Download ``url`` to ``dest`` through ``dest.part``, resuming a previous partial download.

    When ``dest.part`` exists with ``n`` bytes, the request asks for ``Range: bytes=n-``. A 206 answer
    whose ``Content-Range`` starts at ``n`` is appended; a 200 answer (the server ignores ranges)
    restarts the file from byte 0; a 416 answer (nothing left to send) means the part file is already
    complete. The part file is renamed to ``dest`` only when the transfer ended with every byte the
    server announced; an interrupted transfer leaves the part file for the next call to resume.
    """
    from tqdm.auto import tqdm

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": user_agent}
    if have:
        headers["Range"] = f"bytes={have}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # the part file already holds the whole file
            os.replace(part, dest)
            return dest
        raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise DownloadError(f"{url}: {exc}") from exc
    with response:
        status = getattr(response, "status", 200)
        length = response.headers.get("Content-Length")
        length = int(length) if length is not None and length.isdigit() else None
        if status == 206:
            start = _content_range_start(response.headers.get("Content-Range"))
            if start != have:
                raise DownloadError(
                    f"{url}: asked for bytes from {have}, the server sent {response.headers.get('Content-Range')!r}"
                )
            mode = "ab"
        else:  # 200: the whole file again (Range ignored, or no part file): start over
            have, mode = 0, "wb"
        total = have + length if length is not None else None
        received = 0
        bar = tqdm(
            total=total,
            initial=have,
            unit="B",
            unit_scale=True,
            desc=dest.name,
            disable=not progress,
            leave=False,
        )
        try:
            with open(part, mode) as fh:
                while True:
                    try:
                        block = response.read(chunk)
                    except Exception as exc:  # http.client.IncompleteRead, a reset connection, a timeout
                        raise DownloadError(
                            f"{url}: transfer interrupted after {have + received} bytes ({exc}); "
                            f"call again to resume from {part}"
                        ) from exc
                    if not block:
                        break
                    fh.write(block)
                    received += len(block)
                    bar.update(len(block))
        finally:
            bar.close()
    if length is not None and received != length:
        raise DownloadError(
            f"{url}: transfer interrupted after {have + received} of {total} bytes; call again to resume from {part}"
        )
    os.replace(part, dest)
    return dest


# --------------------------------------------------------------------------- extraction


def _inside(target: Path, name: str) -> bool:
    """True when the relative archive path ``name`` stays inside ``target`` (resolved, no escapes)."""
    p = PurePosixPath(name.replace("\\", "/"))
    if p.is_absolute() or (p.parts and ":" in p.parts[0]):  # /etc/x, C:/x
        return False
    resolved = (target / Path(*p.parts)).resolve() if p.parts else target
    return resolved == target or target in resolved.parents


def _check_tar(tar: tarfile.TarFile, target: Path) -> list[tarfile.TarInfo]:
    members = tar.getmembers()
    for m in members:
        if not _inside(target, m.name):
            raise UnsafeArchiveError(
                f"refusing archive member {m.name!r}: it would be written outside {target}"
            )
        if m.issym():
            link_base = PurePosixPath(m.name).parent
            if PurePosixPath(m.linkname).is_absolute() or not _inside(target, str(link_base / m.linkname)):
                raise UnsafeArchiveError(
                    f"refusing symbolic link {m.name!r} -> {m.linkname!r}: it points outside {target}"
                )
        elif m.islnk():
            if not _inside(target, m.linkname):
                raise UnsafeArchiveError(
                    f"refusing hard link {m.name!r} -> {m.linkname!r}: it points outside {target}"
                )
        elif not (m.isfile() or m.isdir()):
            raise UnsafeArchiveError(
                f"refusing archive member {m.name!r}: devices and FIFOs are not extracted"
            )
    return members


def _check_zip(zf: zipfile.ZipFile, target: Path) -> list[zipfile.ZipInfo]:
    infos = zf.infolist()
    for info in infos:
        if not _inside(target, info.filename):
            raise UnsafeArchiveError(
                f"refusing archive member {info.filename!r}: it would be written outside {target}"
            )
        mode = (info.external_attr >> 16) & 0o170000
        if mode == 0o120000:  # a symbolic link stored in a zip: never followed, never created
            raise UnsafeArchiveError(f"refusing symbolic link {info.filename!r} in a zip archive")
    return infos


def safe_extract(archive: str | Path, target: str | Path) -> Path:
    """Extract a .tar/.tar.gz/.tgz/.tar.bz2/.tar.xz or .zip archive into ``target``, refusing unsafe members.

    Every member is checked first (:class:`UnsafeArchiveError` and nothing written when one fails):
    absolute names, ``..`` escapes, links pointing outside ``target``, devices and FIFOs.
    """
    archive, target = Path(archive), Path(target)
    target.mkdir(parents=True, exist_ok=True)
    root = target.resolve()
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            infos = _check_zip(zf, root)
            for info in infos:
                zf.extract(info, root)
        return target
    try:
        tar = tarfile.open(archive, "r:*")
    except tarfile.TarError as exc:
        raise ValueError(f"{archive} is neither a tar nor a zip archive: {exc}") from exc
    with tar:
        members = _check_tar(tar, root)
        kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        tar.extractall(root, members=members, **kwargs)
    return target


# --------------------------------------------------------------------------- all together


def _complete(spec: DatasetSpec, root: Path) -> bool:
    folder = root / spec.folder
    return folder.is_dir() and all((folder / f).exists() for f in spec.check_files)


def _report_unverified(spec: DatasetSpec, path: Path) -> str:
    """Print (stderr) and return the sha256 of a file whose checksum cannot be checked (``spec.unverified``)."""
    digest = file_digest(path, "sha256")
    print(
        f"NOTE: {spec.name}: {path.name} is NOT verified against a published checksum ({spec.unverified}). "
        f"sha256 computed here: {digest}",
        file=sys.stderr,
    )
    return digest


def _download_first(urls: Sequence[str], dest: Path, progress: bool) -> list[str]:
    """Try the mirrors in order until one download succeeds; the errors of those that failed."""
    errors = []
    for url in urls:
        try:
            download_url(url, dest, progress=progress)
            return errors
        except DownloadError as exc:
            errors.append(str(exc))
    raise DownloadError("\n  ".join(errors or ["no URL to try"]))


def _prepare_files(
    spec: DatasetSpec, root: Path, download: bool, urls: Sequence[str], progress: bool
) -> Path:
    folder = root / spec.folder
    for name in spec.files:
        dest = folder / name
        if dest.is_file():
            continue
        if not download:
            raise DatasetNotFoundError(spec.where(root))
        try:
            _download_first([u + name for u in urls], dest, progress)
        except DownloadError as exc:
            raise DatasetNotFoundError(spec.where(root) + f"\nDownloading failed:\n  {exc}") from exc
        if spec.md5 or spec.sha256:  # one checksum for a one-file entry
            verify_file(dest, md5=spec.md5, sha256=spec.sha256)
        else:
            _report_unverified(spec, dest)
    return folder


def prepare(
    name: str | DatasetSpec,
    root: str | Path | None = None,
    *,
    download: bool = True,
    urls: Sequence[str] | None = None,
    progress: bool = True,
    keep_archive: bool = True,
) -> Path:
    """Make dataset ``name`` of :data:`REGISTRY` (or a :class:`DatasetSpec`) ready under ``root``; return its folder.

    In order: the extracted folder is complete -> done; the archive is in ``root`` (``root/subdir``) ->
    verify, extract; ``download`` -> fetch from the registry's mirrors (or ``urls``), resuming a
    ``.part`` file, verify, extract (then the ``inner_archives``). Otherwise
    :class:`DatasetNotFoundError` says where to put what. A checksum mismatch raises
    :class:`ChecksumError` (a downloaded bad file is deleted so the next try starts over). An entry
    with no checksum (``unverified``) is used, and the sha256 computed is printed. Entries with an
    archive (any ``fetch`` but ``"manual"``) or ``fetch="files"`` are handled here.
    """
    if isinstance(name, DatasetSpec):
        spec = name
    elif name in REGISTRY:
        spec = REGISTRY[name]
    else:
        raise KeyError(f"unknown dataset {name!r}; known: {', '.join(REGISTRY)}")
    root = Path(root) if root is not None else default_data_root()
    if _complete(spec, root):
        return root / spec.folder
    mirrors = list(urls) if urls is not None else list(spec.urls)
    if spec.fetch == "files":
        folder = _prepare_files(spec, root, download, mirrors, progress)
        if not _complete(spec, root):
            raise DatasetNotFoundError(f"{folder} lacks files after the download.\n" + spec.where(root))
        return folder
    if spec.fetch == "manual" or not spec.filename:
        raise DatasetNotFoundError(spec.where(root))
    base = root / spec.subdir
    archive = base / spec.filename
    checked = bool(spec.md5 or spec.sha256)
    if not archive.is_file():
        if not download:
            raise DatasetNotFoundError(spec.where(root))
        try:
            _download_first(mirrors, archive, progress)
        except DownloadError as exc:
            raise DatasetNotFoundError(spec.where(root) + f"\nDownloading failed:\n  {exc}") from exc
        try:
            if checked:
                verify_file(archive, md5=spec.md5, sha256=spec.sha256)
        except ChecksumError:
            archive.unlink()
            raise
    elif checked:
        verify_file(archive, md5=spec.md5, sha256=spec.sha256)
    if not checked:
        _report_unverified(spec, archive)
    safe_extract(archive, base)
    for inner in spec.inner_archives:
        safe_extract(base / inner, base)
    if not _complete(spec, root):
        raise DatasetNotFoundError(
            f"{archive} was extracted but the expected files are missing.\n" + spec.where(root)
        )
    if not keep_archive:
        archive.unlink()
    return root / spec.folder


def remove_partial(name: str, root: str | Path) -> None:
    """Delete a dataset's extracted folder and partial download (to start over)."""
    spec = REGISTRY[name]
    root = Path(root)
    shutil.rmtree(root / spec.folder, ignore_errors=True)
    if spec.filename:
        (root / spec.subdir / (spec.filename + ".part")).unlink(missing_ok=True)
