"""The synthetic data of assignment section 3.1.

10,000 sequences of length 50 with values uniform in [0, 1]; for each sequence an integer i is
drawn uniformly from [20, 30] (both ends included) and the values at t = i-5 .. i+5 (1-based,
11 values) are multiplied by 0.1. Split 60/20/20 into train/validation/test.
"""
from __future__ import annotations

from typing import Sequence

import torch

from lstm_ae.data import Split, Splits, split_sizes


HALF_WIDTH = 5  # values at t = i-5 .. i+5 are scaled


def make_toy(
    num_sequences: int = 10_000,
    seq_len: int = 50,
    dip_min: int = 20,
    dip_max: int = 30,
    dip_half_width: int = HALF_WIDTH,
    dip_scale: float = 0.1,
    seed: int = 0,
) -> "tuple[torch.Tensor, torch.Tensor]":
    """Return (x, centres): x (N, T, 1) float32, centres (N,) the 1-based dip centre i."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(num_sequences, seq_len, generator=gen)
    centres = torch.randint(dip_min, dip_max + 1, (num_sequences,), generator=gen)
    t = torch.arange(1, seq_len + 1)
    in_dip = (t >= centres[:, None] - dip_half_width) & (t <= centres[:, None] + dip_half_width)
    x = torch.where(in_dip, x * dip_scale, x)
    return x.unsqueeze(-1), centres


def load_toy(split: Sequence[float] = (0.6, 0.2, 0.2), **generator: int | float) -> Splits:
    """Train/validation/test splits of :func:`make_toy` data (``generator``: its keyword arguments)."""
    x, centres = make_toy(**generator)
    n_train, n_val, _ = split_sizes(len(x), list(split))
    # The sequences are i.i.d., so consecutive blocks are as random a split as a permutation.
    parts = (slice(0, n_train), slice(n_train, n_train + n_val), slice(n_train + n_val, None))
    train, val, test = (Split(x[p]) for p in parts)
    half_width = generator.get("dip_half_width", HALF_WIDTH)
    meta = {"name": "toy", "dip_centres": [centres[p] for p in parts], "dip_half_width": half_width}
    return Splits(train, val, test, meta=meta)
