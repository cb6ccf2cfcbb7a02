"""``python -m lstm_ae.runs``: one table of run folders, each with the right status.

Run folders are made in ``tmp_path`` in the shapes the real code writes (``.hydra/``, the
manifest ``run.json``, ``metrics.csv``, ``results.json``; and folders from before the manifest);
one real two-job toy sweep (a finished and a failed job) checks that shape against the real
thing. Every status has a test, and every command leaves the run folders as they were.
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

import pytest
import yaml

from lstm_ae import run_folder as rf
from lstm_ae import runs
from tests.conftest import ROOT, TINY_TOY, run_in_process, run_script

pytestmark = pytest.mark.xdist_group("runs")  # the real sweep is made once, on one worker

DAY = 86400.0
HEADER = "epoch,train_loss,train_mse,val_loss,val_mse,lr,seconds"
DIVERGED = ("TrainingDiverged: training (step 3 of 4) loss became nan in epoch {epoch}; the last good epoch's "
            "checkpoint is {folder}/checkpoints/last.pt. Try a lower optimizer.lr (now 0.005) or gradient clipping "
            "(trainer.grad_clip).")


# ------------------------------------------------------------------------ synthetic run folders
def metrics_rows(n: int, start: int = 1) -> List[str]:
    """``n`` rows of metrics.csv (val_mse falls until epoch 4, then rises: the best epoch is 4 or n)."""
    rows = []
    for e in range(start, start + n):
        val = 0.1 / min(e, 4) + 0.001 * max(0, e - 4)
        rows.append(f"{e},{val * 1.1},{val * 1.1},{val},{val},0.005,1.5")
    return rows


def make_run(folder: Path, *, epochs: int = 5, planned: int = 5, results: bool = True, task: str = "reconstruct",
             overrides: Optional[List[str]] = None, hidden: int = 8, lr: float = 0.005, folds: Optional[int] = None,
             log: Optional[List[str]] = None, age: Optional[float] = DAY, config: str = "toy",
             test_mse: float = 0.02, val_mse: Optional[float] = None, cut: bool = False) -> Path:
    """A run folder as ``lstm_ae_toy.py`` leaves it: ``.hydra/`` (OmegaConf's block style),
    ``metrics.csv`` with ``epochs`` rows (``cut``: and half of the next, as a kill leaves it), and
    with ``results``, ``results.json``; every file ``age`` seconds old (None: now)."""
    task_class = {"reconstruct": "Reconstruct", "classify": "Classify", "predict": "Predict"}[task]
    overrides = overrides if overrides is not None else [f"model.hidden_size={hidden}", f"trainer.epochs={planned}",
                                                         "trainer.device=cpu", "trainer.progress=false"]
    cfg = {"model": {"_target_": "lstm_ae.model.LSTMAutoencoder", "input_size": None, "hidden_size": hidden},
           "optimizer": {"_target_": "torch.optim.Adam", "lr": lr, "betas": [0.9, 0.999]},
           "dataset": {"_target_": "lstm_ae.data.toy.load_toy", "num_sequences": 100, "split": [0.6, 0.2, 0.2]},
           "task": {"_target_": f"lstm_ae.tasks.{task_class}", "num_examples": 3, "folds": folds},
           "trainer": {"epochs": planned, "batch_size": 16, "device": "cpu", "progress": False, "resume": None}}
    hydra = {"hydra": {
        "run": {"dir": str(folder)},
        "help": {"template": "${hydra.help.header}\n\n== Config groups ==\n\n$APP_CONFIG_GROUPS\n"},
        "overrides": {"hydra": [f"hydra.run.dir={folder}", "hydra.mode=RUN"], "task": overrides},
        "job": {"name": f"lstm_ae_{config}", "chdir": False, "override_dirname": ",".join(overrides), "id": "???",
                "num": "???", "config_name": config, "env_set": {}, "config": {"override_dirname": {"kv_sep": "="}}},
        "runtime": {"version": "1.3.8", "cwd": str(ROOT), "output_dir": str(folder),
                    "choices": {"hparams_search": None, "hydra": "default", "task": task, "schema/task@task": task,
                                "dataset": "toy", "optimizer": "adam", "model": "lstm_ae", "hydra/launcher": "basic"}},
        "verbose": False}}
    (folder / ".hydra").mkdir(parents=True)
    for name, data in (("config.yaml", cfg), ("hydra.yaml", hydra), ("overrides.yaml", overrides)):
        (folder / ".hydra" / name).write_text(yaml.safe_dump(data, sort_keys=False))
    targets = [folder / f"fold_{k}" for k in range(folds)] if folds else [folder]
    for i, target in enumerate(targets):
        n = epochs if (not folds or results or i == len(targets) - 1) else planned
        target.mkdir(exist_ok=True)
        text = HEADER + "\r\n" + "".join(r + "\r\n" for r in metrics_rows(n))
        if cut and target == targets[-1]:
            text += metrics_rows(1, start=n + 1)[0][:-2]  # the row the kill cut short (its last value: "1")
        (target / "metrics.csv").write_bytes(text.encode())
        (target / "checkpoints").mkdir()
        (target / "checkpoints" / "last.pt").write_bytes(b"checkpoint")
    if folds and results:
        shutil.copy(targets[0] / "metrics.csv", folder / "metrics.csv")
    lines = log if log is not None else [f"[2026-11-26 10:00:0{e % 10},000][lstm_ae.trainer][INFO] - epoch {e}/{planned}"
                                         for e in range(1, epochs + 1)]
    (folder / f"lstm_ae_{config}.log").write_text("".join(f"{line}\n" for line in lines))
    if results:
        val = val_mse if val_mse is not None else 0.025
        data = {"test_loss": test_mse, "test_mse": test_mse, "val_loss": val, "val_mse": val,
                "baseline_test_mse": 0.08, "objective": "val_mse", "objective_mode": "min", "best_epoch": 4,
                "epochs_run": epochs, "train_seconds": 7.5, "num_parameters": 937,
                "sequences": {"train": 60, "val": 20, "test": 20}, "device": "cpu", "config_sha1": "f2cbc0ce6dfd0523"}
        if task == "classify":
            data.update(test_accuracy=0.9, val_accuracy=0.88, baseline_test_accuracy=0.11, objective="val_accuracy",
                        objective_mode="max")
        if folds:
            data.update(best_fold=0, fold_val_mse=[val] * folds, cv_mean_val_mse=val)
        (folder / "results.json").write_text(json.dumps(data, indent=2) + "\n")
        (folder / "loss.png").write_bytes(b"\x89PNG")
    if age is not None:
        set_age(folder, age)
    return folder


def set_age(folder: Path, age: float) -> None:
    """Every file and folder in ``folder`` last written ``age`` seconds ago."""
    stamp = time.time() - age
    for path in [*folder.rglob("*"), folder]:
        os.utime(path, (stamp, stamp))


def listing(*paths: Path, **kwargs) -> Dict[str, dict]:
    """{folder name: row} of ``runs.collect``."""
    found = runs.collect(list(paths), **kwargs)
    assert not found.messages.errors, found.messages.errors
    return {Path(r["folder"]).name: r for r in found.rows}


def run_main(capsys, *argv) -> tuple:
    """``main(argv)``: (exit status, stdout, stderr lines)."""
    status = runs.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, [line for line in err.splitlines() if line]


def snapshot(root: Path) -> Dict[str, tuple]:
    """Every file and folder below ``root``: its modification time, size and content hash."""
    state = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        digest = hashlib.sha1(path.read_bytes()).hexdigest() if path.is_file() else None
        state[str(path)] = (st.st_mtime_ns, st.st_size, st.st_mode, digest)
    return state


# ----------------------------------------------------------------------------------- statuses
def test_finished_run_shows_its_results(tmp_path):
    make_run(tmp_path / "a", epochs=5, test_mse=0.0123, val_mse=0.0234)
    row = listing(tmp_path)["a"]
    assert row["status"] == "finished" and row["reason"] == ""
    assert (row["config"], row["script"], row["task"]) == ("toy", "lstm_ae_toy", "reconstruct")
    assert (row["epochs"], row["epochs_planned"], row["best_epoch"]) == (5, 5, 4)
    assert row["objective"] == "val_mse" and row["best_val"] == row["val_mse"] == 0.0234
    assert (row["test_mse"], row["baseline_test_mse"], row["train_seconds"]) == (0.0123, 0.08, 7.5)
    assert row["overrides"] == "model.hidden_size=8 trainer.epochs=5 trainer.device=cpu"  # no trainer.progress


def manifest(folder: Path, end: Optional[dict] = None, **fields) -> None:
    """The manifest a run writes when it starts (``end`` null), or when it ended (``end``: its end state)."""
    data = {"version": 1, "config": "toy", "script": "lstm_ae_toy", "task": "reconstruct",
            "choices": {"task": "reconstruct", "optimizer": "adam"}, "overrides": ["model.hidden_size=8"],
            "config_sha1": "f2cbc0ce6dfd0523", "epochs_planned": 10, "folds": None, "resumes": None,
            "objective": "val_mse", "objective_mode": "min", "started": "2026-11-26T10:00:00", "end": end, **fields}
    (folder / rf.MANIFEST).write_text(json.dumps(data))


def test_a_run_killed_mid_epoch_is_interrupted(tmp_path):
    """SIGKILL mid-epoch: metrics.csv ends in a cut row, no results.json, no end state, no lock holder."""
    make_run(tmp_path / "killed", epochs=3, planned=10, results=False, cut=True, age=3600)
    manifest(tmp_path / "killed")
    make_run(tmp_path / "old", epochs=3, planned=10, results=False, cut=True, age=3600)  # no manifest
    rows = listing(tmp_path)
    for name in ("killed", "old"):
        row = rows[name]
        assert row["status"] == "interrupted"
        assert row["epochs"] == 3  # the cut row is not an epoch
        assert row["best_epoch"] == 3 and row["best_val"] == pytest.approx(0.1 / 3)
        assert row["train_seconds"] == 4.5
    assert rows["killed"]["reason"] == "no end recorded and no process holds run.lock (killed?)"
    assert rows["old"]["reason"] == "no results.json and no write for 300 s"


def test_a_run_holding_its_lock_is_running(tmp_path):
    """A process holding run.lock is running, whatever its files say; the holder is named; once it lets go
    (or dies: the kernel releases the lock) the run is what its manifest says."""
    folder = make_run(tmp_path / "live", epochs=2, planned=10, results=False, age=DAY)
    manifest(folder)
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from lstm_ae.run_folder import Lock; "
                               f"Lock({str(folder)!r}).acquire(); print('held', flush=True); time.sleep(60)"],
                              cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        row = listing(tmp_path)["live"]
        assert row["status"] == "running" and row["reason"].startswith(f"pid {holder.pid} on ")
        assert row["reason"].endswith("holds run.lock") and row["epochs"] == 2
    finally:
        holder.kill()
        holder.wait()
    assert listing(tmp_path)["live"]["status"] == "interrupted"  # killed: its lock went with it


def test_a_folder_from_before_the_manifest_written_recently_is_running(tmp_path):
    make_run(tmp_path / "fresh", epochs=2, planned=10, results=False, cut=True, age=5)
    row = listing(tmp_path)["fresh"]
    assert row["status"] == "running" and row["reason"].startswith("last write ") and row["epochs"] == 2
    assert listing(tmp_path, stale=0)["fresh"]["status"] == "interrupted"


@pytest.mark.parametrize("status, reason", [
    ("failed", "ConfigError: dataset.dip_scale must be a non-negative number; got nan"),
    ("interrupted", "SIGTERM after epoch 3; checkpoints/last.pt kept: continue with trainer.resume=auto"),
    ("diverged", DIVERGED.format(epoch=4, folder="x")),
    ("pruned", "pruned by the Optuna study after epoch 3"),
])
def test_the_end_state_in_the_manifest_is_the_status(tmp_path, status, reason):
    folder = make_run(tmp_path / "r", results=False, epochs=3, planned=10)
    manifest(folder, end={"status": status, "reason": reason, "epoch": 3})
    row = listing(tmp_path)["r"]
    assert (row["status"], row["reason"], row["epochs"], row["epochs_planned"]) == (status, reason, 3, 10)
    assert row["best_val"] == pytest.approx(0.1 / 3)


def test_failed_sweep_job_from_before_the_manifest_shows_the_reason_from_error_txt(tmp_path):
    folder = make_run(tmp_path / "3", results=False, epochs=0, age=None)
    (folder / "error.txt").write_text("ConfigError: model.hidden_size must be positive; got -1\n")
    set_age(folder, DAY)
    row = listing(tmp_path)["3"]
    assert row["status"] == "failed"
    assert row["reason"] == "ConfigError: model.hidden_size must be positive; got -1"
    assert row["epochs"] == 0


def test_nan_stopped_job_from_before_the_manifest_is_diverged(tmp_path):
    folder = tmp_path / "nan"
    reason = DIVERGED.format(epoch=4, folder=folder)
    make_run(folder, results=False, epochs=3, planned=10, age=None)
    (folder / "error.txt").write_text(reason + "\n")
    set_age(folder, DAY)
    row = listing(tmp_path)["nan"]
    assert row["status"] == "diverged" and row["reason"] == reason
    assert (row["epochs"], row["epochs_planned"]) == (3, 10)
    assert row["best_val"] == pytest.approx(0.1 / 3)


def test_pruned_job_from_before_the_manifest(tmp_path):
    folder = make_run(tmp_path / "7", results=False, epochs=6, planned=150, age=None)
    (folder / "pruned.json").write_text(json.dumps({"epoch": 6}) + "\n")
    set_age(folder, DAY)
    row = listing(tmp_path)["7"]
    assert row["status"] == "pruned" and row["reason"] == "pruned by the study after epoch 6"
    assert (row["epochs"], row["epochs_planned"]) == (6, 150)
    assert row["best_val"] == pytest.approx(0.025)  # epoch 4: lowest val_loss


def test_an_end_marker_older_than_metrics_csv_is_stale(tmp_path):
    """A failed sweep job rerun into its folder: the new training's metrics.csv is newer than error.txt."""
    folder = make_run(tmp_path / "0", results=False, epochs=2, planned=10, age=None)
    (folder / "error.txt").write_text("RuntimeError: out of memory\n")
    os.utime(folder / "error.txt", (time.time() - DAY, time.time() - DAY))
    assert listing(tmp_path)["0"]["status"] == "running"  # metrics.csv: just written


def test_cross_validation_folds_belong_to_their_run(tmp_path):
    make_run(tmp_path / "cv_done", epochs=4, planned=4, folds=3)
    make_run(tmp_path / "cv_killed", epochs=2, planned=4, folds=3, results=False, cut=True)
    found = runs.collect([tmp_path])
    assert sorted(r["folder"] for r in found.rows) == sorted(str(tmp_path / n) for n in ("cv_done", "cv_killed"))
    assert not found.messages.lines
    rows = {Path(r["folder"]).name: r for r in found.rows}
    assert rows["cv_done"]["status"] == "finished" and rows["cv_done"]["cv_mean_val_mse"] == 0.025
    killed = rows["cv_killed"]
    assert killed["status"] == "interrupted" and killed["folds"] == "3/3"
    assert killed["epochs"] == 2  # the fold in progress


def test_a_resumed_runs_new_folder_is_not_listed(tmp_path):
    """trainer.resume=auto: Hydra's new folder holds .hydra/ and a manifest naming the run it continues."""
    old = make_run(tmp_path / "2026-11-26_10-00-00", epochs=3, planned=10, results=False)
    manifest(old, end={"status": "diverged", "reason": "TrainingDiverged: ...", "epoch": 3})
    new = make_run(tmp_path / "2026-11-26_11-00-00", results=False, epochs=0, age=None)
    for name in ("metrics.csv", "checkpoints"):  # a resuming run writes only into the old folder
        shutil.rmtree(new / name) if name == "checkpoints" else (new / name).unlink()
    manifest(new, resumes=str(old), end={"status": "diverged", "reason": "TrainingDiverged: ...", "epoch": 3})
    found = runs.collect([tmp_path])
    assert [r["folder"] for r in found.rows] == [str(old)]
    assert found.rows[0]["status"] == "diverged"
    assert [t for k, t in found.messages.lines if k == "note"] == [
        f"{new}: not listed: its process continued the run in {old} (trainer.resume)"]


def test_odd_files_never_hang_the_table_and_are_named(tmp_path):
    """A FIFO named metrics.csv or run.lock (a reader would wait forever), a garbage metrics.csv: one error line
    each, naming the file; the runs are still listed."""
    fifo = make_run(tmp_path / "fifo", results=False, epochs=2, planned=10, age=DAY)
    manifest(fifo)
    (fifo / "metrics.csv").unlink()
    os.mkfifo(fifo / "metrics.csv")
    os.mkfifo(fifo / "run.lock")
    junk = make_run(tmp_path / "junk", results=False, epochs=2, planned=10, age=DAY)
    (junk / "metrics.csv").write_bytes(HEADER.encode() + b"\n\x00\x00\x00garbage\n1,2,3\n")
    code = f"from lstm_ae import runs; import sys; sys.exit(runs.main([{str(tmp_path)!r}, '--json']))"
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert sorted(Path(r["folder"]).name for r in json.loads(proc.stdout)) == ["fifo", "junk"]
    assert proc.stderr.splitlines() == [
        f"error: {fifo / 'metrics.csv'}: not a regular file (a FIFO, socket or device?); not read",
        f"error: {junk / 'metrics.csv'}: malformed: 2 row(s) that are not 7 numbers"]


def test_classify_run_uses_its_objective(tmp_path):
    make_run(tmp_path / "c", task="classify", config="mnist")
    row = listing(tmp_path)["c"]
    assert (row["config"], row["task"], row["objective"], row["best_val"]) == ("mnist", "classify", "val_accuracy", 0.88)
    assert runs._test_cell(row) == "accuracy 0.9 (0.11), mse 0.02 (0.08)"


def test_the_objectives_agree_with_the_tasks():
    from lstm_ae import tasks  # imports torch: the command keeps its own copy

    for name, (objective, mode) in rf.OBJECTIVES.items():
        name, _, pred_loss = name.partition("/")
        task = getattr(tasks, name)(**({"pred_loss": pred_loss} if pred_loss else {}))
        assert (task.objective, task.objective_mode) == (objective, mode)


def test_the_command_imports_neither_torch_nor_pandas():
    code = "import sys, lstm_ae.runs; sys.exit(sorted({'torch', 'pandas', 'omegaconf'} & set(sys.modules)) != [])"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0


# --------------------------------------------------------------------- the real thing (one sweep)
@pytest.fixture(scope="module")
def real_sweep(tmp_path_factory):
    """A real two-job toy sweep: job 0 finishes, job 1 fails (a config error: error.txt)."""
    sweep = tmp_path_factory.mktemp("real") / "sweep"
    proc = run_in_process("lstm_ae_toy.py", "-m", *TINY_TOY, "trainer.epochs=2", "dataset.dip_scale=0.1,nan",
                      f"hydra.sweep.dir={sweep}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return sweep


def test_a_real_sweep(real_sweep, tmp_path, capsys):
    rows = listing(real_sweep)
    assert sorted(rows) == ["0", "1"]  # summary.csv, multirun.yaml beside the jobs: no notes
    done, failed = rows["0"], rows["1"]
    results = json.loads((real_sweep / "0" / "results.json").read_text())
    assert done["status"] == "finished" and (done["config"], done["script"], done["task"]) == ("toy", "lstm_ae_toy", "reconstruct")
    assert (done["epochs"], done["epochs_planned"]) == (2, 2)
    for key in ("val_mse", "test_mse", "baseline_test_mse", "best_epoch", "train_seconds"):
        assert done[key] == results[key], key
    overrides = yaml.safe_load((real_sweep / "0" / ".hydra" / "overrides.yaml").read_text())
    assert done["overrides"] == " ".join(o for o in overrides if not o.startswith("trainer.progress"))
    assert "dataset.dip_scale=0.1" in done["overrides"] and "trainer.progress" not in done["overrides"]
    assert failed["status"] == "failed"
    assert failed["reason"] == "ConfigError: dataset.dip_scale must be a non-negative number; got nan"
    # the job killed in its second epoch: no results.json, half a row, nothing written for an hour
    killed = tmp_path / "killed"
    shutil.copytree(real_sweep / "0", killed)
    (killed / "results.json").unlink()
    man = json.loads((killed / "run.json").read_text())
    (killed / "run.json").write_text(json.dumps({**man, "end": None}))  # SIGKILL: no end state
    text = (killed / "metrics.csv").read_bytes()
    (killed / "metrics.csv").write_bytes(text[: text.rindex(b"\n", 0, len(text) - 2) + 12])
    set_age(killed, 3600)
    row = listing(killed)["killed"]
    assert (row["status"], row["epochs"], row["epochs_planned"]) == ("interrupted", 1, 2)
    # the table
    status, out, err = run_main(capsys, real_sweep)
    assert status == 0 and err == []
    header, first, second = out.splitlines()
    assert header.split()[:4] == ["start", "config", "task", "status"]
    assert " finished " in first and "mse " in first and first.rstrip().endswith(runs.shorten(real_sweep / "0"))
    assert second.rstrip().endswith("got nan")


# ------------------------------------------------------------------------ filters, order, output
@pytest.fixture
def three(tmp_path):
    """Three finished runs and an interrupted one, of two tasks and two hidden sizes."""
    make_run(tmp_path / "runs" / "2026-11-26_10-00-00", hidden=8, test_mse=0.03, val_mse=0.030)
    make_run(tmp_path / "runs" / "2026-11-26_11-00-00", hidden=16, lr=0.001, test_mse=0.01, val_mse=0.010,
             overrides=["model.hidden_size=16", "optimizer.lr=1e-3", "trainer.progress=false"])
    make_run(tmp_path / "runs" / "2026-11-26_12-00-00", hidden=16, test_mse=0.02, val_mse=0.020, task="classify",
             config="mnist")
    make_run(tmp_path / "runs" / "2026-11-26_13-00-00", hidden=8, results=False, epochs=2, planned=5)
    return tmp_path / "runs"


def names(out_json: str) -> List[str]:
    return [Path(r["folder"]).name[11:13] for r in json.loads(out_json)]  # the hour


def test_default_order_is_the_start(three, capsys):
    status, out, err = run_main(capsys, three, "--json")
    assert status == 0 and err == []
    assert names(out) == ["10", "11", "12", "13"]
    assert json.loads(out)[0]["start"] == "2026-11-26T10:00:00"  # from the folder's name


def test_filters(three, capsys):
    assert names(run_main(capsys, three, "--json", "--task", "classify")[1]) == ["12"]
    assert names(run_main(capsys, three, "--json", "--status", "interrupted", "failed")[1]) == ["13"]
    assert names(run_main(capsys, three, "--json", "--where", "model.hidden_size=16")[1]) == ["11", "12"]
    assert names(run_main(capsys, three, "--json", "--where", "optimizer.lr=1e-3")[1]) == ["11"]  # as numbers
    assert names(run_main(capsys, three, "--json", "--where", "optimizer=adam", "--where", "config=toy")[1]) == ["10", "11", "13"]
    assert names(run_main(capsys, three, "--json", "--where", "dataset.split=[0.6, 0.2, 0.2]", "--where",
                          "trainer.resume=null")[1]) == ["10", "11", "12", "13"]
    assert names(run_main(capsys, three, "--json", "--where", "status=finished", "--where", "epochs=5",
                          "--task", "reconstruct")[1]) == ["10", "11"]
    status, out, err = run_main(capsys, three, "--where", "model.hidden_size=99")
    assert (status, out, err) == (0, "no runs (of 4) match\n", [])


def test_sort_top_reverse(three, capsys):
    assert names(run_main(capsys, three, "--json", "--sort", "val_mse")[1]) == ["11", "12", "10", "13"]
    assert names(run_main(capsys, three, "--json", "--sort", "val_mse", "--top", "2")[1]) == ["11", "12"]
    assert names(run_main(capsys, three, "--json", "--sort", "test_mse", "--reverse")[1]) == ["10", "12", "11", "13"]
    assert names(run_main(capsys, three, "--json", "--sort", "test_accuracy")[1]) == ["12", "10", "11", "13"]  # missing last
    assert names(run_main(capsys, three, "--json", "--sort", "model.hidden_size", "--top", "1")[1]) == ["10"]


def test_csv_json_and_table_hold_the_same_rows(three, tmp_path, capsys):
    out_csv = tmp_path / "out" / "runs.csv"
    status, out, err = run_main(capsys, three, "--json", "--csv", out_csv)
    assert status == 0 and err == []
    rows = json.loads(out)
    with open(out_csv, newline="") as f:
        table = list(csv.DictReader(f))
    assert [r["folder"] for r in table] == [r["folder"] for r in rows]
    assert list(table[0]) == list(rows[0])
    assert list(rows[0])[:6] == ["folder", "config", "script", "task", "start", "status"]
    assert float(table[1]["val_mse"]) == rows[1]["val_mse"] == 0.01
    assert table[3]["test_mse"] == "" and rows[3]["test_mse"] is None
    assert rows[1]["overrides"] == "model.hidden_size=16 optimizer.lr=1e-3"
    status, text, _ = run_main(capsys, three)
    lines = text.splitlines()
    assert len(lines) == 5 and lines[0].startswith("start ")
    assert "mse 0.01 (0.08)" in lines[2] and "accuracy 0.9 (0.11)" in lines[3] and "interrupted" in lines[4]
    assert all(str(three) in line for line in lines[1:])


def test_folders_below_the_current_folder_are_shown_relative(three, capsys, monkeypatch):
    monkeypatch.chdir(three.parent)
    status, out, _ = run_main(capsys, three, "--json")
    assert [r["folder"] for r in json.loads(out)][0] == "runs/2026-11-26_10-00-00"


def test_default_paths_are_outputs_and_multirun(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    status, out, err = run_main(capsys)
    assert status == 1 and out == "no runs found\n"
    assert err == [f"error: {tmp_path}: neither outputs/ nor multirun/ is here; run this from the project folder "
                   "or name the folders to search"]
    make_run(tmp_path / "multirun" / "toy" / "reconstruct" / "2026-11-26_10-00-00_123" / "0")
    status, out, err = run_main(capsys, "--json")
    assert status == 0 and err == [] and [r["folder"] for r in json.loads(out)] == [
        "multirun/toy/reconstruct/2026-11-26_10-00-00_123/0"]


# ------------------------------------------------------------------------------- bad input
def test_a_folder_that_is_not_a_run_is_skipped_with_a_note(three, capsys):
    (three / "2026-11-26_14-00-00").mkdir()  # Hydra never got to write .hydra/
    (three / "leftovers" / "plots").mkdir(parents=True)
    (three / "leftovers" / "plots" / "metrics.csv").write_text(HEADER + "\n")
    status, out, err = run_main(capsys, three, "--json")
    assert status == 0 and len(json.loads(out)) == 4
    assert err == [f"note: {three / '2026-11-26_14-00-00'}: not a run folder (no .hydra/ in or below it), skipped",
                   f"note: {three / 'leftovers'}: not a run folder (no .hydra/ in or below it), skipped"]
    status, out, err = run_main(capsys, three / "leftovers")
    assert (status, out) == (0, "no runs found\n")
    assert err == [f"note: {three / 'leftovers'}: no run folders in it (a run folder holds .hydra/), skipped"]


def test_a_missing_path_is_one_line_and_exit_1(three, tmp_path, capsys):
    status, out, err = run_main(capsys, tmp_path / "nope", three, "--json")
    assert status == 1 and len(json.loads(out)) == 4  # the others are still listed
    assert err == [f"error: {tmp_path / 'nope'}: no such folder"]
    status, out, err = run_main(capsys, three / "2026-11-26_10-00-00" / "results.json")
    assert status == 1 and err == [f"error: {three / '2026-11-26_10-00-00' / 'results.json'}: not a folder "
                                   "(give a run folder or a folder of runs)"]


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="as root, a folder without permissions is still read")
def test_an_unreadable_folder_is_one_line_and_exit_1(three, capsys):
    locked = three / "2026-11-26_11-00-00"
    locked.chmod(0)
    try:
        status, out, err = run_main(capsys, three, "--json")
    finally:
        locked.chmod(0o755)
    assert status == 1 and len(json.loads(out)) == 3
    assert err == [f"error: {locked}: cannot read this folder (Permission denied)"]


def test_an_unreadable_folder_simulated(three, capsys, monkeypatch):
    """The same as the test above where it cannot run (as root): os.scandir refuses one folder."""
    locked = three / "2026-11-26_11-00-00"
    scandir = os.scandir

    def refuse(path="."):
        if os.fspath(path) == str(locked):
            raise PermissionError(13, "Permission denied", str(path))
        return scandir(path)

    monkeypatch.setattr(runs.os, "scandir", refuse)
    status, out, err = run_main(capsys, three, "--json")
    assert status == 1 and len(json.loads(out)) == 3
    assert err == [f"error: {locked}: cannot read this folder (Permission denied)"]


def test_malformed_results_json_is_one_line_and_exit_1(three, capsys):
    bad = three / "2026-11-26_10-00-00" / "results.json"
    bad.write_text('{"test_mse": 0.0')  # cut
    set_age(bad.parent, DAY)
    status, out, err = run_main(capsys, three, "--json")
    rows = json.loads(out)
    assert status == 1 and len(rows) == 4
    assert rows[0]["status"] == "unknown" and rows[0]["reason"] == "results.json unreadable"
    assert err == [f"error: {bad}: malformed (Expecting ',' delimiter: line 1 column 17 (char 16)); "
                   "its run is listed without it"]


@pytest.mark.parametrize("name, text, message", [
    ("config.yaml", "model: {hidden_size: 8\ntrainer:\n  epochs: 5\n", "malformed YAML at line 2 ("),
    # (the reason in brackets is the parser's: libyaml's and pure-Python PyYAML's words differ)
    ("config.yaml", "- just\n- a list\n", "not a mapping of config keys"),
    ("hydra.yaml", "hydra: [unclosed\n", "malformed YAML at line 2"),
    ("overrides.yaml", "- a=1\n- [b\n", "malformed YAML at line 3"),
])
def test_a_malformed_hydra_file_is_one_line_and_exit_1(three, capsys, name, text, message):
    path = three / "2026-11-26_12-00-00" / ".hydra" / name
    path.write_text(text)
    status, out, err = run_main(capsys, three, "--json")
    rows = json.loads(out)
    assert status == 1 and len(rows) == 4
    assert rows[2]["status"] == "finished"  # the rest of the run is still read
    assert len(err) == 1 and err[0].startswith(f"error: {path}: {message}")


def test_a_bad_where_or_sort_key_exits_2(three, capsys):
    with pytest.raises(SystemExit) as exc:
        runs.main([str(three), "--where", "modle.hidden_size=8"])
    assert exc.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1].startswith(
        "python -m lstm_ae.runs: error: no run has 'modle.hidden_size'")
    with pytest.raises(SystemExit):
        runs.main([str(three), "--sort", "val_mes"])


def test_the_run_folders_are_never_changed(three, tmp_path, capsys):
    folder = three / "2026-11-26_10-00-00"
    (folder / "results.json").write_text("{")  # a malformed file is read, not repaired
    (three / "2026-11-26_12-00-00" / ".hydra" / "config.yaml").write_text("model: [")
    (three / "empty").mkdir()
    before = snapshot(three)
    for argv in ([], ["--json"], ["--sort", "model.hidden_size"], ["--where", "optimizer.lr=0.005", "--top", "1"],
                 ["--status", "finished", "--csv", str(tmp_path / "x.csv")]):
        run_main(capsys, three, *argv)
    assert subprocess.run([sys.executable, "-m", "lstm_ae.runs", str(three)], cwd=ROOT, capture_output=True).returncode == 1
    assert snapshot(three) == before
