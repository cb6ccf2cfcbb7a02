"""python -m lstm_ae.reproduce --budget smoke runs every experiment; python -m lstm_ae.report builds the report."""
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lstm_ae import report, reproduce
from tests.conftest import run_in_process, sp500_root, write_fake_mnist

pytestmark = pytest.mark.xdist_group("reproduce_smoke")  # its one run stays on one worker


def first_fresh_then_in_process(real_run):
    """reproduce's ``subprocess.run``: its first command in a fresh interpreter, as reproduce runs
    them all; the others in this process (each fresh interpreter costs ~5 s of imports here)."""
    calls = []

    def run(cmd, cwd, env, **kwargs):
        calls.append(cmd)
        if len(calls) == 1:
            return real_run(cmd, cwd=cwd, env=env, **kwargs)
        assert cmd[0] == sys.executable
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("LSTM_AE_DATA", env["LSTM_AE_DATA"])
            return run_in_process(Path(cmd[1]).name, *cmd[2:])

    return run


@pytest.fixture(scope="session")  # made once, also when xdist interleaves other tests
def smoke(tmp_path_factory):
    """A fake data root (MNIST and S&P with the real file layout) and one smoke run of the whole chain."""
    tmp = tmp_path_factory.mktemp("reproduce")
    write_fake_mnist(tmp / "data", n_train=400, n_test=100)
    sp500_root(tmp, days=130)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(reproduce.subprocess, "run", first_fresh_then_in_process(subprocess.run))
        status = reproduce.reproduce("smoke", tmp / "runs", data=str(tmp / "data"), overrides=["trainer.device=cpu"])
    return tmp, status


def test_smoke_budget_runs_every_experiment(smoke, capsys):
    tmp, status = smoke
    assert set(status) == {e.name for e in reproduce.EXPERIMENTS}
    assert all(s["status"] == "done" for s in status.values()), status
    again = reproduce.reproduce("smoke", tmp / "runs", data=str(tmp / "data"), overrides=["trainer.device=cpu"])  # complete runs are skipped
    assert all(s["status"] == "done before" for s in again.values())
    assert "already complete" in capsys.readouterr().out
    import pandas as pd

    ledger = pd.read_csv(tmp / "runs" / "smoke" / "reproduce.csv")  # the skipped call kept the first timings
    assert list(ledger["experiment"]) == [e.name for e in reproduce.EXPERIMENTS]
    assert (ledger["status"] == "done").all() and (ledger["wall_seconds"] > 0).all()
    assert (ledger["cpus"] >= 1).all() and ledger["torch"].str.startswith("2.").all()


def test_ledger_names_the_gpu_only_for_runs_that_trained_on_it(tmp_path, monkeypatch):
    import pandas as pd
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a GPU machine, on any machine
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: "Fake GPU")
    runs = {"toy": "results.json", "mnist_row_classify": "results.json", "toy_grid": "3/results.json"}
    devices = {"toy": "cpu", "mnist_row_classify": "cuda", "toy_grid": "cuda:0"}  # the ledger keeps known names
    for name, rel in runs.items():
        (tmp_path / name / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name / rel).write_text(json.dumps({"device": devices[name]}))
    ledger = tmp_path / "reproduce.csv"
    for name in runs:
        reproduce.record(ledger, name, "done", 1.0, tmp_path / name)
    reproduce.record(ledger, "sp500_predict", "failed", 1.0)  # nothing to read: whatever is visible
    reproduce.record(ledger, "sp500_forecast", "failed", 1.0, tmp_path / "no_results")  # the same
    machines = pd.read_csv(ledger).set_index("experiment")["machine"]
    assert not machines["toy"].endswith("Fake GPU"), machines["toy"]
    assert machines["mnist_row_classify"].endswith(" + Fake GPU") and machines["toy_grid"].endswith(" + Fake GPU")
    assert machines["sp500_predict"].endswith(" + Fake GPU") and machines["sp500_forecast"].endswith(" + Fake GPU")


def test_report_has_every_section_and_figure(smoke):
    tmp, _ = smoke
    paths = report.build(tmp / "runs" / "smoke", tmp / "report")
    md, page = paths["md"].read_text(), paths["html"].read_text()
    for exp in reproduce.EXPERIMENTS:
        assert f"## {exp.title}" in md
        for figure, _ in report.FIGURES[exp.name]:
            assert f"figures/{exp.name}_{figure}" in md
            assert (tmp / "report" / "figures" / f"{exp.name}_{figure}").is_file()
    for needle in ["## Budget and wall time", "| total |", "## Summary", "| mnist_row_classify | test accuracy |",
                   "| toy_grid | test MSE of the best of", "### Architecture", "Classifier: Linear(16 -> 10) on h~_T", "One-step head", "(persistence)",
                   "### Cross-validation folds", "row_vs_pixel_compare_accuracy.png",
                   # each command is the one its run was made with (here with the smoke budget's settings)
                   "| `python lstm_ae_toy.py -m hparams_search=toy_grid dataset.num_sequences=200 trainer.epochs=1 "
                   "model.hidden_size=16,20 optimizer.lr=0.01 trainer.grad_clip=1.0 trainer.device=cpu` |",
                   "Command: `python lstm_ae_toy.py dataset.num_sequences=200 model.hidden_size=16 trainer.epochs=2 "
                   "trainer.device=cpu`\n",
                   "`python lstm_ae_snp500.py task=predict task.pred_loss=last dataset.stride=1 trainer.epochs=4 "
                   "task.folds=null 'dataset.extra_prices=[open,low,close]' model.hidden_size=8 trainer.epochs=1 "
                   "trainer.device=cpu` |"]:
        assert needle in md, needle
    assert "Missing" not in md and "earlier definition" not in md
    import pandas as pd

    compared = pd.read_csv(tmp / "report" / "compare" / "compare.csv")  # row by row beside both pixel runs
    assert list(compared["run"]) == ["row by row", "pixel by pixel", "pixel by pixel (decoder clock)"]
    assert page.count("data:image/png;base64,") == md.count("![")  # every figure embedded
    pdf = paths["pdf"].read_bytes()
    pages = len(re.findall(rb"/Type\s*/Page[^s]", pdf))
    assert pdf.startswith(b"%PDF") and pages == md.count("![") + 1  # contents + one page per figure


def test_a_missing_run_is_named_not_a_crash(smoke):
    tmp, _ = smoke
    runs = tmp / "runs" / "smoke"
    paths = report.build(runs, tmp / "report_missing", {"sp500_predict": tmp / "nowhere"})
    md = paths["md"].read_text()
    assert "**Missing:** no complete run of 'sp500_predict'" in md
    assert "python -m lstm_ae.reproduce --only sp500_predict" in md
    assert "## S&P 500: reconstruction with cross-validation" in md  # the rest is still there


def test_a_run_of_an_earlier_definition_is_run_anew_and_kept_aside(smoke, tmp_path, monkeypatch, capsys):
    """A folder whose saved overrides are no longer the experiment's is not taken as done."""
    tmp, _ = smoke
    shutil.copytree(tmp / "runs" / "smoke" / "toy", tmp_path / "smoke" / "toy")
    (tmp_path / "smoke" / "toy.log").write_text("the first run's log")
    toy = reproduce.BY_NAME["toy"]
    monkeypatch.setattr(toy, "args", ["dataset.seed=1"])  # the experiment's definition changed since that run
    monkeypatch.setattr(reproduce.subprocess, "run", lambda cmd, **kw: run_in_process(Path(cmd[1]).name, *cmd[2:]))
    cpu = ["trainer.device=cpu"]
    status = reproduce.reproduce("smoke", tmp_path, only=["toy"], overrides=cpu)
    assert status["toy"]["status"] == "done"
    assert "was run with dataset.num_sequences=200" in capsys.readouterr().out
    old, = tmp_path.glob("smoke/toy.old-*[0-9]")  # the earlier run, kept, and its log
    assert (old / "results.json").is_file() and old.with_name(f"{old.name}.log").read_text() == "the first run's log"
    new = tmp_path / "smoke" / "toy"
    assert reproduce.ran_with(new, sweep=False) == ["dataset.seed=1", *toy.smoke, *cpu]
    assert reproduce.run_command(toy, new) == (f"python lstm_ae_toy.py dataset.seed=1 {' '.join(toy.smoke)} "
                                               "trainer.device=cpu", True)
    assert report.command_cell(toy, old).endswith("(a run of an earlier definition; now: "
                                                  "`python lstm_ae_toy.py dataset.seed=1`)")
    assert reproduce.reproduce("smoke", tmp_path, only=["toy"], overrides=cpu)["toy"]["status"] == "done before"
    one_epoch = reproduce.reproduce("smoke", tmp_path, only=["toy"], overrides=[*cpu, "trainer.epochs=1"])
    assert one_epoch["toy"]["status"] == "done"  # other overrides: another run
    assert len(list(tmp_path.glob("smoke/toy.old-*[0-9]"))) == 2
    # overrides that do not define a run (trainer.progress, hydra.*), repeated: the run is done, twice
    watched = [*cpu, "trainer.epochs=1", "trainer.progress=false", "hydra.job.chdir=false"]
    for _ in range(2):
        assert reproduce.reproduce("smoke", tmp_path, only=["toy"], overrides=watched)["toy"]["status"] == "done before"
    assert len(list(tmp_path.glob("smoke/toy.old-*[0-9]"))) == 2


def test_a_run_whose_defaults_changed_since_is_stale(smoke, tmp_path):
    """The same command, but conf/ makes another config of it now (its config_sha1 differs)."""
    tmp, _ = smoke
    toy, grid = reproduce.BY_NAME["toy"], reproduce.BY_NAME["toy_grid"]
    wanted = toy.overrides("smoke", ["trainer.device=cpu"])
    for exp in (toy, grid):  # as made, conf/ makes the same config of them (a sweep: of its first job)
        assert reproduce.stale(exp, tmp / "runs" / "smoke" / exp.name, exp.overrides("smoke", ["trainer.device=cpu"])) is None
    run = shutil.copytree(tmp / "runs" / "smoke" / "toy", tmp_path / "toy")
    results = json.loads((run / "results.json").read_text())
    for name in ("results.json", "run.json"):  # made with other defaults
        (run / name).write_text(json.dumps({**json.loads((run / name).read_text()), "config_sha1": "0" * 16}))
    reason = reproduce.stale(toy, run, wanted)
    assert reason.startswith("has config_sha1 0000000000000000, but conf/ now makes ") and reason.endswith("(a default changed)")
    assert reproduce.run_command(toy, run)[1] is False
    assert results["config_sha1"] != reproduce.composed_fingerprint(toy.script, ["optimizer=adam", *wanted])
