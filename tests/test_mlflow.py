"""logger=mlflow (the [mlflow] extra, which make test installs): a real ``mlflow server`` on 127.0.0.1 with a
temporary SQLite backend, a 2-job sweep on joblib's worker processes against it, read back over its REST API
(parent and children, params, per-epoch metrics, artifacts); passwords kept out of run folders and logs; one
line for a server that does not answer; a resumed run continues its MLflow run with no step twice; Optuna
workers on one study under one parent; MLflow imported only with this logger."""
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from lstm_ae.errors import UserError
from lstm_ae.experiment import train_and_test
from lstm_ae.loggers import RUN_FILE, shown
from tests.conftest import ROOT, TINY_TOY, compose_cfg, free_port, get_json, run_in_process, run_script

MLFLOW = Path(sys.executable).parent / "mlflow"
pytestmark = pytest.mark.skipif(not MLFLOW.exists(), reason="MLflow is not installed (pip install -e '.[mlflow]')")
on_the_server = pytest.mark.xdist_group("mlflow_server")  # the tests that share the module's server and sweep
TINY = [*TINY_TOY, "dataset.num_sequences=60", "trainer.epochs=2", "logger=mlflow"]


def post_json(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def get_bytes(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """``mlflow server`` on a free port (SQLite backend, artifacts served by it); stopped with its workers."""
    tmp = tmp_path_factory.mktemp("mlflow_server")
    port = free_port()
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # no background job runners
    env.pop("MLFLOW_TRACKING_URI", None)
    proc = subprocess.Popen([MLFLOW, "server", "--backend-store-uri", f"sqlite:///{tmp / 'mlflow.db'}",
                             "--artifacts-destination", str(tmp / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
                             "--workers", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=env, cwd=tmp, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                get_bytes(f"{url}/health")
                break
            except OSError:
                assert proc.poll() is None, proc.stderr.read()[-3000:]
                assert time.time() < deadline, "mlflow server did not answer within 120 s"
                time.sleep(0.3)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the server and its uvicorn worker
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@pytest.fixture(scope="module")
def sweep(server, tmp_path_factory):
    """A 2-job toy sweep on joblib (two worker processes) logging to the server."""
    sweep_dir = tmp_path_factory.mktemp("mlflow_sweep") / "sweep"
    proc = run_script("lstm_ae_toy.py", "-m", *TINY, f"logger.tracking_uri={server}", "hydra/launcher=joblib",
                      "hydra.launcher.n_jobs=2", "optimizer.lr=0.01,0.02", f"hydra.sweep.dir={sweep_dir}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return sweep_dir


def api(server: str, endpoint: str, **query) -> dict:
    return get_json(f"{server}/api/2.0/mlflow/{endpoint}?{urllib.parse.urlencode(query)}")


def runs_of(server: str, experiment: str) -> list:
    exp = api(server, "experiments/get-by-name", experiment_name=experiment)["experiment"]["experiment_id"]
    return post_json(f"{server}/api/2.0/mlflow/runs/search", {"experiment_ids": [exp], "max_results": 100}).get("runs", [])


def tags(run: dict) -> dict:
    return {t["key"]: t["value"] for t in run["data"].get("tags", [])}


@on_the_server
def test_a_sweep_is_a_parent_run_with_a_child_per_job(server, sweep):
    runs = runs_of(server, "toy")  # the experiment is named after the config
    parents = [r for r in runs if "mlflow.parentRunId" not in tags(r)]
    children = [r for r in runs if "mlflow.parentRunId" in tags(r)]
    assert len(parents) == 1 and len(children) == 2
    parent = parents[0]
    assert tags(parent)["sweep_dir"] == str(sweep) and tags(parent)["status"] == "finished"
    assert parent["info"]["status"] == "FINISHED" and tags(parent)["swept"] == "optimizer.lr"
    parent_files = [f["path"] for f in api(server, "artifacts/list", run_id=parent["info"]["run_id"])["files"]]
    assert parent_files == ["sweep"]  # the sweep's summary.csv, under its folder's name
    in_git = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True).returncode == 0
    by_job = {tags(r)["job"]: r for r in children}
    assert sorted(by_job) == ["0", "1"]
    for job, lr in (("0", "0.01"), ("1", "0.02")):
        run, folder = by_job[job], sweep / job
        t = tags(run)
        assert t["mlflow.parentRunId"] == parent["info"]["run_id"] and t["run_dir"] == str(folder)
        assert t["status"] == "finished" and run["info"]["status"] == "FINISHED"
        assert run["info"]["run_name"] == f"job {job}: optimizer.lr={lr}"
        if in_git:  # the checkout's commit (HEAD then: it may have moved on since)
            commit = t["mlflow.source.git.commit"]
            assert len(commit) == 40 and subprocess.run(["git", "-C", str(ROOT), "merge-base", "--is-ancestor", commit,
                                                         "HEAD"]).returncode == 0
        assert json.loads((folder / RUN_FILE).read_text())["run_id"] == run["info"]["run_id"]


@on_the_server
def test_each_job_has_its_config_metrics_and_artifacts(server, sweep):
    children = {tags(r)["job"]: r for r in runs_of(server, "toy") if "mlflow.parentRunId" in tags(r)}
    for job, lr in (("0", "0.01"), ("1", "0.02")):
        run, folder = children[job], sweep / job
        run_id = run["info"]["run_id"]
        params = {p["key"]: p["value"] for p in run["data"]["params"]}
        assert params["optimizer.lr"] == lr and params["model.hidden_size"] == "8"
        assert params["dataset.split"] == "[0.6, 0.2, 0.2]" and params["trainer.grad_clip"] == "0.02"  # lists as text
        assert params["logger.tracking_uri"] == server and len(params) > 40  # the whole composed config
        metrics = pd.read_csv(folder / "metrics.csv")
        latest = {m["key"]: m["value"] for m in run["data"]["metrics"]}
        assert set(metrics.columns) - {"epoch"} <= set(latest)  # every column, the learning rate included
        for column in metrics.columns.drop("epoch"):
            history = api(server, "metrics/get-history", run_id=run_id, metric_key=column)["metrics"]
            assert sorted(m["step"] for m in history) == [1, 2]  # step = epoch, once each
            assert [m["value"] for m in sorted(history, key=lambda m: m["step"])] == pytest.approx(metrics[column].tolist())
        results = json.loads((folder / "results.json").read_text())
        for key in ("test_mse", "baseline_test_mse", "best_epoch"):
            assert latest[key] == pytest.approx(results[key])
        assert latest["best_val_mse"] == pytest.approx(results["val_mse"])
        files = {f["path"] for f in api(server, "artifacts/list", run_id=run_id)["files"]}
        assert {"results.json", "metrics.csv", ".hydra", "loss.png", "reconstructions.png"} <= files
        hydra = {f["path"] for f in api(server, "artifacts/list", run_id=run_id, path=".hydra")["files"]}
        assert hydra == {".hydra/config.yaml", ".hydra/hydra.yaml", ".hydra/overrides.yaml"}
        served = get_bytes(f"{server}/get-artifact?{urllib.parse.urlencode({'run_uuid': run_id, 'path': 'results.json'})}")
        assert json.loads(served) == results


@on_the_server
def test_no_password_reaches_a_run_folder_or_a_log(server, tmp_path, monkeypatch):
    """Credentials come only from MLflow's own variables; a password in $MLFLOW_TRACKING_URI is masked."""
    secret = "s3cret-pw"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server.replace("//", f"//alice:{secret}@"))
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "t0ken-value")
    run = tmp_path / "run"
    proc = run_in_process("lstm_ae_toy.py", *TINY, "task.figures=false", "logger.experiment=secrets", f"hydra.run.dir={run}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "alice:***@127.0.0.1" in proc.stdout + proc.stderr  # the log says where the run went, masked
    for text in [proc.stdout, proc.stderr, *(p.read_bytes().decode(errors="replace") for p in run.rglob("*") if p.is_file())]:
        assert secret not in text and "t0ken-value" not in text
    [logged] = runs_of(server, "secrets")
    assert tags(logged)["run_dir"] == str(run)
    assert all(secret not in p["value"] for p in logged["data"]["params"])


def test_a_password_in_tracking_uri_is_refused_in_one_line(tmp_path):
    proc = run_in_process("lstm_ae_toy.py", *TINY, "logger.tracking_uri=http://bob:pw@127.0.0.1:1",
                          f"hydra.run.dir={tmp_path / 'run'}")
    err = proc.stderr.strip()
    assert proc.returncode == 2 and "\n" not in err and "Traceback" not in err, err
    assert err.startswith("Error: logger.tracking_uri=http://bob:***@127.0.0.1:1 holds a password") and "MLFLOW_TRACKING_PASSWORD" in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("how", ["key", "env"])
def test_a_server_that_does_not_answer_is_one_line_before_any_job(tmp_path, monkeypatch, how):
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    key = "logger.tracking_uri" if how == "key" else "MLFLOW_TRACKING_URI"
    args = [f"logger.tracking_uri={url}"] if how == "key" else []
    if how == "env":
        monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    for mode, folder in ([], "run"), (["-m", "optimizer.lr=0.01,0.02"], "sweep"):
        proc = run_in_process("lstm_ae_toy.py", *mode, *TINY, *args,
                              f"hydra.{'sweep' if mode else 'run'}.dir={tmp_path / folder}")
        err = proc.stderr.strip()
        assert proc.returncode == 2 and "\n" not in err and "Traceback" not in err, err
        assert err.startswith(f"Error: {key}={url}: no MLflow server answers") and f"set {key}" in err
        assert not (tmp_path / folder).exists()


def local(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def history(uri: str, run_id: str, key: str) -> list:
    from mlflow import MlflowClient

    return sorted((m.step, m.value) for m in MlflowClient(uri).get_metric_history(run_id, key))


def test_a_resumed_run_continues_its_mlflow_run_with_no_step_twice(tmp_path, monkeypatch):
    from mlflow import MlflowClient

    uri, run = local(tmp_path), tmp_path / "run"
    args = [*TINY, "trainer.epochs=4", "task.figures=false", f"logger.tracking_uri={uri}", "logger.experiment=resume"]

    class Killed(Exception):
        pass

    def interrupt(epoch, model, row):  # dies after epoch 3 was logged, its checkpoint being epoch 2's (as a
        if epoch == 2:                 # kill between the two would leave it): MLflow then holds one epoch more
            (tmp_path / "epoch2.pt").write_bytes((run / "checkpoints" / "last.pt").read_bytes())
        if epoch == 3:
            raise Killed

    monkeypatch.setattr("lstm_ae.experiment._pruning", lambda task: [interrupt])
    with pytest.raises(Killed):
        train_and_test(compose_cfg("toy", args), run)
    run_id = json.loads((run / RUN_FILE).read_text())["run_id"]
    client = MlflowClient(uri)
    assert client.get_run(run_id).info.status == "FAILED" and client.get_run(run_id).data.tags["status"] == "failed"
    (run / "checkpoints" / "last.pt").write_bytes((tmp_path / "epoch2.pt").read_bytes())
    monkeypatch.setattr("lstm_ae.experiment._pruning", lambda task: [])
    train_and_test(compose_cfg("toy", [*args, f"trainer.resume={run}"]), run)
    assert json.loads((run / RUN_FILE).read_text())["run_id"] == run_id  # the same MLflow run, continued
    [only] = client.search_runs([client.get_experiment_by_name("resume").experiment_id])
    assert only.info.run_id == run_id and only.info.status == "FINISHED" and only.data.tags["status"] == "finished"
    metrics = pd.read_csv(run / "metrics.csv")
    logged = history(uri, run_id, "train_loss")
    assert [step for step, _ in logged] == [1, 2, 3, 4]  # epoch 3 trained twice, logged once
    assert [v for s, v in logged if s != 3] == pytest.approx(metrics[metrics.epoch != 3]["train_loss"].tolist())
    assert only.data.metrics["test_mse"] == pytest.approx(json.loads((run / "results.json").read_text())["test_mse"])


def test_optuna_workers_on_one_study_share_one_parent(tmp_path):
    """Two workers of one study (each its own sweep folder) run under one parent; each child has its trial number."""
    uri = local(tmp_path)
    for worker, trials in (("a", 1), ("b", 2)):
        proc = run_in_process("lstm_ae_toy.py", "-m", "hparams_search=toy_optuna", *TINY, "trainer.epochs=1",
                              "task.figures=false", f"logger.tracking_uri={uri}", f"hydra.sweeper.n_trials={trials}",
                              f"hydra.sweeper.storage=sqlite:///{tmp_path / 'study.db'}",
                              f"hydra.sweep.dir={tmp_path / worker}")
        assert proc.returncode == 0, proc.stderr[-3000:]
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("toy").experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1 and parents[0].info.run_name == "study toy_optuna"
    children = sorted((r for r in runs if r not in parents), key=lambda r: r.data.tags["optuna_trial"])
    assert [r.data.tags["optuna_trial"] for r in children] == ["0", "1"]
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parents[0].info.run_id}
    assert [r.data.tags["run_dir"] for r in children] == [str(tmp_path / "a" / "0"), str(tmp_path / "b" / "1")]
    assert children[0].info.run_name.startswith("trial 0: ") and "optimizer.lr=" in children[0].info.run_name


@pytest.mark.scale  # make test-scale: with the extras of these launchers
@pytest.mark.xdist_group("ray")  # not beside another Ray
@pytest.mark.parametrize("launcher", ["submitit_local", "ray"])
def test_each_job_of_another_launcher_runs_under_the_sweeps_parent(tmp_path, monkeypatch, launcher):
    plugin = {"submitit_local": "hydra_submitit_launcher", "ray": "hydra_ray_launcher"}[launcher]
    if importlib.util.find_spec(f"hydra_plugins.{plugin}") is None:
        pytest.skip(f"the {launcher} launcher is not installed")
    ray_tmp = tempfile.mkdtemp(prefix="ray-")  # short: Ray's socket paths must stay under 107 bytes
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    extra = (["hydra.launcher.timeout_min=10"] if launcher == "submitit_local" else
             ["+hydra.launcher.ray.init.num_cpus=2", f"+hydra.launcher.ray.init._temp_dir={ray_tmp}"])
    uri = local(tmp_path)
    proc = run_script("lstm_ae_toy.py", "-m", f"hydra/launcher={launcher}", *extra, *TINY, "trainer.epochs=1",
                      "task.figures=false", "model.hidden_size=4,8", f"logger.tracking_uri={uri}",
                      f"hydra.sweep.dir={tmp_path / 'sweep'}", timeout=600)
    shutil.rmtree(ray_tmp, ignore_errors=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("toy").experiment_id])
    [parent] = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = sorted((r for r in runs if r is not parent), key=lambda r: r.data.tags["job"])
    assert [(r.data.tags["job"], r.data.tags["mlflow.parentRunId"], r.info.status) for r in children] == [
        ("0", parent.info.run_id, "FINISHED"), ("1", parent.info.run_id, "FINISHED")]
    assert [r.data.params["model.hidden_size"] for r in children] == ["4", "8"]
    assert all([s for s, _ in history(uri, r.info.run_id, "train_loss")] == [1] for r in children)


def test_mlflow_is_imported_only_with_its_logger():
    code = ("import sys, lstm_ae.experiment, lstm_ae.callbacks, lstm_ae.loggers; "
            "assert 'mlflow' not in sys.modules, 'mlflow imported'")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_without_its_extra_is_one_line_before_training(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if MLflow were absent
    with pytest.raises(UserError, match=r"^logger=mlflow needs MLflow: pip install -e '\.\[mlflow\]'") as err:
        train_and_test(compose_cfg("toy", [*TINY, f"logger.tracking_uri={local(tmp_path)}"]), tmp_path / "run")
    assert "\n" not in str(err.value) and not (tmp_path / "run" / "metrics.csv").exists()


def test_shown_masks_passwords():
    assert shown("http://u:p@h:5000/x") == "http://u:***@h:5000/x" and shown("http://h:5000") == "http://h:5000"
    assert shown("error at https://a:b@c/d and postgresql://x:y@z/db") == "error at https://a:***@c/d and postgresql://x:***@z/db"
