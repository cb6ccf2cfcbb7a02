"""Tasks: what is optimised, what is measured, what is drawn. The trainer owns the loop.

A task provides
- ``losses(output, batch) -> {"loss": total, <part>: value, ...}``: batch means, fp32;
- ``objective``: the validation metric a sweeper minimises (a key of ``losses``, e.g. ``mse``);
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
    """Reconstruction: loss = mean squared error per value (per pixel, per day...)."""

    objective = "mse"

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
        examples = splits.train.x[: self.num_examples, :, 0].numpy()
        plots.sequences(
            run_dir / "examples.png",
            examples,
            [f"training sequence {i + 1}" for i in range(len(examples))],
            "Synthetic examples",
        )
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
        plots.curves(
            run_dir / "loss.png",
            fit.history,
            {"train_loss": "train", "val_loss": "validation"},
            ylabel="MSE loss",
            title="Reconstruction loss per epoch",
            log_y=True,
        )
