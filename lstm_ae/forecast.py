"""One-step and multi-step forecasts in price units, leak-free by construction.

Every forecast of day t+1 is made from a window of the ``context`` days up to day t, min-max
scaled with that window's own min and max (the scheme the model was trained with), read by the
model's one-step head at the window's last position and scaled back with the same numbers.
A day may hold several prices (channel 0 is the one forecast and scored, e.g. the daily high;
``dataset.extra_prices`` adds e.g. the open, low and close): forecasters map windows (N, C, m) to
the next day's m prices, and multi step feeds all m back.

- one step: the windows hold true prices only;
- multi step: the first window is the first half of the sequence; each forecast is appended and
  the window shifted by one, so forecasts are fed back and the truth of the second half is never
  read;
- persistence, the baseline: tomorrow = today (one step); the last seen price held flat (multi step);
- a linear autoregression (:class:`LinearAR`), the second baseline: tomorrow's scaled prices as a
  least-squares linear function of the window's last ``order`` days of scaled prices (the same
  inputs as the model), fitted on the training windows only, forecasting one step and multi step
  exactly as the model does.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict

import torch

from lstm_ae.data.sp500 import scale_windows
from lstm_ae.model import Predictor


def next_value(predict: Predictor, windows: torch.Tensor) -> torch.Tensor:
    """The model's forecast of the day after each window; windows: (N, C, m) prices -> (N, m) prices."""
    scaled, lo, span = scale_windows(windows.double())
    pred = predict(scaled.float()).prediction[:, -1]
    return (pred.double() * span.unsqueeze(1) + lo.unsqueeze(1)).to(windows.dtype)


NextValue = Callable[[torch.Tensor], torch.Tensor]  # (N, C, m) price windows -> (N, m) the next day's prices


@dataclass
class LinearAR:
    """x_{t+1} = bias + W (x_{t-order+1} .. x_t), every channel of every lag, all in the window's own
    min-max scale (with one channel: an AR(order); with several: a vector AR on the same inputs as
    the model).

    Fitted by least squares on training windows (already scaled, with their next values in the
    same scale): the data and scaling the model learns from, so the comparison is like for like.
    """

    weights: torch.Tensor  # (order * m, m): oldest day first, the channels of a day together
    bias: torch.Tensor  # (m,)

    @property
    def order(self) -> int:
        return self.weights.shape[0] // self.weights.shape[1]

    @classmethod
    def fit(cls, windows: torch.Tensor, targets: torch.Tensor, order: int) -> "LinearAR":
        """windows: (N, C, m) scaled values; targets: (N, m) the day after each window, same scale."""
        if not 1 <= order <= windows.shape[1]:
            raise ValueError(f"order {order} must be in 1 .. {windows.shape[1]} (the window length)")
        lags = windows[:, -order:].reshape(len(windows), -1).double()
        design = torch.cat([lags, torch.ones(len(lags), 1, dtype=lags.dtype)], dim=1)
        solution = torch.linalg.lstsq(design, targets.double(), driver="gelsd").solution
        return cls(weights=solution[:-1], bias=solution[-1])

    def predict_scaled(self, scaled: torch.Tensor) -> torch.Tensor:
        """The next value of each already scaled window, in the same scale: (N, C, m) -> (N, m)."""
        return scaled[:, -self.order :].reshape(len(scaled), -1).double() @ self.weights + self.bias

    def __call__(self, windows: torch.Tensor) -> torch.Tensor:
        """The forecast of the day after each window: (N, C, m) prices -> (N, m) prices."""
        scaled, lo, span = scale_windows(windows.double())
        return (self.predict_scaled(scaled) * span.unsqueeze(1) + lo.unsqueeze(1)).to(windows.dtype)


def model_next_value(predict: Predictor) -> NextValue:
    """The model's one-step forecaster as a function of price windows."""
    return lambda windows: next_value(predict, windows)


def one_step(forecaster: NextValue, series: torch.Tensor, context: int) -> torch.Tensor:
    """Forecasts of channel 0 on days context+1 .. T of each series (N, T, m), each from the true days before it."""
    n, days, m = series.shape
    windows = series.unfold(1, context, 1)[:, : days - context]  # (N, T-C, m, C): window k ends on day C+k-1
    return forecaster(windows.transpose(2, 3).reshape(-1, context, m))[:, 0].reshape(n, days - context)


def multi_step(forecaster: NextValue, series: torch.Tensor, context: int) -> torch.Tensor:
    """Forecasts of channel 0 on days context+1 .. T of each series (N, T, m), each made from the window
    holding the forecasts (of every channel) before it."""
    window = series[:, :context].clone()
    preds = []
    for _ in range(series.shape[1] - context):
        nxt = forecaster(window)
        preds.append(nxt[:, 0])
        window = torch.cat([window[:, 1:], nxt.unsqueeze(1)], dim=1)
    return torch.stack(preds, dim=1)


def persistence(series: torch.Tensor, context: int) -> Dict[str, torch.Tensor]:
    """The baseline's one-step (yesterday's price) and multi-step (last seen price) forecasts of channel 0."""
    horizon = series.shape[1] - context
    return {
        "onestep": series[:, context - 1 : -1, 0],
        "multistep": series[:, context - 1 : context, 0].expand(-1, horizon),
    }


def errors(series: torch.Tensor, context: int, forecasts: Dict[str, torch.Tensor]) -> Dict[str, float]:
    """MSE of each forecast (of channel 0) over the second halves of the series (N, T, m), scaled (by
    each series' context window) and in price units.

    Keys: ``<name>_mse`` (scaled: the same units the model is trained in) and ``<name>_mse_usd``.
    """
    truth = series[:, context:, 0]
    _, _, span = scale_windows(series[:, :context].double())
    results = {}
    for name, pred in forecasts.items():
        diff = (pred.double() - truth.double())
        results[f"{name}_mse"] = float(((diff / span.unsqueeze(1)) ** 2).mean())
        results[f"{name}_mse_usd"] = float((diff**2).mean())
    return results
