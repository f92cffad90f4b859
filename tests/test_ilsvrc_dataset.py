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
from camlib.evaluation.localize import Protocols, evaluate_localization, evaluate_protocols
from camlib.models import SmallGAPNet

# wnids deliberately listed out of order: indices must follow the SORTED order (torchvision's)
MAPPING = ["n09999999 last class, zzz", "n01440764 tench, Tinca tinca", "n02012849 crane", "n01443537 goldfish"]
IDX = {"n01440764": 0, "n01443537": 1, "n02012849": 2, "n09999999": 3}

# image id -> (mode, (W, H), [(wnid, box)]); None mode = file missing, "trunc" = truncated JPEG
IMAGES = {
    "ILSVRC2012_val_00000001": ("RGB", (40, 30), [("n02012849", [2, 3, 40, 30]), ("n02012849", [0, 0, 9, 9])]),
    "ILSVRC2012_val_00000002": ("L", (24, 36), [("n01440764", [5, 5, 20, 30])]),
    "ILSVRC2012_val_00000003": ("CMYK", (32, 32), [("n09999999", [-3, 4, 50, 31])]),
    "ILSVRC2012_val_00000004": ("trunc", (64, 48), [("n01443537", [1, 1, 10, 10])]),
    "ILSVRC2012_val_00000005": (None, (20, 20), [("n01443537", [1, 1, 10, 10])]),
    "ILSVRC2012_val_00000006": ("RGB", (20, 20), [("n01443537", [1, 2, 8, 9]), ("n01440764", [0, 0, 19, 19]),
                                                 ("n01443537", [10, 10, 19, 19])]),
}  # fmt: skip
READABLE = ["ILSVRC2012_val_00000001", "ILSVRC2012_val_00000002", "ILSVRC2012_val_00000003", "ILSVRC2012_val_00000006"]


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
    (root / "LOC_synset_mapping.txt").write_text("\n".join(MAPPING) + "\n")


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
        assert sorted(s["image_id"] for _, t in bs for s in t.skipped) == ["ILSVRC2012_val_00000004",
                                                                            "ILSVRC2012_val_00000005"]
    x, t = collate_with_targets([(None, {"image_id": "a", "error": "E"})])
    assert x.numel() == 0 and len(t) == 0 and t.skipped == [{"image_id": "a", "error": "E"}]


def test_pipeline_counts_skipped_images(tmp_path):
    torch.manual_seed(0)
    ds = open_ilsvrc_val(make_xml_layout(tmp_path), _prep)
    net = SmallGAPNet(4, channels=(8, 8), width=8).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = evaluate_protocols(net, make_loader(ds, batch_size=4), protocols=Protocols(topk=3, released=False))
        ref = evaluate_localization(net, make_loader(ds, batch_size=4), topk=3)
    assert r["n_images"] == 4 and r["n_skipped"] == 2 and r["classification"]["n"] == 4
    assert {s["image_id"] for s in r["skipped"]} == {"ILSVRC2012_val_00000004", "ILSVRC2012_val_00000005"}
    # the same numbers as the existing single-rule pipeline on the readable images
    assert r["paper"]["0.2"]["gt_known_loc_acc"] == ref["localization"][0.2]["gt_known_loc_acc"]
    assert r["paper"]["0.2"]["top3_loc_err"] == ref["localization"][0.2]["top3_loc_err"]


def test_wnid_lists(tmp_path):
    p = tmp_path / "m.txt"
    p.write_text("\n".join(MAPPING))
    assert read_wnids(p) == sorted(IDX)
    p.write_text("n02012849\n\nn01440764\n")
    assert read_wnids(p) == ["n01440764", "n02012849"]
    assert wnid_index(["n2", "n1"]) == {"n1": 0, "n2": 1}
    p.write_text("tench\n")
    with pytest.raises(ValueError, match="WordNet"):
        read_wnids(p)
    p.write_text("n01440764\nn01440764\n")
    with pytest.raises(ValueError, match="repeated"):
        read_wnids(p)


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
    with pytest.raises(ValueError, match="not in the wnid list"):
        open_ilsvrc_val(tmp_path / "x")
    bad = tmp_path / "bad.csv"
    bad.write_text("id,boxes\n")
    with pytest.raises(ValueError, match="header"):
        read_kaggle_solution(bad)


def test_shared_sample_loads(ilsvrc_sample):
    ds = open_ilsvrc_val(ilsvrc_sample)
    assert isinstance(ds, WSOLManifestDataset) and len(ds) == 100
    assert sum(len(b) for b in ds.boxes) == 185
    x, t = ds[0]
    assert x.mode == "RGB" and t["size"] == (x.size[1], x.size[0]) and 0 <= t["label"] < 1000
