"""List the run folders below some folders in one table: status, overrides, epochs, metrics.

    python -m lstm_ae.runs                                   # every run below outputs/ and multirun/
    python -m lstm_ae.runs multirun/toy --status finished --sort val_mse --top 5
    python -m lstm_ae.runs --task classify --where model.hidden_size=128 --csv runs.csv
    python -m lstm_ae.runs --json | jq '.[] | select(.status == "failed") | .reason'

One row per run folder: its config (entry script), task, start, status (with a reason when it
did not finish), the overrides it was run with, epochs run / planned, the best validation
objective, the test metrics with their baselines, training time and folder. Reads files only
(no torch, no pandas: 1,000 folders in well under 2 s, ``python -m bench.runs_table``) and
never writes into a run folder.

**Run folder**: a folder holding ``.hydra/`` (Hydra writes it when a job starts). The search
does not descend into a run folder: the ``fold_<k>/`` folders of a cross-validation run belong
to it. A folder below PATH with no run folder anywhere below it is skipped with a note. A folder
whose log says ``resuming the run in <folder>`` (``trainer.resume``: Hydra's new folder of a run
continued elsewhere) is not listed: its activity and errors count for the run it continued.

**Status**, decided in this order:

* ``finished``: ``results.json`` (the test pass is done; figures may still be drawn);
* ``pruned``: ``pruned.json`` (the Optuna study's pruner stopped the job after an epoch);
* ``failed`` / ``diverged``: ``error.txt`` (a sweep job's one-line reason), or, for a single
  run, its log's last record is an ERROR (``lstm_ae.experiment.run`` logs the error, then exits
  with status 2); ``diverged`` when the reason is ``TrainingDiverged`` (a NaN or inf loss:
  ``metrics.csv`` and ``checkpoints/`` keep the last good epoch, no ``results.json``);
  such an end marker counts only if it is not older than ``metrics.csv`` (a job rerun into its
  folder rewrites that: the old marker is then stale);
* ``running``: no end marker and a process on this machine holds a file of the folder open for
  writing (Linux ``/proc/<pid>/fd``: the training keeps ``metrics.csv`` and its log open from
  start to end; readers such as TensorBoard or ``tail -f`` do not count, nor does this command),
  or the newest write in the folder (its files, ``checkpoints/``, ``fold_<k>/``) is younger than
  ``--stale`` seconds (default 300), raised for a run with long epochs to twice its longest epoch
  so far (the ``seconds`` column of ``metrics.csv``): a run on another machine (a shared file
  system, a cluster) or of another user writes at least once an epoch;
* ``interrupted``: none of these (killed, Ctrl-C, or a crash whose traceback went only to the
  console): ``metrics.csv`` keeps its complete rows (a row cut by the kill is not counted) and
  ``trainer.resume`` continues from ``checkpoints/last.pt``.

A run killed less than ``--stale`` seconds ago on another machine still shows ``running``; on
this machine it shows ``interrupted`` at once only with ``--stale 0`` (then only open files
count). The reason column says which rule decided.

**Columns** (``--json``, ``--csv``: all of them, unshortened): ``folder`` (relative to the
current folder when below it), ``config`` and ``script`` (``hydra.job``), ``task`` (the task
group's choice), ``start`` (the folder name's ``<date>_<time>`` when it has one, else when Hydra
wrote ``.hydra/config.yaml``), ``status``, ``reason``, ``overrides`` (``.hydra/overrides.yaml``
without ``trainer.progress`` and ``trainer.resume``, which do not change what is trained -- the
two keys ``config_sha1`` ignores -- and ``hydra.*``), ``epochs`` / ``epochs_planned``,
``objective`` (e.g. ``val_mse``) and ``best_val`` (its value), every scalar ``val_*``,
``test_*``, ``baseline_test_*`` and ``cv_mean_*`` of ``results.json`` (for a run without one:
the ``val_*`` of its best epoch so far, by validation loss as the trainer picks it), ``best_epoch``,
``train_seconds``, ``folds`` (cross-validation: folds started / planned).

**Filters and order**: ``--task``, ``--status``, ``--where KEY=VALUE`` (a column, a config key
such as ``model.hidden_size``, or a config group such as ``optimizer``; numbers compare as
numbers; repeated: all must hold), ``--sort KEY`` (ascending, ``--reverse`` for descending; runs
without the key last; default: start), ``--top N``.

**Exit status**: 0; 1 when a PATH is missing or unreadable, or a run's file is unreadable or
malformed (one line each on stderr; the table still lists everything else); 2 for a bad option
or a ``--where``/``--sort`` key no run has. Notes (a skipped folder) go to stderr too.

Speed (measured, bench/runs_table.py): YAML is parsed with libyaml (``yaml.CSafeLoader``, ~10x
PyYAML's Python loader; OmegaConf.load is ~20x slower still); of ``.hydra/hydra.yaml`` only the
``job`` and ``runtime.choices`` lines are read (a full parse costs ~1.8 ms a folder), of
``config.yaml`` the keys the table, ``--where`` and ``--sort`` need (the whole file, ~0.7 ms,
only for a key whose value is a list or mapping, or when a key is not found so); a finished
run's ``metrics.csv`` is not read; pandas is not imported (~0.5 s).
"""
from __future__ import annotations

import argparse
import csv
import functools
import io
import json
import math
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import yaml

Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

MISSING = object()  # a key a run does not have (None: a key whose value is null)
DEFAULT_PATHS = ("outputs", "multirun")
STATUSES = ("finished", "running", "interrupted", "failed", "diverged", "pruned", "unknown")
STALE = 300.0  # seconds: see the module docstring
MARKER_SLACK = 1.0  # seconds: file systems with coarse timestamps
# The validation objective of each task (lstm_ae.tasks.<Task>.objective, objective_mode; importing
# lstm_ae.tasks would import torch). tests/test_runs.py checks they agree.
# A task whose objective depends on a key is listed as "<Task>/<key's value>".
OBJECTIVES = {"Reconstruct": ("mse", "min"), "Classify": ("accuracy", "max"), "Predict": ("pred_mse", "min"),
              "Predict/last": ("next_mse", "min")}
IGNORED_OVERRIDES = ("trainer.progress", "trainer.resume", "hydra.", "hydra/")
RESUMED = re.compile(r"resuming the run in (.+?) \(results go there\)")
RECORD = re.compile(r"^\[[^\]]*\]\[[^\]]*\]\[(\w+)\] - (.*)$")  # Hydra's job_logging format
STAMP = re.compile(r"^(\d{4})-(\d\d)-(\d\d)_(\d\d)-(\d\d)-(\d\d)")  # hydra.run.dir's ${now:...}
METRIC = re.compile(r"^(val_|test_|baseline_test_|cv_mean_)")
# the columns in order (more val_*/test_* keys follow best_val); the text table shows fewer
COLUMNS = ["folder", "config", "script", "task", "start", "status", "reason", "overrides", "epochs",
           "epochs_planned", "folds", "objective", "best_val"]
TAIL_COLUMNS = ["best_epoch", "train_seconds"]


class Messages:
    """Notes and errors, one line each, printed to stderr; an error makes the exit status 1."""

    def __init__(self) -> None:
        self.lines: List[Tuple[str, str]] = []

    def note(self, where: Any, text: str) -> None:
        self.lines.append(("note", f"{shorten(where)}: {text}"))

    def error(self, where: Any, text: str) -> None:
        self.lines.append(("error", f"{shorten(where)}: {text}"))

    @property
    def errors(self) -> List[str]:
        return [t for k, t in self.lines if k == "error"]

    @property
    def notes(self) -> List[str]:
        return [t for k, t in self.lines if k == "note"]


def shorten(path: Any) -> str:
    """``path`` relative to the current folder when it lies below it, else as it is."""
    text = os.fspath(path)
    if os.path.isabs(text):
        cwd = os.getcwd()
        if text.startswith(cwd + os.sep):
            return text[len(cwd) + 1:]
    return os.path.normpath(text)


# ------------------------------------------------------------------------------ finding runs
def find_runs(paths: Sequence[Path], messages: Messages) -> List[Path]:
    """Every run folder below ``paths`` (a folder holding ``.hydra/``), in walk order."""
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
            messages.error(folder, f"cannot read this folder ({err.strerror or err})")
            return True
        if any(e.name == ".hydra" and _is_dir(e) for e in entries):
            runs.append(Path(folder))
            return True
        found, empty = False, []
        for e in entries:
            if not e.name.startswith(".") and _is_dir(e):
                if visit(e.path):
                    found = True
                else:
                    empty.append(e.path)
        if found:  # a sibling holds runs: these are leftovers worth a note
            for path in empty:
                messages.note(path, "not a run folder (no .hydra/ in or below it), skipped")
        return found

    for path in paths:
        if not os.path.exists(path):
            messages.error(path, "no such folder")
        elif not os.path.isdir(path):
            messages.error(path, "not a folder (give a run folder or a folder of runs)")
        elif not visit(os.fspath(path)):
            messages.note(path, "no run folders in it (a run folder holds .hydra/), skipped")
    return runs


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


# ------------------------------------------------------------------------ processes writing
class Writers:
    """The folders in which a process on this machine (other than this one) holds a file open for
    writing (Linux: ``/proc/<pid>/fd`` and ``fdinfo``; other systems: none). Scanned once, lazily."""

    def __init__(self) -> None:
        self._files: Optional[List[Tuple[str, str]]] = None  # (resolved file path, /proc/<pid>/fdinfo/<fd>)

    def _scan(self) -> List[Tuple[str, str]]:
        files = []
        me = str(os.getpid())
        try:
            pids = [p for p in os.listdir("/proc") if p.isdigit() and p != me]
        except OSError:
            return files
        for pid in pids:
            fd_dir = f"/proc/{pid}/fd"
            try:
                fds = os.listdir(fd_dir)
            except OSError:  # gone, or another user's
                continue
            for fd in fds:
                try:
                    target = os.readlink(f"{fd_dir}/{fd}")
                except OSError:
                    continue
                if target.startswith("/"):
                    files.append((target, f"/proc/{pid}/fdinfo/{fd}"))
        return files

    def pid_writing(self, folder: Path) -> Optional[int]:
        """The id of a process holding a file below ``folder`` open for writing, or None."""
        if self._files is None:
            self._files = self._scan()
        if not self._files:
            return None
        prefix = os.path.realpath(folder) + os.sep
        for target, info in self._files:
            if target.startswith(prefix) and _opened_for_writing(info):
                return int(info.split("/")[2])
        return None


def _opened_for_writing(fdinfo: str) -> bool:
    try:
        with open(fdinfo) as f:
            for line in f:
                if line.startswith("flags:"):
                    return int(line.split()[1], 8) & 0o3 != 0  # O_WRONLY or O_RDWR
    except (OSError, ValueError, IndexError):
        pass
    return False


# --------------------------------------------------------------------------- reading a run
@dataclass
class Metrics:
    """The complete rows of a ``metrics.csv`` (a row cut by a crash is left out)."""

    columns: List[str]
    rows: List[List[float]]

    def column(self, name: str) -> List[float]:
        i = self.columns.index(name)
        return [r[i] for r in self.rows]

    def best(self) -> Dict[str, float]:
        """The ``val_*`` of the row with the lowest ``val_loss`` (the first one: the trainer's best)."""
        if not self.rows or "val_loss" not in self.columns:
            return {}
        i = self.columns.index("val_loss")
        row = min(self.rows, key=lambda r: (math.isnan(r[i]), r[i]))
        out = {c: v for c, v in zip(self.columns, row) if c.startswith("val_")}
        out["best_epoch"] = int(row[0]) if self.columns[0] == "epoch" else None
        return out


def read_metrics(path: Path) -> Optional[Metrics]:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return None
    lines = text.split("\n")
    if len(lines) < 2:  # no header line yet
        return Metrics([], [])
    columns = lines[0].strip("\r").split(",")
    rows = []
    for line in lines[1:-1]:  # the last piece follows the last newline: an unfinished row, or ""
        parts = line.strip("\r").split(",")
        if len(parts) == len(columns):
            try:
                rows.append([float(p) for p in parts])
            except ValueError:
                pass
    return Metrics(columns, rows)


@dataclass
class Folder:
    """What is needed of a run folder's files; ``row`` is what the table shows."""

    path: Path
    messages: Messages
    names: Dict[str, os.DirEntry] = field(default_factory=dict)
    row: Dict[str, Any] = field(default_factory=dict)
    config_text: Optional[str] = None
    choices: Dict[str, Any] = field(default_factory=dict)
    log: Optional[Path] = None
    resumed: Optional[Path] = None  # the run this folder's process continued (trainer.resume)
    mode: str = "min"

    def config(self) -> Optional[dict]:
        """``.hydra/config.yaml`` parsed (once; an error line if it is malformed)."""
        if not hasattr(self, "_config"):
            path = self.path / ".hydra" / "config.yaml"
            config = parse_yaml(self.config_text, path, self.messages)
            if config is not None and not isinstance(config, dict):
                self.messages.error(path, "not a mapping of config keys; its run is listed without it")
                config = None
            self._config = config
        return self._config

    def mtime(self, name: str) -> Optional[float]:
        entry = self.names.get(name)
        if entry is None:
            return None
        try:
            return entry.stat().st_mtime
        except OSError:
            return None


def _read(path: Path, messages: Messages, required: bool = True) -> Optional[str]:
    try:
        return path.read_text()
    except FileNotFoundError:
        if required:
            messages.error(path, "missing (Hydra writes it when the job starts); its run is listed without it")
    except (OSError, UnicodeDecodeError) as err:
        messages.error(path, f"cannot read it ({getattr(err, 'strerror', None) or err}); its run is listed without it")
    return None


def parse_yaml(text: Optional[str], path: Path, messages: Messages) -> Any:
    """The whole YAML document (libyaml); None, with one error line, when it is malformed."""
    if text is None:
        return None
    try:
        return yaml.load(text, Loader=Loader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or type(err).__name__
        messages.error(path, f"malformed YAML{where} ({problem}); its run is listed without it")
        return None


def block(text: str, keys: Sequence[str]) -> Optional[Tuple[int, int, int]]:
    """Where the value of the key path ``keys`` lies in block-style YAML as OmegaConf writes it (two
    spaces a level): (start, end, indentation of its keys), or None. Reading a few keys this way
    is ~50x faster than parsing the file (``.hydra/*.yaml``: ~1 ms each with libyaml)."""
    shift = 0 if text.startswith("\n") else 1
    text = "\n" * shift + text  # every key line starts after a newline
    start, end, indent = 0, len(text), 0
    for key in keys:
        needle = "\n" + " " * indent + key + ":"
        at = text.find(needle, start, end)
        while at >= 0 and text[at + len(needle): at + len(needle) + 1] not in (" ", "\n", ""):
            at = text.find(needle, at + 1, end)
        if at < 0:
            return None
        start = at + len(needle)
        # the value ends where a line is indented less than its keys (a blank line does not end it)
        nxt = _dedent(indent + 2).search(text, start, end)
        end = nxt.start() if nxt else end
        indent += 2
    return start - shift, end - shift, indent


@functools.lru_cache(maxsize=None)
def _dedent(indent: int) -> "re.Pattern[str]":
    return re.compile(rf"\n {{0,{indent - 1}}}[^ \n]")


def lookup_yaml(text: str, keys: Sequence[str]) -> Any:
    """The scalar at the key path ``keys`` (see :func:`block`); MISSING when it is not a scalar there."""
    where = block(text, keys)
    if where is None:
        return MISSING
    first, _, rest = text[where[0]:where[1]].partition("\n")
    value = first.strip()
    if not value or rest.strip() or (value[0] in "'\"" and (len(value) < 2 or value[-1] != value[0])):
        return MISSING  # a mapping, a list, or a scalar on several lines: not read here
    return scalar(value)


INT = re.compile(r"^[-+]?[0-9]+$")


def scalar(text: str) -> Any:
    """A YAML plain or quoted scalar: null, bools, ints and floats typed, else the text."""
    if text in ("null", "~"):
        return None
    if text in ("true", "false"):
        return text == "true"
    if INT.match(text):
        return int(text)
    if text[0] in "'\"[{&*!|>.":
        try:
            return yaml.load(text, Loader=Loader)
        except yaml.YAMLError:
            return text
    try:
        return float(text) if text[0] in "-+0123456789" else text
    except ValueError:
        return text


def read_hydra(path: Path, messages: Messages) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """({name, config_name} of hydra.job, hydra.runtime.choices) from ``.hydra/hydra.yaml``: those
    lines only (see :func:`block`), or the whole file parsed when they are not found there."""
    text = _read(path, messages)
    if text is None:
        return {}, {}
    name, config_name = (lookup_yaml(text, ["hydra", "job", k]) for k in ("name", "config_name"))
    choices = block(text, ["hydra", "runtime", "choices"])
    if isinstance(name, str) and isinstance(config_name, str) and choices is not None:
        start, end, indent = choices
        pattern = re.compile(rf"\n{' ' * indent}([^\s:][^:\n]*):[ ]?([^\n]*)")
        chosen = {k: scalar(v.strip()) if v.strip() else None for k, v in pattern.findall(text, start, end)}
        return {"name": name, "config_name": config_name}, chosen
    data = parse_yaml(text, path, messages)
    hydra = data.get("hydra") if isinstance(data, dict) else None
    if not isinstance(hydra, dict):
        if data is not None:
            messages.error(path, "no hydra: section; its run is listed without it")
        return {}, {}
    job = hydra.get("job") if isinstance(hydra.get("job"), dict) else {}
    runtime = hydra.get("runtime") if isinstance(hydra.get("runtime"), dict) else {}
    choices = runtime.get("choices") if isinstance(runtime.get("choices"), dict) else {}
    return {k: job.get(k) for k in ("name", "config_name")}, dict(choices)


def training_overrides(overrides: Iterable[Any]) -> List[str]:
    """The task overrides a run was started with, but those that do not change what is trained
    (``trainer.progress``, ``trainer.resume``: what ``config_sha1`` leaves out) and ``hydra.*``."""
    return [str(item) for item in overrides if not str(item).lstrip("+~").startswith(IGNORED_OVERRIDES)]


def compact_overrides(overrides: Iterable[Any]) -> str:
    """``training_overrides``, space-separated."""
    return " ".join(training_overrides(overrides))


def _start(folder: Folder) -> Optional[str]:
    match = STAMP.match(folder.path.name)
    if match:
        y, mo, d, h, mi, s = match.groups()
        return f"{y}-{mo}-{d}T{h}:{mi}:{s}"
    try:
        stamp = (folder.path / ".hydra" / "config.yaml").stat().st_mtime
    except OSError:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(stamp))


def _get(data: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(data, dict) or part not in data:
            return MISSING
        data = data[part]
    return data


def read_run(path: Path, messages: Messages) -> Folder:
    """Everything of a run folder but its status (which needs every folder: see :func:`decide`)."""
    folder = Folder(path, messages=messages)
    try:
        with os.scandir(path) as it:
            folder.names = {e.name: e for e in it}
    except OSError as err:
        messages.error(path, f"cannot read this folder ({err.strerror or err})")
    row = folder.row
    row["folder"] = shorten(path)
    hydra_dir = path / ".hydra"
    job, folder.choices = read_hydra(hydra_dir / "hydra.yaml", messages)
    readable = os.access(hydra_dir, os.R_OK | os.X_OK)  # else one error line (hydra.yaml's) is enough
    # config.yaml: the three keys the table needs, read as lines; the whole file is parsed only when
    # they are not found so (then a malformed file gets its error line) or --where/--sort need it
    text = folder.config_text = _read(hydra_dir / "config.yaml", messages) if readable else None
    keys = {k: MISSING for k in ("trainer.epochs", "task._target_", "task.folds", "task.pred_loss")}
    if text is not None:
        keys = {k: lookup_yaml(text, k.split(".")) for k in keys}
        if keys["trainer.epochs"] is MISSING or keys["task._target_"] is MISSING:
            config = folder.config()
            keys = {k: _get(config, k) for k in keys}
    overrides = parse_yaml(_read(hydra_dir / "overrides.yaml", messages, required=False),
                           hydra_dir / "overrides.yaml", messages) if readable else None
    row["config"] = job.get("config_name")
    row["script"] = job.get("name")
    task_class = str(keys["task._target_"]).rsplit(".", 1)[-1] if isinstance(keys["task._target_"], str) else ""
    row["task"] = folder.choices.get("task") or (task_class.lower() or None)
    row["start"] = _start(folder)
    row["status"], row["reason"] = None, ""
    row["overrides"] = compact_overrides(overrides) if isinstance(overrides, list) else ""
    if overrides is not None and not isinstance(overrides, list):
        messages.error(hydra_dir / "overrides.yaml", "not a list of overrides; its run is listed without them")
    planned, folds = keys["trainer.epochs"], keys["task.folds"]
    row["epochs"], row["epochs_planned"] = None, planned if isinstance(planned, int) else None
    row["folds"] = None
    if isinstance(folds, int) and not isinstance(folds, bool) and folds > 1:
        started = sum(1 for n in folder.names if n.startswith("fold_"))
        row["folds"] = f"{started}/{folds}"
    variant = f"{task_class}/{keys['task.pred_loss']}"
    objective, folder.mode = OBJECTIVES.get(variant, OBJECTIVES.get(task_class, ("mse", "min")))
    row["objective"], row["best_val"] = f"val_{objective}", None
    logs = sorted(n for n in folder.names if n.endswith(".log"))
    if logs:
        folder.log = path / (f"{job['name']}.log" if f"{job.get('name')}.log" in logs else logs[0])
    if not any(n in folder.names for n in ("metrics.csv", "results.json")) and not row["folds"]:
        folder.resumed = _resumed(folder)
    return folder


def _resumed(folder: Folder) -> Optional[Path]:
    """The run folder this one's process continued (it logs 'resuming the run in ...'), if any."""
    if folder.log is None:
        return None
    try:
        with open(folder.log, errors="replace") as f:
            head = f.read(8192)
    except OSError:
        return None
    match = RESUMED.search(head)
    return Path(match.group(1)) if match else None


def _log_error(log: Optional[Path]) -> Optional[str]:
    """The message of the log's last record when that is an ERROR (a single run that stopped on a
    user error, e.g. TrainingDiverged), else None."""
    if log is None:
        return None
    try:
        with open(log, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 16384))
            tail = f.read().decode(errors="replace")
    except OSError:
        return None
    for line in reversed(tail.splitlines()):
        match = RECORD.match(line)
        if match:
            return match.group(2).strip() if match.group(1) == "ERROR" else None
    return None


def _scalars(results: Dict[str, Any]) -> Dict[str, Any]:
    return {k: v for k, v in results.items()
            if METRIC.match(k) and isinstance(v, (int, float)) and not isinstance(v, bool)}


def _newest_write(folder: Folder) -> Optional[float]:
    """The newest modification time among the folder's entries and its folds' (a folder's own
    time changes when a file in it is replaced: ``checkpoints/last.pt`` every epoch)."""
    times = [folder.mtime(n) for n in folder.names if n != ".hydra"]
    for name in folder.names:
        if name.startswith("fold_"):
            try:
                with os.scandir(folder.path / name) as it:
                    times += [e.stat().st_mtime for e in it]
            except OSError:
                pass
    times = [t for t in times if t is not None]
    return max(times) if times else None


def _training(folder: Folder) -> Tuple[Optional[Metrics], List[Metrics]]:
    """The run's metrics: its own ``metrics.csv`` and, under cross-validation, each fold's."""
    own = read_metrics(folder.path / "metrics.csv") if "metrics.csv" in folder.names else None
    folds = []
    for name in sorted((n for n in folder.names if n.startswith("fold_")), key=lambda n: (len(n), n)):
        m = read_metrics(folder.path / name / "metrics.csv")
        if m is not None:
            folds.append(m)
    return own, folds


def _progress(folder: Folder) -> Optional[float]:
    """Fill in epochs, the best validation metrics so far and the training time from
    ``metrics.csv`` (an unfinished run); the longest epoch's seconds."""
    row = folder.row
    own, folds = _training(folder)
    if own is None and not folds:
        row["epochs"] = 0
        return None
    current = folds[-1] if folds and own is None else own  # cross-validation: the fold in progress
    row["epochs"] = len(current.rows)
    candidates = [m.best() for m in ([own] if own is not None else folds) if m.rows]
    candidates = [c for c in candidates if row["objective"] in c]
    if candidates:
        sign = -1 if folder.mode == "max" else 1
        best = min(candidates, key=lambda c: (math.isnan(c[row["objective"]]), sign * c[row["objective"]]))
        row.update({k: v for k, v in best.items() if k != "best_epoch"})
        row["best_epoch"] = best.get("best_epoch")
    seconds = [s for m in ([own] if own is not None else folds) if "seconds" in m.columns for s in m.column("seconds")]
    row["train_seconds"] = round(sum(seconds), 2) if seconds else None
    return max(seconds) if seconds else None


def _age(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.0f} days"


def decide(folder: Folder, messages: Messages, writers: Writers, stale: float, now: float,
           resumers: Sequence[Folder] = ()) -> None:
    """Set the folder's status, reason and the metrics that go with it (see the module docstring).

    ``resumers``: the folders whose processes continued this run (``trainer.resume``), newest first.
    """
    row = folder.row
    metrics_time = max([t for t in [folder.mtime("metrics.csv")] if t is not None] or [-math.inf])
    markers = []  # (time, kind) of the end markers not older than metrics.csv
    for name in ("results.json", "pruned.json", "error.txt"):
        t = folder.mtime(name)
        if t is not None and t >= metrics_time - MARKER_SLACK:
            markers.append((t, name))
    results: Optional[Dict[str, Any]] = None
    if markers:
        _, name = max(markers)
        path = folder.path / name
        try:
            text = path.read_text()
            data = json.loads(text) if name.endswith(".json") else text
            if name.endswith(".json") and not isinstance(data, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as err:
            if writers.pid_writing(folder.path) is not None:  # being written this very moment
                row["status"], row["reason"] = "running", f"{name} being written"
                _progress(folder)
                return
            what = err.strerror if isinstance(err, OSError) else f"malformed: {str(err).splitlines()[0][:80]}"
            messages.error(path, f"cannot be read ({what}); its run is listed as unknown")
            row["status"], row["reason"] = "unknown", f"{name} unreadable"
            _progress(folder)
            return
        if name == "results.json":
            results = data
        elif name == "pruned.json":
            _progress(folder)
            epoch = data.get("epoch")
            row["status"], row["reason"] = "pruned", f"pruned by the study after epoch {epoch}"
            if isinstance(epoch, int):
                row["epochs"] = epoch
            return
        else:
            _failed(folder, data.strip().splitlines()[0] if data.strip() else "error.txt is empty")
            return
    if results is not None:
        row["status"] = "finished"
        objective = results.get("objective")
        if isinstance(objective, str):
            row["objective"] = objective
        row.update(_scalars(results))
        row["best_val"] = results.get(row["objective"])
        row["epochs"] = results.get("epochs_run")
        row["best_epoch"] = results.get("best_epoch")
        row["train_seconds"] = results.get("train_seconds")
        if results.get("objective_mode") in ("min", "max"):
            folder.mode = results["objective_mode"]
        return
    error = _log_error(folder.log)
    if error is None:
        for other in resumers:
            error = _log_error(other.log)
            if error is not None:
                error = f"{error} (the resume in {shorten(other.path)})"
                break
    if error is not None:
        _failed(folder, error)
        return
    longest = _progress(folder)
    pid = next((p for p in (writers.pid_writing(f.path) for f in [folder, *resumers]) if p is not None), None)
    times = [t for t in [_newest_write(folder), *(_newest_write(f) for f in resumers)] if t is not None]
    newest = max(times) if times else None
    age = now - newest if newest is not None else math.inf
    limit = 0.0 if stale <= 0 else max(stale, 2 * (longest or 0))
    where = f" (fold {row['folds']})" if row["folds"] else ""
    if pid is not None:
        row["status"], row["reason"] = "running", f"process {pid} is writing it{where}"
    elif age < limit:
        row["status"] = "running"
        row["reason"] = f"last write {_age(age)} ago{where}; no process here writes it (another machine?)"
    else:
        row["status"] = "interrupted"
        last = f"last write {_age(age)} ago" if newest is not None else "nothing written"
        row["reason"] = f"{last}{where}, no results.json"


def _failed(folder: Folder, reason: str) -> None:
    row = folder.row
    row["status"] = "diverged" if reason.startswith("TrainingDiverged") else "failed"
    row["reason"] = reason
    _progress(folder)


def _finish_row(row: Dict[str, Any]) -> None:
    if row.get("best_val") is None:
        row["best_val"] = row.get(row["objective"])
    if row.get("train_seconds") is not None:
        row["train_seconds"] = round(float(row["train_seconds"]), 2)


# ------------------------------------------------------------------------------- the listing
@dataclass
class Listing:
    rows: List[Dict[str, Any]]
    folders: Dict[int, Folder]  # id(row) -> its folder (config and group choices for --where/--sort)
    messages: Messages


def collect(paths: Sequence[Path], stale: float = STALE, now: Optional[float] = None,
            messages: Optional[Messages] = None) -> Listing:
    """One row per run folder below ``paths`` (unsorted, unfiltered)."""
    messages = messages if messages is not None else Messages()
    now = time.time() if now is None else now
    folders = []
    for path in find_runs(paths, messages):
        try:
            folders.append(read_run(path, messages))
        except Exception as err:  # nothing crashes the table
            messages.error(path, f"cannot be read ({type(err).__name__}: {err}); skipped")
    resumers: Dict[str, List[Folder]] = {}
    for f in folders:
        if f.resumed is not None:
            resumers.setdefault(os.path.realpath(f.resumed), []).append(f)
            messages.note(f.path, f"not listed: its process continued the run in {shorten(f.resumed)} (trainer.resume)")
    writers = Writers()
    rows, by_row = [], {}
    for f in folders:
        if f.resumed is not None:
            continue
        try:
            mine = sorted(resumers.get(os.path.realpath(f.path), []), key=lambda r: r.path.name, reverse=True)
            decide(f, messages, writers, stale, now, mine)
        except Exception as err:  # nothing crashes the table
            messages.error(f.path, f"cannot be read ({type(err).__name__}: {err}); listed as unknown")
            f.row["status"], f.row["reason"] = "unknown", f"{type(err).__name__}"
        _finish_row(f.row)
        rows.append(f.row)
        by_row[id(f.row)] = f
    return Listing(rows, by_row, messages)


def lookup(listing: Listing, row: Dict[str, Any], key: str) -> Any:
    """A column, else a config group's choice, else a config key (dotted); MISSING when none."""
    if key in row:
        return row[key]
    folder = listing.folders.get(id(row))
    if folder is None:
        return MISSING
    if key in folder.choices:
        return folder.choices[key]
    if folder.config_text is not None and not hasattr(folder, "_config"):
        value = lookup_yaml(folder.config_text, key.split("."))  # a scalar: without parsing the file
        if value is not MISSING:
            return value
    return _get(folder.config(), key)


def matches(actual: Any, wanted: str) -> bool:
    """``--where`` equality: numbers as numbers, null/true/false as YAML, lists as YAML, else text."""
    if actual is MISSING:
        return False
    if actual is None:
        return wanted.strip().lower() in ("null", "none", "~", "")
    if isinstance(actual, bool):
        return wanted.strip().lower() == str(actual).lower()
    if isinstance(actual, (int, float)):
        try:
            return float(wanted) == float(actual)
        except ValueError:
            return False
    if isinstance(actual, (list, dict)):
        try:
            return yaml.load(wanted, Loader=Loader) == actual
        except yaml.YAMLError:
            return False
    return str(actual) == wanted


def _known(listing: Listing, key: str) -> bool:
    return key in COLUMNS or key in TAIL_COLUMNS or any(lookup(listing, r, key) is not MISSING for r in listing.rows)


def select(listing: Listing, tasks: Optional[Sequence[str]] = None, statuses: Optional[Sequence[str]] = None,
           where: Sequence[Tuple[str, str]] = ()) -> List[Dict[str, Any]]:
    rows = listing.rows
    if tasks:
        rows = [r for r in rows if r.get("task") in tasks]
    if statuses:
        rows = [r for r in rows if r.get("status") in statuses]
    for key, value in where:
        rows = [r for r in rows if matches(lookup(listing, r, key), value)]
    return rows


def order(listing: Listing, rows: List[Dict[str, Any]], key: Optional[str], reverse: bool = False) -> List[Dict[str, Any]]:
    """Sorted by ``key`` (numbers before text), runs without it last; default: start, then folder."""
    if key is None:
        return sorted(rows, key=lambda r: (r.get("start") or "", r["folder"]), reverse=reverse)

    def sort_key(row):
        v = lookup(listing, row, key)
        if isinstance(v, bool):
            return (1, str(v))
        if isinstance(v, (int, float)):
            return (0, v) if not math.isnan(v) else None
        return (1, str(v)) if v is not None and v is not MISSING else None

    keyed = [(sort_key(r), r) for r in rows]
    present = sorted([p for p in keyed if p[0] is not None], key=lambda p: p[0], reverse=reverse)
    return [r for _, r in present] + [r for k, r in keyed if k is None]


# ----------------------------------------------------------------------------------- output
def columns(rows: Sequence[Dict[str, Any]]) -> List[str]:
    extra = []
    for row in rows:
        for key in row:
            if key not in COLUMNS and key not in TAIL_COLUMNS and key not in extra:
                extra.append(key)
    metric_order = {"val_": 0, "test_": 1, "baseline_test_": 2, "cv_mean_": 3}
    extra.sort(key=lambda k: next((v for p, v in metric_order.items() if k.startswith(p)), 9))
    return COLUMNS + extra + TAIL_COLUMNS


def _plain(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def to_json(rows: Sequence[Dict[str, Any]]) -> str:
    cols = columns(rows)
    return json.dumps([{c: _plain(r.get(c)) for c in cols} for r in rows], indent=2)


def to_csv(rows: Sequence[Dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns(rows), lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({c: ("" if r.get(c) is None else r.get(c)) for c in writer.fieldnames})
    return out.getvalue()


def _num(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, (int, float)) and not isinstance(value, bool) else "-"


def _duration(seconds: Any) -> str:
    if not isinstance(seconds, (int, float)):
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def _test_cell(row: Dict[str, Any]) -> str:
    """The objective's test metric and MSE, each with its baseline: 'mse 0.00995 (0.0801)'."""
    names = [row["objective"][4:] if str(row.get("objective", "")).startswith("val_") else "mse", "mse"]
    parts = []
    for name in dict.fromkeys(names):
        value = row.get(f"test_{name}")
        if value is None:
            continue
        base = row.get(f"baseline_test_{name}")
        parts.append(f"{name} {_num(value)}" + (f" ({_num(base)})" if base is not None else ""))
    return ", ".join(parts) or "-"


def table(rows: Sequence[Dict[str, Any]]) -> str:
    """The rows as an aligned text table (long overrides and reasons cut: --csv/--json have them whole)."""
    header = ["start", "config", "task", "status", "epochs", "best val", "test (baseline)", "time", "overrides",
              "folder", "reason"]
    lines = []
    for r in rows:
        objective = str(r.get("objective") or "")
        val = f"{objective[4:] if objective.startswith('val_') else objective} {_num(r.get('best_val'))}" \
            if r.get("best_val") is not None else "-"
        epochs = "-" if r.get("epochs") is None else f"{r['epochs']}/{r['epochs_planned'] if r.get('epochs_planned') is not None else '?'}"
        start = (r.get("start") or "-").replace("T", " ")[:16]
        lines.append([start, str(r.get("config") or "-"), str(r.get("task") or "-"), r.get("status") or "-", epochs,
                      val, _test_cell(r), _duration(r.get("train_seconds")), _cut(r.get("overrides") or "", 48) or "-",
                      r["folder"], _cut(r.get("reason") or "", 90)])
    widths = [max([len(header[i])] + [len(line[i]) for line in lines]) for i in range(len(header))]
    out = []
    for line in [header, *lines]:
        out.append("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip())
    return "\n".join(out)


# ---------------------------------------------------------------------------- command line
def _where(text: str) -> Tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"'{text}' is not KEY=VALUE (e.g. model.hidden_size=32)")
    return key.strip(), value


def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: '{text}'") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {n}")
    return n


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m lstm_ae.runs", description=(__doc__ or "").split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="status: finished, running, interrupted (killed: no results.json, no process writing, no write\n"
               "for --stale seconds), failed (error.txt or the log's ERROR), diverged (NaN/inf loss), pruned\n"
               "(Optuna), unknown (unreadable results). Exit status 1: a PATH missing or unreadable, or a run's\n"
               "file malformed (the rest is still listed); 2: a bad option. Details: pydoc lstm_ae.runs\n\n"
               "examples:\n"
               "  python -m lstm_ae.runs\n"
               "  python -m lstm_ae.runs multirun/toy --status finished --sort val_mse --top 5\n"
               "  python -m lstm_ae.runs --task classify --where optimizer=adamw --where model.hidden_size=128 --json")
    p.add_argument("paths", nargs="*", type=Path, metavar="PATH",
                   help="folders to search for run folders (default: outputs/ and multirun/, those that exist)")
    p.add_argument("--task", nargs="+", metavar="TASK", help="only runs of these tasks (reconstruct, classify, predict)")
    p.add_argument("--status", nargs="+", choices=STATUSES, metavar="STATUS",
                   help=f"only runs with these statuses ({', '.join(STATUSES)})")
    p.add_argument("--where", action="append", type=_where, default=[], metavar="KEY=VALUE",
                   help="only runs where a column, config key (model.hidden_size) or config group (optimizer) "
                        "has this value; repeat for several (all must hold)")
    p.add_argument("--sort", metavar="KEY", help="sort by a column (val_mse, test_accuracy, train_seconds, epochs, "
                                                   "start, ...) or config key, ascending; runs without it last "
                                                   "(default: start)")
    p.add_argument("--reverse", action="store_true", help="sort descending (e.g. --sort val_accuracy --reverse)")
    p.add_argument("--top", type=_positive, metavar="N", help="only the first N rows (after sorting)")
    p.add_argument("--csv", type=Path, metavar="FILE", help="also write every column of the rows to FILE")
    p.add_argument("--json", action="store_true", help="print the rows as JSON (every column) instead of the table")
    p.add_argument("--stale", type=float, default=STALE, metavar="SECONDS",
                   help="a run no process on this machine writes counts as running until its newest write is this "
                        "old (at least twice its longest epoch); 0: only a writing process counts "
                        "(default: %(default)g)")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """The command; returns its exit status (0, or 1 when something could not be read)."""
    p = parser()
    args = p.parse_args(argv)
    messages = Messages()
    paths = list(args.paths)
    if not paths:
        paths = [Path(d) for d in DEFAULT_PATHS if Path(d).is_dir()]
        if not paths:
            messages.error(Path.cwd(), f"neither {' nor '.join(d + '/' for d in DEFAULT_PATHS)} is here; run this from the "
                                       "project folder or name the folders to search")
    listing = collect(paths, args.stale, messages=messages)
    for key in [k for k, _ in args.where] + ([args.sort] if args.sort else []):
        if listing.rows and not _known(listing, key):
            _print_messages(messages)
            p.error(f"no run has '{key}' (a column such as val_mse or status, a config key such as "
                    "model.hidden_size, or a config group such as optimizer)")
    rows = select(listing, args.task, args.status, args.where)
    rows = order(listing, rows, args.sort, args.reverse)
    if args.top is not None:
        rows = rows[: args.top]
    if args.csv is not None:
        try:
            args.csv.parent.mkdir(parents=True, exist_ok=True)
            args.csv.write_text(to_csv(rows))
        except OSError as err:
            messages.error(args.csv, f"cannot write it ({err.strerror or err})")
    if args.json:
        print(to_json(rows))
    elif rows:
        print(table(rows))
    else:
        shown = len(listing.rows)
        print(f"no runs{f' (of {shown}) match' if shown else ' found'}")
    _print_messages(messages)
    return 1 if messages.errors else 0


def _print_messages(messages: Messages) -> None:
    for kind, text in messages.lines:
        print(f"{kind}: {text}", file=sys.stderr)


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except BrokenPipeError:  # the reader stopped early (| head): not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
