"""Values in a data file that no run can use stop it with one DataError line naming the file, the
row and the column (the S&P CSV: its line as an editor numbers it, header = line 1; an MNIST IDX
file: the item index) and the fix -- never a NaN metric, a divergence or a traceback later."""
import re

import numpy as np
import pytest

from lstm_ae.data.mnist import FILES, load_mnist
from lstm_ae.data.sp500 import load_sp500, read_prices
from lstm_ae.errors import DataError
from tests.conftest import DAYS, STOCKS, make_csv, run_in_process, write_fake_mnist, write_idx

HEADER = "symbol,date,open,high,low,close,volume\n"
ROWS = [  # lines 2..7
    "AAA,2014-01-02,1.5,2,1,1.75,100",
    "BBB,2014-01-02,10,11,9,10.5,200",
    "AAA,2014-01-03,1.75,2.5,,2,150",  # an empty cell: a missing price, allowed
    "BBB,2014-01-03,10.5,12,10,11,0",  # volume 0: allowed
    "AAA,2014-01-06,2,2.5,1.5,2.25,120",
    "BBB,2014-01-06,11,12,10.5,11.5,220",
]
FIELDS = HEADER.strip().split(",")


def csv_with(tmp_path, line: int, column: str, text: str):
    """The tiny CSV with the cell at (editor) ``line``, ``column`` set to ``text``."""
    rows = [r.split(",") for r in ROWS]
    rows[line - 2][FIELDS.index(column)] = text
    path = tmp_path / "prices.csv"
    path.write_text(HEADER + "".join(",".join(r) + "\n" for r in rows))
    return path


def assert_names(message: str, path, row: str, column: str):
    assert str(path) in message, message
    assert re.search(rf"\b{row}\b", message), message
    assert re.search(rf"\b{column}\b", message), message
    assert "\n" not in message


@pytest.mark.parametrize(
    "line,column,text",
    [
        (4, "high", "inf"),
        (5, "close", "-inf"),
        (6, "low", "1e400"),  # overflows to inf
        (3, "open", "NaN"),  # NaN written out is not an empty cell
        (7, "high", "-3.5"),
        (2, "close", "0"),
        (4, "low", "-0"),
        (5, "volume", "-1"),
        (6, "volume", "inf"),
    ],
)
def test_an_impossible_value_names_file_line_and_column(tmp_path, line, column, text):
    path = csv_with(tmp_path, line, column, text)
    with pytest.raises(DataError) as err:
        read_prices(path)
    assert_names(str(err.value), path, f"line {line}", column)
    assert repr(text) in str(err.value) and "correct the cell" in str(err.value)


def test_the_first_bad_line_of_the_file_is_named_and_the_rest_counted(tmp_path):
    path = csv_with(tmp_path, 6, "open", "inf")
    text = path.read_text().replace("BBB,2014-01-03,10.5,12,10,11,0", "BBB,2014-01-03,10.5,12,10,-11,0")
    path.write_text(text.replace("BBB,2014-01-06,11,12,", "BBB,2014-01-06,11,0,"))
    with pytest.raises(DataError, match=r"line 5, column close: '-11' is impossible .*\(2 more impossible cell"):
        read_prices(path)


def test_empty_cells_and_zero_volume_still_pass(tmp_path):
    df = read_prices(csv_with(tmp_path, 2, "open", "1.5"))  # the good file
    assert df["low"].isna().sum() == 1 and (df["volume"] == 0).sum() == 1
    assert np.isfinite(df[["open", "high", "close"]].to_numpy()).all()


def test_a_bad_price_of_a_stock_stops_loading_in_any_column(tmp_path):
    """Every price column is checked, also one the run does not read: an inf open stops a run on the high."""
    path = make_csv(tmp_path, gz=False, drop=None)
    lines = path.read_text().splitlines(keepends=True)
    line = 2 + DAYS * STOCKS.index("S05") + 1  # the second day of stock S05 (the rows go stock by stock)
    cells = lines[line - 1].split(",")
    assert cells[0] == "S05"
    cells[FIELDS.index("open")] = "inf"
    lines[line - 1] = ",".join(cells)
    path.write_text("".join(lines))
    with pytest.raises(DataError) as err:
        load_sp500(path=str(path), seq_len=10, price="high")
    assert_names(str(err.value), path, f"line {line}", "open")


def test_an_inf_price_ends_the_entry_script_in_one_line(tmp_path):
    folder = tmp_path / "data" / "sp500"
    path = make_csv(folder, gz=False, drop=None, name="sp500_2014_2017.csv")
    lines = path.read_text().splitlines(keepends=True)
    line = 20
    cells = lines[line - 1].split(",")
    cells[FIELDS.index("high")] = "inf"
    lines[line - 1] = ",".join(cells)
    path.write_text("".join(lines))
    proc = run_in_process("lstm_ae_snp500.py", f"dataset.root={tmp_path / 'data'}", "dataset.seq_len=10",
                          "model.hidden_size=4", "trainer.epochs=1", "trainer.device=cpu", "trainer.progress=false", f"hydra.run.dir={tmp_path / 'run'}")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out[-2000:]
    assert "Traceback" not in out, out[-3000:]
    errors = [row for row in out.splitlines() if "DataError" in row]
    assert len(errors) == 1, out[-2000:]
    assert_names(errors[0], path, f"line {line}", "high")
    assert not (tmp_path / "run" / "results.json").exists()


# ------------------------------------------------------------------------------ MNIST
def test_an_mnist_label_outside_0_to_9_names_file_and_item(tmp_path):
    raw = write_fake_mnist(tmp_path, n_train=40, n_test=12) / "MNIST" / "raw"
    labels = np.arange(12) % 10
    labels[7], labels[9] = 200, 10
    write_idx(raw / FILES["test_labels"], labels)
    with pytest.raises(DataError) as err:
        load_mnist(root=str(tmp_path), val_size=8)
    assert_names(str(err.value), raw / FILES["test_labels"], "item 7", "label")
    assert "200" in str(err.value) and "1 more" in str(err.value) and "download it again" in str(err.value)


def test_an_mnist_bad_label_beyond_limit_still_stops(tmp_path):
    raw = write_fake_mnist(tmp_path, n_train=40, n_test=12) / "MNIST" / "raw"
    labels = np.arange(40) % 10
    labels[30] = 255
    write_idx(raw / FILES["train_labels"], labels)
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte.gz: item 30 \(0-based\), field label: 255"):
        load_mnist(root=str(tmp_path), val_size=4, limit=20)


def test_mnist_image_and_label_counts_that_disagree_name_both_files(tmp_path):
    raw = write_fake_mnist(tmp_path, n_train=40, n_test=12) / "MNIST" / "raw"
    write_idx(raw / FILES["train_labels"], np.arange(39) % 10)
    with pytest.raises(DataError) as err:
        load_mnist(root=str(tmp_path), val_size=8)
    message = str(err.value)
    assert str(raw / FILES["train_images"]) in message and str(raw / FILES["train_labels"]) in message
    assert "40 images" in message and "39 labels" in message
