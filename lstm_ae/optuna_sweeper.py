"""The project's Optuna sweeper, on Hydra's public Sweeper API (optuna >= 4.9, SQLAlchemy 2).

It keeps the keys of the official hydra-optuna-sweeper 1.3 (``params``, ``sampler``, ``storage``,
``study_name``, ``n_trials``, ``n_jobs``, ``direction``, ``max_failure_rate``,
``custom_search_space``) and parses the same override syntax (``choice``, ``range``, ``interval``,
``tag(log, ...)``, ``~key``); the plugin's own test suite runs against it (upstream/, README). Why our own: the
plugin's 1.3 line needs optuna < 3 (SQLAlchemy 1.4), its 1.4 line is a release candidate of the
whole Hydra 1.4 stack, and neither lets a study be shared and resumed as below without
subclassing its private ``_impl`` (measured for issue 13; see docs/sweeps.md). The loop:

- the study stops at ``n_trials`` trials in total: before each batch, a worker counts the
  finished trials and the ones other workers are running, and asks only for what is missing;
- a trial left RUNNING by a killed sweep on this machine (its process is gone) is marked FAIL
  with the user attribute ``interrupted`` and is not counted, so a rerun replaces it; a sweep
  stopped by SIGTERM or Ctrl-C (SIGINT) marks its own running trials so at once
  (``interrupted=SIGTERM``) and ends in one line, exit status 128 + the signal's number;
- a job's number (its folder, ``hydra.sweep.subdir``) is its trial's number (times the number of
  ``seeds``, plus the seed's index): unique in the study, across calls and workers, so a new
  trial never writes into another trial's folder, and a sweep folder holding jobs of another
  search is refused in one line before any trial is asked for;
- a seeded sampler resuming a study that already has trials is reseeded from (its seed, the
  number of trials) so that it proposes new points rather than replaying those of the first call
  (a study started afresh samples exactly as its seed says; QMC and grid continue by themselves);
- a job that raises or returns NaN (lstm_ae returns NaN for a failed job) is told to Optuna as
  FAIL, with its reason in the user attribute ``error``; the sweep goes on unless more than
  ``max_failure_rate`` of a batch failed (default 1.0: never stop; the plugin's default is 0.0);
- several directions make a multi-objective study: each job returns one value per direction and
  ``optimization_results.yaml`` lists the Pareto front (no pruning: Optuna prunes one objective);
- ``seeds`` (e.g. ``[0, 1, 2]``) runs each trial once per seed (``seed_key=<seed>`` added to its
  overrides) and tells the study the mean over the seeds; the per-seed values and their standard
  deviation are the trial's user attributes;
- ``enqueue`` (a list of {param: value}) runs these configurations first (Optuna's ``enqueue_trial``;
  a value for every searched parameter), e.g. the current defaults, so the study's best is measured
  against them; a study that already has one (resumed) does not run it again;
- ``reuse_duplicates: true`` (for jobs that give the same result twice, e.g. seeded on CPU): a trial whose
  parameters repeat a finished trial's (TPE re-proposes categorical points) is told that trial's values
  without running (user attribute ``duplicate_of``);
- ``sampler=grid`` enumerates the (discrete) search space, and ``n_trials`` is capped at its size;
- a study database written by an older optuna stops the sweep with one line naming
  ``optuna storage upgrade``.
"""
from __future__ import annotations

import logging
import math
import os
import signal
import socket
import statistics
import sys
import threading
import time
import warnings
from pathlib import Path
import contextlib
import functools
from typing import Any, Callable, Iterator, List, Optional

import optuna
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, Transformer
from hydra.core.plugins import Plugins
from hydra.utils import instantiate
from omegaconf import OmegaConf
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from lstm_ae.errors import raise_interrupted
from lstm_ae.sweep import TRIAL_ENV, Pruned, PrunedAt

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


def interrupted(trial: Any) -> bool:
    """A trial that did not run to its end: failed without a job error (a job's failure is stored as
    ``error``): its worker died (:func:`fail_interrupted`, or Optuna after its heartbeat stopped) or
    was stopped by a signal (``interrupted`` is then its name), or it was a ``surplus`` trial. Such
    trials do not count towards n_trials."""
    attrs = trial.user_attrs
    return trial.state == TrialState.FAIL and (bool(attrs.get("interrupted")) or "error" not in attrs)


def fail_interrupted(study: optuna.Study, storage: optuna.storages.BaseStorage) -> int:
    """Mark RUNNING trials whose worker is gone as FAIL (:func:`interrupted`): its process on this
    host has ended, or (a database storage with heartbeats) its heartbeat stopped. Returns how many."""
    before = sum(map(interrupted, study.get_trials(deepcopy=False)))
    if heartbeats(storage):
        with quiet_heartbeats():
            optuna.storages.fail_stale_trials(study)
    study_id = storage.get_study_id_from_name(study.study_name)
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = trial.user_attrs.get("worker")
        if worker and worker != WORKER and not _alive(worker):
            trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
            storage.set_trial_user_attr(trial_id, "interrupted", True)
            try:
                storage.set_trial_state_values(trial_id, TrialState.FAIL)
            except optuna.exceptions.UpdateFinishedTrialError:
                pass  # another worker failed it first
    return sum(map(interrupted, study.get_trials(deepcopy=False))) - before


def others_running(study: optuna.Study, storage: Any) -> bool:
    """Whether other workers run trials that may yet be interrupted and need replacing: on this
    host (their process is watched) or anywhere when heartbeats are on."""
    on_watch = heartbeats(storage)
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = t.user_attrs.get("worker", "")
        if worker != WORKER and (on_watch or worker.rpartition(":")[0] == socket.gethostname()):
            return True
    return False


def counts(trial: Any) -> bool:
    """Whether a trial counts towards n_trials: finished (not interrupted) or running."""
    return trial.state == TrialState.RUNNING or (trial.state.is_finished() and not interrupted(trial))


def counted(study: optuna.Study) -> int:
    """How many of the study's trials count towards n_trials."""
    return sum(map(counts, study.get_trials(deepcopy=False)))


def distribution(override: Override) -> Any:
    """An Optuna distribution for a sweep override (choice, range, interval, tag(log, ...)), else its value."""
    if not override.is_sweep_override():
        return override.get_value_element_as_str()
    encoded = lambda: list(override.sweep_iterator(transformer=Transformer.encode))  # noqa: E731
    value = override.value()
    if override.is_choice_sweep():
        return CategoricalDistribution(encoded())
    if override.is_range_sweep():
        values = encoded()
        if value.shuffle or not values:
            return CategoricalDistribution(values)
        step = abs(value.step)
        if all(isinstance(v, int) for v in (value.start, value.stop, value.step)):
            return IntDistribution(min(values), max(values), step=step)
        return FloatDistribution(float(min(values)), float(max(values)), step=float(step))
    if override.is_interval_sweep():
        log_ = "log" in value.tags
        if isinstance(value.start, int) and isinstance(value.end, int):
            return IntDistribution(value.start, value.end, log=log_)
        return FloatDistribution(value.start, value.end, log=log_)
    raise NotImplementedError(f"{override} is not supported by the Optuna sweeper")


def search_space(arguments: List[str]) -> tuple[dict[str, BaseDistribution], dict[str, Any], list[str]]:
    """Distributions, fixed values and deletions (``~key``, passed on to every job) from Hydra override strings."""
    space: dict[str, BaseDistribution] = {}
    fixed: dict[str, Any] = {}
    removed: list[str] = []
    for override in OverridesParser.create().parse_overrides(arguments):
        if override.is_delete():
            removed.append(str(override.input_line))
            continue
        value = distribution(override)
        (space if isinstance(value, BaseDistribution) else fixed)[override.get_key_element()] = value
    return space, fixed, removed


def objective_values(value: Any, n: int) -> list[float]:
    """A job's return value as ``n`` floats (one per direction); raises ValueError with the reason."""
    try:
        values = [float(value)] if n == 1 else [float(v) for v in value]
    except (TypeError, ValueError):
        want = "a number" if n == 1 else f"a list of {n} numbers (one per direction)"
        raise ValueError(f"the job returned {value!r}; the sweeper needs {want}") from None
    if len(values) != n:
        raise ValueError(f"the job returned {len(values)} values for {n} directions")
    if any(math.isnan(v) for v in values):
        raise ValueError("the job failed (it returned NaN; its log says why)")
    return values


def grid_choices(dist: BaseDistribution) -> list:
    if isinstance(dist, CategoricalDistribution):
        return list(dist.choices)
    if isinstance(dist, IntDistribution) and not dist.log:
        return list(range(dist.low, dist.high + 1, dist.step))
    if isinstance(dist, FloatDistribution) and dist.step is not None:
        n = int(round((dist.high - dist.low) / dist.step))
        return [round(dist.low + i * dist.step, 12) for i in range(n + 1)]
    raise ValueError("the grid sampler needs discrete parameters (choice or range)")


def check_enqueue(enqueue: list, space: dict) -> list:
    """``hydra.sweeper.enqueue``'s configurations, each a value for every searched parameter, each value one
    its distribution holds; or one line naming what is wrong."""
    out = []
    for i, params in enumerate(enqueue):
        where = f"hydra.sweeper.enqueue[{i}]"
        unknown = sorted(set(params) - set(space))
        missing = sorted(set(space) - set(params))
        wrong = ([f"no such searched parameter {', '.join(unknown)}"] if unknown else []) + (
            [f"no value for {', '.join(missing)}"] if missing else [])
        if wrong:
            raise SystemExit(f"{where}: {'; '.join(wrong)}; give a value for each parameter of hydra.sweeper.params "
                             f"({', '.join(space)})")
        for name, value in params.items():
            dist = space[name]
            try:
                ok = dist._contains(dist.to_internal_repr(value))
            except (ValueError, TypeError):
                ok = False
            if not ok:
                raise SystemExit(f"{where}: {name}={value} is not in its search space ({dist}); give one of its values")
        out.append(dict(params))
    return out


def suggest(trial: optuna.Trial, name: str, dist: BaseDistribution) -> Any:
    """``trial.suggest_*`` for a ready distribution (Optuna's public API)."""
    if isinstance(dist, CategoricalDistribution):
        return trial.suggest_categorical(name, dist.choices)
    if isinstance(dist, IntDistribution):
        return trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)
    return trial.suggest_float(name, dist.low, dist.high, step=dist.step, log=dist.log)


JOURNAL = "journal:"


def pruning_callback(sweeper_cfg: Any, objective: str) -> Optional[Callable[..., None]]:
    """In a job of this sweeper: an epoch callback that reports the best ``row[objective]`` so far to
    the job's trial and raises :class:`Pruned` when the study's pruner says so; None outside such a
    job (or with an in-memory study, which the job cannot reach).

    The best so far, not the epoch's own value: what the trial would return if it stopped now when
    the objective is the validation loss (the toy's), and a signal whose ranks hold across trials
    where the epoch's own value jumps while OneCycle's learning rate is high (docs/sweeps.md, Pruning)."""
    number = os.environ.get(TRIAL_ENV)
    if number is None or sweeper_cfg is None or not sweeper_cfg.get("storage") or sweeper_cfg.get("pruner") is None:
        return None
    pruner = instantiate(sweeper_cfg.pruner)
    if isinstance(pruner, optuna.pruners.NopPruner):
        return None
    storage = open_storage(sweeper_cfg.storage)
    study = optuna.load_study(study_name=sweeper_cfg.study_name, storage=storage, pruner=pruner)
    trial_id = storage.get_trial_id_from_study_id_trial_number(storage.get_study_id_from_name(study.study_name),
                                                               int(number))
    trial = optuna.trial.Trial(study, trial_id)

    minimize = study.direction == optuna.study.StudyDirection.MINIMIZE
    reported = storage.get_trial(trial_id).intermediate_values  # a resumed trial's earlier epochs
    best = (min if minimize else max)(reported.values()) if reported else math.nan

    def report(epoch: int, model: Any, row: dict) -> None:
        nonlocal best
        value = float(row[objective])
        if math.isnan(best) or (value < best if minimize else value > best):
            best = value
        trial.report(best, epoch)
        if trial.should_prune():
            raise Pruned(epoch)

    return report


def open_storage(url: Any, heartbeat_interval: Optional[int] = None,
                 grace_period: Optional[int] = None) -> optuna.storages.BaseStorage:
    """The study's storage: None (in memory), an SQLAlchemy URL (``sqlite:///...``,
    ``postgresql+psycopg://user@host/db``), or ``journal:<file>``: Optuna's JournalStorage in an
    append-only file, for workers on machines that share a file system (its parent folder is
    created). A database storage with ``heartbeat_interval`` (seconds) keeps a heartbeat per running
    trial: one silent for ``grace_period`` (default 2 x the interval) is failed as interrupted."""
    if isinstance(url, str) and url.startswith(JOURNAL):
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        path = Path(url[len(JOURNAL):]).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    if isinstance(url, str) and heartbeat_interval:
        with quiet_heartbeats():
            return optuna.storages.RDBStorage(url, heartbeat_interval=heartbeat_interval, grace_period=grace_period)
    return optuna.storages.get_storage(url)


def _database_url(url: Any) -> Any:
    """``url`` parsed as an SQLAlchemy URL; None for no storage or a journal file. Not a URL: one line."""
    if not (isinstance(url, str) and "://" in url) or url.startswith(JOURNAL):
        return None
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url)
    except ArgumentError:
        raise SystemExit(f"hydra.sweeper.storage={url.split('://')[0]}://...: not a database URL; "
                         "e.g. sqlite:///study.db, postgresql+psycopg://user@host:5432/db or journal:<file>") from None


def shown(url: Any) -> str:
    """The storage URL as logs and messages print it: a password in it masked."""
    parsed = _database_url(url)
    return str(url) if parsed is None else parsed.render_as_string(hide_password=True)


def refuse_password(url: Any) -> None:
    """A password written in the storage URL would reach the logs and every run folder's
    ``.hydra/hydra.yaml``: refused, with where it goes instead."""
    parsed = _database_url(url)
    if parsed is not None and parsed.password:
        raise SystemExit(f"hydra.sweeper.storage={shown(url)}: holds a password, which would be written to the "
                         "logs and every run folder's .hydra/ files; remove it from the URL and give it in "
                         "PGPASSWORD or ~/.pgpass (PostgreSQL) or the driver's option file (MySQL)")


@contextlib.contextmanager
def quiet_heartbeats() -> Iterator[None]:
    """Optuna 5 calls heartbeats experimental (since 2.9) and expects them under Study.optimize; this
    loop records them itself (:class:`Heartbeat`): both warnings are noise here (and errors under -Werror)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        warnings.filterwarnings("ignore", "Heartbeat of storage is supposed to be used with Study.optimize")
        yield


def heartbeats(storage: Any) -> bool:
    """Whether ``storage`` keeps heartbeats (a database storage opened with heartbeat_interval)."""
    interval = getattr(storage, "get_heartbeat_interval", None)
    return interval is not None and interval() is not None


class Heartbeat:
    """While a batch runs, records a heartbeat for each of its trials every ``interval`` seconds."""

    def __init__(self, storage: Any, trials: list) -> None:
        self.storage, self.trials, self.stop = storage, trials, threading.Event()
        self.thread = threading.Thread(target=self._beat, daemon=True, name="optuna-heartbeat")

    def _beat(self) -> None:
        interval = self.storage.get_heartbeat_interval()
        while True:
            for trial in self.trials:
                try:
                    self.storage.record_heartbeat(trial._trial_id)
                except Exception as err:  # noqa: BLE001 - a missed beat is retried; the sweep goes on
                    log.warning("heartbeat of trial %d not recorded: %s", trial.number, err)
            if self.stop.wait(interval):
                return

    def __enter__(self) -> "Heartbeat":
        if heartbeats(self.storage):
            self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join()


def tell(study: optuna.Study, trial: optuna.Trial, *args: Any, **kwargs: Any) -> None:
    """``study.tell``. The grid sampler calls ``study.stop()`` after the last point of its grid, which
    optuna allows only inside ``study.optimize`` and refuses with a RuntimeError once the trial is
    stored; the loop stops by itself there (n_trials is capped at the grid's size)."""
    try:
        study.tell(trial, *args, **kwargs)
    except RuntimeError as err:
        if "Study.stop" not in str(err):
            raise


def consecutive(trials: list) -> list[list[int]]:
    """Indices of ``trials`` in runs of consecutive trial numbers: each run is one launch whose jobs
    the launcher numbers from its first trial's (another worker's trial between two of ours splits a batch)."""
    runs: list[list[int]] = []
    for i, trial in enumerate(trials):
        if runs and trial.number == trials[runs[-1][-1]].number + 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    return runs


def foreign_job(sweep_dir: Path, study: optuna.Study, per_trial: int) -> Optional[str]:
    """The first job folder of ``sweep_dir`` (numbered as ``hydra.job.num``) that is not the job of
    the study's trial of its number: one of another search, which a trial of this study would
    overwrite; None when there is none."""
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    for overrides_file in sorted(sweep_dir.glob("*/.hydra/overrides.yaml")):
        job = overrides_file.parent.parent.name
        if not job.isdigit():
            continue
        trial = trials.get(int(job) // per_trial)
        ran = {str(o) for o in OmegaConf.load(overrides_file)}
        if trial is None or any(f"{k}={v}" not in ran for k, v in trial.params.items()):
            return job
    return None


def resumed_sampler(sampler: Any, sampler_cfg: Any, n_before: int) -> Any:
    """For a study that already has ``n_before`` trials: the sampler of ``sampler_cfg`` reseeded from
    (its seed, ``n_before``), else None (no seed, a new study, or a sampler that continues by itself).

    A seeded sampler in a new process starts its random stream afresh: TPE's and NSGA-II's first
    trials, and every trial of the random sampler, would repeat those of the first call. QMC numbers
    its points in the study and the grid sampler picks among the unvisited points: both are left."""
    seed = OmegaConf.select(sampler_cfg, "seed") if OmegaConf.is_config(sampler_cfg) else None
    if n_before == 0 or seed is None or isinstance(sampler, (functools.partial, optuna.samplers.GridSampler,
                                                             optuna.samplers.QMCSampler)):
        return None
    import numpy as np

    return instantiate(sampler_cfg, seed=int(np.random.SeedSequence([int(seed), n_before]).generate_state(1)[0]))


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class TotalTrialsSweep:
    """The sweep loop described in the module docstring, on Hydra's public Sweeper API."""

    def __init__(self, sampler: Any, direction: Any, storage: Any, study_name: Any, n_trials: int, n_jobs: int,
                 params: Any = None, custom_search_space: Any = None, pruner: Any = None,
                 max_failure_rate: float = 1.0, seeds: Any = None, seed_key: str = "trainer.seed", enqueue: Any = None,
                 reuse_duplicates: bool = False,
                 heartbeat_interval: Optional[int] = 60, grace_period: Optional[int] = None) -> None:
        refuse_password(storage)
        self.sampler, self.direction, self.storage, self.study_name = sampler, direction, storage, study_name
        self.heartbeat_interval, self.grace_period = heartbeat_interval, grace_period
        self.pruner, self.max_failure_rate = pruner, max_failure_rate
        self.seeds, self.seed_key = list(seeds or []), seed_key
        self.enqueue = [dict(e) for e in (enqueue or [])]
        self.reuse_duplicates = bool(reuse_duplicates)
        self.n_trials, self.n_jobs, self.params = n_trials, n_jobs, params or {}
        self.asked: list = []  # the trials of the batch being asked for and run
        self.extend = instantiate({"_target_": custom_search_space, "_partial_": True}) if custom_search_space else None
        self.directions = [str(getattr(d, "name", d)) for d in ([direction] if isinstance(direction, str) else direction)]
        prunes = pruner is not None and not isinstance(pruner, optuna.pruners.NopPruner)
        if not 0.0 <= max_failure_rate <= 1.0:
            raise SystemExit(f"hydra.sweeper.max_failure_rate={max_failure_rate}: give a fraction of a batch in [0, 1]")
        if prunes and len(self.directions) > 1:
            raise SystemExit(f"hydra.sweeper.direction={self.directions}: Optuna prunes single-objective studies "
                             "only; use hydra/sweeper/pruner=none or one direction")
        if prunes and len(self.seeds) > 1:
            raise SystemExit(f"hydra.sweeper.seeds={self.seeds}: a pruner stops single jobs, not a trial's seeds; "
                             "use hydra/sweeper/pruner=none or one seed")

    def setup(self, *, hydra_context: Any, task_function: Any, config: Any) -> None:
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config)

    def _configure_trials(self, trials: list, space: dict, fixed: dict, removed: list) -> list:
        """Each trial's job overrides: one job per trial, or one per seed with ``seeds``."""
        overrides = []
        for trial in trials:
            for name, dist in space.items():
                suggest(trial, name, dist)
            if self.extend:
                self.extend(self.config, trial)
            for name, value in fixed.items():
                trial.set_user_attr(name, value)
            job = [f"{k}={v}" for k, v in {**trial.params, **fixed}.items()] + removed
            job.append(f"++hydra.job.env_set.{TRIAL_ENV}={trial.number}")  # the job reports to this trial
            overrides += [(*job, f"{self.seed_key}={s}") for s in self.seeds] or [tuple(job)]
        return overrides

    def _open_study(self, attempts: int = 6) -> tuple[optuna.Study, Any]:
        """Create or load the study. Workers that start together on a new database race to set
        up its tables (one gets an IntegrityError from SQLAlchemy): the loser waits and retries."""
        from sqlalchemy.exc import OperationalError, SQLAlchemyError

        url, key = self.storage, f"hydra.sweeper.storage={shown(self.storage)}"
        server = isinstance(url, str) and not url.startswith(("sqlite", JOURNAL))
        for attempt in range(attempts):
            try:
                storage = open_storage(url, self.heartbeat_interval, self.grace_period)
                study = optuna.create_study(study_name=self.study_name, storage=storage, sampler=self.sampler,
                                            pruner=self.pruner, directions=self.directions, load_if_exists=True)
            except ImportError as err:  # the URL's database driver
                extra = " (pip install -e '.[postgres]')" if "psycopg" in str(err) else ""
                raise SystemExit(f"{key}: its database driver is not installed ({err}){extra}") from None
            except OSError as err:  # a journal file that cannot be created or written
                raise SystemExit(f"{key}: cannot write the journal file ({err.strerror or err}); "
                                 "choose a writable path") from None
            except RuntimeError as err:
                if "storage upgrade" not in str(err):
                    raise
                raise SystemExit(f"{shown(url)}: the study database was written by an older optuna ({err}); "
                                 f"upgrade it once (one-way) with: optuna storage upgrade --storage {shown(url)}") from None
            except SQLAlchemyError as err:
                # SQLite: a busy file, or workers racing to create the tables; a server: only that race
                # (IntegrityError) is retried; one that refuses the login or cannot be reached answers alike each time
                if attempt == attempts - 1 or (server and isinstance(err, OperationalError)):
                    first = " ".join(str(getattr(err, "orig", None) or err).split())[:300]
                    fix = ("check the host and port, that the server runs and the user, database and password "
                           "(PGPASSWORD or ~/.pgpass; never in the URL)") if server else \
                        "check the URL, that its folder exists and is writable"
                    raise SystemExit(f"{key}: cannot open the study database ({first}); {fix}") from None
                log.info("storage busy (%s); retrying", type(err).__name__)
                time.sleep(0.5 * (attempt + 1))
                continue
            have = [d.name.lower() for d in study.directions]
            if have != [d.lower() for d in self.directions]:
                raise SystemExit(f"study {study.study_name!r} in {shown(url)} was created to {'/'.join(have)}, but "
                                 f"hydra.sweeper.direction={'/'.join(self.directions)}; use the study's direction "
                                 "or another hydra.sweeper.study_name")
            return study, storage
        raise AssertionError("unreachable")

    def _tell(self, study: optuna.Study, trial: optuna.Trial, rets: list) -> Optional[Exception]:
        """Tell the study one trial's outcome from its job returns (one per seed); the failure, if any."""
        try:
            values = []
            for ret in rets:
                value = ret.return_value  # re-raises the job's exception, if any
                if isinstance(value, PrunedAt):
                    tell(study, trial, state=TrialState.PRUNED)
                    log.info("trial %d pruned after epoch %d", trial.number, value.epoch)
                    return None
                values.append(objective_values(value, len(self.directions)))
        except Exception as err:  # noqa: BLE001 - any failure of one trial is recorded, not fatal
            trial.set_user_attr("error", f"{type(err).__name__}: {err}"[:500])
            tell(study, trial, state=TrialState.FAIL)
            log.warning("trial %d failed: %s", trial.number, err)
            return err
        if len(values) > 1:  # seeds: the mean per objective; the spread is kept beside it
            trial.set_user_attr("seed_values", values)
            trial.set_user_attr("seed_std", [statistics.stdev(v) for v in zip(*values)])
        tell(study, trial, [statistics.fmean(v) for v in zip(*values)])
        return None

    def _tell_duplicate(self, study: optuna.Study, trial: optuna.Trial, fixed: dict) -> bool:
        """With ``reuse_duplicates``: when a COMPLETE trial has ``trial``'s parameters (and fixed values), tell
        ``trial`` its values (user attribute ``duplicate_of``, its seeds' values copied) and say so."""
        def key(params: dict, attrs: dict) -> str:
            return repr(sorted({**params, **{k: attrs.get(k) for k in fixed}}.items()))

        mine = key(trial.params, trial.user_attrs)  # (_configure_trials stored the fixed values there)
        for done in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            if done.number != trial.number and key(done.params, done.user_attrs) == mine:
                trial.set_user_attr("duplicate_of", done.number)
                for attr in ("seed_values", "seed_std"):
                    if attr in done.user_attrs:
                        trial.set_user_attr(attr, done.user_attrs[attr])
                tell(study, trial, list(done.values))
                log.info("trial %d repeats trial %d's parameters: told its values, not run", trial.number, done.number)
                return True
        return False

    def _drop_surplus(self, study: optuna.Study, trials: list) -> list:
        """Workers that count at the same moment may together ask for more than n_trials: the first
        n_trials counted trials (by number) run; a later one is failed at once as ``surplus``."""
        keep = []
        for trial in trials:
            ahead = sum(1 for t in study.get_trials(deepcopy=False) if t.number < trial.number and counts(t))
            if ahead < self.n_trials:
                keep.append(trial)
                continue
            trial.set_user_attr("surplus", True)
            tell(study, trial, state=TrialState.FAIL)
            log.info("trial %d not run: another worker asked for the last of n_trials=%d at the same time",
                     trial.number, self.n_trials)
        return keep

    def sweep(self, arguments: List[str]) -> None:
        assert self.config is not None and self.launcher is not None
        space, fixed_params, removed = search_space([f"{k}={v}" for k, v in self.params.items()] + list(arguments))
        for name in fixed_params:
            space.pop(name, None)
        if isinstance(self.sampler, functools.partial) and self.sampler.func is optuna.samplers.GridSampler:
            grid = {name: grid_choices(dist) for name, dist in space.items()}
            self.sampler = self.sampler(grid)
            self.n_trials = min(self.n_trials, math.prod(len(v) for v in grid.values()))
        queued = check_enqueue(self.enqueue, space)
        study, storage = self._open_study()
        for params in queued:  # (a study that has this trial, queued, running or done, skips it)
            study.enqueue_trial(params, skip_if_exists=True)
        stale = fail_interrupted(study, storage)
        log.info("Study %s in %s: %d trial(s) counted of n_trials=%d%s", study.study_name, shown(self.storage),
                 counted(study), self.n_trials, f"; {stale} interrupted trial(s) marked failed" if stale else "")
        sweep_dir = Path(self.config.hydra.sweep.dir)
        per_trial = max(1, len(self.seeds))
        if (job := foreign_job(sweep_dir, study, per_trial)) is not None:
            raise SystemExit(f"hydra.sweep.dir={sweep_dir}: its job folder {job} was not run by trial "
                             f"{int(job) // per_trial} of study {study.study_name!r} in {shown(self.storage)} "
                             "(another search's folder, or other hydra.sweeper.seeds) and a trial would overwrite it; "
                             "give this search its own hydra.sweep.dir")
        n_before = len(study.get_trials(deepcopy=False))
        sampler = resumed_sampler(self.sampler, OmegaConf.select(self.config, "hydra.sweeper.sampler"), n_before)
        if sampler is not None:
            study.sampler = sampler
            log.info("sampler reseeded from (hydra.sweeper.sampler.seed, %d trials in the study): it proposes new "
                     "points rather than those of the study's first call", n_before)
        previous = {s: signal.getsignal(s) or signal.SIG_DFL for s in STOP_SIGNALS} \
            if threading.current_thread() is threading.main_thread() else {}  # (handlers: the main thread's)
        try:
            for s in previous:
                signal.signal(s, raise_interrupted)
            self._run(study, storage, space, fixed_params, removed)
        except KeyboardInterrupt as stop:  # Ctrl-C, or SIGTERM (Interrupted)
            for s in previous:
                signal.signal(s, signal.SIG_IGN)  # a second signal does not cut the clean-up short
            signum = getattr(stop, "signum", signal.SIGINT)
            marked = self._fail_own_running(study, storage, signal.Signals(signum).name)
            print(f"sweep stopped by {signal.Signals(signum).name}: {marked}; the same command with "
                  f"hydra.sweep.dir={sweep_dir} continues study {study.study_name!r} (n_trials counts the whole study)",
                  file=sys.stderr, flush=True)
            raise SystemExit(128 + signum) from None
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
        self._write_results(study, sweep_dir)

    def _fail_own_running(self, study: optuna.Study, storage: Any, reason: str) -> str:
        """Mark this worker's running trials FAIL with the user attribute ``interrupted=<reason>``;
        what was done, in words."""
        numbers, asked = [], {t.number for t in self.asked}
        try:
            study_id = storage.get_study_id_from_name(study.study_name)
            for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
                worker = trial.user_attrs.get("worker")
                if worker == WORKER or (worker is None and trial.number in asked):
                    trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
                    with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):  # it ended meanwhile
                        storage.set_trial_user_attr(trial_id, "interrupted", reason)
                        storage.set_trial_state_values(trial_id, TrialState.FAIL)
                        numbers.append(trial.number)
        except Exception as err:  # noqa: BLE001 - the storage is out of reach: the next call marks them
            return f"its running trials are not marked ({type(err).__name__}; the next call marks them)"
        if not numbers:
            return "no trial was running"
        return (f"trial{'s' if len(numbers) > 1 else ''} {', '.join(map(str, numbers))} marked FAIL "
                f"(user attribute interrupted={reason})")

    def _run(self, study: optuna.Study, storage: Any, space: dict, fixed_params: dict, removed: list) -> None:
        """Ask, launch and tell batches until the study has n_trials counted trials."""
        per_trial = max(1, len(self.seeds))
        while True:
            if stale := fail_interrupted(study, storage):  # another worker died: its trials are run again
                log.info("%d interrupted trial(s) of other workers marked failed; they will be replaced", stale)
            todo = min(self.n_jobs, self.n_trials - counted(study))
            if todo <= 0:
                if not others_running(study, storage):
                    break
                time.sleep(min(5.0, self.heartbeat_interval or 5.0))  # until they finish or turn out to be dead
                continue
            self.asked = []  # what a signal's clean-up marks (a trial not yet given our worker's name)
            with quiet_heartbeats():
                for _ in range(todo):
                    self.asked.append(study.ask())
            trials = list(self.asked)
            for trial in trials:
                trial.set_user_attr("worker", WORKER)
            if not (trials := self._drop_surplus(study, trials)):
                continue
            overrides = self._configure_trials(trials, space, fixed_params, removed)
            if self.reuse_duplicates:  # a trial that repeats a finished one is told its values, not run
                fresh = [i for i, trial in enumerate(trials) if not self._tell_duplicate(study, trial, fixed_params)]
                overrides = [job for i in fresh for job in overrides[i * per_trial:(i + 1) * per_trial]]
                if not (trials := [trials[i] for i in fresh]):
                    continue
            returns = []
            with Heartbeat(storage, trials):
                for run in consecutive(trials):  # job number = trial number x seeds (+ the seed's index)
                    jobs = [job for i in run for job in overrides[i * per_trial:(i + 1) * per_trial]]
                    returns += self.launcher.launch(jobs, initial_job_idx=trials[run[0]].number * per_trial)
            failures = [err for i, trial in enumerate(trials)
                        if (err := self._tell(study, trial, returns[i * per_trial:(i + 1) * per_trial]))]
            if failures and len(failures) / len(trials) > self.max_failure_rate:
                log.error("%d of %d trial(s) of this batch failed (hydra.sweeper.max_failure_rate=%s): stopping",
                          len(failures), len(trials), self.max_failure_rate)
                raise failures[0]

    def _write_results(self, study: optuna.Study, sweep_dir: Path) -> None:
        done = [t for t in study.trials if t.state == TrialState.COMPLETE]
        results: dict[str, Any] = {"name": "optuna", "n_trials": self.n_trials,
                                   "complete": len(done), "counted": counted(study)}
        if done and len(self.directions) == 1:
            best = study.best_trial
            results.update(best_params=best.params, best_value=best.value)
            log.info("Best parameters: %s; best value %s", best.params, best.value)
        elif done:
            results["solutions"] = [{"params": t.params, "values": t.values} for t in study.best_trials]
            log.info("%d Pareto-optimal trial(s)", len(results["solutions"]))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(OmegaConf.create(results), sweep_dir / "optimization_results.yaml")
