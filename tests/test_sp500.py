"""S&P 500 sequences, the one-step head and forecasts: tiny synthetic CSVs with the real columns."""
import gzip
import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from lstm_ae import forecast
from lstm_ae.data.sp500 import load_sp500, scale_windows
from lstm_ae.errors import ConfigError
from lstm_ae.model import AEOutput, LSTMAutoencoder
from tests.conftest import SHARED_DATA, run_script

DAYS = 41
STOCKS = [f"S{i:02d}" for i in range(12)] + ["AMZN", "GOOGL"]


def make_csv(folder, days=DAYS, gz=True, drop=("S03", 5)):
    """Random-walk prices for STOCKS over ``days`` business days; ``drop`` removes one day of one stock."""
    rng = np.random.default_rng(0)
    dates = pd.bdate_range("2014-01-02", periods=days)
    rows = []
    for k, sym in enumerate(STOCKS):
        price = 10.0 * (k + 1) * np.exp(np.cumsum(rng.normal(0, 0.02, days)))
        for d, p in zip(dates, price):
            rows.append((sym, d.strftime("%Y-%m-%d"), p, p * 1.01, p * 0.99, p, 1000))
    df = pd.DataFrame(rows, columns=["symbol", "date", "open", "high", "low", "close", "volume"])
    if drop:
        sym, day = drop
        df = df.drop(df.index[(df.symbol == sym)][day])
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / ("prices.csv.gz" if gz else "prices.csv")
    with (gzip.open(path, "wt") if gz else open(path, "w")) as f:
        df.to_csv(f, index=False)
    return path


@pytest.fixture(scope="module")
def csv(tmp_path_factory):
    return make_csv(tmp_path_factory.mktemp("sp500"))


@pytest.mark.parametrize("gz", [True, False])
def test_equal_length_windows(tmp_path, gz):
    path = make_csv(tmp_path, gz=gz)
    s = load_sp500(path=str(path), seq_len=10, test_fraction=0.25, val_fraction=0.25)
    stocks = sum(len(v) for v in s.meta["symbols"].values())
    assert stocks == len(STOCKS) - 1  # S03 misses a day
    assert "S03" not in sum(s.meta["symbols"].values(), [])
    windows_per_stock = (DAYS - 1) // 10  # each window needs its next day
    assert len(s.train) + len(s.val) + len(s.test) == stocks * windows_per_stock
    assert s.train.x.shape[1:] == (10, 1) and s.train.y.shape == (len(s.train), 1)


def test_whole_series_when_seq_len_is_null(csv):
    s = load_sp500(path=str(csv), seq_len=None)
    assert s.seq_len == DAYS - 1
    with pytest.raises(ConfigError, match="dataset.seq_len=41 is longer"):
        load_sp500(path=str(csv), seq_len=DAYS)


def test_each_window_is_scaled_by_its_own_days_only(csv):
    s = load_sp500(path=str(csv), seq_len=10, stride=5)
    x = s.test.x[:, :, 0]
    assert torch.allclose(x.min(1).values, torch.zeros(len(x))) and torch.allclose(x.max(1).values, torch.ones(len(x)))
    # the stored lo/span turn the scaled window back into the stock's prices
    table = s.meta["table"]
    symbol, start = s.meta["test_windows"][1]
    usd = x[1].double() * s.meta["test_span"][1] + s.meta["test_lo"][1]
    assert np.allclose(usd.numpy(), table[symbol].to_numpy()[start : start + 10], rtol=1e-6)
    # the next day is scaled with the window's numbers, and never enters them
    nxt = table[symbol].to_numpy()[start + 10]
    assert s.test.y[1, 0].item() == pytest.approx((nxt - s.meta["test_lo"][1].item()) / s.meta["test_span"][1].item(), rel=1e-5)


def test_changing_the_future_changes_no_earlier_window(tmp_path):
    """Raising a stock's last days leaves every window that ends before them unchanged."""
    a = load_sp500(path=str(make_csv(tmp_path / "a")), seq_len=10)
    path = make_csv(tmp_path / "b")
    df = pd.read_csv(path)
    late = df["date"] >= sorted(df["date"].unique())[-5]
    df.loc[late, ["open", "high", "low", "close"]] *= 3
    df.to_csv(path, index=False)
    b = load_sp500(path=str(path), seq_len=10)
    early = [i for i, (_, start) in enumerate(a.meta["test_windows"]) if start + 10 < DAYS - 5]
    assert early and torch.equal(a.test.x[early], b.test.x[early]) and torch.equal(a.test.y[early], b.test.y[early])


def test_folds_are_disjoint_by_stock(csv):
    folds = [load_sp500(path=str(csv), seq_len=10, folds=4, fold=k, test_fraction=0.2) for k in range(4)]
    test = set(folds[0].meta["symbols"]["test"])
    vals = [set(f.meta["symbols"]["val"]) for f in folds]
    for f, val in zip(folds, vals):
        train = set(f.meta["symbols"]["train"])
        assert set(f.meta["symbols"]["test"]) == test  # one held-out test set for every fold
        assert not (train & val) and not (train & test) and not (val & test)
    assert all(not (vals[i] & vals[j]) for i in range(4) for j in range(i + 1, 4))
    assert set().union(*vals) == set(folds[0].meta["symbols"]["train"]) | vals[0]


@pytest.mark.parametrize("folds", [1, 100])
def test_bad_fold_counts(csv, folds):
    with pytest.raises(ConfigError, match="task.folds"):
        load_sp500(path=str(csv), seq_len=10, folds=folds, fold=0)


def test_prediction_head_is_causal():
    """y~_t depends on x_1..x_t only: changing x_{t+2}.. leaves y~_1..y~_{t+1} unchanged."""
    torch.manual_seed(0)
    model = LSTMAutoencoder(input_size=1, hidden_size=8, predict_next=True).eval()
    x = torch.rand(2, 12, 1)
    t = 5  # 0-based: y~ at index t predicts x at index t+1
    changed = x.clone()
    changed[:, t + 1 :] = torch.rand(2, 12 - t - 1, 1)
    a, b = model(x).prediction, model(changed).prediction
    assert a.shape == x.shape
    assert torch.equal(a[:, : t + 1], b[:, : t + 1])
    assert not torch.allclose(a[:, t + 1 :], b[:, t + 1 :])  # later outputs do read the change
    # the reconstruction, made from z, reads the whole sequence
    assert not torch.allclose(model(x).reconstruction[:, 0], model(changed).reconstruction[:, 0])


class WindowMax(torch.nn.Module):
    """A stub whose one-step forecast is 1.0 in window units: the maximum of the window it reads."""

    def __init__(self):
        super().__init__()
        self.p = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return AEOutput(reconstruction=x, latent=x[:, -1], prediction=torch.ones_like(x) + 0 * self.p)


def test_multi_step_feeds_back_its_own_forecasts():
    series = torch.tensor([[1.0, 3.0, 2.0, 5.0, 4.0, 6.0, 1.0, 0.0]])
    context = 4
    blind = series.clone()
    blind[:, context:] = float("nan")  # the second half is never read
    multi = forecast.multi_step(WindowMax(), blind, context)
    assert torch.allclose(multi, torch.full((1, 4), 5.0))  # max of [1,3,2,5], then of windows of forecasts
    one = forecast.one_step(WindowMax(), series, context)
    assert torch.allclose(one, torch.tensor([[5.0, 5.0, 6.0, 6.0]]))  # max of each true window
    base = forecast.persistence(series, context)
    assert base["onestep"].tolist() == [[5.0, 4.0, 6.0, 1.0]] and base["multistep"].tolist() == [[5.0] * 4]
    err = forecast.errors(series, context, {"multistep": multi})
    assert err["multistep_mse_usd"] == pytest.approx(np.mean([1, 1, 16, 25]))
    assert err["multistep_mse"] == pytest.approx(np.mean([1, 1, 16, 25]) / 16)  # span of the first half: 4


def test_scale_windows_keeps_flat_windows_finite():
    scaled, lo, span = scale_windows(torch.tensor([[2.0, 2.0, 2.0]]))
    assert torch.isfinite(scaled).all() and lo.item() == 2.0


# ----------------------------------------------------------------------------- runs
COMMON = ["trainer.epochs=1", "trainer.progress=false", "model.hidden_size=8", "dataset.seq_len=10", "task.folds=2"]


def test_plot_stocks(csv, tmp_path):
    r = run_script("lstm_ae_snp500.py", "task=plot_stocks", f"dataset.path={csv}", f"hydra.run.dir={tmp_path}")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "daily_high.png").stat().st_size > 10_000
    assert json.loads((tmp_path / "results.json").read_text())["days"] == {"AMZN": DAYS, "GOOGL": DAYS}


def test_plot_stocks_unknown_symbol(csv, tmp_path):
    r = run_script("lstm_ae_snp500.py", "task=plot_stocks", "task.symbols=[AMZN,NOPE]", f"dataset.path={csv}",
                   f"hydra.run.dir={tmp_path}")
    assert r.returncode == 2
    assert "symbol(s) NOPE not in the price file" in r.stdout + r.stderr
    assert "Traceback" not in r.stdout + r.stderr
    assert not (tmp_path / "daily_high.png").exists()


def test_reconstruct_run_with_cross_validation(csv, tmp_path):
    r = run_script("lstm_ae_snp500.py", "task=reconstruct", *COMMON, f"dataset.path={csv}", f"hydra.run.dir={tmp_path}")
    assert r.returncode == 0, r.stderr
    for name in ["results.json", "metrics.csv", "folds.csv", "loss.png", "reconstructions.png",
                 "checkpoints/best.pt", "fold_0/metrics.csv", "fold_1/metrics.csv"]:
        assert (tmp_path / name).is_file(), name
    res = json.loads((tmp_path / "results.json").read_text())
    assert len(res["fold_val_mse"]) == 2 and res["val_mse"] == min(res["fold_val_mse"])
    assert res["test_mse_usd"] > 0 and math.isclose(res["test_rmse_usd"], res["test_mse_usd"] ** 0.5)
    assert pd.read_csv(tmp_path / "folds.csv")["fold"].tolist() == [0, 1]


def test_predict_run(csv, tmp_path):
    r = run_script("lstm_ae_snp500.py", "task=predict", *COMMON, f"dataset.path={csv}", f"hydra.run.dir={tmp_path}")
    assert r.returncode == 0, r.stderr
    for name in ["training_loss.png", "prediction_loss.png", "multistep.png", "reconstructions.png"]:
        assert (tmp_path / name).stat().st_size > 10_000, name
    res = json.loads((tmp_path / "results.json").read_text())
    for key in ["test_onestep_mse", "test_multistep_mse", "baseline_test_onestep_mse", "baseline_test_multistep_mse"]:
        assert res[key] >= 0 and res[f"{key}_usd"] >= 0, key
    assert res["objective"] == "val_pred_mse" and res["forecast_context_days"] == 10
    assert res["forecast_blocks"] == 3 * 2  # 3 test stocks (20 % of 13) x 2 blocks of 20 days in 41
    df = pd.read_csv(tmp_path / "metrics.csv")
    assert {"train_pred_mse", "val_pred_mse", "val_next_mse", "train_mse"} <= set(df.columns)


def test_predict_needs_stock_data(tmp_path):
    r = run_script("lstm_ae_toy.py", "task=predict", "dataset.num_sequences=30", "trainer.epochs=1",
                   f"hydra.run.dir={tmp_path}")
    assert r.returncode == 2 and "only dataset=sp500 provides" in r.stdout + r.stderr


def test_folds_need_a_dataset_that_supports_them(tmp_path):
    r = run_script("lstm_ae_toy.py", "task.folds=3", "dataset.num_sequences=30", "trainer.epochs=1",
                   f"hydra.run.dir={tmp_path}")
    assert r.returncode == 2 and "task.folds" in r.stdout + r.stderr


@pytest.mark.skipif(not (SHARED_DATA / "sp500").is_dir(), reason="../shared/data not present")
def test_real_data_sequences():
    s = load_sp500(root=str(SHARED_DATA), seq_len=50, folds=5, fold=0)
    stocks = {k: len(v) for k, v in s.meta["symbols"].items()}
    assert sum(stocks.values()) == 477 and stocks["test"] == 95  # complete daily highs
    assert len(s.meta["dates"]) == 1007 and len(s.test) == 95 * 20
