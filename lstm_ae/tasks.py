"""Tasks: what is optimised, what is measured, what is drawn. The trainer owns the loop.

A task provides
- ``losses(output, batch) -> {"loss": total, <metric>: value, ...}``: batch means in fp32;
  the trainer averages them over a split and logs each as ``train_<metric>`` / ``val_<metric>``;
- ``objective`` and ``objective_mode``: the validation metric a sweeper optimises;
- ``baseline(splits) -> {name: value}``: what a trivial model scores on the test split;
- ``evaluate(model, splits, device) -> {name: value}``: test measurements beyond the losses
  (errors in price units, forecasts);
- ``figures(run_dir, model, splits, fit, device)``: the PNGs a report needs.
Flags tell the experiment what to build: ``needs_labels`` (a classifier head and labels),
``needs_next`` (a one-step head), ``trains`` (False: the task only draws the data).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F

from lstm_ae import forecast, plots
from lstm_ae.data import Split, Splits
from lstm_ae.errors import DataError
from lstm_ae.model import AEOutput


class Reconstruct:
    """Reconstruction only: loss = mean squared error per value (per pixel, per day...)."""

    objective, objective_mode = "mse", "min"
    needs_labels, needs_next, trains = False, False, True

    def __init__(self, num_examples: int = 3, num_reconstructions: int = 2, folds: Optional[int] = None) -> None:
        self.num_examples, self.num_reconstructions = num_examples, num_reconstructions
        self.folds = folds  # k-fold cross-validation over the dataset's groups (stocks), or None

    def losses(self, out: AEOutput, batch: Split) -> Dict[str, torch.Tensor]:
        mse = F.mse_loss(out.reconstruction, batch.x)
        return {"loss": mse, "mse": mse}

    def baseline(self, splits: Splits) -> Dict[str, float]:
        """MSE of predicting, at every time step, the training set's mean value there."""
        mean = splits.train.x.mean(dim=0, keepdim=True)
        return {"baseline_test_mse": F.mse_loss(mean.expand_as(splits.test.x), splits.test.x).item()}

    @torch.no_grad()
    def evaluate(self, model: torch.nn.Module, splits: Splits, device) -> Dict[str, float]:
        """Stock windows: the test MSE in price units (each window scaled back with its lo, span)."""
        if "test_span" not in splits.meta:
            return {}
        model.eval()
        recon = _predict(model, splits.test.x, device, lambda out: out.reconstruction)[:, :, 0]
        span = splits.meta["test_span"].unsqueeze(1)
        mse_usd = (((recon.double() - splits.test.x[:, :, 0].double()) * span) ** 2).mean().item()
        return {"test_mse_usd": mse_usd, "test_rmse_usd": mse_usd**0.5}

    @torch.no_grad()
    def figures(self, run_dir: Path, model: torch.nn.Module, splits: Splits, fit, device) -> None:
        model.eval()
        image_shape = splits.meta.get("image_shape")
        if image_shape:
            self._digit_figure(run_dir, model, splits, device, image_shape)
        elif "test_windows" in splits.meta:
            self._stock_figure(run_dir, model, splits, device)
        else:
            self._sequence_figures(run_dir, model, splits, device)
        self._loss_figures(run_dir, fit)

    def _loss_figures(self, run_dir: Path, fit) -> None:
        plots.curves(
            run_dir / "loss.png",
            fit.history,
            {"train_loss": "train", "val_loss": "validation"},
            ylabel="loss (MSE)" if type(self) is Reconstruct else "loss",
            title="Training loss per epoch",
            log_y=True,
        )

    def _sequence_figures(self, run_dir: Path, model, splits: Splits, device) -> None:
        examples = splits.train.x[: self.num_examples, :, 0].numpy()
        titles = [f"training sequence {i + 1}" for i in range(len(examples))]
        spans = []
        if "dip_centres" in splits.meta:  # the toy data: shade t = i-w .. i+w
            w = splits.meta["dip_half_width"]
            centres = splits.meta["dip_centres"][0][: len(examples)].tolist()
            spans = [(c - w, c + w) for c in centres]
            titles = [f"{t} (i = {c})" for t, c in zip(titles, centres)]
        plots.sequences(run_dir / "examples.png", examples, titles, "Synthetic examples", spans)
        x = splits.test.x[: self.num_reconstructions]
        recon = model(x.to(device)).reconstruction.float().cpu()
        mse = ((recon - x) ** 2).mean(dim=(1, 2))
        plots.reconstructions(
            run_dir / "reconstructions.png",
            x[:, :, 0].numpy(),
            recon[:, :, 0].numpy(),
            [f"test sequence {i + 1} (MSE {m:.4f})" for i, m in enumerate(mse.tolist())],
            "Test sequences and their reconstructions",
        )

    def _stock_figure(self, run_dir: Path, model, splits: Splits, device) -> None:
        """Three test stocks (the last window of each), original vs reconstruction, in USD."""
        meta = splits.meta
        picks = _one_window_per_stock(meta["test_windows"], self.num_reconstructions)
        recon = _predict(model, splits.test.x[picks], device, lambda out: out.reconstruction)[:, :, 0]
        lo, span = meta["test_lo"][picks].unsqueeze(1), meta["test_span"][picks].unsqueeze(1)
        original = splits.test.x[picks, :, 0].double() * span + lo
        recon = recon.double() * span + lo
        panels = []
        for j, i in enumerate(picks):
            symbol, start = meta["test_windows"][i]
            dates = meta["dates"][start : start + splits.seq_len]
            rmse = ((recon[j] - original[j]) ** 2).mean().sqrt().item()
            panels.append({
                "title": f"{symbol} (test stock), RMSE {rmse:.2f} USD",
                "lines": [("original", dates, original[j].numpy(), {"color": "C0"}),
                          ("reconstruction", dates, recon[j].numpy(), {"color": "C3", "ls": "--"})],
            })
        plots.dated(run_dir / "reconstructions.png", panels, f"daily {meta['price']} (USD)",
                    "Test stocks and their reconstructions")

    def _digit_figure(self, run_dir: Path, model, splits: Splits, device, image_shape) -> None:
        # the first test images of num_reconstructions different digits
        labels = splits.test.y.tolist()
        picks, seen = [], set()
        for i, label in enumerate(labels):
            if label not in seen:
                picks.append(i)
                seen.add(label)
            if len(picks) == self.num_reconstructions:
                break
        x = splits.test.x[picks]
        out = model(x.to(device))
        recon = out.reconstruction.float().cpu()
        mse = ((recon - x) ** 2).mean(dim=(1, 2))
        titles = [f"digit {labels[i]} (MSE {m:.4f})" for i, m in zip(picks, mse.tolist())]
        if out.logits is not None:
            pred = out.logits.argmax(1).tolist()
            titles = [f"{t}\npredicted {p}" for t, p in zip(titles, pred)]
        plots.digits(
            run_dir / "reconstructions.png",
            x.reshape(-1, *image_shape).numpy(),
            recon.reshape(-1, *image_shape).numpy(),
            titles,
            "Test digits and their reconstructions",
        )


class Classify(Reconstruct):
    """Reconstruction + classification: loss = recon_weight * MSE + class_weight * cross-entropy.

    The classifier head (model.num_classes, set from the data) reads the decoder's last hidden
    state h~_T, or z with ``model.classify_from=latent``.
    """

    objective, objective_mode = "accuracy", "max"
    needs_labels = True

    def __init__(self, recon_weight: float = 1.0, class_weight: float = 1.0, num_reconstructions: int = 3,
                 num_examples: int = 3) -> None:
        super().__init__(num_examples, num_reconstructions)
        self.recon_weight, self.class_weight = recon_weight, class_weight

    def losses(self, out: AEOutput, batch: Split) -> Dict[str, torch.Tensor]:
        mse = F.mse_loss(out.reconstruction, batch.x)
        ce = F.cross_entropy(out.logits, batch.y)
        accuracy = (out.logits.argmax(dim=1) == batch.y).float().mean()
        return {"loss": self.recon_weight * mse + self.class_weight * ce, "mse": mse, "ce": ce, "accuracy": accuracy}

    def baseline(self, splits: Splits) -> Dict[str, float]:
        majority = torch.bincount(splits.train.y).argmax()
        return {**super().baseline(splits), "baseline_test_accuracy": (splits.test.y == majority).float().mean().item()}

    @torch.no_grad()
    def figures(self, run_dir: Path, model: torch.nn.Module, splits: Splits, fit, device) -> None:
        super().figures(run_dir, model, splits, fit, device)
        plots.curves(
            run_dir / "accuracy.png",
            fit.history,
            {"train_accuracy": "train", "val_accuracy": "validation"},
            ylabel="accuracy",
            title="Classification accuracy per epoch",
        )


def _predict(model: torch.nn.Module, x: torch.Tensor, device, pick) -> torch.Tensor:
    """``pick(model(x))`` in fp32 on the CPU, in batches."""
    return torch.cat([pick(model(chunk.to(device))).float().cpu() for chunk in x.split(2048)])


def _one_window_per_stock(windows: Sequence[tuple], n: int) -> List[int]:
    """Indices of the last window of n different stocks, spread over the list."""
    last: Dict[str, int] = {}
    for i, (symbol, _) in enumerate(windows):
        last[symbol] = i
    symbols = list(last)
    step = max(1, len(symbols) // n)
    return [last[s] for s in symbols[::step][:n]]


def _next_values(split: Split) -> torch.Tensor:
    """The one-step targets x_2..x_{T+1} of each window: its own days shifted by one, then ``y``."""
    return torch.cat([split.x[:, 1:], split.y.view(len(split.y), 1, -1)], dim=1)


class Predict(Reconstruct):
    """Reconstruction + one-step-ahead prediction (assignment 3.3.3).

    loss = recon_weight * MSE(x~, x) + pred_weight * MSE(y~_t, x_{t+1}), y~_t from the encoder's
    h_t, so it depends on x_1..x_t only. Metrics: ``mse``, ``pred_mse`` (every position) and
    ``next_mse`` (the last position, whose target -- the day after the window -- never enters the
    window's scaling). After training: one-step and multi-step forecasts of the second half of
    each test stock's blocks of 2 x seq_len days, against persistence (see lstm_ae/forecast.py).
    """

    objective, objective_mode = "pred_mse", "min"
    needs_next = True

    def __init__(self, recon_weight: float = 1.0, pred_weight: float = 1.0, num_reconstructions: int = 3,
                 num_forecasts: int = 3, num_examples: int = 3, folds: Optional[int] = None) -> None:
        super().__init__(num_examples, num_reconstructions, folds)
        self.recon_weight, self.pred_weight, self.num_forecasts = recon_weight, pred_weight, num_forecasts

    def losses(self, out: AEOutput, batch: Split) -> Dict[str, torch.Tensor]:
        mse = F.mse_loss(out.reconstruction, batch.x)
        target = _next_values(batch)
        pred_mse = F.mse_loss(out.prediction, target)
        next_mse = F.mse_loss(out.prediction[:, -1], target[:, -1])
        loss = self.recon_weight * mse + self.pred_weight * pred_mse
        return {"loss": loss, "mse": mse, "pred_mse": pred_mse, "next_mse": next_mse}

    def baseline(self, splits: Splits) -> Dict[str, float]:
        """Persistence on the test windows: x~_{t+1} = x_t, scaled like the model's targets."""
        x, target = splits.test.x, _next_values(splits.test)
        return {
            **super().baseline(splits),
            "baseline_test_pred_mse": F.mse_loss(x, target).item(),
            "baseline_test_next_mse": F.mse_loss(x[:, -1], target[:, -1]).item(),
        }

    def forecast_series(self, splits: Splits) -> "tuple[torch.Tensor, int, List[tuple]]":
        """Blocks of 2 x context days of every test stock: (blocks (N, 2C) USD, C, [(symbol, start)])."""
        series, days = splits.meta["test_series"], splits.meta["test_series"].shape[1]
        context = min(splits.seq_len, days // 2)
        starts = list(range(0, days - 2 * context + 1, 2 * context))
        blocks = torch.cat([series[:, s : s + 2 * context] for s in starts])
        symbols = splits.meta["symbols"]["test"]
        index = [(sym, s) for s in starts for sym in symbols]
        return blocks, context, index

    @torch.no_grad()
    def evaluate(self, model: torch.nn.Module, splits: Splits, device) -> Dict[str, float]:
        results = super().evaluate(model, splits, device)
        if "test_series" not in splits.meta:
            return results
        blocks, context, _ = self.forecast_series(splits)
        self._forecasts = forecasts = {
            "onestep": forecast.one_step(model, blocks, context),
            "multistep": forecast.multi_step(model, blocks, context),
        }
        for name, value in forecast.errors(blocks, context, forecasts).items():
            results[f"test_{name}"] = value
        for name, value in forecast.errors(blocks, context, forecast.persistence(blocks, context)).items():
            results[f"baseline_test_{name}"] = value
        results["forecast_blocks"], results["forecast_context_days"] = len(blocks), context
        return results

    def _loss_figures(self, run_dir: Path, fit) -> None:
        plots.curves(
            run_dir / "training_loss.png",
            fit.history,
            {"train_loss": "total (train)", "train_mse": "reconstruction MSE (train)",
             "train_pred_mse": "prediction MSE (train)"},
            ylabel="loss (scaled units)",
            title="Training loss per epoch",
            log_y=True,
        )
        plots.curves(
            run_dir / "prediction_loss.png",
            fit.history,
            {"train_pred_mse": "train", "val_pred_mse": "validation",
             "val_next_mse": "validation, day after the window"},
            ylabel="prediction MSE (scaled units)",
            title="One-step prediction loss per epoch",
            log_y=True,
        )

    @torch.no_grad()
    def figures(self, run_dir: Path, model: torch.nn.Module, splits: Splits, fit, device) -> None:
        super().figures(run_dir, model, splits, fit, device)
        if "test_series" not in splits.meta:
            return
        blocks, context, index = self.forecast_series(splits)
        if not hasattr(self, "_forecasts"):
            self.evaluate(model, splits, device)
        meta, panels = splits.meta, []
        picks = _one_window_per_stock(index, self.num_forecasts)
        for i in picks:
            symbol, start = index[i]
            dates = meta["dates"][start : start + 2 * context]
            future = dates[context:]
            panels.append({
                "title": f"{symbol} (test stock): the second half forecast from the first",
                "lines": [
                    ("truth", dates, blocks[i].numpy(), {"color": "black", "lw": 1.2}),
                    ("one-step (true days in)", future, self._forecasts["onestep"][i].numpy(), {"color": "C0"}),
                    ("multi-step (forecasts fed back)", future, self._forecasts["multistep"][i].numpy(),
                     {"color": "C3", "ls": "--"}),
                    ("persistence (last seen price)", future, blocks[i, context - 1].expand(len(future)).numpy(),
                     {"color": "grey", "ls": ":"}),
                ],
                "mark": dates[context],
                "mark_label": "first forecast day",
            })
        plots.dated(run_dir / "multistep.png", panels, f"daily {meta['price']} (USD)",
                    "One-step vs multi-step prediction on test stocks")


class PlotStocks:
    """No training: draw the daily price of a few stocks against the date (assignment 3.3.1)."""

    objective, objective_mode = None, "min"
    needs_labels, needs_next, trains = False, False, False

    def __init__(self, symbols: Sequence[str] = ("AMZN", "GOOGL"), folds: Optional[int] = None) -> None:
        self.symbols = list(symbols)
        self.folds = None  # nothing is trained, so nothing is cross-validated

    def run(self, run_dir: Path, splits: Splits) -> Dict[str, Any]:
        table, price = splits.meta["table"], splits.meta["price"]
        unknown = [s for s in self.symbols if s not in table.columns]
        if unknown:
            raise DataError(
                f"symbol(s) {', '.join(unknown)} not in the price file (it has {len(table.columns)} symbols, "
                f"e.g. {', '.join(list(table.columns[:5]))}); set task.symbols=[...]"
            )
        lines = [(s, table.index, table[s].to_numpy(), {"color": f"C{i}"}) for i, s in enumerate(self.symbols)]
        path = plots.dated(
            run_dir / f"daily_{price}.png",
            [{"title": f"Daily {price} price, {table.index[0].date()} to {table.index[-1].date()}", "lines": lines}],
            f"daily {price} (USD)",
            f"{' and '.join(self.symbols)}",
        )
        return {"figure": path.name, "symbols": self.symbols,
                "days": {s: int(table[s].notna().sum()) for s in self.symbols}}
