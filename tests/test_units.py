"""camlib.paper.units: unit ranking, the streamed top-k heap, reservoir quantiles, receptive fields, part hits."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from camlib.paper.units import (
    ImageList,
    ReservoirQuantile,
    TopKPerUnit,
    head_weights,
    image_files,
    live_units,
    mean_ci,
    mean_diff_ci,
    part_hits,
    random_units,
    rank_units,
    receptive_fields,
    scan_units,
)


class TinyGAP(nn.Module):
    """conv (K units) -> ReLU -> GAP -> linear, the head CAM expects."""

    def __init__(self, k: int = 4, c: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, k, 3, padding=1)
        self.act = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(k, c)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.act(self.conv(x))), 1))


def test_rank_units_on_a_hand_built_linear_head():
    torch.manual_seed(0)
    model = TinyGAP(k=4, c=3)
    w = torch.tensor([[0.5, -1.0, 2.0, 0.1], [0.0, 3.0, -2.0, 1.0], [1.0, 1.0, 0.2, 1.0]])
    with torch.no_grad():
        model.fc.weight.copy_(w)
    W, b, head = head_weights(model, torch.randn(2, 3, 8, 8))
    assert head.feature_layer == "act" and head.fc_layer == "fc"
    assert torch.equal(W, w) and b is not None and b.shape == (3,)
    idx, vals = rank_units(W, 0)
    assert idx.tolist() == [2, 0, 3, 1] and vals.tolist() == pytest.approx([2.0, 0.5, 0.1, -1.0])
    assert rank_units(W, 1, k=2)[0].tolist() == [1, 3]
    assert rank_units(W, 1, lowest=True)[0].tolist() == [2, 0, 3, 1]
    assert rank_units(W, 2)[0].tolist() == [0, 1, 3, 2]  # ties keep the lower unit index first
    with pytest.raises(ValueError, match="class_index"):
        rank_units(W, 3)


def test_random_units_are_distinct_and_seeded():
    a = random_units(np.arange(10, 30), 5, seed=3)
    assert len(set(a.tolist())) == 5 and all(10 <= u < 30 for u in a)
    assert np.array_equal(a, random_units(np.arange(10, 30), 5, seed=3))
    with pytest.raises(ValueError):
        random_units([1, 2], 3)


@pytest.mark.parametrize("integer_scores", [False, True])
def test_topk_heap_matches_brute_force(integer_scores):
    rng = np.random.default_rng(1)
    N, U, k = 157, 9, 6
    scores = rng.integers(0, 5, (N, U)).astype(float) if integer_scores else rng.normal(size=(N, U))
    maps = rng.normal(size=(N, U, 2, 3)).astype(np.float32)
    heap = TopKPerUnit(U, k, keep_maps=True)
    start = 0
    while start < N:
        stop = min(N, start + int(rng.integers(1, 20)))
        heap.push(scores[start:stop], np.arange(start, stop), maps[start:stop])
        start = stop
    got_s, got_ids, got_maps = heap.result()
    for u in range(U):
        order = np.lexsort((np.arange(N), -scores[:, u]))[:k]  # higher score, then smaller id
        assert got_ids[u].tolist() == order.tolist()
        assert np.allclose(got_s[u], scores[order, u])
        assert np.allclose(got_maps[u], maps[order, u])


def test_topk_heap_pads_when_fewer_items_than_k():
    heap = TopKPerUnit(2, 4)
    heap.push(np.array([[1.0, 2.0], [3.0, 0.5]]), [7, 8])
    s, ids, maps = heap.result()
    assert ids.tolist() == [[8, 7, -1, -1], [7, 8, -1, -1]] and maps is None
    assert np.isneginf(s[:, 2:]).all()


def test_reservoir_is_exact_for_short_streams_and_close_for_long_ones():
    rng = np.random.default_rng(0)
    short = rng.normal(size=(3, 500)).astype(np.float32)
    r = ReservoirQuantile(3, size=1000)
    r.update(short[:, :123])
    r.update(short[:, 123:])
    assert np.allclose(r.quantile(0.9), np.quantile(short, 0.9, axis=1))
    big = rng.uniform(size=(2, 200_000)).astype(np.float32)
    r = ReservoirQuantile(2, size=4096, seed=1)
    for s in range(0, big.shape[1], 7_000):
        r.update(big[:, s : s + 7_000])
    assert r.seen == big.shape[1]
    assert np.allclose(r.quantile(0.99), 0.99, atol=0.006)
    assert np.allclose(r.quantile(0.5), 0.5, atol=0.04)
    # the sample must come from the whole stream, not its beginning
    ramp = np.tile(np.arange(100_000, dtype=np.float32), (1, 1))
    r = ReservoirQuantile(1, size=2000, seed=2)
    for s in range(0, 100_000, 9_999):
        r.update(ramp[:, s : s + 9_999])
    assert abs(r.sample.mean() / 50_000 - 1) < 0.05


def test_scan_units_matches_brute_force():
    torch.manual_seed(0)
    model = TinyGAP(k=5, c=2).eval()
    data = [torch.rand(3, 6, 6) for _ in range(23)]
    scan = scan_units(model, data, k=4, quantile=0.9, batch_size=5, reservoir_size=10_000, progress=False)
    with torch.no_grad():
        feats = model.act(model.conv(torch.stack(data)))  # (N, K, 6, 6)
    peak = feats.flatten(2).amax(2).numpy()
    for u in range(5):
        order = np.lexsort((np.arange(23), -peak[:, u]))[:4]
        assert scan.image_ids[u].tolist() == order.tolist()
        assert np.allclose(scan.maps[u], feats[order, u].numpy(), atol=1e-6)
    exact = np.quantile(feats.permute(1, 0, 2, 3).reshape(5, -1).numpy(), 0.9, axis=1)
    assert np.allclose(scan.thresholds, exact, atol=1e-6)
    sub = scan_units(model, data, units=[3, 1], k=2, batch_size=7, progress=False)
    assert sub.units.tolist() == [3, 1] and sub.row(1) == 1
    assert sub.image_ids[0].tolist() == scan.image_ids[3, :2].tolist()
    assert set(live_units(scan).tolist()) <= set(range(5))


def test_receptive_fields_and_part_hits():
    # 3 images of 8x8 with two parts; unit maps at 4x4 (upsampled x2 with "nearest"-like blocks)
    parts = np.zeros((3, 8, 8), np.uint8)
    parts[:, :4, :] = 1
    parts[:, 4:, :4] = 2
    maps = np.zeros((2, 3, 4, 4), np.float32)
    maps[0, 0, 0:2, :] = 5.0  # image 0: top half -> part 1
    maps[0, 1, 2:4, 0:2] = 5.0  # image 1: bottom-left -> part 2
    maps[0, 2, 1:3, 1:3] = 5.0  # image 2: straddles parts 1, 2 and background -> miss
    # unit 1 never fires: empty regions
    from camlib.core.cam import HeadSpec
    from camlib.paper.units import UnitScan

    scan = UnitScan(
        units=np.array([0, 1]),
        scores=np.ones((2, 3)),
        image_ids=np.tile(np.arange(3), (2, 1)),
        maps=maps,
        thresholds=np.array([2.5, 1.0]),
        unit_max=np.array([5.0, 0.0]),
        quantile=0.99,
        n_images=3,
        input_size=(8, 8),
        head=HeadSpec("f", "fc"),
        reservoir_size=10,
    )
    reg = receptive_fields(maps[0, 0], 2.5, (8, 8))
    assert reg.shape == (8, 8) and reg[:3].all() and not reg[5:].any()
    ph = part_hits(scan, parts)
    assert ph.hits[0].tolist() == [True, True, False]
    assert ph.parts[0, :2].tolist() == [1, 2]
    assert ph.hit_rate.tolist() == pytest.approx([2 / 3, 0.0])
    assert ph.empty.tolist() == [0, 3]
    assert ph.rate([0, 1]) == pytest.approx(1 / 3)
    assert live_units(scan).tolist() == [0]
    with pytest.raises(ValueError, match="input"):
        part_hits(scan, parts[:, :4, :4])


def test_saturated_units_have_regions_and_dead_units_none():
    m = np.zeros((4, 4), np.float32)
    m[1:3, 1:3] = 6.0  # a ReLU6 unit at saturation: its high quantile is 6 itself
    assert receptive_fields(m, 6.0, (8, 8)).sum() > 0
    assert receptive_fields(np.zeros((4, 4)), 0.0, (8, 8)).sum() == 0


def test_bootstrap_intervals():
    rng = np.random.default_rng(0)
    a, b = rng.normal(1.0, 1.0, 400), rng.normal(0.0, 1.0, 300)
    m, lo, hi = mean_ci(a)
    assert lo < m < hi and lo < 1.0 < hi and hi - lo < 0.3
    d, lo, hi = mean_diff_ci(a, b)
    assert lo < d < hi and lo > 0.5


def test_image_folder_errors_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist.*IMAGE_FOLDER"):
        image_files(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="no images"):
        image_files(tmp_path)
    from PIL import Image

    (tmp_path / "a").mkdir()
    Image.new("RGB", (10, 6), (255, 0, 0)).save(tmp_path / "a" / "x.png")
    files = image_files(tmp_path)
    ds = ImageList(files, lambda im: torch.from_numpy(np.array(im)).permute(2, 0, 1).float())
    x, i = ds[0]
    assert x.shape == (3, 6, 10) and i == 0 and ds.display(0, (4, 4)).shape == (4, 4, 3)


def test_class_units_shows_the_predicted_classes_and_their_top_units():
    from torchvision.transforms import v2 as T

    from camlib.models import ImageNetModel
    from camlib.paper.units import class_units

    torch.manual_seed(0)
    net = TinyGAP(k=6, c=3).eval()
    pre = T.Compose([T.ToImage(), T.Resize((16, 16), antialias=True), T.ToDtype(torch.float32, scale=True)])
    model = ImageNetModel("tiny", net, pre, (16, 16), ["a", "b", "c"], "random init")
    rng = np.random.default_rng(0)
    ds = ImageList([rng.integers(0, 256, (20, 24, 3), dtype=np.uint8) for _ in range(7)], pre)
    x = torch.stack([ds[i][0] for i in range(7)])
    with torch.no_grad():
        pred = net(x).argmax(1)
    W, _, _ = head_weights(net, x[:1])
    cu = class_units(model, ds, of_images=[0, 3], top_units=2, k=2, batch_size=3, progress=False)
    assert [r[0] for r in cu.rows] == [model.classes[int(pred[i])] for i in (0, 3)]
    for name, units, weights in cu.rows:
        idx, w = rank_units(W, model.classes.index(name), 2)
        assert units == idx.tolist() and weights == pytest.approx(w.tolist())
    most = class_units(model, ds, n_classes=2, top_units=2, k=2, batch_size=3, progress=False)
    counts = np.bincount(pred.numpy(), minlength=3)
    assert [r[0] for r in most.rows] == [model.classes[c] for c in np.argsort(-counts, kind="stable")[:2]]
    m = most.metrics()
    assert m["n_images"] == 7 and m["n_units"] == 6 and list(m["top_units"]) == m["classes"]
