"""The sweeper class of lstm_ae.optuna_sweeper, here because Hydra loads sweepers only from the
``hydra_plugins`` namespace (and registers them under the module that defines them)."""
from typing import Any

from hydra_plugins.hydra_optuna_sweeper import optuna_sweeper


class OptunaSweeper(optuna_sweeper.OptunaSweeper):
    """The Optuna plugin's sweeper (same config keys) whose loop counts n_trials over the study."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Imported here, as the plugin itself does: Hydra imports every plugin module at start-up,
        # and optuna takes about a second to import, which every run (not only sweeps) would pay.
        from lstm_ae.optuna_sweeper import TotalTrialsImpl

        self.sweeper = TotalTrialsImpl(*args, **kwargs)
