"""List the run folders below some folders in one table: status, overrides, epochs, metrics.

    python -m lstm_ae.runs                                   # every run below outputs/ and multirun/
    python -m lstm_ae.runs multirun/toy --status finished --sort val_mse --top 5
    python -m lstm_ae.runs --task classify --where model.hidden_size=128 --csv runs.csv

One row per run folder (:func:`lstm_ae.run_folder.find`). Its status, and which overrides define
it, are :mod:`lstm_ae.run_folder`'s; the row comes from the manifest (``run.json``),
``results.json`` and, for a run without results, ``metrics.csv``; a folder from before the
manifest, from ``.hydra/``. A folder whose manifest names a run it continued (``resumes``) is not
listed: that run's row shows it. Only regular files are read (a FIFO is never waited on); every
unreadable or malformed file gets one error line on stderr (exit status 1) and its run is still
listed. No torch, no pandas (``python -m bench.runs_table``); never writes into a run folder.
Columns, filters and exit statuses: docs/runs.md.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import re
import stat
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import yaml

from lstm_ae import run_folder as rf

Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
MISSING = rf.MISSING
DEFAULT_PATHS = ("outputs", "multirun")
STAMP = re.compile(r"^(\d{4})-(\d\d)-(\d\d)_(\d\d)-(\d\d)-(\d\d)")  # hydra.run.dir's ${now:...}
METRIC = re.compile(r"^(val_|test_|baseline_test_|cv_mean_)")
COLUMNS = ["folder", "config", "script", "task", "start", "status", "reason", "overrides", "epochs",
           "epochs_planned", "folds", "objective", "best_val"]
TAIL_COLUMNS = ["best_epoch", "train_seconds"]


class Messages:
    """Notes and errors, one line each, printed to stderr; an error makes the exit status 1."""

    def __init__(self) -> None:
        self.lines: List[Tuple[str, str]] = []

    def __call__(self, kind: str, where: Any, text: str) -> None:
        self.lines.append((kind, f"{shorten(where)}: {text}"))

    def error(self, where: Any, text: str) -> None:
        self("error", where, text)

    @property
    def errors(self) -> List[str]:
        return [t for k, t in self.lines if k == "error"]


def shorten(path: Any) -> str:
    """``path`` relative to the current folder when it lies below it, else as it is."""
    text, cwd = os.fspath(path), os.getcwd()
    return text[len(cwd) + 1:] if os.path.isabs(text) and text.startswith(cwd + os.sep) else os.path.normpath(text)


# --------------------------------------------------------------------------- reading files
def read_text(path: Path, messages: Messages, required: bool = False) -> Optional[str]:
    """A regular file's text; None (an error line unless it is optional and absent) otherwise. A FIFO,
    socket or device is never opened: reading one would wait forever."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            messages.error(path, "not a regular file (a FIFO, socket or device?); not read")
            return None
        with open(path, "rb") as f:
            return f.read().decode()
    except FileNotFoundError:
        if required:
            messages.error(path, "missing; its run is listed without it")
    except (OSError, UnicodeDecodeError) as err:
        messages.error(path, f"cannot be read ({getattr(err, 'strerror', None) or err}); its run is listed without it")
    return None


def read_json(path: Path, messages: Messages) -> Optional[Dict[str, Any]]:
    text = read_text(path, messages)
    try:
        data = json.loads(text) if text is not None else None
        if data is None or isinstance(data, dict):
            return data
        raise ValueError("not a JSON object")
    except ValueError as err:
        messages.error(path, f"malformed ({str(err).splitlines()[0][:80]}); its run is listed without it")
    return None


def read_yaml(path: Path, messages: Messages, required: bool = False) -> Any:
    text = read_text(path, messages, required)
    try:
        return yaml.load(text, Loader=Loader) if text is not None else None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        messages.error(path, f"malformed YAML{where} ({getattr(err, 'problem', None) or type(err).__name__}); "
                             "its run is listed without it")
    return None


@dataclass
class Metrics:
    """The complete rows of a ``metrics.csv`` (a row cut by a crash is left out)."""

    columns: List[str]
    rows: List[List[float]]

    def best(self) -> Dict[str, Any]:
        """The ``val_*`` of the row with the lowest ``val_loss`` (the first one: the trainer's best)."""
        if not self.rows or "val_loss" not in self.columns:
            return {}
        i = self.columns.index("val_loss")
        row = min(self.rows, key=lambda r: (math.isnan(r[i]), r[i]))
        out: Dict[str, Any] = {c: v for c, v in zip(self.columns, row) if c.startswith("val_")}
        out["best_epoch"] = int(row[0]) if self.columns[0] == "epoch" else None
        return out

    def seconds(self) -> List[float]:
        return [r[self.columns.index("seconds")] for r in self.rows] if "seconds" in self.columns else []


def read_metrics(path: Path, messages: Messages) -> Optional[Metrics]:
    text = read_text(path, messages)
    if text is None:
        return None
    lines = text.split("\n")
    columns = lines[0].strip("\r").split(",") if lines[0] else []
    rows, bad = [], 0
    for line in lines[1:-1]:  # the last piece follows the last newline: an unfinished row, or ""
        parts = line.strip("\r").split(",")
        try:
            if len(parts) != len(columns):
                raise ValueError
            rows.append([float(p) for p in parts])
        except ValueError:
            bad += 1
    if bad or (columns and columns[0] != "epoch"):
        messages.error(path, f"malformed: {bad} row(s) that are not {len(columns)} numbers" if bad else
                             "malformed: its header does not start with 'epoch'")
    return Metrics(columns, rows)


# ----------------------------------------------------------------------------- one run's row
@dataclass
class Run:
    path: Path
    row: Dict[str, Any]
    choices: Dict[str, Any] = field(default_factory=dict)
    resumes: Optional[str] = None  # the run this folder's process continued
    _config: Any = MISSING

    def config(self, messages: Messages) -> Any:
        if self._config is MISSING:
            self._config = read_yaml(self.path / rf.HYDRA / "config.yaml", messages)
        return self._config


def _start(path: Path, man: Dict[str, Any]) -> Optional[str]:
    match = STAMP.match(path.name)
    if match:
        y, mo, d, h, mi, s = match.groups()
        return f"{y}-{mo}-{d}T{h}:{mi}:{s}"
    if man.get("started"):
        return str(man["started"])
    try:
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime((path / rf.HYDRA).stat().st_mtime))
    except OSError:
        return None


def _legacy_manifest(run: Run, messages: Messages) -> Dict[str, Any]:
    """:func:`lstm_ae.run_folder.legacy_manifest` of the folder's ``.hydra/`` files (each malformed one named)."""
    config = run.config(messages)
    if config is not None and not isinstance(config, dict):
        messages.error(run.path / rf.HYDRA / "config.yaml", "not a mapping of config keys; its run is listed without it")
    return rf.legacy_manifest(read_yaml(run.path / rf.HYDRA / "hydra.yaml", messages, required=True),
                              read_yaml(run.path / rf.HYDRA / "overrides.yaml", messages), config)


def read_run(path: Path, messages: Messages, stale: float = rf.STALE, now: Optional[float] = None) -> Run:
    """One run folder's row (status decided by :func:`lstm_ae.run_folder.status`)."""
    man = read_json(path / rf.MANIFEST, messages) if os.path.lexists(path / rf.MANIFEST) else None
    run = Run(path, {})
    info = man if man is not None else _legacy_manifest(run, messages)
    run.choices, run.resumes = dict(info.get("choices") or {}), info.get("resumes")
    folds = info.get("folds")
    folds = folds if isinstance(folds, int) and not isinstance(folds, bool) and folds > 1 else None
    try:
        fold_dirs = sorted((p for p in path.glob("fold_*") if p.is_dir()), key=lambda p: (len(p.name), p.name))
    except OSError:
        fold_dirs = []
    row = run.row
    row.update(folder=shorten(path), config=info.get("config"), script=info.get("script"), task=info.get("task"),
               start=_start(path, info), status=None, reason="", overrides=" ".join(info.get("overrides") or []),
               epochs=None, epochs_planned=info.get("epochs_planned"),
               folds=f"{len(fold_dirs)}/{folds}" if folds else None,
               objective=info.get("objective") or "val_mse", best_val=None)
    state = rf.status(path, man, stale, now)
    row["status"], row["reason"] = state.status, state.reason
    mode = info.get("objective_mode") or "min"
    readable = state.status == "finished" or (state.status == "unknown" and os.path.lexists(path / rf.RESULTS))
    results = read_json(path / rf.RESULTS, messages) if readable else None
    if results is not None:
        row["objective"] = results.get("objective") or row["objective"]
        row.update({k: v for k, v in results.items()
                    if METRIC.match(k) and isinstance(v, (int, float)) and not isinstance(v, bool)})
        row.update(epochs=results.get("epochs_run"), best_epoch=results.get("best_epoch"),
                   train_seconds=results.get("train_seconds"))
    else:
        if readable:
            row["status"], row["reason"] = "unknown", f"{rf.RESULTS} unreadable"
        _progress(row, [path, *fold_dirs] if not fold_dirs else fold_dirs, mode, messages)
    if row.get("best_val") is None:
        row["best_val"] = row.get(row["objective"])
    if isinstance(row.get("train_seconds"), (int, float)):
        row["train_seconds"] = round(float(row["train_seconds"]), 2)
    return run


def _progress(row: Dict[str, Any], folders: List[Path], mode: str, messages: Messages) -> None:
    """Epochs, the best validation metrics so far and the training time of a run without results,
    from its ``metrics.csv`` (cross-validation: each fold's; epochs: the fold in progress)."""
    found = [m for f in folders if os.path.lexists(f / rf.METRICS) and (m := read_metrics(f / rf.METRICS, messages))]
    row["epochs"] = len(found[-1].rows) if found else 0
    sign = -1 if mode == "max" else 1
    best = [b for m in found if row["objective"] in (b := m.best())]
    if best:
        top = min(best, key=lambda b: (math.isnan(b[row["objective"]]), sign * b[row["objective"]]))
        row.update(top)
    seconds = [s for m in found for s in m.seconds()]
    row["train_seconds"] = sum(seconds) if seconds else None


def collect(paths: Sequence[Path], stale: float = rf.STALE, now: Optional[float] = None,
            messages: Optional[Messages] = None) -> "Listing":
    """One row per run folder below ``paths`` (unsorted, unfiltered)."""
    messages = messages if messages is not None else Messages()
    listed: List[Run] = []
    for path in rf.find(paths, messages):
        try:
            run = read_run(path, messages, stale, now)
        except Exception as err:  # noqa: BLE001 - nothing crashes the table
            messages.error(path, f"cannot be read ({type(err).__name__}: {err}); skipped")
            continue
        if run.resumes:
            messages("note", path, f"not listed: its process continued the run in {shorten(run.resumes)} (trainer.resume)")
            continue
        listed.append(run)
    return Listing([r.row for r in listed], {id(r.row): r for r in listed}, messages)


# ------------------------------------------------------------------------------- the listing
@dataclass
class Listing:
    rows: List[Dict[str, Any]]
    runs: Dict[int, Run]  # id(row) -> its run (group choices and config for --where/--sort)
    messages: Messages

    def lookup(self, row: Dict[str, Any], key: str) -> Any:
        """A column, else a config group's choice, else a config key (dotted); MISSING when none."""
        if key in row:
            return row[key]
        run = self.runs.get(id(row))
        if run is None:
            return MISSING
        if key in run.choices:
            return run.choices[key]
        return rf.get(run.config(self.messages), key, MISSING)


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


def select(listing: Listing, tasks: Optional[Sequence[str]] = None, statuses: Optional[Sequence[str]] = None,
           where: Sequence[Tuple[str, str]] = ()) -> List[Dict[str, Any]]:
    rows = [r for r in listing.rows if (not tasks or r.get("task") in tasks)
            and (not statuses or r.get("status") in statuses)]
    for key, value in where:
        rows = [r for r in rows if matches(listing.lookup(r, key), value)]
    return rows


def order(listing: Listing, rows: List[Dict[str, Any]], key: Optional[str], reverse: bool = False) -> List[Dict[str, Any]]:
    """Sorted by ``key`` (numbers before text), runs without it last; default: start, then folder."""
    if key is None:
        return sorted(rows, key=lambda r: (r.get("start") or "", r["folder"]), reverse=reverse)

    def sort_key(row: Dict[str, Any]) -> Any:
        v = listing.lookup(row, key)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return (0, v) if not math.isnan(v) else None
        return (1, str(v)) if v is not None and v is not MISSING else None

    keyed = [(sort_key(r), r) for r in rows]
    present = sorted([p for p in keyed if p[0] is not None], key=lambda p: p[0], reverse=reverse)
    return [r for _, r in present] + [r for k, r in keyed if k is None]


# ----------------------------------------------------------------------------------- output
def columns(rows: Sequence[Dict[str, Any]]) -> List[str]:
    extra = list(dict.fromkeys(k for row in rows for k in row if k not in COLUMNS and k not in TAIL_COLUMNS))
    rank = {"val_": 0, "test_": 1, "baseline_test_": 2, "cv_mean_": 3}
    extra.sort(key=lambda k: next((v for p, v in rank.items() if k.startswith(p)), 9))
    return COLUMNS + extra + TAIL_COLUMNS


def to_json(rows: Sequence[Dict[str, Any]]) -> str:
    cols = columns(rows)
    return json.dumps([{c: rf.finite(r.get(c)) for c in cols} for r in rows], indent=2)


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
        value, base = row.get(f"test_{name}"), row.get(f"baseline_test_{name}")
        if value is not None:
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
        planned = r["epochs_planned"] if r.get("epochs_planned") is not None else "?"
        epochs = "-" if r.get("epochs") is None else f"{r['epochs']}/{planned}"
        lines.append([(r.get("start") or "-").replace("T", " ")[:16], str(r.get("config") or "-"),
                      str(r.get("task") or "-"), r.get("status") or "-", epochs, val, _test_cell(r),
                      _duration(r.get("train_seconds")), _cut(r.get("overrides") or "", 48) or "-", r["folder"],
                      _cut(r.get("reason") or "", 90)])
    widths = [max([len(header[i])] + [len(line[i]) for line in lines]) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in [header, *lines])


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
        epilog="status (lstm_ae.run_folder): running (a process holds run.lock), else the end state in run.json:\n"
               "finished, pruned, failed, diverged (NaN/inf loss), interrupted (SIGTERM, Ctrl-C, or killed without a\n"
               "word); unknown (unreadable results). Exit status 1: a PATH or a run's file unreadable or malformed\n"
               "(the rest is still listed); 2: a bad option. Details: docs/runs.md\n\nexamples:\n"
               "  python -m lstm_ae.runs multirun/toy --status finished --sort val_mse --top 5\n"
               "  python -m lstm_ae.runs --task classify --where optimizer=adamw --where model.hidden_size=128 --json")
    add = p.add_argument
    add("paths", nargs="*", type=Path, metavar="PATH",
        help="folders to search for run folders (default: outputs/ and multirun/, those that exist)")
    add("--task", nargs="+", metavar="TASK", help="only runs of these tasks (reconstruct, classify, predict)")
    add("--status", nargs="+", choices=rf.STATUSES, metavar="STATUS", help=f"only these ({', '.join(rf.STATUSES)})")
    add("--where", action="append", type=_where, default=[], metavar="KEY=VALUE",
        help="only runs where a column, config key (model.hidden_size) or config group (optimizer) has this value; "
             "repeat for several (all must hold)")
    add("--sort", metavar="KEY", help="sort by a column (val_mse, test_accuracy, epochs, start, ...) or config key, "
                                      "ascending; runs without it last (default: start)")
    add("--reverse", action="store_true", help="sort descending (e.g. --sort val_accuracy --reverse)")
    add("--top", type=_positive, metavar="N", help="only the first N rows (after sorting)")
    add("--csv", type=Path, metavar="FILE", help="also write every column of the rows to FILE")
    add("--json", action="store_true", help="print the rows as JSON (every column) instead of the table")
    add("--stale", type=float, default=rf.STALE, metavar="SECONDS",
        help="a folder from before run.json counts as running while written this recently (default: %(default)g)")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """The command; returns its exit status (0, or 1 when something could not be read)."""
    p = parser()
    args = p.parse_args(argv)
    messages = Messages()
    paths = list(args.paths) or [Path(d) for d in DEFAULT_PATHS if Path(d).is_dir()]
    if not paths:
        messages.error(Path.cwd(), f"neither {' nor '.join(d + '/' for d in DEFAULT_PATHS)} is here; run this from "
                                   "the project folder or name the folders to search")
    listing = collect(paths, args.stale, messages=messages)
    for key in [k for k, _ in args.where] + ([args.sort] if args.sort else []):
        known = key in COLUMNS or key in TAIL_COLUMNS or any(listing.lookup(r, key) is not MISSING for r in listing.rows)
        if listing.rows and not known:
            _print_messages(messages)
            p.error(f"no run has '{key}' (a column such as val_mse or status, a config key such as "
                    "model.hidden_size, or a config group such as optimizer)")
    rows = order(listing, select(listing, args.task, args.status, args.where), args.sort, args.reverse)
    rows = rows[: args.top] if args.top is not None else rows
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
        print(f"no runs{f' (of {len(listing.rows)}) match' if listing.rows else ' found'}")
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
