"""The synthetic data of assignment 3.1 has exactly the specified properties."""
import dataclasses

import torch

from lstm_ae.config import ToyDatasetConfig
from lstm_ae.data import toy as toy_module
from lstm_ae.data.toy import load_toy

DEFAULTS = {k: v for k, v in dataclasses.asdict(ToyDatasetConfig()).items() if k not in ("_target_", "split")}


def make_toy(**overrides):
    """The generator with the config's defaults (the specification: 10,000 x 50, i in 20..30, ...)."""
    return toy_module.make_toy(**{**DEFAULTS, **overrides})


def test_toy_data_properties():
    x, centres = make_toy(seed=0)
    assert x.shape == (10_000, 50, 1) and x.dtype == torch.float32
    assert 0.0 <= x.min() and x.max() <= 1.0
    # i uniform over the integers 20..30, both ends included
    assert centres.min() == 20 and centres.max() == 30
    assert set(centres.tolist()) == set(range(20, 31))
    counts = torch.bincount(centres - 20, minlength=11).float()
    assert (counts / counts.sum() - 1 / 11).abs().max() < 0.015
    t = torch.arange(1, 51)
    in_dip = (t >= centres[:, None] - 5) & (t <= centres[:, None] + 5)  # the specification: t = i-5 .. i+5
    v = x[..., 0]
    assert v[in_dip].max() <= 0.1  # multiplied by 0.1
    inside, outside = v[in_dip], v[~in_dip]
    assert abs(inside.mean().item() - 0.05) < 0.002  # U[0,1] * 0.1
    assert abs(outside.mean().item() - 0.5) < 0.005  # U[0,1]
    assert abs(outside.var().item() - 1 / 12) < 0.002
    assert outside.max() > 0.99 and outside.min() < 0.01


def test_dip_values_are_the_uniform_values_times_point_one():
    # Same generator without the dip: the dip values must be exactly 0.1 x those values.
    x, centres = make_toy(num_sequences=50, seed=3)
    raw, _ = make_toy(num_sequences=50, seed=3, dip_scale=1.0)
    scaled = ~torch.isclose(x, raw)
    assert (scaled[..., 0].sum(1) == 11).all()  # read off the data: 11 values per sequence are scaled
    torch.testing.assert_close(x[scaled], raw[scaled] * 0.1)
    t = torch.arange(1, 51)
    dip = (t >= centres[:, None] - 5) & (t <= centres[:, None] + 5)
    assert torch.equal(scaled[..., 0], dip & (raw[..., 0] > 0))


def test_split_60_20_20_and_reproducible():
    a = load_toy(seed=1)
    assert (len(a.train), len(a.val), len(a.test)) == (6000, 2000, 2000)
    b = load_toy(seed=1)
    c = load_toy(seed=2)
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.test.x, b.test.x)
    assert not torch.equal(a.train.x, c.train.x)
    # the three parts are disjoint: no sequence appears twice
    all_x = torch.cat([a.train.x, a.val.x, a.test.x])[..., 0]
    assert torch.unique(all_x, dim=0).shape[0] == 10_000


def test_each_sequence_knows_its_dip_for_the_figures():
    x, centres = make_toy(num_sequences=50, seed=4)
    s = load_toy(num_sequences=50, seed=4, split=[0.6, 0.2, 0.2])
    highlight = torch.cat([s.train.highlight, s.val.highlight, s.test.highlight])
    assert torch.equal(highlight, torch.stack([centres - 5, centres + 5], dim=1))
    torch.testing.assert_close(torch.cat([s.train.x, s.val.x, s.test.x]), x)
