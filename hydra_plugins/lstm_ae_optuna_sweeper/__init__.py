"""The project's Optuna sweeper (lstm_ae/optuna_sweeper.py) as a Hydra plugin: ``hydra/sweeper=optuna``
with its samplers ``hydra/sweeper/sampler=tpe|random|grid|nsgaii|qmc``. The class lives here because
Hydra 1.3 loads plugins only from the ``hydra_plugins`` namespace. Importing optuna is deferred to
the first sweep (Hydra imports every plugin module at start-up, and optuna takes about a second)."""
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from hydra.plugins.sweeper import Sweeper
from omegaconf import MISSING


@dataclass
class TPE:
    _target_: str = "optuna.samplers.TPESampler"
    seed: Optional[int] = None
    n_startup_trials: int = 10
    n_ei_candidates: int = 24
    multivariate: bool = False
    group: bool = False
    constant_liar: bool = False


@dataclass
class Random:
    _target_: str = "optuna.samplers.RandomSampler"
    seed: Optional[int] = None


@dataclass
class Grid:
    _target_: str = "optuna.samplers.GridSampler"
    _partial_: bool = True  # the search space comes from the params at sweep time
    seed: Optional[int] = None


@dataclass
class NSGAII:
    _target_: str = "optuna.samplers.NSGAIISampler"
    seed: Optional[int] = None
    population_size: int = 50


@dataclass
class QMC:
    _target_: str = "optuna.samplers.QMCSampler"
    seed: Optional[int] = None
    qmc_type: str = "sobol"
    scramble: bool = False


@dataclass
class NoPruner:
    _target_: str = "optuna.pruners.NopPruner"


@dataclass
class MedianPruner:
    _target_: str = "optuna.pruners.MedianPruner"
    n_startup_trials: int = 5  # trials that finish before any is pruned
    n_warmup_steps: int = 10  # epochs a trial always trains
    interval_steps: int = 1


@dataclass
class PercentilePruner:
    _target_: str = "optuna.pruners.PercentilePruner"
    percentile: float = 75.0  # stops a trial worse than this percentile of the others at its epoch (median: 50)
    n_startup_trials: int = 5
    n_warmup_steps: int = 10
    interval_steps: int = 1


@dataclass
class SuccessiveHalvingPruner:
    _target_: str = "optuna.pruners.SuccessiveHalvingPruner"
    min_resource: Any = "auto"
    reduction_factor: int = 4
    min_early_stopping_rate: int = 0


@dataclass
class HyperbandPruner:
    _target_: str = "optuna.pruners.HyperbandPruner"
    min_resource: int = 1
    max_resource: Any = "auto"
    reduction_factor: int = 3


@dataclass
class ThresholdPruner:
    _target_: str = "optuna.pruners.ThresholdPruner"
    lower: Optional[float] = None
    upper: Optional[float] = None
    n_warmup_steps: int = 0


@dataclass
class OptunaSweeperConf:
    _target_: str = "hydra_plugins.lstm_ae_optuna_sweeper.OptunaSweeper"
    defaults: List[Any] = field(default_factory=lambda: [{"sampler": "tpe"}, {"pruner": "none"}])
    sampler: Any = MISSING
    pruner: Any = MISSING  # each job reports its validation objective every epoch; a pruned job stops
    direction: Any = "minimize"
    storage: Optional[Any] = None
    study_name: Optional[str] = None
    n_trials: int = 20
    n_jobs: int = 1
    max_failure_rate: float = 1.0  # stop when more than this fraction of a batch failed (1.0: never; plugin: 0.0)
    params: Optional[Dict[str, str]] = None
    custom_search_space: Optional[str] = None
    seeds: Optional[List[int]] = None  # run each trial once per seed; the study gets the mean
    seed_key: str = "trainer.seed"  # the override that sets a job's seed
    # database storages: each running trial's heartbeat every heartbeat_interval seconds; a trial
    # silent for grace_period (null: 2 x the interval) is failed as interrupted and replaced
    heartbeat_interval: Optional[int] = 60
    grace_period: Optional[int] = None


cs = ConfigStore.instance()
cs.store(group="hydra/sweeper", name="optuna", node=OptunaSweeperConf, provider="lstm_ae")
for name, node in {"tpe": TPE, "random": Random, "grid": Grid, "nsgaii": NSGAII, "qmc": QMC}.items():
    cs.store(group="hydra/sweeper/sampler", name=name, node=node, provider="lstm_ae")
for name, node in {"none": NoPruner, "median": MedianPruner, "percentile": PercentilePruner,
                   "successive_halving": SuccessiveHalvingPruner, "hyperband": HyperbandPruner,
                   "threshold": ThresholdPruner}.items():
    cs.store(group="hydra/sweeper/pruner", name=name, node=node, provider="lstm_ae")


class OptunaSweeper(Sweeper):
    """Hydra instantiates this with the sweeper config (the sampler already instantiated: Hydra
    1.3 instantiates plugin configs recursively; a grid sampler arrives as a functools.partial)."""

    def __init__(self, **kwargs: Any) -> None:
        from lstm_ae.optuna_sweeper import TotalTrialsSweep

        self.impl = TotalTrialsSweep(**kwargs)

    def setup(self, *, hydra_context: Any, task_function: Any, config: Any) -> None:
        self.impl.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: List[str]) -> None:
        return self.impl.sweep(arguments)
