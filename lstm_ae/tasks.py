"""Tasks: what is optimised, what is measured, what is drawn. The trainer owns the loop.

A task provides
- ``losses(output, batch) -> {"loss": total, <metric>: value, ...}``: batch means in fp32;
  the trainer averages them over a split and logs each as ``train_<metric>`` / ``val_<metric>``;
- ``objective`` and ``objective_mode``: the validation metric a sweeper optimises;
- ``baseline(splits) -> {name: value}``: what a trivial model scores on the test split;
- ``figures(run_dir, model, splits, fit, device)``: the PNGs a report needs.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict

import torch
import torch.nn.functional as F

from lstm_ae import plots
from lstm_ae.data import Split, Splits
from lstm_ae.model import AEOutput


class Reconstruct:
    """Reconstruction only: loss = mean squared error per value (per pixel, per day...)."""

    objective, objective_mode = "mse", "min"
    needs_labels = False

    def __init__(self, num_examples: int = 3, num_reconstructions: int = 2) -> None:
        self.num_examples, self.num_reconstructions = num_examples, num_reconstructions

    def losses(self, out: AEOutput, batch: Split) -> Dict[str, torch.Tensor]:
        mse = F.mse_loss(out.reconstruction, batch.x)
        return {"loss": mse, "mse": mse}

    def baseline(self, splits: Splits) -> Dict[str, float]:
        """MSE of predicting, at every time step, the training set's mean value there."""
        mean = splits.train.x.mean(dim=0, keepdim=True)
        return {"baseline_test_mse": F.mse_loss(mean.expand_as(splits.test.x), splits.test.x).item()}

    @torch.no_grad()
    def figures(self, run_dir: Path, model: torch.nn.Module, splits: Splits, fit, device) -> None:
        model.eval()
        image_shape = splits.meta.get("image_shape")
        if image_shape:
            self._digit_figure(run_dir, model, splits, device, image_shape)
        else:
            self._sequence_figures(run_dir, model, splits, device)
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
