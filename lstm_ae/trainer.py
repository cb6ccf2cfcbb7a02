"""The one training loop, shared by every task.

A task supplies ``losses(output, batch) -> {"loss": total, ...}`` (batch means); the trainer
does the rest: batching by indexing in-memory tensors, optimizer and scheduler, gradient
clipping, mixed precision, validation after every epoch, the best-on-validation checkpoint,
``metrics.csv``, resuming from ``checkpoints/last.pt``, and :meth:`Trainer.predict`, the one way
the model is run for evaluation (validation, test metrics, forecasts and figures alike).

Reading order: :meth:`Trainer.fit` (the epoch loop), then the pieces it calls: ``_train_epoch``,
:class:`TrainState` (what ``last.pt`` holds), :class:`MetricsFile` (``metrics.csv``).
"""
from __future__ import annotations

import copy
import csv
import functools
import io
import logging
import math
import os
import random
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Sequence

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from lstm_ae.config import Device, Precision, TrainerConfig
from lstm_ae.data import Split, Splits
from lstm_ae.errors import CheckpointError, ConfigError, TrainingDiverged
from lstm_ae.model import AEOutput
from lstm_ae.optim import param_groups
from lstm_ae.run_folder import write_atomic

if TYPE_CHECKING:  # lstm_ae.tasks imports matplotlib (plots): not needed to train
    from lstm_ae.tasks import Task

log = logging.getLogger(__name__)

OptimizerFactory = Callable[..., torch.optim.Optimizer]
SchedulerFactory = Callable[[torch.optim.Optimizer, int], Any]
EpochCallback = Callable[[int, nn.Module, Dict[str, float]], None]

# Measured on 2 cores (bench/throughput.py): 2 shards train pixel-by-pixel MNIST (784 steps)
# ~1.5x faster, toy sequences (50 steps) no faster and row-by-row MNIST (28 steps) slower.
AUTO_SHARDS_MIN_STEPS = 256


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def configure_torch(num_threads: Optional[int]) -> None:
    """Process-wide torch settings, set once by the entry point (``lstm_ae.experiment``).

    ``num_threads``: torch's intra-op threads (None keeps torch's default). Denormal floats appear
    in long backward passes through saturated gates; flushing them to zero makes pixel-by-pixel
    MNIST several times faster on CPU and changes results only in values below 1e-38.
    """
    if num_threads:
        torch.set_num_threads(num_threads)
    torch.set_flush_denormal(True)


def resolve_device(device: Device | str, job: Optional[int] = None) -> torch.device:
    """``trainer.device`` as a torch device. ``job``: the job's number in a multirun; with several
    visible GPUs, job k gets GPU k mod their count, so parallel jobs (joblib) spread over the GPUs.
    (An engine that hands each job its own GPU, e.g. Ray with ``num_gpus: 1``, leaves one visible.)"""
    name = getattr(device, "value", device)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("trainer.device=cuda but no CUDA GPU is visible; use trainer.device=auto or cpu")
    if name == "cuda" and job is not None and (count := torch.cuda.device_count()) > 1:
        return torch.device("cuda", job % count)
    return torch.device(name)


def save_atomic(obj: Any, path: Path) -> None:
    """torch.save into memory, then :func:`lstm_ae.run_folder.write_atomic`: a crash never leaves half a
    checkpoint, and a full disk raises OSError (ENOSPC), keeps the previous checkpoint and leaves no
    temporary file."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    write_atomic(path, buffer.getbuffer())


@dataclass
class FitResult:
    history: List[Dict[str, float]] = field(default_factory=list)  # one row per epoch (metrics.csv)
    best_epoch: int = 0
    best: Dict[str, float] = field(default_factory=dict)  # validation metrics at best_epoch
    seconds: float = 0.0


@dataclass
class TrainState:
    """What changes while training, beside the model, optimizer and scheduler; ``last.pt`` holds it."""

    result: FitResult = field(default_factory=FitResult)
    epoch: int = 0  # the last finished epoch
    finished: bool = False  # the last epoch or an early stop: a resume has nothing left to train
    best_loss: float = math.inf
    best_model: Optional[Dict[str, torch.Tensor]] = None
    stale: int = 0  # epochs since the best one

    def update_best(self, epoch: int, val: Dict[str, float], model: nn.Module) -> bool:
        """Record epoch ``epoch``'s validation metrics; True when its loss is the best so far."""
        if val["loss"] < self.best_loss:
            self.best_loss, self.stale = val["loss"], 0
            self.best_model = copy.deepcopy(model.state_dict())
            self.result.best_epoch, self.result.best = epoch, val
            return True
        self.stale += 1
        return False

    def checkpoint(self, model: nn.Module, opt, sched, batches: torch.Generator, cuda: bool,
                   tag: Optional[str] = None) -> Dict[str, Any]:
        """Everything needed to continue after ``self.epoch`` exactly as if never stopped (``tag``:
        the caller's name for what is trained, e.g. the config's fingerprint)."""
        return {
            "tag": tag,
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "scheduler": None if sched is None else sched.state_dict(),
            "epoch": self.epoch,
            "finished": self.finished,
            "best_model": self.best_model,
            "best_epoch": self.result.best_epoch,
            "best_val": self.result.best,
            "best_loss": self.best_loss,
            "stale": self.stale,
            "seconds": self.result.seconds,
            "rng": {
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if cuda else None,
                "numpy": np.random.get_state(),
                "python": random.getstate(),
                "batches": batches.get_state(),
            },
        }

    @classmethod
    def restore(cls, path: Path, model: nn.Module, opt, sched, batches: torch.Generator) -> "TrainState":
        """Load ``last.pt`` into the model, optimizer, scheduler and RNGs; the state to continue from."""
        try:
            saved = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as err:  # truncated, not a checkpoint, another format ...
            raise CheckpointError(
                f"checkpoint {path} is not readable ({type(err).__name__}: {str(err)[:120]}); delete it "
                "to start afresh, or point trainer.resume at another run"
            ) from None
        try:
            model.load_state_dict(saved["model"])
            opt.load_state_dict(saved["optimizer"])
            if sched is not None and saved["scheduler"] is not None:
                sched.load_state_dict(saved["scheduler"])
        except (KeyError, RuntimeError, ValueError) as err:
            raise CheckpointError(
                f"checkpoint {path} does not fit this model or optimizer ({str(err).splitlines()[0][:160]}); "
                "resume with the run's own config (its .hydra/config.yaml)"
            ) from None
        rng = saved["rng"]
        torch.set_rng_state(rng["torch"])
        if rng["cuda"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        np.random.set_state(rng["numpy"])
        random.setstate(rng["python"])
        batches.set_state(rng["batches"])
        result = FitResult(best_epoch=saved["best_epoch"], best=saved["best_val"], seconds=saved["seconds"])
        return cls(result=result, epoch=saved["epoch"], finished=saved.get("finished", False),
                   best_loss=saved["best_loss"], best_model=saved["best_model"], stale=saved["stale"])


def read_metrics(path: Path, upto: float = math.inf) -> List[Dict[str, float]]:
    """The complete rows of a ``metrics.csv`` up to epoch ``upto`` (none if it is missing or unreadable); a row
    cut by a crash is left out."""
    rows: List[Dict[str, float]] = []
    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            for row in reader:
                try:
                    values = {k: float(v) for k, v in row.items() if k is not None}
                except (TypeError, ValueError):
                    continue
                if len(values) == len(reader.fieldnames or ()) and values.get("epoch", math.inf) <= upto:
                    rows.append({**values, "epoch": int(values["epoch"])})
    except OSError:
        pass
    return rows


class MetricsFile:
    """``metrics.csv``: one row per epoch, flushed as it is written.

    Opened to continue after epoch ``keep``, it keeps the complete rows up to that epoch (a row
    cut by a crash, or written after the checkpoint, is dropped) and appends after them.
    """

    def __init__(self, path: Path, keep: int = 0) -> None:
        self.path, self.file, self.writer = path, None, None
        self.rows = read_metrics(path, keep) if keep else []
        if self.rows:
            tmp = path.with_name(path.name + ".tmp")
            with open(tmp, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=list(self.rows[0]))
                writer.writeheader()
                writer.writerows(self.rows)
            os.replace(tmp, path)

    def append(self, row: Dict[str, float]) -> None:
        if self.writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.file = open(self.path, "a" if self.rows else "w", newline="")
            self.writer = csv.DictWriter(self.file, fieldnames=list(row))
            if not self.rows:
                self.writer.writeheader()
        self.writer.writerow(row)
        self.file.flush()
        self.rows.append(row)

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


@functools.lru_cache(maxsize=None)
def cpu_bf16_lstm() -> bool:
    """Whether this CPU runs an LSTM under bf16 autocast: oneDNN's kernel needs AVX-512, and on an
    AVX2-only CPU the forward pass raises "could not create a primitive descriptor"."""
    try:
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            nn.LSTM(1, 4, batch_first=True)(torch.zeros(1, 2, 1))
        return True
    except RuntimeError:
        return False


class Trainer:
    """Trains a model into ``run_dir`` with the settings of the ``trainer`` config group."""

    def __init__(self, run_dir: Path | str, cfg: TrainerConfig | Any, job: Optional[int] = None) -> None:
        self.run_dir, self.cfg = Path(run_dir), cfg
        self.device = resolve_device(cfg.device, job)  # job: a multirun job's number (one GPU per parallel job)
        self.precision = Precision(getattr(cfg.precision, "value", cfg.precision))
        if self.precision is Precision.bf16 and self.device.type == "cpu" and not cpu_bf16_lstm():
            log.warning("trainer.precision=bf16: this CPU (%s) has no bf16 LSTM kernel (oneDNN's needs AVX-512); "
                        "training in fp32", torch.backends.cpu.get_cpu_capability())
            self.precision = Precision.fp32

    # --------------------------------------------------------------- evaluation
    def autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision is Precision.bf16)

    @torch.no_grad()
    def predict(self, model: nn.Module, x: torch.Tensor) -> AEOutput:
        """The model's outputs for ``x`` in batches of ``eval_batch_size``, at the trainer's precision,
        as fp32 tensors on ``x``'s device. Every evaluation -- validation, test metrics, forecasts,
        figures -- runs the model through here."""
        model.eval()
        outs = []
        for chunk in x.split(self.cfg.eval_batch_size):
            with self.autocast():
                out = model(chunk.to(self.device))
            outs.append(out.map(lambda t: t.float().to(x.device)))
        return AEOutput.cat(outs)

    def evaluate(self, model: nn.Module, task: Task, split: Split) -> Dict[str, float]:
        """Every loss part of ``task`` over the whole of ``split``."""
        return {k: v.item() for k, v in task.losses(self.predict(model, split.x), split).items()}

    # ------------------------------------------------------------------ training
    def fit(self, model: nn.Module, task: Task, splits: Splits, optimizer: OptimizerFactory,
            scheduler: Optional[SchedulerFactory] = None, callbacks: Sequence[EpochCallback] = (),
            resume: bool = False, tag: Optional[str] = None) -> FitResult:
        """Train on ``splits.train``, validate every epoch, keep the best-on-validation weights.

        ``metrics.csv`` and ``checkpoints/{best,last}.pt`` are written into the run folder as
        training goes. With ``resume``, a ``last.pt`` there is loaded and training continues after
        its epoch, with the result of an uninterrupted run (CPU, same seed). ``callbacks`` are
        called as ``callback(epoch, model, row)`` after each epoch, outside its timing; ``tag`` is
        saved in ``last.pt``. On return the model holds the best weights.
        """
        cfg = self.cfg
        model.to(self.device)
        train, val = splits.train.to(self.device), splits.val.to(self.device)
        opt = optimizer(param_groups(model))
        steps = math.ceil(len(train) / cfg.batch_size)
        sched = scheduler(opt, steps) if scheduler is not None else None
        per_batch = isinstance(sched, torch.optim.lr_scheduler.OneCycleLR)
        batches = torch.Generator().manual_seed(cfg.seed)
        last = self.run_dir / "checkpoints" / "last.pt"
        state = TrainState()
        if resume and last.exists():
            state = TrainState.restore(last, model, opt, sched, batches)
            log.info("resumed from %s after epoch %d", last, state.epoch)
        metrics = MetricsFile(self.run_dir / "metrics.csv", keep=state.epoch)
        state.result.history = metrics.rows
        started = time.perf_counter() - state.result.seconds
        shards = self.shards_for(train.x.shape[1])
        pool = ThreadPoolExecutor(shards, thread_name_prefix="shard") if shards > 1 else None
        if pool is not None:
            log.info("each batch in %d shards computed at once (trainer.shards)", shards)
        try:
            for epoch in range(state.epoch + 1, 1 if state.finished else cfg.epochs + 1):
                t0, lr = time.perf_counter(), opt.param_groups[0]["lr"]
                train_metrics = self._train_epoch(model, task, train, opt, sched if per_batch else None,
                                                  batches, epoch, pool, shards, splits.augment)
                val_metrics = self.evaluate(model, task, val)
                self._check_finite("training", train_metrics["loss"], epoch, opt)  # (on a GPU not every step is)
                self._check_finite("validation", val_metrics["loss"], epoch, opt)
                if sched is not None and not per_batch:
                    plateau = isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau)
                    sched.step(val_metrics["loss"]) if plateau else sched.step()
                row = {"epoch": epoch, **{f"train_{k}": v for k, v in train_metrics.items()},
                       **{f"val_{k}": v for k, v in val_metrics.items()}, "lr": lr, "seconds": time.perf_counter() - t0}
                metrics.append(row)
                improved = state.update_best(epoch, val_metrics, model)
                if improved and cfg.save_checkpoints:
                    save_atomic({"model": state.best_model, "epoch": epoch, "val": val_metrics},
                                self.run_dir / "checkpoints" / "best.pt")
                stop = cfg.patience is not None and state.stale >= cfg.patience
                state.epoch, state.finished = epoch, stop or epoch == cfg.epochs
                state.result.seconds = time.perf_counter() - started
                if cfg.save_checkpoints:
                    save_atomic(state.checkpoint(model, opt, sched, batches, self.device.type == "cuda", tag), last)
                for callback in callbacks:
                    callback(epoch, model, row)
                log.info("epoch %d/%d  train_loss %.5f  val_loss %.5f  lr %.3g  %.1fs%s", epoch, cfg.epochs,
                         train_metrics["loss"], val_metrics["loss"], lr, row["seconds"], "  *" if improved else "")
                if stop:
                    log.info("early stop: no better val_loss for %d epochs", state.stale)
                    break
        finally:
            if pool is not None:
                pool.shutdown()
            metrics.close()
        state.result.seconds = time.perf_counter() - started
        if state.best_model is not None:
            model.load_state_dict(state.best_model)
        return state.result

    def _train_epoch(self, model: nn.Module, task: Task, train: Split, opt, per_batch_sched, batches, epoch: int,
                     pool: Optional[ThreadPoolExecutor], shards: int,
                     augment: Optional[Callable[[torch.Tensor, torch.Generator], torch.Tensor]] = None) -> Dict[str, float]:
        """One pass over ``train`` in a seeded random order, each batch through ``augment`` (a
        dataset's random transform, drawn from the same seeded generator) if there is one; the
        epoch's mean of every loss part."""
        cfg = self.cfg
        model.train()
        order = torch.randperm(len(train), generator=batches).to(self.device)
        steps = math.ceil(len(train) / cfg.batch_size)
        check_every = 1 if self.device.type == "cpu" else 25  # a check costs a host sync on a GPU
        totals: Dict[str, torch.Tensor] = {}
        clipped = torch.zeros((), device=self.device)  # steps whose gradient norm exceeded grad_clip
        norms = torch.zeros((), device=self.device)  # their gradient norms before clipping, summed
        bar = tqdm(range(steps), desc=f"epoch {epoch}/{cfg.epochs}", leave=False, disable=not cfg.progress,
                   mininterval=0.5)
        for step in bar:
            batch = train[order[step * cfg.batch_size : (step + 1) * cfg.batch_size]]
            if augment is not None:
                batch = replace(batch, x=augment(batch.x, batches))
            opt.zero_grad(set_to_none=True)
            parts = self._forward_backward(model, task, batch, pool, shards)
            if (step + 1) % check_every == 0 or step + 1 == steps:  # stop before a bad step changes the weights
                self._check_finite(f"training (step {step + 1} of {steps})", parts["loss"].item(), epoch, opt)
            if cfg.grad_clip is not None:
                norm = nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                clipped += norm > cfg.grad_clip
                norms += norm
            opt.step()
            if hasattr(model, "after_step"):  # a model's fixed weights, put back (LSTMAutoencoder's decoder clock)
                model.after_step()
            if per_batch_sched is not None:
                per_batch_sched.step()
            for k, v in parts.items():  # summed on the device: no host synchronisation per step
                totals[k] = totals.get(k, 0.0) + v.detach() * len(batch)
        means = {k: v.item() / len(train) for k, v in totals.items()}
        if cfg.grad_clip is not None:  # metrics.csv: train_clip_fraction, train_grad_norm
            means.update(clip_fraction=clipped.item() / steps, grad_norm=norms.item() / steps)
        return means

    def _losses(self, model: nn.Module, task: Task, batch: Split) -> Dict[str, torch.Tensor]:
        with self.autocast():
            out = model(batch.x)
        return task.losses(out.float(), batch)  # losses and metrics always in fp32

    def shards_for(self, steps: int) -> int:
        """Shards per batch: ``trainer.shards``, or with null one per thread for sequences of at least
        AUTO_SHARDS_MIN_STEPS steps (else 1); always 1 off the CPU."""
        if self.device.type != "cpu":
            return 1
        if self.cfg.shards is not None:
            return self.cfg.shards
        return torch.get_num_threads() if steps >= AUTO_SHARDS_MIN_STEPS else 1

    def _forward_backward(self, model: nn.Module, task: Task, batch: Split,
                          pool: Optional[ThreadPoolExecutor] = None, shards: int = 1) -> Dict[str, torch.Tensor]:
        """Loss parts of ``batch`` (batch means), with their gradients in the parameters' ``.grad``.

        With a ``pool`` of ``shards`` > 1 threads (CPU) the batch is cut into that many shards,
        each run forward and backward on its own thread with one intra-op thread: a long
        recurrence is a chain of small matrix products that one core runs almost as fast as two,
        so two shards at once use both cores far better. The shards' gradients are summed in a
        fixed order, so a run stays reproducible (up to dropout, whose random masks are then
        drawn by two threads).
        """
        if pool is None:
            parts = self._losses(model, task, batch)
            parts["loss"].backward()
            return parts
        params = [p for p in model.parameters() if p.requires_grad]
        pieces = [batch[idx] for idx in torch.arange(len(batch)).tensor_split(shards) if len(idx)]

        def work(shard: Split):
            torch.set_num_threads(1)  # this thread's ops (and oneDNN's) run on this core only
            weight = len(shard) / len(batch)
            parts = self._losses(model, task, shard)
            grads = torch.autograd.grad(parts["loss"] * weight, params, allow_unused=True)
            return {k: v.detach() * weight for k, v in parts.items()}, grads

        threads = torch.get_num_threads()
        try:
            results = list(pool.map(work, pieces))
        finally:
            torch.set_num_threads(threads)
        parts = {k: sum(r[0][k] for r in results) for k in results[0][0]}
        for i, p in enumerate(params):
            grads = [r[1][i] for r in results if r[1][i] is not None]
            p.grad = sum(grads[1:], grads[0].clone()) if grads else None
        return parts

    def _check_finite(self, where: str, value: float, epoch: int, opt: torch.optim.Optimizer) -> None:
        if math.isfinite(value):
            return
        last = self.run_dir / "checkpoints" / "last.pt"
        kept = f"; the last good epoch's checkpoint is {last}" if last.exists() else ""
        raise TrainingDiverged(
            f"{where} loss became {value} in epoch {epoch}{kept}. Try a lower optimizer.lr "
            f"(now {opt.param_groups[0]['lr']:g}) or gradient clipping (trainer.grad_clip)."
        )
