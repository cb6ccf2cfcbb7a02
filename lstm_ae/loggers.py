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
from typing import Any, Dict, Mapping, Optional

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from lstm_ae.errors import UserError

# the config groups whose keys are a run's hyper-parameters in TensorBoard's HParams view
HPARAM_GROUPS = ("model", "optimizer", "scheduler", "dataset", "task", "trainer")


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

    def finish(self, cfg: DictConfig, results: Mapping[str, Any]) -> None:
        """The run's hyper-parameters and final metrics, for the HParams view (in the same folder)."""
        metrics = {f"hparam/{k}": float(v) for k, v in results.items()
                   if k.startswith(("test_", "val_", "baseline_", "best_epoch", "train_seconds"))
                   and isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}
        with self.writer_class(str(self.dir), flush_secs=self.flush_secs) as writer:
            writer.add_hparams(hparams(cfg), metrics, run_name=".")


def hparams(cfg: DictConfig) -> Dict[str, Any]:
    """The config's groups flattened to ``group.key`` -> a number, bool or string (what HParams takes)."""
    flat: Dict[str, Any] = {}

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(f"{prefix}.{key}", value)
        else:  # numbers, bools and strings as they are; None and lists as text
            flat[prefix] = node if isinstance(node, (bool, int, float, str)) else str(node)

    for group in HPARAM_GROUPS:
        if group in cfg:
            walk(group, OmegaConf.to_container(cfg[group], resolve=True, enum_to_str=True))
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
