"""The one training loop, shared by every task.

A task supplies ``losses(output, batch) -> {"loss": total, ...}`` (batch means); the trainer
does the rest: batching by indexing in-memory tensors, optimizer and scheduler, gradient
clipping, mixed precision, validation after every epoch, the best-on-validation checkpoint,
``metrics.csv``, and the final evaluation of a split.
"""
from __future__ import annotations

import copy
import csv
import logging
import math
import os
import random
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from lstm_ae.config import Device, Precision
from lstm_ae.data import Split, Splits
from lstm_ae.errors import CheckpointError, TrainingDiverged

log = logging.getLogger(__name__)

OptimizerFactory = Callable[..., torch.optim.Optimizer]
SchedulerFactory = Callable[[torch.optim.Optimizer, int], Any]
EpochCallback = Callable[[int, nn.Module, Dict[str, float]], None]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_device(device: Device | str) -> torch.device:
    name = getattr(device, "value", device)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        from lstm_ae.errors import ConfigError

        raise ConfigError("trainer.device=cuda but no CUDA GPU is visible; use trainer.device=auto or cpu")
    return torch.device(name)


def save_atomic(obj: Any, path: Path) -> None:
    """torch.save to a temporary file, then rename: a crash never leaves half a checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


@dataclass
class FitResult:
    history: List[Dict[str, float]] = field(default_factory=list)  # one row per epoch
    best_epoch: int = 0
    best: Dict[str, float] = field(default_factory=dict)  # validation metrics at best_epoch
    seconds: float = 0.0


class Trainer:
    def __init__(
        self,
        run_dir: Path | str,
        epochs: int = 100,
        batch_size: int = 64,
        eval_batch_size: int = 2048,
        grad_clip: Optional[float] = 1.0,
        seed: int = 0,
        device: Device | str = "auto",
        num_threads: Optional[int] = None,
        precision: Precision | str = "fp32",
        shards: Optional[int] = None,
        patience: Optional[int] = None,
        progress: bool = True,
        save_checkpoints: bool = True,
        resume: Optional[str] = None,  # used by the experiment (which run folder); see fit(resume=...)
    ) -> None:
        self.run_dir = Path(run_dir)
        self.epochs, self.batch_size, self.eval_batch_size = epochs, batch_size, eval_batch_size
        self.grad_clip, self.seed, self.patience = grad_clip, seed, patience
        self.progress, self.save_checkpoints = progress, save_checkpoints
        self.device = resolve_device(device)
        self.precision = Precision(getattr(precision, "value", precision))
        if num_threads:
            torch.set_num_threads(num_threads)
        self.num_threads = torch.get_num_threads()
        # Sharded steps run on CPU threads; on a GPU one kernel stream does the whole batch.
        self.shards = shards if self.device.type == "cpu" else 1
        # Denormal floats appear in long backward passes through saturated gates; flushing them
        # to zero makes pixel-by-pixel MNIST several times faster on CPU. It is process-wide and
        # changes results only in values below 1e-38.
        torch.set_flush_denormal(True)

    # ------------------------------------------------------------------ helpers
    def _autocast(self):
        return torch.autocast(
            device_type=self.device.type,
            dtype=torch.bfloat16,
            enabled=self.precision is Precision.bf16,
        )

    def _losses(self, model: nn.Module, task: Any, batch: Split) -> Dict[str, torch.Tensor]:
        with self._autocast():
            out = model(batch.x)
        return task.losses(out.float(), batch)  # losses and metrics always in fp32

    # Measured on 2 cores (bench/throughput.py): 2 shards train pixel-by-pixel MNIST (784 steps)
    # ~1.5x faster, toy sequences (50 steps) no faster and row-by-row MNIST (28 steps) slower.
    AUTO_SHARDS_MIN_STEPS = 256

    def auto_shards(self, steps: int) -> int:
        """``shards=null`` (CPU): one shard per thread for long sequences, else no sharding."""
        return self.num_threads if steps >= self.AUTO_SHARDS_MIN_STEPS else 1

    def _forward_backward(self, model: nn.Module, task: Any, batch: Split,
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
        xs = torch.tensor_split(batch.x, shards)
        ys = [None] * len(xs) if batch.y is None else torch.tensor_split(batch.y, shards)
        pieces = [Split(x, y) for x, y in zip(xs, ys) if len(x)]

        def work(shard: Split):
            torch.set_num_threads(1)  # this thread's ops (and oneDNN's) run on this core only
            weight = len(shard) / len(batch)
            parts = self._losses(model, task, shard)
            grads = torch.autograd.grad(parts["loss"] * weight, params, allow_unused=True)
            return {k: v.detach() * weight for k, v in parts.items()}, grads

        try:
            results = list(pool.map(work, pieces))
        finally:
            torch.set_num_threads(self.num_threads)
        parts = {k: sum(r[0][k] for r in results) for k in results[0][0]}
        for i, p in enumerate(params):
            grads = [r[1][i] for r in results if r[1][i] is not None]
            p.grad = sum(grads[1:], grads[0].clone()) if grads else None
        return parts

    @torch.no_grad()
    def evaluate(self, model: nn.Module, task: Any, split: Split) -> Dict[str, float]:
        """Dataset means of every loss part of ``task`` over ``split``."""
        model.eval()
        split = split.to(self.device)
        totals: Dict[str, torch.Tensor] = {}
        for start in range(0, len(split), self.eval_batch_size):
            idx = slice(start, start + self.eval_batch_size)
            batch = Split(split.x[idx], None if split.y is None else split.y[idx])
            for k, v in self._losses(model, task, batch).items():
                totals[k] = totals.get(k, 0.0) + v.detach() * len(batch)
        return {k: v.item() / len(split) for k, v in totals.items()}

    def _diverged(self, where: str, value: float, epoch: int, opt: torch.optim.Optimizer) -> None:
        last = self.run_dir / "checkpoints" / "last.pt"
        kept = f"; the last good epoch's checkpoint is {last}" if last.exists() else ""
        raise TrainingDiverged(
            f"{where} loss became {value} in epoch {epoch}{kept}. Try a lower optimizer.lr "
            f"(now {opt.param_groups[0]['lr']:g}) or gradient clipping (trainer.grad_clip)."
        )

    # ------------------------------------------------------------- checkpoints
    def _state(self, model, opt, sched, gen, epoch, finished, result, best_state, best_loss, stale) -> Dict[str, Any]:
        """Everything needed to continue after ``epoch`` exactly as if never stopped."""
        return {
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "scheduler": None if sched is None else sched.state_dict(),
            "epoch": epoch,
            "finished": finished,  # the last epoch or an early stop: a resume has nothing left to train
            "best_model": best_state,
            "best_epoch": result.best_epoch,
            "best_val": result.best,
            "best_loss": best_loss,
            "stale": stale,
            "seconds": result.seconds,
            "rng": {
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
                "numpy": np.random.get_state(),
                "python": random.getstate(),
                "batches": gen.get_state(),
            },
        }

    def _load_last(self, path: Path) -> Dict[str, Any]:
        try:
            return torch.load(path, map_location="cpu", weights_only=False)
        except Exception as err:  # truncated, not a checkpoint, another format ...
            raise CheckpointError(
                f"checkpoint {path} is not readable ({type(err).__name__}: {str(err)[:120]}); delete it "
                "to start afresh, or point trainer.resume at another run"
            ) from None

    @staticmethod
    def _read_history(path: Path, upto: int) -> List[Dict[str, float]]:
        """The complete rows of metrics.csv up to epoch ``upto`` (a row cut by a crash is dropped)."""
        if not path.exists():
            return []
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            rows = []
            for row in reader:
                try:
                    values = {k: float(v) for k, v in row.items() if k is not None}
                except (TypeError, ValueError):
                    continue
                if len(values) == len(reader.fieldnames) and values["epoch"] <= upto:
                    values["epoch"] = int(values["epoch"])
                    rows.append(values)
        return rows

    # ---------------------------------------------------------------------- fit
    def fit(
        self,
        model: nn.Module,
        task: Any,
        splits: Splits,
        optimizer: OptimizerFactory,
        scheduler: Optional[SchedulerFactory] = None,
        callbacks: Sequence[EpochCallback] = (),
        resume: bool = False,
    ) -> FitResult:
        """Train on ``splits.train``, validate every epoch, keep the best-on-validation weights.

        ``metrics.csv`` and ``checkpoints/`` are written into the run folder as training goes;
        ``checkpoints/last.pt`` (written atomically every epoch) holds the model, optimizer,
        scheduler, RNG states and the best-so-far state. With ``resume``, a ``last.pt`` in the
        run folder is loaded and training continues after its epoch, with the same result as an
        uninterrupted run (CPU, same seed). ``callbacks`` are called as ``callback(epoch, model,
        row)`` after each epoch (outside the epoch's timing). On return the model holds the best
        weights.
        """
        model.to(self.device)
        train, val = splits.train.to(self.device), splits.val.to(self.device)
        opt = optimizer(model.parameters())
        steps_per_epoch = math.ceil(len(train) / self.batch_size)
        sched = scheduler(opt, steps_per_epoch) if scheduler is not None else None
        per_batch = isinstance(sched, torch.optim.lr_scheduler.OneCycleLR)
        on_plateau = isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau)
        gen = torch.Generator().manual_seed(self.seed)
        metrics_path = self.run_dir / "metrics.csv"
        last_path = self.run_dir / "checkpoints" / "last.pt"
        result = FitResult()
        best_loss, best_state, stale, first = math.inf, None, 0, 1
        if resume and last_path.exists():
            state = self._load_last(last_path)
            try:
                model.load_state_dict(state["model"])
                opt.load_state_dict(state["optimizer"])
                if sched is not None and state["scheduler"] is not None:
                    sched.load_state_dict(state["scheduler"])
            except (KeyError, RuntimeError, ValueError) as err:
                raise CheckpointError(
                    f"checkpoint {last_path} does not fit this model or optimizer ({str(err).splitlines()[0][:160]}); "
                    "resume with the run's own config (its .hydra/config.yaml)"
                ) from None
            rng = state["rng"]
            torch.set_rng_state(rng["torch"])
            if rng["cuda"] is not None and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(rng["cuda"])
            np.random.set_state(rng["numpy"])
            random.setstate(rng["python"])
            gen.set_state(rng["batches"])
            best_state, best_loss, stale = state["best_model"], state["best_loss"], state["stale"]
            result.best_epoch, result.best, result.seconds = state["best_epoch"], state["best_val"], state["seconds"]
            first = state["epoch"] + 1
            result.history = self._read_history(metrics_path, state["epoch"])
            log.info("resumed from %s after epoch %d", last_path, state["epoch"])
            if state.get("finished"):
                first = self.epochs + 1  # nothing left to do
        if result.history:  # rewrite the kept rows (drops any row after the checkpoint)
            tmp = metrics_path.with_name(metrics_path.name + ".tmp")
            with open(tmp, "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=list(result.history[0]))
                w.writeheader()
                w.writerows(result.history)
            os.replace(tmp, metrics_path)
        metrics_file, writer = None, None
        check_every = 1 if self.device.type == "cpu" else 25  # a check costs a host sync on a GPU
        started = time.perf_counter() - result.seconds
        shards = self.shards or self.auto_shards(train.x.shape[1])
        pool = ThreadPoolExecutor(shards, thread_name_prefix="shard") if shards > 1 else None
        if pool is not None:
            log.info("each batch in %d shards computed at once (trainer.shards)", shards)
        try:
            for epoch in range(first, self.epochs + 1):
                t0 = time.perf_counter()
                lr = opt.param_groups[0]["lr"]
                model.train()
                order = torch.randperm(len(train), generator=gen).to(self.device)
                totals: Dict[str, torch.Tensor] = {}
                bar = tqdm(
                    range(steps_per_epoch),
                    desc=f"epoch {epoch}/{self.epochs}",
                    leave=False,
                    disable=not self.progress,
                    mininterval=0.5,
                )
                for step in bar:
                    idx = order[step * self.batch_size : (step + 1) * self.batch_size]
                    batch = Split(train.x[idx], None if train.y is None else train.y[idx])
                    opt.zero_grad(set_to_none=True)
                    parts = self._forward_backward(model, task, batch, pool, shards)
                    if (step + 1) % check_every == 0 or step + 1 == steps_per_epoch:
                        loss = parts["loss"].item()
                        if not math.isfinite(loss):  # stop before the bad step changes the weights
                            self._diverged(f"training (step {step + 1} of {steps_per_epoch})", loss, epoch, opt)
                    if self.grad_clip is not None:
                        nn.utils.clip_grad_norm_(model.parameters(), self.grad_clip)
                    opt.step()
                    if per_batch:
                        sched.step()
                    # Summed on the device: no host synchronisation per step.
                    for k, v in parts.items():
                        totals[k] = totals.get(k, 0.0) + v.detach() * len(idx)
                train_metrics = {k: v.item() / len(train) for k, v in totals.items()}
                val_metrics = self.evaluate(model, task, val)
                for where, value in (("training", train_metrics["loss"]), ("validation", val_metrics["loss"])):
                    if not math.isfinite(value):
                        self._diverged(where, value, epoch, opt)
                if sched is not None and not per_batch:
                    sched.step(val_metrics["loss"]) if on_plateau else sched.step()
                row: Dict[str, float] = {"epoch": epoch}
                row.update({f"train_{k}": v for k, v in train_metrics.items()})
                row.update({f"val_{k}": v for k, v in val_metrics.items()})
                row.update(lr=lr, seconds=time.perf_counter() - t0)
                result.history.append(row)
                if writer is None:
                    self.run_dir.mkdir(parents=True, exist_ok=True)
                    fresh = not (metrics_path.exists() and epoch > 1)
                    metrics_file = open(metrics_path, "w" if fresh else "a", newline="")
                    writer = csv.DictWriter(metrics_file, fieldnames=list(row))
                    if fresh:
                        writer.writeheader()
                writer.writerow(row)
                metrics_file.flush()

                improved = val_metrics["loss"] < best_loss
                if improved:
                    best_loss, stale = val_metrics["loss"], 0
                    best_state = copy.deepcopy(model.state_dict())
                    result.best_epoch, result.best = epoch, val_metrics
                    if self.save_checkpoints:
                        save_atomic(
                            {"model": best_state, "epoch": epoch, "val": val_metrics},
                            self.run_dir / "checkpoints" / "best.pt",
                        )
                else:
                    stale += 1
                result.seconds = time.perf_counter() - started
                stop = self.patience is not None and stale >= self.patience
                if self.save_checkpoints:
                    finished = stop or epoch == self.epochs
                    state = self._state(model, opt, sched, gen, epoch, finished, result, best_state, best_loss, stale)
                    save_atomic(state, last_path)
                for callback in callbacks:
                    callback(epoch, model, row)
                log.info(
                    "epoch %d/%d  train_loss %.5f  val_loss %.5f  lr %.3g  %.1fs%s",
                    epoch, self.epochs, train_metrics["loss"], val_metrics["loss"], lr,
                    row["seconds"], "  *" if improved else "",
                )
                if stop:
                    log.info("early stop: no better val_loss for %d epochs", stale)
                    break
        finally:
            if pool is not None:
                pool.shutdown()
            if metrics_file is not None:
                metrics_file.close()
        result.seconds = time.perf_counter() - started
        if best_state is not None:
            model.load_state_dict(best_state)
        return result
