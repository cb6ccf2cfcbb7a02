"""Data modules. Each loader returns :class:`Splits`: in-memory tensors ready for the trainer.

What a dataset can do is said by typed fields, never by its name: class labels
(``Split.labels``, ``Splits.num_classes``) make classification possible; next-step targets
(``Split.next_value``) make one-step prediction possible; groups (``Split.group``,
``Splits.group_names``) make cross-validation by group possible; a way back to the data's own
units (``Split.offset``/``Split.scale``, ``Splits.unit``) adds errors in those units; dates,
image shapes and highlighted time steps tell the figures how to draw a sequence.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Callable, List, Optional, Tuple

import numpy as np
import torch

from lstm_ae.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

    from lstm_ae.data.windows import MinMax


@dataclass
class Split:
    """Sequences and what is known of each one; every tensor field has one row per sequence."""

    x: torch.Tensor  # (N, T, m) float32, min-max scaled to [0, 1]
    labels: Optional[torch.Tensor] = None  # (N,) int64 class of each sequence
    next_value: Optional[torch.Tensor] = None  # (N, m) the value after the sequence, scaled like x
    group: Optional[torch.Tensor] = None  # (N,) int64 index into Splits.group_names (e.g. the stock)
    start: Optional[torch.Tensor] = None  # (N,) int64 index into Splits.dates of the first step
    offset: Optional[torch.Tensor] = None  # (N,) float64: value in data units = x * scale + offset
    scale: Optional[torch.Tensor] = None  # (N,) float64
    highlight: Optional[torch.Tensor] = None  # (N, 2) int64 first and last (1-based) step to shade in figures
    # (N, T) int64 a per-step label of each step (dataset=csv's label_column, e.g. 1 = anomaly): kept for
    # evaluation only, never an input of the model
    step_labels: Optional[torch.Tensor] = None

    def __len__(self) -> int:
        return self.x.shape[0]

    def __getitem__(self, index) -> "Split":
        """The sequences at ``index`` (a slice, an index tensor or a list), every field alike."""
        return Split(**{f.name: None if (v := getattr(self, f.name)) is None else v[index] for f in fields(self)})

    def to(self, device: torch.device | str) -> "Split":
        """Every field on ``device`` (batches index them all with one index tensor there)."""
        return Split(**{f.name: None if (v := getattr(self, f.name)) is None else v.to(device) for f in fields(self)})

    def in_units(self, values: torch.Tensor) -> torch.Tensor:
        """Scaled values ((N, T) or (N, T, m)) of these sequences back in data units (float64)."""
        shape = (-1,) + (1,) * (values.dim() - 1)
        return values.double() * self.scale.view(shape) + self.offset.view(shape)


@dataclass
class Splits:
    train: Split
    val: Split
    test: Split
    num_classes: Optional[int] = None  # labels are 0 .. num_classes-1
    image_shape: Optional[Tuple[int, int]] = None  # each sequence is an image of this shape (figures)
    group_names: Optional[List[str]] = None  # Split.group indexes this; train+val groups come first,
    #   numbered in a seeded random order, so contiguous blocks of them are random folds
    dates: Optional["pd.DatetimeIndex"] = None  # Split.start indexes this
    unit: Optional[str] = None  # the data's own unit (Split.offset/scale lead back to it), e.g. "USD"
    value_name: str = "value"  # what one value is, for axis labels (e.g. "daily high")
    group_kind: str = "series"  # what a group is, for figure titles (S&P: "stock")
    feature_names: Optional[List[str]] = None  # the m values of a step, by name (csv: its value columns)
    series: Optional[torch.Tensor] = None  # (S, days, m) whole series of the test groups, in data units
    series_names: Optional[List[str]] = None  # the S groups of ``series``
    overview: Optional["pd.DataFrame"] = None  # dates x names, in data units: drawn before training
    # a random transform of a training batch's x, drawn from the generator (MNIST's dataset.shift);
    # the trainer applies it to every training batch, never to validation or test
    augment: Optional[Callable[[torch.Tensor, torch.Generator], torch.Tensor]] = None
    # min-max numbers fitted once on the training rows (dataset=csv scaling=train): scaled = (x - lo) / span;
    # results.json keeps them, so a run can scale new data as it scaled its own (lstm_ae.apply, lstm_ae.export)
    scaler: Optional["MinMax"] = None

    @property
    def num_features(self) -> int:
        return self.train.x.shape[-1]

    @property
    def seq_len(self) -> int:
        return self.train.x.shape[1]

    @property
    def axis_label(self) -> str:
        """The value axis of a figure: 'daily high (USD)', or the value's name alone without a unit."""
        return f"{self.value_name} ({self.unit})" if self.unit else self.value_name

    @property
    def has_next(self) -> bool:
        return self.train.next_value is not None


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


def group_folds(splits: Splits, folds: int) -> List[Splits]:
    """k-fold cross-validation by group: fold k validates on the k-th block of the train+val groups.

    Train and validation sequences are pooled; the groups they hold (numbered in a seeded random
    order by the loader) are cut into ``folds`` contiguous blocks; each fold trains on the others.
    Within a part, sequences keep the loader's order (by group name, then position). The test
    split is the same for every fold.
    """
    if splits.group_names is None or splits.train.group is None:
        raise ConfigError("task.folds (cross-validation) needs a dataset with groups (dataset=sp500); set task.folds=null")
    pool = concat(splits.train, splits.val)
    ids = np.unique(pool.group.numpy())
    if not 2 <= folds <= len(ids):
        raise ConfigError(
            f"task.folds={folds} needs 2 <= folds <= {len(ids)} (the groups left for training and validation)"
        )
    names = np.array(splits.group_names)
    key = np.lexsort((np.arange(len(pool)), names[pool.group.numpy()]))  # by group name, then position
    pool = pool[torch.from_numpy(key)]
    out = []
    for val_ids in np.array_split(ids, folds):
        in_val = torch.from_numpy(np.isin(pool.group.numpy(), val_ids))
        out.append(replace(splits, train=pool[~in_val], val=pool[in_val]))
    return out


def concat(a: Split, b: Split) -> Split:
    """The sequences of ``a`` then those of ``b``."""
    return Split(**{f.name: None if (u := getattr(a, f.name)) is None else torch.cat([u, getattr(b, f.name)])
                    for f in fields(a)})
