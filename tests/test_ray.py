"""The optional Ray launcher (extra .[ray]): a 2-job sweep on a local Ray instance and on a running
Ray cluster (`ray start --head`, as a user would start one). Skipped without the extra."""
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import TINY_TOY, run_in_process, run_script

pytestmark = [
    pytest.mark.skipif(importlib.util.find_spec("hydra_plugins.hydra_ray_launcher") is None,
                       reason="the optional Ray launcher is not installed (pip install -e '.[ray]')"),
    pytest.mark.scale,  # make test-scale
    pytest.mark.xdist_group("ray"),  # one Ray at a time: each wants both cores and some default ports
]
TINY = [*TINY_TOY, "trainer.epochs=1", "dataset.num_sequences=60", "model.hidden_size=4,8"]


def free_ports(n: int):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def assert_two_completed_jobs(sweep_dir: Path) -> None:
    df = pd.read_csv(sweep_dir / "summary.csv")
    assert len(df) == 2 and (df["status"] == "finished").all()
    assert set(df["model.hidden_size"]) == {4, 8}


@pytest.fixture
def ray_head(monkeypatch):
    """A Ray head node started with `ray start --head --block` in its own session; yields its address
    and stops it (SIGTERM: Ray drains and stops every process of the node; SIGKILL to its process
    group if that hangs)."""
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")  # Ray >= 2.5x: no token auth on a private test node
    temp_dir = tempfile.mkdtemp(prefix="ray-")  # short: Ray's socket paths must stay under 107 bytes
    gcs, client, dashboard, agent = free_ports(4)
    log = open(Path(temp_dir) / "start.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block", "--num-cpus=2",
         f"--temp-dir={temp_dir}", "--node-ip-address=127.0.0.1", f"--port={gcs}",
         f"--ray-client-server-port={client}", f"--dashboard-port={dashboard}",
         f"--dashboard-agent-listen-port={agent}", "--include-dashboard=false", "--disable-usage-stats"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        address_file = Path(temp_dir) / "ray_current_cluster"  # written once the node is up
        deadline = time.time() + 120
        while not (address_file.exists() and address_file.read_text().strip()):
            assert proc.poll() is None and time.time() < deadline, (Path(temp_dir) / "start.log").read_text()[-3000:]
            time.sleep(0.2)
        yield address_file.read_text().strip()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
        shutil.rmtree(temp_dir, ignore_errors=True)


def test_ray_launcher_runs_a_sweep_locally(tmp_path, monkeypatch):
    ray_tmp = tempfile.mkdtemp(prefix="ray-")  # short: Ray's socket paths must stay under 107 bytes
    env_args = ["+hydra.launcher.ray.init.num_cpus=2", f"+hydra.launcher.ray.init._temp_dir={ray_tmp}"]
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    proc = run_script("lstm_ae_toy.py", "-m", "hydra/launcher=ray", *env_args, *TINY,
                      f"hydra.sweep.dir={tmp_path / 'sweep'}", timeout=600)
    shutil.rmtree(ray_tmp, ignore_errors=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_two_completed_jobs(tmp_path / "sweep")


def test_ray_cluster_launcher_runs_a_sweep_on_a_running_cluster(ray_head, tmp_path):
    # hydra/launcher=ray_cluster (conf/hydra/launcher/ray_cluster.yaml): without its
    # object_store_memory: null the launcher fails with "ValueError: When connecting to an existing
    # cluster, object_store_memory must not be provided."
    proc = run_script("lstm_ae_toy.py", "-m", "hydra/launcher=ray_cluster", f"hydra.launcher.ray.init.address={ray_head}",
                      *TINY, f"hydra.sweep.dir={tmp_path / 'sweep'}", timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"Connecting to existing Ray cluster at address: {ray_head}" in proc.stderr
    assert_two_completed_jobs(tmp_path / "sweep")


def test_a_ray_address_with_no_cluster_behind_it_is_one_line(tmp_path):
    (port,) = free_ports(1)
    proc = run_in_process("lstm_ae_toy.py", "-m", "hydra/launcher=ray_cluster", f"hydra.launcher.ray.init.address=127.0.0.1:{port}",
                          *TINY, f"hydra.sweep.dir={tmp_path / 'sweep'}")
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr[-3000:]
    assert f"hydra.launcher.ray.init.address=127.0.0.1:{port}: no Ray cluster answers" in lines[0]
    assert not (tmp_path / "sweep").exists()
