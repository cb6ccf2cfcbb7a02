"""Resuming an Optuna search (the same hydra.sweep.dir and storage again, a larger n_trials, another
seed) adds new trials in new job folders and leaves the earlier ones alone; SIGTERM and Ctrl-C end
a search in one line with its running trial marked, and a rerun continues it."""
import hashlib
import os
import signal
import subprocess
import sys
import time

import optuna
import pandas as pd
import pytest
from omegaconf import OmegaConf

from lstm_ae.optuna_sweeper import TotalTrialsSweep
from tests.conftest import NO_FIGURES, ROOT, TINY_TOY, run_in_process

TINY = [*TINY_TOY, "trainer.epochs=1", "dataset.num_sequences=60", NO_FIGURES]
COMPLETE, FAIL, RUNNING = optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL, optuna.trial.TrialState.RUNNING


def _hashes(sweep_dir, jobs):
    """sha1 of every file in the job folders ``jobs`` of ``sweep_dir``, by path."""
    return {str(f.relative_to(sweep_dir)): hashlib.sha1(f.read_bytes()).hexdigest()
            for job in jobs for f in sorted((sweep_dir / job).rglob("*")) if f.is_file()}


def test_resumed_search_adds_new_trials_in_new_folders(tmp_path):
    """n_trials 2, then 4 (same seed), then 5 with another seed, into one sweep folder and study."""
    db, sweep = tmp_path / "s.db", tmp_path / "sweep"
    args = ["-m", "hparams_search=toy_optuna", *TINY, f"hydra.sweeper.storage=sqlite:///{db}", f"hydra.sweep.dir={sweep}"]
    hashes, jobs = {}, []
    for n, extra in ((2, []), (4, []), (5, ["hydra.sweeper.sampler.seed=7"])):
        proc = run_in_process("lstm_ae_toy.py", *args, f"hydra.sweeper.n_trials={n}", *extra)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert _hashes(sweep, jobs) == hashes  # the earlier jobs' folders: not a byte changed
        jobs = sorted(p.name for p in sweep.iterdir() if p.is_dir())
        assert len(jobs) == n  # a new folder for each new trial
        hashes = _hashes(sweep, jobs)
    trials = optuna.load_study(study_name="toy_optuna", storage=f"sqlite:///{db}").trials
    assert [t.state for t in trials] == [COMPLETE] * 5
    assert len({tuple(sorted(t.params.items())) for t in trials}) == 5  # no trial replayed
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["0", "1", "2", "3", "4"]
    for t in trials:  # job folder = trial number, holding that trial's parameters
        ran = OmegaConf.load(sweep / str(t.number) / ".hydra" / "overrides.yaml")
        assert all(f"{k}={v}" in ran for k, v in t.params.items()), (t.number, t.params, ran)
    summary = pd.read_csv(sweep / "summary.csv")
    assert sorted(summary["job"]) == [0, 1, 2, 3, 4]
    assert sorted(summary["val_mse"]) == pytest.approx(sorted(t.value for t in trials))


class Launcher:
    """Hydra's launcher's part the sweeper uses: records each launch's first job number and runs nothing."""

    def __init__(self):
        self.first_jobs = []

    def launch(self, overrides, initial_job_idx):
        from hydra.core.utils import JobReturn, JobStatus

        self.first_jobs.append(initial_job_idx)
        returns = []
        for job in overrides:
            values = dict(o.split("=", 1) for o in job)
            ret = JobReturn()
            ret.return_value, ret.status = float(values["x"]) ** 2 + float(values["y"]), JobStatus.COMPLETED
            returns.append(ret)
        return returns


def _search(tmp_path, storage, n_trials, seed, seeds=None):
    """One call of a random-sampler search over x, y; its launcher and the study's trials' params."""
    sampler = {"_target_": "optuna.samplers.RandomSampler", "seed": seed}
    sweeper = TotalTrialsSweep(sampler=optuna.samplers.RandomSampler(seed=seed), direction="minimize",
                               storage=f"sqlite:///{tmp_path / storage}", study_name="s", n_trials=n_trials,
                               n_jobs=2, seeds=seeds)
    sweep_dir = str(tmp_path / f"{storage}.sweep")
    sweeper.config = OmegaConf.create({"hydra": {"sweep": {"dir": sweep_dir}, "sweeper": {"sampler": sampler}}})
    sweeper.launcher = Launcher()
    sweeper.sweep(["x=interval(-1, 1)", "y=interval(0, 1)"])
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / storage}")
    return sweeper.launcher, [tuple(sorted(t.params.items())) for t in study.trials]


def test_a_resumed_seeded_sampler_proposes_new_points_and_a_new_study_the_same(tmp_path):
    _, first = _search(tmp_path, "a.db", 4, seed=0)
    _, again = _search(tmp_path, "b.db", 4, seed=0)
    assert again == first  # a study started afresh: exactly what its seed gives, as without resuming
    launcher, resumed = _search(tmp_path, "a.db", 8, seed=0)
    assert resumed[:4] == first and len(set(resumed)) == 8  # the same seed again: 4 new points
    assert launcher.first_jobs == [4, 6]  # job numbers continue from the study's trials (n_jobs=2 per launch)
    launcher, _ = _search(tmp_path, "c.db", 2, seed=0, seeds=[0, 1, 2])
    launcher, _ = _search(tmp_path, "c.db", 4, seed=0, seeds=[0, 1, 2])
    assert launcher.first_jobs == [6]  # three jobs per trial: trials 2 and 3 are jobs 6..11


def test_a_sweep_folder_of_another_search_is_refused_before_any_trial(tmp_path):
    _search(tmp_path, "a.db", 2, seed=0)
    (tmp_path / "a.db.sweep" / "0" / ".hydra").mkdir(parents=True)  # job 0 of a search in this folder ...
    (tmp_path / "a.db.sweep" / "0" / ".hydra" / "overrides.yaml").write_text("- x=0.5\n- y=0.5\n")  # ... but not trial 0
    with pytest.raises(SystemExit) as err:
        _search(tmp_path, "a.db", 4, seed=0)
    message = str(err.value)
    assert "\n" not in message and "job folder 0 was not run by trial 0" in message and "own hydra.sweep.dir" in message
    assert len(optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 'a.db'}").trials) == 2


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_ends_the_search_in_one_line_and_marks_its_trial(tmp_path, signum):
    db, sweep = tmp_path / "s.db", tmp_path / "sweep"
    args = ["-m", "hparams_search=toy_optuna", *TINY_TOY, NO_FIGURES, "hydra/sweeper/pruner=none",
            "hydra.sweeper.n_trials=1", f"hydra.sweeper.storage=sqlite:///{db}", f"hydra.sweep.dir={sweep}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "0"}
    proc = subprocess.Popen([sys.executable, str(ROOT / "lstm_ae_toy.py"), *args, "dataset.num_sequences=600",
                             "trainer.epochs=500"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and not (sweep / "0" / "metrics.csv").exists():
        time.sleep(0.05)  # until the first job has trained an epoch
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=60)
    name = signal.Signals(signum).name
    assert proc.returncode == 128 + signum, (out[-2000:], err[-2000:])
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("[")]  # but log records
    assert len(lines) == 1 and "Traceback" not in out + err, err
    assert lines[0].startswith(f"sweep stopped by {name}: trial 0 marked FAIL (user attribute interrupted={name})")
    assert f"hydra.sweep.dir={sweep}" in lines[0]
    trial, = optuna.load_study(study_name="toy_optuna", storage=f"sqlite:///{db}").trials
    assert trial.state == FAIL and trial.user_attrs["interrupted"] == name  # at once, not at the next call

    rerun = run_in_process("lstm_ae_toy.py", *args, "trainer.epochs=1", "dataset.num_sequences=60")
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    trials = optuna.load_study(study_name="toy_optuna", storage=f"sqlite:///{db}").trials
    assert [t.state for t in trials] == [FAIL, COMPLETE]  # the interrupted trial replaced, in folder 1
    assert (sweep / "1" / "results.json").exists() and not (sweep / "0" / "results.json").exists()
