"""A trained run: its config and model rebuilt from its folder.

:func:`load_run` reads a run folder (``.hydra/config.yaml``, ``checkpoints/best.pt``,
``results.json``) and rebuilds the model the run trained, with ``best.pt``'s weights, on the CPU
in eval mode. It never trains. ``python -m lstm_ae.export`` and ``python -m lstm_ae.apply`` start here.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Dict

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from lstm_ae import run_folder as rf
from lstm_ae.errors import UserError

# AEOutput field -> the name of that output (exported graphs' outputs, :class:`Named`'s keys)
OUTPUTS = {"reconstruction": "reconstruction", "latent": "z", "logits": "logits", "prediction": "prediction"}


class RunError(UserError):
    """A run folder whose model cannot be rebuilt (no checkpoint, no config, a checkpoint not of that config)."""


class Named(nn.Module):
    """The model with its outputs as a dict of named tensors (the heads the run has), what both
    exporters turn into named graph outputs."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        out = self.model(x)
        return {name: value for field, name in OUTPUTS.items() if (value := getattr(out, field)) is not None}


@dataclass
class SavedRun:
    folder: Path
    cfg: DictConfig
    results: Dict[str, Any]
    model: Named  # on the CPU, in eval mode, best.pt's weights; model.model: the LSTMAutoencoder (AEOutput)
    seq_len: int
    input_size: int
    epoch: Any  # best.pt's epoch


def load_run(folder: Path) -> SavedRun:
    """The run's model rebuilt from its saved config (``experiment.build_model``) with ``best.pt``'s
    weights; the heads (classes, one-step head) read from the checkpoint, sizes from ``results.json``."""
    folder = Path(folder)
    config, best = folder / rf.HYDRA / "config.yaml", folder / rf.BEST
    for path, why in ((config, "its config"), (best, "the trained model")):
        if not path.is_file():
            raise RunError(f"{folder} has no {path.relative_to(folder)} ({why}): give a run folder of a "
                           "run that trained (python -m lstm_ae.runs lists them)")
    import lstm_ae.config  # noqa: F401  (the config's resolvers)
    from lstm_ae.experiment import build_model
    from lstm_ae.export import preprocessing  # (export imports this module: imported here, when called)

    cfg = OmegaConf.load(config)
    try:
        saved = torch.load(best, map_location="cpu", weights_only=True)
        state = saved["model"]
    except Exception as err:  # noqa: BLE001 - a truncated or foreign file
        raise RunError(f"{best} is not a readable checkpoint ({type(err).__name__}: {err}); "
                       "use another run, or train this one again") from None
    results = rf.read_json(folder / rf.RESULTS) or {}
    input_size = int(state["output.weight"].shape[0])
    num_classes = int(state["classifier.weight"].shape[0]) if "classifier.weight" in state else None
    seq_len = results.get("seq_len") or preprocessing(cfg.dataset).get("seq_len")
    if not seq_len:
        raise RunError(f"{folder} has no results.json with the run's seq_len (the run did not finish) and "
                       "its dataset config does not fix one: finish the run (trainer.resume=auto)")
    data = SimpleNamespace(num_features=input_size, num_classes=num_classes, seq_len=int(seq_len))
    heads = SimpleNamespace(needs_labels=num_classes is not None, needs_next="predictor.weight" in state)
    model = build_model(cfg, data, heads)
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise RunError(f"{best} does not fit the model of {config}: {str(err).splitlines()[0]}") from None
    return SavedRun(folder, cfg, results, Named(model).eval(), int(seq_len), input_size, saved.get("epoch"))
