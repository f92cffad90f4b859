"""Procedural scenes with known informative objects, and the SUN2012 (LabelMe XML) reader."""

from __future__ import annotations

import time

import numpy as np
import pytest
from PIL import Image

from camlib.datasets.scenes import (
    COMMON,
    OBJECTS,
    PRESENCE,
    SCENES,
    SIGNATURE,
    ProceduralScenes,
    informativeness,
    load_sun_annotations,
    make_scene_arrays,
    make_scene_sample,
    normalize_object_name,
    object_presence,
    rasterize_objects,
)

SIZE = 96


@pytest.fixture(scope="module")
def scenes():
    t0 = time.perf_counter()
    a = make_scene_arrays(300, seed=0, size=SIZE)
    return a, time.perf_counter() - t0


def test_deterministic_and_splits_differ():
    a, b = make_scene_sample(7, seed=3, size=SIZE), make_scene_sample(7, seed=3, size=SIZE)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.instances, b.instances)
    assert np.array_equal(a.types, b.types) and np.array_equal(a.boxes, b.boxes) and a.label == b.label
    assert not np.array_equal(a.image, make_scene_sample(7, seed=4, size=SIZE).image)
    tr, te = ProceduralScenes(4, size=SIZE, split="train"), ProceduralScenes(4, size=SIZE, split="test")
    assert not np.array_equal(tr.images, te.images)
    assert np.array_equal(tr.images[2], make_scene_sample(2, seed=0, size=SIZE).image)
    assert "split=test" in te.identity() and te.tensors().shape == (4, 3, SIZE, SIZE)


def test_boxes_inside_images_and_tight_around_instances(scenes):
    a, _ = scenes
    assert a["images"].shape == (300, SIZE, SIZE, 3) and a["images"].dtype == np.uint8
    for inst, types, boxes in zip(a["instances"], a["types"], a["boxes"], strict=True):
        used = np.flatnonzero(types >= 0)
        assert set(np.unique(inst)) <= {int(k) + 1 for k in used}  # every pixel belongs to a listed instance
        assert types[0] == OBJECTS.index("sky") and types[1] == OBJECTS.index("ground")
        assert len(set(types[used].tolist())) == len(used)  # each object type at most once
        for k in used:
            x0, y0, x1, y1 = boxes[k]
            assert 0 <= x0 <= x1 < SIZE and 0 <= y0 <= y1 < SIZE
            ys, xs = np.nonzero(inst == k + 1)
            assert (xs.min(), ys.min(), xs.max(), ys.max()) == (x0, y0, x1, y1)
        assert (boxes[types < 0] == -1).all()


def test_statistics_follow_presence_and_generation_is_fast(scenes):
    a, seconds = scenes
    assert seconds < 10, f"300 scenes took {seconds:.1f} s"
    present = np.zeros((300, len(OBJECTS)), bool)
    rows, cols = np.nonzero(a["types"] >= 0)
    present[rows, a["types"][rows, cols]] = True
    for s, scene in enumerate(SCENES):
        sel = a["labels"] == s
        assert sel.sum() > 40
        rate = present[sel].mean(0)
        assert rate[OBJECTS.index("sky")] == 1.0 and rate[OBJECTS.index("ground")] == 1.0
        first = OBJECTS.index(SIGNATURE[scene][0])
        assert rate[first] > 0.7  # 0.9 in the statistics, minus objects that found no room
        others = [OBJECTS.index(SIGNATURE[o][0]) for o in SCENES if o != scene]
        assert rate[others].max() < 0.25


def test_informativeness_marks_signature_objects():
    g = informativeness()
    assert g.shape == PRESENCE.shape
    for s, scene in enumerate(SCENES):
        top3 = {OBJECTS[i] for i in np.argsort(-g[s])[:3]}
        assert top3 == set(SIGNATURE[scene])
        for name in COMMON:
            assert g[s, OBJECTS.index(name)] == pytest.approx(0.0)
    # by frequency, the common objects come first: the paper's "wall"
    assert {OBJECTS[i] for i in np.argsort(-PRESENCE[0], kind="stable")[:2]} == {"sky", "ground"}
    hand = np.array([[1.0, 0.5], [0.0, 0.5], [0.2, 0.5]])
    assert np.allclose(informativeness(hand), [[0.9, 0.0], [-0.6, 0.0], [-0.3, 0.0]])


# --------------------------------------------------------------------------- SUN2012 reader

XML = """<annotation><filename>{name}.jpg</filename><folder>{folder}</folder>
<imagesize><nrows>40</nrows><ncols>60</ncols></imagesize>
<object><name>wall</name><deleted>0</deleted><polygon><pt><x>0</x><y>0</y></pt><pt><x>59</x><y>0</y></pt>
<pt><x>59</x><y>39</y></pt><pt><x>0</x><y>39</y></pt></polygon></object>
<object><name>Table occluded</name><deleted>0</deleted><polygon><pt><x>10</x><y>20</y></pt><pt><x>30</x><y>20</y></pt>
<pt><x>30</x><y>30</y></pt><pt><x>10</x><y>30</y></pt></polygon></object>
<object><name>ghost</name><deleted>1</deleted><polygon><pt><x>1</x><y>1</y></pt><pt><x>5</x><y>1</y></pt>
<pt><x>5</x><y>5</y></pt></polygon></object>
</annotation>"""


def _sun(root, folder, name):
    letter_scene = folder.split("/")
    (root / "Images" / folder).mkdir(parents=True, exist_ok=True)
    (root / "Annotations" / folder).mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (60, 40), (90, 90, 90)).save(root / "Images" / folder / f"{name}.jpg")
    (root / "Annotations" / folder / f"{name}.xml").write_text(XML.format(name=name, folder=folder))
    return letter_scene[-1]


def test_sun_reader_on_a_tiny_folder(tmp_path):
    _sun(tmp_path, "d/dining_room", "sun_a")
    _sun(tmp_path, "d/dining_room", "sun_b")
    _sun(tmp_path, "b/bathroom", "sun_c")
    (tmp_path / "Annotations" / "b" / "bathroom" / "orphan.xml").write_text(
        XML.format(name="orphan", folder="b/x")
    )
    images = load_sun_annotations(tmp_path)
    assert [s.path.name for s in images] == ["sun_c.jpg", "sun_a.jpg", "sun_b.jpg"]  # the orphan has no image
    s = images[1]
    assert s.scene == "dining_room" and s.size == (40, 60)
    assert [n for n, _ in s.objects] == ["wall", "table"]  # deleted object dropped, name normalised
    assert load_sun_annotations(tmp_path, min_images=2)[0].scene == "dining_room"
    assert {x.scene for x in load_sun_annotations(tmp_path, scenes=["bathroom"])} == {"bathroom"}
    with pytest.raises(FileNotFoundError, match="SUN2012"):
        load_sun_annotations(tmp_path / "nothing")
    inst, types = rasterize_objects(s.objects, ["table", "wall"], (20, 30), scale=(0.5, 0.5))
    assert list(types) == [1, 0]
    ys, xs = np.nonzero(inst == 2)  # the table, drawn over the wall
    assert (xs.min(), ys.min(), xs.max(), ys.max()) == (5, 10, 15, 15)
    assert (inst > 0).all()
    assert object_presence(s.objects, ["chair", "table", "wall"]).tolist() == [False, True, True]


def test_normalize_object_name():
    assert normalize_object_name("  Chair_Occluded crop ") == "chair"
    assert normalize_object_name("Wall") == "wall" and normalize_object_name("") == ""
