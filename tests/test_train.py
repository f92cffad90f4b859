"""Training loop: determinism, checkpoint resume equals an uninterrupted run, config guard."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import TensorDataset

from camlib.models import SmallGAPNet
from camlib.models.train import TrainConfig, evaluate_logits, fit


def _data(n=40):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, 3, 32, 32, generator=g)
    y = torch.randint(0, 3, (n,), generator=g)
    x[y == 1, 0] += 1.0  # something learnable
    return TensorDataset(x, y)


def _model(seed=0):
    torch.manual_seed(seed)
    return SmallGAPNet(3, channels=(8, 8), width=16)


CFG = TrainConfig(epochs=3, batch_size=16, lr=0.05, lr_step_every=4, seed=5)


def test_resume_after_interrupt_matches_uninterrupted(tmp_path):
    ds = _data()
    ref = _model()
    fit(ref, ds, CFG, progress=False)
    m = _model()
    ck = tmp_path / "ck.pt"
    s1 = fit(m, ds, CFG, checkpoint=ck, stop_after=4, progress=False)  # stops mid-epoch 2 (3 steps/epoch)
    assert not s1.finished and s1.step == 4 and ck.exists()
    m2 = _model(seed=123)  # a fresh process: different init, all state comes from the checkpoint
    s2 = fit(m2, ds, CFG, checkpoint=ck, progress=False)
    assert s2.finished and s2.resumed_from == 4 and s2.step == 9
    for a, b in zip(ref.state_dict().values(), m2.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)
    assert [h["epoch"] for h in s2.history] == [0, 1, 2]


def test_same_seed_same_weights_and_budget():
    ds = _data()
    a, b = _model(), _model()
    cfg = TrainConfig(epochs=5, batch_size=16, max_iters=4, seed=1)
    sa = fit(a, ds, cfg, progress=False)
    fit(b, ds, cfg, progress=False)
    assert sa.step == 4
    assert all(
        torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    )


def test_checkpoint_from_other_config_refused(tmp_path):
    ds = _data()
    ck = tmp_path / "ck.pt"
    fit(_model(), ds, TrainConfig(epochs=1, batch_size=16), checkpoint=ck, progress=False)
    with pytest.raises(ValueError, match="different config"):
        fit(_model(), ds, TrainConfig(epochs=2, batch_size=16), checkpoint=ck, progress=False)


def test_evaluate_logits_restores_mode():
    m = _model()
    m.train()
    logits, labels = evaluate_logits(m, _data(10), batch_size=4)
    assert logits.shape == (10, 3) and labels.shape == (10,) and m.training


def _multi_step(model, x, t, skip):
    """A custom step (multi-label BCE) that skips the batches holding a `skip` flag."""
    if bool(skip.any()):
        return None, 0.0, 0
    logits = model(x)
    return (
        torch.nn.functional.binary_cross_entropy_with_logits(logits, t),
        float(((logits > 0) == (t > 0.5)).sum()),
        t.numel(),
    )


def test_custom_batch_and_step_with_adam_resume_exactly(tmp_path):
    ds = _data()
    x, y = ds.tensors
    t = torch.nn.functional.one_hot(y, 3).float()
    skip = torch.zeros(len(y), dtype=torch.bool)
    skip[7] = True  # the batch holding sample 7 is skipped (loss None): no update, not counted

    def run(m, **kw):
        return fit(
            m,
            ds,
            CFG,
            optimizer="adam",
            augment=None,
            batch_fn=lambda idx: (x[idx], t[idx], skip[idx]),
            step_fn=_multi_step,
            progress=False,
            **kw,
        )

    ref = _model()
    s_ref = run(ref)
    assert s_ref.step == 9 and all(0.0 <= h["train_acc"] <= 1.0 for h in s_ref.history)
    m, ck = _model(), tmp_path / "adam.pt"
    run(m, checkpoint=ck, stop_after=5)
    m2 = _model(seed=7)
    s2 = run(m2, checkpoint=ck)
    assert s2.resumed_from == 5
    for a, b in zip(ref.state_dict().values(), m2.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="different config"):  # the optimizer kind is part of the config
        fit(_model(), ds, CFG, optimizer="sgd", checkpoint=ck, progress=False)
    with pytest.raises(ValueError, match="'sgd' or 'adam'"):
        fit(_model(), ds, CFG, optimizer="lbfgs", progress=False)
