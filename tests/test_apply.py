"""python -m lstm_ae.apply: a trained run applied to new data, per time step and per window.

Tiny csv runs (one series of 120 rows, seq_len 8, one epoch) are applied to new series; every
number apply writes is recomputed here from the model's own output on windows cut and scaled by
hand, so a wrong window, scaling, mean or alignment fails a test.
"""
from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from lstm_ae import apply as ap
from lstm_ae.trained import load_run
from tests.conftest import CPU, NO_FIGURES, TINY_TOY, run_in_process

T = 8
TINY = [f"dataset.seq_len={T}", "model.hidden_size=8", "trainer.epochs=1", "trainer.batch_size=8",
        "trainer.precision=fp32", "trainer.num_threads=1", NO_FIGURES, *CPU]


def series_csv(path, rows: int, scale: float = 1.0, shift: float = 0.0, columns=("a", "b"), label=True, seed=0):
    t = np.arange(rows)
    rng = np.random.default_rng(seed)
    table = {"step": t}
    for k, c in enumerate(columns):
        table[c] = shift + scale * (np.sin(t / (5 + 2 * k)) + 0.1 * rng.normal(size=rows))
    if label:
        table["label"] = (t % 30 == 0).astype(int)
    pd.DataFrame(table).to_csv(path, index=False)
    return path


def train(folder, *overrides):
    proc = run_in_process("lstm_ae_series.py", *TINY, f"hydra.run.dir={folder}", *overrides)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    return folder


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """'window': reconstruct, one value column, each window scaled by its own min-max;
    'train': predict, two value columns (named), a label column, the training rows' min-max."""
    tmp = tmp_path_factory.mktemp("apply")
    one = series_csv(tmp / "one.csv", 120, columns=("a",), label=False)
    two = series_csv(tmp / "two.csv", 120)
    return {"window": train(tmp / "window", f"dataset.path={one}"),
            "train": train(tmp / "train", f"dataset.path={two}", "dataset.scaling=train", "task=predict",
                           "dataset.label_column=label", "dataset.value_columns=[a,b]"),
            "tmp": tmp}


def by_hand(run_folder, values: np.ndarray, scaler=None):
    """Windows (stride 1) of ``values`` (n, m) scaled as the run does, and the model's outputs on them."""
    run = load_run(run_folder)
    win = np.stack([values[s : s + T] for s in range(len(values) - T + 1)])
    if scaler is None:
        lo = win.reshape(len(win), -1).min(axis=1)[:, None, None]
        span = np.maximum(win.reshape(len(win), -1).max(axis=1)[:, None, None] - lo, 1e-8)
    else:
        lo, span = np.array(scaler["lo"])[None, None], np.array(scaler["span"])[None, None]
    x = (win - lo) / span
    with torch.no_grad():
        out = run.model.model(torch.tensor(x, dtype=torch.float32))
    return x.astype(np.float32).astype(np.float64), out, lo, span


def over_windows(per_window: np.ndarray, n: int) -> np.ndarray:
    """(N, T) per-window values of stride-1 windows -> (n,) each step's mean over the windows covering it."""
    total, count = np.zeros(n), np.zeros(n)
    for s, row in enumerate(per_window):
        total[s : s + T] += row
        count[s : s + T] += 1
    return total / count


def test_each_step_gets_the_mean_over_the_windows_covering_it(runs, tmp_path):
    new = series_csv(tmp_path / "new.csv", 40, scale=3.0, shift=50.0, columns=("a",), label=False, seed=5)
    got = ap.apply(runs["window"], [new])
    values = pd.read_csv(new)[["a"]].to_numpy()
    x, out, lo, span = by_hand(runs["window"], values)
    recon = out.reconstruction.double().numpy()
    assert len(got.steps) == 40 and len(got.windows) == 40 - T + 1  # stride 1 by default
    assert got.z.shape == (40 - T + 1, 8) and np.allclose(got.z, out.latent.numpy(), atol=1e-6)
    err, units = (x - recon) ** 2, recon * span + lo
    assert np.allclose(got.steps["a_error"], over_windows(err[:, :, 0], 40), rtol=1e-5, atol=1e-9)
    assert np.allclose(got.steps["error"], got.steps["a_error"])
    assert np.allclose(got.steps["a_recon"], over_windows(units[:, :, 0], 40), rtol=1e-6)
    assert got.steps["windows"].tolist() == [min(t + 1, T, 40 - t) for t in range(40)]
    assert np.array_equal(got.steps["a"], values[:, 0])
    assert np.allclose(got.windows["error"], err.mean(axis=(1, 2)), rtol=1e-5)
    assert list(got.steps["time"].astype(int)) == list(range(40))
    assert got.windows["first_time"].astype(int).tolist() == list(range(len(x)))


def test_causal_scores_each_step_by_the_window_ending_there(runs, tmp_path):
    new = series_csv(tmp_path / "new.csv", 30, columns=("a",), label=False, seed=7)
    got = ap.apply(runs["window"], [new], causal=True).steps
    x, out, *_ = by_hand(runs["window"], pd.read_csv(new)[["a"]].to_numpy())
    err = (x - out.reconstruction.double().numpy()) ** 2
    assert got["a_error"][: T - 1].isna().all() and got["window"][: T - 1].isna().all()
    assert np.allclose(got["a_error"][T - 1 :], err[:, -1, 0], rtol=1e-5, atol=1e-9)
    assert np.allclose(got["window_error"][T - 1 :], err.mean(axis=(1, 2)), rtol=1e-5)
    assert got["window"][T - 1 :].tolist() == list(range(len(x)))
    # no later row enters a step's score: the feed cut after row 20 scores rows 0..20 alike
    cut = tmp_path / "cut.csv"
    pd.read_csv(new)[:21].to_csv(cut, index=False)
    early = ap.apply(runs["window"], [cut], causal=True).steps
    assert np.allclose(early["a_error"][T - 1 :], got["a_error"][T - 1 : 21], rtol=1e-6)


def test_train_scaling_uses_the_runs_own_scaler_and_adds_the_forecast(runs, tmp_path):
    new = series_csv(tmp_path / "new.csv", 25, scale=4.0, shift=-30.0, seed=3)  # another range than training's
    results = json.loads((runs["train"] / "results.json").read_text())
    got = ap.apply(runs["train"], [new])
    values = pd.read_csv(new)[["a", "b"]].to_numpy()
    x, out, lo, span = by_hand(runs["train"], values, results["scaler"])
    assert x.min() < -1  # scaled with the training rows' min-max, not refitted on these rows
    recon = out.reconstruction.double().numpy()
    n = len(values)
    assert np.allclose(got.steps["b_error"], over_windows(((x - recon) ** 2)[:, :, 1], n), rtol=1e-5, atol=1e-9)
    assert np.allclose(got.steps["a_recon"], over_windows((recon * span + lo)[:, :, 0], n), rtol=1e-6)
    pred = out.prediction[:, -1].double().numpy() * span[0] + lo[0]  # window s forecasts row s + T
    assert got.steps[["a_forecast", "b_forecast"]][:T].isna().all().all()
    assert np.allclose(got.steps[["a_forecast", "b_forecast"]][T:], pred[:-1], rtol=1e-5)
    assert np.allclose(got.windows[["next_a", "next_b"]], pred, rtol=1e-5)  # the last: the row after the data
    assert np.array_equal(got.steps["label"], pd.read_csv(new)["label"])  # carried along
    assert "b_error_units" in got.steps and got.summary["scaling"] == "train"


def test_data_without_labels_and_with_stride(runs, tmp_path):
    new = series_csv(tmp_path / "new.csv", 21, label=False)
    got = ap.apply(runs["train"], [new], stride=5)
    assert got.windows["start"].tolist() == [0, 5, 10, 13]  # a last window ends at the last row
    assert (got.steps["windows"] >= 1).all() and "label" not in got.steps


def main_fails(tmp_path, capsys, *args):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exc:
        ap.main([*map(str, args), "--out", str(out)])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and len(err.strip().splitlines()) == 1, err
    assert not out.exists()
    return err


def test_what_does_not_fit_the_run_is_refused_in_one_line(runs, tmp_path, capsys):
    other = series_csv(tmp_path / "other.csv", 30, columns=("a", "c"))
    assert "has no column b" in main_fails(tmp_path, capsys, runs["train"], other)
    wide = series_csv(tmp_path / "wide.csv", 30, columns=("a", "b"), label=False)
    assert "2 value column(s)" in main_fails(tmp_path, capsys, runs["window"], wide)
    short = series_csv(tmp_path / "short.csv", T - 1, columns=("a",), label=False)
    assert f"fewer than one window of the run's seq_len={T}" in main_fails(tmp_path, capsys, runs["window"], short)
    bare = tmp_path / "bare"
    shutil.copytree(runs["window"] / ".hydra", bare / ".hydra")
    assert "has no checkpoints/best.pt" in main_fails(tmp_path, capsys, bare, short)
    assert "--causal" in main_fails(tmp_path, capsys, runs["window"], wide, "--causal", "--stride", "2")
    # the run read value column a (value_columns null: every numeric column): another name, same count, is refused
    renamed = series_csv(tmp_path / "renamed.csv", 30, columns=("x",), label=False)
    assert "value columns x, the run was trained on a" in main_fails(tmp_path, capsys, runs["window"], renamed)
    assert json.loads((runs["window"] / "results.json").read_text())["features"] == ["a"]


def test_the_command_writes_the_tables_z_and_a_summary(runs, tmp_path, capsys):
    new = series_csv(tmp_path / "new.csv", 30, seed=9)
    out = tmp_path / "out"
    ap.main([str(runs["train"]), str(new), "--out", str(out)])
    steps, windows = pd.read_csv(out / "steps.csv"), pd.read_csv(out / "windows.csv")
    api = ap.apply(runs["train"], [new])
    assert np.allclose(steps["error"], api.steps["error"], rtol=1e-7)
    assert len(windows) == 30 - T + 1 and np.load(out / "z.npy").shape == (30 - T + 1, 8)
    summary = json.loads((out / "summary.json").read_text())
    results = json.loads((runs["train"] / "results.json").read_text())
    assert summary["config_sha1"] == results["config_sha1"] and summary["rows"] == 30
    assert summary["files"] == [str(new)]
    with pytest.raises(SystemExit):  # the files are there: refused unless --overwrite
        ap.main([str(runs["train"]), str(new), "--out", str(out)])
    ap.main([str(runs["train"]), str(new), "--out", str(out), "--overwrite"])


def test_a_toy_run_is_applied_to_its_own_test_split(tmp_path):
    proc = run_in_process("lstm_ae_toy.py", *TINY_TOY, "trainer.epochs=1", "trainer.precision=fp32", NO_FIGURES,
                          f"hydra.run.dir={tmp_path / 'toy'}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    run = load_run(tmp_path / "toy")
    got = ap.apply(run)
    from hydra.utils import instantiate

    test = instantiate(run.cfg.dataset).test
    with torch.no_grad():
        recon = run.model.model(test.x).reconstruction
    assert len(got.windows) == len(test) and len(got.steps) == len(test) * 50
    err = ((test.x - recon) ** 2).double().numpy().reshape(-1)
    assert np.allclose(got.steps["value_error"], err, rtol=1e-5, atol=1e-9)
    assert got.steps["label"].sum() == 11 * len(test)  # the dip: 11 steps of each sequence
    with pytest.raises(ap.ConfigError, match="give no DATA"):
        ap.apply(run, ["x.csv"])


def test_the_throughput_bench_runs_on_tiny_settings(runs, tmp_path):
    from bench import apply_throughput

    result = apply_throughput.main(["--run", str(runs["window"]), "--rows", "300", "--live-rows", "20",
                                    "--out", str(tmp_path / "bench.json")])
    saved = json.loads((tmp_path / "bench.json").read_text())
    assert saved["rows"] == 300 and saved == result
    assert all(saved[k]["steps_per_s"] > 0 for k in ("batched", "causal", "live"))


def test_an_sp500_predict_run_is_applied_to_a_price_file(tmp_path):
    from tests.conftest import make_csv, sp500_root

    data = sp500_root(tmp_path)
    proc = run_in_process("lstm_ae_snp500.py", "task=predict", "task.folds=null", f"dataset.root={data}",
                          "dataset.seq_len=10", "dataset.stride=5", "dataset.extra_prices=[low]", "model.hidden_size=4",
                          "trainer.epochs=1", "trainer.num_threads=1", NO_FIGURES, *CPU, f"hydra.run.dir={tmp_path / 'run'}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    new = make_csv(tmp_path / "new", days=30, gz=False, drop=("S03", 5))
    got = ap.apply(tmp_path / "run", [new])
    raw = pd.read_csv(new)
    assert len(got.steps) == len(raw) and got.steps["series"].nunique() == 14  # S03 without its missing day
    assert {"high", "high_recon", "low_error_units", "high_forecast"} <= set(got.steps.columns)
    own = ap.apply(tmp_path / "run", causal=True)  # no DATA: the run's own price file
    assert own.summary["files"] == [str(data / "sp500" / "sp500_2014_2017.csv.gz")] and own.summary["causal"]


def test_an_mnist_classify_run_is_applied_to_its_own_test_split(tmp_path):
    from tests.conftest import write_fake_mnist

    data = write_fake_mnist(tmp_path / "data")
    proc = run_in_process("lstm_ae_mnist.py", "task=classify", f"dataset.root={data}", "dataset.val_size=8",
                          "dataset.shift=0", "model.hidden_size=8", "model.init=default", "trainer.batch_size=16",
                          "trainer.epochs=1", "trainer.num_threads=1", NO_FIGURES, *CPU, f"hydra.run.dir={tmp_path / 'run'}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = ap.apply(tmp_path / "run")
    assert len(got.windows) == 12 and len(got.steps) == 12 * 28 and "p27_error" in got.steps  # a row of 28 pixels a step
    assert got.windows["label"].tolist() == [k % 10 for k in range(12)] and got.windows["predicted"].between(0, 9).all()
    assert got.z.shape == (12, 8) and "p0_error_units" not in got.steps  # pixels / 255 are the model's own units
