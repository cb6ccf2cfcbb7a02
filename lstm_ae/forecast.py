"""One-step and multi-step forecasts in price units, leak-free by construction.

Every forecast of day t+1 is made from a window of the ``context`` days up to day t, min-max
scaled with that window's own min and max (the scheme the model was trained with), read by the
model's one-step head at the window's last position and scaled back with the same numbers.

- one step: the windows hold true prices only;
- multi step: the first window is the first half of the sequence; each forecast is appended and
  the window shifted by one, so forecasts are fed back and the truth of the second half is never
  read;
- persistence, the baseline: tomorrow = today (one step); the last seen price held flat (multi step).
"""
from __future__ import annotations

from typing import Dict

import torch

from lstm_ae.data.sp500 import scale_windows
from lstm_ae.model import Predictor


def next_value(predict: Predictor, windows: torch.Tensor) -> torch.Tensor:
    """The model's forecast of the day after each window; windows: (N, C) prices -> (N,) prices."""
    scaled, lo, span = scale_windows(windows.double())
    pred = predict(scaled.float().unsqueeze(-1)).prediction[:, -1, 0]
    return (pred.double() * span.squeeze(1) + lo.squeeze(1)).to(windows.dtype)


def one_step(predict: Predictor, series: torch.Tensor, context: int) -> torch.Tensor:
    """Forecasts of days context+1 .. T of each series (N, T), each from the true days before it."""
    n, days = series.shape
    windows = series.unfold(1, context, 1)[:, : days - context]  # (N, T-C, C): window k ends on day C+k-1
    return next_value(predict, windows.reshape(-1, context)).reshape(n, days - context)


def multi_step(predict: Predictor, series: torch.Tensor, context: int) -> torch.Tensor:
    """Forecasts of days context+1 .. T, each made from the window holding the forecasts before it."""
    window = series[:, :context].clone()
    preds = []
    for _ in range(series.shape[1] - context):
        nxt = next_value(predict, window)
        preds.append(nxt)
        window = torch.cat([window[:, 1:], nxt.unsqueeze(1)], dim=1)
    return torch.stack(preds, dim=1)


def persistence(series: torch.Tensor, context: int) -> Dict[str, torch.Tensor]:
    """The baseline's one-step (yesterday's price) and multi-step (last seen price) forecasts."""
    horizon = series.shape[1] - context
    return {
        "onestep": series[:, context - 1 : -1],
        "multistep": series[:, context - 1 : context].expand(-1, horizon),
    }


def errors(series: torch.Tensor, context: int, forecasts: Dict[str, torch.Tensor]) -> Dict[str, float]:
    """MSE of each forecast over the second halves, scaled (by each series' context window) and in price units.

    Keys: ``<name>_mse`` (scaled: the same units the model is trained in) and ``<name>_mse_usd``.
    """
    truth = series[:, context:]
    _, _, span = scale_windows(series[:, :context].double())
    results = {}
    for name, pred in forecasts.items():
        diff = (pred.double() - truth.double())
        results[f"{name}_mse"] = float(((diff / span) ** 2).mean())
        results[f"{name}_mse_usd"] = float((diff**2).mean())
    return results
