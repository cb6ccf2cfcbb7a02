"""The recipe every entry script runs: config -> data, model, task, trainer -> fit -> test -> files.

Run-folder contract (every task): ``.hydra/`` (Hydra), ``metrics.csv`` (one row per epoch),
``results.json``, ``checkpoints/{best,last}.pt`` and the task's PNG figures.
"""
from __future__ import annotations

import inspect
import json
import logging
import shutil
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import pandas as pd
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.errors import InstantiationException
from hydra.utils import get_method, instantiate
from omegaconf import DictConfig, OmegaConf

from lstm_ae.config import validate
from lstm_ae.data import Splits
from lstm_ae.errors import CheckpointError, ConfigError, UserError
from lstm_ae.model import count_parameters
from lstm_ae.trainer import EpochCallback, FitResult, SchedulerFactory, Trainer, seed_everything

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


def build_model(cfg: DictConfig, splits: Splits, task: Any) -> torch.nn.Module:
    """The model of ``cfg.model``; sizes left null come from the data, heads from the task."""
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
    if task.needs_labels:
        num_classes = splits.meta.get("num_classes")
        configured = cfg.model.get("num_classes")
        if configured is None:
            extra["num_classes"] = num_classes
        elif configured != num_classes:
            raise ConfigError(
                f"model.num_classes={configured} does not match the data, which has {num_classes} "
                f"classes; set model.num_classes={num_classes} or leave it null"
            )
    if task.needs_next:
        extra["predict_next"] = True
    if cfg.model.get("chrono_t_max", 0) is None:
        extra["chrono_t_max"] = splits.seq_len
    return build(cfg.model, input_size=input_size, **extra)


def load_data(cfg: DictConfig, task: Any, fold: Optional[int] = None) -> Splits:
    """The dataset's splits (validation = fold ``fold`` under cross-validation), checked against the task."""
    if not task.trains:  # the task draws the raw data only
        if not _accepts(cfg.dataset, "table_only"):
            raise ConfigError(f"task {type(task).__name__} needs dataset=sp500")
        return build(cfg.dataset, table_only=True)
    if fold is None:
        splits: Splits = build(cfg.dataset)
    else:
        splits = build(cfg.dataset, folds=task.folds, fold=fold)
    if task.needs_labels and splits.train.y is None:
        raise ConfigError(f"task {type(task).__name__} needs class labels, which this dataset does not have")
    if task.needs_next and splits.meta.get("name") != "sp500":
        raise ConfigError(f"task {type(task).__name__} needs next-step targets, which only dataset=sp500 provides")
    return splits


def _accepts(node: DictConfig, argument: str) -> bool:
    """Whether the callable a config node instantiates takes ``argument``."""
    return argument in inspect.signature(get_method(node._target_)).parameters


def _has_last(folder: Path) -> bool:
    return (folder / "checkpoints" / "last.pt").exists() or any(folder.glob("fold_*/checkpoints/last.pt"))


def _same_command(overrides: Sequence[str]) -> List[str]:
    """The overrides that define a run: all but trainer.resume and hydra.* (where it runs)."""
    return sorted(o for o in overrides if not o.lstrip("+~").startswith(("trainer.resume", "hydra.")))


def resume_dir(resume: Optional[str], run_dir: Path, overrides: Sequence[str] = ()) -> Optional[Path]:
    """The run folder to continue (``trainer.resume``), or None to start afresh.

    ``auto``: this run folder when it holds ``checkpoints/last.pt`` (e.g. ``hydra.run.dir`` set
    to an earlier run), else the newest unfinished run (a ``last.pt`` but no ``results.json``)
    in the same parent folder (``outputs/<config>/<task>/``) made by the same command (the same
    overrides, ``trainer.resume`` and ``hydra.*`` aside), else None. A path: that run folder (or
    its ``checkpoints/last.pt``), which must exist.
    """
    if resume is None:
        return None
    if resume == "auto":
        if _has_last(run_dir):
            return run_dir
        wanted = _same_command(overrides)
        candidates = [
            d for d in (run_dir.parent.iterdir() if run_dir.parent.is_dir() else [])
            if d != run_dir and d.is_dir() and not (d / "results.json").exists() and _has_last(d)
            and (d / ".hydra" / "overrides.yaml").exists()
            and _same_command(OmegaConf.load(d / ".hydra" / "overrides.yaml")) == wanted
        ]
        return max(candidates, key=lambda d: d.name) if candidates else None
    path = Path(resume).expanduser()
    if path.is_file() and path.name == "last.pt":
        path = path.parent.parent
    if not path.is_dir():
        raise CheckpointError(f"trainer.resume={resume}: no such run folder or checkpoint")
    if not _has_last(path):
        raise CheckpointError(f"trainer.resume={resume}: {path} holds no checkpoints/last.pt to resume from")
    return path


def fit_one(cfg: DictConfig, run_dir: Path, splits: Splits, task: Any,
            callbacks: Sequence[EpochCallback] = ()) -> Tuple[torch.nn.Module, FitResult, Trainer]:
    """Train a model on ``splits`` into ``run_dir`` (continuing its last.pt with ``trainer.resume``);
    it returns holding its best weights."""
    seed_everything(cfg.trainer.seed)
    model = build_model(cfg, splits, task)
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
        callbacks=callbacks,
        resume=cfg.trainer.get("resume") is not None,
    )
    return model, fit, trainer


def cross_validate(cfg: DictConfig, run_dir: Path, task: Any) -> Tuple[Splits, torch.nn.Module, FitResult, Trainer, Dict[str, Any]]:
    """k-fold cross-validation: one model per fold in ``fold_<k>/``; the best on validation wins.

    The winner's ``metrics.csv`` and checkpoints are copied to the run folder, so the run looks
    like any other; ``folds.csv`` holds every fold's validation metrics.
    """
    key = f"val_{task.objective}"
    sign = 1 if task.objective_mode == "min" else -1
    rows, best = [], None
    for k in range(task.folds):
        log.info("fold %d/%d", k + 1, task.folds)
        splits = load_data(cfg, task, fold=k)
        model, fit, trainer = fit_one(cfg, run_dir / f"fold_{k}", splits, task)
        row = {"fold": k, "best_epoch": fit.best_epoch, **{f"val_{m}": v for m, v in fit.best.items()}}
        rows.append(row)
        if best is None or sign * row[key] < sign * best[0][key]:
            best = (row, splits, model, fit, trainer)
    row, splits, model, fit, trainer = best
    pd.DataFrame(rows).to_csv(run_dir / "folds.csv", index=False)
    chosen = run_dir / f"fold_{row['fold']}"
    shutil.copy(chosen / "metrics.csv", run_dir / "metrics.csv")
    if (chosen / "checkpoints").is_dir():
        shutil.copytree(chosen / "checkpoints", run_dir / "checkpoints", dirs_exist_ok=True)
    log.info("cross-validation: fold %d has the best %s (%.5f)", row["fold"], key, row[key])
    summary = {
        "best_fold": row["fold"],
        f"fold_{key}": [r[key] for r in rows],
        f"cv_mean_{key}": sum(r[key] for r in rows) / len(rows),
    }
    return splits, model, fit, trainer, summary


def train_and_test(cfg: DictConfig, run_dir: Path) -> Dict[str, Any]:
    """Run one experiment into ``run_dir``; return what is written to ``results.json``."""
    validate(cfg)
    seed_everything(cfg.trainer.seed)
    task = build(cfg.task)
    if task.folds is not None and not _accepts(cfg.dataset, "folds"):
        raise ConfigError("task.folds (cross-validation) is not supported by this dataset; set task.folds=null")
    run_dir.mkdir(parents=True, exist_ok=True)
    overrides = HydraConfig.get().overrides.task if HydraConfig.initialized() else []
    previous = resume_dir(cfg.trainer.get("resume"), run_dir, list(overrides))
    if previous is not None and previous != run_dir:
        log.info("resuming the run in %s (results go there)", previous)
        run_dir = previous
    elif cfg.trainer.get("resume") == "auto" and previous is None:
        log.info("trainer.resume=auto: no unfinished run to resume; starting afresh")
    if not task.trains:
        results = task.run(run_dir, load_data(cfg, task))
        results.update(objective=None, objective_mode=task.objective_mode)
        (run_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
        log.info("results in %s", run_dir)
        return results
    cv: Dict[str, Any] = {}
    if task.folds is None:
        splits = load_data(cfg, task)
        model, fit, trainer = fit_one(cfg, run_dir, splits, task)
    else:
        splits, model, fit, trainer, cv = cross_validate(cfg, run_dir, task)
    test = trainer.evaluate(model, task, splits.test)
    results: Dict[str, Any] = {f"test_{k}": v for k, v in test.items()}
    results.update({f"val_{k}": v for k, v in fit.best.items()})
    results.update(task.evaluate(model, splits, trainer.device))
    results.update(task.baseline(splits))
    results.update(cv)
    results.update(
        objective=f"val_{task.objective}",
        objective_mode=task.objective_mode,
        best_epoch=fit.best_epoch,
        epochs_run=len(fit.history),
        train_seconds=round(fit.seconds, 2),
        num_parameters=count_parameters(model),
        seq_len=splits.seq_len,
        input_size=splits.num_features,
        sequences={"train": len(splits.train), "val": len(splits.val), "test": len(splits.test)},
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
    status 2; a job of a multirun returns NaN instead -- as it does for any other exception,
    whose traceback goes to the job's log -- so the sweep goes on (Optuna records the trial as
    failed). The reason is written to ``error.txt`` in the job folder, and ``summary.csv``
    lists the job as failed with it.
    """
    run_dir = run_dir_from_hydra()
    multirun = HydraConfig.get().mode == RunMode.MULTIRUN
    try:
        results = train_and_test(cfg, run_dir)
    except UserError as err:
        log.error("%s: %s", type(err).__name__, err)
        if multirun:
            _write_error(run_dir, f"{type(err).__name__}: {err}")
            return float("nan")
        sys.exit(2)
    except Exception as err:
        if not multirun:
            raise
        log.exception("the job failed")
        _write_error(run_dir, f"{type(err).__name__}: {err}")
        return float("nan")
    if results["objective"] is None:  # a task that trains nothing
        return float("nan")
    return float(results[results["objective"]])


def _write_error(run_dir: Path, message: str) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "error.txt").write_text(message.splitlines()[0][:1000] + "\n")
