"""The CAM explorer: cached forward pass, readout follows the threshold, widgets build headless."""

from __future__ import annotations

import numpy as np
import pytest

from camlib.datasets.photos import load_photo
from camlib.explorer import CAMExplorer, ExplorerState
from camlib.models import load_efficientnet_lite0


@pytest.fixture(scope="module")
def explorer():
    return CAMExplorer({"cat": load_photo("chelsea"), "coffee": load_photo("coffee")},
                       {"lite0": load_efficientnet_lite0})


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
    from camlib.cam import CAM
    from camlib.localize import PAPER_OPTIONS, explain_image

    net = load_efficientnet_lite0()
    r = explain_image(CAM(net.model), load_photo("chelsea"), net.preprocess, net.classes, k=1, options=PAPER_OPTIONS)
    e = explorer.compute(ExplorerState("cat", "lite0"))
    np.testing.assert_allclose(e["map"], r["maps"][0].numpy(), atol=1e-5)
    assert e["box"].tolist() == r["boxes"][0].tolist()


def test_widget_builds_and_static_fallback(explorer):
    import matplotlib

    matplotlib.use("Agg")
    box = explorer.widget()
    assert len(box.children) == 2
    fig = explorer.show(interactive=False)
    assert fig is not None
