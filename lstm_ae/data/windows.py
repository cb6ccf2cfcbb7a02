"""The one windowing and scaling code path of the time-series datasets (S&P 500, csv).

A series is a (days, m) float64 tensor in data units. :func:`make_split` cuts each series into
windows of ``seq_len`` steps every ``stride`` steps (:func:`window_starts`); every window also
carries the step after it (``next_value``, the one-step target), so a window never reaches past
the end of the series it is cut from: a split by time hands each part of a series over as a series
of its own, and no window crosses a cut.

Scaling, without look-ahead either way:

- per window (:func:`scale_windows`): each window min-max scaled with the min and max over all its
  values (every channel: they share one unit), its next value scaled with the same numbers and never
  entering them (so it may fall outside [0, 1]); ``offset``/``scale`` lead every window back to data units;
- fitted on the training part (:class:`MinMax`): one min and max per channel, over the training rows only.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from lstm_ae.data import Split
from lstm_ae.errors import ConfigError


def window_starts(days: int, seq_len: int, stride: int) -> np.ndarray:
    """Start indices of the windows of ``seq_len`` days (out of ``days``) that still have a next day."""
    return np.arange(0, days - seq_len, stride)


def scale_windows(x: torch.Tensor) -> "tuple[torch.Tensor, torch.Tensor, torch.Tensor]":
    """Min-max scale each window of ``x`` ((N, T) or (N, T, m)) with its own min and max over all its
    values: (scaled, lo, span), lo and span of shape (N,)."""
    flat = x.reshape(len(x), -1)
    lo = flat.min(dim=1).values
    span = (flat.max(dim=1).values - lo).clamp_min(1e-8)
    shape = (-1,) + (1,) * (x.dim() - 1)
    return (x - lo.view(shape)) / span.view(shape), lo, span


@dataclass
class MinMax:
    """Min-max scaling per channel with numbers fitted once (on the training rows): scaled = (x - lo) / span."""

    lo: torch.Tensor  # (m,) float64
    span: torch.Tensor  # (m,) float64, > 0

    @classmethod
    def fit(cls, rows: torch.Tensor) -> "MinMax":
        """Fitted on ``rows`` ((n, m) values; only these rows enter it)."""
        lo = rows.min(dim=0).values
        return cls(lo=lo, span=(rows.max(dim=0).values - lo).clamp_min(1e-8))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.lo) / self.span


def time_split_sizes(n: int, test_fraction: float, val_fraction: float) -> Tuple[int, int, int]:
    """(train, val, test) rows of a series of ``n`` rows cut in time: the last ``test_fraction`` of its rows
    for testing, the last ``val_fraction`` of the rest for validation (dataset=csv ``split_by=time``)."""
    n_test = round(n * test_fraction)
    n_val = round((n - n_test) * val_fraction)
    return n - n_test - n_val, n_val, n_test


def split_groups(names: List[str], test_fraction: float, val_fraction: float, seed: int,
                 what: str = "series") -> Dict[str, List[str]]:
    """Seeded split of the names: ``{"val", "train", "test"}``, each in the seeded random order.

    Test names are the first ``test_fraction`` of a seeded permutation, validation names the next
    ``val_fraction`` of the rest. Cross-validation (``lstm_ae.data.group_folds``) cuts the
    validation and training names, in this order, into folds instead.
    """
    order = np.random.default_rng(seed).permutation(len(names))
    shuffled = [names[i] for i in order]
    n_test = max(1, round(len(names) * test_fraction))
    test, rest = shuffled[:n_test], shuffled[n_test:]
    n_val = max(1, round(len(rest) * val_fraction))
    if len(rest) - n_val < 1:
        raise ConfigError(f"{len(names)} {what} are too few to keep any for training; "
                          "lower dataset.val_fraction or dataset.test_fraction")
    return {"val": rest[:n_val], "train": rest[n_val:], "test": test}


def make_split(series: Sequence[torch.Tensor], groups: Sequence[int], seq_len: int, stride: int,
               first_steps: Optional[Sequence[int]] = None, scaler: Optional[MinMax] = None,
               step_labels: Optional[Sequence[torch.Tensor]] = None) -> Split:
    """The windows of every series, series after series, each series' windows in time order.

    ``series``: (days_i, m) float64 in data units, each with at least ``seq_len + 1`` days;
    ``groups``: the group id of each; ``first_steps``: where each series begins on its group's own
    time axis (``Split.start`` counts from there; default 0); ``scaler``: None scales each window by
    its own values (``offset``/``scale`` per window), a :class:`MinMax` scales every window with its
    fitted numbers (``offset``/``scale`` only with one channel); ``step_labels``: (days_i,) int64 per
    series, cut into ``Split.step_labels`` alongside.
    """
    wins, group, start, labels = [], [], [], []
    for i, s in enumerate(series):
        starts = torch.from_numpy(window_starts(len(s), seq_len, stride))
        wins.append(torch.stack([s[t : t + seq_len + 1] for t in starts.tolist()]))
        group.append(torch.tensor([groups[i]]).repeat_interleave(len(starts)))
        start.append(starts + (first_steps[i] if first_steps is not None else 0))
        if step_labels is not None:
            labels.append(torch.stack([step_labels[i][t : t + seq_len] for t in starts.tolist()]))
    win = torch.cat(wins)  # (N, seq_len + 1, m)
    if scaler is None:
        scaled, lo, span = scale_windows(win[:, :-1])
        nxt = (win[:, -1] - lo.unsqueeze(1)) / span.unsqueeze(1)
    else:
        scaled, nxt = scaler(win[:, :-1]), scaler(win[:, -1])
        one = win.shape[-1] == 1
        lo = scaler.lo.expand(len(win)).clone() if one else None
        span = scaler.span.expand(len(win)).clone() if one else None
    return Split(x=scaled.float(), next_value=nxt.float(), group=torch.cat(group), start=torch.cat(start),
                 offset=lo, scale=span, step_labels=torch.cat(labels) if step_labels is not None else None)


# ------------------------------------------------------------------ new data (lstm_ae.apply): no next value needed
def inference_starts(steps: int, seq_len: int, stride: int = 1) -> np.ndarray:
    """Starts of the windows of ``seq_len`` steps every ``stride`` steps over all ``steps`` steps,
    the last step included (unlike :func:`window_starts`, no window needs a step after it); with
    ``stride`` > 1 a last window ending at the last step is added, so that every step is in a window."""
    starts = np.arange(0, steps - seq_len + 1, stride)
    if len(starts) and starts[-1] != steps - seq_len:
        starts = np.append(starts, steps - seq_len)
    return starts


def cut_windows(values: torch.Tensor, starts: np.ndarray, seq_len: int) -> torch.Tensor:
    """The windows of ``values`` ((steps, m)) at ``starts``: (N, seq_len, m), a copy."""
    return values.unfold(0, seq_len, 1)[torch.as_tensor(starts)].transpose(1, 2).contiguous()


def scale_for_inference(win: torch.Tensor, scaler: Optional[MinMax] = None) -> "tuple[torch.Tensor, torch.Tensor, torch.Tensor]":
    """Windows ((N, T, m), data units, float64) scaled as a run scaled its own: each by its own min and
    max (:func:`scale_windows`, ``scaler`` None) or with the run's fitted :class:`MinMax`. Returns
    (scaled float32, lo, span) with lo and span broadcastable to (N, T, m): data = scaled * span + lo."""
    if scaler is None:
        scaled, lo, span = scale_windows(win)
        return scaled.float(), lo.view(-1, 1, 1), span.view(-1, 1, 1)
    lo, span = scaler.lo.to(win.dtype).view(1, 1, -1), scaler.span.to(win.dtype).view(1, 1, -1)
    return ((win - lo) / span).float(), lo, span
