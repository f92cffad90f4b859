"""The data layer's one image-file dataset, one transforms module and one split family.

The splits and transforms replaced older copies; the tests compute the OLD implementations' outputs
here (their code, copied verbatim from before the move) and require identical results, so that no
committed number moves.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from camlib.datasets.files import (
    IMAGE_SUFFIXES,
    ImageFiles,
    UnreadableImageError,
    collate_skipping,
    image_folder,
    list_images,
    read_rgb,
    to_rgb,
)
from camlib.datasets.splits import random_halves, split_per_class, stratified_split
from camlib.datasets.transforms import (
    OnUnitRange,
    PixelNormalize,
    WholeImage,
    imagenet_eval_transform,
    lite0_input,
    resize_preprocess,
    whole_image_transform,
)

# ----------------------------------------------------------------------------- the old split helpers


def old_split_halves(labels, seed=0, train_share=0.5):  # paper/discovery.split_halves
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        k = max(int(len(idx) * train_share), 1 if len(idx) > 1 else 0)
        train.append(idx[:k])
        test.append(idx[k:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def old_stratified_halves(y, seed):  # datasets/table5._stratified_halves
    rng = np.random.default_rng(seed)
    tr, te = [], []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        tr.append(idx[: len(idx) // 2])
        te.append(idx[len(idx) // 2 :])
    return np.sort(np.concatenate(tr)), np.sort(np.concatenate(te))


def old_split_per_class(labels, n_train, n_test, seed=0):  # datasets/table5.split_per_class
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        if len(idx) <= n_train:
            raise ValueError(f"class {c} has {len(idx)} images, not more than n_train={n_train}")
        train.append(idx[:n_train])
        test.append(idx[n_train:] if n_test is None else idx[n_train : n_train + n_test])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def old_random_halves(n, seed=0):  # evaluation/wsol.random_halves
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[: n // 2]), np.sort(perm[n // 2 :])


LABEL_SETS = [
    np.repeat(np.arange(10), 179)[:1797],  # digits-like
    (np.arange(200) >= 100).astype(np.int64),  # faces vs non-faces
    np.random.default_rng(7).integers(0, 6, 333),  # unbalanced, shuffled
    np.array([0] * 10 + [1] * 5 + [2]),  # a class of one
    np.array([3, 3, 1, 1, 1, 9, 9, 9, 9, 9, 9]),  # non-contiguous class ids
]


@pytest.mark.parametrize("seed", [0, 1, 12345])
@pytest.mark.parametrize("labels", LABEL_SETS, ids=lambda a: f"n{len(a)}")
def test_splits_identical_to_the_old_helpers(labels, seed):
    for share in (0.5, 0.7, 0.8):
        new, old = (
            stratified_split(labels, seed, train_share=share),
            old_split_halves(labels, seed, train_share=share),
        )
        assert all(np.array_equal(a, b) and a.dtype == b.dtype for a, b in zip(new, old, strict=True))
    new, old = stratified_split(labels, seed), old_stratified_halves(labels, seed)
    assert all(np.array_equal(a, b) for a, b in zip(new, old, strict=True))
    n_min = int(np.bincount(labels).max(initial=0))
    for n_train, n_test in ((0, None), (1, 2), (0, 3)):
        try:
            old = old_split_per_class(labels, n_train, n_test, seed)
        except ValueError as exc:
            with pytest.raises(ValueError, match=str(exc).split(",")[0]):
                split_per_class(labels, n_train, n_test, seed)
            continue
        new = split_per_class(labels, n_train, n_test, seed)
        assert all(np.array_equal(a, b) for a, b in zip(new, old, strict=True)), n_min
    for n in (0, 1, 17, len(labels)):
        assert all(
            np.array_equal(a, b)
            for a, b in zip(random_halves(n, seed), old_random_halves(n, seed), strict=True)
        )


def test_splits_are_disjoint_and_stratified():
    labels = np.array([0] * 10 + [1] * 5 + [2])
    tr, te = stratified_split(labels, seed=1)
    assert len(set(tr) & set(te)) == 0 and len(tr) + len(te) == 16
    assert np.bincount(labels[tr], minlength=3).tolist() == [5, 2, 0]
    a, b = split_per_class(np.repeat([0, 1], 8), 3, 2, seed=4)
    assert np.bincount(np.repeat([0, 1], 8)[a]).tolist() == [3, 3] and len(b) == 4 and not set(a) & set(b)
    with pytest.raises(ValueError, match="class 1 has 2 images"):
        split_per_class([0, 0, 0, 1, 1], 2)
    empty = stratified_split(np.zeros(0, np.int64))
    assert empty[0].shape == (0,) and empty[1].dtype == np.int64


def test_the_old_names_are_the_new_functions():
    from camlib.datasets import table5
    from camlib.evaluation import localize, wsol
    from camlib.paper import discovery, gap_vs_gmp, units

    assert discovery.split_halves is stratified_split and table5.split_per_class is split_per_class
    assert wsol.random_halves is random_halves and discovery.lite0_input is lite0_input
    assert localize.WholeImage is WholeImage and localize.whole_image_transform is whole_image_transform
    assert (
        gap_vs_gmp.imagenet_eval_transform is imagenet_eval_transform
        and units.resize_preprocess is resize_preprocess
    )


# ----------------------------------------------------------------------------- files


def _png(path, shape=(12, 16), value=0, mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.full((*shape, 3), value, np.uint8) if mode == "RGB" else np.full(shape, value, np.uint8)
    Image.fromarray(arr).save(path)
    return path


def test_list_images_one_suffix_list_any_case(tmp_path):
    a = _png(tmp_path / "b" / "x.PNG")
    b = _png(tmp_path / "a.jpeg")
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "dir.jpg").mkdir()  # a folder named like an image is not one
    assert list_images(tmp_path) == [b, a]
    assert list_images(tmp_path, recursive=False) == [b]
    assert ".jpg" in IMAGE_SUFFIXES and all(s == s.lower() for s in IMAGE_SUFFIXES)
    with pytest.raises(FileNotFoundError, match="does not exist. set FOO"):
        list_images(tmp_path / "nope", hint="set FOO")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no images"):
        list_images(tmp_path / "empty")
    assert list_images(tmp_path / "empty", allow_empty=True) == []


def test_image_folder_is_torchvisions_imagefolder_order(tmp_path):
    from torchvision.datasets import ImageFolder

    for cls, names in (("n02", ["b.JPEG", "a.JPEG", "c.png"]), ("n01", ["z.jpg", "y.JPEG"])):
        for n in names:
            _png(tmp_path / cls / n)
    paths, labels, classes = image_folder(tmp_path)
    ref = ImageFolder(str(tmp_path))
    assert (
        classes == ref.classes
        and [(str(p), int(y)) for p, y in zip(paths, labels, strict=True)] == ref.samples
    )


def test_image_files_items_labels_and_display(tmp_path):
    paths = [_png(tmp_path / "a.png", (12, 16), 10), _png(tmp_path / "g.png", (6, 8), 200, mode="L")]
    ds = ImageFiles([str(p) for p in paths] + [np.full((5, 7, 3), 50, np.uint8)], labels=[3, 4, 5])
    img, label = ds[1]
    assert isinstance(img, Image.Image) and img.mode == "RGB" and label == 4
    assert ds.labels.dtype == np.int64 and ds.names == ["a.png", "g.png", "image 2"]
    assert ds.original_size(0) == (12, 16) and ds.original_size(2) == (5, 7)
    assert ds.image(1).shape == (6, 8, 3) and ds.image(0, (4, 6)).shape == (4, 6, 3)
    assert ds.paths[:2] == paths and ds.paths[2] is None
    unlabelled = ImageFiles(paths, transform=lambda im: torch.from_numpy(np.array(im)).float())
    assert unlabelled.label(1) == 1 and unlabelled[1][1] == 1 and unlabelled.labels is None
    with pytest.raises(ValueError, match="2 labels for 3 images"):
        ImageFiles(paths + paths[:1], labels=[0, 1])


def test_unreadable_files_raise_or_are_skipped_like_ilsvrc(tmp_path):
    good = _png(tmp_path / "good.png", (8, 8), 90)
    trunc = _png(tmp_path / "trunc.png", (64, 64), 0)
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)).save(trunc)
    trunc.write_bytes(trunc.read_bytes()[:200])
    missing = tmp_path / "missing.jpg"

    def to_tensor(im):
        return torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1).float()

    strict = ImageFiles([good, trunc, missing], [0, 1, 2], to_tensor)
    assert strict[0][0].shape == (3, 8, 8)
    with pytest.raises(
        UnreadableImageError, match=r"trunc.png: cannot read image 1 of 3.*Fix: .*errors='skip'"
    ):
        strict[1]
    with pytest.raises(UnreadableImageError, match="missing.jpg"):
        strict[2]
    lenient = ImageFiles([good, trunc, missing], [0, 1, 2], to_tensor, errors="skip")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        x, target = lenient[2]
    assert x is None and target["index"] == 2 and target["label"] == 2 and "missing" in target["error"]
    assert any("skipping unreadable image" in str(w.message) for w in caught)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        batches = list(DataLoader(lenient, batch_size=3, collate_fn=collate_skipping))
    ((x, labels),) = batches
    assert x.shape == (1, 3, 8, 8) and list(labels) == [0]
    assert [(s["index"], s["path"]) for s in labels.skipped] == [(1, str(trunc)), (2, str(missing))]
    assert all(s["error"] for s in labels.skipped) and len(lenient.skipped) >= 1
    with pytest.raises(ValueError, match="errors must be"):
        ImageFiles([good], errors="ignore")


def test_ilsvrc_collate_is_the_one_collate():
    from camlib.datasets import ilsvrc

    assert ilsvrc.collate_with_targets is collate_skipping


# ----------------------------------------------------------------------------- transforms


def _png16(path, rows):
    """A 16-bit PNG written byte by byte (PNG spec: IHDR bit depth 16; PIL cannot write 16-bit RGB):
    ``rows`` is an (H, W) gray (colour type 0) or (H, W, 3) RGB (colour type 2) uint16 array."""
    import struct
    import zlib

    a = np.asarray(rows, dtype=np.uint16)
    color = 0 if a.ndim == 2 else 2
    h, w = a.shape[:2]
    raw = b"".join(b"\x00" + a[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind, data):
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, color, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )
    return path


def test_16bit_png_is_scaled_by_257_not_clipped_white(tmp_path):
    """A 16-bit grayscale PNG (PIL mode I;16): PIL's convert("RGB") clips every value >= 255 to white.
    read_rgb scales by round(v / 257): 0 -> 0, 257 -> 1, 32896 -> 128, 65535 -> 255; through the dataset too."""
    values = np.array([[0, 257, 1000], [32896, 50000, 65535]], dtype=np.uint16)
    path = _png16(tmp_path / "gray16.png", values)
    with Image.open(path) as im:
        assert im.mode == "I;16" and np.asarray(im.convert("RGB")).min() == 0
        assert (np.asarray(im.convert("RGB"))[..., 0] == 255).sum() == 5  # the bug: 5 of 6 pixels white
    want = np.array([[0, 1, 4], [128, 195, 255]], dtype=np.uint8)  # round(v / 257)
    got = np.asarray(read_rgb(path))
    assert got.shape == (2, 3, 3) and got.dtype == np.uint8
    np.testing.assert_array_equal(got, np.repeat(want[..., None], 3, axis=2))
    np.testing.assert_array_equal(ImageFiles([path]).image(0)[..., 1], want)
    # an in-memory 16-bit picture (array or PIL image) reads the same
    np.testing.assert_array_equal(ImageFiles([values]).image(0)[..., 2], want)
    with Image.open(path) as im:
        np.testing.assert_array_equal(np.asarray(to_rgb(im))[..., 0], want)
    # a 16-bit RGB PNG: PIL already reduces it to 8 bits (high byte), within 1 of round(v / 257)
    rgb = np.stack([values, values[::-1], np.full_like(values, 65535)], axis=2)
    got = np.asarray(read_rgb(_png16(tmp_path / "rgb16.png", rgb))).astype(int)
    assert np.abs(got - np.round(rgb / 257.0)).max() <= 1


def test_32bit_and_float_images_are_refused_with_the_path(tmp_path):
    big = tmp_path / "int32.tif"
    Image.fromarray(np.array([[0, 70000]], dtype=np.int32)).save(big)
    with pytest.raises(ValueError, match=r"int32.tif: integer samples in \[0, 70000\] do not fit 16 bits"):
        read_rgb(big)
    flt = tmp_path / "float.tif"
    Image.fromarray(np.array([[0.5, 1.0]], dtype=np.float32)).save(flt)
    with pytest.raises(ValueError, match=r"float.tif: floating-point image"):
        read_rgb(flt)
    with pytest.raises(UnreadableImageError, match="float.tif"):
        ImageFiles([flt])[0]


def _photo(shape=(37, 53)):
    return Image.fromarray(np.random.default_rng(3).integers(0, 256, (*shape, 3), dtype=np.uint8))


def test_pil_whole_image_is_the_old_discovery_input(tmp_path):
    im = _photo()
    size = 24
    # the old paper/discovery.ImageFiles.__getitem__
    arr = np.asarray(im.convert("RGB").resize((size, size), Image.BILINEAR))
    x = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1))).float().div_(255.0)
    old = lite0_input(x[None])[0]
    new = WholeImage(OnUnitRange(lite0_input), size, resample="pil")(im)
    assert torch.equal(new, old)
    from camlib.paper.discovery import ImageFiles as DiscoveryFiles

    path = tmp_path / "p.png"
    im.save(path)
    ds = DiscoveryFiles([path], size)
    assert torch.equal(ds[0][0], old) and ds[0][1] == 0 and np.array_equal(ds.image(0), arr)


def test_whole_image_tensor_resample_unchanged_and_rectangular():
    from torchvision.transforms import v2 as T

    im = _photo()
    norm = PixelNormalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225), scale=True)
    ref = norm(
        T.Compose([T.ToImage(), T.Resize((32, 32), antialias=True), T.ToDtype(torch.float32, scale=False)])(
            im
        )
    )
    assert torch.equal(WholeImage(norm, 32)(im), ref)
    assert WholeImage(norm, (20, 30))(im).shape == (3, 20, 30)
    with pytest.raises(ValueError, match="resample"):
        WholeImage(norm, 32, resample="cubic")


def test_resize_preprocess_matches_the_old_pipeline_to_float_precision():
    from types import SimpleNamespace

    from torchvision.models import ResNet18_Weights
    from torchvision.transforms import v2 as T

    pre = ResNet18_Weights.DEFAULT.transforms()
    model = SimpleNamespace(preprocess=pre, input_size=(40, 48))
    im = _photo()
    old = T.Compose(
        [
            T.ToImage(),
            T.Resize((40, 48), antialias=True),
            T.ToDtype(torch.float32, scale=True),
            T.Normalize(mean=list(pre.mean), std=list(pre.std)),
        ]
    )(im)
    new = resize_preprocess(model)(im)
    assert new.shape == old.shape and torch.allclose(new, old, atol=1e-5, rtol=0)
    lite = SimpleNamespace(preprocess=T.Compose([T.ToImage()]), input_size=(8, 8))
    assert resize_preprocess(lite) is lite.preprocess  # already resizes without a crop


def test_ilsvrc_train_folder_reads_through_image_files(tmp_path):
    from camlib.datasets.ilsvrc import ilsvrc_train_folder

    for wnid in ("n02", "n01"):
        _png(tmp_path / wnid / f"{wnid}_1.JPEG")
    (tmp_path / "n03").mkdir()
    with pytest.raises(FileNotFoundError, match=r"class folder\(s\) \['n03'\].*hold no image"):
        ilsvrc_train_folder(tmp_path, expect_classes=3)
    (tmp_path / "n03").rmdir()
    ds = ilsvrc_train_folder(tmp_path, expect_classes=2)
    assert isinstance(ds, ImageFiles) and ds.classes == ["n01", "n02"] and ds.labels.tolist() == [0, 1]
