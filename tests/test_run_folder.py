"""The run-folder contract (lstm_ae/run_folder.py): one writer per folder, resumes that lose nothing,
signals, full disks. Tiny toy runs; the processes that must be separate (a lock holder, a run to
kill) are real subprocesses."""
from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from lstm_ae import run_folder as rf
from lstm_ae import trainer as trainer_module
from lstm_ae.errors import UserError
from lstm_ae.run_folder import FolderBusy, Lock
from tests.conftest import NO_FIGURES, ROOT, TINY_TOY, run_in_process

TINY = [*TINY_TOY, NO_FIGURES, "trainer.epochs=2"]


def files(folder: Path, skip_logs: bool = True) -> dict:
    """{relative path: bytes} of every file below ``folder`` (Hydra's log file aside: a refused run logs its line;
    run.lock names its last holder)."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not (skip_logs and p.suffix == ".log") and p.name != rf.LOCK}


def hold_lock(folder: Path) -> subprocess.Popen:
    """Another process holding ``folder``'s lock (until killed)."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; from lstm_ae.run_folder import Lock; "
                             f"Lock({str(folder)!r}).acquire(); print('held', flush=True); time.sleep(120)"],
                            cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def one_line(proc: subprocess.CompletedProcess, text: str) -> str:
    """The one output line holding ``text``; no traceback."""
    out = proc.stdout + proc.stderr
    assert "Traceback" not in out, out[-3000:]
    lines = [line for line in out.splitlines() if text in line]
    assert len(lines) == 1, out[-3000:]
    return lines[0]


# ------------------------------------------------------------------------------------ the lock
def test_the_lock_has_one_holder_and_names_it(tmp_path):
    with Lock(tmp_path):
        assert rf.holder(tmp_path).startswith(f"pid {os.getpid()} on ")
        with pytest.raises(FolderBusy, match=rf"is being written by pid {os.getpid()} on .* since "):
            Lock(tmp_path).acquire(attempts=2)
    assert rf.holder(tmp_path) is None  # released
    with Lock(tmp_path):  # and taken again
        pass
    assert issubclass(FolderBusy, UserError)


def test_a_dead_holders_lock_is_taken_over(tmp_path):
    proc = hold_lock(tmp_path)
    assert rf.holder(tmp_path).startswith(f"pid {proc.pid} ")
    proc.kill()
    proc.wait()
    assert rf.holder(tmp_path) is None  # the kernel let go of it with the process
    with Lock(tmp_path):
        assert rf.holder(tmp_path).startswith(f"pid {os.getpid()} ")


def test_a_second_writer_is_refused_in_one_line_and_changes_nothing(tmp_path):
    folder = tmp_path / "run"
    done = run_in_process("lstm_ae_toy.py", *TINY, f"hydra.run.dir={folder}")
    assert done.returncode == 0, done.stderr[-2000:]
    before = files(folder)
    holder = hold_lock(folder)  # e.g. an orphaned worker of a killed sweep, still training here
    try:
        proc = run_in_process("lstm_ae_toy.py", *TINY, "trainer.epochs=3", f"hydra.run.dir={folder}")
    finally:
        holder.kill()
        holder.wait()
    assert proc.returncode == 2
    line = one_line(proc, "FolderBusy")
    assert f"{folder} is being written by pid {holder.pid} on " in line and "one process writes a run folder" in line
    assert files(folder) == before  # .hydra/, run.json, metrics.csv, results.json: the first run's, untouched


# ------------------------------------------------------------------------------------- resumes
@pytest.mark.parametrize("other", ["dataset.num_sequences=120", "optimizer.lr=0.01", "model.hidden_size=6"])
def test_a_resume_under_another_config_is_refused_before_anything_is_written(tmp_path, other):
    folder = tmp_path / "run"
    first = run_in_process("lstm_ae_toy.py", *TINY, f"hydra.run.dir={folder}")
    assert first.returncode == 0, first.stderr[-2000:]
    before = files(folder)
    proc = run_in_process("lstm_ae_toy.py", *TINY, other, "trainer.resume=auto", f"hydra.run.dir={folder}")
    assert proc.returncode == 2
    line = one_line(proc, "RunFolderError")
    assert f"{folder} holds another run (config_sha1 " in line
    assert "resume it with its own config (python <script> dataset.num_sequences=100" in line
    assert files(folder) == before  # its .hydra/config.yaml too: the advice still works


def _interrupt(folder: Path) -> None:
    """Make the finished run in ``folder`` look as a SIGKILL after its last epoch leaves it."""
    (folder / "results.json").unlink()
    man = json.loads((folder / "run.json").read_text())
    (folder / "run.json").write_text(json.dumps({**man, "end": None}))


def test_a_plain_rerun_into_an_interrupted_run_is_refused_and_names_resume(tmp_path):
    folder = tmp_path / "run"
    assert run_in_process("lstm_ae_toy.py", *TINY, f"hydra.run.dir={folder}").returncode == 0
    _interrupt(folder)
    before = files(folder)
    proc = run_in_process("lstm_ae_toy.py", *TINY, f"hydra.run.dir={folder}")
    assert proc.returncode == 2
    line = one_line(proc, "RunFolderError")
    assert "holds an interrupted run of this config (2 epoch(s)" in line and "trainer.resume=auto" in line
    assert files(folder) == before
    resumed = run_in_process("lstm_ae_toy.py", *TINY, "trainer.resume=auto", f"hydra.run.dir={folder}")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert json.loads((folder / "run.json").read_text())["end"]["status"] == "finished"
    assert (folder / "results.json").is_file()


def test_a_finished_run_is_not_trained_again(tmp_path):
    folder = tmp_path / "run"
    assert run_in_process("lstm_ae_toy.py", *TINY, f"hydra.run.dir={folder}").returncode == 0
    before = files(folder)
    again = run_in_process("lstm_ae_toy.py", *TINY, "trainer.progress=true", f"hydra.run.dir={folder}")
    assert again.returncode == 0 and "finished before): not trained again" in again.stdout + again.stderr
    assert files(folder) == before


def test_the_manifest_says_what_defines_the_run(tmp_path):
    folder = tmp_path / "run"
    assert run_in_process("lstm_ae_toy.py", *TINY, "hydra.job.chdir=false", f"hydra.run.dir={folder}").returncode == 0
    man = json.loads((folder / "run.json").read_text())
    results = json.loads((folder / "results.json").read_text())
    assert (man["config"], man["script"], man["task"]) == ("toy", "lstm_ae_toy", "reconstruct")
    assert man["overrides"] == [o for o in TINY if not o.startswith("trainer.progress")]  # no hydra.*, no progress
    assert man["config_sha1"] == results["config_sha1"] and man["epochs_planned"] == 2
    assert (man["objective"], man["objective_mode"]) == ("val_mse", "min")
    assert man["end"]["status"] == "finished" and man["end"]["epoch"] == 2 and man["resumes"] is None
    assert sorted(p.name for p in (folder / ".hydra").iterdir()) == ["config.yaml", "hydra.yaml", "overrides.yaml"]


def test_defining_overrides_and_the_fingerprint_ignore_the_same_keys():
    from tests.conftest import compose_cfg

    assert rf.defining_overrides(["a=1", "trainer.progress=false", "+trainer.resume=auto", "hydra.verbose=true",
                                  "hydra/launcher=joblib", "trainer.seed=3"]) == ["a=1", "trainer.seed=3"]
    base = rf.fingerprint(compose_cfg("toy", TINY))
    assert rf.fingerprint(compose_cfg("toy", [*TINY, "trainer.progress=true", "trainer.resume=auto"])) == base
    assert rf.fingerprint(compose_cfg("toy", [*TINY, "trainer.seed=1"])) != base


# ------------------------------------------------------------------------------------- signals
def test_sigterm_ends_a_run_in_one_line_and_keeps_its_checkpoint(tmp_path):
    folder = tmp_path / "run"
    args = [*TINY_TOY, NO_FIGURES, "dataset.num_sequences=1500", "trainer.epochs=400", f"hydra.run.dir={folder}"]
    proc = subprocess.Popen([sys.executable, str(ROOT / "lstm_ae_toy.py"), *args], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if (folder / "metrics.csv").exists() and (folder / "metrics.csv").read_text().count("\n") >= 4:
            break  # 3 epochs written: last.pt holds at least epoch 2 (the signal may fall before the 3rd's checkpoint)
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before the signal; make it longer"
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 143, out[-2000:]
    assert "Traceback" not in out
    line, = [line for line in out.splitlines() if "interrupted" in line]
    assert "interrupted: SIGTERM after epoch " in line and "trainer.resume=auto" in line
    end = json.loads((folder / "run.json").read_text())["end"]
    assert end["status"] == "interrupted" and end["reason"].startswith("SIGTERM after epoch")
    saved = torch.load(folder / "checkpoints" / "last.pt", weights_only=False)
    assert saved["epoch"] == end["epoch"] >= 2
    assert rf.status(folder).status == "interrupted" and rf.holder(folder) is None
    assert not list(folder.rglob("*.tmp"))


@pytest.mark.xdist_group("joblib")
def test_sigterm_of_a_joblib_sweep_leaves_no_worker_training(tmp_path):
    """The sweep's process killed: each worker notices within a second, records its job as interrupted, lets go of
    the job folder and exits (no orphan trains on, holding a folder the rerun needs)."""
    sweep = tmp_path / "sweep"
    args = ["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", *TINY_TOY, NO_FIGURES, "dataset.num_sequences=1500",
            "trainer.epochs=400", "model.hidden_size=4,6", f"hydra.sweep.dir={sweep}"]
    proc = subprocess.Popen([sys.executable, str(ROOT / "lstm_ae_toy.py"), *args], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "OMP_NUM_THREADS": "1"})
    jobs = [sweep / "0", sweep / "1"]
    deadline = time.time() + 120
    while time.time() < deadline and not all(rf.holder(j) and (j / "metrics.csv").exists() for j in jobs):
        time.sleep(0.1)
    assert all(rf.holder(j) for j in jobs), "the jobs did not start"
    pids = [int(rf.holder(j).split()[1]) for j in jobs]
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    deadline = time.time() + 30
    while time.time() < deadline and (any(rf.holder(j) for j in jobs) or any(_alive(p) for p in pids)):
        time.sleep(0.2)
    assert [rf.holder(j) for j in jobs] == [None, None] and not any(_alive(p) for p in pids)
    for job in jobs:
        end = json.loads((job / "run.json").read_text())["end"]
        assert end["status"] == "interrupted" and end["reason"].startswith("SIGTERM after epoch")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie waiting for its (gone) parent is not training
        return Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0] != "Z"
    except OSError:
        return False


# ----------------------------------------------------------------------------------- full disk
def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_an_atomic_write_that_fails_leaves_the_old_file_and_no_partial_one(tmp_path, monkeypatch):
    path = tmp_path / "results.json"
    rf.write_json(path, {"a": 1})
    monkeypatch.setattr(rf.os, "fsync", _enospc)  # the data went into the temporary file, then the disk filled
    with pytest.raises(OSError) as err:
        rf.write_json(path, {"a": 2})
    assert rf.disk_full(err.value)
    assert json.loads(path.read_text()) == {"a": 1} and [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_results_json_is_strict_json_with_nan_and_inf_as_null(tmp_path):
    rf.write_json(tmp_path / "r.json", {"test_mse": float("nan"), "x": [float("inf"), 1.5], "n": {"y": -float("inf")}})
    text = (tmp_path / "r.json").read_text()
    assert json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} is not JSON")) == {
        "test_mse": None, "x": [None, 1.5], "n": {"y": None}}


def _fill_disk_at(monkeypatch, nth_checkpoint: int, job: str = "") -> None:
    """The ``nth`` write of a last.pt (of a folder named ``job``, if given) finds the disk full half-way."""
    real, count = rf.write_atomic, {"n": 0}

    def write(path, data):
        if path.name == "last.pt" and (not job or path.parent.parent.name == job):
            count["n"] += 1
            if count["n"] == nth_checkpoint:
                with pytest.MonkeyPatch.context() as full:
                    full.setattr(rf.os, "fsync", _enospc)
                    return real(path, data)
        return real(path, data)

    monkeypatch.setattr(trainer_module, "write_atomic", write)


def test_a_full_disk_stops_a_run_in_one_line_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    folder = tmp_path / "run"
    _fill_disk_at(monkeypatch, 3)
    proc = run_in_process("lstm_ae_toy.py", *TINY_TOY, NO_FIGURES, "trainer.epochs=5", f"hydra.run.dir={folder}")
    assert proc.returncode == 2
    line = one_line(proc, "disk full")
    assert "No space left on device" not in line or "trainer.resume=auto" in line
    assert "free some space, then rerun the same command with trainer.resume=auto" in line
    assert not list(folder.rglob("*.tmp")) and not (folder / "results.json").exists()
    assert torch.load(folder / "checkpoints" / "last.pt", weights_only=False)["epoch"] == 2  # the last good one
    end = json.loads((folder / "run.json").read_text())["end"]
    assert end["status"] == "failed" and "disk full" in end["reason"]


def test_a_full_disk_in_one_sweep_job_is_recorded_and_the_sweep_goes_on(tmp_path, monkeypatch):
    sweep = tmp_path / "sweep"
    _fill_disk_at(monkeypatch, 2, job="0")
    proc = run_in_process("lstm_ae_toy.py", "-m", *TINY, "trainer.epochs=3", "model.hidden_size=4,6",
                          f"hydra.sweep.dir={sweep}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    df = pd.read_csv(sweep / "summary.csv")
    assert dict(zip(df["job"], df["status"])) == {1: "finished", 0: "failed"}
    assert "disk full" in df.loc[df["job"] == 0, "error"].item()
    assert not list(sweep.rglob("*.tmp"))


def test_sigterm_of_a_grid_sweep_ends_it_in_one_line(tmp_path):
    """The basic launcher runs the jobs in the sweep's process: the job in progress records its end state, the
    sweep stops with one line and 143; the same command with the sweep folder finishes it."""
    sweep = tmp_path / "sweep"
    args = ["-m", *TINY_TOY, NO_FIGURES, "dataset.num_sequences=1500", "trainer.epochs=400", "model.hidden_size=4,6",
            f"hydra.sweep.dir={sweep}"]
    proc = subprocess.Popen([sys.executable, str(ROOT / "lstm_ae_toy.py"), *args], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.time() + 120
    while time.time() < deadline and not (sweep / "0" / "metrics.csv").exists():
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and "Traceback" not in out + err, err[-2000:]
    assert err.strip().splitlines()[-1].startswith("stopped by SIGTERM: the runs keep their checkpoints")
    end = json.loads((sweep / "0" / "run.json").read_text())["end"]
    assert end["status"] == "interrupted" and "a grid continues this job" in end["reason"]
    assert not (sweep / "1").exists()
