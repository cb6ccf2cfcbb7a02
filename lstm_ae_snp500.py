"""Assignment 3.3: LSTM autoencoders on S&P 500 daily prices 2014-2017 (see conf/snp500.yaml).

    python lstm_ae_snp500.py task=reconstruct      # k-fold cross-validation over stocks, then test
    python lstm_ae_snp500.py task=predict          # + one-step head, one-step vs multi-step forecasts
Every run first draws daily_<price>.png of dataset.plot_symbols (AMZN and GOOGL) against the date.
"""
import hydra
from omegaconf import DictConfig

import lstm_ae.cli
import lstm_ae.experiment


@hydra.main(version_base="1.3", config_path="conf", config_name="snp500")
def main(cfg: DictConfig) -> float:
    return lstm_ae.experiment.run(cfg)


if __name__ == "__main__":
    with lstm_ae.experiment.one_line_stop():
        lstm_ae.cli.check("snp500")  # a mistyped key or option: one line, before any run folder
        main()
