"""The recipe every entry script runs, top to bottom in :func:`train_and_test`:

the run folder's lock -> the plan (start, continue or refuse; nothing written yet) -> ``.hydra/``
and the manifest -> config (validated) -> torch settings and seed -> task -> data (checked against
the task; overview figure) -> model + trainer -> fit (or cross-validate by group) -> one test pass
-> results.json -> figures -> the end state. What a run folder holds: :mod:`lstm_ae.run_folder`.
"""
from __future__ import annotations

import contextlib
import functools
import logging
import os
import shutil
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import pandas as pd
import torch
import yaml
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from lstm_ae import plots
from lstm_ae import run_folder as rf
from lstm_ae.config import validate
from lstm_ae.data import Splits, group_folds
from lstm_ae.errors import (CheckpointError, ConfigError, Interrupted, RunFolderError, TrainingDiverged, UserError,
                            raise_interrupted)
from lstm_ae.loggers import build_logger, end_run
from lstm_ae.model import count_parameters
from lstm_ae.run_folder import FolderBusy
from lstm_ae.sweep import TRIAL_ENV, Pruned, PrunedAt
from lstm_ae.tasks import Task
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


def build_model(cfg: DictConfig, splits: Splits, task: Task) -> torch.nn.Module:
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


def load_data(cfg: DictConfig, task: Task) -> Splits:
    """The dataset's splits, checked against what the task needs."""
    splits: Splits = build(cfg.dataset)
    name = type(task).__name__
    if task.needs_labels and splits.num_classes is None:
        raise ConfigError(f"task {name} needs class labels, which this dataset does not have (dataset=mnist has)")
    if task.needs_next and not splits.has_next:
        raise ConfigError(f"task {name} needs next-step targets, which this dataset does not have (dataset=sp500 has)")
    return splits


def _saved_overrides(folder: Path) -> Optional[List[str]]:
    """The defining overrides of the run in ``folder`` (manifest, else ``.hydra/overrides.yaml``)."""
    man = rf.manifest(folder)
    if man is not None and isinstance(man.get("overrides"), list):
        return man["overrides"]
    try:
        saved = yaml.safe_load((folder / rf.HYDRA / "overrides.yaml").read_text())
    except (OSError, yaml.YAMLError):
        return None
    return rf.defining_overrides(saved) if isinstance(saved, list) else None


def _saved_fingerprint(folder: Path) -> Optional[str]:
    """The ``config_sha1`` of the run in ``folder``: its manifest or results, else (a folder from before
    the manifest) the tag in its ``last.pt``."""
    saved, _ = rf.saved_fingerprint(folder)
    if saved is None and (lasts := rf.last_checkpoints(folder)):
        try:
            saved = torch.load(lasts[0], map_location="cpu", weights_only=False).get("tag")
        except Exception:  # noqa: BLE001 - unreadable: TrainState.restore says so in one line
            saved = None
    return saved


def resume_dir(resume: Optional[str], run_dir: Path, overrides: Sequence[str] = (),
               fingerprint: Optional[str] = None) -> Optional[Path]:
    """The run folder to continue (``trainer.resume``), or None to start afresh.

    ``auto``: this run folder when it holds ``checkpoints/last.pt`` (e.g. ``hydra.run.dir`` set
    to an earlier run), else the newest unfinished run (a ``last.pt`` but no ``results.json``)
    in the same parent folder (``outputs/<config>/<task>/``) of the same config (its ``config_sha1``
    is ``fingerprint``; a folder from before the manifest: the same defining overrides), else None.
    A path: that run folder (or its ``checkpoints/last.pt``), which must exist.
    """
    if resume is None:
        return None
    if resume == "auto":
        if rf.last_checkpoints(run_dir):
            return run_dir
        wanted = sorted(rf.defining_overrides(overrides))

        def same(d: Path) -> bool:
            saved = rf.saved_fingerprint(d)[0]
            if saved is not None and fingerprint is not None:
                return saved == fingerprint
            ran = _saved_overrides(d)
            return ran is not None and sorted(ran) == wanted

        candidates = [d for d in (run_dir.parent.iterdir() if run_dir.parent.is_dir() else [])
                      if d != run_dir and d.is_dir() and not (d / rf.RESULTS).exists() and rf.last_checkpoints(d)
                      and same(d)]
        return max(candidates, key=lambda d: d.name) if candidates else None
    path = Path(resume).expanduser()
    if path.is_file() and path.name == "last.pt":
        path = path.parent.parent
    if not path.is_dir():
        raise CheckpointError(f"trainer.resume={resume}: no such run folder or checkpoint")
    if not rf.last_checkpoints(path):
        raise CheckpointError(f"trainer.resume={resume}: {path} holds no checkpoints/last.pt to resume from")
    return path


@dataclass
class Plan:
    """Where a run trains and how, decided before anything is written (:func:`plan`)."""

    folder: Path  # where the training writes: the run folder, or the run it continues
    resume: bool  # continue from the folder's last.pt
    done: Optional[Dict[str, Any]] = None  # the folder holds this config's results: nothing to train


def _command_of(folder: Path) -> str:
    ran = _saved_overrides(folder)
    return " ".join(ran) if ran else "no overrides"


def plan(cfg: DictConfig, run_dir: Path, fingerprint: str, continue_job: bool = False,
         overrides: Sequence[str] = ()) -> Plan:
    """Decide where and how the run of ``cfg`` trains; refuse in one line (:class:`RunFolderError`), before
    anything is written, what would mix two runs in one folder.

    The folder (``run_dir``, or the run ``trainer.resume`` names) is fresh: start. It holds this
    config's results: done. It holds another config's run (its ``config_sha1`` differs): refused.
    It holds this config's unfinished run: continued with ``trainer.resume`` or in a sweep's job
    (``continue_job``), refused otherwise (a plain rerun would train over it: it names
    ``trainer.resume=auto``)."""
    resume = cfg.trainer.resume
    folder = resume_dir(resume, run_dir, list(overrides), fingerprint) or run_dir
    if folder != run_dir:
        log.info("resuming the run in %s (results go there)", folder)
    elif resume == "auto" and not rf.last_checkpoints(run_dir):
        log.info("trainer.resume=auto: no unfinished run of this config to resume; starting afresh")
    if not rf.has_training(folder):
        return Plan(folder, resume=False)
    saved = _saved_fingerprint(folder)
    if saved is not None and saved != fingerprint:
        advice = (f"resume it with its own config (python <script> {_command_of(folder)} trainer.resume={folder})"
                  if resume is not None else "choose another hydra.run.dir (or hydra.sweep.dir)")
        raise RunFolderError(f"{folder} holds another run (config_sha1 {saved}, made with: {_command_of(folder)}); "
                             f"this command's config is {fingerprint}; {advice}")
    results = rf.read_json(folder / rf.RESULTS)
    if results is not None and results.get("config_sha1") == fingerprint:
        return Plan(folder, resume=False, done=results)
    if resume is not None or continue_job:
        return Plan(folder, resume=True)
    raise RunFolderError(f"{folder} holds an interrupted run of this config ({_epochs_done(folder)} epoch(s), "
                         "checkpoints/last.pt kept); continue it with trainer.resume=auto, or choose another "
                         "hydra.run.dir")


def _checkpointed(folder: Path) -> int:
    """The epoch the folder's last.pt holds (a fold's: the newest), what a resume continues from; 0 if none."""
    lasts = rf.last_checkpoints(folder)
    try:
        return int(torch.load(lasts[-1], map_location="cpu", weights_only=False)["epoch"]) if lasts else 0
    except Exception:  # noqa: BLE001 - unreadable: nothing to continue from
        return 0


def _epochs_done(folder: Path) -> int:
    """Complete rows of the folder's metrics.csv (a fold's under cross-validation: the newest)."""
    files = [folder / rf.METRICS] if (folder / rf.METRICS).exists() else sorted(folder.glob(f"fold_*/{rf.METRICS}"))
    try:
        return max(0, files[-1].read_text().count("\n") - 1) if files else 0
    except OSError:
        return 0


def fit_one(cfg: DictConfig, run_dir: Path, splits: Splits, task: Task, callbacks: Sequence[EpochCallback] = (),
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


def cross_validate(cfg: DictConfig, run_dir: Path, folds: Sequence[Splits], task: Task, resume: Optional[bool] = None,
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
    """Run one experiment into ``run_dir`` under the run-folder contract (:mod:`lstm_ae.run_folder`);
    return what is written to ``results.json``.

    The folder's lock is taken first (a second writer is refused in one line), then :func:`plan`
    decides, before anything is written, whether the run starts, continues (``trainer.resume``, or
    ``continue_job``: a multirun's job folder holding this config's ``last.pt``) or is done already
    (this config's ``results.json``: returned, not trained again). Then ``.hydra/`` and the
    manifest are written, the run trains and tests, and its end state is recorded whatever happens.
    """
    run_dir = Path(run_dir)
    fingerprint = rf.fingerprint(cfg)
    hydra = HydraConfig.get() if HydraConfig.initialized() else None
    overrides = list(hydra.overrides.task) if hydra is not None else []
    with contextlib.ExitStack() as held:
        held.enter_context(rf.Lock(run_dir))
        todo = plan(cfg, run_dir, fingerprint, continue_job, overrides)
        folder = todo.folder
        if folder != run_dir:
            held.enter_context(rf.Lock(folder))
        if todo.done is not None:
            log.info("%s holds this config's results (finished before): not trained again", folder / rf.RESULTS)
            return todo.done
        if hydra is not None:
            save_hydra(run_dir, cfg)
        folders = [folder] if folder == run_dir else [folder, run_dir]
        for f in folders:
            rf.start(f, **identity(cfg, fingerprint), resumes=str(folder) if f != folder else None)
        try:
            results = _train(cfg, folder, todo.resume, fingerprint)
        except BaseException as err:
            status, reason, epoch = ended(err, folder)
            for f in folders:
                with contextlib.suppress(OSError):  # a full disk: the status then reads "interrupted"
                    rf.end(f, status, reason, epoch=epoch)
            end_run(folder, status, reason)  # logger=mlflow: the MLflow run's end
            raise
        for f in folders:
            rf.end(f, "finished", epoch=results["epochs_run"])
        end_run(folder, "finished")
        return results


def save_hydra(run_dir: Path, cfg: DictConfig) -> None:
    """``.hydra/{config,hydra,overrides}.yaml`` as Hydra writes them. The project's Hydra config sets
    ``hydra.output_subdir: null``, so that they are written here, after the folder's lock is held and
    the plan checked: a refused run leaves another run's ``.hydra/`` as it was."""
    from hydra.core.utils import _save_config

    hydra_cfg = HydraConfig.instance().cfg
    out = run_dir / rf.HYDRA
    _save_config(cfg, "config.yaml", out)
    _save_config(hydra_cfg, "hydra.yaml", out)
    _save_config(hydra_cfg.hydra.overrides.task, "overrides.yaml", out)


def identity(cfg: DictConfig, fingerprint: str) -> Dict[str, Any]:
    """What the manifest says a run is: its config and script, task and group choices, the overrides that
    define it, its fingerprint, planned epochs and folds (Hydra's, when it runs under Hydra)."""
    hydra = HydraConfig.get() if HydraConfig.initialized() else None
    choices = dict(hydra.runtime.choices) if hydra is not None else {}
    return dict(config=hydra.job.config_name if hydra else None, script=hydra.job.name if hydra else None,
                task=choices.get("task"), choices={k: v for k, v in choices.items() if not k.startswith(("schema/", "hydra"))},
                job=multirun_job(), overrides=rf.defining_overrides(hydra.overrides.task if hydra else []),
                config_sha1=fingerprint, epochs_planned=OmegaConf.select(cfg, "trainer.epochs"),
                folds=OmegaConf.select(cfg, "task.folds"))


def ended(err: BaseException, folder: Path) -> Tuple[str, str, int]:
    """(end status, reason, epoch) of a run stopped by ``err``; the epoch of an interrupted run is the one its
    last.pt holds (what a resume continues from), else the epochs in metrics.csv."""
    if isinstance(err, KeyboardInterrupt):
        name = signal.Signals(err.signum).name if isinstance(err, Interrupted) else "Ctrl-C (SIGINT)"
        again = ("continue with trainer.resume=auto" if multirun_job() is None else
                 "the same sweep with its hydra.sweep.dir goes on (a grid continues this job, an Optuna study "
                 "runs a new trial)")
        epoch = _checkpointed(folder)
        return "interrupted", f"{name} after epoch {epoch}; checkpoints/last.pt kept: {again}", epoch
    epoch = _epochs_done(folder)
    if isinstance(err, Pruned):
        return "pruned", str(err), epoch
    if rf.disk_full(err):
        return "failed", f"{type(err).__name__}: disk full ({err.filename or folder}): {DISK_FULL_FIX}", epoch
    if isinstance(err, TrainingDiverged):
        return "diverged", f"{type(err).__name__}: {err}", epoch
    return "failed", f"{type(err).__name__}: {str(err).splitlines()[0][:1000] if str(err) else ''}", epoch


DISK_FULL_FIX = ("free some space, then rerun the same command with trainer.resume=auto "
                 "(checkpoints/last.pt keeps the last good epoch)")


def _train(cfg: DictConfig, run_dir: Path, resume: bool, fingerprint: str) -> Dict[str, Any]:
    """Validate, train (or cross-validate), test once, write ``results.json`` and the figures."""
    validate(cfg)
    configure_torch(cfg.trainer.num_threads)
    seed_everything(cfg.trainer.seed)
    task: Task = build(cfg.task)
    if not isinstance(task, Task):
        raise ConfigError(f"task._target_={cfg.task._target_} is not a task: it lacks members of lstm_ae.tasks.Task "
                          "(docs/extending.md)")
    rf.update(run_dir, objective=f"val_{task.objective}", objective_mode=task.objective_mode)
    logger = build_logger(cfg, run_dir)  # without its extra: fails here, before the data are loaded
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
    if splits.feature_names is not None:  # what new data must hold to be applied to the run (lstm_ae.apply)
        results["features"] = list(splits.feature_names)
    if splits.scaler is not None:  # how the run scaled its data: new data is scaled the same way
        results["scaler"] = {"lo": splits.scaler.lo.tolist(), "span": splits.scaler.span.tolist()}
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
    rf.write_json(run_dir / rf.RESULTS, results)  # strict JSON: a NaN metric is written as null
    if splits.train.step_labels is not None:  # labelled series: the run's anomalies, at the end of its training
        results["anomaly"] = anomalies(run_dir)
        rf.write_json(run_dir / rf.RESULTS, results)
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


def anomalies(run_dir: Path) -> Dict[str, Any]:
    """:func:`lstm_ae.anomaly.detect` on the finished run's own data (its labels: the label column; the threshold:
    its validation rows), written to ``anomaly/`` in the run folder; what results.json keeps of it. A run whose
    series are too short to score gets the reason instead of failing."""
    from lstm_ae import anomaly

    try:
        det = anomaly.detect(run_dir)
        anomaly.write(det, run_dir / "anomaly")
    except UserError as err:
        log.warning("anomaly detection skipped: %s", err)
        return {"error": str(err)}
    m = det.metrics
    keep = ("threshold", "baseline_threshold", "intervals", "flagged_rows", "evaluated", "model", "baseline")
    log.info("anomalies (the run's own data, training rows included): %d interval(s); AUC-PR %s (rolling z-score %s)",
             m["intervals"], (m.get("model") or {}).get("auc_pr"), (m.get("baseline") or {}).get("auc_pr"))
    return {k: m[k] for k in keep if k in m}


def _pruning(task: Task) -> List[EpochCallback]:
    """In a job of the Optuna sweeper with a pruner: the callback that reports the validation
    objective every epoch and stops a pruned trial (not under cross-validation, whose folds repeat
    the epochs)."""
    if os.environ.get(TRIAL_ENV) is None or not HydraConfig.initialized():
        return []
    from lstm_ae.optuna_sweeper import pruning_callback  # imports optuna: only in such a job

    callback = pruning_callback(HydraConfig.get().sweeper, f"val_{task.objective}")
    return [callback] if callback is not None else []


@contextlib.contextmanager
def stop_signals() -> Iterator[None]:
    """While a run trains: SIGTERM ends it like Ctrl-C (its end state written, checkpoint kept). In a
    launcher's worker process (joblib), the run also stops when the sweep's process is gone: a worker
    never trains on as an orphan."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    previous = signal.signal(signal.SIGTERM, raise_interrupted)
    watch = _watch_parent()
    try:
        yield
    finally:
        if watch is not None:
            watch.set()
        signal.signal(signal.SIGTERM, previous)


SWEEP_PID = "LSTM_AE_SWEEP_PID"  # set by lstm_ae.callbacks in the sweep's process; inherited by its workers
ORPHANED = False  # set in a launcher's worker whose sweep process is gone: the worker then exits


def _watch_parent() -> Optional[threading.Event]:
    """In a launcher's worker (its parent is the sweep's process): a thread that sends this process
    SIGTERM once that parent is gone. Returns the event that stops the thread; None elsewhere."""
    sweep = os.environ.get(SWEEP_PID)
    if not sweep or int(sweep) == os.getpid() or os.getppid() != int(sweep):
        return None
    done = threading.Event()

    def watch() -> None:
        while not done.wait(1.0):
            if os.getppid() != int(sweep):
                global ORPHANED
                ORPHANED = True
                log.error("the sweep's process (%s) is gone: stopping this job", sweep)
                os.kill(os.getpid(), signal.SIGTERM)
                return

    threading.Thread(target=watch, daemon=True, name="parent-watch").start()
    return done


def run(cfg: DictConfig, body: Optional[Callable[[DictConfig, Path, bool], Dict[str, Any]]] = None) -> Any:
    """Entry point body for ``@hydra.main`` functions; returns the objective for sweepers.

    ``body(cfg, run_dir, continue_job)`` does the work and returns what its ``results.json`` holds
    (default :func:`train_and_test`; ``bench.nab.search_job``: a NAB-layout folder scored as one job).

    A user's mistake (:class:`UserError`, a full disk) is reported in one line. A single run then
    exits with status 2; a job of a multirun returns NaN instead -- as it does for any other
    exception, whose traceback goes to the job's log -- so the sweep goes on (Optuna records the
    trial as failed); the reason is in the job's manifest (``run.json``) and ``summary.csv``. A
    job stopped by the Optuna study's pruner returns :class:`lstm_ae.sweep.PrunedAt`. SIGTERM and
    Ctrl-C end a run in one line (exit status 143 / 130), its checkpoint kept; in a multirun they
    stop the sweep.
    """
    run_dir = run_dir_from_hydra()
    multirun = HydraConfig.get().mode == RunMode.MULTIRUN
    try:
        with stop_signals():
            results = (body or train_and_test)(cfg, run_dir, multirun)
    except Pruned as err:
        log.info("%s", err)
        return PrunedAt(err.epoch)
    except KeyboardInterrupt as err:
        reason = ended(err, run_dir)[1]
        log.error("interrupted: %s", reason)
        if ORPHANED:  # nobody is left to take this worker's answer: it ends here, not idles on
            logging.shutdown()
            os._exit(143)
        if multirun:
            raise
        sys.exit(143 if isinstance(err, Interrupted) and err.signum == signal.SIGTERM else 130)
    except (UserError, OSError) as err:
        if isinstance(err, OSError) and not rf.disk_full(err):
            if not multirun:
                raise
            log.exception("the job failed")
            return float("nan")
        log.error("%s", ended(err, run_dir)[1])
        if multirun:
            _record_refusal(run_dir, cfg, err)
            return float("nan")
        sys.exit(2)
    except Exception:
        if not multirun:
            raise
        log.exception("the job failed")
        return float("nan")
    return float(results[results["objective"]])


@contextlib.contextmanager
def one_line_stop() -> Iterator[None]:
    """Around an entry script's ``main()``: a run or sweep stopped by SIGTERM or Ctrl-C ends with one line
    and the exit status 128 + the signal (130, 143), not a traceback. (A run has logged its own line
    and exits by itself; this catches what a sweep lets through.)"""
    try:
        yield
    except KeyboardInterrupt as err:
        signum = err.signum if isinstance(err, Interrupted) else signal.SIGINT
        print(f"stopped by {signal.Signals(signum).name}: the runs keep their checkpoints; the same command goes on "
              "(a run: with trainer.resume=auto; a sweep: with its hydra.sweep.dir)", file=sys.stderr, flush=True)
        sys.exit(128 + signum)


def _record_refusal(run_dir: Path, cfg: DictConfig, err: BaseException) -> None:
    """A sweep job that stopped before its run started (a refused resume, a bad checkpoint path): its
    own fresh folder gets ``.hydra/`` and a failed end state, so that ``summary.csv`` lists it; a folder
    holding something else (another run, another writer) is left as it was."""
    if isinstance(err, (FolderBusy, RunFolderError)) or rf.manifest(run_dir) is not None or rf.has_training(run_dir):
        return
    with contextlib.suppress(OSError):
        save_hydra(run_dir, cfg)
        rf.start(run_dir, **identity(cfg, rf.fingerprint(cfg)), resumes=None)
        status, reason, _ = ended(err, run_dir)
        rf.end(run_dir, status, reason, epoch=0)
