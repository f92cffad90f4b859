"""Generic features (camlib.core.features): extraction (early stop, reused layers) and the disk cache."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from camlib.core import features as FT
from camlib.models import SmallGAPNet


@pytest.fixture(scope="module")
def net() -> SmallGAPNet:
    torch.manual_seed(0)
    m = SmallGAPNet(5, channels=(8, 16), width=24)
    with torch.no_grad():  # non-trivial BN statistics
        for mod in m.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.2, 0.2)
                mod.running_var.uniform_(0.5, 1.5)
    return m.eval()


def _images(n: int, seed: int = 0, size: int = 32) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def test_gap_features_are_what_the_fc_reads(net):
    x = _images(10)
    X, y = FT.gap_features(net, x, batch_size=4, progress=False)
    assert X.shape == (10, 24) and X.dtype == np.float32 and y is None
    with torch.no_grad():
        logits = net(x)
    assert np.allclose(
        X @ net.fc.weight.detach().numpy().T + net.fc.bias.detach().numpy(), logits.numpy(), atol=1e-4
    )
    assert net.training is False


def test_reused_layer_gives_its_last_output():
    class Reuse(nn.Module):  # EfficientNet-style: one activation module serves the stem and the head
        def __init__(self):
            super().__init__()
            self.stem, self.head_conv = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 6, 3, padding=1)
            self.act, self.fc = nn.ReLU(), nn.Linear(6, 3)

        def forward(self, x):
            f = self.act(self.head_conv(self.act(self.stem(x))))
            return self.fc(f.mean((2, 3)))

    torch.manual_seed(1)
    m = Reuse().eval()
    x = _images(6, size=12)
    X, _ = FT.gap_features(m, x, batch_size=2, progress=False)  # batches 2, 3 stop early after call 2
    assert X.shape == (6, 6)
    with torch.no_grad():
        assert np.allclose(X @ m.fc.weight.numpy().T + m.fc.bias.numpy(), m(x).numpy(), atol=1e-5)


def test_cache_hits_on_second_run_and_misses_on_a_change(net, tmp_path):
    x = _images(384, size=48)
    cache = FT.FeatureCache(tmp_path / "cache")
    kw = dict(
        model_name="small", preprocessing="48px, [0,1]", dataset="random(384)", cache=cache, progress=False
    )
    first = FT.cached_features(net, x, **kw)
    second = FT.cached_features(net, x, **kw)
    print(f"\nfeature extraction {first.seconds * 1e3:.1f} ms, cache hit {second.seconds * 1e3:.1f} ms")
    assert (cache.misses, cache.hits) == (1, 1)
    assert not first.cached and second.cached
    assert second.seconds < first.seconds
    assert np.array_equal(first.X, second.X)
    third = FT.cached_features(net, x, **{**kw, "preprocessing": "48px, ImageNet mean/std"})
    assert not third.cached and (cache.misses, cache.hits) == (2, 1)
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 2
    # other weights (same name) miss too: the key holds a hash of the state_dict
    other = SmallGAPNet(5, channels=(8, 16), width=24).eval()
    assert not FT.cached_features(other, x, **kw).cached
    assert FT.model_fingerprint(other) != FT.model_fingerprint(net)
