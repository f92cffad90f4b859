"""The real-data readers on tiny fixtures written here (tmp_path), their manifest validation (errors
naming file:line), and the real folders of ../shared/data when present (counts)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from camlib.datasets.caltech101 import open_caltech101
from camlib.datasets.cub import BoxesUnavailable, CUBDataset, cub_records, read_cub_metadata
from camlib.datasets.ilsvrc import WSOLManifestDataset, read_wsol_metadata, wsol_records
from camlib.datasets.imagenette import open_imagenette, write_wsol_subset
from camlib.datasets.manifest import ManifestError
from camlib.datasets.textdet import open_scene_text, read_textdet_json

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _img(path: Path, size_wh: tuple[int, int], value: int = 100) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size_wh, (value, 50, 50)).save(path)
    return path


def _lines(path: Path, lines) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{ln}\n" for ln in lines))
    return path


# ------------------------------------------------------------------------------------ imagenette
# original sizes (W, H) and boxes in ORIGINAL pixels; files resized (aspect not kept) to 40 x 30
WSOL = {
    "ILSVRC2012_val_00000001.JPEG": ("n01440764", 0, (400, 300), [[0, 0, 399, 299], [100, 150, 200, 225]]),
    "ILSVRC2012_val_00000002.JPEG": ("n03888257", 701, (200, 500), [[20, 50, 180, 450]]),
    "ILSVRC2012_val_00000009.JPEG": ("n03888257", 701, (100, 100), [[1, 1, 9, 9]]),  # no file in the tree
}


def _wsol(folder: Path, items=WSOL) -> Path:
    _lines(folder / "image_ids.txt", [f"val/{k}" for k in items])
    _lines(folder / "class_labels.txt", [f"val/{k},{v[1]}" for k, v in items.items()])
    _lines(folder / "image_sizes.txt", [f"val/{k},{v[2][0]},{v[2][1]}" for k, v in items.items()])
    _lines(
        folder / "localization.txt",
        [f"val/{k},{','.join(f'{c:.1f}' for c in b)}" for k, v in items.items() for b in v[3]],
    )
    return folder


def _imagenette(root: Path, with_wsol: bool = True) -> Path:
    """A partial imagenette2 tree: two of the ten classes, one ILSVRC val file in train/, one in val/,
    one ILSVRC val file without a wsol line, and a wsol line without a file."""
    _img(root / "train/n01440764/n01440764_1.JPEG", (40, 30))
    _img(root / "train/n01440764/n01440764_2.JPEG", (40, 30))
    _img(root / "train/n01440764/ILSVRC2012_val_00000001.JPEG", (40, 30))
    _img(root / "val/n03888257/n03888257_7.JPEG", (40, 30))
    _img(root / "val/n03888257/ILSVRC2012_val_00000002.JPEG", (30, 40))
    _img(root / "val/n03888257/ILSVRC2012_val_00000005.JPEG", (30, 40))  # no wsol line
    if with_wsol:
        _wsol(root / "wsol")
    return root


def test_imagenette_partial_tree_splits_by_file_name_and_scales_boxes(tmp_path):
    d = open_imagenette(_imagenette(tmp_path))
    assert [r.path.name for r in d.train] == ["n01440764_1.JPEG", "n01440764_2.JPEG"]
    assert [r.path.name for r in d.val] == ["n03888257_7.JPEG"]
    assert not any(r.path.name.startswith("ILSVRC2012_val_") for r in d.train + d.val)  # never trained on
    assert sorted(r.path.name for r in d.boxed) == [
        "ILSVRC2012_val_00000001.JPEG",
        "ILSVRC2012_val_00000002.JPEG",
    ]
    assert [p.name for p in d.unboxed] == ["ILSVRC2012_val_00000005.JPEG"] and d.wsol_without_file == 1
    by = {r.path.name: r.target for r in d.boxed}
    t = by["ILSVRC2012_val_00000001.JPEG"]
    # 400 x 300 -> 40 x 30: x / 10, y / 10
    assert t.size == (30, 40) and t.boxes.tolist() == [[0, 0, 39, 29], [10, 15, 20, 22]]
    assert (t.label, t.extra["label_1000"], t.extra["original_size"]) == (0, 0, (300, 400))
    t = by["ILSVRC2012_val_00000002.JPEG"]  # 200 x 500 -> 30 x 40: per axis, x * 0.15, y * 0.08
    assert t.size == (40, 30) and t.boxes.tolist() == [[3, 4, 27, 36]]
    assert (t.label, t.extra["label_1000"]) == (9, 701)
    assert d.train[0].target.extra["label_1000"] == 0 and d.val[0].target.label == 9
    assert d.summary()["n_boxes"] == 3
    x, t = d.dataset("boxed")[0]
    assert x.size == (40, 30) and t.size == (30, 40)


def test_imagenette_without_wsol_and_errors(tmp_path):
    d = open_imagenette(_imagenette(tmp_path / "a", with_wsol=False))
    assert d.boxed == [] and len(d.unboxed) == 3 and len(d.train) == 2
    root = _imagenette(tmp_path / "b")
    wrong = dict(WSOL)
    wrong["ILSVRC2012_val_00000002.JPEG"] = ("n03888257", 3, (200, 500), [[20, 50, 180, 450]])
    _wsol(root / "wsol", wrong)
    with pytest.raises(ManifestError, match=r"class_labels.txt:2: .*sits in val/n03888257"):
        open_imagenette(root)
    _img(root / "train/n99999999/x.JPEG", (4, 4))
    with pytest.raises(ManifestError, match="unknown class folder 'n99999999'"):
        open_imagenette(root)
    with pytest.raises(FileNotFoundError, match="neither train/ nor val/"):
        open_imagenette(tmp_path / "empty")


def test_write_wsol_subset_keeps_the_lines_of_the_tree(tmp_path):
    root = _imagenette(tmp_path / "tree", with_wsol=False)
    full = _wsol(tmp_path / "full")
    assert write_wsol_subset(full, root) == 2  # 00000005 has no line; 00000009 has no file
    assert (root / "wsol/localization.txt").read_text().count("\n") == 3
    assert len(open_imagenette(root).boxed) == 2


# ------------------------------------------------------------------------------------ wsolevaluation
def test_wsol_validation_names_file_and_line(tmp_path):
    f = _wsol(tmp_path / "w")
    meta = read_wsol_metadata(f)
    assert meta.ids[0] == "val/ILSVRC2012_val_00000001.JPEG" and meta.sizes[meta.ids[1]] == (500, 200)
    cases = [
        (
            "image_ids.txt",
            ["val/a.JPEG", "val/b.JPEG", "val/a.JPEG"],
            r"image_ids.txt:3: duplicate id 'val/a.JPEG' "
            r"\(first on line 1\)",
        ),
        (
            "class_labels.txt",
            ["val/ILSVRC2012_val_00000001.JPEG,0", "val/ILSVRC2012_val_00000002.JPEG,1000"],
            r"class_labels.txt:2: unknown class index 1000",
        ),
        (
            "class_labels.txt",
            ["val/ILSVRC2012_val_00000001.JPEG,zero"],
            r"class_labels.txt:1: 'zero' is not an integer",
        ),
        (
            "localization.txt",
            ["val/ILSVRC2012_val_00000001.JPEG,10,10,5,20"],
            r"localization.txt:1: inverted box",
        ),
        (
            "localization.txt",
            ["val/ILSVRC2012_val_00000001.JPEG,0,0,401,10"],
            r"localization.txt:1: box \(0, 0, 401, 10\) lies outside the 400 x 300 image",
        ),
        ("localization.txt", ["val/ILSVRC2012_val_00000001.JPEG,0,0,10"], r"localization.txt:1: expected 5"),
        (
            "localization.txt",
            ["val/nope.JPEG,0,0,1,1"],
            r"localization.txt:1: unknown image id 'val/nope.JPEG'",
        ),
        ("image_sizes.txt", ["val/ILSVRC2012_val_00000001.JPEG,0,3"], r"image_sizes.txt:1: image size 0 x 3"),
    ]
    for name, lines, pattern in cases:
        g = _wsol(tmp_path / f"c{len(list(tmp_path.iterdir()))}")
        _lines(g / name, lines)
        with pytest.raises(ManifestError, match=pattern) as err:
            read_wsol_metadata(g)
        assert str(g / name) in str(err.value) and "Fix:" in str(err.value)
    g = _wsol(tmp_path / "nobox")
    _lines(g / "localization.txt", ["val/ILSVRC2012_val_00000001.JPEG,0,0,1,1"])
    with pytest.raises(
        ManifestError,
        match=r"image_ids.txt:2: image 'val/ILSVRC2012_val_00000002.JPEG' has no line "
        r"in localization.txt",
    ):
        read_wsol_metadata(g)


def test_ilsvrc_1k_layout_with_original_sizes(tmp_path):
    root = tmp_path / "k"
    items = {"ILSVRC2012_val_00000003.JPEG": (4, (500, 250), [[22.7, 0.0, 227.0, 226.4]])}
    for name in items:
        _img(root / "images" / name, (227, 227))
    _lines(root / "image_ids.txt", [f"val/{k}" for k in items])
    _lines(root / "class_labels.txt", [f"val/{k},{v[0]}" for k, v in items.items()])
    _lines(root / "image_sizes.txt", [f"val/{k},227,227" for k in items])
    _lines(root / "original_sizes.txt", [f"val/{k},{v[1][0]},{v[1][1]}" for k, v in items.items()])
    _lines(
        root / "localization.txt",
        [f"val/{k},{','.join(map(str, b))}" for k, v in items.items() for b in v[2]],
    )
    ds = WSOLManifestDataset(root)
    assert ds.original_sizes == {"val/ILSVRC2012_val_00000003.JPEG": (250, 500)}
    assert ds.boxes[0].tolist() == [[22, 0, 227, 226]]  # int(float(v)) as before; clipped when read
    x, t = ds[0]
    assert t["boxes"].tolist() == [[22, 0, 226, 226]]
    (rec,) = wsol_records(root)
    assert rec.target.boxes.tolist() == [[23, 0, 226, 226]] and rec.target.size == (227, 227)
    assert rec.target.extra["original_size"] == (250, 500) and rec.path.is_file()


# ------------------------------------------------------------------------------------ CUB
def _cub(folder: Path, boxes: bool) -> Path:
    rows = [
        (1, "004.A/a1.jpg", 4, 1, "1.0 2.0 10.0 8.0"),
        (2, "004.A/a2.jpg", 4, 0, "0.0 0.0 20.0 20.0"),
        (3, "017.B/b1.jpg", 17, 1, "5.0 5.0 4.0 4.0"),
        (4, "017.B/b2.jpg", 17, 0, "2.0 3.0 6.0 6.0"),
    ]
    for _, p, *_ in rows:
        _img(folder / "images" / p, (20, 20))
    _lines(folder / "images.txt", [f"{i} {p}" for i, p, *_ in rows])
    _lines(folder / "image_class_labels.txt", [f"{i} {c}" for i, _, c, *_ in rows])
    _lines(folder / "train_test_split.txt", [f"{i} {t}" for i, _, _, t, _ in rows])
    _lines(folder / "classes.txt", ["4 004.A", "17 017.B"])  # not contiguous: 2 of 200
    if boxes:
        _lines(folder / "bounding_boxes.txt", [f"{i} {b}" for i, *_, b in rows])
    return folder


def test_cub_without_boxes_says_so(tmp_path):
    folder = _cub(tmp_path / "cub", boxes=False)
    meta = read_cub_metadata(folder)
    assert not meta.has_boxes and meta.labels.tolist() == [0, 0, 1, 1] and meta.class_ids == [4, 17]
    test = CUBDataset(folder, "test")
    assert len(test) == 2 and test.boxes is None and test[1][1] == 1
    with pytest.raises(BoxesUnavailable, match="no bounding_boxes.txt"):
        test.gt_boxes()
    recs = cub_records(folder, "train")
    assert [r.target.label for r in recs] == [0, 1] and recs[0].target.extra["boxes"] == "unavailable"
    assert recs[1].target.boxes.shape == (0, 4) and recs[1].target.extra["class_id"] == 17


def test_cub_with_boxes_and_validation(tmp_path):
    folder = _cub(tmp_path / "cub", boxes=True)
    recs = cub_records(folder, "all")
    assert recs[0].target.boxes.tolist() == [[1, 2, 10, 9]] and recs[0].split == "train"
    assert CUBDataset(folder, "train").gt_boxes().tolist() == [[1, 2, 10, 9], [5, 5, 8, 8]]
    _lines(folder / "image_class_labels.txt", ["1 4", "2 4", "3 5", "4 17"])
    with pytest.raises(ManifestError, match=r"image_class_labels.txt:3: unknown class id 5"):
        read_cub_metadata(folder)
    _lines(folder / "image_class_labels.txt", ["1 4", "2 4", "3 17", "4 17", "2 4"])
    with pytest.raises(ManifestError, match=r"image_class_labels.txt:5: duplicate id 2 \(first on line 2\)"):
        read_cub_metadata(folder)
    _lines(folder / "image_class_labels.txt", ["1 4", "2 4", "3 17", "4 17"])
    _lines(folder / "bounding_boxes.txt", ["1 1 2 10 8", "2 0 0 0 20", "3 5 5 4 4", "4 2 3 6 6"])
    with pytest.raises(ManifestError, match=r"bounding_boxes.txt:2: box .* non-positive width"):
        read_cub_metadata(folder)
    _lines(
        folder / "bounding_boxes.txt", ["1 1 2 10 8", "2 0 0 20 20", "3 5 5 4 4", "4 2 3 6 6", "9 1 1 1 1"]
    )
    with pytest.raises(ManifestError, match=r"bounding_boxes.txt:5: unknown image id 9"):
        read_cub_metadata(folder)
    _lines(folder / "train_test_split.txt", ["1 1", "2 x", "3 1", "4 0"])
    _lines(folder / "bounding_boxes.txt", ["1 1 2 10 8", "2 0 0 20 20", "3 5 5 4 4", "4 2 3 6 6"])
    with pytest.raises(ManifestError, match=r"train_test_split.txt:2: split flag 'x'"):
        read_cub_metadata(folder)


def test_cub_boxes_outside_the_image_are_refused_not_clipped(tmp_path):
    """Images are 20 x 20. A box reaching x + width = 21 used to be clipped to the image; one starting at
    x = 25 became a 1-pixel box on the edge. Both are now errors naming bounding_boxes.txt and the line."""
    folder = _cub(tmp_path / "cub", boxes=True)
    _lines(folder / "bounding_boxes.txt", ["1 1 2 10 8", "2 0 0 20 20", "3 5 5 4 4", "4 10 3 10 17"])
    assert CUBDataset(folder, "test").gt_boxes().tolist() == [
        [0, 0, 19, 19],
        [10, 3, 19, 19],
    ]  # on the edge: fine
    for box, pattern in [
        ("11 3 10 6", r"box \(11, 3, 21, 9\) lies outside the 20 x 20 image"),
        ("25 25 2 2", r"box \(25, 25, 27, 27\) lies outside"),
    ]:
        _lines(folder / "bounding_boxes.txt", ["1 1 2 10 8", "2 0 0 20 20", "3 5 5 4 4", f"4 {box}"])
        test = CUBDataset(folder, "test")
        with pytest.raises(ManifestError, match=rf"bounding_boxes.txt:4: {pattern}.*b2.jpg is 20 x 20"):
            test.gt_boxes()


# ------------------------------------------------------------------------------------ Caltech-101
def _caltech(root: Path, per_class: int = 35) -> Path:
    for c in ("BACKGROUND_Google", "ant", "bee"):
        for i in range(per_class):
            _img(root / "101_ObjectCategories" / c / f"image_{i + 1:04d}.jpg", (6, 4), i)
    return root


def test_caltech_seeded_split_30_per_class(tmp_path):
    root = _caltech(tmp_path / "c")
    a = open_caltech101(root, seed=3)
    assert a.classes == ["BACKGROUND_Google", "ant", "bee"]  # the background is a class here
    assert np.bincount([r.target.label for r in a.train]).tolist() == [30, 30, 30]
    assert np.bincount([r.target.label for r in a.test]).tolist() == [5, 5, 5]
    assert not {r.path for r in a.train} & {r.path for r in a.test}
    b = open_caltech101(root / "101_ObjectCategories", seed=3)  # the folder itself works too
    assert [r.path for r in b.train] == [r.path for r in a.train]
    c = open_caltech101(root, seed=4)
    assert [r.path for r in c.train] != [r.path for r in a.train]
    capped = open_caltech101(root, seed=3, n_test=2)
    assert len(capped.test) == 6 and "seed 3" in capped.protocol


def test_caltech_lists_and_their_validation(tmp_path):
    root = _caltech(tmp_path / "c", per_class=4)
    _lines(
        root / "train.txt", ["ant/image_0001.jpg", "bee/image_0002.jpg", "BACKGROUND_Google/image_0001.jpg"]
    )
    _lines(root / "test.txt", ["ant/image_0003.jpg"])
    d = open_caltech101(root)
    assert d.counts() == {"n_classes": 3, "n_train": 3, "n_test": 1} and "lists" in d.protocol
    assert [r.target.label for r in d.train] == [1, 2, 0] and d.train[
        0
    ].target.image_id == "ant/image_0001.jpg"
    for lines, pattern in [
        (["ant/image_0009.jpg"], r"test.txt:1: .*image_0009.jpg does not exist"),
        (["wasp/image_0001.jpg"], r"test.txt:1: unknown class 'wasp'"),
        (["ant/image_0003.jpg", "", "ant/image_0003.jpg"], r"test.txt:3: duplicate id"),
        (["image_0003.jpg"], r"test.txt:1: 'image_0003.jpg' is not '<class>/<file>'"),
        (["bee/image_0002.jpg"], r"test.txt:1: bee/image_0002.jpg is also in train.txt \(line 2\)"),
    ]:
        _lines(root / "test.txt", lines)
        with pytest.raises(ManifestError, match=pattern):
            open_caltech101(root)
    assert len(open_caltech101(root, use_lists=False, n_train=3).train) == 9


# ------------------------------------------------------------------------------------ mmocr JSON
def _textdet_data() -> dict:
    return {
        "metainfo": {"dataset_type": "TextDetDataset", "task_name": "textdet"},
        "data_list": [
            {
                "img_path": "imgs/test/img_1.jpg",
                "height": 32,
                "width": 64,
                "instances": [
                    {
                        "polygon": [2, 3, 20, 3, 20, 10, 2, 10],
                        "bbox": [2.0, 3.0, 20.0, 10.4],
                        "bbox_label": 0,
                        "ignore": False,
                    },
                    {
                        "polygon": [30, 3, 40, 3, 40, 9, 30, 9],
                        "bbox": [30.0, 3.0, 40.0, 9.0],
                        "bbox_label": 0,
                        "ignore": True,
                    },
                ],
            },
            {"img_path": "imgs/test/img_2.jpg", "height": 32, "width": 64, "instances": []},
        ],
    }


def _textdet(root: Path, data: dict) -> Path:
    _img(root / "imgs/test/img_1.jpg", (64, 32))
    _img(root / "imgs/test/img_2.jpg", (64, 32))
    (root / "textdet_test.json").write_text(json.dumps(data, indent=2))
    return root / "textdet_test.json"


def _line(path: Path, needle: str, nth: int = 1) -> int:
    hits = [n for n, ln in enumerate(path.read_text().splitlines(), 1) if needle in ln]
    return hits[nth - 1]


def test_textdet_json_word_boxes(tmp_path):
    recs = open_scene_text(_textdet(tmp_path / "t", _textdet_data()).parent)
    assert len(recs) == 2 and recs[0].path.is_file()
    t = recs[0].target
    assert t.boxes.tolist() == [[2, 3, 20, 10]] and t.extra["ignored_boxes"].tolist() == [[30, 3, 40, 9]]
    assert t.size == (32, 64) and t.label == 0 and len(t.extra["polygons"]) == 2
    assert recs[1].target.boxes.shape == (0, 4)


def test_textdet_json_validation(tmp_path):
    data = _textdet_data()
    data["data_list"][0]["instances"][1]["bbox"] = [30.0, 3.0, 70.0, 9.0]
    path = _textdet(tmp_path / "a", data)
    with pytest.raises(
        ManifestError, match=rf"textdet_test.json:{_line(path, 'img_1.jpg')}: .*outside the 64 x 32"
    ):
        read_textdet_json(path)
    data = _textdet_data()
    data["data_list"][1]["img_path"] = "imgs/test/img_1.jpg"
    path = _textdet(tmp_path / "b", data)
    with pytest.raises(
        ManifestError, match=rf":{_line(path, 'img_1.jpg', 2)}: data_list\[1\]: duplicate img_path"
    ):
        read_textdet_json(path)
    del data["data_list"][0]["height"]
    path = _textdet(tmp_path / "c", data)
    with pytest.raises(ManifestError, match=r"data_list\[0\] lacks or garbles 'height'"):
        read_textdet_json(path)
    path.write_text(path.read_text()[:-5])
    with pytest.raises(ManifestError, match=r"textdet_test.json:\d+: not valid JSON"):
        read_textdet_json(path)


# ------------------------------------------------------------------------------------ the real folders
def _shared(name: str) -> Path:
    folder = SHARED / name
    if not folder.is_dir():
        pytest.skip(f"../shared/data/{name} not present (a fresh clone without the shared data)")
    return folder


def test_real_imagenette():
    d = open_imagenette(_shared("imagenette"))
    s = d.summary()
    assert (s["n_boxed"], s["n_train"], s["n_val"], s["n_ilsvrc_val_without_boxes"]) == (500, 2500, 500, 0)
    assert s["n_boxes"] == 813
    assert all(r.target.size == (224, 224) for r in d.boxed)
    assert all((r.target.boxes[:, 2:] <= 223).all() for r in d.boxed)


def test_real_cub_100():
    folder = _shared("cub-100")
    meta = read_cub_metadata(folder)
    assert (int(meta.is_train.sum()), int((~meta.is_train).sum())) == (2999, 2903)
    assert len(meta.classes) == 100 and meta.labels.max() == 99 and not meta.has_boxes
    with pytest.raises(BoxesUnavailable):
        CUBDataset(folder, "test", metadata=meta).gt_boxes()


def test_real_caltech101():
    d = open_caltech101(_shared("caltech101"))
    assert d.counts() == {"n_classes": 102, "n_train": 3060, "n_test": 949}


def test_real_scene_text():
    recs = open_scene_text(_shared("scene-text"))
    assert len(recs) == 10 and all(r.path.is_file() for r in recs)
    assert sum(len(r.target.boxes) + len(r.target.extra["ignored_boxes"]) for r in recs) == 82


def test_real_ilsvrc_1k():
    recs = wsol_records(_shared("ilsvrc-val-1k"))
    assert len(recs) == 1000 and sum(len(r.target.boxes) for r in recs) == 1538
    assert all("original_size" in r.target.extra for r in recs)
