"""dataset=csv: a user's own series from small CSV files written here (lstm_ae/data/csv.py, lstm_ae/data/windows.py)."""
import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from lstm_ae.config import validate
from lstm_ae.data import group_folds
from lstm_ae.data.csv import load_csv
from lstm_ae.errors import ConfigError, DataError
from tests.conftest import compose_cfg

ROWS = 60


def walk(n: int = ROWS, seed: int = 0, level: float = 10.0) -> np.ndarray:
    return level + np.cumsum(np.random.default_rng(seed).normal(0, 1, n))


def write(path: Path, df: pd.DataFrame) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with (gzip.open(path, "wt") if path.name.endswith(".gz") else open(path, "w")) as f:
        df.to_csv(f, index=False)
    return path


def dates(n: int = ROWS) -> list:
    return [d.strftime("%Y-%m-%d") for d in pd.date_range("2024-01-01", periods=n)]


def long_file(path: Path, n: int = ROWS, seed: int = 0) -> Path:
    """One series, two features (temp, humid), a text column that is not a value."""
    return write(path, pd.DataFrame({"date": dates(n), "temp": walk(n, seed), "humid": walk(n, seed + 1, 50),
                                     "site": "north"}))


def in_units(split, i):
    return split[i : i + 1].in_units(split.x[i : i + 1])[0]


# ------------------------------------------------------------------------------ layouts
def test_long_file_is_one_series_of_its_value_columns(tmp_path):
    path = long_file(tmp_path / "weather.csv")
    s = load_csv(str(path), seq_len=5, split_by="time")
    assert s.group_names == ["weather"] and s.num_features == 2 and s.value_name == "temp"  # 'site' holds no number
    # split by time: 60 rows -> test 12, val 10, train 38; each part windowed on its own (a window needs its next row)
    assert (len(s.train), len(s.val), len(s.test)) == (len(range(0, 38 - 5, 5)), 1, len(range(0, 12 - 5, 5)))
    df = pd.read_csv(path)
    table = df[["temp", "humid"]].to_numpy()
    for split in (s.train, s.val, s.test):
        for i in range(len(split)):
            start = int(split.start[i])
            assert np.allclose(in_units(split, i).numpy(), table[start : start + 5], rtol=1e-6)
    assert list(s.dates[:2].strftime("%Y-%m-%d")) == dates()[:2] and list(s.overview.columns) == ["weather"]
    assert s.train.step_labels is None


def test_wide_columns_are_series_and_a_late_start_is_not_missing(tmp_path):
    late = walk(seed=3)
    late[:15] = np.nan  # series C starts 15 rows later
    path = write(tmp_path / "prices.csv", pd.DataFrame({"day": dates(), "A": walk(seed=1), "B": walk(seed=2), "C": late}))
    s = load_csv(str(path), layout="wide", seq_len=8, split_by="series", test_fraction=0.34, val_fraction=0.5)
    assert sorted(s.group_names) == ["A", "B", "C"] and s.num_features == 1 and s.value_name == "value"
    assert s.dates is None and s.series is None  # C has other dates than A and B: no common date axis
    ids, counts = torch.unique(torch.cat([s.train.group, s.val.group, s.test.group]), return_counts=True)
    lengths = {s.group_names[g]: n for g, n in zip(ids.tolist(), counts.tolist())}  # windows per series
    assert lengths["C"] == len(range(0, 45 - 8, 8)) and lengths["A"] == len(range(0, 60 - 8, 8))


def test_long_files_with_ids_gz_and_a_glob(tmp_path):
    for k in range(2):
        rows = [(sid, t, v) for sid in ("x", "y") for t, v in enumerate(walk(40, seed=10 * k + ord(sid)))]
        df = pd.DataFrame(rows, columns=["id", "t", "load"]).sample(frac=1, random_state=k)  # ids interleaved
        df = df.sort_values("t", kind="stable")  # in time order per id, ids interleaved
        write(tmp_path / "meters" / f"m{k}.csv.gz", df)
    write(tmp_path / "meters" / "notes.txt", pd.DataFrame({"a": [1]}))
    s = load_csv("meters/m*.csv.gz", root=str(tmp_path), id_column="id", time_column="t", seq_len=5,
                 split_by="series", seed=1)
    assert sorted(s.group_names) == ["m0/x", "m0/y", "m1/x", "m1/y"] and s.num_features == 1
    assert s.dates is None and s.value_name == "load"  # numbers as time: no date axis
    folder = load_csv(str(tmp_path / "meters"), id_column="id", time_column="t", seq_len=5, split_by="series", seed=1)
    assert torch.equal(folder.test.x, s.test.x)  # a folder: every .csv/.csv.gz in it


def test_labels_are_kept_per_step_and_never_read(tmp_path):
    labels = (np.arange(ROWS) % 7 == 3).astype(int)
    df = pd.DataFrame({"t": np.arange(ROWS) * 0.5, "v": walk(), "anomaly": labels})
    s = load_csv(str(write(tmp_path / "a.csv", df)), label_column="anomaly", seq_len=6, stride=3)
    assert s.num_features == 1  # the label is not an input
    for split in (s.train, s.val, s.test):
        assert split.step_labels.shape == split.x.shape[:2] and split.step_labels.dtype == torch.int64
        for i in range(len(split)):
            start = int(split.start[i])
            assert split.step_labels[i].tolist() == labels[start : start + 6].tolist()


# ------------------------------------------------------------------------------ splits and scaling
def test_split_by_time_cuts_each_series_and_no_window_crosses_a_cut(tmp_path):
    path = write(tmp_path / "w.csv", pd.DataFrame({"date": dates(), "A": walk(seed=1), "B": walk(seed=2)}))
    s = load_csv(str(path), layout="wide", seq_len=5, stride=2)
    n_test = round(ROWS * 0.2)
    n_val = round((ROWS - n_test) * 0.2)
    cuts = {"train": (0, ROWS - n_test - n_val), "val": (ROWS - n_test - n_val, ROWS - n_test), "test": (ROWS - n_test, ROWS)}
    for name, (lo, hi) in cuts.items():
        split = getattr(s, name)
        assert set(s.group_names[g] for g in split.group.tolist()) == {"A", "B"}  # every series in every part
        assert int(split.start.min()) == lo and int(split.start.max()) + 5 + 1 <= hi  # the window and its next row
    assert len(s.series_names or []) == 0 and s.dates is not None  # common dates: figures on a date axis


def test_train_scaling_is_fitted_on_training_rows_only(tmp_path):
    values = walk(seed=4)
    a = load_csv(str(write(tmp_path / "a.csv", pd.DataFrame({"t": range(ROWS), "v": values}))), seq_len=5,
                 scaling="train")
    later = values.copy()
    later[-22:] *= 50  # the validation and test rows only (60 rows: train 38)
    b = load_csv(str(write(tmp_path / "b.csv", pd.DataFrame({"t": range(ROWS), "v": later}))), seq_len=5,
                 scaling="train")
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.train.next_value, b.train.next_value)
    lo, hi = values[:38].min(), values[:38].max()  # the training rows' min and max, and nothing else
    assert float(a.test.offset[0]) == pytest.approx(lo) and float(a.test.scale[0]) == pytest.approx(hi - lo)
    first = torch.from_numpy((later[48:53] - lo) / (hi - lo)).float()  # the first test window: rows 48..52
    assert torch.allclose(b.test.x[0, :, 0], first) and float(b.test.x.max()) > 1  # training numbers: beyond [0, 1]
    assert torch.equal(a.val.offset, a.train.offset[: len(a.val)])


def test_window_scaling_is_the_sp500_scheme(tmp_path):
    s = load_csv(str(long_file(tmp_path / "w.csv")), seq_len=5)
    x = s.train.x
    assert torch.allclose(x.amin((1, 2)), torch.zeros(len(x))) and torch.allclose(x.amax((1, 2)), torch.ones(len(x)))


def test_split_by_series_holds_whole_series_out_and_folds_by_series(tmp_path):
    path = write(tmp_path / "w.csv", pd.DataFrame({"date": dates(), **{f"S{i}": walk(seed=i) for i in range(8)}}))
    s = load_csv(str(path), layout="wide", seq_len=10, split_by="series", test_fraction=0.25, val_fraction=0.2)
    parts = [{s.group_names[g] for g in p.group.tolist()} for p in (s.train, s.val, s.test)]
    assert sum(map(len, parts)) == 8 and set().union(*parts) == set(s.group_names)  # each series in one part
    assert s.series_names == sorted(parts[2]) and s.series.shape == (2, ROWS, 1)  # test series whole, for forecasts
    folds = group_folds(s, 2)
    for f in folds:
        assert not ({s.group_names[g] for g in f.train.group.tolist()} & {s.group_names[g] for g in f.val.group.tolist()})


def test_sort_and_fill_when_asked(tmp_path):
    v = walk(20)
    v[[4, 5]] = np.nan
    df = pd.DataFrame({"t": np.arange(20), "v": v}).iloc[::-1]  # newest first
    path = write(tmp_path / "r.csv", df)
    common = dict(seq_len=3, split_by="time", test_fraction=0.25, val_fraction=0.3, sort=True)
    ff = load_csv(str(path), fill="ffill", **common)
    ip = load_csv(str(path), fill="interpolate", **common)
    zero = load_csv(str(path), fill="zero", **common)
    row = lambda s: in_units(s.train, 1)[:, 0].numpy()  # noqa: E731  rows 3..5
    assert np.allclose(row(ff), [v[3], v[3], v[3]]) and np.allclose(row(zero), [v[3], 0, 0])
    assert np.allclose(row(ip), [v[3], v[3] + (v[6] - v[3]) / 3, v[3] + 2 * (v[6] - v[3]) / 3])


def test_a_time_twice_is_kept_once_when_asked(tmp_path):
    """dataset.duplicates: the first or last row of a repeated time, or the mean of its rows (a label: 1 if any);
    a real file (NAB's machine_temperature_system_failure.csv) repeats a time, out of order."""
    t = [0, 1, 2, 3, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19]
    v = np.arange(len(t), dtype=float) * 10
    lab = [0] * len(t)
    lab[4] = 1
    path = write(tmp_path / "d.csv", pd.DataFrame({"t": t, "v": v, "lab": lab}))
    common = dict(seq_len=3, stride=1, split_by="time", test_fraction=0.25, val_fraction=0.3, label_column="lab")
    got = {d: load_csv(str(path), duplicates=d, **common) for d in ("first", "last", "mean")}
    step3 = {d: in_units(s.train, 1)[2, 0].item() for d, s in got.items()}  # window 1 = rows 1..3: row 3 last
    assert step3 == pytest.approx({"first": 30.0, "last": 40.0, "mean": 35.0})
    labels = {d: int(s.train.step_labels[1, 2]) for d, s in got.items()}
    assert labels == {"first": 0, "last": 1, "mean": 1}  # the kept row's label; mean: 1 if any row has 1
    assert len(got["first"].train) == len(got["mean"].train)  # one row per time: 20 rows


def test_compose_and_validate_series_config(tmp_path):
    cfg = compose_cfg("series", [f"dataset.path={tmp_path}/x.csv", "dataset.value_columns=[a,b]", "task=predict"])
    validate(cfg)
    assert cfg.dataset.split_by.value == "time" and cfg.dataset.scaling.value == "window"
    for bad in ("dataset.split_by=weeks", "dataset.scaling=zscore", "dataset.fill=mean", "dataset.layout=row"):
        with pytest.raises(Exception, match=bad.split("=")[0].split(".")[1]):
            compose_cfg("series", [bad])
    with pytest.raises(ConfigError, match="dataset.value_columns"):
        validate(compose_cfg("series", ["dataset.value_columns=[a,a]"]))


# ------------------------------------------------------------------------------ bad data: one line each
GOOD = "date,v,w\n" + "".join(f"2024-01-{d:02d},{d},{2 * d}\n" for d in range(1, 29))  # 28 rows, lines 2..29


def edit(line: int, cells: str) -> str:
    lines = GOOD.splitlines()
    lines[line - 1] = cells
    return "\n".join(lines) + "\n"


BAD = [
    ("missing value", edit(7, "2024-01-06,,12"), {}, ["line 7", "column v", "missing value", "dataset.fill"]),
    ("unsorted", edit(7, "2024-01-02,6,12"), {}, ["line 7", "column date", "comes before line 6", "dataset.sort=true"]),
    ("duplicate", edit(7, "2024-01-05,6,12"), {"sort": True}, ["line 7", "column date", "again", "line 6",
                                                                "dataset.duplicates=first|last|mean"]),
    ("non-numeric", edit(9, "2024-01-08,8,abc"), {}, ["line 9", "column w", "'abc' is not a finite number"]),
    ("infinite", edit(9, "2024-01-08,inf,16"), {}, ["line 9", "column v", "not a finite number"]),
    ("bad date", edit(4, "2024-13-45,3,6"), {}, ["line 4", "column date", "not a date"]),
    ("too few rows", GOOD, {"seq_len": 30}, ["28 rows", "dataset.seq_len=30", "lines 2-29"]),
    ("parts too short", GOOD, {"seq_len": 6}, ["train/val/test parts", "dataset.split_by=series"]),
    ("named column missing", GOOD, {"value_columns": ["v", "price"]}, ["no column price", "dataset.value_columns"]),
    ("label not 0/1", "t,v,lab\n" + "".join(f"{i},{i},{i % 3}\n" for i in range(20)), {"label_column": "lab"},
     ["line 4", "column lab", "not a label 0 or 1"]),
    ("ffill at the start", edit(2, "2024-01-01,,2"), {"fill": "ffill"}, ["line 2", "column v", "starts with a missing"]),
]


@pytest.mark.parametrize("case,text,kwargs,words", BAD, ids=[b[0] for b in BAD])
def test_bad_data_is_told_in_one_line(tmp_path, case, text, kwargs, words):
    path = tmp_path / "my.csv"
    path.write_text(text)
    with pytest.raises(DataError) as err:
        load_csv(str(path), **{"seq_len": 5, **kwargs})
    message = str(err.value)
    assert "\n" not in message and str(path) in message, message
    for word in words:
        assert word in message, (word, message)


def test_no_file_matching_the_glob(tmp_path):
    with pytest.raises(DataError, match=r"dataset.path=nothing/\*.csv: no .csv/.csv.gz file found"):
        load_csv("nothing/*.csv", root=str(tmp_path))
    with pytest.raises(ConfigError, match="dataset.path is not set"):
        load_csv(None)


def test_split_by_series_needs_three_series(tmp_path):
    path = tmp_path / "one.csv"
    path.write_text(GOOD)
    with pytest.raises(ConfigError, match="needs >= 3: use dataset.split_by=time"):
        load_csv(str(path), seq_len=5, split_by="series")
