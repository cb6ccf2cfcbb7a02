"""Assignment 3.2: LSTM autoencoders on MNIST, row by row or pixel by pixel (see conf/mnist.yaml).

    python lstm_ae_mnist.py task=reconstruct
    python lstm_ae_mnist.py task=classify
    python lstm_ae_mnist.py task=classify dataset.layout=pixel
    python -m lstm_ae.compare RUN_A RUN_B          # loss and accuracy of two runs in one figure
"""
import hydra
from omegaconf import DictConfig

import lstm_ae.cli
import lstm_ae.experiment


@hydra.main(version_base="1.3", config_path="conf", config_name="mnist")
def main(cfg: DictConfig) -> float:
    return lstm_ae.experiment.run(cfg)


if __name__ == "__main__":
    with lstm_ae.experiment.one_line_stop():
        lstm_ae.cli.check("mnist")  # a mistyped key or option: one line, before any run folder
        main()
