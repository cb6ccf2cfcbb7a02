"""A user's own series from CSV files (``dataset=csv``): read, checked, windowed like S&P 500.

Files: ``path`` is a ``.csv`` / ``.csv.gz`` file, a folder (every such file in it) or a glob,
absolute or relative to the current folder, else to ``root``. Every file has a header line.

Layouts (``layout``):

- ``long`` (default): one row per time step of a series; the value columns are the features m of
  every series (one value column: m = 1). Without ``id_column`` a file holds one series, named
  after the file; with it, one series per id (named by the id; ``<file>/<id>`` when several files).
- ``wide``: one row per time step; each value column is a series of its own (m = 1), named after
  the column (``<file>/<column>`` when several files). A column's empty cells before its first and
  after its last value are not part of it (a series that starts later or ends earlier).

``time_column`` (null: the first column) holds dates or numbers; rows are steps in the order of
time (gaps in time are not filled: a window is ``seq_len`` rows). ``value_columns`` null takes every
other column (but id and label) that holds a number. ``label_column``: a 0/1 label per step,
kept in ``Split.step_labels`` for evaluation, never an input.

Checked, each told in one line naming the file, the line (1-based as in an editor, the header is
line 1) and the column, with the fix: a missing named column, no file found, a bad time or label,
a non-numeric value, a missing value (unless ``fill`` says how to fill it), rows out of time order
(unless ``sort=true``), a time twice in one series (unless ``duplicates`` says which row to keep or to
average them), a series shorter than one window.

Splits (``split_by``): ``time`` cuts each series chronologically, the last ``test_fraction`` of its
rows for testing, the last ``val_fraction`` of the rest for validation; each part is windowed on its
own, so no window (nor its next value) crosses a cut. ``series`` holds whole series out (seeded, as
S&P holds out stocks; ``task.folds`` cross-validates by series). Windows and scaling:
:mod:`lstm_ae.data.windows` (``scaling=window``: each window by its own min and max, as S&P;
``train``: min-max per feature fitted on the training rows only).
"""
from __future__ import annotations

import glob
import gzip
import logging
import zlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd
import torch

from lstm_ae.config import CsvLayout, Duplicates, Fill, Scaling, SplitBy
from lstm_ae.data import Split, Splits, default_root
from lstm_ae.data.windows import MinMax, make_split, split_groups, time_split_sizes
from lstm_ae.errors import ConfigError, DataError

log = logging.getLogger("lstm_ae")

NA = ["", "NA", "N/A", "NaN", "nan", "null", "NULL"]  # cells that mark a missing value
SUFFIXES = (".csv", ".csv.gz")
FILL_HINT = "fill the cell, or set dataset.fill=ffill|interpolate|zero"


@dataclass
class Series:
    """One series as read: its rows in file order (sorted by time once checked)."""

    name: str
    file: Path
    time_column: str
    columns: List[str]  # the value column of each of the m features
    time: np.ndarray  # (n,) datetime64[ns] or float64
    time_text: np.ndarray  # (n,) the time cells as written (for messages)
    values: np.ndarray  # (n, m) float64, NaN where missing
    lines: np.ndarray  # (n,) the 1-based line of each row in its file
    labels: Optional[np.ndarray] = None  # (n,) int64 0/1

    def __getitem__(self, rows) -> "Series":
        cut = lambda a: None if a is None else a[rows]  # noqa: E731
        return replace(self, time=self.time[rows], time_text=self.time_text[rows], values=self.values[rows],
                       lines=self.lines[rows], labels=cut(self.labels))


# ----------------------------------------------------------------------------- files
def find_files(path: Optional[str], root: Optional[str] = None) -> List[Path]:
    """The CSV files ``path`` names: a file, a folder (its .csv/.csv.gz files) or a glob; relative
    paths are looked up in the current folder, then under ``root``."""
    if not path:
        raise ConfigError("dataset.path is not set: name a .csv/.csv.gz file, a folder or a glob, "
                          "e.g. python lstm_ae_series.py dataset.path=my.csv")
    base = Path(root or default_root()).expanduser()
    given = Path(path).expanduser()
    places = [given] if given.is_absolute() else [given, base / given]
    for place in places:
        if any(c in str(place) for c in "*?["):
            found = sorted(Path(p) for p in glob.glob(str(place)) if Path(p).is_file())
        elif place.is_dir():
            found = sorted(p for p in place.iterdir() if p.is_file() and p.name.endswith(SUFFIXES))
        else:
            found = [place] if place.is_file() else []
        if found:
            return found
    where = " or ".join(str(p) for p in places)
    raise DataError(f"dataset.path={path}: no .csv/.csv.gz file found (looked for {where}); give a file, a folder "
                    "or a glob, absolute or relative to dataset.root (or LSTM_AE_DATA)")


def read_table(file: Path) -> pd.DataFrame:
    """Every cell as text (missing: NaN); DataError when the file cannot be read as a CSV with rows."""
    try:
        df = pd.read_csv(file, dtype=str, keep_default_na=False, na_values=NA)
    except pd.errors.EmptyDataError:
        raise DataError(f"{file} is empty; a CSV needs a header line and rows") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, EOFError, zlib.error, gzip.BadGzipFile) as err:
        raise DataError(f"{file} is not a readable CSV ({type(err).__name__}: {err})") from None
    if df.empty:
        raise DataError(f"{file} has a header but no rows")
    df.columns = [str(c) for c in df.columns]
    return df


def _line(i: int) -> int:
    return i + 2  # row 0 is on line 2, after the header


def parse_time(df: pd.DataFrame, column: str, file: Path) -> Tuple[np.ndarray, str]:
    """The time column as numbers (float64) or dates (datetime64): (values, "numbers" | "dates")."""
    text = df[column]
    if text.isna().any():
        i = int(np.flatnonzero(text.isna())[0])
        raise DataError(f"{file}: line {_line(i)}, column {column}: the time is missing; every row needs its time")
    numbers = pd.to_numeric(text, errors="coerce")
    if numbers.notna().all():
        return numbers.to_numpy(dtype=float), "numbers"
    dates = pd.to_datetime(text, errors="coerce")
    if dates.isna().any():
        i = int(np.flatnonzero(dates.isna())[0])
        raise DataError(f"{file}: line {_line(i)}, column {column}: {text.iat[i]!r} is not a date or a number; "
                        "correct the cell (dates as e.g. 2024-01-31), or set dataset.time_column")
    return dates.to_numpy(dtype="datetime64[ns]"), "dates"


def parse_values(df: pd.DataFrame, column: str, file: Path) -> np.ndarray:
    """A value column as float64 (NaN where the cell is empty); DataError at the first non-number."""
    text = df[column]
    values = pd.to_numeric(text, errors="coerce").to_numpy(dtype=float)
    bad = np.flatnonzero((np.isnan(values) & text.notna().to_numpy()) | np.isinf(values))
    if len(bad):
        i = int(bad[0])
        raise DataError(f"{file}: line {_line(i)}, column {column}: {text.iat[i]!r} is not a finite number; correct "
                        "the cell, empty it to mark it missing, or leave the column out with dataset.value_columns=[...]")
    return values


def parse_labels(df: pd.DataFrame, column: str, file: Path) -> np.ndarray:
    text = df[column]
    values = pd.to_numeric(text, errors="coerce").to_numpy(dtype=float)
    bad = np.flatnonzero(~np.isin(values, [0.0, 1.0]))
    if len(bad):
        i = int(bad[0])
        raise DataError(f"{file}: line {_line(i)}, column {column}: {text.iat[i]!r} is not a label 0 or 1 "
                        "(dataset.label_column); every row needs one")
    return values.astype(np.int64)


def stem(file: Path) -> str:
    """The file's name without .csv / .csv.gz."""
    return file.name.removesuffix(".gz").removesuffix(".csv")


def _holds_numbers(text: pd.Series) -> bool:
    return bool(pd.to_numeric(text, errors="coerce").notna().any())


def read_series(file: Path, layout: CsvLayout, time_column: Optional[str], value_columns: Optional[Sequence[str]],
                id_column: Optional[str], label_column: Optional[str], prefix: str) -> Tuple[List[Series], List[str], str]:
    """The series of one file: (series, value column names, "numbers" | "dates")."""
    df = read_table(file)
    time_column = time_column or df.columns[0]
    named = {"dataset.time_column": [time_column], "dataset.id_column": [id_column] if id_column else [],
             "dataset.label_column": [label_column] if label_column else [],
             "dataset.value_columns": list(value_columns or [])}
    for key, columns in named.items():
        missing = [c for c in columns if c not in df.columns]
        if missing:
            raise DataError(f"{file} has no column {', '.join(missing)} (named by {key}); its header: "
                            f"{','.join(df.columns)}")
    reserved = {time_column, id_column, label_column}
    if value_columns is None:
        value_columns = [c for c in df.columns if c not in reserved and _holds_numbers(df[c])]
        if not value_columns:
            raise DataError(f"{file}: no column besides the time, id and label holds a number; name the value "
                            "columns with dataset.value_columns=[...]")
    elif reserved & set(value_columns):
        raise ConfigError(f"dataset.value_columns={list(value_columns)} names the time, id or label column")
    time, kind = parse_time(df, time_column, file)
    text = df[time_column].to_numpy(dtype=object)
    values = np.stack([parse_values(df, c, file) for c in value_columns], axis=1)
    labels = parse_labels(df, label_column, file) if label_column else None
    lines = np.arange(len(df)) + 2
    whole = Series("", file, time_column, list(value_columns), time, text, values, lines, labels)
    if layout is CsvLayout.wide:
        out = []
        for j, column in enumerate(value_columns):
            present = np.flatnonzero(~np.isnan(values[:, j]))
            if not len(present):
                raise DataError(f"{file}: column {column} holds no value; leave it out with dataset.value_columns=[...]")
            rows = slice(present[0], present[-1] + 1)  # empty cells before the first / after the last value: not in it
            s = whole[rows]
            out.append(replace(s, name=prefix + column, columns=[column], values=s.values[:, j : j + 1]))
        return out, list(value_columns), kind
    if id_column is None:
        return [replace(whole, name=stem(file))], list(value_columns), kind
    ids = df[id_column]
    if ids.isna().any():
        i = int(np.flatnonzero(ids.isna())[0])
        raise DataError(f"{file}: line {_line(i)}, column {id_column}: the series id is missing (dataset.id_column)")
    out = [replace(whole[np.flatnonzero(ids.to_numpy() == key)], name=prefix + str(key)) for key in sorted(ids.unique())]
    return out, list(value_columns), kind


# ------------------------------------------------------------------------------ checks
def in_time_order(s: Series, sort: bool, duplicates: Optional[Duplicates] = None) -> Series:
    """The series with its rows in time order: refused (unless ``sort``) when they are not; a time twice is
    refused unless ``duplicates`` says which row to keep (``first``, ``last``) or to average them (``mean``)."""
    if sort:
        s = s[np.argsort(s.time, kind="stable")]
    back = np.flatnonzero(s.time[1:] < s.time[:-1])
    if len(back):
        i = int(back[0]) + 1
        raise DataError(f"{s.file}: line {s.lines[i]}, column {s.time_column}: {s.time_text[i]!r} of series {s.name} comes before "
                        f"line {s.lines[i - 1]}'s {s.time_text[i - 1]!r}; sort the rows by time, or set dataset.sort=true")
    same = np.flatnonzero(s.time[1:] == s.time[:-1])
    if not len(same):
        return s
    if duplicates is None:
        i = int(same[0]) + 1
        raise DataError(f"{s.file}: line {s.lines[i]}, column {s.time_column}: time {s.time_text[i]!r} of series {s.name} "
                        f"again (first at line {s.lines[i - 1]}); keep one row per time step of a series, set "
                        "dataset.duplicates=first|last|mean, or (several series in one file) dataset.id_column or "
                        "dataset.layout=wide")
    new = np.r_[True, s.time[1:] != s.time[:-1]]  # the first row of each time
    firsts = np.flatnonzero(new)
    if duplicates is Duplicates.first:
        return s[firsts]
    if duplicates is Duplicates.last:
        return s[np.r_[firsts[1:] - 1, len(s.time) - 1]]
    group = np.cumsum(new) - 1
    merged = s[firsts]
    values = pd.DataFrame(s.values).groupby(group).mean().to_numpy()  # missing values left out of each mean
    labels = None if s.labels is None else pd.Series(s.labels).groupby(group).max().to_numpy()
    return replace(merged, values=values, labels=labels)


def filled(s: Series, fill: Optional[Fill]) -> Series:
    """The series with its missing values filled as ``fill`` says; refused in one line when it says nothing."""
    gaps = np.isnan(s.values)
    if not gaps.any():
        return s
    row, col = (int(a[0]) for a in np.nonzero(gaps))
    where = f"{s.file}: line {s.lines[row]}, column {s.columns[col]}"
    empty = np.flatnonzero(gaps.all(axis=0))
    if len(empty):
        raise DataError(f"{s.file}: series {s.name} has no value in column {s.columns[int(empty[0])]}; leave the column "
                        "out with dataset.value_columns=[...]")
    if fill is None:
        raise DataError(f"{where}: missing value (series {s.name}); {FILL_HINT}")
    table = pd.DataFrame(s.values)
    if fill is Fill.ffill:
        table = table.ffill()
        if table.isna().any().any():
            raise DataError(f"{where}: series {s.name} starts with a missing value, which dataset.fill=ffill cannot "
                            "fill (nothing before it); fill the cell, or use dataset.fill=interpolate|zero")
    elif fill is Fill.interpolate:
        table = table.interpolate(method="linear", limit_direction="both")
    else:
        table = table.fillna(0.0)
    return replace(s, values=table.to_numpy(dtype=float))


# ------------------------------------------------------------------------------ loader
def load_csv(
    path: Optional[str] = None,
    root: Optional[str] = None,
    layout: CsvLayout | str = CsvLayout.long,
    time_column: Optional[str] = None,
    value_columns: Optional[Sequence[str]] = None,
    id_column: Optional[str] = None,
    label_column: Optional[str] = None,
    seq_len: int = 50,
    stride: Optional[int] = None,
    scaling: Scaling | str = Scaling.window,
    split_by: SplitBy | str = SplitBy.time,
    test_fraction: float = 0.2,
    val_fraction: float = 0.2,
    fill: Optional[Fill | str] = None,
    sort: bool = False,
    duplicates: Optional[Duplicates | str] = None,
    unit: Optional[str] = None,
    plot_series: Optional[Sequence[str]] = None,
    seed: int = 0,
) -> Splits:
    """Windows of the series in the CSV files of ``path``, split and scaled (see the module docstring).

    ``x``: (N, seq_len, m); ``next_value``: (N, m) the row after each window; ``group`` the series
    (``group_names``), ``start`` its first step on the series' own rows; ``offset``/``scale`` back to
    data units (per window; with ``scaling=train``, only with one feature); ``step_labels`` (N, seq_len)
    with ``label_column``. When every series has the same dates: ``dates`` (figures on a date axis),
    ``overview`` (``plot_series``) and, split by series and scaled per window, the test series in
    data units (``series``: multi-step forecasts of task=predict).
    """
    layout, scaling, split_by = CsvLayout(layout), Scaling(scaling), SplitBy(split_by)
    fill = None if fill is None else Fill(getattr(fill, "value", fill))
    value_columns = None if value_columns is None else list(value_columns)
    if layout is CsvLayout.wide and id_column:
        raise ConfigError("dataset.id_column is for dataset.layout=long; a wide file holds one series per value "
                          "column: set dataset.id_column=null, or dataset.layout=long")
    stride = stride or seq_len
    files = find_files(path, root)
    many = len(files) > 1
    series: List[Series] = []
    columns: Optional[List[str]] = None
    kinds = set()
    for file in files:
        prefix = stem(file) + "/" if many else ""
        found, names, kind = read_series(file, layout, time_column, value_columns, id_column, label_column, prefix)
        if layout is CsvLayout.long and columns is not None and names != columns:
            raise DataError(f"{file} has the value columns {','.join(names)}, {files[0]} has {','.join(columns)}; "
                            "every file of a long layout needs the same features: name them with dataset.value_columns=[...]")
        columns = columns or names
        kinds.add(kind)
        series += found
    if len(kinds) > 1:
        raise DataError(f"the files of dataset.path={path} mix dates and numbers in their time columns; use one kind")
    names = [s.name for s in series]
    if len(set(names)) < len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise DataError(f"series name(s) {', '.join(twice)} occur twice (files {', '.join(map(str, files))}); "
                        "rename the files or columns")
    duplicates = None if duplicates is None else Duplicates(getattr(duplicates, "value", duplicates))
    series = sorted((filled(in_time_order(s, sort, duplicates), fill) for s in series), key=lambda s: s.name)
    for s in series:
        if len(s.values) < seq_len + 1:
            raise DataError(f"{s.file}: series {s.name} has {len(s.values)} rows (lines {s.lines.min()}-{s.lines.max()}), "
                            f"fewer than one window of dataset.seq_len={seq_len} and its next value ({seq_len + 1}); "
                            "lower dataset.seq_len, or give the series more rows")
    m = series[0].values.shape[1]
    if unit is not None and scaling is Scaling.train and m > 1:
        raise ConfigError(f"dataset.unit={unit} with dataset.scaling=train needs one value column (each of the {m} "
                          "features has its own scale); use dataset.scaling=window, one value column, or dataset.unit=null")
    names = [s.name for s in series]
    by_name = {s.name: s for s in series}
    if split_by is SplitBy.series:
        if len(series) < 3:
            raise ConfigError(f"dataset.split_by=series holds out whole series, and the data has {len(series)}; "
                              "it needs >= 3: use dataset.split_by=time")
        parts = split_groups(names, test_fraction, val_fraction, seed)
        order = parts["val"] + parts["train"] + parts["test"]  # group ids: train+val first, in seeded order
        pieces = {p: [(by_name[n], 0) for n in sorted(parts[p])] for p in ("train", "val", "test")}
    else:
        order = [names[i] for i in np.random.default_rng(seed).permutation(len(names))]
        pieces = {"train": [], "val": [], "test": []}
        for s in series:
            n = len(s.values)
            n_train, n_val, n_test = time_split_sizes(n, test_fraction, val_fraction)
            if min(n_train, n_val, n_test) < seq_len + 1:
                raise DataError(
                    f"{s.file}: series {s.name} has {n} rows; split by time (dataset.test_fraction={test_fraction}, "
                    f"dataset.val_fraction={val_fraction}) its train/val/test parts have {n_train}/{n_val}/{n_test} "
                    f"rows, and each needs dataset.seq_len + 1 = {seq_len + 1}; lower dataset.seq_len, give it more "
                    "rows, or hold out whole series (dataset.split_by=series)")
            pieces["train"].append((s[:n_train], 0))
            pieces["val"].append((s[n_train : n_train + n_val], n_train))
            pieces["test"].append((s[n_train + n_val :], n_train + n_val))
    ids = {name: i for i, name in enumerate(order)}
    scaler = None
    if scaling is Scaling.train:  # fitted on the training rows, and on nothing else
        scaler = MinMax.fit(torch.tensor(np.concatenate([s.values for s, _ in pieces["train"]])))
    out: Dict[str, Split] = {}
    for part, items in pieces.items():
        out[part] = make_split(
            [torch.tensor(s.values) for s, _ in items], [ids[s.name] for s, _ in items], seq_len, stride,
            first_steps=[first for _, first in items], scaler=scaler,
            step_labels=[torch.tensor(s.labels) for s, _ in items] if label_column else None)
    in_units = out["train"].offset is not None
    common = kinds == {"dates"} and all(np.array_equal(s.time, series[0].time) for s in series)
    dates = pd.DatetimeIndex(series[0].time) if common and in_units else None
    shown = names[:2] if plot_series is None else list(plot_series)
    unknown = [n for n in shown if n not in by_name]
    if unknown:
        raise DataError(f"dataset.plot_series names {', '.join(unknown)}, not a series of the data (it has "
                        f"{len(names)}, e.g. {', '.join(names[:5])}); name others, or [] to draw none")
    overview = pd.DataFrame({n: by_name[n].values[:, 0] for n in shown}, index=dates) if dates is not None else None
    test_series = test_names = None
    if dates is not None and split_by is SplitBy.series and scaling is Scaling.window:
        test_names = sorted(parts["test"])
        test_series = torch.tensor(np.stack([by_name[n].values for n in test_names]), dtype=torch.float64)
    log.info("dataset=csv: %d file(s), %d series of %d feature(s) (%s), split by %s, scaled by %s",
             len(files), len(series), m, ", ".join(columns) if layout is CsvLayout.long else "one value column each",
             split_by.value, scaling.value)
    return Splits(out["train"], out["val"], out["test"], group_names=order, dates=dates, unit=unit,
                  value_name=columns[0] if layout is CsvLayout.long else "value", series=test_series,
                  series_names=test_names, overview=overview, scaler=scaler,
                  feature_names=columns if layout is CsvLayout.long else None)


# ------------------------------------------------------------------ new data (lstm_ae.apply)
def read_for_run(paths: Sequence[str], ds, features: int, seq_len: int, root: Optional[str] = None,
                 drop_missing: bool = False) -> Tuple[List[Series], List[str], List[Path]]:
    """The series of new files read with a run's own dataset settings, for inference: (series sorted by
    name, the feature names, the files read). Training's loader (:func:`load_csv`) is not involved.

    ``ds``: the run's ``cfg.dataset`` (layout, time_column, value_columns, id_column, label_column,
    fill, sort); ``paths``: files, folders or globs (:func:`find_files`, relative to the current
    folder, else ``root``). The label column is read where a file has it (new data may have none).
    ``drop_missing`` drops rows with a missing value instead of filling them (S&P: a day without a price).
    Refused in one line, before anything is written: a file the run's columns are not in, another number
    of value columns than the run's ``features`` (long layout), a series shorter than ``seq_len`` (one window).
    """
    layout = CsvLayout(getattr(ds.get("layout"), "value", ds.get("layout") or "long"))
    fill = ds.get("fill")
    fill = None if fill is None else Fill(getattr(fill, "value", fill))
    value_columns = ds.get("value_columns")
    value_columns = None if value_columns is None else [str(c) for c in value_columns]
    label_column = ds.get("label_column")
    files = [f for p in paths for f in find_files(str(p), root)]
    many = len(files) > 1
    series: List[Series] = []
    columns: Optional[List[str]] = None
    for file in files:
        try:
            header = list(pd.read_csv(file, nrows=0).columns)
        except Exception:  # noqa: BLE001 - read_table below says what is wrong with the file
            header = []
        label = label_column if label_column in header else None
        prefix = stem(file) + "/" if many else ""
        found, names, _ = read_series(file, layout, ds.get("time_column"), value_columns, ds.get("id_column"),
                                      label, prefix)
        if layout is CsvLayout.long and len(names) != features:
            raise DataError(f"{file} has {len(names)} value column(s) ({','.join(names)}), the run reads {features} "
                            "per time step; give data with the run's value columns (its dataset.value_columns)")
        if layout is CsvLayout.long and columns is not None and names != columns:
            raise DataError(f"{file} has the value columns {','.join(names)}, {files[0]} has {','.join(columns)}; "
                            "give files with the same value columns")
        columns = columns or names
        series += found
    names = [s.name for s in series]
    if len(set(names)) < len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise DataError(f"series name(s) {', '.join(twice)} occur twice (files {', '.join(map(str, files))}); "
                        "rename the files or columns")
    out = []
    for s in series:
        dup = ds.get("duplicates")
        s = in_time_order(s, bool(ds.get("sort", False)), None if dup is None else Duplicates(getattr(dup, "value", dup)))
        s = s[~np.isnan(s.values).any(axis=1)] if drop_missing else filled(s, fill)
        if len(s.values) < seq_len:
            where = f" (lines {s.lines.min()}-{s.lines.max()})" if len(s.values) else ""
            raise DataError(f"{s.file}: series {s.name} has {len(s.values)} rows{where}, fewer than one window of the "
                            f"run's seq_len={seq_len}; give it at least {seq_len} rows")
        out.append(s)
    feature_names = list(columns) if layout is CsvLayout.long else ["value"]
    return sorted(out, key=lambda s: s.name), feature_names, files
