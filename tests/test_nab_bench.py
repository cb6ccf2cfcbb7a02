"""bench.nab: NAB's results layout written exactly, causal scores, the report's per-file metrics, bad input."""
import json

import numpy as np
import pandas as pd
import pytest

from bench import nab

TINY = ["--seq-len", "8", "--hidden", "4", "--epochs", "2", "--batch-size", "16", "--short", "3", "--long", "50",
        "--min-periods", "10", "--baseline-window", "50", "--suppress", "20"]
SETTINGS = nab.Settings(seq_len=8, hidden=4, epochs=2, batch_size=16, short=3, long=50, min_periods=10,
                        baseline_window=50, suppress=20)


def times(n, start="2020-01-01 00:00:00"):
    return pd.date_range(start, periods=n, freq="5min").strftime("%Y-%m-%d %H:%M:%S").to_numpy().copy()


@pytest.fixture
def folder(tmp_path):
    """A NAB-layout folder: a series with a spike in a labelled window, and a clean one whose timestamps
    repeat and go back once (as two of NAB's files do): NAB pairs rows by position, never by time."""
    root = tmp_path / "nabdata"
    (root / "data" / "realThing").mkdir(parents=True)
    (root / "data" / "artificialNone").mkdir(parents=True)
    (root / "labels").mkdir()
    rng = np.random.default_rng(0)
    n = 400
    v = np.sin(np.arange(n) / 6) + 0.05 * rng.normal(size=n)
    v[300:304] += 6.0
    t = times(n)
    pd.DataFrame({"timestamp": t, "value": np.round(v, 6)}).to_csv(root / "data/realThing/spiky.csv", index=False)
    m = 300
    tb = times(m, "2021-03-01 00:00:00")
    tb[100] = tb[99]  # a repeated time
    tb[200], tb[201] = tb[201], tb[200]  # out of order
    w = np.round(np.cos(np.arange(m) / 5) + 0.05 * rng.normal(size=m), 6)
    pd.DataFrame({"timestamp": tb, "value": w}).to_csv(root / "data/artificialNone/clean.csv", index=False)
    windows = {"realThing/spiky.csv": [[t[290] + ".000000", t[320] + ".000000"]], "artificialNone/clean.csv": []}
    (root / "labels" / "combined_windows.json").write_text(json.dumps(windows))
    return root


def test_layout_and_report(folder, tmp_path, capsys):
    out = tmp_path / "results"
    nab.main(["--nab", str(folder), "--out", str(out), "--detector", "tiny1", *TINY])
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.csv"))
    assert written == ["tiny1/artificialNone/tiny1_clean.csv", "tiny1/realThing/tiny1_spiky.csv"]
    for key, result in (("realThing/spiky.csv", "tiny1/realThing/tiny1_spiky.csv"),
                        ("artificialNone/clean.csv", "tiny1/artificialNone/tiny1_clean.csv")):
        data = pd.read_csv(folder / "data" / key, dtype=str)
        got = pd.read_csv(out / result, dtype=str)
        assert list(got.columns) == ["timestamp", "value", "anomaly_score", "label"]
        assert len(got) == len(data)  # every row, probationary rows included, in the input's order
        assert (got["timestamp"] == data["timestamp"]).all() and (got["value"] == data["value"]).all()
        score = got["anomaly_score"].astype(float).to_numpy()
        assert np.isfinite(score).all() and score.min() >= 0 and score.max() <= 1
        assert score[nab.probation(len(data)):].max() > 0  # scored after the probation
        alarms = np.flatnonzero(score >= SETTINGS.suppress_above)  # repeat alarms suppressed: none within 20 rows
        assert (np.diff(alarms) > 20).all() and (score > 0).sum() > len(alarms)
    spiky = pd.read_csv(out / "tiny1/realThing/tiny1_spiky.csv")
    assert spiky["label"].tolist() == [int(290 <= i <= 320) for i in range(400)]
    assert pd.read_csv(out / "tiny1/artificialNone/tiny1_clean.csv")["label"].sum() == 0

    report = json.loads((out / "tiny1.json").read_text())
    files = {f["file"]: f for f in report["files"]}
    assert sorted(files) == ["artificialNone/clean.csv", "realThing/spiky.csv"]
    s = files["realThing/spiky.csv"]
    assert s["probation"] == 60 and s["rows"] == 400
    for who in ("model", "baseline"):
        m = s[who]
        assert m["rows"] == 400 - 60 and m["labelled_rows"] == 31 and m["windows"] == 1
        assert 0 <= m["auc_roc"] <= 1 and 0 <= m["auc_pr"] <= 1
    assert s["model"]["auc_roc"] > 0.6  # the spike is in the window
    c = files["artificialNone/clean.csv"]
    assert c["probation"] == 45 and c["model"]["windows"] == 0 and c["model"]["auc_roc"] is None
    overall = report["overall"]["model"]
    assert overall["files"] == 2 and overall["windows"] == 1 and overall["auc_pr"] == s["model"]["auc_pr"]
    assert report["settings"]["seq_len"] == 8 and report["settings"]["epochs"] == 2
    assert report["command"].startswith("python -m bench.nab --nab") and report["machine"]
    assert "tiny1" in capsys.readouterr().out


def test_causal(folder, tmp_path):
    """Changing the rows after t leaves every score up to t unchanged (the probation, hence the model, is kept)."""
    key, t = "realThing/spiky.csv", 100
    changed = tmp_path / "changed"
    (changed / "data/realThing").mkdir(parents=True)
    data = pd.read_csv(folder / "data" / key, dtype=str)
    v = data["value"].astype(float).to_numpy().copy()
    v[t + 1 :] = v[t + 1 :] * 3 + 2
    data.assign(value=np.round(v, 6).astype(str)).to_csv(changed / "data" / key, index=False)
    scores = []
    for root, name in ((folder, "a"), (changed, "b")):
        nab.one_file(str(root), key, [], str(tmp_path / name), "d", SETTINGS)
        scores.append(pd.read_csv(tmp_path / name / "d/realThing/d_spiky.csv")["anomaly_score"].to_numpy())
    np.testing.assert_array_equal(scores[0][: t + 1], scores[1][: t + 1])
    assert not np.array_equal(scores[0][t + 1 :], scores[1][t + 1 :])


def test_the_results_carry_the_detectors_alarm_score():
    """bench.nab's suppression is the detector's own (lstm_ae.anomaly.Scoring.suppress), not a copy."""
    assert nab.suppress is nab.an.suppress
    sc = nab.Settings(suppress=20, suppress_above=0.7).scoring()
    assert (sc.suppress, sc.suppress_above) == (20, 0.7)


@pytest.mark.parametrize("args, says", [
    (["--detector", "lstm_ae"], "--detector 'lstm_ae': give letters and digits only"),
    (["--jobs", "0"], "--jobs 0"),
    (["--quantile", "1.5"], "--quantile 1.5"),
    (["--suppress", "-1"], "--suppress -1"),
])
def test_bad_options(folder, tmp_path, capsys, args, says):
    with pytest.raises(SystemExit) as stop:
        nab.main(["--nab", str(folder), "--out", str(tmp_path / "r"), *args])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and says in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_bad_folder(folder, tmp_path, capsys):
    (folder / "labels" / "combined_windows.json").write_text(json.dumps({"realThing/spiky.csv": []}))
    with pytest.raises(SystemExit):
        nab.main(["--nab", str(folder), "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert "has no entry for artificialNone/clean.csv" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(SystemExit):
        nab.main(["--nab", str(tmp_path), "--out", str(tmp_path / "r")])
    assert "no data/<category>/<file>.csv" in capsys.readouterr().err
