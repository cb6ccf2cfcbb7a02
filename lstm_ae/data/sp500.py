"""S&P 500 daily prices 2014-2017 (the Kaggle file "SP 500 Stock Prices 2014-2017.csv").

Reading and validating the file lives here; the task code (issue #4) builds sequences from the
table this module returns. The file is read from ``<root>/sp500/sp500_2014_2017.csv.gz`` (the
layout of this project's shared data), or any ``.csv`` / ``.csv.gz`` given as ``path``; when it
is absent and ``kagglehub`` is installed with a network, the Kaggle dataset is downloaded.
"""
from __future__ import annotations

import gzip
import zlib
from pathlib import Path
from typing import Optional

import pandas as pd

from lstm_ae.data import default_root
from lstm_ae.errors import DataError

KAGGLE_DATASET = "gauravmehta13/sp-500-stock-prices"
KAGGLE_FILE = "SP 500 Stock Prices 2014-2017.csv"
COLUMNS = ["symbol", "date", "open", "high", "low", "close", "volume"]
PRICES = ["open", "high", "low", "close"]
CANDIDATES = ["sp500/sp500_2014_2017.csv.gz", "sp500/sp500_2014_2017.csv", f"sp500/{KAGGLE_FILE}", KAGGLE_FILE]
HOW_TO_FIX = (
    f"put the Kaggle file '{KAGGLE_FILE}' (or a .csv.gz of it) at <root>/sp500/, set dataset.root "
    "(or LSTM_AE_DATA) to its folder, or set dataset.path to the file"
)


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

    Empty price cells (the original file has 27) stay NaN. Anything else malformed raises
    :class:`DataError` naming the file, the column and the first bad row.
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
    for column in PRICES + ["volume"]:
        values = pd.to_numeric(df[column], errors="coerce")
        bad = values.isna() & df[column].notna()
        if bad.any():
            i = bad.index[bad][0]
            raise DataError(
                f"S&P 500 file {path}: non-numeric {column} {df.at[i, column]!r} at line {int(i) + 2}"
            )
        df[column] = values
    if df.duplicated(["symbol", "date"]).any():
        i = df.index[df.duplicated(["symbol", "date"])][0]
        raise DataError(f"S&P 500 file {path}: a second row for {df.at[i, 'symbol']} on {df.at[i, 'date'].date()} at line {int(i) + 2}")
    return df.sort_values(["symbol", "date"], kind="stable").reset_index(drop=True)
