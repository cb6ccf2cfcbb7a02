"""The project's Optuna sweeper (lstm_ae/optuna_sweeper.py) as a Hydra plugin: ``hydra/sweeper=optuna``
with its samplers ``hydra/sweeper/sampler=tpe|random|grid|nsgaii|qmc`` and pruners
``hydra/sweeper/pruner=...``. The class lives here because Hydra 1.3 loads plugins only from the
``hydra_plugins`` namespace. Importing optuna is deferred to the first sweep (Hydra imports every
plugin module at start-up, and optuna takes about a second).

The official hydra-optuna-sweeper registers the same names (``hydra/sweeper/optuna``, the samplers
``tpe``, ``random``, ``grid``, ``nsgaii``, ``qmc``) in Hydra's ConfigStore, where the last plugin
imported wins: which one that is depends on the order of sys.path (measured with 1.3.0 and 1.4.0rc3
on PYTHONPATH: theirs, so ``hparams_search=toy_optuna`` stopped at ``Could not override
'hydra/sweeper/pruner'``, theirs having no pruners, and ``hydra/sweeper=optuna`` ran their sweeper).
:class:`KeepOurNames` stores ours again once every plugin is imported and before any config is
composed (Hydra asks search-path plugins for their paths right after importing all plugins), so
these names are the project's whatever else is installed; the sweeper then says in one line that
the plugin is not used (:data:`SHADOWED`). The plugin's other samplers (cmaes, motpe, ...) keep
their entries.
"""
import logging
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_search_path import ConfigSearchPath
from hydra.core.config_store import ConfigStore
from hydra.plugins.search_path_plugin import SearchPathPlugin
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
    # configurations the study runs first (Optuna's enqueue_trial; each {param: value} of params), e.g. the
    # current defaults, so that the study's best is measured against them; a study that has one already skips it
    enqueue: Optional[List[Dict[str, Any]]] = None
    # a trial whose parameters repeat a finished trial's is told its values without running (user attribute
    # duplicate_of): for jobs that give the same result twice (seeded, on CPU); TPE re-proposes categorical points
    reuse_duplicates: bool = False
    # database storages: each running trial's heartbeat every heartbeat_interval seconds; a trial
    # silent for grace_period (null: 2 x the interval) is failed as interrupted and replaced
    heartbeat_interval: Optional[int] = 60
    grace_period: Optional[int] = None


PROVIDER = "lstm_ae"
SAMPLERS = {"tpe": TPE, "random": Random, "grid": Grid, "nsgaii": NSGAII, "qmc": QMC}
PRUNERS = {"none": NoPruner, "median": MedianPruner, "percentile": PercentilePruner,
           "successive_halving": SuccessiveHalvingPruner, "hyperband": HyperbandPruner, "threshold": ThresholdPruner}
SHADOWED: Dict[str, str] = {}  # config name -> the provider whose entry ours replaced (the official plugin's)


def register() -> None:
    """Store the sweeper, sampler and pruner configs under their names; an entry another provider
    stored under one of them is replaced, and remembered in :data:`SHADOWED`."""
    cs = ConfigStore.instance()
    for group, nodes in {"hydra/sweeper": {"optuna": OptunaSweeperConf}, "hydra/sweeper/sampler": SAMPLERS,
                         "hydra/sweeper/pruner": PRUNERS}.items():
        for name, node in nodes.items():
            try:
                provider = cs.load(f"{group}/{name}.yaml").provider
            except Exception:  # noqa: BLE001 - not stored yet
                provider = PROVIDER
            if provider != PROVIDER:
                SHADOWED[f"{group}/{name}"] = str(provider)
            cs.store(group=group, name=name, node=node, provider=PROVIDER)


register()


class KeepOurNames(SearchPathPlugin):
    """Adds no search path: Hydra calls it after importing every plugin, before composing a config,
    the moment to store our configs again over any plugin imported after this module."""

    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        register()


class OptunaSweeper(Sweeper):
    """Hydra instantiates this with the sweeper config (the sampler already instantiated: Hydra
    1.3 instantiates plugin configs recursively; a grid sampler arrives as a functools.partial)."""

    def __init__(self, **kwargs: Any) -> None:
        from lstm_ae.optuna_sweeper import TotalTrialsSweep

        self.impl = TotalTrialsSweep(**kwargs)

    def setup(self, *, hydra_context: Any, task_function: Any, config: Any) -> None:
        if SHADOWED:
            logging.getLogger(__name__).warning(
                "another plugin (%s) registers %s too: this sweep runs the project's (lstm_ae/optuna_sweeper.py), "
                "the other's entries are not used (pip uninstall hydra-optuna-sweeper: it needs optuna < 3)",
                ", ".join(sorted(set(SHADOWED.values()))), ", ".join(sorted(SHADOWED)))
        self.impl.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: List[str]) -> None:
        return self.impl.sweep(arguments)
