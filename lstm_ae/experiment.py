"""The recipe every entry script runs, top to bottom in :func:`train_and_test`:

config (validated) -> torch settings and seed -> task -> run folder (or the run to resume) ->
data (checked against the task; overview figure) -> model + trainer -> fit (or cross-validate
by group) -> one test pass -> results.json -> figures.

Run-folder contract (every task): ``.hydra/`` (Hydra), ``metrics.csv`` (one row per epoch),
``results.json``, ``checkpoints/{best,last}.pt`` and the task's PNG figures.
"""
from __future__ import annotations

import functools
import json
import os
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
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from lstm_ae import plots
from lstm_ae.config import config_fingerprint, validate
from lstm_ae.data import Splits, group_folds
from lstm_ae.errors import CheckpointError, ConfigError, UserError
from lstm_ae.loggers import build_logger
from lstm_ae.model import count_parameters
from lstm_ae.sweep import PRUNED, TRIAL_ENV, Pruned, PrunedAt
from lstm_ae.trainer import EpochCallback, FitResult, SchedulerFactory, Trainer, configure_torch, seed_everything

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


def multirun_job() -> Optional[int]:
    """This job's number in a multirun (Hydra's ``hydra.job.num``); None in a single run."""
    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        return HydraConfig.get().job.num
    return None


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
        configured = cfg.model.get("num_classes")
        if configured is None:
            extra["num_classes"] = splits.num_classes
        elif configured != splits.num_classes:
            raise ConfigError(
                f"model.num_classes={configured} does not match the data, which has {splits.num_classes} "
                f"classes; set model.num_classes={splits.num_classes} or leave it null"
            )
    if task.needs_next:
        extra["predict_next"] = True
    if cfg.model.get("chrono_t_max", 0) is None:
        extra["chrono_t_max"] = splits.seq_len
    return build(cfg.model, input_size=input_size, **extra)


def load_data(cfg: DictConfig, task: Any) -> Splits:
    """The dataset's splits, checked against what the task needs."""
    splits: Splits = build(cfg.dataset)
    name = type(task).__name__
    if task.needs_labels and splits.num_classes is None:
        raise ConfigError(f"task {name} needs class labels, which this dataset does not have (dataset=mnist has)")
    if task.needs_next and not splits.has_next:
        raise ConfigError(f"task {name} needs next-step targets, which this dataset does not have (dataset=sp500 has)")
    return splits


def _last_checkpoints(folder: Path) -> List[Path]:
    """The ``last.pt`` files of a run folder: its own, or its folds' under cross-validation."""
    own = folder / "checkpoints" / "last.pt"
    return [own] if own.exists() else sorted(folder.glob("fold_*/checkpoints/last.pt"))


def _has_last(folder: Path) -> bool:
    return bool(_last_checkpoints(folder))


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


def fit_one(cfg: DictConfig, run_dir: Path, splits: Splits, task: Any, callbacks: Sequence[EpochCallback] = (),
            resume: Optional[bool] = None, tag: Optional[str] = None) -> Tuple[torch.nn.Module, FitResult, Trainer]:
    """Train a model on ``splits`` into ``run_dir``; it returns holding its best weights.

    ``resume``: continue the run folder's last.pt (default: when ``trainer.resume`` is set);
    ``tag`` is saved in the checkpoints (the config's fingerprint)."""
    seed_everything(cfg.trainer.seed)
    model = build_model(cfg, splits, task)
    trainer = Trainer(run_dir, cfg.trainer, job=multirun_job())
    log.info(
        "data: %d/%d/%d sequences of %d steps x %d; model: %d parameters; device %s",
        len(splits.train), len(splits.val), len(splits.test), splits.seq_len, splits.num_features,
        count_parameters(model), trainer.device,
    )
    logger = build_logger(cfg, run_dir)
    try:
        fit = trainer.fit(
            model,
            task,
            splits,
            optimizer=instantiate(cfg.optimizer, _partial_=True, _convert_="all"),
            scheduler=scheduler_factory(cfg.scheduler),
            callbacks=[logger, *callbacks] if logger is not None else callbacks,  # logged before a pruner stops it
            resume=cfg.trainer.resume is not None if resume is None else resume,
            tag=tag,
        )
    finally:
        if logger is not None:
            logger.close()
    return model, fit, trainer


def cross_validate(cfg: DictConfig, run_dir: Path, folds: Sequence[Splits], task: Any, resume: Optional[bool] = None,
                   tag: Optional[str] = None) -> Tuple[Splits, torch.nn.Module, FitResult, Trainer, Dict[str, Any]]:
    """k-fold cross-validation (``folds``: from ``lstm_ae.data.group_folds``): one model per fold in
    ``fold_<k>/``; the best on validation wins.

    The winner's ``metrics.csv`` and checkpoints are copied to the run folder, so the run looks
    like any other; ``folds.csv`` holds every fold's validation metrics.
    """
    key = f"val_{task.objective}"
    sign = 1 if task.objective_mode == "min" else -1
    rows, best = [], None
    for k, fold in enumerate(folds):
        log.info("fold %d/%d", k + 1, len(folds))
        model, fit, trainer = fit_one(cfg, run_dir / f"fold_{k}", fold, task, resume=resume, tag=tag)
        row = {"fold": k, "best_epoch": fit.best_epoch, **{f"val_{m}": v for m, v in fit.best.items()}}
        rows.append(row)
        if best is None or sign * row[key] < sign * best[0][key]:
            best = (row, fold, model, fit, trainer)
    row, fold, model, fit, trainer = best
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
    return fold, model, fit, trainer, summary


def train_and_test(cfg: DictConfig, run_dir: Path, continue_job: bool = False) -> Dict[str, Any]:
    """Run one experiment into ``run_dir``; return what is written to ``results.json``.

    ``continue_job`` (a multirun's job): a job folder that already holds this config's results is
    not trained again (its results are returned), and one holding this config's ``last.pt`` is
    continued from there, so rerunning an interrupted sweep into its folder finishes it.
    """
    fingerprint = config_fingerprint(cfg)
    if continue_job and (done := _finished(run_dir, fingerprint)) is not None:
        log.info("this job finished before (%s): not trained again", run_dir / "results.json")
        return done
    validate(cfg)
    configure_torch(cfg.trainer.num_threads)
    seed_everything(cfg.trainer.seed)
    task = build(cfg.task)
    run_dir = _run_dir_or_resumed(cfg, run_dir)
    logger = build_logger(cfg, run_dir)  # without its extra: fails here, before the data are loaded
    resume = cfg.trainer.resume is not None or (continue_job and _checkpoint_tag(run_dir) == fingerprint)
    splits = load_data(cfg, task)
    folds = group_folds(splits, task.folds) if task.folds is not None else None
    if task.figures and splits.overview is not None and len(splits.overview.columns):
        plots.overview(run_dir / f"{splits.value_name.replace(' ', '_')}.png", splits.overview,
                       splits.value_name, splits.unit)
    cv: Dict[str, Any] = {}
    if folds is None:
        model, fit, trainer = fit_one(cfg, run_dir, splits, task, _pruning(task), resume=resume, tag=fingerprint)
    else:
        splits, model, fit, trainer, cv = cross_validate(cfg, run_dir, folds, task, resume, fingerprint)
    test = task.test(splits, functools.partial(trainer.predict, model))  # the one test pass
    results: Dict[str, Any] = dict(test.metrics)
    results.update({f"val_{k}": v for k, v in fit.best.items()})
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
        eval_precision=trainer.precision.value,
        eval_batch_size=cfg.trainer.eval_batch_size,
        device=str(trainer.device),
        torch_version=torch.__version__,
        config_sha1=fingerprint,
    )
    (run_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    if logger is not None:
        logger.finish(cfg, results, HydraConfig.get().overrides.task if HydraConfig.initialized() else ())
    if task.figures:
        task.draw(run_dir, splits, test, fit.history)
    log.info(
        "best epoch %d: val_%s %.5f; test_%s %.5f; results in %s",
        fit.best_epoch, task.objective, results[f"val_{task.objective}"], task.objective,
        results[f"test_{task.objective}"], run_dir,
    )
    return results


def _pruning(task: Any) -> List[EpochCallback]:
    """In a job of the Optuna sweeper with a pruner: the callback that reports the validation
    objective every epoch and stops a pruned trial (not under cross-validation, whose folds repeat
    the epochs)."""
    if os.environ.get(TRIAL_ENV) is None or not HydraConfig.initialized():
        return []
    from lstm_ae.optuna_sweeper import pruning_callback  # imports optuna: only in such a job

    callback = pruning_callback(HydraConfig.get().sweeper, f"val_{task.objective}")
    return [callback] if callback is not None else []


def _finished(run_dir: Path, fingerprint: str) -> Optional[Dict[str, Any]]:
    """The results of ``run_dir`` when they are this config's, else None."""
    try:
        results = json.loads((run_dir / "results.json").read_text())
    except (OSError, ValueError):
        return None
    return results if results.get("config_sha1") == fingerprint else None


def _checkpoint_tag(run_dir: Path) -> Optional[str]:
    """The fingerprint saved in ``run_dir``'s last.pt (a fold's, under cross-validation), if any."""
    lasts = _last_checkpoints(run_dir)
    if not lasts:
        return None
    try:
        return torch.load(lasts[0], map_location="cpu", weights_only=False).get("tag")
    except Exception:  # unreadable: not ours to continue
        return None


def _run_dir_or_resumed(cfg: DictConfig, run_dir: Path) -> Path:
    """``run_dir``, created; or, with ``trainer.resume``, the folder of the run to continue."""
    run_dir.mkdir(parents=True, exist_ok=True)
    overrides = HydraConfig.get().overrides.task if HydraConfig.initialized() else []
    previous = resume_dir(cfg.trainer.resume, run_dir, list(overrides))
    if previous is not None and previous != run_dir:
        log.info("resuming the run in %s (results go there)", previous)
        return previous
    if cfg.trainer.resume == "auto" and previous is None:
        log.info("trainer.resume=auto: no unfinished run to resume; starting afresh")
    return run_dir


def run(cfg: DictConfig) -> Any:
    """Entry point body for ``@hydra.main`` functions; returns the objective for sweepers.

    A user's mistake (:class:`UserError`) is reported in one line. A single run then exits with
    status 2; a job of a multirun returns NaN instead -- as it does for any other exception,
    whose traceback goes to the job's log -- so the sweep goes on (Optuna records the trial as
    failed). The reason is written to ``error.txt`` in the job folder, and ``summary.csv``
    lists the job as failed with it. A job stopped by the Optuna study's pruner writes
    ``pruned.json`` (its last epoch) and returns :class:`lstm_ae.sweep.PrunedAt`.
    """
    run_dir = run_dir_from_hydra()
    multirun = HydraConfig.get().mode == RunMode.MULTIRUN
    try:
        results = train_and_test(cfg, run_dir, continue_job=multirun)
    except Pruned as err:
        log.info("%s", err)
        (run_dir / PRUNED).write_text(json.dumps({"epoch": err.epoch}) + "\n")
        return PrunedAt(err.epoch)
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
    return float(results[results["objective"]])


def _write_error(run_dir: Path, message: str) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "error.txt").write_text(message.splitlines()[0][:1000] + "\n")
