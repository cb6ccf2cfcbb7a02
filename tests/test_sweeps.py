"""Multiruns with the basic and the Optuna sweeper write summary.csv; the Optuna study persists."""
import json
import os
import signal
import subprocess
import sys
import time

import optuna
import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf

from lstm_ae import reproduce, run_folder
from lstm_ae.optuna_sweeper import objective_values
from lstm_ae.sweep import TRIAL_ENV, collect
from tests.conftest import NO_FIGURES, ROOT, TINY_TOY, run_in_process, run_script

TINY = [*TINY_TOY, "trainer.epochs=1", "dataset.num_sequences=60", NO_FIGURES]


def test_basic_multirun_writes_sorted_summary(tmp_path):
    sweep_dir = tmp_path / "sweep"
    proc = run_in_process("lstm_ae_toy.py", "-m", *TINY, "model.hidden_size=4,8", f"hydra.sweep.dir={sweep_dir}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    df = pd.read_csv(sweep_dir / "summary.csv")
    assert len(df) == 2 and set(df["model.hidden_size"]) == {4, 8}
    assert (df["status"] == "finished").all()
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
    first = run_in_process("lstm_ae_toy.py", *args, f"hydra.sweep.dir={tmp_path / 'a'}")
    assert first.returncode == 0, first.stderr[-3000:]
    summary = pd.read_csv(tmp_path / "a" / "summary.csv")
    assert len(summary) == 2 and (summary["status"] == "finished").all()

    study = optuna.load_study(study_name="toy_optuna", storage=f"sqlite:///{db}")
    trials = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(trials) == 2
    # the value Optuna minimised is the validation MSE each job wrote
    assert sorted(t.value for t in trials) == pytest.approx(sorted(summary["val_mse"]))

    # n_trials counts the whole study: the same command again runs nothing, a larger n_trials the rest
    again = run_in_process("lstm_ae_toy.py", *args, f"hydra.sweep.dir={tmp_path / 'b'}")
    assert again.returncode == 0, again.stderr[-3000:]
    assert len(optuna.load_study(study_name="toy_optuna", storage=f"sqlite:///{db}").trials) == 2
    more = run_in_process("lstm_ae_toy.py", *args, "hydra.sweeper.n_trials=4", f"hydra.sweep.dir={tmp_path / 'c'}")
    assert more.returncode == 0, more.stderr[-3000:]
    assert len(optuna.load_study(study_name="toy_optuna", storage=f"sqlite:///{db}").trials) == 4


def test_a_failing_job_does_not_stop_the_sweep(tmp_path):
    sweep_dir = tmp_path / "sweep"
    proc = run_in_process("lstm_ae_toy.py", "-m", *TINY, "model.hidden_size=0,4", f"hydra.sweep.dir={sweep_dir}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    df = pd.read_csv(sweep_dir / "summary.csv")
    assert dict(zip(df["model.hidden_size"], df["status"])) == {4: "finished", 0: "failed"}
    assert list(df["status"]) == ["finished", "failed"]  # failed jobs last
    assert "model.hidden_size must be a positive integer" in proc.stdout + proc.stderr


def test_collect_marks_jobs_without_results_or_end_state_as_interrupted(tmp_path):
    for job, val in (("0", 0.2), ("1", None), ("2", 0.1)):
        (tmp_path / job / ".hydra").mkdir(parents=True)
        (tmp_path / job / ".hydra" / "overrides.yaml").write_text(f"- model.hidden_size={job}\n")
        if val is not None:
            (tmp_path / job / "results.json").write_text(json.dumps({"objective": "val_mse", "val_mse": val}))
    df = collect(tmp_path)
    assert list(df["job"]) == ["2", "0", "1"]
    assert list(df["status"]) == ["finished", "finished", "interrupted"]
    assert "no results.json" in df.loc[2, "error"]


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_two_workers_share_one_optuna_study(tmp_path, kind):
    """Two processes started together on one study (an SQLite database, or a journal file as on a
    shared file system) share its n_trials: none lost, none run twice, and each writes its own sweep
    folder (the default name ends in the process id)."""
    from lstm_ae.optuna_sweeper import open_storage

    url = f"sqlite:///{tmp_path / 'shared.db'}" if kind == "sqlite" else f"journal:{tmp_path / 'shared.log'}"
    procs = []
    for worker in (1, 2):
        args = ["-m", "hparams_search=toy_optuna", *TINY, "hydra.sweeper.n_trials=6",
                f"hydra.sweeper.storage={url}", f"hydra.sweeper.sampler.seed={worker}"]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        procs.append(subprocess.Popen([sys.executable, str(ROOT / "lstm_ae_toy.py"), *args], cwd=tmp_path, env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    for proc in procs:
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, out[-3000:]
    study = optuna.load_study(study_name="toy_optuna", storage=open_storage(url))
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) == 6  # exactly n_trials: a worker asks only for missing trials ...
    surplus = [t for t in study.trials if t.user_attrs.get("surplus")]  # ... and drops one asked in a race
    assert len(study.trials) == 6 + len(surplus) and all(t.state == optuna.trial.TrialState.FAIL for t in surplus)
    assert len({tuple(sorted(t.params.items())) for t in done}) == 6  # own seeds: no repeats
    folders = sorted((tmp_path / "multirun" / "toy" / "reconstruct").iterdir())
    assert len(folders) == 2 and {f.name.rsplit("_", 1)[1] for f in folders} == {str(p.pid) for p in procs}
    assert sum(len(pd.read_csv(f / "summary.csv")) for f in folders) == 6  # no job folder shared or lost


def test_failing_trials_are_recorded_and_the_sweep_goes_on(tmp_path):
    db = tmp_path / "s.db"
    proc = run_in_process(
        "lstm_ae_toy.py", "-m", "hparams_search=toy_optuna", *[a for a in TINY if "hidden_size" not in a],
        "hydra.sweeper.n_trials=6", "model.hidden_size=choice(0,4)", "optimizer.lr=choice(0.01,1e39)", "trainer.grad_clip=null",
        f"hydra.sweeper.storage=sqlite:///{db}", f"hydra.sweep.dir={tmp_path / 'sweep'}",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    study = optuna.load_study(study_name="toy_optuna", storage=f"sqlite:///{db}")
    assert len(study.trials) == 6
    for t in study.trials:
        bad = t.params["model.hidden_size"] == 0 or t.params["optimizer.lr"] > 1
        assert (t.state == optuna.trial.TrialState.FAIL) == bad, t.params
        assert ("error" in t.user_attrs) == bad
    df = pd.read_csv(tmp_path / "sweep" / "summary.csv")
    failed = df[df["status"] == "failed"]
    assert len(failed) == sum(t.state == optuna.trial.TrialState.FAIL for t in study.trials) > 0
    reasons = " ".join(failed["error"])
    assert ("model.hidden_size must be a positive integer" in reasons) or ("loss became" in reasons)


def _count(folder, pattern):
    """Paths matching ``pattern`` under ``folder``, which a starting sweep makes, removes (its
    writability check) and makes again: a glob can find it gone between its own two looks."""
    try:
        return len(list(folder.glob(pattern)))
    except FileNotFoundError:
        return 0


def test_an_interrupted_optuna_sweep_reruns_to_the_requested_total(tmp_path):
    db = tmp_path / "s.db"
    args = ["-m", "hparams_search=toy_optuna", *TINY_TOY, NO_FIGURES, "dataset.num_sequences=600", "trainer.epochs=8",
            "hydra.sweeper.n_trials=4", f"hydra.sweeper.storage=sqlite:///{db}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, str(ROOT / "lstm_ae_toy.py"), *args, f"hydra.sweep.dir={tmp_path / 'a'}"],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if _count(tmp_path / "a", "*/results.json") >= 1 and _count(tmp_path / "a", "*/.hydra") >= 2:
            break  # one trial done, the next one running
        time.sleep(0.05)
    assert proc.poll() is None, "the sweep ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    rerun = run_in_process("lstm_ae_toy.py", *args, f"hydra.sweep.dir={tmp_path / 'b'}")
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    study = optuna.load_study(study_name="toy_optuna", storage=f"sqlite:///{db}")
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    interrupted = [t for t in study.trials if t.user_attrs.get("interrupted")]
    assert len(complete) == 4 and len(interrupted) == 1
    assert len(study.trials) == 5


@pytest.mark.parametrize("seed_key", ["trainer.seed", "detector.seed"])
def test_summary_of_a_sweep_over_seeds_ranks_configurations_by_their_mean(tmp_path, seed_key):
    jobs = [("8", 0, 0.10), ("8", 1, 0.30), ("16", 0, 0.15), ("16", 1, 0.17), ("32", 0, None), ("32", 1, 0.01)]
    for i, (hidden, seed, val) in enumerate(jobs):
        (tmp_path / str(i) / ".hydra").mkdir(parents=True)
        (tmp_path / str(i) / ".hydra" / "overrides.yaml").write_text(
            f"- model.hidden_size={hidden}\n- optimizer=sgd\n- {seed_key}={seed}\n")
        if val is not None:
            (tmp_path / str(i) / "results.json").write_text(json.dumps({"objective": "val_mse", "val_mse": val}))
    df = collect(tmp_path)
    first = df.iloc[0]
    assert first["model.hidden_size"] == "16" and first["val_mse_mean"] == pytest.approx(0.16)  # not the lucky 0.01
    assert first["val_mse_std"] == pytest.approx(0.0141421, rel=1e-4) and first["seeds"] == 2
    assert list(df["model.hidden_size"]) == ["16", "16", "8", "8", "32", "32"]  # 32 lost a seed: last, despite 0.01
    assert df.loc[df["model.hidden_size"] == "32", "seeds"].tolist() == [1, 1]
    assert df.loc[df["model.hidden_size"] == "32", "val_mse_mean"].isna().all()


def test_a_finished_job_is_not_trained_again_and_another_config_is_refused(tmp_path):
    """A job folder holding this config's results is done; one holding another config's run is refused in one
    line, before anything is written (a rerun of another sweep into the same folder would mix two runs)."""
    from lstm_ae.errors import RunFolderError
    from lstm_ae.experiment import train_and_test
    from tests.conftest import compose_cfg

    cfg = compose_cfg("toy", [*TINY, "trainer.epochs=2"])
    first = train_and_test(cfg, tmp_path, continue_job=True)
    stamp = (tmp_path / "results.json").stat().st_mtime_ns
    again = train_and_test(cfg, tmp_path, continue_job=True)
    assert again == first and (tmp_path / "results.json").stat().st_mtime_ns == stamp
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    with pytest.raises(RunFolderError, match="holds another run .*choose another hydra.run.dir"):
        train_and_test(compose_cfg("toy", [*TINY, "trainer.epochs=2", "optimizer.lr=0.03"]), tmp_path, continue_job=True)
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


def test_an_interrupted_grid_reruns_only_what_is_missing(tmp_path):
    """SIGKILL a 4-job grid after its first job; the same command again skips that job, continues the
    interrupted one from its last.pt and runs the rest: summary.csv has all 4."""
    sweep = tmp_path / "grid"
    args = ["-m", *TINY_TOY, NO_FIGURES, "dataset.num_sequences=600", "trainer.epochs=8", "model.hidden_size=4,6",
            "optimizer.lr=0.01,0.02", "hydra/launcher=basic", f"hydra.sweep.dir={sweep}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, str(ROOT / "lstm_ae_toy.py"), *args], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if (sweep / "0" / "results.json").exists() and (sweep / "1" / "checkpoints" / "last.pt").exists():
            break  # job 0 done, job 1 has finished an epoch
        time.sleep(0.02)
    assert proc.poll() is None, "the grid ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = (sweep / "0" / "results.json").stat().st_mtime_ns
    cut = torch.load(sweep / "1" / "checkpoints" / "last.pt", weights_only=False)["epoch"]
    assert not (sweep / "1" / "results.json").exists() and cut < 8
    killed = pd.read_csv(sweep / "summary.csv")  # written after each job: the finished job's row outlived the kill
    assert killed["job"].tolist() == [0] and killed["status"].tolist() == ["finished"]
    assert not run_folder.finished(sweep, sweep=True) and not reproduce.is_complete(sweep, sweep=True)  # not done
    rerun = run_in_process("lstm_ae_toy.py", *args)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert (sweep / "0" / "results.json").stat().st_mtime_ns == done  # not trained again
    assert f"resumed from {sweep / '1' / 'checkpoints' / 'last.pt'} after epoch {cut}" in (sweep / "1" / "lstm_ae_toy.log").read_text()
    assert list(pd.read_csv(sweep / "1" / "metrics.csv")["epoch"]) == list(range(1, 9))
    df = pd.read_csv(sweep / "summary.csv")
    assert len(df) == 4 and (df["status"] == "finished").all()
    assert json.loads((sweep / "sweep.json").read_text())["statuses"] == {"finished": 4}
    assert reproduce.is_complete(sweep, sweep=True)


def test_grid_sampler_enumerates_the_space_once(tmp_path):
    db = tmp_path / "grid.db"
    proc = run_in_process("lstm_ae_toy.py", "-m", "hydra/sweeper=optuna", "hydra/sweeper/sampler=grid",
                      "hydra.sweeper.study_name=toy_optuna", *[a for a in TINY if "hidden_size" not in a],
                      "hydra.sweeper.n_trials=10",
                      "model.hidden_size=choice(4,6)", "optimizer.lr=choice(0.01,0.02)", "trainer.grad_clip=1.0",
                      f"hydra.sweeper.storage=sqlite:///{db}", f"hydra.sweep.dir={tmp_path / 'sweep'}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    trials = optuna.load_study(study_name="toy_optuna", storage=f"sqlite:///{db}").trials
    assert len(trials) == 4  # n_trials capped at the grid's size
    assert {(t.params["model.hidden_size"], t.params["optimizer.lr"]) for t in trials} == {
        (h, lr) for h in (4, 6) for lr in (0.01, 0.02)}


def _sweeper(**kw):
    from lstm_ae.optuna_sweeper import TotalTrialsSweep

    args = {"sampler": optuna.samplers.RandomSampler(seed=0), "direction": "minimize", "storage": None,
            "study_name": "s", "n_trials": 2, "n_jobs": 1, **kw}
    return TotalTrialsSweep(**args)


def test_a_study_from_an_older_optuna_gets_one_line_naming_the_upgrade(tmp_path):
    import sqlite3

    url = f"sqlite:///{tmp_path / 'old.db'}"
    optuna.create_study(study_name="s", storage=url)
    with sqlite3.connect(tmp_path / "old.db") as db:  # what optuna 2.10 left: an older schema version
        db.execute("UPDATE alembic_version SET version_num = 'v2.6.0.a'")
    with pytest.raises(SystemExit) as err:
        _sweeper(storage=url)._open_study()
    message = str(err.value)
    assert "\n" not in message and f"optuna storage upgrade --storage {url}" in message


class FakeLauncher:
    """Stands in for Hydra's launcher: each job's return value is ``job(overrides)``; records the overrides."""

    def __init__(self, job):
        self.job, self.launched = job, []

    def launch(self, overrides, initial_job_idx):
        from hydra.core.utils import JobReturn, JobStatus

        self.launched += [dict(o.split("=", 1) if "=" in o else (o, None) for o in job) for job in overrides]
        returns = []
        for job in overrides:
            ret = JobReturn()
            try:
                ret.return_value, ret.status = self.job(dict(o.split("=", 1) for o in job if "=" in o)), JobStatus.COMPLETED
            except Exception as err:  # noqa: BLE001 - what Hydra does with a raising job
                ret.return_value, ret.status = err, JobStatus.FAILED
            returns.append(ret)
        return returns


def _sweep(tmp_path, job, arguments, **kw):
    """Run a TotalTrialsSweep over ``arguments`` with a fake launcher; the sweeper, launcher and results."""
    sweeper = _sweeper(**kw)
    sweeper.config = OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}})
    sweeper.launcher = FakeLauncher(job)
    sweeper.sweep(arguments)
    return sweeper, sweeper.launcher, OmegaConf.load(tmp_path / "optimization_results.yaml")


def test_several_directions_make_a_multi_objective_study_with_its_pareto_front(tmp_path):
    job = lambda o: (float(o["x"]) ** 2, (float(o["x"]) - 2) ** 2)  # noqa: E731 - the front: 0 <= x <= 2
    _, launcher, results = _sweep(tmp_path, job, ["x=range(-2,5)"], direction=["minimize", "minimize"],
                                  n_trials=12, storage=f"sqlite:///{tmp_path / 's.db'}")
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 's.db'}")
    assert [d.name for d in study.directions] == ["MINIMIZE", "MINIMIZE"] and len(study.trials) == 12
    front = {s["params"]["x"] for s in results.solutions}
    assert front and front <= {0, 1, 2} and all(len(s["values"]) == 2 for s in results.solutions)
    with pytest.raises(ValueError, match="returned 0.5; the sweeper needs a list of 2 numbers"):
        objective_values(0.5, 2)


def test_pruning_several_objectives_or_seeds_is_refused_in_one_line():
    median = optuna.pruners.MedianPruner()
    with pytest.raises(SystemExit, match="Optuna prunes single-objective studies only; use hydra/sweeper/pruner=none"):
        _sweeper(direction=["minimize", "maximize"], pruner=median)
    with pytest.raises(SystemExit, match=r"seeds=\[0, 1\]: a pruner stops single jobs"):
        _sweeper(seeds=[0, 1], pruner=median)
    with pytest.raises(SystemExit, match="max_failure_rate=1.5: give a fraction"):
        _sweeper(max_failure_rate=1.5)
    _sweeper(seeds=[0, 1], pruner=optuna.pruners.NopPruner())  # no pruning: fine


def test_max_failure_rate_stops_the_sweep_with_the_jobs_error(tmp_path):
    def job(o):
        if float(o["x"]) > 0:
            raise RuntimeError("x must not be positive")
        return float(o["x"])

    with pytest.raises(RuntimeError, match="x must not be positive"):  # default of the plugin: 0.0
        _sweep(tmp_path, job, ["x=range(1,3)"], n_trials=4, max_failure_rate=0.0)
    _, launcher, results = _sweep(tmp_path, job, ["x=range(-3,3)"], n_trials=8, n_jobs=2)  # ours: 1.0, goes on
    assert len(launcher.launched) == 8 and results.best_value <= 0


def test_seeds_repeat_each_trial_and_the_study_gets_the_mean(tmp_path):
    job = lambda o: float(o["x"]) + 0.1 * int(o["trainer.seed"])  # noqa: E731
    url = f"sqlite:///{tmp_path / 's.db'}"
    _, launcher, results = _sweep(tmp_path, job, ["x=choice(1,2,3)", "~z"], seeds=[0, 1, 2], n_trials=3,
                                  storage=url)
    assert len(launcher.launched) == 9  # 3 trials x 3 seeds
    assert all("~z" in o for o in launcher.launched)  # a deletion reaches every job
    by_trial = {}
    for o in launcher.launched:
        by_trial.setdefault(o[f"++hydra.job.env_set.{TRIAL_ENV}"], []).append((o["x"], o["trainer.seed"]))
    assert all(len({x for x, _ in v}) == 1 and [s for _, s in v] == ["0", "1", "2"] for v in by_trial.values())
    trials = optuna.load_study(study_name="s", storage=url).trials
    for trial in trials:  # the mean of x, x + 0.1, x + 0.2 and its spread
        assert trial.value == pytest.approx(trial.params["x"] + 0.1) and trial.user_attrs["seed_std"] == [pytest.approx(0.1)]
    assert results.best_value == min(t.value for t in trials)


def test_an_optuna_search_over_seeds_summarises_each_trial(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    proc = run_in_process("lstm_ae_toy.py", "-m", "hparams_search=toy_optuna", *TINY, "hydra/sweeper/pruner=none",
                      "hydra.sweeper.n_trials=2", "hydra.sweeper.seeds=[0,1]", f"hydra.sweeper.storage={url}",
                      f"hydra.sweep.dir={tmp_path / 'sweep'}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    df = pd.read_csv(tmp_path / "sweep" / "summary.csv")
    assert len(df) == 4 and sorted(df["trainer.seed"]) == [0, 0, 1, 1]
    for trial in optuna.load_study(study_name="toy_optuna", storage=url).trials:
        rows = df[(df["optimizer.lr"] - trial.params["optimizer.lr"]).abs() < 1e-12]
        assert sorted(rows["trainer.seed"]) == [0, 1]  # both seeds of this trial
        assert rows["val_mse"].mean() == pytest.approx(trial.value, rel=1e-6)  # the study got the mean
        assert rows["val_mse_mean"].tolist() == pytest.approx([rows["val_mse"].mean()] * 2, rel=1e-12)
        assert (rows["seeds"] == 2).all()


def test_a_failed_seed_fails_its_trial(tmp_path):
    def job(o):
        if o["trainer.seed"] == "1":
            raise RuntimeError("diverged")
        return 1.0

    url = f"sqlite:///{tmp_path / 's.db'}"
    _sweep(tmp_path, job, ["x=choice(1,2)"], seeds=[0, 1], n_trials=2, storage=url)
    trials = optuna.load_study(study_name="s", storage=url).trials
    assert [t.state.name for t in trials] == ["FAIL", "FAIL"] and "diverged" in trials[0].user_attrs["error"]


def test_a_study_with_the_other_direction_is_refused_in_one_line(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    optuna.create_study(study_name="s", storage=url, direction="maximize")
    with pytest.raises(SystemExit, match=r"study 's' in .* was created to maximize, but hydra.sweeper.direction=minimize"):
        _sweeper(storage=url)._open_study()
    assert len(optuna.load_study(study_name="s", storage=url).trials) == 0  # nothing written


@pytest.mark.parametrize("storage,message", [
    ("sqlite:////nonexistent-folder/x/s.db", r"cannot open the study database .*check the URL"),
    ("journal:/proc/lstm_ae/s.log", r"cannot write the journal file .*choose a writable path"),
])
def test_an_unusable_storage_is_one_line(storage, message):
    with pytest.raises(SystemExit, match=message) as err:
        _sweeper(storage=storage)._open_study(attempts=1)
    assert "\n" not in str(err.value)


def test_bad_sweep_settings_stop_before_any_job(tmp_path):
    for args, message in (
        (["hydra/sweeper/sampler=nosuch"], "Could not find 'hydra/sweeper/sampler/nosuch'"),
        (["hydra/sweeper/pruner=nosuch"], "Could not find 'hydra/sweeper/pruner/nosuch'"),
        (["hydra.sweeper.seeds=[0,1]"], "a pruner stops single jobs, not a trial's seeds; use hydra/sweeper/pruner=none"),
        (["hydra.sweeper.storage=journal:/proc/lstm_ae/s.log"], "cannot write the journal file"),
    ):
        proc = run_in_process("lstm_ae_toy.py", "-m", "hparams_search=toy_optuna", *TINY, *args,
                          f"hydra.sweep.dir={tmp_path / 'sweep'}")
        out = proc.stdout + proc.stderr
        assert proc.returncode != 0 and message in out and "Traceback" not in out, out[-2000:]
        assert not list((tmp_path / "sweep").glob("*/results.json"))


@pytest.mark.parametrize("launcher", ["basic", "joblib"])
def test_pruned_trials_stop_at_once_and_are_recorded(tmp_path, launcher):
    """Every job reports its validation MSE each epoch; a pruner that prunes anything above 1e-9 from
    epoch 2 on stops each trial after its 2nd epoch: PRUNED in the study, the epoch in summary.csv."""
    db = tmp_path / "p.db"
    run = run_in_process if launcher == "basic" else run_script  # joblib's worker processes: from a fresh interpreter
    proc = run("lstm_ae_toy.py", "-m", "hparams_search=toy_optuna", *TINY, "trainer.epochs=6",
                      "hydra.sweeper.n_trials=2", "hydra.sweeper.n_jobs=2", f"hydra/launcher={launcher}",
                      "hydra/sweeper/pruner=threshold", "hydra.sweeper.pruner.upper=1e-9",
                      "hydra.sweeper.pruner.n_warmup_steps=2", f"hydra.sweeper.storage=sqlite:///{db}",
                      f"hydra.sweep.dir={tmp_path / 'sweep'}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    trials = optuna.load_study(study_name="toy_optuna", storage=f"sqlite:///{db}").trials
    assert [t.state for t in trials] == [optuna.trial.TrialState.PRUNED] * 2
    assert all(sorted(t.intermediate_values) == [1, 2] for t in trials)  # reported every epoch, stopped after 2
    df = pd.read_csv(tmp_path / "sweep" / "summary.csv")
    assert list(df["status"]) == ["pruned", "pruned"] and list(df["pruned_at_epoch"]) == [2, 2]
    for job in ("0", "1"):
        assert list(pd.read_csv(tmp_path / "sweep" / job / "metrics.csv")["epoch"]) == [1, 2]
        assert not (tmp_path / "sweep" / job / "results.json").exists()


@pytest.mark.parametrize("direction,values,reported", [
    ("minimize", [0.5, 0.7, 0.3, 0.4], [0.5, 0.5, 0.3, 0.3]),
    ("maximize", [0.5, 0.7, 0.3, 0.9], [0.5, 0.7, 0.7, 0.9]),
])
def test_a_job_reports_its_best_objective_so_far(tmp_path, monkeypatch, direction, values, reported):
    """The pruner sees the best value so far (what a stopped trial keeps), not the epoch's own jump;
    a resumed job carries on from the best its trial already reported."""
    from lstm_ae.optuna_sweeper import pruning_callback

    url = f"sqlite:///{tmp_path / 'r.db'}"
    study = optuna.create_study(study_name="r", storage=url, direction=direction)
    trial = study.ask()
    monkeypatch.setenv(TRIAL_ENV, str(trial.number))
    cfg = OmegaConf.create({"storage": url, "study_name": "r",
                            "pruner": {"_target_": "optuna.pruners.ThresholdPruner", "upper": 10.0}})
    report = pruning_callback(cfg, "val_mse")
    for epoch, value in enumerate(values[:3], 1):
        report(epoch, None, {"val_mse": value})
    resumed = pruning_callback(cfg, "val_mse")  # a new process after an interruption
    resumed(4, None, {"val_mse": values[3]})
    stored = optuna.load_study(study_name="r", storage=url).trials[0].intermediate_values
    assert [stored[e] for e in (1, 2, 3, 4)] == reported


def test_workers_racing_for_the_last_trial_run_it_once():
    from lstm_ae.optuna_sweeper import TotalTrialsSweep, counted, interrupted

    study = optuna.create_study()
    for _ in range(3):
        study.tell(study.ask(), 1.0)
    sweep = TotalTrialsSweep(sampler=None, direction="minimize", storage=None, study_name=None, n_trials=4, n_jobs=1)
    first, second = study.ask(), study.ask()  # two workers counted 3 of 4 and asked at once
    assert sweep._drop_surplus(study, [second]) == [] and sweep._drop_surplus(study, [first]) == [first]
    late = study.trials[second.number]
    assert late.state == optuna.trial.TrialState.FAIL and late.user_attrs["surplus"] and interrupted(late)
    assert counted(study) == 4


def test_a_worker_whose_heartbeat_stopped_has_its_trial_replaced(tmp_path):
    """A trial of a worker on another machine (no process to watch) is failed as interrupted once its
    heartbeat is older than grace_period; it no longer counts towards n_trials."""
    from lstm_ae.optuna_sweeper import Heartbeat, counted, fail_interrupted, interrupted, open_storage

    storage = open_storage(f"sqlite:///{tmp_path / 'hb.db'}", heartbeat_interval=1, grace_period=2)
    study = optuna.create_study(storage=storage, study_name="hb")
    alive, dead = study.ask(), study.ask()
    for trial in (alive, dead):
        trial.set_user_attr("worker", "elsewhere:1")
    with Heartbeat(storage, [dead]):  # beats once at the start, then the "machine" is gone
        pass
    with Heartbeat(storage, [alive]):  # this one keeps beating
        time.sleep(3.2)
        assert fail_interrupted(study, storage) == 1
    states = {t.number: t for t in study.trials}
    assert interrupted(states[dead.number]) and states[alive.number].state == optuna.trial.TrialState.RUNNING
    assert counted(study) == 1


def test_enqueued_configurations_run_first_and_once(tmp_path):
    """hydra.sweeper.enqueue: the study's first trial is the given configuration; a resumed study does not run
    it again; a value outside the space or a missing parameter is one line before any job."""
    url = f"sqlite:///{tmp_path / 's.db'}"
    space = ["x=choice(1,2,3)", "y=choice(a,b)"]
    job = lambda o: float(o["x"]) + (o["y"] == "b")  # noqa: E731
    _, launcher, _ = _sweep(tmp_path, job, space, n_trials=2, storage=url, enqueue=[{"x": 3, "y": "b"}])
    assert (launcher.launched[0]["x"], launcher.launched[0]["y"]) == ("3", "b")
    _, again, _ = _sweep(tmp_path, job, space, n_trials=4, storage=url, enqueue=[{"x": 3, "y": "b"}])
    study = optuna.load_study(study_name="s", storage=url)
    assert len(study.trials) == 4 and study.trials[0].params == {"x": 3, "y": "b"}
    assert [o[f"++hydra.job.env_set.{TRIAL_ENV}"] for o in again.launched] == ["2", "3"]  # trial 0 not again
    for bad, says in (({"x": 4, "y": "a"}, r"enqueue\[0\]: x=4 is not in its search space"),
                      ({"x": 1}, r"enqueue\[0\]: no value for y; give a value for each parameter"),
                      ({"x": 1, "y": "a", "z": 2}, r"enqueue\[0\]: no such searched parameter z")):
        with pytest.raises(SystemExit, match=says):
            _sweep(tmp_path / "bad", job, space, n_trials=1, storage=f"sqlite:///{tmp_path / 'b.db'}", enqueue=[bad])
    assert not (tmp_path / "b.db").exists()  # refused before the study is opened


def test_reuse_duplicates_tells_a_repeated_trial_its_values_without_running_it(tmp_path):
    """hydra.sweeper.reuse_duplicates: a trial whose parameters repeat a finished one's is told its values (and
    seeds' values) and launches no job; without it, every trial runs."""
    url = f"sqlite:///{tmp_path / 's.db'}"
    job = lambda o: float(o["x"]) + 0.1 * int(o["trainer.seed"])  # noqa: E731
    _, launcher, _ = _sweep(tmp_path, job, ["x=choice(1,2)"], n_trials=6, storage=url, seeds=[0, 1],
                            reuse_duplicates=True)
    trials = optuna.load_study(study_name="s", storage=url).trials
    assert len(trials) == 6 and all(t.state.name == "COMPLETE" for t in trials)
    ran = [t for t in trials if "duplicate_of" not in t.user_attrs]
    assert len(launcher.launched) == 2 * len(ran) and len(ran) == len({t.params["x"] for t in trials}) <= 2
    for t in trials:
        assert t.value == pytest.approx(t.params["x"] + 0.05) and t.user_attrs["seed_values"] == [
            [pytest.approx(t.params["x"])], [pytest.approx(t.params["x"] + 0.1)]]
        if "duplicate_of" in t.user_attrs:
            assert trials[t.user_attrs["duplicate_of"]].params == t.params
    _, every, _ = _sweep(tmp_path / "all", job, ["x=choice(1,2)"], n_trials=6, seeds=[0, 1],
                         storage=f"sqlite:///{tmp_path / 'all.db'}")
    assert len(every.launched) == 12
