"""Hydra's Optuna sweeper, with ``n_trials`` counted over the whole study.

hydra-optuna-sweeper 1.3 runs ``n_trials`` *more* trials every time a sweep starts, and a job
that raises stops the whole sweep (``max_failure_rate`` 0). For sweeps that are interrupted,
rerun, or shared by several workers, this subclass changes the loop (everything else -- search
space, sampler, storage, launcher -- is the plugin's own code):

- the study stops at ``n_trials`` trials in total: before each batch, a worker counts the
  finished trials and the ones other workers are running, and asks only for what is missing;
- a trial left RUNNING by a killed sweep on this machine (its process is gone) is marked FAIL
  with the user attribute ``interrupted`` and is not counted, so a rerun replaces it;
- a job that raises or returns NaN (lstm_ae returns NaN for a failed job) is told to Optuna as
  FAIL, with its reason in the user attribute ``error``; the sweep goes on.

Select it with ``hydra.sweeper._target_=hydra_plugins.lstm_ae_optuna_sweeper.OptunaSweeper`` (the
``toy_optuna`` search does). Single-objective studies only.
"""
from __future__ import annotations

import logging
import math
import os
import socket
import time
from pathlib import Path
from typing import Any, List

import optuna
from hydra_plugins.hydra_optuna_sweeper._impl import OptunaSweeperImpl, create_params_from_overrides
from omegaconf import OmegaConf
from optuna.trial import TrialState

log = logging.getLogger(__name__)
WORKER = f"{socket.gethostname()}:{os.getpid()}"


def _alive(worker: str) -> bool:
    """Whether a worker ``host:pid`` may still run: True unless it is on this host and its process is gone."""
    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def fail_interrupted(study: optuna.Study) -> int:
    """Mark RUNNING trials whose worker process on this host is gone as FAIL (``interrupted``)."""
    n = 0
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = trial.user_attrs.get("worker")
        if worker and worker != WORKER and not _alive(worker):
            study._storage.set_trial_user_attr(trial._trial_id, "interrupted", True)
            study._storage.set_trial_state(trial._trial_id, TrialState.FAIL)
            n += 1
    return n


def counted(study: optuna.Study) -> int:
    """Trials that count towards n_trials: finished (not interrupted) or running."""
    return sum(
        1 for t in study.get_trials(deepcopy=False)
        if t.state == TrialState.RUNNING or (t.state.is_finished() and not t.user_attrs.get("interrupted"))
    )


class TotalTrialsImpl(OptunaSweeperImpl):
    """The plugin's implementation with the loop described in the module docstring."""

    def _open_study(self, direction: str, attempts: int = 6) -> optuna.Study:
        """Create or load the study. Workers that start together on a new database race to set
        up its tables (one gets an IntegrityError from SQLAlchemy): the loser waits and retries."""
        from sqlalchemy.exc import SQLAlchemyError

        for attempt in range(attempts):
            try:
                return optuna.create_study(study_name=self.study_name, storage=self.storage, sampler=self.sampler,
                                           direction=direction, load_if_exists=True)
            except SQLAlchemyError as err:
                if attempt == attempts - 1:
                    raise
                log.info("storage busy (%s); retrying", type(err).__name__)
                time.sleep(0.5 * (attempt + 1))
        raise AssertionError("unreachable")

    def sweep(self, arguments: List[str]) -> None:
        assert self.config is not None and self.launcher is not None
        self._process_searchspace_config()
        params_conf = self._parse_sweeper_params_config()
        params_conf.extend(arguments)
        distributions, fixed_params = create_params_from_overrides(params_conf)
        space = dict(self.search_space_distributions or {})
        space.update(distributions)
        for name in fixed_params:
            space.pop(name, None)
        directions = self._get_directions()
        if len(directions) != 1:
            raise ValueError("lstm_ae.optuna_sweeper supports one objective; use the plugin's own sweeper for several")
        study = self._open_study(directions[0])
        stale = fail_interrupted(study)
        log.info("Study %s in %s: %d trial(s) counted of n_trials=%d%s", study.study_name, self.storage,
                 counted(study), self.n_trials, f"; {stale} interrupted trial(s) marked failed" if stale else "")
        while True:
            todo = min(self.n_jobs, self.n_trials - counted(study))
            if todo <= 0:
                break
            trials = [study.ask() for _ in range(todo)]
            for trial in trials:
                trial.set_user_attr("worker", WORKER)
            overrides = self._configure_trials(trials, space, fixed_params)
            returns = self.launcher.launch(overrides, initial_job_idx=self.job_idx)
            self.job_idx += len(returns)
            for trial, ret in zip(trials, returns):
                try:
                    value = float(ret.return_value)  # re-raises the job's exception, if any
                    if math.isnan(value):
                        raise ValueError("the job failed (it returned NaN; its log says why)")
                    study.tell(trial, value)
                except Exception as err:  # noqa: BLE001 - any failure of one trial is recorded, not fatal
                    trial.set_user_attr("error", f"{type(err).__name__}: {err}"[:500])
                    study.tell(trial, state=TrialState.FAIL)
                    log.warning("trial %d failed: %s", trial.number, err)
        done = [t for t in study.trials if t.state == TrialState.COMPLETE]
        results: dict[str, Any] = {"name": "optuna", "n_trials": self.n_trials,
                                   "complete": len(done), "counted": counted(study)}
        if done:
            best = study.best_trial
            results.update(best_params=best.params, best_value=best.value)
            log.info("Best parameters: %s; best value %s", best.params, best.value)
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(OmegaConf.create(results), sweep_dir / "optimization_results.yaml")
