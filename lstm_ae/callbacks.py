"""Hydra callbacks that run before any job: checks a user can fail in one line."""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Optional

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from lstm_ae.config import LAUNCHER_EXTRAS, launcher_installed
from lstm_ae.errors import UserError, raise_interrupted
from lstm_ae.loggers import MLFLOW_TARGET, check_tracking, end_sweep, start_sweep


def check_writable(folder: str, key: str) -> None:
    """Exit with status 2 and one line when ``folder`` cannot be created or written. Folders made
    for the test are removed again: a run that stops before its first job leaves nothing behind."""
    path = Path(folder).absolute()
    made = [p for p in [path, *path.parents] if not p.exists()]
    probe = path / f".write-test-{uuid.uuid4().hex}"
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
        for p in made:  # deepest first
            p.rmdir()
    except OSError as err:
        print(f"Error: cannot write the output folder {path} ({err.strerror or err}); "
              f"choose another with {key}=<folder>", file=sys.stderr)
        sys.exit(2)


def children() -> list:
    """The ids of this process's child processes (Linux: /proc; elsewhere none)."""
    me, found = str(os.getpid()), []
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return found
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[1] == me and fields[0] != "Z":  # (state, ppid, ...); a zombie has ended already
            found.append(int(pid))
    return found


def stop_sweep(signum: int, frame: object) -> None:
    """SIGTERM to a sweep's process: passed on to its launcher's workers (joblib), which record their jobs as
    interrupted (lstm_ae.experiment), given up to 5 s to do so, then raised here as Ctrl-C is: the launcher
    stops what is left, and the entry script ends in one line."""
    workers = children()
    for pid in workers:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 5
    while workers and time.monotonic() < deadline and (workers := [p for p in workers if p in children()]):
        time.sleep(0.05)
    raise_interrupted(signum, frame)


class CheckOutputFolder(Callback):
    """Hydra creates the run (or sweep) folder before a job starts; check it can, first."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        check_writable(config.hydra.run.dir, "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        check_writable(config.hydra.sweep.dir, "hydra.sweep.dir")
        # a launcher's worker processes inherit it: a job whose sweep process is gone stops (lstm_ae.experiment)
        os.environ["LSTM_AE_SWEEP_PID"] = str(os.getpid())
        if threading.current_thread() is threading.main_thread():  # SIGTERM stops the sweep like Ctrl-C
            self.previous = signal.signal(signal.SIGTERM, stop_sweep)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if getattr(self, "previous", None) is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self.previous)


def ray_address(address: str) -> Optional[str]:
    """The ``host:port`` that Ray's ``address`` names: ``auto`` is $RAY_ADDRESS, else the cluster
    ``ray start`` last started on this machine (Ray's ``ray_current_cluster`` file); None if neither."""
    if address == "auto":
        address = os.environ.get("RAY_ADDRESS", "")
        if not address or address == "auto":
            temp = os.environ.get("RAY_TMPDIR") or tempfile.gettempdir()
            current = Path(temp) / "ray" / "ray_current_cluster"
            address = current.read_text().strip() if current.is_file() else ""
    return address.split("://", 1)[-1] or None


def check_ray_address(address: str) -> None:
    """Exit with status 2 and one line when no Ray cluster answers at ``address`` (Ray itself
    would retry for minutes, after Hydra made the sweep folder)."""
    key = "hydra.launcher.ray.init.address"
    fix = "start one with `ray start --head`, or set the address of a running cluster"
    target = ray_address(address)
    if target is None:
        print(f"Error: {key}={address}: no running Ray cluster found ($RAY_ADDRESS is not set and no "
              f"cluster was started on this machine); {fix}", file=sys.stderr)
        sys.exit(2)
    host, _, port = target.rpartition(":")
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=5).close()
    except (OSError, ValueError) as err:
        reason = getattr(err, "strerror", None) or err
        print(f"Error: {key}={address}: no Ray cluster answers at {target} ({reason}); {fix}", file=sys.stderr)
        sys.exit(2)


class CheckLauncher(Callback):
    """Before a multirun: the launcher's extra is installed, and a Ray cluster it should join answers."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        target = OmegaConf.select(config, "hydra.launcher._target_") or ""
        choice = OmegaConf.select(config, "hydra.runtime.choices.hydra/launcher")
        if not launcher_installed(target):
            extra = next((e for t, e in LAUNCHER_EXTRAS.values() if t == target), None)
            fix = f"pip install -e '.[{extra}]'" if extra else "install the package that provides it"
            print(f"Error: hydra/launcher={choice}: its launcher ({target}) is not installed; {fix}", file=sys.stderr)
            sys.exit(2)
        address = OmegaConf.select(config, "hydra.launcher.ray.init.address")
        if target == LAUNCHER_EXTRAS["ray"][0] and address is not None:
            check_ray_address(str(address))


class MlflowSweep(Callback):
    """``logger=mlflow``: before a run, its tracking server checked (one line if it does not answer); before
    a multirun's first job, the sweep's parent run (lstm_ae.loggers.start_sweep), which every job finds and
    runs under; after it, the parent finished with ``summary.csv``. Imports MLflow only with that logger."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        if OmegaConf.select(config, "logger._target_") == MLFLOW_TARGET:

            with _one_line():
                check_tracking(OmegaConf.select(config, "logger.tracking_uri"))

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.parent = None
        if OmegaConf.select(config, "logger._target_") == MLFLOW_TARGET:

            with _one_line():
                self.parent = start_sweep(config)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if getattr(self, "parent", None) is not None:
            end_sweep(*self.parent, Path(config.hydra.sweep.dir))


@contextlib.contextmanager
def _one_line() -> Any:
    """A user's mistake (lstm_ae.errors.UserError) as one line and exit status 2."""
    try:
        yield
    except UserError as err:
        print(f"Error: {err}", file=sys.stderr)
        sys.exit(2)
