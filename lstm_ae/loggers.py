"""Loggers (config group ``logger``): where a run's per-epoch metrics go besides ``metrics.csv``.

``logger=csv`` (default) adds nothing: ``metrics.csv`` is always written, because resume, sweep
summaries, the runs table and the report read it. ``logger=tensorboard`` adds TensorBoard event
files in ``<run folder>/<logger.log_dir>`` (``tb/``): one scalar per ``metrics.csv`` column per
epoch (the learning rate included) and, at the end, the run's hyper-parameters with its final
metrics (``hparam/<metric>``) for TensorBoard's HParams view, so ``tensorboard --logdir
multirun/...`` compares the jobs of a sweep. Each training writes from its first epoch on with
``purge_step`` at that epoch: a resumed run makes TensorBoard drop the steps an interrupted run
wrote after its checkpoint, so no step appears twice. Cross-validation logs each fold in
``fold_<k>/tb``. Needs the extra: ``pip install -e '.[tensorboard]'``.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from lstm_ae.errors import UserError

# A run's hyper-parameters in TensorBoard's HParams view: what defines a model and its training,
# and every key the run's overrides set (a sweep's swept keys are always there). Kept short: the
# view shows a handful of columns at first.
CORE_HPARAMS = ("model.hidden_size", "model.num_layers", "model.dropout", "optimizer.lr", "optimizer.weight_decay",
                "trainer.epochs", "trainer.batch_size", "trainer.grad_clip", "trainer.precision", "trainer.seed")

def summary_writer() -> Any:
    """TensorBoard's ``SummaryWriter`` class; one line naming the fix when the extra is missing."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise UserError("logger=tensorboard needs TensorBoard: pip install -e '.[tensorboard]' "
                        "(or use logger=csv)") from None
    return SummaryWriter


class TensorBoardLogger:
    """An epoch callback (``callback(epoch, model, row)``): ``row``'s values as scalars at step ``epoch``."""

    def __init__(self, run_dir: Path, log_dir: str = "tb", flush_secs: int = 10) -> None:
        self.writer_class = summary_writer()  # fails here, before training, without the extra
        self.dir, self.flush_secs, self.writer = Path(run_dir) / log_dir, flush_secs, None

    def __call__(self, epoch: int, model: Any, row: Mapping[str, float]) -> None:
        if self.writer is None:  # steps >= this epoch written before (an interrupted run) are dropped
            self.writer = self.writer_class(str(self.dir), flush_secs=self.flush_secs, purge_step=epoch)
        for key, value in row.items():
            if key != "epoch":
                self.writer.add_scalar(key, value, epoch)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()

    def finish(self, cfg: DictConfig, results: Mapping[str, Any], overrides: Sequence[str] = ()) -> None:
        """The run's hyper-parameters and final metrics, for the HParams view (in the same folder)."""
        metrics = {f"hparam/{k}": float(v) for k, v in results.items()
                   if k.startswith(("test_", "val_", "baseline_", "best_epoch", "train_seconds"))
                   and isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}
        with self.writer_class(str(self.dir), flush_secs=self.flush_secs) as writer:
            writer.add_hparams(hparams(cfg, overrides), metrics, run_name=".")


def hparams(cfg: DictConfig, overrides: Sequence[str] = ()) -> Dict[str, Any]:
    """The run's hyper-parameters as ``key`` -> a number, bool or string (what HParams takes):
    :data:`CORE_HPARAMS`, the optimizer's and scheduler's class names, and the keys ``overrides``
    (``key=value`` strings) set; a group chosen by an override (``optimizer=sgd``) by its option."""
    def value(key: str) -> Any:
        v = OmegaConf.select(cfg, key)
        v = OmegaConf.to_container(OmegaConf.create({"v": v}), resolve=True, enum_to_str=True)["v"]
        return v if isinstance(v, (bool, int, float, str)) else str(v)  # None, lists: as text

    absent = object()
    has = lambda key: OmegaConf.select(cfg, key, default=absent) is not absent  # noqa: E731 - None is a value
    flat: Dict[str, Any] = {key: value(key) for key in CORE_HPARAMS if has(key)}
    for group in ("optimizer", "scheduler"):
        target = OmegaConf.select(cfg, f"{group}._target_")
        flat[group] = str(target).rsplit(".", 1)[-1] if target else "none"
    for item in overrides:
        key, _, text = item.partition("=")
        key = key.lstrip("+~")
        if key.startswith(("hydra.", "hparams_search", "logger")) or not has(key):
            continue
        flat[key] = text if OmegaConf.is_dict(OmegaConf.select(cfg, key)) else value(key)
    return flat


def build_logger(cfg: DictConfig, run_dir: Path) -> Optional[TensorBoardLogger]:
    """The configured logger for a training into ``run_dir``; None for ``logger=csv``."""
    logger = cfg.get("logger")
    if logger is None or logger.get("_target_") is None:
        return None
    try:
        return instantiate(logger, run_dir=run_dir)
    except InstantiationException as err:  # Hydra wraps a missing extra's one line: unwrap it
        if isinstance(err.__cause__, UserError):
            raise err.__cause__ from None
        raise
