"""A user's own series from CSV files (dataset=csv; see conf/series.yaml and docs/data.md).

    python lstm_ae_series.py dataset.path=my.csv                 # reconstruct; each series split by time
    python lstm_ae_series.py dataset.path=my.csv task=predict    # + one-step head
"""
import hydra
from omegaconf import DictConfig

import lstm_ae.cli
import lstm_ae.experiment


@hydra.main(version_base="1.3", config_path="conf", config_name="series")
def main(cfg: DictConfig) -> float:
    return lstm_ae.experiment.run(cfg)


if __name__ == "__main__":
    with lstm_ae.experiment.one_line_stop():
        lstm_ae.cli.check("series")  # a mistyped key or option: one line, before any run folder
        main()
