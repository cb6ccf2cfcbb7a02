"""Tasks: what is optimised, what is measured, what is drawn. The trainer owns the loop.

:class:`Task` names everything the experiment (``lstm_ae.experiment``) and the trainer use of a
task; :class:`Reconstruct`, :class:`Classify` and :class:`Predict` conform to it, and
docs/extending.md adds a task of its own. What the data allows is read from the typed fields of
:class:`lstm_ae.data.Splits`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Protocol, runtime_checkable

import torch
import torch.nn.functional as F

from lstm_ae import forecast, plots
from lstm_ae.config import PredLoss
from lstm_ae.data import Split, Splits
from lstm_ae.model import AEOutput, Predictor


@dataclass
class TestResult:
    outputs: AEOutput  # the model's outputs on the test split: the one evaluation pass
    metrics: Dict[str, float]  # test_<name>: value, for results.json
    forecasts: Optional[Dict[str, torch.Tensor]] = None  # Predict: one-step, multi-step (price units)


@runtime_checkable
class Task(Protocol):
    """What the experiment and the trainer use of a task. A class conforms by having these members
    (it need not inherit); ``isinstance(task, Task)`` checks that they are there, not their types.

    Metric names: ``losses`` returns ``{"loss": ..., <metric>: ...}``; ``objective`` is one of
    those metrics; ``test`` returns ``test_<metric>`` for each (``test_<objective>`` at least) and
    ``baseline`` returns ``baseline_test_<metric>``. All of them go to results.json.
    """

    objective: str  # the validation metric (a key of losses()) a sweeper optimises; picks the best fold
    objective_mode: str  # "min" or "max": which way the objective improves
    needs_labels: bool  # a classifier head (model.num_classes from the data); the data must have labels
    needs_next: bool  # the one-step head; the data must have next-step targets (Split.next_value)
    folds: Optional[int]  # k-fold cross-validation over the dataset's groups, or None: one split
    figures: bool  # False: neither draw() nor the data's overview figure (metrics, checkpoints as always)

    def losses(self, out: AEOutput, batch: Split) -> Dict[str, torch.Tensor]:
        """Batch means in fp32: ``"loss"`` (minimised; its validation value picks the best epoch) and every metric."""
        ...

    def baseline(self, splits: Splits) -> Dict[str, float]:
        """``{"baseline_test_<metric>": value}``: what a trivial model scores on the test split."""
        ...

    def test(self, splits: Splits, predict: Predictor) -> TestResult:
        """Every test metric, from one ``predict`` pass over ``splits.test`` (forecasts may ``predict`` more)."""
        ...

    def draw(self, run_dir: Path, splits: Splits, test: TestResult, history: List[Dict[str, float]]) -> None:
        """The task's PNG figures into ``run_dir``, from ``test``'s outputs and ``history`` (metrics.csv's rows)."""
        ...


class Reconstruct:
    """Reconstruction only: loss = mean squared error per value (per pixel, per day...)."""

    objective, objective_mode = "mse", "min"
    needs_labels, needs_next = False, False
    loss_label = "loss (MSE)"

    def __init__(self, num_examples: int = 3, num_reconstructions: int = 3, folds: Optional[int] = None,
                 figures: bool = True) -> None:
        self.num_examples, self.num_reconstructions = num_examples, num_reconstructions
        self.folds = folds  # k-fold cross-validation over the dataset's groups (stocks), or None
        self.figures = figures  # False: no PNG (a large sweep's jobs); metrics and checkpoints as always

    def losses(self, out: AEOutput, batch: Split) -> Dict[str, torch.Tensor]:
        mse = F.mse_loss(out.reconstruction, batch.x)
        return {"loss": mse, "mse": mse}

    def baseline(self, splits: Splits) -> Dict[str, float]:
        """MSE of predicting, at every time step, the training set's mean value there."""
        mean = splits.train.x.mean(dim=0, keepdim=True)
        return {"baseline_test_mse": F.mse_loss(mean.expand_as(splits.test.x), splits.test.x).item()}

    def test(self, splits: Splits, predict: Predictor) -> TestResult:
        """The losses over the test split and, where the data has units, the MSE in those units."""
        test = splits.test
        outputs = predict(test.x)
        metrics = {f"test_{k}": v.item() for k, v in self.losses(outputs, test).items()}
        if splits.unit is not None:  # each sequence back in its own units (its own scale)
            diff = test.in_units(outputs.reconstruction) - test.in_units(test.x)
            mse = (diff**2).mean().item()
            unit = splits.unit.lower()
            metrics.update({f"test_mse_{unit}": mse, f"test_rmse_{unit}": mse**0.5})
        return TestResult(outputs, metrics)

    def draw(self, run_dir: Path, splits: Splits, test: TestResult, history: List[Dict[str, float]]) -> None:
        """The task's PNG figures, into ``run_dir`` (not called when ``figures`` is False)."""
        if splits.image_shape is not None:
            self._digit_figure(run_dir, splits, test.outputs)
        elif splits.dates is not None:
            self._stock_figure(run_dir, splits, test.outputs)
        else:
            self._sequence_figures(run_dir, splits, test.outputs)
        self._loss_figures(run_dir, history)

    def _loss_figures(self, run_dir: Path, history: List[Dict[str, float]]) -> None:
        plots.curves(run_dir / "loss.png", history, {"train_loss": "train", "val_loss": "validation"},
                     ylabel=self.loss_label, title="Training loss per epoch", log_y=True)

    def _sequence_figures(self, run_dir: Path, splits: Splits, outputs: AEOutput) -> None:
        shown = splits.train[: self.num_examples]
        titles = [f"training sequence {i + 1}" for i in range(len(shown))]
        spans = []
        if shown.highlight is not None:  # the toy data: shade its dip t = i-w .. i+w
            spans = [tuple(s) for s in shown.highlight.tolist()]
            titles = [f"{t} (i = {(a + b) // 2})" for t, (a, b) in zip(titles, spans)]
        plots.sequences(run_dir / "examples.png", shown.x[:, :, 0].numpy(), titles, "Synthetic examples", spans)
        x = splits.test.x[: self.num_reconstructions]
        recon = outputs.reconstruction[: len(x)]
        mse = ((recon - x) ** 2).mean(dim=(1, 2))
        plots.reconstructions(
            run_dir / "reconstructions.png", x[:, :, 0].numpy(), recon[:, :, 0].numpy(),
            [f"test sequence {i + 1} (MSE {m:.4f})" for i, m in enumerate(mse.tolist())],
            "Test sequences and their reconstructions",
        )

    def _stock_figure(self, run_dir: Path, splits: Splits, outputs: AEOutput) -> None:
        """A few test stocks (the last window of each), original vs reconstruction, in their units."""
        test = splits.test
        picks = _last_of_each(test.group.tolist(), self.num_reconstructions)
        shown = test[picks]
        original = shown.in_units(shown.x[:, :, 0])
        recon = shown.in_units(outputs.reconstruction[picks][:, :, 0])
        panels = []
        for j in range(len(picks)):
            name, start = splits.group_names[int(shown.group[j])], int(shown.start[j])
            dates = splits.dates[start : start + splits.seq_len]
            rmse = ((recon[j] - original[j]) ** 2).mean().sqrt().item()
            panels.append({
                "title": f"{name} (test {splits.group_kind}), RMSE {rmse:.3g}{f' {splits.unit}' if splits.unit else ''}",
                "lines": [("original", dates, original[j].numpy(), {"color": "C0"}),
                          ("reconstruction", dates, recon[j].numpy(), {"color": "C3", "ls": "--"})],
            })
        plots.dated(run_dir / "reconstructions.png", panels, splits.axis_label,
                    f"Test {splits.group_kind} windows and their reconstructions")

    def _digit_figure(self, run_dir: Path, splits: Splits, outputs: AEOutput) -> None:
        labels = splits.test.labels.tolist()  # the first test images of different digits
        picks = [labels.index(d) for d in dict.fromkeys(labels)][: self.num_reconstructions]
        x, recon = splits.test.x[picks], outputs.reconstruction[picks]
        mse = ((recon - x) ** 2).mean(dim=(1, 2))
        titles = [f"digit {labels[i]} (MSE {m:.4f})" for i, m in zip(picks, mse.tolist())]
        if outputs.logits is not None:
            titles = [f"{t}\npredicted {p}" for t, p in zip(titles, outputs.logits[picks].argmax(1).tolist())]
        shape = splits.image_shape
        plots.digits(run_dir / "reconstructions.png", x.reshape(-1, *shape).numpy(), recon.reshape(-1, *shape).numpy(),
                     titles, "Test digits and their reconstructions")


class Classify(Reconstruct):
    """Reconstruction + classification: loss = recon_weight * MSE + class_weight * cross-entropy.

    The classifier head (model.num_classes, set from the data) reads the decoder's last hidden
    state h~_T, or z with ``model.classify_from=latent``.
    """

    objective, objective_mode = "accuracy", "max"
    needs_labels = True
    loss_label = "loss (weighted MSE + cross-entropy)"

    def __init__(self, recon_weight: float = 30.0, class_weight: float = 1.0, num_reconstructions: int = 3,
                 num_examples: int = 3, figures: bool = True) -> None:
        super().__init__(num_examples, num_reconstructions, figures=figures)
        self.recon_weight, self.class_weight = recon_weight, class_weight

    def losses(self, out: AEOutput, batch: Split) -> Dict[str, torch.Tensor]:
        mse = F.mse_loss(out.reconstruction, batch.x)
        ce = F.cross_entropy(out.logits, batch.labels)
        accuracy = (out.logits.argmax(dim=1) == batch.labels).float().mean()
        return {"loss": self.recon_weight * mse + self.class_weight * ce, "mse": mse, "ce": ce, "accuracy": accuracy}

    def baseline(self, splits: Splits) -> Dict[str, float]:
        majority = torch.bincount(splits.train.labels).argmax()
        return {**super().baseline(splits),
                "baseline_test_accuracy": (splits.test.labels == majority).float().mean().item()}

    def draw(self, run_dir: Path, splits: Splits, test: TestResult, history: List[Dict[str, float]]) -> None:
        super().draw(run_dir, splits, test, history)
        plots.curves(run_dir / "accuracy.png", history, {"train_accuracy": "train", "val_accuracy": "validation"},
                     ylabel="accuracy", title="Classification accuracy per epoch")


def _last_of_each(groups: List[int], n: int) -> List[int]:
    """Indices of the last sequence of n different groups, spread over the groups in order of appearance."""
    last: Dict[int, int] = {}
    for i, g in enumerate(groups):
        last[g] = i
    order = list(last)
    step = max(1, len(order) // n)
    return [last[g] for g in order[::step][:n]]


DEFAULT_AR_ORDER = 20  # lags of the linear AR baseline unless task.ar_order says


def _next_values(split: Split) -> torch.Tensor:
    """The one-step targets x_2..x_{T+1} of each window: its own days shifted by one, then the next value."""
    return torch.cat([split.x[:, 1:], split.next_value.view(len(split), 1, -1)], dim=1)


class Predict(Reconstruct):
    """Reconstruction + one-step-ahead prediction (assignment 3.3.3).

    loss = recon_weight * MSE(x~, x) + pred_weight * MSE(y~_t, x_{t+1}), y~_t from the encoder's
    h_t, so it depends on x_1..x_t only; over every t (``pred_loss="all"``) or only the last
    (``"last"``: the one target outside the window's min-max scaling, as in a forecast; then
    ``next_mse`` is the validation objective). Metrics: ``mse``, ``pred_mse`` (every position) and
    ``next_mse`` (the last position, whose target -- the day after the window -- never enters the
    window's scaling). After training: one-step and multi-step forecasts of the second half of
    each test stock's blocks of 2 x seq_len days, against persistence (see lstm_ae/forecast.py).
    """

    objective, objective_mode = "pred_mse", "min"
    needs_next = True

    def __init__(self, recon_weight: float = 1.0, pred_weight: float = 1.0, num_reconstructions: int = 3,
                 num_forecasts: int = 3, num_examples: int = 3, folds: Optional[int] = None, ar_order: Optional[int] = None,
                 pred_loss: PredLoss | str = PredLoss.all, figures: bool = True) -> None:
        super().__init__(num_examples, num_reconstructions, folds, figures)
        self.recon_weight, self.pred_weight, self.num_forecasts = recon_weight, pred_weight, num_forecasts
        self.ar_order = ar_order
        self.pred_loss = PredLoss(getattr(pred_loss, "value", pred_loss))
        if self.pred_loss is PredLoss.last:  # the validation objective is what the loss trains
            self.objective = "next_mse"

    def losses(self, out: AEOutput, batch: Split) -> Dict[str, torch.Tensor]:
        mse = F.mse_loss(out.reconstruction, batch.x)
        target = _next_values(batch)
        pred_mse = F.mse_loss(out.prediction, target)
        next_mse = F.mse_loss(out.prediction[:, -1], target[:, -1])
        loss = self.recon_weight * mse + self.pred_weight * (pred_mse if self.pred_loss is PredLoss.all else next_mse)
        return {"loss": loss, "mse": mse, "pred_mse": pred_mse, "next_mse": next_mse}

    def baseline(self, splits: Splits) -> Dict[str, float]:
        """Persistence (x~_{t+1} = x_t) and a linear AR fitted on the training windows, on the test
        windows (``baseline_test_[ar_]next_mse``) and on the forecast blocks."""
        x, target = splits.test.x, _next_values(splits.test)
        ar = self.linear_ar(splits)
        ar_next = ar.predict_scaled(splits.test.x)
        results = {
            **super().baseline(splits),
            "baseline_test_pred_mse": F.mse_loss(x, target).item(),
            "baseline_test_next_mse": F.mse_loss(x[:, -1], target[:, -1]).item(),
            "baseline_test_ar_next_mse": F.mse_loss(ar_next, target[:, -1].double()).item(),
        }
        if splits.series is not None:
            blocks, context, _ = forecast_blocks(splits)
            errors = forecast.errors(blocks, context, forecast.persistence(blocks, context))
            results.update({f"baseline_test_{name}": value for name, value in errors.items()})
            ar_forecasts = {"onestep": forecast.one_step(ar, blocks, context),
                            "multistep": forecast.multi_step(ar, blocks, context)}
            results.update({f"baseline_test_ar_{name}": value
                            for name, value in forecast.errors(blocks, context, ar_forecasts).items()})
        return results

    def linear_ar(self, splits: Splits) -> forecast.LinearAR:
        """The linear baseline: AR(``ar_order``; None: min(20, window)) fitted on the training windows only,
        scaled as the model sees them."""
        order = self.ar_order if self.ar_order is not None else min(DEFAULT_AR_ORDER, splits.seq_len)
        return forecast.LinearAR.fit(splits.train.x, splits.train.next_value, order)

    def test(self, splits: Splits, predict: Predictor) -> TestResult:
        result = super().test(splits, predict)
        if splits.series is None:
            return result
        blocks, context, _ = forecast_blocks(splits)
        model = forecast.model_next_value(predict)
        result.forecasts = {"onestep": forecast.one_step(model, blocks, context),
                            "multistep": forecast.multi_step(model, blocks, context)}
        for name, value in forecast.errors(blocks, context, result.forecasts).items():
            result.metrics[f"test_{name}"] = value
        result.metrics.update(forecast_blocks=len(blocks), forecast_context_days=context)
        return result

    def _loss_figures(self, run_dir: Path, history: List[Dict[str, float]]) -> None:
        plots.curves(
            run_dir / "training_loss.png", history,
            {"train_loss": "total (train)", "train_mse": "reconstruction MSE (train)",
             "train_pred_mse": "prediction MSE (train)"},
            ylabel="loss (scaled units)", title="Training loss per epoch", log_y=True,
        )
        plots.curves(
            run_dir / "prediction_loss.png", history,
            {"train_pred_mse": "train", "val_pred_mse": "validation", "val_next_mse": "validation, day after the window"},
            ylabel="prediction MSE (scaled units)", title="One-step prediction loss per epoch", log_y=True,
        )

    def draw(self, run_dir: Path, splits: Splits, test: TestResult, history: List[Dict[str, float]]) -> None:
        super().draw(run_dir, splits, test, history)
        if test.forecasts is None:
            return
        blocks, context, index = forecast_blocks(splits)
        panels = []
        for i in _last_of_each([name for name, _ in index], self.num_forecasts):
            name, start = index[i]
            dates = splits.dates[start : start + 2 * context]
            future = dates[context:]
            panels.append({
                "title": f"{name} (test {splits.group_kind}): the second half forecast from the first",
                "lines": [
                    ("truth", dates, blocks[i, :, 0].numpy(), {"color": "black", "lw": 1.2}),
                    ("one-step (true days in)", future, test.forecasts["onestep"][i].numpy(), {"color": "C0"}),
                    ("multi-step (forecasts fed back)", future, test.forecasts["multistep"][i].numpy(),
                     {"color": "C3", "ls": "--"}),
                    ("persistence (last seen value)", future, blocks[i, context - 1, 0].expand(len(future)).numpy(),
                     {"color": "grey", "ls": ":"}),
                ],
                "mark": dates[context],
                "mark_label": "first forecast day",
            })
        plots.dated(run_dir / "multistep.png", panels, splits.axis_label,
                    f"One-step vs multi-step prediction on test {splits.group_kind} series")


def forecast_blocks(splits: Splits) -> "tuple[torch.Tensor, int, List[tuple]]":
    """Blocks of 2 x context days of every test series: (blocks (N, 2C, m) in data units, C, [(name, start day)])."""
    series, days = splits.series, splits.series.shape[1]
    context = min(splits.seq_len, days // 2)
    starts = list(range(0, days - 2 * context + 1, 2 * context))
    blocks = torch.cat([series[:, s : s + 2 * context] for s in starts])
    index = [(name, s) for s in starts for name in splits.series_names]
    return blocks, context, index
