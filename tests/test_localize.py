"""The localization pipeline end to end: procedural data, the real ILSVRC sample, photos."""

from __future__ import annotations

import numpy as np
import torch

from camlib.core.cam import CAM
from camlib.datasets import ProceduralShapes
from camlib.datasets.photos import load_photo
from camlib.evaluation.localize import (
    PAPER_OPTIONS,
    array_batches,
    evaluate_localization,
    explain_image,
)
from camlib.models import SmallGAPNet, load_efficientnet_lite0


def test_kept_predictions_shapes_and_gt_known_consistency():
    torch.manual_seed(0)
    ds = ProceduralShapes(16, seed=1, split="val")
    model = SmallGAPNet(6)
    r = evaluate_localization(CAM(model), array_batches(ds.images, ds.labels, ds.boxes, 8), topk=3,
                              fractions=(0.2, 0.5), keep_predictions=True)  # fmt: skip
    preds = r["predictions"]
    assert len(preds) == 16 and r["n_images"] == 16
    assert set(preds[0]["boxes"]) == {"paper@0.2", "paper@0.5"} and np.shape(
        preds[0]["boxes"]["paper@0.5"]
    ) == (3, 4)
    same = [p for p in preds if p["pred_classes"][0] == p["label"]]
    assert same, "the test needs at least one image whose top-1 class is right"
    for p in same:  # where the top-1 class is the true class, its box IS the GT-known box
        assert p["boxes"]["paper@0.2"][0] == p["gt_known_box"]["paper@0.2"]
    # fractions are keyed one way: the string key, reachable with the float too
    assert list(r["localization"]) == ["0.2", "0.5"] and r["localization"][0.5] is r["localization"]["0.5"]


def test_evaluate_localization_on_procedural_ranges():
    torch.manual_seed(0)
    ds = ProceduralShapes(40, seed=2, split="test")
    r = evaluate_localization(
        SmallGAPNet(6),
        array_batches(ds.images, ds.labels, ds.boxes, 16),
        topk=1,
        fractions=(0.2,),
        options=PAPER_OPTIONS.__class__(size="original", normalize="max"),
    )
    loc = r["localization"][0.2]
    assert r["classification"]["n"] == 40
    assert loc["top1_loc_acc"] <= loc["gt_known_loc_acc"] + 1e-9
    assert loc["top1_loc_acc"] <= r["classification"]["top1_acc"] + 1e-9


def test_explain_photo_lite0_cat():
    m = load_efficientnet_lite0()
    r = explain_image(CAM(m.model), load_photo("chelsea"), m.preprocess, m.classes)
    assert r["maps"].shape == (5, 300, 451)
    assert {"tabby", "tiger cat", "Egyptian cat"} & set(r["names"][:3])
    assert sum(r["probs"]) <= 1.0 and r["probs"] == sorted(r["probs"], reverse=True)


def test_ilsvrc_sample_matches_reference(ilsvrc_sample):
    """The sample README's reference: top-1 69, top-5 90, GT-known 32/42/50/43 at t=0.2..0.5 (100 images)."""
    from torch.utils.data import DataLoader

    from camlib.datasets.ilsvrc import WSOLManifestDataset, collate_with_targets

    m = load_efficientnet_lite0()
    ds = WSOLManifestDataset(ilsvrc_sample, m.preprocess)
    assert len(ds) == 100
    r = evaluate_localization(
        m.model,
        DataLoader(ds, batch_size=25, collate_fn=collate_with_targets),
        fractions=(0.2, 0.3, 0.4, 0.5),
    )
    assert abs(r["classification"]["top1_acc"] - 69) <= 2
    assert abs(r["classification"]["top5_acc"] - 90) <= 2
    for f, ref in zip((0.2, 0.3, 0.4, 0.5), (32, 42, 50, 43), strict=True):
        assert abs(r["localization"][f]["gt_known_loc_acc"] - ref) <= 3, (f, r["localization"][f])
