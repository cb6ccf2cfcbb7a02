"""The synthetic data of assignment section 3.1.

10,000 sequences of length 50 with values uniform in [0, 1]; for each sequence an integer i is
drawn uniformly from [20, 30] (both ends included) and the values at t = i-5 .. i+5 (1-based,
11 values) are multiplied by 0.1. Split 60/20/20 into train/validation/test.
"""
from __future__ import annotations

from typing import Sequence

import torch

from lstm_ae.data import Split, Splits, split_sizes


def make_toy(num_sequences: int, seq_len: int, dip_min: int, dip_max: int, dip_half_width: int, dip_scale: float,
             seed: int) -> "tuple[torch.Tensor, torch.Tensor]":
    """Return (x, centres): x (N, T, 1) float32, centres (N,) the 1-based dip centre i.
    (The defaults are :func:`load_toy`'s, which are the config's.)"""
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(num_sequences, seq_len, generator=gen)
    centres = torch.randint(dip_min, dip_max + 1, (num_sequences,), generator=gen)
    t = torch.arange(1, seq_len + 1)
    in_dip = (t >= centres[:, None] - dip_half_width) & (t <= centres[:, None] + dip_half_width)
    x = torch.where(in_dip, x * dip_scale, x)
    return x.unsqueeze(-1), centres


def load_toy(
    num_sequences: int = 10_000,
    seq_len: int = 50,
    dip_min: int = 20,
    dip_max: int = 30,
    dip_half_width: int = 5,
    dip_scale: float = 0.1,
    split: Sequence[float] = (0.6, 0.2, 0.2),
    seed: int = 0,
) -> Splits:
    """Train/validation/test splits of :func:`make_toy` data; each sequence's dip is its ``highlight``."""
    x, centres = make_toy(num_sequences, seq_len, dip_min, dip_max, dip_half_width, dip_scale, seed)
    n_train, n_val, _ = split_sizes(len(x), list(split))
    dips = torch.stack([centres - dip_half_width, centres + dip_half_width], dim=1)
    data = Split(x, highlight=dips)
    # The sequences are i.i.d., so consecutive blocks are as random a split as a permutation.
    return Splits(data[:n_train], data[n_train : n_train + n_val], data[n_train + n_val :])
