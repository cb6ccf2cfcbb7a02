"""The submitit launcher (extra .[slurm]): a 2-job sweep through submitit's local executor
(`hydra/launcher=submitit_local`: the code path of `submitit_slurm` without the scheduler; each job
is pickled, run by a separate worker process and its result read back). Skipped without the extra;
`make test-scale` installs it."""
import importlib.util
import json

import pandas as pd
import pytest

from tests.conftest import TINY_TOY, run_script

pytestmark = [
    pytest.mark.skipif(importlib.util.find_spec("hydra_plugins.hydra_submitit_launcher") is None,
                       reason="the optional submitit launcher is not installed (pip install -e '.[slurm]')"),
    pytest.mark.scale,
]


def test_submitit_local_runs_a_two_job_sweep(tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_script("lstm_ae_toy.py", "-m", "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10",
                      *TINY_TOY, "trainer.epochs=1", "dataset.num_sequences=60", "model.hidden_size=4,8",
                      f"hydra.sweep.dir={sweep}", timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Submitit 'local' sweep output dir" in proc.stderr + proc.stdout
    df = pd.read_csv(sweep / "summary.csv")
    assert len(df) == 2 and (df["status"] == "finished").all() and set(df["model.hidden_size"]) == {4, 8}
    for job in ("0", "1"):
        results = json.loads((sweep / job / "results.json").read_text())
        assert results["epochs_run"] == 1 and results["test_mse"] > 0
    # submitit ran each job in its own worker and kept its logs and pickled result
    logs = sorted(p.name for p in (sweep / ".submitit").rglob("*_log.out"))
    results = sorted((sweep / ".submitit").rglob("*_result.pkl"))
    assert len(logs) == 2 and len(results) == 2, sorted(p.name for p in (sweep / ".submitit").rglob("*"))


def test_the_slurm_launcher_config_composes_with_a_partition():
    from tests.conftest import compose_cfg

    cfg = compose_cfg("toy", ["hydra/launcher=slurm", "hydra.launcher.partition=gpu", "hydra.launcher.gpus_per_task=1"],
                      hydra=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher") and launcher.partition == "gpu"
    assert (launcher.gpus_per_task, launcher.cpus_per_task, launcher.timeout_min, launcher.array_parallelism) == (1, 2, 120, 16)
    assert launcher.submitit_folder.endswith("/.submitit/%j")
