"""optuna-dashboard and the optuna CLI read the studies our sweeps write (the [dashboard] extra,
which make test installs): a real server on 127.0.0.1, queried over HTTP, then stopped."""
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import NO_FIGURES, TINY_TOY, free_port, get_json, run_in_process

BIN = Path(sys.executable).parent  # the commands of this environment
DASHBOARD = BIN / "optuna-dashboard"
pytestmark = pytest.mark.skipif(not DASHBOARD.exists(), reason="optuna-dashboard is not installed (pip install -e '.[dashboard]')")


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A 3-trial study of the toy Optuna search, one trial failing (hidden size 0)."""
    tmp = tmp_path_factory.mktemp("dashboard")
    db = tmp / "toy.db"
    proc = run_in_process("lstm_ae_toy.py", "-m", "hydra/sweeper=optuna", "hydra/sweeper/sampler=grid",
                      "hydra.sweeper.study_name=toy_optuna",
                      *[a for a in TINY_TOY if "hidden_size" not in a], "dataset.num_sequences=60", "trainer.epochs=1", NO_FIGURES,
                      "model.hidden_size=choice(0,4,6)", "optimizer.lr=choice(0.01)", "trainer.grad_clip=choice(1.0)",
                      f"hydra.sweeper.storage=sqlite:///{db}",
                      f"hydra.sweep.dir={tmp / 'sweep'}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return f"sqlite:///{db}"


def test_dashboard_serves_the_study_trials(study):
    port = free_port()
    server = subprocess.Popen([DASHBOARD, study, "--host", "127.0.0.1", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.time() + 30
        while True:
            try:
                studies = get_json(f"{base}/api/studies")["study_summaries"]
                break
            except OSError:
                assert server.poll() is None and time.time() < deadline, server.stderr.read() if server.poll() else "timeout"
                time.sleep(0.2)
        assert [s["study_name"] for s in studies] == ["toy_optuna"]
        trials = get_json(f"{base}/api/studies/{studies[0]['study_id']}")["trials"]
        assert len(trials) == 3
        assert sorted(t["state"] for t in trials) == ["Complete", "Complete", "Fail"]
        failed = next(t for t in trials if t["state"] == "Fail")
        assert any(p["name"] == "model.hidden_size" and p["param_external_value"] == "0" for p in failed["params"])
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert server.returncode is not None


def test_optuna_cli_lists_the_trials(study):
    out = subprocess.run([BIN / "optuna", "trials", "--storage", study, "--study-name", "toy_optuna", "-f", "json"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert len(rows) == 3 and sorted(r["state"] for r in rows) == ["COMPLETE", "COMPLETE", "FAIL"]
