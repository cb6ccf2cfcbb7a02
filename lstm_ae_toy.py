"""Assignment 3.1: an LSTM autoencoder on synthetic sequences (see conf/toy.yaml).

    python lstm_ae_toy.py                              # train, evaluate, draw; one run folder
    python lstm_ae_toy.py -m hparams_search=toy_grid   # grid search (summary.csv)
"""
import hydra
from omegaconf import DictConfig

import lstm_ae.cli
import lstm_ae.experiment


@hydra.main(version_base="1.3", config_path="conf", config_name="toy")
def main(cfg: DictConfig) -> float:
    return lstm_ae.experiment.run(cfg)


if __name__ == "__main__":
    with lstm_ae.experiment.one_line_stop():
        lstm_ae.cli.check("toy")  # a mistyped key or option: one line, before any run folder
        main()
