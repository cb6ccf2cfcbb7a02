"""Multiruns with the basic and the Optuna sweeper write summary.csv; the Optuna study persists."""
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile

import optuna
import pandas as pd
import pytest

from lstm_ae.sweep import collect
from tests.conftest import ROOT, TINY_TOY, run_script

TINY = [*TINY_TOY, "trainer.epochs=1", "dataset.num_sequences=60"]


def test_basic_multirun_writes_sorted_summary(tmp_path):
    sweep_dir = tmp_path / "sweep"
    proc = run_script("lstm_ae_toy.py", "-m", *TINY, "model.hidden_size=4,8", f"hydra.sweep.dir={sweep_dir}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    df = pd.read_csv(sweep_dir / "summary.csv")
    assert len(df) == 2 and set(df["model.hidden_size"]) == {4, 8}
    assert (df["status"] == "completed").all()
    assert list(df["val_mse"]) == sorted(df["val_mse"])  # best first
    for _, row in df.iterrows():
        res = json.loads((sweep_dir / str(row["job"]) / "results.json").read_text())
        assert res["val_mse"] == pytest.approx(row["val_mse"])
        assert row["run_dir"].endswith(f"/{row['job']}")
    assert "best:" in proc.stdout and "test_mse=" in proc.stdout


def test_optuna_multirun_with_sqlite_storage_continues_the_study(tmp_path):
    db = tmp_path / "study" / "toy.db"
    args = ["-m", "hparams_search=toy_optuna", *TINY, "hydra.sweeper.n_trials=2",
            f"hydra.sweeper.storage=${{sqlite_url:{db}}}"]
    first = run_script("lstm_ae_toy.py", *args, f"hydra.sweep.dir={tmp_path / 'a'}")
    assert first.returncode == 0, first.stderr[-3000:]
    summary = pd.read_csv(tmp_path / "a" / "summary.csv")
    assert len(summary) == 2 and (summary["status"] == "completed").all()

    study = optuna.load_study(study_name="toy_optuna", storage=f"sqlite:///{db}")
    trials = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(trials) == 2
    # the value Optuna minimised is the validation MSE each job wrote
    assert sorted(t.value for t in trials) == pytest.approx(sorted(summary["val_mse"]))

    second = run_script("lstm_ae_toy.py", *args, f"hydra.sweep.dir={tmp_path / 'b'}")
    assert second.returncode == 0, second.stderr[-3000:]
    study = optuna.load_study(study_name="toy_optuna", storage=f"sqlite:///{db}")
    assert len(study.trials) == 4  # the same study, continued


def test_a_failing_job_does_not_stop_the_sweep(tmp_path):
    sweep_dir = tmp_path / "sweep"
    proc = run_script("lstm_ae_toy.py", "-m", *TINY, "model.hidden_size=0,4", f"hydra.sweep.dir={sweep_dir}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    df = pd.read_csv(sweep_dir / "summary.csv")
    assert dict(zip(df["model.hidden_size"], df["status"])) == {4: "completed", 0: "failed"}
    assert list(df["status"]) == ["completed", "failed"]  # failed jobs last
    assert "model.hidden_size must be a positive integer" in proc.stdout + proc.stderr


def test_collect_marks_jobs_without_results_as_failed(tmp_path):
    for job, val in (("0", 0.2), ("1", None), ("2", 0.1)):
        (tmp_path / job / ".hydra").mkdir(parents=True)
        (tmp_path / job / ".hydra" / "overrides.yaml").write_text(f"- model.hidden_size={job}\n")
        if val is not None:
            (tmp_path / job / "results.json").write_text(json.dumps({"objective": "val_mse", "val_mse": val}))
    df = collect(tmp_path)
    assert list(df["job"]) == ["2", "0", "1"]
    assert list(df["status"]) == ["completed", "completed", "failed"]


def test_two_workers_share_one_optuna_study(tmp_path):
    """Two processes on one SQLite study: every requested trial finishes, none twice, none lost."""
    db = tmp_path / "shared.db"
    procs = []
    for worker in (1, 2):
        args = ["-m", "hparams_search=toy_optuna", *TINY, "hydra.sweeper.n_trials=3",
                f"hydra.sweeper.storage=sqlite:///{db}", f"hydra.sweeper.sampler.seed={worker}",
                f"hydra.sweep.dir={tmp_path / f'w{worker}'}"]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        procs.append(subprocess.Popen([sys.executable, str(ROOT / "lstm_ae_toy.py"), *args], cwd=ROOT, env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    for proc in procs:
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, out[-3000:]
    study = optuna.load_study(study_name="toy_optuna", storage=f"sqlite:///{db}")
    assert sorted(t.number for t in study.trials) == list(range(6))
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    params = {tuple(sorted(t.params.items())) for t in study.trials}
    assert len(params) == 6  # each worker its own sampler seed: no trial repeated
    for worker in (1, 2):
        assert len(pd.read_csv(tmp_path / f"w{worker}" / "summary.csv")) == 3


@pytest.mark.skipif(
    importlib.util.find_spec("hydra_plugins.hydra_ray_launcher") is None,
    reason="the optional Ray launcher is not installed (pip install -e '.[ray]')",
)
def test_ray_launcher_runs_a_sweep_locally(tmp_path, monkeypatch):
    ray_tmp = tempfile.mkdtemp(prefix="ray-")  # short: Ray's socket paths must stay under 107 bytes
    env_args = ["+hydra.launcher.ray.init.num_cpus=2", f"+hydra.launcher.ray.init._temp_dir={ray_tmp}"]
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    proc = run_script("lstm_ae_toy.py", "-m", "hydra/launcher=ray", *env_args, *TINY, "model.hidden_size=4,8",
                      f"hydra.sweep.dir={tmp_path / 'sweep'}", timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    shutil.rmtree(ray_tmp, ignore_errors=True)
    df = pd.read_csv(tmp_path / "sweep" / "summary.csv")
    assert len(df) == 2 and (df["status"] == "completed").all()
