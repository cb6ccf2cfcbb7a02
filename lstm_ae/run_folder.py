"""The run-folder contract: what a run folder holds, who may write it, what state it is in.

Every other module asks this one: the trainer and the experiment write through it, and
``summary.csv`` (lstm_ae.sweep), the runs table (lstm_ae.runs), resume, ``reproduce`` and the
report read through it. No torch and no pandas here: the runs table imports it.

A run folder holds (``FILES``): ``.hydra/`` (the composed config, the overrides, Hydra's
settings), ``run.json`` (the manifest, below), ``run.lock`` (held while a process writes the
folder), ``metrics.csv`` (a row per epoch), ``results.json`` (test metrics; written once, at the
end), ``checkpoints/{best,last}.pt``, the task's PNG figures, and under cross-validation
``folds.csv`` and ``fold_<k>/``.

**Manifest** (``run.json``), written when the run starts, before any training file: the config
and script, the task, its objective and direction, the planned epochs, the overrides that define
the run (:func:`defining_overrides`), the config's fingerprint (``config_sha1``), the run folder
it continues (``resumes``, for a ``trainer.resume`` that continues a run elsewhere), the project
version, host, process and start time; ``end`` is null while the run lives and is set when it
ends: ``{"status": finished | pruned | failed | diverged | interrupted, "reason", "time", "epoch"}``.

**Status** (:func:`status`) is decided here only: ``running`` while a process holds
``run.lock`` (a dead holder's lock is released by the kernel), else the manifest's end state, else
``interrupted`` (killed without a word: SIGKILL, power loss). Folders written before the manifest
existed are read by their files: ``results.json`` finished, ``pruned.json`` pruned, ``error.txt``
failed or diverged, else interrupted (or running while ``metrics.csv`` is younger than ``stale``).

**Identity**: two runs are the same run when their ``config_sha1`` (:func:`fingerprint`) agree:
the composed config but the keys in ``NON_DEFINING`` (they change how a run is watched, not what
is trained); :func:`defining_overrides` drops the same keys, and ``hydra.*``, from overrides.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import math
import os
import socket
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

from lstm_ae.errors import UserError

HYDRA = ".hydra"
MANIFEST = "run.json"
LOCK = "run.lock"
METRICS = "metrics.csv"
RESULTS = "results.json"
CHECKPOINTS = "checkpoints"
BEST = f"{CHECKPOINTS}/best.pt"
LAST = f"{CHECKPOINTS}/last.pt"
FOLDS = "folds.csv"
SUMMARY, SWEEP_END = "summary.csv", "sweep.json"  # in a sweep's folder: a row per job; written when the sweep ended
LEGACY_PRUNED, LEGACY_ERROR = "pruned.json", "error.txt"  # end markers of folders without a manifest
FILES = (HYDRA, MANIFEST, LOCK, METRICS, RESULTS, BEST, LAST, FOLDS)

STATUSES = ("finished", "running", "interrupted", "failed", "diverged", "pruned", "unknown")
ENDS = ("finished", "pruned", "failed", "diverged", "interrupted")
NON_DEFINING = ("trainer.progress", "trainer.resume")  # how a run is watched or continued, not what it trains
STALE = 300.0  # seconds: an old folder (no manifest) written this recently counts as running


class FolderBusy(UserError):
    """Another live process holds the run folder's lock."""


# ------------------------------------------------------------------------------- identity
def _ignored(override: str) -> bool:
    key = str(override).lstrip("+~").split("=", 1)[0]
    return key in NON_DEFINING or key.startswith(("hydra.", "hydra/"))


def defining_overrides(overrides: Iterable[Any]) -> List[str]:
    """The overrides that define what a run trains: all but ``NON_DEFINING`` keys and ``hydra.*``."""
    return [str(o) for o in overrides if not _ignored(str(o))]


def fingerprint(cfg: Any) -> str:
    """``config_sha1``: a short hash of the composed config (a DictConfig or a plain mapping) but
    the ``NON_DEFINING`` keys."""
    from omegaconf import DictConfig, OmegaConf

    data = OmegaConf.to_container(cfg, resolve=False) if isinstance(cfg, DictConfig) else json.loads(json.dumps(cfg))
    for key in NON_DEFINING:
        group, _, name = key.partition(".")
        (data.get(group) or {}).pop(name, None)
    return hashlib.sha1(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------------- files
def finite(value: Any) -> Any:
    """``value`` with every non-finite float (NaN, inf) made None: what JSON can hold."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, then rename it over ``path``: readers see the
    old file or the new one, never a part; on an error (a full disk) the temporary file is removed and
    the old file kept."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def write_json(path: Path, data: Dict[str, Any]) -> None:
    """``data`` as strict JSON (NaN and inf written as null), atomically."""
    write_atomic(Path(path), (json.dumps(finite(data), indent=2, allow_nan=False) + "\n").encode())


def read_text(path: Path) -> Optional[str]:
    """A regular file's text; None when it is missing or unreadable, or not a regular file (a FIFO would
    make the reader wait forever)."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return None
        with open(path, "rb") as f:
            return f.read().decode()
    except (OSError, UnicodeDecodeError):
        return None


def read_json(path: Path) -> Optional[Dict[str, Any]]:
    """A JSON object from ``path``; None when it is missing, unreadable or not an object."""
    try:
        data = json.loads(read_text(path) or "")
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def disk_full(err: BaseException) -> bool:
    return isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT)


# ------------------------------------------------------------------------------- manifest
def project_version() -> str:
    try:
        from importlib.metadata import version

        return version("lstm-ae")
    except Exception:  # noqa: BLE001 - not installed: a source checkout
        return "unknown"


def manifest(folder: Path) -> Optional[Dict[str, Any]]:
    return read_json(Path(folder) / MANIFEST)


def start(folder: Path, **fields: Any) -> Dict[str, Any]:
    """Write the manifest of a run starting (or continuing) in ``folder``; ``end`` is null until :func:`end`.
    A run continued in its own folder keeps its first start and gains a ``continued`` time."""
    old = manifest(folder) or {}
    now = time.strftime("%Y-%m-%dT%H:%M:%S")
    data = {"version": 1, "project_version": project_version(), **fields,
            "started": old.get("started", now), "host": socket.gethostname(), "pid": os.getpid(), "end": None}
    if old:
        data["continued"] = [*old.get("continued", []), now]
    write_json(Path(folder) / MANIFEST, data)
    return data


def update(folder: Path, **fields: Any) -> None:
    """Add ``fields`` to the manifest of ``folder`` (known once the task is built: its objective)."""
    data = manifest(folder) or {}
    data.update(fields)
    write_json(Path(folder) / MANIFEST, data)


def end(folder: Path, status: str, reason: str = "", **extra: Any) -> None:
    """Record how the run in ``folder`` ended (``status`` one of ``ENDS``)."""
    assert status in ENDS, status
    data = manifest(folder) or {}
    data["end"] = {"status": status, "reason": reason, "time": time.strftime("%Y-%m-%dT%H:%M:%S"), **extra}
    write_json(Path(folder) / MANIFEST, data)


# ----------------------------------------------------------------------------------- lock
class Lock:
    """The one-writer lock of a run folder: ``run.lock``, held (``flock``) while a process writes the
    folder; it names its holder (pid, host, since). The kernel releases it when the holder dies, so a
    stale lock is taken over by the next run."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.fd = Path(folder), None

    def acquire(self, attempts: int = 20) -> "Lock":
        """Take the lock or raise :class:`FolderBusy` naming its holder. A reader (:func:`holder`) may
        hold it shared for a moment: a few tries, 50 ms apart, before giving up."""
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.folder / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        for attempt in range(attempts):
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if attempt == attempts - 1 or _read_holder(self.folder):  # an exclusive holder: no point waiting
                    os.close(fd)
                    raise FolderBusy(f"{self.folder} is being written by {_read_holder(self.folder) or 'another process'}; "
                                     "one process writes a run folder at a time: wait for it, stop it, or choose "
                                     "another folder") from None
                time.sleep(0.05)
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode())
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self.fd, 0)  # an empty lock file: nobody holds it
            os.close(self.fd)  # closing the descriptor releases the flock
            self.fd = None

    def __enter__(self) -> "Lock":
        return self.acquire() if self.fd is None else self

    def __exit__(self, *exc: Any) -> None:
        self.release()


def _read_holder(folder: Path) -> str:
    return (read_text(Path(folder) / LOCK) or "").strip()


def holder(folder: Path) -> Optional[str]:
    """Who holds ``folder``'s lock ('pid 12 on host since ...'), or None when nobody does."""
    try:
        fd = os.open(Path(folder) / LOCK, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO named run.lock: no wait
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    except BlockingIOError:
        return _read_holder(folder) or "another process"
    except OSError:  # a file system without locks
        return None
    finally:
        os.close(fd)


# --------------------------------------------------------------------------------- status
@dataclass
class State:
    status: str
    reason: str = ""


def _mtime(path: Path) -> Optional[float]:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def status(folder: Path, man: Optional[Dict[str, Any]] = None, stale: float = STALE,
           now: Optional[float] = None) -> State:
    """The state of the run in ``folder`` (see the module docstring); ``man``: its manifest, if read."""
    folder = Path(folder)
    who = holder(folder)
    if who is not None:
        return State("running", f"{who} holds {LOCK}")
    man = manifest(folder) if man is None else man
    if man is not None:
        ended = man.get("end")
        if isinstance(ended, dict) and ended.get("status") in ENDS:
            return State(ended["status"], str(ended.get("reason") or ""))
        return State("interrupted", f"no end recorded and no process holds {LOCK} (killed?)")
    return _legacy_status(folder, stale, time.time() if now is None else now)


def _legacy_status(folder: Path, stale: float, now: float) -> State:
    """Folders written before the manifest existed: their end markers, else the age of their writes."""
    newest = max([t for t in (_mtime(folder / METRICS), _mtime(folder / LAST)) if t is not None] or [-math.inf])
    markers = [(t, n) for n in (RESULTS, LEGACY_PRUNED, LEGACY_ERROR)
               if (t := _mtime(folder / n)) is not None and t >= newest - 1.0]  # a marker older than the training: stale
    if markers:
        name = max(markers)[1]
        if name == RESULTS:
            return State("finished") if read_json(folder / RESULTS) is not None else State("unknown", f"{RESULTS} unreadable")
        if name == LEGACY_PRUNED:
            epoch = (read_json(folder / LEGACY_PRUNED) or {}).get("epoch")
            return State("pruned", f"pruned by the study after epoch {epoch}")
        lines = (read_text(folder / LEGACY_ERROR) or "").strip().splitlines()
        line = lines[0] if lines else f"{LEGACY_ERROR} empty or unreadable"
        return State("diverged" if line.startswith("TrainingDiverged") else "failed", line)
    if newest > now - stale:
        return State("running", f"last write {now - newest:.0f} s ago (a folder without {MANIFEST})")
    return State("interrupted", f"no {RESULTS} and no write for {stale:.0f} s")


def finished(folder: Path, sweep: bool = False) -> bool:
    """Whether the run in ``folder`` finished (``sweep``: whether the sweep in it ran to its end, every job
    ended, ``sweep.json``; a killed sweep has a ``summary.csv`` of the jobs that ended before)."""
    if sweep:
        return read_json(Path(folder) / SWEEP_END) is not None
    return status(folder).status == "finished"


# Folders without a manifest: the validation objective of each task class (lstm_ae.tasks; a test holds them equal)
OBJECTIVES = {"Reconstruct": ("mse", "min"), "Classify": ("accuracy", "max"), "Predict": ("pred_mse", "min"),
              "Predict/last": ("next_mse", "min")}
MISSING = object()  # a key a config does not have (None: a key whose value is null)


def get(data: Any, dotted: str, default: Any = None) -> Any:
    """``data[a][b]...`` for the key ``a.b...``; ``default`` where there is none."""
    for part in dotted.split("."):
        if not isinstance(data, dict) or part not in data:
            return default
        data = data[part]
    return data


def legacy_manifest(hydra: Any, overrides: Any, config: Any) -> Dict[str, Any]:
    """What the manifest of a folder written before manifests existed would say, from its parsed
    ``.hydra/`` files (``hydra.yaml``, ``overrides.yaml``, ``config.yaml``; None where unreadable)."""
    job, choices = (v if isinstance(v, dict) else {} for v in (get(hydra, "hydra.job"), get(hydra, "hydra.runtime.choices")))
    target = get(config, "task._target_")
    task_class = target.rsplit(".", 1)[-1] if isinstance(target, str) else ""
    objective, mode = OBJECTIVES.get(f"{task_class}/{get(config, 'task.pred_loss')}",
                                     OBJECTIVES.get(task_class, ("mse", "min")))
    epochs, folds = get(config, "trainer.epochs"), get(config, "task.folds")
    return {"config": job.get("config_name"), "script": job.get("name"),
            "task": choices.get("task") or task_class.lower() or None,
            "choices": {k: v for k, v in choices.items() if not str(k).startswith(("schema/", "hydra"))},
            "overrides": defining_overrides(overrides) if isinstance(overrides, list) else [],
            "epochs_planned": epochs if isinstance(epochs, int) else None,
            "folds": folds if isinstance(folds, int) else None, "objective": f"val_{objective}", "objective_mode": mode}


# ------------------------------------------------------------------------------- finding runs
Report = Callable[[str, str, str], None]  # (kind: "error" or "note", path, text)


def find(paths: Iterable[Any], report: Report) -> List[Path]:
    """Every run folder below ``paths`` (a folder holding ``.hydra/``; the search stops there, so a
    cross-validation run's ``fold_<k>/`` belong to it), in walk order. Unreadable folders are reported as
    errors; a folder with no run in or below it beside one that has runs, as a note."""
    runs: List[Path] = []
    seen: set = set()

    def visit(folder: str) -> bool:
        """Walk ``folder``; True when it holds a run folder (or could not be read: no note then)."""
        try:
            st = os.stat(folder)
            if (st.st_dev, st.st_ino) in seen:  # a symbolic link back up, or a PATH given twice
                return True
            seen.add((st.st_dev, st.st_ino))
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as err:
            report("error", folder, f"cannot read this folder ({err.strerror or err})")
            return True
        if any(e.name == HYDRA and _is_dir(e) for e in entries):
            runs.append(Path(folder))
            return True
        found, empty = False, []
        for e in entries:
            if not e.name.startswith(".") and _is_dir(e):
                if visit(e.path):
                    found = True
                else:
                    empty.append(e.path)
        for path in empty if found else []:  # a sibling holds runs: these are leftovers worth a note
            report("note", path, "not a run folder (no .hydra/ in or below it), skipped")
        return found

    for path in map(os.fspath, paths):
        if not os.path.exists(path):
            report("error", path, "no such folder")
        elif not os.path.isdir(path):
            report("error", path, "not a folder (give a run folder or a folder of runs)")
        elif not visit(path):
            report("note", path, "no run folders in it (a run folder holds .hydra/), skipped")
    return runs


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


# ------------------------------------------------------------------------------ training files
def has_training(folder: Path) -> bool:
    """Whether ``folder`` holds what a training writes (metrics, checkpoints, results, folds)."""
    folder = Path(folder)
    return any((folder / n).exists() for n in (METRICS, LAST, RESULTS)) or any(folder.glob(f"fold_*/{LAST}"))


def last_checkpoints(folder: Path) -> List[Path]:
    """The ``last.pt`` files of a run folder: its own, or its folds' under cross-validation."""
    own = Path(folder) / LAST
    return [own] if own.exists() else sorted(Path(folder).glob(f"fold_*/{LAST}"))


def saved_fingerprint(folder: Path) -> Tuple[Optional[str], str]:
    """(the ``config_sha1`` of the run in ``folder``, where it was read), from its manifest, else its
    ``results.json``; (None, '') when neither says."""
    for name in (MANIFEST, RESULTS):
        data = read_json(Path(folder) / name)
        if data is not None and isinstance(data.get("config_sha1"), str):
            return data["config_sha1"], name
    return None, ""
