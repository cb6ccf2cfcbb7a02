"""Hydra callback: ``summary.csv`` in the sweep folder, best job first: after each job (the jobs
that ended so far, written atomically: a killed sweep keeps the rows of its finished jobs) and
after the multirun (every job folder).

A sweep over ``trainer.seed`` (or another ``<group>.seed`` key) as well (``-m ... trainer.seed=0,1,2``) repeats each configuration
over those seeds: every row then also holds its configuration's ``<objective>_mean``,
``<objective>_std`` and ``seeds``, and rows are sorted by that mean.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List

import pandas as pd
import yaml
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig

from lstm_ae import run_folder as rf

log = logging.getLogger(__name__)

TRIAL_ENV = "LSTM_AE_OPTUNA_TRIAL"  # set in each job of the Optuna sweeper (hydra.job.env_set): its trial number


@dataclass
class PrunedAt:
    """What a pruned job returns to the sweeper: the epoch it stopped after."""

    epoch: int


class Pruned(Exception):
    """Raised by an epoch callback (lstm_ae.optuna_sweeper.pruning_callback) to stop a trial's training."""

    def __init__(self, epoch: int) -> None:
        super().__init__(f"pruned by the Optuna study after epoch {epoch}")
        self.epoch = epoch


def collect(sweep_dir: Path, ended_only: bool = False) -> pd.DataFrame:
    """One row per job folder under ``sweep_dir``: overrides, status (as
    :func:`lstm_ae.run_folder.status` decides it), results.json metrics, folder. ``ended_only``: only
    jobs that ended, not those still running."""
    rows: List[Dict[str, Any]] = []
    keys: List[str] = []  # the override keys, in order of appearance
    for overrides_file in sorted(Path(sweep_dir).glob(f"*/{rf.HYDRA}/overrides.yaml")):
        job_dir = overrides_file.parent.parent
        man = rf.manifest(job_dir)
        if man is not None and man.get("resumes"):
            continue  # a job that continued a run elsewhere: listed there
        state = rf.status(job_dir, man)
        if ended_only and state.status == "running":
            continue
        row: Dict[str, Any] = {"job": job_dir.name}
        for item in yaml.safe_load(overrides_file.read_text()) or []:
            key, _, value = str(item).partition("=")
            if not key.startswith(("hparams_search", "hydra")):
                row[key.lstrip("+~")] = value
                keys += [key.lstrip("+~")] if key.lstrip("+~") not in keys else []
        row["status"] = state.status
        if state.status == "finished":
            row.update(rf.read_json(job_dir / rf.RESULTS) or {})
        elif state.status == "pruned":
            ended = (man or {}).get("end") or rf.read_json(job_dir / rf.LEGACY_PRUNED) or {}
            row["pruned_at_epoch"] = ended.get("epoch")
        elif state.status != "running":
            row["error"] = state.reason
        row["run_dir"] = str(job_dir)
        rows.append(row)
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    objective = df["objective"].dropna().iloc[0] if "objective" in df and df["objective"].notna().any() else None
    if objective in df:
        ascending = "objective_mode" not in df or df["objective_mode"].dropna().iloc[0] != "max"
        sort_by = objective
        seed = next((k for k in keys if is_seed(k) and df[k].nunique() > 1), None)
        if seed is not None:  # the same configuration over several seeds (trainer.seed; bench.nab_search: detector.seed)
            df = _seed_statistics(df, objective, [k for k in keys if k != seed])
            sort_by = f"{objective}_mean"
        df = df.sort_values([sort_by, objective], ascending=ascending, na_position="last", kind="stable")
    return df.reset_index(drop=True)



def is_seed(key: str) -> bool:
    """An override key that sets a seed (``trainer.seed``; bench.nab_search's ``detector.seed``)."""
    return key.rsplit(".", 1)[-1] == "seed"


def _seed_statistics(df: pd.DataFrame, objective: str, config: List[str]) -> pd.DataFrame:
    """Each job's configuration (``config``: its override keys but the seed) gets the mean and standard
    deviation of the objective over its seeds' jobs (none if one failed) and the count of finished
    seeds: a winner is then not a lucky seed."""
    key = df[config].astype(str).agg("|".join, axis=1) if config else pd.Series("", index=df.index)
    values = pd.to_numeric(df[objective], errors="coerce").where(df["status"] == "finished")
    grouped = values.groupby(key)
    # a configuration with a failed seed gets no mean: it ranks after those that finished every seed
    mean = grouped.apply(lambda v: v.mean(skipna=False))
    std = grouped.apply(lambda v: v.std(ddof=1, skipna=False))
    return df.assign(**{f"{objective}_mean": key.map(mean), f"{objective}_std": key.map(std),
                        "seeds": key.map(grouped.count())})


def write_summary(df: pd.DataFrame, path: Path) -> bool:
    """``df`` to ``path`` atomically (:func:`lstm_ae.run_folder.write_atomic`): readers and parallel jobs
    never see half a file. A full disk (any OSError) is logged in one line and the sweep goes on: False."""
    try:
        rf.write_atomic(path, df.to_csv(index=False).encode())
    except OSError as err:
        log.error("summary.csv not written (%s: %s); the sweep goes on", path, err.strerror or err)
        return False
    return True


class SweepSummary(Callback):
    """Writes ``<sweep dir>/summary.csv`` after each job and the multirun; prints the best job at the end."""

    def on_job_end(self, config: DictConfig, job_return: Any = None, **kwargs: Any) -> None:
        if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
            sweep_dir = Path(config.hydra.sweep.dir)
            df = collect(sweep_dir, ended_only=True)
            if not df.empty:
                write_summary(df, sweep_dir / rf.SUMMARY)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        df = collect(sweep_dir)
        if df.empty:
            log.warning("no job folders found in %s; no summary written", sweep_dir)
            return
        path = sweep_dir / rf.SUMMARY
        if not write_summary(df, path):
            return
        try:  # the sweep ran to its end (lstm_ae.run_folder.finished; a killed one has only summary.csv)
            rf.write_json(sweep_dir / rf.SWEEP_END, {"jobs": len(df), "statuses": {k: int(v) for k, v in df["status"].value_counts().items()},
                                                     "ended": time.strftime("%Y-%m-%dT%H:%M:%S")})
        except OSError as err:
            log.error("%s not written (%s)", sweep_dir / rf.SWEEP_END, err.strerror or err)
        done = df[df["status"] == "finished"]
        if done.empty:
            log.warning("no job finished; summary in %s", path)
            return
        best = done.iloc[0]
        objective = best["objective"]
        swept = {k: best[k] for k in df.columns if "." in k and not is_seed(k) and df[k].nunique(dropna=False) > 1}
        test = f"  test_mse={best['test_mse']:.5f}" if "test_mse" in best else ""
        if f"{objective}_mean" in best:
            objective_text = (f"{objective} mean {best[f'{objective}_mean']:.5f} +- {best[f'{objective}_std']:.5f} "
                              f"over {best['seeds']} seeds")
        else:
            objective_text = f"{objective}={best[objective]:.5f}"
        # printed, not logged: this is the answer the user ran the sweep for
        print(
            f"summary of {len(df)} jobs ({len(done)} finished): {path}\n"
            f"best: {swept or 'all jobs equal'}  {objective_text}{test}\n"
            f"      {best['run_dir']}"
        )
