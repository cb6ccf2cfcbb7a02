"""The toy experiment end to end through the real entry point, as a user runs it."""
import json

import pandas as pd
import pytest
import torch

from lstm_ae.config import validate
from lstm_ae.experiment import build_model
from lstm_ae.errors import ConfigError
from lstm_ae.data.toy import load_toy
from lstm_ae.tasks import Reconstruct
from lstm_ae.trainer import Trainer, configure_torch
from tests.conftest import CPU_BF16, TINY_TOY, compose_cfg, needs_cuda, run_in_process, run_script, trainer_cfg

pytestmark = pytest.mark.xdist_group("toy_run")  # its one run stays on one worker

ARTEFACTS = [
    ".hydra/config.yaml",
    ".hydra/overrides.yaml",
    "metrics.csv",
    "results.json",
    "checkpoints/best.pt",
    "checkpoints/last.pt",
    "examples.png",
    "reconstructions.png",
    "loss.png",
]


@pytest.fixture(scope="session")  # made once, also when xdist interleaves other tests
def toy_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("toy") / "run"
    proc = run_script("lstm_ae_toy.py", *TINY_TOY, "trainer.epochs=2", f"hydra.run.dir={run_dir}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run_dir, proc


def test_two_epoch_run_writes_every_artefact(toy_run):
    run_dir, _ = toy_run
    for name in ARTEFACTS:
        path = run_dir / name
        assert path.is_file() and path.stat().st_size > 0, name
    for png in run_dir.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_metrics_csv_has_one_row_per_epoch(toy_run):
    df = pd.read_csv(toy_run[0] / "metrics.csv")
    assert list(df["epoch"]) == [1, 2]
    for col in ("epoch", "train_loss", "val_loss", "lr", "seconds"):
        assert col in df.columns
    assert (df["train_loss"] > 0).all() and (df["seconds"] > 0).all()


def test_results_json(toy_run):
    res = json.loads((toy_run[0] / "results.json").read_text())
    for key in ("test_mse", "val_mse", "baseline_test_mse", "best_epoch", "train_seconds"):
        assert key in res
    assert res["objective"] == "val_mse"
    df = pd.read_csv(toy_run[0] / "metrics.csv")
    assert res["val_mse"] == pytest.approx(df["val_mse"].min())  # the best-on-validation epoch
    assert res["best_epoch"] == int(df.loc[df["val_mse"].idxmin(), "epoch"])
    assert 0.05 < res["baseline_test_mse"] < 0.11  # about 0.080 on the full data


def test_best_checkpoint_reproduces_test_mse(toy_run):
    """The test MSE is the best-on-validation checkpoint's, evaluated once."""
    run_dir, _ = toy_run
    cfg = compose_cfg("toy", TINY_TOY)
    splits = load_toy(**{k: v for k, v in cfg.dataset.items() if k != "_target_"})
    model = build_model(cfg, splits, Reconstruct())
    ckpt = torch.load(run_dir / "checkpoints" / "best.pt", weights_only=True)
    model.load_state_dict(ckpt["model"])
    configure_torch(cfg.trainer.num_threads)  # as the run did
    mse = Trainer(run_dir, cfg.trainer).evaluate(model, Reconstruct(), splits.test)["mse"]
    res = json.loads((run_dir / "results.json").read_text())
    assert mse == res["test_mse"]  # the same pass: same precision, same batches
    assert cfg.trainer.precision.value == "bf16"
    assert res["eval_precision"] == ("bf16" if CPU_BF16 else "fp32")  # fp32 on an AVX2-only CPU
    assert ckpt["epoch"] == res["best_epoch"]


def test_input_size_mismatch_is_a_config_error():
    cfg = compose_cfg("toy", [*TINY_TOY, "model.input_size=2"])
    with pytest.raises(ConfigError, match="model.input_size=2"):
        build_model(cfg, load_toy(num_sequences=10), Reconstruct())


def test_the_default_decoder_counts_the_50_steps():
    """conf/toy.yaml: the decoder's first 15 units are the (t mod 10, t div 10) clock; a hidden size
    too small for it is one error that says how to turn it off."""
    model = build_model(compose_cfg("toy"), load_toy(num_sequences=10), Reconstruct())
    assert model.clock_units == 15 and model.decoder.hidden_size == 48
    with pytest.raises(ConfigError, match=r"turn it off \(model\.decoder_clock=null\)"):
        validate(compose_cfg("toy", ["model.hidden_size=8"]))


def test_help_lists_groups_and_options():
    proc = run_in_process("lstm_ae_toy.py", "--help")
    assert proc.returncode == 0
    for text in ("model: lstm_ae*", "optimizer: adam, adamw, muon*, rmsprop, sgd", "hparams_search: toy_grid, toy_optuna",
                 "scheduler: cosine, none, onecycle*, plateau, step", "trainer: default*"):  # *: chosen (tests/test_help.py)
        assert text in proc.stdout, text


def test_cfg_job_prints_composed_config():
    proc = run_in_process("lstm_ae_toy.py", "--cfg", "job", "model.hidden_size=32")
    assert proc.returncode == 0
    assert "hidden_size: 32" in proc.stdout and "_target_: lstm_ae.optim.MuonAdam" in proc.stdout


@needs_cuda
def test_cuda_run(tmp_path):
    args = [a for a in TINY_TOY if not a.startswith("trainer.device=")]
    proc = run_script("lstm_ae_toy.py", *args, "trainer.epochs=1", "trainer.device=cuda", f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads((tmp_path / "results.json").read_text())["device"].startswith("cuda")
