"""The CAM explorer: cached forward pass, readout follows the threshold, widgets build headless."""

from __future__ import annotations

import numpy as np
import pytest

from camlib.datasets.photos import load_photo
from camlib.models import load_efficientnet_lite0
from camlib.tools.explorer import CAMExplorer, ExplorerState


@pytest.fixture(scope="module")
def explorer():
    return CAMExplorer(
        {"cat": load_photo("chelsea"), "coffee": load_photo("coffee")}, {"lite0": load_efficientnet_lite0}
    )


def test_settings_change_without_forward_pass(explorer):
    a = explorer.compute(ExplorerState("cat", "lite0", threshold=0.2))
    n = explorer.forward_passes
    b = explorer.compute(ExplorerState("cat", "lite0", threshold=0.7))
    c = explorer.compute(ExplorerState("cat", "lite0", rank=2, upsample="bicubic"))
    assert explorer.forward_passes == n == 1
    assert a["readout"] != b["readout"]  # a higher threshold gives a smaller box
    area = lambda bx: (bx[2] - bx[0] + 1) * (bx[3] - bx[1] + 1)  # noqa: E731
    assert area(b["box"]) < area(a["box"])
    assert c["selected"] == a["classes"][2]
    explorer.compute(ExplorerState("coffee", "lite0"))
    assert explorer.forward_passes == 2


def test_map_matches_cam_pipeline(explorer):
    from camlib.core.cam import CAM
    from camlib.evaluation.localize import PAPER_OPTIONS, explain_image

    net = load_efficientnet_lite0()
    r = explain_image(
        CAM(net.model), load_photo("chelsea"), net.preprocess, net.classes, k=1, options=PAPER_OPTIONS
    )
    e = explorer.compute(ExplorerState("cat", "lite0"))
    np.testing.assert_allclose(e["map"], r["maps"][0].numpy(), atol=1e-5)
    assert e["box"].tolist() == r["boxes"][0].tolist()


def test_widget_builds_and_static_fallback(explorer):
    import matplotlib

    matplotlib.use("Agg")
    box = explorer.widget()
    assert len(box.children) == 2
    assert explorer.show(interactive=False) is None  # a cell ending with it shows the figure once
    assert explorer.last_figure is not None and explorer.last_figure.axes


# -- notebook 02: a GAP/GMP toggle on procedural images, both side by side in the static fallback ----------
@pytest.fixture(scope="module")
def gap_gmp():
    import torch

    from camlib.datasets import CLASSES, ProceduralShapes
    from camlib.models import SmallGAPNet
    from camlib.tools.explorer import as_explorer_model

    data = ProceduralShapes(4, seed=0, size=48, split="test")
    models = {}
    for name, pool in (("GAP", "avg"), ("GMP", "max")):
        torch.manual_seed(0)
        models[name] = as_explorer_model(SmallGAPNet(len(CLASSES), pool=pool, width=16), name, CLASSES)
    return CAMExplorer.from_arrays(
        data.images, data.labels, data.boxes, models, CLASSES, n=3, compare=True
    ), data


def test_gap_gmp_toggle_caches_per_model(gap_gmp):
    ex, data = gap_gmp
    assert list(ex.images) == [
        f"#{i} ({c})" for i, c in enumerate(ex.model_loaders["GAP"].classes[y] for y in data.labels[:3])
    ]
    first = next(iter(ex.images))
    np.testing.assert_array_equal(ex.gt_boxes[first], data.boxes[:1])
    gap = ex.compute(ExplorerState(first, "GAP"))
    gmp = ex.compute(ExplorerState(first, "GMP"))
    assert ex.forward_passes == 2  # one per (model, image)
    assert gap["map"].shape == gmp["map"].shape == data.images[0].shape[:2]
    assert not np.allclose(gap["probs"], gmp["probs"])  # same weights, other pooling: other scores
    ex.compute(ExplorerState(first, "GMP", threshold=0.8, upsample="bicubic"))
    assert ex.forward_passes == 2


def test_gap_gmp_widget_is_a_toggle_and_fallback_is_side_by_side(gap_gmp):
    import ipywidgets as W

    ex, _ = gap_gmp
    controls = ex.widget().children[0]
    model = controls.children[0].children[1]
    assert isinstance(model, W.ToggleButtons) and list(model.options) == ["GAP", "GMP"]
    ex.show(interactive=False)
    overlays = [ax for ax in ex.last_figure.axes if ax.images]
    assert len(overlays) == 2
    titles = [ax.get_title() for ax in overlays]
    assert titles[0].startswith("GAP") and titles[1].startswith("GMP")
    assert all("box:" in t for t in titles)
    red = [p for p in overlays[0].patches if p.get_edgecolor()[:3] == (1.0, 23 / 255, 68 / 255)]
    assert len(red) == 1  # the ground-truth box


# -- notebook 03: the explorer on ILSVRC val images with their ground-truth boxes -----------------------
class FakeILSVRC:
    """The part of camlib.datasets.ilsvrc.ILSVRCBoxDataset the explorer reads; image 1 is unreadable."""

    def __init__(self, photos):
        self.photos = photos
        self.ids = ["val/ILSVRC2012_val_00000001.JPEG", "val/broken.JPEG", "val/ILSVRC2012_val_00000003.JPEG"]
        self.labels = [281, 0, 967]
        self.boxes = [
            np.array([[10, 20, 200, 280]]),
            np.zeros((1, 4), int),
            np.array([[0, 0, 9999, 9999], [5, 5, 50, 50]]),
        ]

    def __len__(self):
        return len(self.ids)

    def load_image(self, i):
        from PIL import Image

        if i == 1:
            raise OSError("truncated file")
        return Image.fromarray(self.photos[i // 2])

    def target(self, i, size):
        b = self.boxes[i].copy()
        b[:, [0, 2]] = b[:, [0, 2]].clip(0, size[1] - 1)
        b[:, [1, 3]] = b[:, [1, 3]].clip(0, size[0] - 1)
        return {"boxes": b}


def test_ilsvrc_explorer_static_fallback(explorer):
    """What notebook 03 runs under papermill: images with GT boxes, the default view as one figure."""
    from camlib.models import imagenet_classes

    classes = imagenet_classes()
    lite0 = explorer._model("lite0")[0]
    ex = CAMExplorer.from_ilsvrc(
        FakeILSVRC([load_photo("chelsea"), load_photo("coffee")]), {"lite0": lite0}, classes
    )
    assert list(ex.images) == [
        f"ILSVRC2012_val_00000001 ({classes[281]})",
        f"ILSVRC2012_val_00000003 ({classes[967]})",
    ]
    second = list(ex.images)[1]
    h, w = ex.images[second].shape[:2]
    assert ex.gt_boxes[second].tolist() == [[0, 0, w - 1, h - 1], [5, 5, 50, 50]]  # clipped to the image
    ex.show(interactive=False)
    ax = next(a for a in ex.last_figure.axes if a.images)
    assert "box: x" in ax.get_title()
    assert len(ax.patches) == 2  # the ground-truth box (red) and the CAM box (green)
    assert ex.forward_passes == 1


def test_ilsvrc_explorer_on_the_sample(ilsvrc_sample, explorer):
    from camlib.datasets.ilsvrc import open_ilsvrc_val
    from camlib.models import imagenet_classes

    ex = CAMExplorer.from_ilsvrc(
        open_ilsvrc_val(ilsvrc_sample), {"lite0": explorer._model("lite0")[0]}, imagenet_classes(), n=3
    )
    assert len(ex.images) == 3 and all(len(b) >= 1 for b in ex.gt_boxes.values())
    assert ex.compute()["readout"].startswith("box:")


def test_notebooks_use_the_explorer():
    """Notebooks 01 and 03 show the explorer, 02 its GAP/GMP toggle, each honouring INTERACTIVE."""
    from camlib.tools.notebook_tools import read

    from .conftest import REPO

    for nb, call in [
        ("01_cam_basics", "CAMExplorer("),
        ("02_gap_vs_gmp", "compare=True"),
        ("03_ilsvrc_localization", "CAMExplorer.from_ilsvrc("),
    ]:
        code = "\n".join(
            c.source for c in read(REPO / "notebooks" / f"{nb}.ipynb").cells if c.cell_type == "code"
        )
        assert call in code and "explorer.show(interactive=INTERACTIVE)" in code, nb


# -- uploads and in-memory images (issue 19) --------------------------------------------------------------
def _jpeg_with_orientation(orientation: int) -> bytes:
    import io

    from PIL import Image

    a = np.zeros((20, 40, 3), np.uint8)  # 40 wide, 20 high as stored; the left half red
    a[:, :20, 0] = 255
    exif = Image.Exif()
    exif[0x0112] = orientation  # 6: the camera was turned; show it rotated 90 degrees clockwise
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "JPEG", quality=95, exif=exif)
    return buf.getvalue()


def test_uploads_are_turned_upright_by_exif_and_16_bit_is_scaled():
    import io

    from PIL import Image

    from camlib.datasets.files import decode_image_bytes

    plain = np.asarray(decode_image_bytes(_jpeg_with_orientation(1)))
    assert plain.shape == (20, 40, 3) and plain[10, 5, 0] > 200  # no turn: as stored
    upright = np.asarray(decode_image_bytes(_jpeg_with_orientation(6)))
    assert upright.shape == (40, 20, 3)  # turned: 20 wide, 40 high
    assert upright[5, 10, 0] > 200 and upright[35, 10, 0] < 60  # the stored left half is now on top
    buf = io.BytesIO()
    Image.fromarray(np.full((4, 5), 32896, np.uint16)).save(buf, "PNG")  # a 16-bit gray PNG (I;16)
    gray = np.asarray(decode_image_bytes(buf.getvalue()))
    assert gray.shape == (4, 5, 3) and (gray == 128).all()  # round(32896 / 257) = 128, not clipped white


def test_in_memory_images_float_rgba_and_refusals(explorer):
    rgba = np.zeros((6, 7, 4), np.uint8)
    rgba[..., 1] = 200
    rgba[..., 3] = 17  # alpha is dropped, as PIL's convert("RGB") does
    explorer.add_image("rgba", rgba)
    assert explorer.images["rgba"].shape == (6, 7, 3) and (explorer.images["rgba"][..., 1] == 200).all()
    f = np.full((6, 7, 3), 0.5, np.float32)  # float in [0, 1]: round(255 x 0.5) = 128, not 0
    explorer.add_image("float", f)
    assert explorer.images["float"].dtype == np.uint8 and (explorer.images["float"] == 128).all()
    with pytest.raises(ValueError, match=r"float images must lie in \[0, 1\]"):
        explorer.add_image("bad", np.full((6, 7, 3), 200.0))
    with pytest.raises(ValueError, match="shape"):
        explorer.add_image("bad", np.zeros((6, 7, 2), np.uint8))
    for k in ("rgba", "float"):
        del explorer.images[k]


def test_widget_upload_errors_show_in_the_widget_not_as_a_traceback(explorer):
    import matplotlib

    matplotlib.use("Agg")
    explorer.widget()
    import datetime as dt

    when = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    upload, status, image = explorer._upload_widgets
    before = set(explorer.images)
    upload.value = (
        {
            "name": "broken.jpg",
            "type": "image/jpeg",
            "size": 9,
            "content": memoryview(b"not a jpg"),
            "last_modified": when,
        },
    )  # the observer runs here; it must not raise
    assert "could not use broken.jpg" in status.value and "not a readable image" in status.value
    assert set(explorer.images) == before
    upload.value = (
        {
            "name": "turned.jpg",
            "type": "image/jpeg",
            "size": 1,
            "content": memoryview(_jpeg_with_orientation(6)),
            "last_modified": when,
        },
    )
    assert image.value == "upload: turned.jpg" and explorer.images["upload: turned.jpg"].shape == (40, 20, 3)
    assert status.value == "added turned.jpg"
    del explorer.images["upload: turned.jpg"]
