"""logger=tensorboard (the [tensorboard] extra, which make test installs): event files with every
metrics.csv column per epoch and the run's hyper-parameters, read back by a real TensorBoard
server on 127.0.0.1 over HTTP; a resumed run writes no step twice; without the extra, one line."""
import shutil
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import pandas as pd
import pytest

from lstm_ae.errors import UserError
from lstm_ae.experiment import train_and_test
from lstm_ae.loggers import build_logger, hparams
from tests.conftest import TINY_TOY, compose_cfg, free_port, get_json

TENSORBOARD = Path(sys.executable).parent / "tensorboard"
needs_tensorboard = pytest.mark.skipif(not TENSORBOARD.exists(),
                                       reason="TensorBoard is not installed (pip install -e '.[tensorboard]')")
TINY = [*TINY_TOY, "dataset.num_sequences=60", "logger=tensorboard"]


def _steps(log_dir: Path, tag: str) -> list:
    """The steps of ``tag`` in every event file of ``log_dir``, as written (no purge applied)."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    steps = []
    for path in sorted(log_dir.glob("events.out.tfevents.*")):
        for event in EventFileLoader(str(path)).Load():
            steps += [event.step for v in event.summary.value if v.tag == tag]
    return steps


@needs_tensorboard
def test_tensorboard_serves_every_metric_of_a_run(tmp_path):
    run = tmp_path / "run"
    results = train_and_test(compose_cfg("toy", [*TINY, "trainer.epochs=3"]), run)
    metrics = pd.read_csv(run / "metrics.csv")
    port = free_port()
    server = subprocess.Popen([TENSORBOARD, "--logdir", str(run), "--host", "127.0.0.1", "--port", str(port),
                               "--reload_interval", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        base = f"http://127.0.0.1:{port}/data/plugin/scalars"
        deadline = time.time() + 60
        while True:  # until the server is up and has read the event files
            try:
                tags = get_json(f"{base}/tags").get("tb", {})
                if "hparam/test_mse" in tags:
                    break
            except OSError:
                assert server.poll() is None, server.stderr.read()
            assert time.time() < deadline, "TensorBoard did not serve the run within 60 s"
            time.sleep(0.3)
        assert set(metrics.columns) - {"epoch"} <= set(tags)  # every column, the learning rate included
        for tag in ("train_loss", "val_mse", "lr"):
            query = urllib.parse.urlencode({"run": "tb", "tag": tag})
            points = get_json(f"{base}/scalars?{query}")  # [[wall time, step, value], ...]
            assert [p[1] for p in points] == [1, 2, 3]
            assert [p[2] for p in points] == pytest.approx(metrics[tag].tolist(), rel=1e-6)
        test_mse = get_json(f"{base}/scalars?{urllib.parse.urlencode({'run': 'tb', 'tag': 'hparam/test_mse'})}")
        assert test_mse[0][2] == pytest.approx(results["test_mse"], rel=1e-6)
        listing = get_json(f"http://127.0.0.1:{port}/data/plugins_listing")
        assert listing["hparams"]["enabled"]  # the HParams view has this run's hyper-parameters
    finally:
        server.terminate()
        server.wait(timeout=20)


@needs_tensorboard
def test_a_resumed_run_writes_no_step_twice(tmp_path, monkeypatch):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    last = run / "checkpoints" / "last.pt"

    class Killed(Exception):
        pass

    def interrupt(epoch, model, row):  # keeps epoch 2's checkpoint, dies after epoch 3 was logged
        if epoch == 2:
            shutil.copy(last, tmp_path / "epoch2.pt")
        if epoch == 3:
            raise Killed

    monkeypatch.setattr("lstm_ae.experiment._pruning", lambda task: [interrupt])
    with pytest.raises(Killed):
        train_and_test(compose_cfg("toy", [*TINY, "trainer.epochs=4"]), run)
    shutil.copy(tmp_path / "epoch2.pt", last)  # TensorBoard holds step 3, the checkpoint only epoch 2
    monkeypatch.setattr("lstm_ae.experiment._pruning", lambda task: [])
    train_and_test(compose_cfg("toy", [*TINY, "trainer.epochs=4", f"trainer.resume={run}"]), run)
    assert _steps(run / "tb", "train_loss") == [1, 2, 3, 3, 4]  # as written: epoch 3 twice ...
    events = EventAccumulator(str(run / "tb"))
    events.Reload()
    assert [e.step for e in events.Scalars("train_loss")] == [1, 2, 3, 4]  # ... but TensorBoard shows it once
    metrics = pd.read_csv(run / "metrics.csv")
    assert [e.value for e in events.Scalars("train_loss")] == pytest.approx(metrics["train_loss"].tolist(), rel=1e-6)


def test_default_logger_writes_no_event_files(tmp_path):
    cfg = compose_cfg("toy", TINY_TOY)
    assert cfg.logger._target_ is None and build_logger(cfg, tmp_path) is None


def test_tensorboard_without_its_extra_is_one_line_before_training(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as if TensorBoard were absent
    with pytest.raises(UserError, match=r"^logger=tensorboard needs TensorBoard: pip install -e '\.\[tensorboard\]'") as err:
        train_and_test(compose_cfg("toy", TINY), tmp_path / "run")
    assert "\n" not in str(err.value) and not (tmp_path / "run" / "metrics.csv").exists()


def test_hparams_are_what_defines_the_run_and_its_overrides():
    overrides = ["model.hidden_size=8", "trainer.grad_clip=null", "dataset.num_sequences=60", "optimizer=sgd", "logger=csv",
                 "hydra.job.chdir=false"]
    flat = hparams(compose_cfg("toy", overrides[:-1]), overrides)
    assert flat["model.hidden_size"] == 8 and flat["trainer.grad_clip"] == "None" and flat["optimizer.lr"] == 0.08  # toy.yaml's
    assert flat["optimizer"] == "sgd" and flat["scheduler"] == "OneCycleLR" and flat["trainer.precision"] == "bf16"
    assert flat["dataset.num_sequences"] == 60 and "dataset.seq_len" not in flat  # only the overridden dataset keys
    assert "trainer.progress" not in flat and not any(k.startswith(("hydra", "logger")) for k in flat)
    assert all(isinstance(v, (bool, int, float, str)) for v in flat.values())
