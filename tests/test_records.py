"""Per-image records out of the one loop, the intervals made of them (camlib.evaluation.records), the
per-set study helpers (camlib.evaluation.study: open_val_sets, seeded_subset, squashed, data_rows) and
the threshold lesson on disjoint halves; tiny fixtures written here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from camlib.datasets.targets import Target
from camlib.evaluation import records as rec
from camlib.evaluation.batch import Batch, BoxSet
from camlib.evaluation.metrics import ClassificationEvaluator, ImageIndex, LocalizationEvaluator
from camlib.evaluation.stats import bootstrap_table_ci


def _batch(labels, pred, boxes, gt_known, gt_boxes, size=(10, 20), ids=None):
    B = len(labels)
    targets = [
        Target(
            label=int(labels[i]),
            boxes=np.asarray(gt_boxes[i]).reshape(-1, 4),
            size=size,
            image_id=(ids or list(range(B)))[i],
        )
        for i in range(B)
    ]
    logits = torch.zeros(B, 6)
    for i, p in enumerate(pred):
        logits[i, p] = torch.arange(len(p), 0, -1, dtype=torch.float32)
    b = Batch(targets, logits, np.asarray(pred), [np.zeros((len(pred[0]) + 1, *size), np.float32)] * B)
    b.boxes = {"paper@0.2": BoxSet(np.asarray(pred), np.asarray(boxes), np.asarray(gt_known))}
    return b


GT = [[0, 0, 9, 4]]
GOOD, BAD = [0, 0, 9, 4], [15, 6, 19, 9]


def _two_batches():
    # image 0: class right, box right; 1: class 2nd, its box right; 2: class wrong; 3: class right, box wrong
    b1 = _batch([1, 2], [[1, 0], [0, 2]], [[GOOD, BAD], [BAD, GOOD]], [GOOD, GOOD], [GT, GT], ids=["a", "b"])
    b2 = _batch([3, 4], [[0, 1], [4, 0]], [[GOOD, GOOD], [BAD, GOOD]], [BAD, BAD], [GT, GT], ids=["c", "d"])
    return b1, b2


def test_evaluators_keep_per_image_outcomes_that_add_up_and_merge_in_order():
    b1, b2 = _two_batches()
    cls, loc, idx = (
        ClassificationEvaluator((1, 2), keep_per_image=True),
        LocalizationEvaluator((1, 2), keep_per_image=True),
        ImageIndex(),
    )
    for b in (b1, b2):
        for ev in (cls, loc, idx):
            ev.accumulate(b)
    per = loc.per_image()
    assert per["top1_loc"].tolist() == [True, False, False, False]
    assert per["top2_loc"].tolist() == [True, True, False, False]
    assert per["gt_known"].tolist() == [True, True, False, False]
    assert cls.per_image()["top1"].tolist() == [True, False, False, True]  # image 3: right class, wrong box
    assert 100 * per["top1_loc"].mean() == loc.compute()["top1_loc_acc"]
    assert idx.per_image()["image_id"] == ["a", "b", "c", "d"]
    assert idx.per_image()["area"] == pytest.approx([36 / 200] * 4)  # (9 - 0) * (4 - 0) / (20 * 10)
    # shards merge: outcomes concatenated in shard order
    other = LocalizationEvaluator((1, 2), keep_per_image=True)
    other.accumulate(b2)
    first = LocalizationEvaluator((1, 2), keep_per_image=True)
    first.accumulate(b1)
    assert first.merge(other).per_image()["top2_loc"].tolist() == per["top2_loc"].tolist()
    with pytest.raises(ValueError, match="keep_per_image=True"):
        LocalizationEvaluator().per_image()
    # the state of an evaluator without per-image outcomes is unchanged (old states still load)
    assert "keep_per_image" not in LocalizationEvaluator()._config()


def test_records_of_needs_one_image_index_and_names_outcomes_by_box_set():
    b1, b2 = _two_batches()
    evs = {
        "images": ImageIndex(),
        "classification": ClassificationEvaluator((1,), keep_per_image=True),
        "0.2": LocalizationEvaluator((1,), keep_per_image=True),
        "plain": LocalizationEvaluator((1,)),
    }
    for b in (b1, b2):
        for ev in evs.values():
            ev.accumulate(b)
    r = rec.records_of(evs)
    assert sorted(r.hits) == ["classification.top1", "paper@0.2.gt_known", "paper@0.2.top1_loc"]
    assert r.image_ids == ["a", "b", "c", "d"]
    assert r.subset([3, 0]).hits["paper@0.2.top1_loc"].tolist() == [False, True]
    with pytest.raises(ValueError, match="ImageIndex"):
        rec.records_of({"classification": evs["classification"]})


def test_bootstrap_table_ci_rechooses_the_best_threshold():
    rng = np.random.default_rng(0)
    table = rng.random((300, 5)) < np.array([0.3, 0.5, 0.55, 0.4, 0.2])
    e = bootstrap_table_ci(table, np.max)
    assert e.value == pytest.approx(100 * table.mean(0).max()) and e.n == 300
    assert e.low < e.value < e.high and bootstrap_table_ci(table, np.max) == e
    # the max over resampled curves is at least the resampled value of the fixed best column
    fixed = bootstrap_table_ci(table[:, [int(table.mean(0).argmax())]], np.max)
    assert e.high >= fixed.high
    flat = np.ones((10, 3), bool)
    assert (bootstrap_table_ci(flat, np.max).low, bootstrap_table_ci(flat, np.max).high) == (100.0, 100.0)


def _records(n=200, seed=0, area=None, ids=None):
    rng = np.random.default_rng(seed)
    area = rng.random(n) if area is None else np.asarray(area, float)
    known = rng.random(n) < area  # bigger objects are easier
    sweep = np.stack([known, known & (rng.random(n) < 0.8)], axis=1)[:, None, :]  # (N, 1, 2)
    return rec.ImageRecords(
        ids or [f"i{k}" for k in range(n)],
        area,
        {
            "classification.top1": rng.random(n) < 0.7,
            "paper@0.2.gt_known": known,
            "paper@0.2.top1_loc": known & (rng.random(n) < 0.7),
        },
        {"gt_known_sweep.largest": sweep},
        {"gt_known_sweep.largest": ((0.2, 0.3), (0.5,))},
    )


def test_set_summary_has_intervals_strata_and_the_post_stratified_estimate():
    r = _records(area=np.r_[np.full(100, 0.03), np.full(100, 0.95)])
    s = rec.set_summary(r, fractions=(0.2,))
    assert s["n"] == 200 and s["headline"]["gt_known_loc_acc"].n == 200
    assert set(s["strata"]) == {"gt_known_loc_acc", "top1_loc_acc"}
    strata = s["strata"]["gt_known_loc_acc"]
    assert strata["0-0.05"]["n"] == 100 and strata["0.5-0.6"]["accuracy"] is None
    small, large = strata["0-0.05"]["accuracy"].value, strata["0.9-1"]["accuracy"].value
    post = s["post_stratified"]["gt_known_loc_acc"]
    # every val stratum between the two measured ones borrows from one of them: the estimate lies between
    assert small < post["estimate"].value < large and 0 < post["covered"] < 1
    assert s["by_fraction"]["0.2"]["gt_known_loc_acc"] == s["headline"]["gt_known_loc_acc"]
    assert "ESTIMATE" in rec.summary_text(s, "fixture")


def test_held_out_halves_are_disjoint_and_catch_a_test_tuned_threshold():
    n = 40
    a, b = rec.split_halves(n, seed=3)
    assert len(np.intersect1d(a, b)) == 0 and sorted(np.r_[a, b].tolist()) == list(range(n))
    # threshold 0 is right exactly on half A, threshold 1 exactly on half B: choosing on one half and
    # reporting on the other gives 0 %; choosing on the reported images gives 100 %
    table = np.zeros((n, 2), bool)
    table[a, 0] = True
    table[b, 1] = True
    h = rec.held_out_halves(table, (0.2, 0.4), seed=3)
    assert (
        h["A->B"]["threshold"] == 0.2
        and h["A->B"]["report_acc"] == 0.0
        and h["A->B"]["oracle_report_acc"] == 100.0
    )
    assert h["B->A"]["threshold"] == 0.4 and h["B->A"]["report_ci"].value == 0.0
    assert h["cross_fitted"].value == 0.0 and h["cross_fitted"].n == n
    assert h["oracle"].value == 50.0 and h["optimism"].value == 50.0 and h["verdict"] == "agrees"
    assert "optimism" in rec.format_held_out(h, "fixture")


def test_pooled_and_compare_runs_match_images_by_id():
    x, y = _records(50, seed=1), _records(30, seed=2, ids=[f"j{k}" for k in range(30)])
    p = rec.pooled([x, y])
    assert len(p) == 80 and p.hits["paper@0.2.gt_known"].tolist() == [
        *x.hits["paper@0.2.gt_known"],
        *y.hits["paper@0.2.gt_known"],
    ]
    sub = x.subset(range(10, 20))
    cmp = rec.compare_runs(x, sub)
    d = cmp["gt_known_loc_acc"]
    assert d["a"].n == d["b"].n == 10 and d["difference"].value == 0.0 and d["verdict"] == "not resolved"
    assert "difference" in rec.format_comparison(cmp, "fixture")
    with pytest.raises(ValueError, match="share no image"):
        rec.compare_runs(x, y)
    e = rec.error_of(x.estimate("classification.top1"))
    assert (
        e.value == pytest.approx(100 - x.estimate("classification.top1").value) and e.low <= e.value <= e.high
    )


# ------------------------------------------------------------------------------- sets and subsets
def _wsol_folder(folder: Path, sizes: list[tuple[int, int]]) -> Path:
    (folder / "images").mkdir(parents=True)
    keys = [f"val/ILSVRC2012_val_{i + 1:08d}.JPEG" for i in range(len(sizes))]
    for k, (w, h) in zip(keys, sizes, strict=True):
        Image.new("RGB", (w, h), (120, 60, 30)).save(folder / "images" / Path(k).name)
    (folder / "image_ids.txt").write_text("".join(f"{k}\n" for k in keys))
    (folder / "class_labels.txt").write_text("".join(f"{k},{i}\n" for i, k in enumerate(keys)))
    (folder / "image_sizes.txt").write_text(
        "".join(f"{k},{w},{h}\n" for k, (w, h) in zip(keys, sizes, strict=True))
    )
    (folder / "localization.txt").write_text(
        "".join(f"{k},{w // 4},{h // 4},{w // 2},{h // 2}\n" for k, (w, h) in zip(keys, sizes, strict=True))
    )
    return folder


def test_seeded_subset():
    from camlib.evaluation.study import seeded_subset

    assert seeded_subset(5, None, 0) == seeded_subset(5, 9, 0) == [0, 1, 2, 3, 4]
    assert seeded_subset(10, 3, None) == [0, 1, 2]
    s = seeded_subset(100, 10, 7)
    assert (
        s == sorted(s)
        and len(set(s)) == 10
        and s == seeded_subset(100, 10, 7)
        and s != seeded_subset(100, 10, 8)
    )


def test_open_val_sets_reports_each_set_and_says_when_none_is_found(tmp_path, monkeypatch, capsys):
    from camlib.datasets import roots
    from camlib.evaluation.study import data_rows, open_val_sets

    sample = _wsol_folder(tmp_path / "ilsvrc-val-sample", [(40, 32), (48, 40)])
    onek = _wsol_folder(tmp_path / "ilsvrc-val-1k", [(23, 23)] * 3)
    sets = open_val_sets("quick", sample, onek)
    assert [(s.key, s.name, s.kind, s.n) for s in sets] == [
        ("sample", "ilsvrc-val-sample", "param", 2),
        ("1k", "ilsvrc-val-1k", "param", 3),
    ]
    assert "small objects" in sets[0].caveat and "227" in sets[1].caveat
    rows = data_rows(sets, 7)
    assert [(r.name, r.root_kind, r.n_images) for r in rows] == [
        ("ilsvrc-val-sample", "param", 2),
        ("ilsvrc-val-1k", "param", 3),
    ]
    # nothing anywhere: [] and the first line says so, with how to get the sets
    monkeypatch.delenv("ILSVRC_ROOT", raising=False)
    monkeypatch.delenv("ILSVRC_1K_ROOT", raising=False)
    monkeypatch.setenv("CAMLIB_DATA", str(tmp_path / "empty"))
    monkeypatch.setattr(roots, "shared_data_dir", lambda: None)
    capsys.readouterr()
    assert open_val_sets("quick") == []
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("NOTE: no ILSVRC val images found") and "ILSVRC_1K_ROOT" in first
    assert data_rows([], 7)[0].root_kind == "procedural"


def test_squashed_copy_scales_boxes_per_axis(tmp_path):
    from camlib.datasets.ilsvrc import open_ilsvrc_val
    from camlib.evaluation.study import squashed

    base = open_ilsvrc_val(_wsol_folder(tmp_path / "s", [(80, 40)]))
    sq = squashed(base, 20)
    img, t = sq[0]
    assert img.size == (20, 20) and t.size == (20, 20)
    assert base.boxes[0].tolist() == [[20, 10, 40, 20]] and t.boxes.tolist() == [[5, 5, 10, 10]]


def test_map_cache_replays_the_forward_pass_and_misses_on_other_weights(tmp_path):
    from camlib.core.cam import CAM
    from camlib.datasets import CLASSES, ProceduralShapes
    from camlib.evaluation.localize import Protocols, evaluate_protocols, mask_batches
    from camlib.evaluation.mapcache import MapCache
    from camlib.models import SmallGAPNet

    torch.manual_seed(0)
    data = ProceduralShapes(6, seed=0, split="test")
    cam = CAM(SmallGAPNet(len(CLASSES)).eval())
    protocols = Protocols(fractions=(0.2,), released=False)

    def run(c):
        cache = MapCache.for_cam(
            tmp_path,
            c,
            preprocessing="float [0, 1]",
            image_ids=range(6),
            dataset="procedural 6",
            topk=5,
            channels_last=True,
        )
        r = evaluate_protocols(
            c,
            mask_batches(data.images, data.labels, data.boxes, data.masks, batch_size=4),
            protocols=protocols,
            map_cache=cache,
        )
        return cache, r

    first, r1 = run(cam)
    second, r2 = run(cam)
    assert not first.hit and second.hit and len(list((tmp_path / "class_maps").glob("*.npz"))) == 1
    assert r2["classification"] == r1["classification"] and r2["paper"] == r1["paper"]
    assert (
        r2["records"].hits["paper@0.2.gt_known"].tolist() == r1["records"].hits["paper@0.2.gt_known"].tolist()
    )
    other = CAM(SmallGAPNet(len(CLASSES)).eval())  # new random weights: another key
    third, _ = run(other)
    assert not third.hit and len(list((tmp_path / "class_maps").glob("*.npz"))) == 2


def test_maxboxacc_interval_at_the_chosen_threshold_or_rechosen():
    rng = np.random.default_rng(0)
    largest = rng.random((200, 3, 4)) < np.array([0.2, 0.6, 0.5, 0.1])
    anyhit = largest | (rng.random((200, 3, 4)) < 0.2)
    r = rec.ImageRecords(
        list(range(200)),
        np.full(200, 0.5),
        {},
        {"wsol.largest": largest, "wsol.all": anyhit},
        {k: ((0.1, 0.2, 0.3, 0.4), (0.3, 0.5, 0.7)) for k in ("wsol.largest", "wsol.all")},
    )
    m = r.maxboxacc()
    assert m.value == pytest.approx(100 * largest[:, 1].mean(0).max()) and m.low <= m.value <= m.high
    v2 = r.maxboxacc(v2=True)
    assert (
        v2.value == pytest.approx(100 * anyhit.mean(0).max(axis=1).mean()) and v2.low <= v2.value <= v2.high
    )
    again = r.maxboxacc(v2=True, rechoose=True)
    assert again.value == pytest.approx(v2.value) and again.n == 200


def test_set_summary_of_a_tiny_set_has_no_post_stratified_estimate_but_does_not_fail():
    """Eight images spread over strata (the paper-profile smoke test's set): no box-area stratum holds
    min_count images, so the summary says there is no reweighted estimate instead of raising."""
    r = _records(n=8, area=np.linspace(0.02, 0.98, 8))
    s = rec.set_summary(r, fractions=(0.2,))
    assert s["n"] == 8 and "strata" in s and "post_stratified" not in s
    assert "no stratum has 5 or more images" in s["post_stratified_note"]
    assert "ESTIMATE" not in rec.summary_text(s, "tiny")


class _OracleMaps:
    """A map source with BackpropSaliency's call shape: seeded logits that favour the true class, and per
    (image, class) the object's mask blurred plus seeded noise (the same map whenever the same class is
    asked for the same image, as a real source gives)."""

    def __init__(self, masks, labels, n_classes=6, seed=0):
        self.masks, self.labels, self.C, self.seed, self.start = masks, labels, n_classes, seed, 0

    def __call__(self, x, topk, extra_targets):
        from types import SimpleNamespace

        from scipy.ndimage import gaussian_filter

        B = len(x)
        idx = range(self.start, self.start + B)
        self.start += B
        g = torch.Generator().manual_seed(self.seed + self.start)
        logits = torch.randn(B, self.C, generator=g)
        logits[torch.arange(B), torch.as_tensor([int(self.labels[i]) for i in idx])] += 1.5
        classes = torch.cat([logits.topk(topk, 1).indices, torch.as_tensor(extra_targets).view(B, 1)], 1)
        maps = np.zeros((B, classes.shape[1], *x.shape[-2:]), np.float32)
        for b, i in enumerate(idx):
            for n, c in enumerate(classes[b].tolist()):
                rng = np.random.default_rng([self.seed, i, c])
                maps[b, n] = gaussian_filter(
                    self.masks[i].astype(float), 1 + 3 * rng.random()
                ) + 0.6 * rng.random(x.shape[-2:])
        return SimpleNamespace(logits=logits, classes=classes, maps=torch.from_numpy(maps))


def test_heuristic_table_is_the_protocol_heuristic_at_every_tight_and_loose():
    """Exercise 03.1's table, built from the kept predictions and the GT-known sweep, is the five-box
    heuristic the protocol pass measures, at the a-priori pair and at another one."""
    from camlib.datasets import ProceduralShapes
    from camlib.evaluation.localize import Protocols, evaluate_protocols, mask_batches

    t = ProceduralShapes(48, seed=1, split="test")

    def run(tight, loose):
        src = _OracleMaps(t.masks, t.labels)
        batches = mask_batches(t.images, t.labels, t.boxes, t.masks, batch_size=16)
        p = Protocols(fractions=(0.2,), released=False, heuristic_tight=tight, heuristic_loose=loose)
        return evaluate_protocols(src, batches, protocols=p, keep_predictions=True)

    r = run(0.4, 0.2)
    table = rec.heuristic_table(r, [0.3, 0.4], [0.15, 0.2])
    fixed = r["records"].hits["heuristic.top5_loc"]
    assert 0 < fixed.sum() < len(fixed)  # a test that can fail: some hits, some misses
    np.testing.assert_array_equal(table[:, 1, 1], fixed)
    np.testing.assert_array_equal(table[:, 0, 0], run(0.3, 0.15)["records"].hits["heuristic.top5_loc"])
    h = rec.heuristic_held_out(r, tights=(0.3, 0.4, 0.5), looses=(0.1, 0.2), seed=0)
    assert h["n_choose"] + h["n_report"] == 48 and h["chosen"]["loose"] <= h["chosen"]["tight"]
    assert abs(h["fixed_err_all"] - r["heuristic"]["top5_loc_err"]) < 1e-9
    assert h["fixed_err_B"].n == h["chosen_err_B"].n == h["n_report"] and h["verdict"] in (
        "agrees", "reversed", "not resolved")  # fmt: skip
    with pytest.raises(ValueError, match="not swept"):
        rec.heuristic_table(r, [0.33], [0.2])
