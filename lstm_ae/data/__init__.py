"""Data modules. Each returns :class:`Splits`: in-memory tensors ready for the trainer."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Dict, Optional

import torch

from lstm_ae.errors import ConfigError


@dataclass
class Split:
    x: torch.Tensor  # (N, T, features), float32 in [0, 1]
    y: Optional[torch.Tensor] = None  # (N,) class labels, when the data has them

    def __len__(self) -> int:
        return self.x.shape[0]

    def to(self, device: torch.device | str) -> "Split":
        return Split(self.x.to(device), None if self.y is None else self.y.to(device))


@dataclass
class Splits:
    train: Split
    val: Split
    test: Split
    meta: Dict[str, Any] = field(default_factory=dict)  # what figures need (e.g. dip positions)

    @property
    def num_features(self) -> int:
        return self.train.x.shape[-1]

    @property
    def seq_len(self) -> int:
        return self.train.x.shape[1]


def default_root() -> str:
    """Where data files live unless a config says: ``$LSTM_AE_DATA``, else ``./data``."""
    return os.environ.get("LSTM_AE_DATA", "data")


def split_sizes(n: int, fractions: "list[float]") -> "tuple[int, int, int]":
    """Sizes of train/val/test for n items; rounding goes to train, each part gets >= 1."""
    n_val = max(1, round(n * fractions[1]))
    n_test = max(1, round(n * fractions[2]))
    n_train = n - n_val - n_test
    if n_train < 1:
        raise ConfigError(f"{n} sequences are too few for a train/val/test split of {list(fractions)}")
    return n_train, n_val, n_test
