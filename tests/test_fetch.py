"""``python -m camlib.datasets.fetch`` (``make data``) end to end against a LOCAL loopback HTTP server
serving small archives built here: download, verify, safe extraction (nested for Caltech-101), the
unverified wsolevaluation files (sha256 printed), the imagenette wsol/ subset, then the readers."""

from __future__ import annotations

import hashlib
import io
import tarfile
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from camlib.datasets import download as D
from camlib.datasets import fetch as F
from camlib.datasets.caltech101 import open_caltech101
from camlib.datasets.cub import CUBDataset
from camlib.datasets.imagenette import open_imagenette
from camlib.datasets.roots import resolve_root
from tests.test_download import server  # noqa: F401  (the loopback server fixture, shared)
from tests.test_real_readers import _cub, _img, _wsol


def _targz(path: Path, src: Path, arcname: str) -> bytes:
    with tarfile.open(path, "w:gz") as tar:
        tar.add(src, arcname=arcname)
    return path.read_bytes()


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def _serve_everything(tmp: Path, srv, monkeypatch) -> dict[str, bytes]:
    src = tmp / "src"
    # imagenette2-160: resized files (40 x 30, 30 x 40) of ILSVRC val images whose boxes are in original pixels
    tree = src / "imagenette2-160"
    _img(tree / "train/n01440764/n01440764_1.JPEG", (40, 30))
    _img(tree / "train/n01440764/ILSVRC2012_val_00000001.JPEG", (40, 30))
    _img(tree / "val/n03888257/ILSVRC2012_val_00000002.JPEG", (30, 40))
    (tree / "noisy_imagenette.csv").write_text("path,noisy_labels_0\n")
    served = {"/imagenette2-160.tgz": _targz(tmp / "i.tgz", tree, "imagenette2-160")}
    # the full wsolevaluation metadata (here: 3 images, one not in the tree)
    meta = _wsol(src / "wsol")
    for f in meta.iterdir():
        served[f"/wsol/{f.name}"] = f.read_bytes()
    # Caltech-101: a zip holding caltech-101/101_ObjectCategories.tar.gz, as the published archive does
    cats = src / "101_ObjectCategories"
    for c in ("BACKGROUND_Google", "ant"):
        for i in range(32):
            _img(cats / c / f"image_{i + 1:04d}.jpg", (4, 4), i)
    inner = _targz(tmp / "inner.tgz", cats, "101_ObjectCategories")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("caltech-101/101_ObjectCategories.tar.gz", inner)
        zf.writestr("caltech-101/show_annotation.m", "% annotations viewer\n")
    served["/caltech-101.zip"] = buf.getvalue()
    # CUB-200-2011 with boxes
    served["/CUB_200_2011.tgz"] = _targz(
        tmp / "c.tgz", _cub(src / "CUB_200_2011", boxes=True), "CUB_200_2011"
    )
    srv.files.update(served)
    reg = D.REGISTRY
    for name, path in (
        ("imagenette2_160", "/imagenette2-160.tgz"),
        ("caltech101", "/caltech-101.zip"),
        ("cub200_2011", "/CUB_200_2011.tgz"),
    ):
        monkeypatch.setitem(reg, name, replace(reg[name], urls=(srv.url + path,), md5=_md5(served[path])))
    monkeypatch.setitem(
        reg, "wsol_ilsvrc_val", replace(reg["wsol_ilsvrc_val"], urls=(srv.url + "/gone/", srv.url + "/wsol/"))
    )
    return served


def test_fetch_all_then_read(tmp_path, server, monkeypatch, capsys):  # noqa: F811 (the shared fixture)
    served = _serve_everything(tmp_path, server, monkeypatch)
    data = tmp_path / "data"
    assert F.main(["imagenette", "caltech101", "cub", "--root", str(data), "--no-progress"]) == 0
    err = capsys.readouterr().err
    sha = hashlib.sha256(served["/wsol/localization.txt"]).hexdigest()
    assert (
        "localization.txt is NOT verified" in err and sha in err
    )  # no published checksum: computed and shown
    # imagenette: wsol/ written with the lines of the tree's ILSVRC val files only, boxes scaled per axis
    d = open_imagenette(data / "imagenette2-160")
    assert len(d.train) == 1 and d.val == [] and len(d.boxed) == 2 and d.wsol_without_file == 0
    assert (data / "imagenette2-160/wsol/image_ids.txt").read_text().count("\n") == 2
    by = {r.path.name: r.target for r in d.boxed}
    assert by["ILSVRC2012_val_00000001.JPEG"].boxes.tolist() == [[0, 0, 39, 29], [10, 15, 20, 22]]
    # caltech101: torchvision's layout after the nested extraction; seeded 30-per-class split
    c = open_caltech101(data / "caltech101")
    assert c.classes == ["BACKGROUND_Google", "ant"]
    assert np.bincount([r.target.label for r in c.train]).tolist() == [30, 30] and len(c.test) == 4
    # CUB with its boxes
    cub = CUBDataset(data, "train")
    assert cub.gt_boxes().tolist() == [[1, 2, 10, 9], [5, 5, 8, 8]]
    # the resolution finds them in data/ with the caveat of that copy
    r = resolve_root("imagenette", environ={}, data=data, shared=tmp_path / "no-shared")
    assert r.kind == "data" and r.info.n_images == 3 and "160 px" in r.info.caveat
    # a second run downloads nothing
    n = len(server.ranges)
    assert F.main(["imagenette", "caltech101", "cub", "--root", str(data), "--no-progress"]) == 0
    assert len(server.ranges) == n


def test_fetch_refuses_a_bad_archive(tmp_path, server, monkeypatch):  # noqa: F811 (the shared fixture)
    _serve_everything(tmp_path, server, monkeypatch)
    monkeypatch.setitem(D.REGISTRY, "cub200_2011", replace(D.REGISTRY["cub200_2011"], md5="0" * 32))
    with pytest.raises(D.ChecksumError):
        F.fetch("cub", tmp_path / "data", progress=False)
    assert not (tmp_path / "data/CUB_200_2011").exists() and not (tmp_path / "data/CUB_200_2011.tgz").exists()


def test_fetch_cli_lists_and_refuses_unknown_names(capsys):
    assert F.main(["--list"]) == 0
    out = capsys.readouterr().out
    assert (
        "e793b78cc4c9e9a4ccc0c1155377a412" in out
        and "UNVERIFIED" in out
        and "97eceeb196236b17998738112f37df78" in out
    )
    with pytest.raises(SystemExit):
        F.main(["imagenet"])
    with pytest.raises(D.DatasetNotFoundError, match="caltech-101.zip"):
        F.fetch("caltech101", Path("/nonexistent-camlib-root"), download=False)


def test_make_data_target_never_in_quick_or_test():
    makefile = (Path(__file__).resolve().parents[1] / "Makefile").read_text()
    assert "-m camlib.datasets.fetch" in makefile
    for target in ("quick", "test"):
        block = makefile.split(f"\n{target}:", 1)[1].split("\n\n", 1)[0]
        assert "fetch" not in block and "data" not in block.split("##")[0]
