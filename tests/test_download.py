"""Download / verify / extract machinery (camlib.datasets.download), CUB reader and Table 5 factory.

Every archive is built here in tmp_path; downloads come from a local http.server on 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from camlib.datasets import download as D
from camlib.datasets.cub import CUBDataset, read_cub_metadata, xywh_to_inclusive
from camlib.datasets.table5 import open_table5, split_per_class

# --------------------------------------------------------------------------- helpers


def _tar(path: Path, members: dict[str, bytes], mode: str = "w:gz") -> Path:
    with tarfile.open(path, mode) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


GOOD = {"ds/a.txt": b"alpha\n", "ds/sub/b.txt": b"beta\n" * 100}


def _spec(**kw) -> D.DatasetSpec:
    base = dict(
        name="toy",
        title="Toy set",
        fetch="archive",
        homepage="http://example.invalid",
        citation="none",
        layout="<root>/ds/\n  a.txt\n  sub/b.txt",
        filename="toy.tar.gz",
        folder="ds",
        check_files=("a.txt", "sub/b.txt"),
    )
    base.update(kw)
    return D.DatasetSpec(**base)


# --------------------------------------------------------------------------- a local HTTP server


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's name
        srv = self.server
        data = srv.files.get(self.path.split("?")[0])
        rng = self.headers.get("Range")
        srv.ranges.append(rng)
        if data is None:
            self.send_error(404)
            return
        start = 0
        if rng and srv.support_range:
            start = int(rng.split("=", 1)[1].split("-", 1)[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if srv.cut_after is not None:  # announce everything, send a part, hang up
            body = body[: srv.cut_after]
            srv.cut_after = None
            self.close_connection = True
        srv.sent += len(
            body
        )  # counted before the write: the client may finish reading before this thread runs on
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.files, srv.ranges, srv.sent, srv.support_range, srv.cut_after = {}, [], 0, True, None
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    yield srv
    srv.shutdown()
    srv.server_close()


PAYLOAD = bytes(range(256)) * 400  # 102,400 bytes


# --------------------------------------------------------------------------- verify + extract


@pytest.mark.parametrize("kind", ["tar.gz", "zip"])
def test_good_archive_verifies_and_extracts(tmp_path, kind):
    archive = _tar(tmp_path / "a.tar.gz", GOOD) if kind == "tar.gz" else _zip(tmp_path / "a.zip", GOOD)
    D.verify_file(archive, md5=_md5(archive), sha256=hashlib.sha256(archive.read_bytes()).hexdigest())
    out = tmp_path / "out"
    D.safe_extract(archive, out)
    assert (out / "ds/a.txt").read_bytes() == b"alpha\n"
    assert (out / "ds/sub/b.txt").read_bytes() == GOOD["ds/sub/b.txt"]


def test_tampered_archive_fails_checksum(tmp_path):
    archive = _tar(tmp_path / "toy.tar.gz", GOOD)
    md5 = _md5(archive)
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0xFF
    archive.write_bytes(bytes(data))
    with pytest.raises(D.ChecksumError, match="md5"):
        D.verify_file(archive, md5=md5)
    with pytest.raises(D.ChecksumError):
        D.prepare(_spec(md5=md5), tmp_path, download=False)
    assert not (tmp_path / "ds").exists()  # nothing extracted from a bad archive


@pytest.mark.parametrize(
    "name",
    ["../evil.txt", "ds/../../evil.txt", "/tmp/camlib-evil-absolute.txt"],
)
def test_escaping_members_are_refused(tmp_path, name):
    archive = _tar(tmp_path / "bad.tar.gz", {"ds/ok.txt": b"ok", name: b"evil"})
    target = tmp_path / "target"
    with pytest.raises(D.UnsafeArchiveError, match="outside"):
        D.safe_extract(archive, target)
    assert not (tmp_path / "evil.txt").exists()
    assert not (target / "ds/ok.txt").exists()  # checked before anything is written
    zarchive = _zip(tmp_path / "bad.zip", {"ds/ok.txt": b"ok", name: b"evil"})
    with pytest.raises(D.UnsafeArchiveError):
        D.safe_extract(zarchive, tmp_path / "ztarget")
    assert not (tmp_path / "evil.txt").exists()


def test_symlink_pointing_outside_is_refused(tmp_path):
    archive = tmp_path / "link.tar"
    with tarfile.open(archive, "w") as tar:
        info = tarfile.TarInfo("ds/link")
        info.type = tarfile.SYMTYPE
        info.linkname = "../../outside"
        tar.addfile(info)
    with pytest.raises(D.UnsafeArchiveError, match="symbolic link"):
        D.safe_extract(archive, tmp_path / "t")
    inside = tmp_path / "ok.tar"
    with tarfile.open(inside, "w") as tar:
        f = tarfile.TarInfo("ds/a.txt")
        f.size = 1
        tar.addfile(f, io.BytesIO(b"x"))
        info = tarfile.TarInfo("ds/link")
        info.type = tarfile.SYMTYPE
        info.linkname = "a.txt"  # stays inside: allowed
        tar.addfile(info)
    D.safe_extract(inside, tmp_path / "t2")
    assert (tmp_path / "t2/ds/link").read_bytes() == b"x"


# --------------------------------------------------------------------------- downloads


def test_download_resumes_with_range(tmp_path, server):
    server.files["/f.bin"] = PAYLOAD
    dest = tmp_path / "f.bin"
    n = 30_000
    (tmp_path / "f.bin.part").write_bytes(PAYLOAD[:n])  # an earlier, interrupted download
    D.download_url(server.url + "/f.bin", dest, progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert server.ranges == [f"bytes={n}-"]
    assert server.sent == len(PAYLOAD) - n  # only the missing bytes travelled
    assert not (tmp_path / "f.bin.part").exists()


def test_download_restarts_cleanly_when_range_is_ignored(tmp_path, server):
    server.files["/f.bin"] = PAYLOAD
    server.support_range = False
    dest = tmp_path / "f.bin"
    (tmp_path / "f.bin.part").write_bytes(b"\x00" * 5000)  # stale bytes that must not survive
    D.download_url(server.url + "/f.bin", dest, progress=False)
    assert server.ranges == ["bytes=5000-"]
    assert server.sent == len(PAYLOAD)
    assert dest.read_bytes() == PAYLOAD


def test_interrupted_transfer_leaves_part_file_then_resumes(tmp_path, server):
    server.files["/f.bin"] = PAYLOAD
    server.cut_after = 40_000
    dest = tmp_path / "f.bin"
    with pytest.raises(D.DownloadError, match="resume"):
        D.download_url(server.url + "/f.bin", dest, progress=False)
    part = tmp_path / "f.bin.part"
    assert not dest.exists() and part.stat().st_size == 40_000
    D.download_url(server.url + "/f.bin", dest, progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert server.ranges == [None, "bytes=40000-"]


def test_complete_part_file_and_416(tmp_path, server):
    server.files["/f.bin"] = PAYLOAD
    (tmp_path / "f.bin.part").write_bytes(PAYLOAD)
    D.download_url(server.url + "/f.bin", tmp_path / "f.bin", progress=False)
    assert (tmp_path / "f.bin").read_bytes() == PAYLOAD


def test_prepare_downloads_verifies_extracts_once(tmp_path, server):
    archive = _tar(tmp_path / "src.tar.gz", GOOD)
    server.files["/toy.tar.gz"] = archive.read_bytes()
    spec = _spec(md5=_md5(archive), urls=(server.url + "/missing.tgz", server.url + "/toy.tar.gz"))
    root = tmp_path / "data"
    folder = D.prepare(spec, root, progress=False)
    assert folder == root / "ds" and (folder / "sub/b.txt").is_file()
    requests = len(server.ranges)
    assert requests == 2  # the 404 mirror, then the good one
    assert D.prepare(spec, root, progress=False) == folder
    assert len(server.ranges) == requests  # complete: no second download


def test_prepare_deletes_a_bad_download(tmp_path, server):
    archive = _tar(tmp_path / "src.tar.gz", GOOD)
    server.files["/toy.tar.gz"] = archive.read_bytes()
    spec = _spec(md5="0" * 32, urls=(server.url + "/toy.tar.gz",))
    with pytest.raises(D.ChecksumError):
        D.prepare(spec, tmp_path / "data", progress=False)
    assert not (tmp_path / "data/toy.tar.gz").exists()


def test_missing_data_error_names_the_layout(tmp_path):
    with pytest.raises(D.DatasetNotFoundError) as err:
        D.prepare("cub200_2011", tmp_path, download=False)
    msg = str(err.value)
    assert str(tmp_path / "CUB_200_2011.tgz") in msg
    assert "97eceeb196236b17998738112f37df78" in msg
    assert "bounding_boxes.txt" in msg and "train_test_split.txt" in msg and str(tmp_path) in msg
    with pytest.raises(D.DatasetNotFoundError, match="Indoor"):
        D.prepare("mit_indoor67", tmp_path)


def test_registry_is_complete():
    table5 = {
        "sun397",
        "mit_indoor67",
        "scene15",
        "sun_attribute",
        "caltech101",
        "caltech256",
        "stanford_action40",
        "uiuc_event8",
    }
    real = {"imagenette2_160", "imagenette2_320", "wsol_ilsvrc_val"}  # python -m camlib.datasets.fetch
    assert table5 | {"cub200_2011", "svt"} | real == set(D.REGISTRY)
    for spec in D.REGISTRY.values():
        assert spec.citation and spec.layout and spec.homepage
        if spec.fetch != "manual":  # a checksum, or the reason there is none
            assert (
                spec.urls and (spec.filename or spec.files) and (spec.md5 or spec.sha256 or spec.unverified)
            )
    assert D.REGISTRY["cub200_2011"].urls[0].startswith("https://data.caltech.edu/records/65de6-vp158/")


# --------------------------------------------------------------------------- CUB reader


def _fake_cub(root: Path) -> Path:
    folder = root / "CUB_200_2011"
    rows = [  # id, path, class, train, box
        (1, "001.A/a1.jpg", 1, 1, "10.0 5.0 20.0 30.0"),
        (2, "001.A/a2.jpg", 1, 0, "0.0 0.0 64.0 48.0"),
        (3, "002.B/b1.jpg", 2, 1, "30.4 20.6 10.2 9.8"),
        (4, "002.B/b2.jpg", 2, 0, "50.0 40.0 14.0 8.0"),  # ends on the 64 x 48 image's edge
    ]
    for _, path, *_ in rows:
        (folder / "images" / path).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (64, 48), (200, 10, 10)).save(folder / "images" / path)
    (folder / "images.txt").write_text("".join(f"{i} {p}\n" for i, p, *_ in rows))
    (folder / "image_class_labels.txt").write_text("".join(f"{i} {c}\n" for i, _, c, *_ in rows))
    (folder / "train_test_split.txt").write_text("".join(f"{i} {t}\n" for i, _, _, t, _ in rows))
    (folder / "bounding_boxes.txt").write_text("".join(f"{i} {b}\n" for i, *_, b in rows))
    (folder / "classes.txt").write_text("1 001.A\n2 002.B\n")
    return folder


def test_cub_reader_split_and_boxes(tmp_path):
    _fake_cub(tmp_path)
    meta = read_cub_metadata(tmp_path / "CUB_200_2011")
    assert meta.labels.tolist() == [0, 0, 1, 1] and meta.is_train.tolist() == [True, False, True, False]
    train = CUBDataset(tmp_path, "train")
    test = CUBDataset(tmp_path, "test")
    assert len(train) == 2 and len(test) == 2 and train.classes == ["001.A", "002.B"]
    assert train.boxes.tolist() == [[10, 5, 29, 34], [30, 21, 40, 29]]  # round(x), round(x + w) - 1
    assert test.gt_boxes().tolist() == [[0, 0, 63, 47], [50, 40, 63, 47]]  # inside the 64 x 48 image
    img, label = train[0]
    assert img.size == (64, 48) and label == 0
    crops = CUBDataset(tmp_path, "train", crop_boxes=train.boxes)
    assert crops[0][0].size == (20, 30)
    assert crops.identity() != train.identity()


def test_cub_archive_end_to_end(tmp_path):
    src = _fake_cub(tmp_path / "src")
    archive = tmp_path / "data" / "CUB_200_2011.tgz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src, arcname="CUB_200_2011")
    spec = D.DatasetSpec(**{**D.REGISTRY["cub200_2011"].__dict__, "md5": _md5(archive)})
    folder = D.prepare(spec, tmp_path / "data", download=False)
    assert len(CUBDataset(folder.parent, "test")) == 2


def test_xywh_conversion_matches_area():
    b = xywh_to_inclusive([[60.0, 27.0, 325.0, 304.0]])
    assert b.tolist() == [[60, 27, 384, 330]]
    assert (b[0, 2] - b[0, 0] + 1) * (b[0, 3] - b[0, 1] + 1) == 325 * 304


# --------------------------------------------------------------------------- Table 5 factory


def test_table5_torchvision_never_downloads(tmp_path, monkeypatch):
    import torchvision.datasets as tvd

    def no_download(self, *a, **k):
        raise AssertionError("the factory must not download")

    monkeypatch.setattr(tvd.Caltech101, "download", no_download)
    with pytest.raises(D.DatasetNotFoundError, match="101_ObjectCategories"):
        open_table5("caltech101", tmp_path)
    # a tiny Caltech101 on disk is read through torchvision's class
    for c in ("BACKGROUND_Google", "ant", "bee"):
        d = tmp_path / "caltech101" / "101_ObjectCategories" / c
        d.mkdir(parents=True)
        for i in range(35):
            Image.new("L", (8, 8), i).save(d / f"image_{i + 1:04d}.jpg")
    data = open_table5("caltech101", tmp_path)
    assert data.classes == ["ant", "bee"]
    assert len(data.train) == 60 and len(data.test) == 10  # 30 train + the 5 others per class
    img, label = data.dataset[int(data.test[0])]
    assert img.mode == "RGB" and label in (0, 1)


def test_table5_folders_and_errors(tmp_path):
    with pytest.raises(D.DatasetNotFoundError, match="ImageFolder"):
        open_table5("scene15", tmp_path)
    with pytest.raises(NotImplementedError, match="multi-label"):
        open_table5("sun_attribute", tmp_path)
    for c in ("RockClimbing", "polo"):
        d = tmp_path / "uiuc_event8" / c
        d.mkdir(parents=True)
        for i in range(140):
            Image.new("RGB", (4, 4)).save(d / f"{i}.jpg")
    data = open_table5("uiuc_event8", tmp_path, seed=1)
    assert len(data.train) == 140 and len(data.test) == 120
    assert not set(data.train) & set(data.test)


def test_split_per_class_is_seeded_and_disjoint():
    labels = np.repeat(np.arange(3), 10)
    a = split_per_class(labels, 4, 3, seed=0)
    b = split_per_class(labels, 4, 3, seed=0)
    assert all((x == y).all() for x, y in zip(a, b, strict=True))
    assert np.bincount(labels[a[0]]).tolist() == [4, 4, 4] and np.bincount(labels[a[1]]).tolist() == [3, 3, 3]
    assert not set(a[0]) & set(a[1])
    with pytest.raises(ValueError):
        split_per_class(labels, 10, None)


def test_table4_pipeline_runs_on_a_fake_cub(tmp_path):
    """The paper profile's CUB pipeline end to end (tiny images, a random SmallGAPNet)."""
    import torch

    from camlib.core.features import FeatureCache
    from camlib.models import SmallGAPNet
    from camlib.paper.fine_grained import table4_cub

    folder = tmp_path / "CUB_200_2011"
    rng = np.random.default_rng(0)
    lines = {"images": [], "labels": [], "split": [], "boxes": []}
    for i in range(24):
        c = i % 2
        path = f"00{c + 1}.C{c}/img_{i}.jpg"
        (folder / "images" / path).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(folder / "images" / path)
        lines["images"].append(f"{i + 1} {path}")
        lines["labels"].append(f"{i + 1} {c + 1}")
        lines["split"].append(f"{i + 1} {int(i < 12)}")
        lines["boxes"].append(f"{i + 1} 5.0 6.0 20.0 18.0")
    for name, key in (
        ("images", "images"),
        ("image_class_labels", "labels"),
        ("train_test_split", "split"),
        ("bounding_boxes", "boxes"),
    ):
        (folder / f"{name}.txt").write_text("\n".join(lines[key]) + "\n")
    (folder / "classes.txt").write_text("1 001.C0\n2 002.C1\n")

    def preprocess(img):
        return torch.from_numpy(np.asarray(img.resize((32, 32)), dtype=np.float32) / 255.0).permute(2, 0, 1)

    torch.manual_seed(0)
    net = SmallGAPNet(3, channels=(8, 16), width=16).eval()
    cache = FeatureCache(tmp_path / "cache")
    for source in ("network", "svm"):
        out = table4_cub(
            net,
            model_name="small",
            preprocess=preprocess,
            preprocessing="32x32",
            root=folder,
            cache=cache,
            cam_source=source,
            Cs=(1.0,),
            cv=3,
            progress=False,
        )
        for key in ("full", "cam_crop", "gt_crop"):
            assert 0 <= out[key]["acc"] <= 100 and out[key]["n_train"] == 12 and out[key]["n_test"] == 12
        assert 0 <= out["loc_iou50"] <= 100 and out["feature_layer"] == "cam_conv"
    assert cache.hits >= 4  # the second run re-used the full-image and GT-crop features
