"""Papermill smoke run of notebook 06's PAPER profile on a tiny fake SUN / caption / SVT set made here
(the quick profile is run by `make quick`; these cells would otherwise only run with the real data)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image, ImageDraw

from .conftest import REPO, run_notebook


def _image(path, w, h, rng, rect=None, text=None):
    im = Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
    draw = ImageDraw.Draw(im)
    if rect:
        draw.rectangle(rect, fill=(200, 30, 30))
    if text:
        draw.text(text[:2], text[2], fill=(255, 255, 255))
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path)


def _polygon(name, x0, y0, x1, y1):
    pts = "".join(f"<pt><x>{x}</x><y>{y}</y></pt>" for x, y in ((x0, y0), (x1, y0), (x1, y1), (x0, y1)))
    return f"<object><name>{name}</name><deleted>0</deleted><polygon>{pts}</polygon></object>"


def _fake_data(root):
    rng = np.random.default_rng(0)
    for folder in ("d/dining_room", "b/bathroom", "k/kitchen"):
        for i in range(8):
            name = f"sun_{folder[0]}{i}"
            _image(
                root / "SUN2012/Images" / folder / f"{name}.jpg",
                48,
                40,
                rng,
                (8, 18, 26, 32) if folder[0] == "d" else None,
            )
            xml = root / "SUN2012/Annotations" / folder / f"{name}.xml"
            xml.parent.mkdir(parents=True, exist_ok=True)
            xml.write_text(
                f"<annotation><filename>{name}.jpg</filename><folder>{folder}</folder>"
                f"{_polygon('wall', 0, 0, 47, 20)}{_polygon('table', 8, 18, 26, 32)}</annotation>"
            )
    lines = []
    for i in range(42):
        _image(root / "caps/images" / f"{i}.jpg", 40, 40, rng, (4, 4, 20, 20) if i % 3 == 0 else None)
        lines.append(f"images/{i}.jpg\t" + ("a mirror in lake", "a view out of window", "a dog")[i % 3])
    (root / "caps/captions.tsv").write_text("\n".join(lines) + "\n")
    for split, n in (("train", 8), ("test", 6)):
        rows = []
        for i in range(n):
            _image(root / "svt/svt1/img" / f"{split}{i}.jpg", 64, 48, rng, text=(10, 16, "OPEN"))
            rows.append(
                f'<image><imageName>img/{split}{i}.jpg</imageName><Resolution x="64" y="48"/><taggedRectangles>'
                f'<taggedRectangle height="12" width="30" x="9" y="15"><tag>OPEN</tag></taggedRectangle>'
                f"</taggedRectangles></image>"
            )
        (root / "svt/svt1" / f"{split}.xml").write_text("<tagset>" + "".join(rows) + "</tagset>")
    for i in range(16):
        _image(root / "negs" / f"n{i}.jpg", 56, 40, rng)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_notebook_06_paper_profile_on_tiny_fake_data(tmp_path):
    _fake_data(tmp_path)
    results = tmp_path / "results"
    results.mkdir()
    shutil.copy(
        REPO / "results" / "paper.yaml", results / "paper.yaml"
    )  # comparison rows are checked against it
    res = run_notebook(
        "06_pattern_discovery",
        tmp_path,
        PROFILE="paper",
        SUN_ROOT=str(tmp_path / "SUN2012"),
        SUN_MIN_IMAGES=5,
        CAPTIONS_ROOT=str(tmp_path / "caps"),
        SVT_ROOT=str(tmp_path / "svt"),
        TEXT_NEGATIVES_ROOT=str(tmp_path / "negs"),
        PAPER_INPUT_SIZE=64,
        CACHE_DIR=str(tmp_path / "cache"),
    )
    assert res["profile"] == "paper" and {"scenes", "concepts", "text"} <= set(res["metrics"])
    assert res["metrics"]["scenes"]["scenes"] == ["bathroom", "dining_room", "kitchen"]
    assert set(res["metrics"]["concepts"]["per_phrase"]) == {"mirror in lake", "view out of window"}
    assert {"cam_boxes", "centre_box"} <= set(res["metrics"]["text"])
    assert [c["paper_ref"] for c in res["comparisons"]] == ["fig9.dining_room.table"]
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == [
        "06_concept_localization_captions.png",
        "06_informative_objects_sun.png",
        "06_text_detector_svt.png",
    ]
