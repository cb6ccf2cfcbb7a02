"""Resume: a run killed mid-training continues from its last epoch and ends as if never stopped."""
import json
import os
import signal
import subprocess
import sys
import time
from functools import partial

import pandas as pd
import pytest
import torch

from lstm_ae.data.toy import load_toy
from lstm_ae.errors import CheckpointError
from lstm_ae.experiment import resume_dir
from lstm_ae.model import LSTMAutoencoder
from lstm_ae.optim import MuonAdam
from lstm_ae.tasks import Reconstruct
from lstm_ae.trainer import Trainer
from lstm_ae.experiment import train_and_test
from tests.conftest import NO_FIGURES, ROOT, TINY_TOY, compose_cfg, run_in_process, trainer_cfg


class Stop(Exception):
    pass


ADAM = partial(torch.optim.Adam, lr=1e-2)


def train(run_dir, epochs=4, stop_after=None, resume=False, optimizer=ADAM, **kw):
    torch.manual_seed(0)
    model = LSTMAutoencoder(1, 6, num_layers=2, dropout=0.3)  # dropout: the RNG state matters
    splits = load_toy(num_sequences=60, seed=0)
    trainer = Trainer(run_dir, trainer_cfg(epochs=epochs, batch_size=8, **kw))

    def stop(epoch, *_):
        if epoch == stop_after:
            raise Stop

    sched = lambda opt, steps: torch.optim.lr_scheduler.OneCycleLR(opt, 0.01, epochs=epochs, steps_per_epoch=steps)  # noqa: E731
    fit = trainer.fit(model, Reconstruct(), splits, optimizer, sched, callbacks=[stop],
                      resume=resume)
    return fit, model


@pytest.mark.parametrize("optimizer", [ADAM, partial(MuonAdam, lr=1e-2)], ids=["adam", "muon"])
def test_resume_continues_exactly(tmp_path, optimizer):
    full, full_model = train(tmp_path / "full", optimizer=optimizer)
    with pytest.raises(Stop):
        train(tmp_path / "cut", stop_after=2, optimizer=optimizer)
    assert torch.load(tmp_path / "cut" / "checkpoints" / "last.pt", weights_only=False)["epoch"] == 2
    resumed, resumed_model = train(tmp_path / "cut", resume=True, optimizer=optimizer)
    a, b = pd.read_csv(tmp_path / "full" / "metrics.csv"), pd.read_csv(tmp_path / "cut" / "metrics.csv")
    assert list(b["epoch"]) == [1, 2, 3, 4]  # appended, no duplicate rows
    cols = [c for c in a.columns if c != "seconds"]
    pd.testing.assert_frame_equal(a[cols], b[cols])
    assert resumed.best_epoch == full.best_epoch and resumed.best == full.best
    for p, q in zip(full_model.parameters(), resumed_model.parameters()):
        assert torch.equal(p, q)


def test_resume_of_a_finished_training_does_not_train_again(tmp_path):
    first, _ = train(tmp_path, epochs=2)
    again, _ = train(tmp_path, epochs=2, resume=True)
    assert again.best == first.best and len(again.history) == 2
    assert list(pd.read_csv(tmp_path / "metrics.csv")["epoch"]) == [1, 2]


def test_a_row_cut_by_a_crash_is_dropped(tmp_path):
    with pytest.raises(Stop):
        train(tmp_path, stop_after=2)
    with open(tmp_path / "metrics.csv", "a") as f:
        f.write("3,0.1,0.1")  # half a row, as a kill mid-write leaves it
    train(tmp_path, resume=True)
    assert list(pd.read_csv(tmp_path / "metrics.csv")["epoch"]) == [1, 2, 3, 4]


def test_corrupt_checkpoint_is_one_clear_error(tmp_path):
    with pytest.raises(Stop):
        train(tmp_path, stop_after=1)
    (tmp_path / "checkpoints" / "last.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="last.pt is not readable.*delete it"):
        train(tmp_path, resume=True)


def test_checkpoint_of_another_model_is_one_clear_error(tmp_path):
    with pytest.raises(Stop):
        train(tmp_path, stop_after=1)
    model = LSTMAutoencoder(1, 9)
    trainer = Trainer(tmp_path, trainer_cfg(epochs=2, batch_size=8))
    with pytest.raises(CheckpointError, match="does not fit this model"):
        trainer.fit(model, Reconstruct(), load_toy(num_sequences=60), partial(torch.optim.Adam, lr=1e-2), resume=True)


def test_resume_dir(tmp_path):
    parent = tmp_path / "outputs" / "toy" / "reconstruct"
    names = ["2026-01-01_00-00-00", "2026-01-02_00-00-00", "2026-01-03_00-00-00", "2026-01-04_00-00-00"]
    old, other, done, new = (parent / n for n in names)
    for d, overrides in ((old, "[model.hidden_size=8]"), (other, "[model.hidden_size=9]"), (done, "[model.hidden_size=8]")):
        (d / "checkpoints").mkdir(parents=True)
        (d / "checkpoints" / "last.pt").write_bytes(b"x")
        (d / ".hydra").mkdir()
        (d / ".hydra" / "overrides.yaml").write_text(overrides)
    (done / "results.json").write_text("{}")
    new.mkdir()
    assert resume_dir(None, new) is None
    # the newest unfinished run of the same command (the resume switch and hydra.* aside)
    assert resume_dir("auto", new, ["model.hidden_size=8", "trainer.resume=auto", "hydra.run.dir=x"]) == old
    assert resume_dir("auto", new, ["model.hidden_size=9"]) == other
    assert resume_dir("auto", new, ["model.hidden_size=7"]) is None  # nothing to resume: start afresh
    assert resume_dir(str(old / "checkpoints" / "last.pt"), new) == old
    with pytest.raises(CheckpointError, match="no such run folder"):
        resume_dir(str(tmp_path / "nope"), new)
    with pytest.raises(CheckpointError, match="holds no checkpoints/last.pt"):
        resume_dir(str(new), new)


def test_sigkill_mid_run_then_resume_gives_the_uninterrupted_result(tmp_path):
    """A real training process is killed with SIGKILL mid-run, resumed, and ends like an uninterrupted run
    (the uninterrupted and the resumed run in this process, the killed one in its own)."""
    args = [*TINY_TOY, NO_FIGURES, "dataset.num_sequences=1500", "trainer.epochs=12", "scheduler=cosine", "trainer.precision=fp32"]
    full = run_in_process("lstm_ae_toy.py", *args, f"hydra.run.dir={tmp_path / 'full'}")
    assert full.returncode == 0, full.stderr[-2000:]

    cut = tmp_path / "cut"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, str(ROOT / "lstm_ae_toy.py"), *args, f"hydra.run.dir={cut}"],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        rows = (cut / "metrics.csv").read_text().count("\n") - 1 if (cut / "metrics.csv").exists() else 0
        if rows >= 4:
            break
        time.sleep(0.01)
    assert proc.poll() is None, "the run ended before it could be killed; make it longer"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (cut / "results.json").exists()

    resumed = run_in_process("lstm_ae_toy.py", *args, f"hydra.run.dir={cut}", "trainer.resume=auto")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resumed from" in resumed.stdout + resumed.stderr
    a, b = (json.loads((d / "results.json").read_text()) for d in (tmp_path / "full", cut))
    for d in (a, b):
        d.pop("train_seconds")
    assert a == b
    assert list(pd.read_csv(cut / "metrics.csv")["epoch"]) == list(range(1, 13))


def test_same_config_and_seed_give_identical_results(tmp_path):
    """Determinism on the CPU: two runs of one config give the same results.json (but for the time)."""
    cfg = compose_cfg("toy", [*TINY_TOY, "trainer.epochs=3", "model.num_layers=2", "model.dropout=0.2"])
    a, b = (train_and_test(cfg, tmp_path / name) for name in ("a", "b"))
    for res in (a, b):
        res.pop("train_seconds")
    assert a == b and a["test_mse"] > 0
    assert (tmp_path / "a" / "metrics.csv").read_text().count("\n") == 4
