"""ILSVRC val in its three annotation layouts, built here as tiny fixtures (PIL-written JPEGs:
RGB, grayscale, CMYK, a truncated file, a missing one), and the pipeline counting what it skips."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from camlib.datasets.ilsvrc import (
    ILSVRCBoxDataset,
    WSOLManifestDataset,
    collate_with_targets,
    make_loader,
    open_ilsvrc_val,
    parse_voc_xml,
    read_kaggle_solution,
    read_wnids,
    wnid_index,
)
from camlib.datasets.manifest import ManifestError
from camlib.evaluation.localize import Protocols, evaluate_localization, evaluate_protocols
from camlib.models import SmallGAPNet

# wnids deliberately listed out of order: indices must follow the SORTED order (torchvision's). A wnid
# list must name all 1000 classes: FILLER are made-up wnids that sort after these four
MAPPING = [
    "n09999999 last class, zzz",
    "n01440764 tench, Tinca tinca",
    "n02012849 crane",
    "n01443537 goldfish",
]
FILLER = [f"n{10_000_000 + k:08d}" for k in range(1000 - len(MAPPING))]
IDX = {"n01440764": 0, "n01443537": 1, "n02012849": 2, "n09999999": 3}

# image id -> (mode, (W, H), [(wnid, box)]); None mode = file missing, "trunc" = truncated JPEG
IMAGES = {
    "ILSVRC2012_val_00000001": ("RGB", (40, 30), [("n02012849", [2, 3, 40, 30]), ("n02012849", [0, 0, 9, 9])]),
    "ILSVRC2012_val_00000002": ("L", (24, 36), [("n01440764", [5, 5, 20, 30])]),
    "ILSVRC2012_val_00000003": ("CMYK", (32, 32), [("n09999999", [0, 4, 32, 31])]),  # x1 == W: the edge
    "ILSVRC2012_val_00000004": ("trunc", (64, 48), [("n01443537", [1, 1, 10, 10])]),
    "ILSVRC2012_val_00000005": (None, (20, 20), [("n01443537", [1, 1, 10, 10])]),
    "ILSVRC2012_val_00000006": ("RGB", (20, 20), [("n01443537", [1, 2, 8, 9]), ("n01440764", [0, 0, 19, 19]),
                                                 ("n01443537", [10, 10, 19, 19])]),
}  # fmt: skip
READABLE = [
    "ILSVRC2012_val_00000001",
    "ILSVRC2012_val_00000002",
    "ILSVRC2012_val_00000003",
    "ILSVRC2012_val_00000006",
]


def _write_images(folder):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name, (mode, size, _) in IMAGES.items():
        path = folder / f"{name}.JPEG"
        if mode is None:
            continue
        if mode == "CMYK":
            Image.new("CMYK", size, (0, 255, 255, 0)).save(path, "JPEG", quality=95)  # pure red
        elif mode == "L":
            Image.new("L", size, 128).save(path, "JPEG")
        elif mode == "trunc":
            Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path, "JPEG")
            data = path.read_bytes()
            path.write_bytes(data[: len(data) // 2])
        else:
            Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path, "JPEG")


def _write_mapping(root):
    (root / "LOC_synset_mapping.txt").write_text("\n".join(MAPPING + FILLER) + "\n")


def make_xml_layout(root):
    _write_images(root / "ILSVRC2012_img_val")
    _write_mapping(root)
    ann = root / "Annotations"
    ann.mkdir()
    for name, (_, (w, h), objs) in IMAGES.items():
        objects = "".join(
            f"<object><name>{wn}</name><pose>Unspecified</pose><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin>"
            f"<xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>"
            for wn, b in objs
        )
        (ann / f"{name}.xml").write_text(
            f"<annotation><folder>val</folder><filename>{name}</filename><size><width>{w}</width>"
            f"<height>{h}</height><depth>3</depth></size>{objects}</annotation>"
        )
    return root


def make_kaggle_layout(root):
    _write_images(root / "ILSVRC" / "Data" / "CLS-LOC" / "val")
    _write_mapping(root)
    lines = ["ImageId,PredictionString"]
    for name, (_, _, objs) in IMAGES.items():
        lines.append(name + "," + " ".join(f"{wn} {' '.join(map(str, b))}" for wn, b in objs) + " ")
    (root / "LOC_val_solution.csv").write_text("\n".join(lines) + "\n")
    return root


def make_wsol_layout(root):
    _write_images(root / "images")
    ids, labels, locs = [], [], []
    for name, (_, _, objs) in IMAGES.items():
        key = f"val/{name}.JPEG"
        ids.append(key)
        labels.append(f"{key},{IDX[objs[0][0]]}")
        locs += [f"{key},{','.join(map(str, b))}" for wn, b in objs if wn == objs[0][0]]
    (root / "image_ids.txt").write_text("\n".join(ids) + "\n")
    (root / "class_labels.txt").write_text("\n".join(labels) + "\n")
    (root / "localization.txt").write_text("\n".join(locs) + "\n")
    return root


LAYOUTS = {"xml": make_xml_layout, "kaggle": make_kaggle_layout, "wsol": make_wsol_layout}


def _prep(img):
    return torch.from_numpy(np.asarray(img.resize((32, 32)), dtype=np.float32)).permute(2, 0, 1) / 255.0


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_layouts_give_the_same_dataset(tmp_path, layout):
    ds = open_ilsvrc_val(LAYOUTS[layout](tmp_path), _prep)
    assert isinstance(ds, ILSVRCBoxDataset) and len(ds) == len(IMAGES)
    by_id = {Path_stem(i): k for k, i in enumerate(ds.ids)}
    for name, (_, _, objs) in IMAGES.items():
        k = by_id[name]
        assert ds.labels[k] == IDX[objs[0][0]]
        # only the boxes of the image's (first) class, all of them
        assert len(ds.boxes[k]) == sum(w == objs[0][0] for w, _ in objs)
    with pytest.warns(UserWarning, match="unreadable"):
        items = [ds[k] for k in range(len(ds))]
    ok = {Path_stem(t["image_id"]): (x, t) for x, t in items if x is not None}
    bad = {Path_stem(t["image_id"]): t for x, t in items if x is None}
    assert sorted(ok) == READABLE and sorted(bad) == ["ILSVRC2012_val_00000004", "ILSVRC2012_val_00000005"]
    assert "error" in bad["ILSVRC2012_val_00000005"] and len(ds.skipped) == 2
    assert all(x.shape == (3, 32, 32) for x, _ in ok.values())
    # boxes beyond the image are clipped to its last pixel; several boxes kept
    x, t = ok["ILSVRC2012_val_00000001"]
    assert t["size"] == (30, 40)
    np.testing.assert_array_equal(t["boxes"], [[2, 3, 39, 29], [0, 0, 9, 9]])
    np.testing.assert_array_equal(ok["ILSVRC2012_val_00000003"][1]["boxes"], [[0, 4, 31, 31]])


def Path_stem(key: str) -> str:
    return key.split("/")[-1].split(".")[0]


def test_grayscale_and_cmyk_become_rgb(tmp_path):
    ds = open_ilsvrc_val(make_wsol_layout(tmp_path))
    gray = np.asarray(ds.load_image(1))
    cmyk = np.asarray(ds.load_image(2))
    assert gray.shape == (36, 24, 3) and (gray[..., 0] == gray[..., 1]).all()
    assert cmyk.shape == (32, 32, 3)
    r, g, b = cmyk.reshape(-1, 3).mean(0)
    assert r > 200 and g < 60 and b < 60  # pure red, whatever the CMYK JPEG convention


def test_collate_drops_and_lists_unreadable_images(tmp_path):
    ds = open_ilsvrc_val(make_kaggle_layout(tmp_path), _prep)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        batches = list(make_loader(ds, batch_size=4))
        batches_w = list(make_loader(ds, batch_size=4, num_workers=1))  # skips travel through workers
    for bs in (batches, batches_w):
        assert [len(t) for _, t in bs] == [3, 1]
        assert sorted(s["image_id"] for _, t in bs for s in t.skipped) == [
            "ILSVRC2012_val_00000004",
            "ILSVRC2012_val_00000005",
        ]
    x, t = collate_with_targets([(None, {"image_id": "a", "error": "E"})])
    assert x.numel() == 0 and len(t) == 0 and t.skipped == [{"image_id": "a", "error": "E"}]


def test_pipeline_counts_skipped_images(tmp_path):
    torch.manual_seed(0)
    ds = open_ilsvrc_val(make_xml_layout(tmp_path), _prep)
    net = SmallGAPNet(4, channels=(8, 8), width=8).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = evaluate_protocols(
            net, make_loader(ds, batch_size=4), protocols=Protocols(topk=3, released=False)
        )
        ref = evaluate_localization(net, make_loader(ds, batch_size=4), topk=3)
    assert r["n_images"] == 4 and r["n_skipped"] == 2 and r["classification"]["n"] == 4
    assert {s["image_id"] for s in r["skipped"]} == {"ILSVRC2012_val_00000004", "ILSVRC2012_val_00000005"}
    # the same numbers as the existing single-rule pipeline on the readable images
    assert r["paper"]["0.2"]["gt_known_loc_acc"] == ref["localization"][0.2]["gt_known_loc_acc"]
    assert r["paper"]["0.2"]["top3_loc_err"] == ref["localization"][0.2]["top3_loc_err"]


def test_wnid_lists(tmp_path):
    p = tmp_path / "m.txt"
    p.write_text("\n".join(MAPPING + FILLER))
    assert read_wnids(p)[:4] == sorted(IDX) and len(read_wnids(p)) == 1000
    p.write_text("\n\n".join(reversed(FILLER + ["n02012849", "n01440764", "n01443537", "n09999999"])))
    assert read_wnids(p)[:4] == sorted(IDX)  # any order, blank lines allowed
    assert wnid_index(["n2", "n1"]) == {"n1": 0, "n2": 1}
    p.write_text("tench\n")
    with pytest.raises(ManifestError, match=r"m.txt:1: 'tench' is not a WordNet id"):
        read_wnids(p)
    p.write_text("n01440764\nn01443537\nn01440764\n")
    with pytest.raises(ManifestError, match=r"m.txt:3: duplicate id 'n01440764' \(first on line 1\)"):
        read_wnids(p)


def test_partial_wnid_list_is_refused_not_shifted(tmp_path):
    """Without tench, goldfish (class 1) would be the first of the sorted list: class 0. Refused, in every
    layout that maps wnids, with the fix; a full list of the wrong wnids is caught where an index is known."""
    partial = tmp_path / "partial.txt"
    partial.write_text(
        "\n".join(w for w in MAPPING[2:] + FILLER) + "\n"
    )  # tench (and the last class) missing
    with pytest.raises(
        ManifestError, match=r"partial.txt: 998 wnids, expected all 1000.*LOC_synset_mapping.txt"
    ):
        read_wnids(partial)
    for layout in (make_xml_layout, make_kaggle_layout):
        root = layout(tmp_path / layout.__name__)
        (root / "LOC_synset_mapping.txt").write_text(partial.read_text())
        with pytest.raises(ManifestError, match="998 wnids, expected all 1000"):
            open_ilsvrc_val(root)
        with pytest.raises(ManifestError, match="the wnids argument: 3 wnids"):
            open_ilsvrc_val(root, wnids=["n01443537", "n02012849", "n09999999"])
    # 1000 distinct wnids, but tench is not first: not ILSVRC2012's list
    shifted = ["n00000001"] + [m.split()[0] for m in MAPPING[1:]] + FILLER[:-1] + ["n09999998"]
    with pytest.raises(ManifestError, match=r"n01440764 \(tench\) would be class 1, but it is class 0"):
        ILSVRCBoxDataset.from_xml(
            tmp_path / "make_xml_layout" / "ILSVRC2012_img_val",
            tmp_path / "make_xml_layout" / "Annotations",
            shifted,
        )


def test_parsers_and_errors(tmp_path):
    make_xml_layout(tmp_path / "x")
    name, size, objs = parse_voc_xml(tmp_path / "x" / "Annotations" / "ILSVRC2012_val_00000006.xml")
    assert name == "ILSVRC2012_val_00000006" and size == (20, 20) and len(objs) == 3
    make_kaggle_layout(tmp_path / "k")
    table = read_kaggle_solution(tmp_path / "k" / "LOC_val_solution.csv")
    assert table["ILSVRC2012_val_00000001"][0] == ("n02012849", [2, 3, 40, 30])
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="three layouts"):
        open_ilsvrc_val(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        open_ilsvrc_val(tmp_path / "nowhere")
    (tmp_path / "x" / "LOC_synset_mapping.txt").write_text("n01440764\n")  # too few wnids
    with pytest.raises(ManifestError, match="1 wnids, expected all 1000"):
        open_ilsvrc_val(tmp_path / "x")
    bad = tmp_path / "bad.csv"
    bad.write_text("id,boxes\n")
    with pytest.raises(ManifestError, match="bad.csv:1: expected the header"):
        read_kaggle_solution(bad)


def test_shared_sample_loads(ilsvrc_sample):
    ds = open_ilsvrc_val(ilsvrc_sample)
    assert isinstance(ds, WSOLManifestDataset) and len(ds) == 100
    assert sum(len(b) for b in ds.boxes) == 185
    x, t = ds[0]
    assert x.mode == "RGB" and t["size"] == (x.size[1], x.size[0]) and 0 <= t["label"] < 1000


# ------------------------------------------------------------------ XML and Kaggle validated on open
def _line_of(path, text, nth=1):
    lines = path.read_text().splitlines()
    return [n for n, ln in enumerate(lines, 1) if text in ln][nth - 1]


def _xml(path, name, size, objects, pretty=True):
    sep = "\n" if pretty else ""
    objs = sep.join(
        f"<object>{sep}<name>{wn}</name>{sep}<bndbox>{sep}<xmin>{b[0]}</xmin>{sep}<ymin>{b[1]}</ymin>{sep}"
        f"<xmax>{b[2]}</xmax>{sep}<ymax>{b[3]}</ymax>{sep}</bndbox>{sep}</object>"
        for wn, b in objects
    )
    path.write_text(
        f"<annotation>{sep}<filename>{name}</filename>{sep}<size><width>{size[0]}</width>"
        f"<height>{size[1]}</height></size>{sep}{objs}{sep}</annotation>\n"
    )
    return path


@pytest.mark.parametrize("case, objects, pattern", [
    ("outside", [("n01443537", [1, 1, 10, 10]), ("n01443537", [5, 5, 21, 10])],
     r"box \(5, 5, 21, 10\) lies outside the 20 x 20 image"),
    ("inverted", [("n01443537", [9, 1, 3, 10])], r"inverted box \(9, 1, 3, 10\)"),
    ("negative", [("n01443537", [-2, 1, 3, 10])], r"box \(-2, 1, 3, 10\) has a negative coordinate"),
    ("unknown wnid", [("n01443537", [1, 1, 3, 3]), ("n07777777", [1, 1, 3, 3])], r"wnid 'n07777777' .* not in"),
    ("not a number", [("n01443537", [1, "one", 3, 3])], r"'one' is not a number"),
])  # fmt: skip
def test_xml_boxes_and_wnids_are_validated_naming_file_and_line(tmp_path, case, objects, pattern):
    root = make_xml_layout(tmp_path)
    bad = _xml(
        root / "Annotations" / "ILSVRC2012_val_00000006.xml", "ILSVRC2012_val_00000006", (20, 20), objects
    )
    # the last object is the bad one: its box's line is named (a coordinate's own line when it is no number)
    line = _line_of(bad, "<ymin>one") if case == "not a number" else _line_of(bad, "<bndbox>", len(objects))
    with pytest.raises(ManifestError, match=rf"ILSVRC2012_val_00000006.xml:{line}: {pattern}.*Fix: ") as err:
        open_ilsvrc_val(root)
    assert err.value.path == bad


def test_xml_parse_errors_and_duplicate_images_name_file_and_line(tmp_path):
    root = make_xml_layout(tmp_path)
    ann = root / "Annotations"
    good = ann / "ILSVRC2012_val_00000006.xml"
    text = good.read_text()
    good.write_text("<annotation>\n<filename>x</filename>\n<object><name>n01443537</name>\n</annotation>\n")
    with pytest.raises(ManifestError, match=r"ILSVRC2012_val_00000006.xml:4: not valid XML \(mismatched tag"):
        open_ilsvrc_val(root)
    good.write_text(text)
    # a second file for image 2 that gives it another class: conflicting labels are refused, not "last wins"
    dup = _xml(ann / "copy_of_2.xml", "ILSVRC2012_val_00000002", (24, 36), [("n02012849", [1, 1, 5, 5])])
    with pytest.raises(
        ManifestError,
        match=rf"copy_of_2.xml:2: duplicate image id 'ILSVRC2012_val_00000002' \(first "
        rf"in {ann / 'ILSVRC2012_val_00000002.xml'}:1\)",
    ):
        open_ilsvrc_val(root)
    assert dup.is_file()


def test_kaggle_rows_are_validated_naming_file_and_line(tmp_path):
    root = make_kaggle_layout(tmp_path)
    csv_path = root / "LOC_val_solution.csv"
    rows = csv_path.read_text().splitlines()

    def expect(extra: list[str], pattern: str) -> None:
        csv_path.write_text("\n".join(rows + extra) + "\n")
        with pytest.raises(
            ManifestError, match=rf"LOC_val_solution.csv:{len(rows) + len(extra)}: {pattern}.*Fix: "
        ):
            open_ilsvrc_val(root)

    # the same image again with another class: refused (the dict used to keep the last row)
    expect(
        ["ILSVRC2012_val_00000002,n01443537 1 1 5 5"],
        r"duplicate image id 'ILSVRC2012_val_00000002' \(first on "
        r"line 3\)",
    )
    expect(
        ["ILSVRC2012_val_00000007,n01443537 1 1 5"],
        "PredictionString must hold groups of 'wnid x0 y0 x1 y1', got 4 fields",
    )
    expect(["ILSVRC2012_val_00000007,n01443537 1 1 5 x5"], "'x5' is not a number")
    expect(["ILSVRC2012_val_00000007,n01443537 8 1 5 5"], r"inverted box \(8, 1, 5, 5\)")
    expect(["ILSVRC2012_val_00000007,n01443537 -1 1 5 5"], r"box \(-1, 1, 5, 5\) has a negative coordinate")
    expect(
        ["ILSVRC2012_val_00000007,n07777777 1 1 5 5"],
        "wnid 'n07777777' of image ILSVRC2012_val_00000007 is not",
    )
    # sizes from the image headers: image 1 is 40 x 30; a box reaching x = 41 is refused
    rows[1] = "ILSVRC2012_val_00000001,n02012849 2 3 41 30"
    csv_path.write_text("\n".join(rows) + "\n")
    with pytest.raises(
        ManifestError, match=r"LOC_val_solution.csv:2: box \(2, 3, 41, 30\) lies outside the 40 x 30"
    ):
        open_ilsvrc_val(root)
    ds = ILSVRCBoxDataset.from_kaggle_csv(
        root / "ILSVRC" / "Data" / "CLS-LOC" / "val",
        csv_path,
        root / "LOC_synset_mapping.txt",
        check_sizes=False,
    )  # opt out: clipped
    assert len(ds) == len(IMAGES)


def test_notebook_02_checks_its_paper_inputs_before_any_work(tmp_path):
    """Notebook 02's paper profile calls check_paper_inputs before Part A: a missing val folder, an
    unreadable one, or a missing train folder (when a network trains) fail at once with the way out."""
    from camlib.paper.gap_vs_gmp import check_paper_inputs

    with pytest.raises(FileNotFoundError, match="ILSVRC_VAL"):
        check_paper_inputs(["googlenet_gap"], None, None, iters=10)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        check_paper_inputs(["googlenet_gap"], None, tmp_path / "nowhere", iters=10)
    val = make_wsol_layout(tmp_path / "val")
    with pytest.raises(FileNotFoundError, match="ILSVRC_TRAIN"):
        check_paper_inputs(["googlenet_gap"], tmp_path / "train", val, iters=10)
    check_paper_inputs(["googlenet_gap"], None, val, iters=0)  # evaluation only: no train folder needed
    (tmp_path / "train" / "n01440764").mkdir(parents=True)
    check_paper_inputs(["googlenet_gap"], tmp_path / "train", val, iters=10)
