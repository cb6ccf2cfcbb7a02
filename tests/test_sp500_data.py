"""Reading and validating the S&P 500 price file (tiny synthetic CSVs with the real columns)."""
import gzip

import pandas as pd
import pytest

from lstm_ae.data.sp500 import locate, read_prices
from lstm_ae.errors import DataError
from tests.conftest import SHARED_DATA

GOOD = """symbol,date,open,high,low,close,volume
AAA,2014-01-02,1.5,2,1,1.75,100
BBB,2014-01-02,10,11,9,10.5,200
AAA,2014-01-03,1.75,2.5,,2,150
BBB,2014-01-03,10.5,12,10,11,250
"""


def write(tmp_path, text, name="prices.csv"):
    path = tmp_path / name
    if name.endswith(".gz"):
        with gzip.open(path, "wt") as f:
            f.write(text)
    else:
        path.write_text(text)
    return path


@pytest.mark.parametrize("name", ["prices.csv", "prices.csv.gz"])
def test_reads_csv_and_gz(tmp_path, name):
    df = read_prices(write(tmp_path, GOOD, name))
    assert list(df.columns) == ["symbol", "date", "open", "high", "low", "close", "volume"]
    assert list(df["symbol"]) == ["AAA", "AAA", "BBB", "BBB"]  # sorted by symbol, then date
    assert df["date"].dtype.kind == "M" and df["high"].dtype == float
    assert df["low"].isna().sum() == 1  # an empty cell stays missing


@pytest.mark.parametrize(
    "text,message",
    [
        ("", "is empty"),
        ("symbol,date,open,high,low,close\nAAA,2014-01-02,1,2,1,1\n", "lacks the column.*volume"),
        ("symbol,date,open,high,low,close,volume\n", "no rows"),
        (GOOD.replace("2,1,1.75", "two,1,1.75"), "non-numeric high 'two' at line 2"),
        (GOOD.replace("2014-01-03,10.5", "03/01/2014,10.5"), "bad date '03/01/2014' at line 5"),
        (GOOD.replace("BBB,2014-01-03", "BBB,2014-01-02"), "a second row for BBB"),
    ],
)
def test_malformed_file_gives_one_clear_error(tmp_path, text, message):
    with pytest.raises(DataError, match=message):
        read_prices(write(tmp_path, text))


def test_corrupt_gzip(tmp_path):
    path = tmp_path / "prices.csv.gz"
    path.write_bytes(b"\x1f\x8b\x08\x00garbage")
    with pytest.raises(DataError, match="not a readable CSV"):
        read_prices(path)


def test_locate(tmp_path):
    (tmp_path / "sp500").mkdir()
    target = write(tmp_path / "sp500", GOOD, "sp500_2014_2017.csv.gz")
    assert locate(root=str(tmp_path)) == target
    assert locate(root=str(tmp_path), path="sp500/sp500_2014_2017.csv.gz") == target
    assert locate(root="/nowhere", path=str(target)) == target
    with pytest.raises(DataError, match="not found.*dataset.root"):
        locate(root=str(tmp_path / "empty"))


@pytest.mark.skipif(not (SHARED_DATA / "sp500").is_dir(), reason="../shared/data not present")
def test_real_file():
    df = read_prices(locate(root=str(SHARED_DATA)))
    assert len(df) == 497_472 and df["symbol"].nunique() == 505
    days = df.groupby("symbol")["date"].count()
    assert days["AMZN"] == days["GOOGL"] == 1007
    assert (days == 1007).sum() == 479
    amzn = df[df["symbol"] == "AMZN"].iloc[0]
    assert (str(amzn["date"].date()), amzn["high"]) == ("2014-01-02", 399.36)
    assert int(df[["open", "high", "low"]].isna().sum().sum()) == 27
