"""S&P 500 daily prices 2014-2017 (the Kaggle file "SP 500 Stock Prices 2014-2017.csv").

The file is read from ``<root>/sp500/sp500_2014_2017.csv.gz`` (the layout of this project's
shared data), or any ``.csv`` / ``.csv.gz`` given as ``path``; when it is absent and
``kagglehub`` is installed with a network, the Kaggle dataset is downloaded.

:func:`load_sp500` turns the table into sequences, leak-free:

- only stocks with a price on every trading day are kept (equal lengths);
- stocks, not windows, are split: a seeded share of the stocks is held out for testing, the rest
  go to training/validation (or, by group, to cross-validation folds: ``lstm_ae.data.group_folds``),
  so no two parts share a stock or an overlapping window;
- each stock's series is cut into windows of ``seq_len`` days (every ``stride`` days), and each
  window is min-max scaled with the min and max of **its own days only** -- the days the model
  reads. The day after the window (the one-step target of the last position, ``next_value``) is
  scaled with the same numbers and never enters them, so it may fall outside [0, 1].
  (Windows and scaling: :mod:`lstm_ae.data.windows`, shared with ``dataset=csv``; S&P is a preset of it.)

A time step holds the day's ``price`` (channel 0: the series drawn, reconstructed in USD and
forecast) and, with ``extra_prices``, more of the same day's prices (e.g. open, low, close: m = 4).
They share one scaling per window (the min and max over all its prices), so USD = scaled * scale +
offset holds for every channel and a close below the high stays below it.
"""
from __future__ import annotations

import functools
import gzip
import zlib
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import pandas as pd
import torch

from lstm_ae.config import Price
from lstm_ae.data import Split, Splits, default_root
from lstm_ae.data.windows import make_split, scale_windows, split_groups, window_starts  # noqa: F401 (S&P's names)
from lstm_ae.errors import ConfigError, DataError

KAGGLE_DATASET = "gauravmehta13/sp-500-stock-prices"
KAGGLE_FILE = "SP 500 Stock Prices 2014-2017.csv"
COLUMNS = ["symbol", "date", "open", "high", "low", "close", "volume"]
PRICES = [p.value for p in Price]
CANDIDATES = ["sp500/sp500_2014_2017.csv.gz", "sp500/sp500_2014_2017.csv", f"sp500/{KAGGLE_FILE}", KAGGLE_FILE]
HOW_TO_FIX = (
    f"put the Kaggle file '{KAGGLE_FILE}' (or a .csv.gz of it) at <root>/sp500/, set dataset.root "
    "(or LSTM_AE_DATA) to its folder, or set dataset.path to the file"
)
FIX_CELL = "correct the cell, or empty it to mark the value missing (a stock missing a price the run reads is left out)"


def locate(root: Optional[str] = None, path: Optional[str] = None, download: bool = False) -> Path:
    """The CSV to read: ``path`` (absolute, or relative to ``root``), else the usual names under ``root``."""
    base = Path(root or default_root()).expanduser()
    if path:
        given = Path(path).expanduser()
        candidates = [given] if given.is_absolute() else [given, base / given]
    else:
        candidates = [base / name for name in CANDIDATES]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    if download:
        return _download()
    raise DataError(f"S&P 500 file not found (looked for {candidates[0]}); {HOW_TO_FIX}")


def _download() -> Path:
    try:
        import kagglehub  # optional: pip install kagglehub
    except ImportError:
        raise DataError(f"dataset.download=true needs the kagglehub package (pip install kagglehub); or {HOW_TO_FIX}") from None
    try:
        folder = Path(kagglehub.dataset_download(KAGGLE_DATASET))
    except Exception as err:  # no network, no credentials, ...
        raise DataError(f"could not download {KAGGLE_DATASET} from Kaggle ({err}); {HOW_TO_FIX}") from None
    found = sorted(folder.rglob("*.csv"))
    if not found:
        raise DataError(f"the Kaggle download in {folder} holds no .csv file; {HOW_TO_FIX}")
    return found[0]


def read_prices(path: Path | str) -> pd.DataFrame:
    """The price table, validated: columns, dates, numeric prices; sorted by symbol and date.

    Empty price cells (the original file has 27) stay NaN. Anything else malformed -- among it a
    price that is NaN, infinite or <= 0, or a volume that is infinite or < 0 -- raises
    :class:`DataError` naming the file, the first bad line (1-based, the header is line 1) and its
    column.
    """
    path = Path(path)
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    except FileNotFoundError:
        raise DataError(f"S&P 500 file {path} not found; {HOW_TO_FIX}") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"S&P 500 file {path} is empty; {HOW_TO_FIX}") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, EOFError, zlib.error, gzip.BadGzipFile) as err:
        raise DataError(f"S&P 500 file {path} is not a readable CSV ({type(err).__name__}: {err})") from None
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise DataError(
            f"S&P 500 file {path} lacks the column(s) {', '.join(missing)}; expected the header "
            f"{','.join(COLUMNS)} (found {','.join(map(str, df.columns))})"
        )
    if df.empty:
        raise DataError(f"S&P 500 file {path} has a header but no rows")
    df = df[COLUMNS].copy()
    if df["symbol"].isna().any():
        row = int(df.index[df["symbol"].isna()][0]) + 2  # 1-based, after the header line
        raise DataError(f"S&P 500 file {path}: empty symbol at line {row}")
    dates = pd.to_datetime(df["date"], format="%Y-%m-%d", errors="coerce")
    if dates.isna().any():
        i = dates.index[dates.isna()][0]
        raise DataError(f"S&P 500 file {path}: bad date {df.at[i, 'date']!r} at line {int(i) + 2} (expected YYYY-MM-DD)")
    df["date"] = dates
    impossible = []  # per column: (its first impossible cell's row, the column, the cell's text, how many)
    for column in PRICES + ["volume"]:
        text = df[column]
        values = pd.to_numeric(text, errors="coerce")
        bad = values.isna() & text.notna()
        if bad.any():
            i = bad.index[bad][0]
            raise DataError(
                f"S&P 500 file {path}: non-numeric {column} {df.at[i, column]!r} at line {int(i) + 2}; {FIX_CELL}"
            )
        # Only empty cells are NaN now (a missing price: the stock is left out). A value that is
        # present must be possible: finite, a price > 0, a volume >= 0 (the original file has days of
        # volume 0). All four price columns are checked, not only the ones a run reads
        # (dataset.price, dataset.extra_prices): the file is read and validated once per process
        # (cached) for whichever columns later runs take, so a value that is wrong in any column
        # stops every run on the file alike. (high >= low and the like are not checked: the original
        # file breaks them on a few days.)
        v = values.to_numpy(dtype=float)
        wrong = np.flatnonzero(np.isinf(v) | ((v <= 0) if column in PRICES else (v < 0)))
        if len(wrong):
            impossible.append((int(wrong[0]), column, text.iat[wrong[0]], len(wrong)))
        df[column] = values
    if impossible:
        row, column, cell, _ = min(impossible)
        n = sum(count for *_, count in impossible)
        must = ">= 0" if column == "volume" else "> 0"
        more = f" ({n - 1} more impossible cell(s) in the file)" if n > 1 else ""
        raise DataError(
            f"S&P 500 file {path}: line {row + 2}, column {column}: {cell!r} is impossible ({column} must be a "
            f"finite number {must}){more}; {FIX_CELL}"
        )
    if df.duplicated(["symbol", "date"]).any():
        i = df.index[df.duplicated(["symbol", "date"])][0]
        raise DataError(f"S&P 500 file {path}: a second row for {df.at[i, 'symbol']} on {df.at[i, 'date'].date()} at line {int(i) + 2}")
    return df.sort_values(["symbol", "date"], kind="stable").reset_index(drop=True)


def price_table(df: pd.DataFrame, price: str) -> pd.DataFrame:
    """Dates x symbols table of one price column (NaN where a stock has no price that day)."""
    return df.pivot(index="date", columns="symbol", values=price).sort_index()


@functools.lru_cache(maxsize=2)
def _cached_prices(file: str, mtime_ns: int) -> pd.DataFrame:
    """The rows of a file, read and validated once per process."""
    return read_prices(file)


def complete_stocks(table: pd.DataFrame) -> List[str]:
    """Symbols with a price on every date of the table, sorted."""
    return sorted(table.columns[table.notna().all()].tolist())


def split_stocks(symbols: List[str], test_fraction: float, val_fraction: float, seed: int) -> Dict[str, List[str]]:
    """Seeded split of the symbols: ``{"test", "val", "train"}`` (:func:`lstm_ae.data.windows.split_groups`)."""
    return split_groups(symbols, test_fraction, val_fraction, seed, what="complete stocks")


def load_sp500(
    root: Optional[str] = None,
    path: Optional[str] = None,
    download: bool = False,
    price: Price | str = Price.high,
    extra_prices: Sequence[Price | str] = (),
    plot_symbols: Sequence[str] = ("AMZN", "GOOGL"),
    seq_len: Optional[int] = 50,
    stride: Optional[int] = None,
    test_fraction: float = 0.2,
    val_fraction: float = 0.2,
    seed: int = 0,
) -> Splits:
    """Scaled windows of the complete stocks, split by stock (see the module docstring).

    ``x``: (N, seq_len, m) scaled prices, ``price`` then ``extra_prices`` (m = 1 + their number);
    ``next_value``: (N, m) the next day, scaled alike. ``seq_len=None`` takes each whole series but
    its last day. Each window knows its stock (``group``), its first day (``start``, into ``dates``)
    and its scaling (``offset``, ``scale``: USD = scaled * scale + offset); ``series`` (S, days, m)
    holds the test stocks' whole series in USD. Only stocks with every column on every day are kept.
    ``overview`` holds the whole price series of ``plot_symbols`` (drawn before training).
    """
    price = Price(price).value
    columns = [price] + [Price(p).value for p in extra_prices]
    if len(set(columns)) < len(columns):
        raise ConfigError(f"dataset.extra_prices={columns[1:]} repeats a column (dataset.price is {price}); "
                          f"name each of {', '.join(PRICES)} at most once, and not the price itself")
    tables = [load_table(root, path, download, column) for column in columns]
    table = tables[0]
    missing = [s for s in plot_symbols if s not in table.columns]
    if missing:
        raise DataError(
            f"symbol(s) {', '.join(missing)} not in the price file (it has {len(table.columns)} symbols, "
            f"e.g. {', '.join(list(table.columns[:5]))}); set dataset.plot_symbols=[...], or [] to draw none"
        )
    dates = table.index
    symbols = sorted(set.intersection(*(set(complete_stocks(t)) for t in tables)))
    if not symbols:
        raise DataError(f"no stock has its {'/'.join(columns)} price on all {len(dates)} days of the file")
    days = len(dates)
    if seq_len is None:
        seq_len = days - 1
    if seq_len > days - 1:
        raise ConfigError(
            f"dataset.seq_len={seq_len} is longer than the data allows: the file has {days} trading "
            f"days and each window needs one more day for its next-day target; use <= {days - 1} or null"
        )
    stride = stride or seq_len
    parts = split_stocks(symbols, test_fraction, val_fraction, seed)
    names = parts["val"] + parts["train"] + parts["test"]  # group ids: train+val first, in seeded order
    ids = {name: i for i, name in enumerate(names)}
    out: Dict[str, Split] = {}
    for name in ("train", "val", "test"):
        syms = sorted(parts[name])
        series = torch.tensor(np.stack([t[syms].to_numpy().T for t in tables], axis=-1), dtype=torch.float64)
        out[name] = make_split(list(series), [ids[s] for s in syms], seq_len, stride)  # scaled per window
        if name == "test":
            test_series, test_names = series, syms
    return Splits(out["train"], out["val"], out["test"], group_names=names, dates=dates, unit="USD", group_kind="stock",
                  feature_names=[Price(price).value, *[Price(p).value for p in extra_prices]],
                  value_name=f"daily {price}", series=test_series, series_names=test_names,
                  overview=table[list(plot_symbols)])


def load_table(root: Optional[str], path: Optional[str], download: bool, price: Price | str) -> pd.DataFrame:
    """Dates x symbols table of one price column of the file :func:`locate` finds."""
    file = locate(root, path, download)
    return price_table(_cached_prices(str(file.resolve()), file.stat().st_mtime_ns), Price(price).value)
