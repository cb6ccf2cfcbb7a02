"""The NAB runner (bench.nab) as a Hydra job: one job = every file of a NAB-layout folder, one configuration
(``detector.*``), under the run-folder contract; sweeps and Optuna searches over the detector's settings
(conf/nab.yaml; conf/hparams_search/nab_optuna.yaml; docs/anomaly.md).

    python -m bench.nab_search                               # the defaults on $LSTM_AE_DATA/nab
    python -m bench.nab_search -m hparams_search=nab_optuna  # the search that chose them (docs/anomaly.md 'Search')
"""
import hydra
from omegaconf import DictConfig

import lstm_ae.experiment
from bench import nab

nab.register()


@hydra.main(version_base="1.3", config_path="../conf", config_name="nab")
def main(cfg: DictConfig) -> float:
    return lstm_ae.experiment.run(cfg, nab.search_job)


if __name__ == "__main__":
    import lstm_ae.cli

    lstm_ae.cli.check("nab")  # a mistyped key or option: one line, before any run folder
    with lstm_ae.experiment.one_line_stop():
        main()
