"""The recipe every entry script runs: config -> data, model, task, trainer -> fit -> test -> files.

Run-folder contract (every task): ``.hydra/`` (Hydra), ``metrics.csv`` (one row per epoch),
``results.json``, ``checkpoints/{best,last}.pt`` and the task's PNG figures.
"""
from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any, Dict, Optional

import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig

from lstm_ae.config import validate
from lstm_ae.data import Splits
from lstm_ae.errors import ConfigError, UserError
from lstm_ae.model import count_parameters
from lstm_ae.trainer import SchedulerFactory, Trainer, seed_everything

log = logging.getLogger("lstm_ae")


def build(cfg: DictConfig, *args: Any, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate``, but a :class:`UserError` raised inside comes out unwrapped."""
    try:
        return instantiate(cfg, *args, **kwargs)
    except InstantiationException as err:
        cause = err.__cause__
        if isinstance(cause, UserError):
            raise cause from None
        raise


def run_dir_from_hydra() -> Path:
    return Path(HydraConfig.get().runtime.output_dir)


def scheduler_factory(cfg: DictConfig) -> Optional[SchedulerFactory]:
    """A function (optimizer, steps_per_epoch) -> scheduler, or None for ``scheduler=none``."""
    if cfg.get("_target_") is None:
        return None

    def make(optimizer: torch.optim.Optimizer, steps_per_epoch: int):
        extra = {"steps_per_epoch": steps_per_epoch} if cfg.get("steps_per_epoch", 0) is None else {}
        return instantiate(cfg, optimizer, **extra)

    return make


def build_model(cfg: DictConfig, splits: Splits, num_classes: Optional[int] = None) -> torch.nn.Module:
    """The model of ``cfg.model``; sizes left null come from the data (and the task's classes)."""
    features = splits.num_features
    input_size = cfg.model.input_size
    if input_size is None:
        input_size = features
    elif input_size != features:
        raise ConfigError(
            f"model.input_size={input_size} does not match the data, which has {features} "
            f"value(s) per time step; set model.input_size={features} or leave it null"
        )
    extra: Dict[str, Any] = {}
    if num_classes is not None:
        configured = cfg.model.get("num_classes")
        if configured is None:
            extra["num_classes"] = num_classes
        elif configured != num_classes:
            raise ConfigError(
                f"model.num_classes={configured} does not match the data, which has {num_classes} "
                f"classes; set model.num_classes={num_classes} or leave it null"
            )
    if cfg.model.get("chrono_t_max", 0) is None:
        extra["chrono_t_max"] = splits.seq_len
    return build(cfg.model, input_size=input_size, **extra)


def train_and_test(cfg: DictConfig, run_dir: Path) -> Dict[str, Any]:
    """Run one experiment into ``run_dir``; return what is written to ``results.json``."""
    validate(cfg)
    seed_everything(cfg.trainer.seed)
    splits: Splits = build(cfg.dataset)
    task = build(cfg.task)
    if task.needs_labels and splits.train.y is None:
        raise ConfigError(f"task {type(task).__name__} needs class labels, which this dataset does not have")
    model = build_model(cfg, splits, splits.meta.get("num_classes") if task.needs_labels else None)
    trainer = Trainer(run_dir=run_dir, **cfg.trainer)
    log.info(
        "data: %d/%d/%d sequences of %d steps x %d; model: %d parameters; device %s",
        len(splits.train), len(splits.val), len(splits.test), splits.seq_len, splits.num_features,
        count_parameters(model), trainer.device,
    )
    fit = trainer.fit(
        model,
        task,
        splits,
        optimizer=instantiate(cfg.optimizer, _partial_=True, _convert_="all"),
        scheduler=scheduler_factory(cfg.scheduler),
    )
    test = trainer.evaluate(model, task, splits.test)
    results: Dict[str, Any] = {f"test_{k}": v for k, v in test.items()}
    results.update({f"val_{k}": v for k, v in fit.best.items()})
    results.update(task.baseline(splits))
    results.update(
        objective=f"val_{task.objective}",
        objective_mode=task.objective_mode,
        best_epoch=fit.best_epoch,
        epochs_run=len(fit.history),
        train_seconds=round(fit.seconds, 2),
        num_parameters=count_parameters(model),
        device=str(trainer.device),
        torch_version=torch.__version__,
    )
    (run_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    task.figures(run_dir, model, splits, fit, trainer.device)
    log.info(
        "best epoch %d: val_%s %.5f; test_%s %.5f; results in %s",
        fit.best_epoch, task.objective, results[f"val_{task.objective}"], task.objective,
        results[f"test_{task.objective}"], run_dir,
    )
    return results


def run(cfg: DictConfig) -> float:
    """Entry point body for ``@hydra.main`` functions; returns the objective for sweepers.

    A user's mistake (:class:`UserError`) is reported in one line. A single run then exits with
    status 2; a job of a multirun returns NaN instead, so the sweep goes on (Optuna records the
    trial as failed) and ``summary.csv`` lists the job as failed.
    """
    run_dir = run_dir_from_hydra()
    try:
        results = train_and_test(cfg, run_dir)
    except UserError as err:
        log.error("%s: %s", type(err).__name__, err)
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            return float("nan")
        sys.exit(2)
    return float(results[results["objective"]])
