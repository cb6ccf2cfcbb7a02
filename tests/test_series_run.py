"""lstm_ae_series.py end to end on a user's CSV: one command trains, tests and writes the run folder."""
import json

import numpy as np
import pandas as pd
import pytest

from tests.conftest import CPU, run_in_process

TINY = ["dataset.seq_len=8", "model.hidden_size=8", "trainer.epochs=1", "trainer.batch_size=8", *CPU]


@pytest.fixture(scope="module")
def wide(tmp_path_factory):
    """Five daily series over 80 days, one column each."""
    rng = np.random.default_rng(0)
    days = pd.date_range("2023-03-01", periods=80).strftime("%Y-%m-%d")
    table = {"date": days, **{f"S{i}": 20 + np.cumsum(rng.normal(0, 1, 80)) for i in range(5)}}
    path = tmp_path_factory.mktemp("series") / "mine.csv"
    pd.DataFrame(table).to_csv(path, index=False)
    return path


def run(tmp_path, *args):
    proc = run_in_process("lstm_ae_series.py", *TINY, f"hydra.run.dir={tmp_path}", *args)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    return json.loads((tmp_path / "results.json").read_text())


def test_reconstruct_split_by_time(wide, tmp_path):
    res = run(tmp_path, f"dataset.path={wide}", "dataset.layout=wide", "dataset.unit=EUR", "dataset.plot_series=[S1]")
    assert res["test_mse"] > 0 and res["baseline_test_mse"] > 0 and res["test_rmse_eur"] > 0
    # 80 rows: test 16, val 13, train 51 per series; windows of 8 that keep their next row
    assert res["sequences"] == {"train": 5 * 6, "val": 5 * 1, "test": 5 * 1}
    for name in ("reconstructions.png", "loss.png", "value.png", "checkpoints/best.pt"):
        assert (tmp_path / name).is_file(), name


def test_predict_split_by_series_with_folds(wide, tmp_path):
    res = run(tmp_path, f"dataset.path={wide}", "dataset.layout=wide", "dataset.split_by=series", "task=predict",
              "task.folds=2", "dataset.stride=4", "task.figures=false")
    assert res["objective"] == "val_pred_mse" and len(res["fold_val_pred_mse"]) == 2
    for key in ("test_pred_mse", "test_next_mse", "baseline_test_ar_next_mse", "test_multistep_mse"):
        assert res[key] >= 0, key


def test_predict_long_layout_train_scaling(tmp_path):
    t = np.arange(120)
    df = pd.DataFrame({"step": t, "a": np.sin(t / 5), "b": np.cos(t / 7), "label": (t % 30 == 0).astype(int)})
    df.to_csv(tmp_path / "sensor.csv", index=False)
    res = run(tmp_path / "run", f"dataset.path={tmp_path / 'sensor.csv'}", "dataset.label_column=label",
              "dataset.scaling=train", "task=predict")
    assert res["input_size"] == 2 and res["test_pred_mse"] >= 0  # the label is no input


def test_bad_data_ends_the_script_in_one_line(wide, tmp_path):
    bad = tmp_path / "bad.csv"
    lines = wide.read_text().splitlines()
    lines[9] = lines[9].replace(lines[9].split(",")[2], "n/a?")
    bad.write_text("\n".join(lines) + "\n")
    proc = run_in_process("lstm_ae_series.py", *TINY, f"dataset.path={bad}", "dataset.layout=wide",
                          f"hydra.run.dir={tmp_path / 'run'}")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "Traceback" not in out, out[-3000:]
    errors = [row for row in out.splitlines() if "DataError" in row]
    assert len(errors) == 1 and "line 10, column S1" in errors[0] and str(bad) in errors[0], out[-2000:]
    assert not (tmp_path / "run" / "results.json").exists()


def test_a_labelled_run_reports_its_anomalies_at_the_end(tmp_path):
    """A run with a label column scores its own data once trained (lstm_ae.anomaly.detect): anomaly/ in the run
    folder, and results.json keeps the threshold, the intervals and the metrics beside the rolling z-score."""
    t = np.arange(400)
    v = np.sin(t / 6) + 0.05 * np.random.default_rng(1).normal(size=400)
    label = np.zeros(400, dtype=int)
    v[300:304] += 4
    label[298:306] = 1
    path = tmp_path / "labelled.csv"
    pd.DataFrame({"t": t, "v": v, "label": label}).to_csv(path, index=False)
    res = run(tmp_path / "run", f"dataset.path={path}", "dataset.label_column=label", "dataset.stride=1",
              "trainer.epochs=5")
    found = res["anomaly"]
    assert 0 <= found["threshold"] < 1 and found["intervals"] >= 1
    assert found["model"]["windows"] == 1 and 0 <= found["model"]["auc_pr"] <= 1 and "auc_pr" in found["baseline"]
    for name in ("scores.csv", "intervals.csv", "metrics.json", "anomaly.png"):
        assert (tmp_path / "run" / "anomaly" / name).is_file(), name
    assert "anomaly" not in run(tmp_path / "plain", f"dataset.path={path}")  # no label column: no detection
