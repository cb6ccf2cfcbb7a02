"""S&P 500 sequences, the one-step head and forecasts: tiny synthetic CSVs with the real columns."""
import math

import numpy as np
import pandas as pd
import pytest
import torch

from lstm_ae import forecast
from lstm_ae.data import group_folds
from lstm_ae.data.sp500 import load_sp500, scale_windows
from lstm_ae.config import validate
from lstm_ae.errors import ConfigError, DataError
from lstm_ae.experiment import train_and_test
from lstm_ae.model import AEOutput, LSTMAutoencoder
from lstm_ae.tasks import Predict
from tests.conftest import CPU, CPU_BF16, DAYS, SHARED_DATA, STOCKS, compose_cfg, make_csv


def groups(split, splits):
    return {splits.group_names[g] for g in split.group.tolist()}

@pytest.fixture(scope="module")
def csv(tmp_path_factory):
    return make_csv(tmp_path_factory.mktemp("sp500"))


@pytest.mark.parametrize("gz", [True, False])
def test_equal_length_windows(tmp_path, gz):
    path = make_csv(tmp_path, gz=gz)
    s = load_sp500(path=str(path), seq_len=10, test_fraction=0.25, val_fraction=0.25)
    stocks = len(s.group_names)
    assert stocks == len(STOCKS) - 1 and "S03" not in s.group_names  # S03 misses a day
    parts = [groups(split, s) for split in (s.train, s.val, s.test)]
    assert sum(map(len, parts)) == stocks and set().union(*parts) == set(s.group_names)  # a stock is in one part
    windows_per_stock = (DAYS - 1) // 10  # each window needs its next day
    assert len(s.train) + len(s.val) + len(s.test) == stocks * windows_per_stock
    assert s.train.x.shape[1:] == (10, 1) and s.train.next_value.shape == (len(s.train), 1)
    assert s.unit == "USD" and s.value_name == "daily high" and s.num_classes is None
    assert list(s.overview.columns) == ["AMZN", "GOOGL"] and len(s.overview) == DAYS


def test_whole_series_when_seq_len_is_null(csv):
    s = load_sp500(path=str(csv), seq_len=None)
    assert s.seq_len == DAYS - 1
    with pytest.raises(ConfigError, match="dataset.seq_len=41 is longer"):
        load_sp500(path=str(csv), seq_len=DAYS)


def test_each_window_is_scaled_by_its_own_days_only(csv):
    s = load_sp500(path=str(csv), seq_len=10, stride=5)
    x = s.test.x[:, :, 0]
    assert torch.allclose(x.min(1).values, torch.zeros(len(x))) and torch.allclose(x.max(1).values, torch.ones(len(x)))
    # each window's offset and scale turn it back into the stock's prices on its dates
    table = pd.read_csv(csv).pivot(index="date", columns="symbol", values="high")
    symbol, start = s.group_names[int(s.test.group[1])], int(s.test.start[1])
    usd = s.test[1:2].in_units(x[1:2])[0]
    assert np.allclose(usd.numpy(), table[symbol].to_numpy()[start : start + 10], rtol=1e-6)
    assert str(s.dates[start].date()) == table.index[start]
    # the next day is scaled with the window's numbers, and never enters them
    nxt = table[symbol].to_numpy()[start + 10]
    lo, span = s.test.offset[1].item(), s.test.scale[1].item()
    assert s.test.next_value[1, 0].item() == pytest.approx((nxt - lo) / span, rel=1e-5)
    assert torch.equal(s.series[s.series_names.index(symbol), :, 0], torch.tensor(table[symbol].to_numpy()))


def test_extra_prices_are_more_channels_of_one_scaling(csv):
    """dataset.extra_prices: each day holds the price, then the extra columns, all scaled by the
    window's one min and max, so every channel goes back to USD with the same offset and scale."""
    s = load_sp500(path=str(csv), seq_len=10, stride=5, extra_prices=["low", "close"])
    assert s.num_features == 3 and s.train.next_value.shape == (len(s.train), 3) and s.series.shape[2] == 3
    x = s.test.x
    assert torch.allclose(x.amin((1, 2)), torch.zeros(len(x))) and torch.allclose(x.amax((1, 2)), torch.ones(len(x)))
    assert (x[..., 1] < x[..., 0]).all()  # the low below the high: one scale for both
    df = pd.read_csv(csv)
    symbol, start = s.group_names[int(s.test.group[1])], int(s.test.start[1])
    usd = s.test[1:2].in_units(x[1:2])[0]
    for c, column in enumerate(["high", "low", "close"]):
        prices = df.pivot(index="date", columns="symbol", values=column)[symbol].to_numpy()
        assert np.allclose(usd[:, c].numpy(), prices[start : start + 10], rtol=1e-6), column
        assert torch.equal(s.series[s.series_names.index(symbol), :, c], torch.tensor(prices))
    one = load_sp500(path=str(csv), seq_len=10, stride=5)
    assert torch.equal(one.test.group, s.test.group)  # the same stocks and windows
    with pytest.raises(ConfigError, match="repeats a column"):
        load_sp500(path=str(csv), seq_len=10, extra_prices=["close", "high"])


def test_changing_the_future_changes_no_earlier_window(tmp_path):
    """Raising a stock's last days leaves every window that ends before them unchanged."""
    a = load_sp500(path=str(make_csv(tmp_path / "a")), seq_len=10)
    path = make_csv(tmp_path / "b")
    df = pd.read_csv(path)
    late = df["date"] >= sorted(df["date"].unique())[-5]
    df.loc[late, ["open", "high", "low", "close"]] *= 3
    df.to_csv(path, index=False)
    b = load_sp500(path=str(path), seq_len=10)
    early = [i for i, start in enumerate(a.test.start.tolist()) if start + 10 < DAYS - 5]
    assert early and torch.equal(a.test.x[early], b.test.x[early])
    assert torch.equal(a.test.next_value[early], b.test.next_value[early])


def test_folds_are_disjoint_by_stock(csv):
    s = load_sp500(path=str(csv), seq_len=10, test_fraction=0.2)
    folds = group_folds(s, 4)
    pool = groups(s.train, s) | groups(s.val, s)
    vals = [groups(f.val, f) for f in folds]
    for f, val in zip(folds, vals):
        train = groups(f.train, f)
        assert f.test is s.test  # one held-out test set for every fold
        assert not (train & val) and not (train & groups(s.test, s)) and train | val == pool
        assert len(f.train) + len(f.val) == len(s.train) + len(s.val)
        assert f.train.group.tolist() == sorted(f.train.group.tolist(), key=lambda g: s.group_names[g])  # by name
    assert all(not (vals[i] & vals[j]) for i in range(4) for j in range(i + 1, 4))
    assert set().union(*vals) == pool
    # the specification (and the loader before generic folds): the complete stocks, sorted, in a seeded
    # permutation; the first 20 % are the test stocks, the rest cut into contiguous blocks, one per fold
    symbols = sorted(set(STOCKS) - {"S03"})
    shuffled = [symbols[i] for i in np.random.default_rng(0).permutation(len(symbols))]
    rest = shuffled[round(len(symbols) * 0.2):]
    assert groups(s.test, s) == set(shuffled[: round(len(symbols) * 0.2)])
    assert vals == [{rest[i] for i in block} for block in np.array_split(np.arange(len(rest)), 4)]
    assert groups(s.val, s) == set(rest[: round(len(rest) * 0.2)])  # without folds: the first 20 % of the rest


@pytest.mark.parametrize("folds", [1, 100])
def test_bad_fold_counts(csv, folds):
    with pytest.raises(ConfigError, match="task.folds"):
        group_folds(load_sp500(path=str(csv), seq_len=10), folds)


def test_every_field_of_a_split_moves_with_it(csv):
    """Batches index every field with one index tensor on the training device: all must be there."""
    moved = load_sp500(path=str(csv), seq_len=10).train.to("meta")
    tensors = {name: t for name, t in vars(moved).items() if t is not None}
    assert {"x", "next_value", "group", "start", "offset", "scale"} <= set(tensors)
    assert all(t.device.type == "meta" for t in tensors.values())
    assert moved[torch.tensor([0, 2], device="meta")].group.device.type == "meta"


def test_unknown_plot_symbol(csv):
    with pytest.raises(DataError, match=r"symbol\(s\) NOPE not in the price file.*dataset.plot_symbols"):
        load_sp500(path=str(csv), plot_symbols=["AMZN", "NOPE"])


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


@pytest.mark.parametrize("pred_loss", ["all", "last"])
def test_the_prediction_loss_trains_every_position_or_only_the_last(pred_loss):
    """pred_loss=last: only y~_T (its target, the day after the window, outside the window's
    scaling, as in a forecast) gets a gradient, and next_mse is the objective."""
    from lstm_ae.data import Split

    x = torch.rand(4, 6, 1)
    batch = Split(x=x, next_value=torch.rand(4, 1))
    prediction = torch.zeros_like(x, requires_grad=True)
    task = Predict(pred_loss=pred_loss)
    parts = task.losses(AEOutput(reconstruction=x, latent=x[:, -1], prediction=prediction), batch)
    parts["loss"].backward()
    grad_per_step = prediction.grad.abs().sum(dim=(0, 2))
    assert grad_per_step[-1] > 0
    assert (grad_per_step[:-1] > 0).all() if pred_loss == "all" else (grad_per_step[:-1] == 0).all()
    assert task.objective == ("pred_mse" if pred_loss == "all" else "next_mse")
    assert torch.isclose(parts["loss"], parts["pred_mse" if pred_loss == "all" else "next_mse"])  # recon 0 here


def window_max(x):
    """A stand-in for Trainer.predict whose one-step forecast is 1.0 in window units: the maximum of the window."""
    return AEOutput(reconstruction=x, latent=x[:, -1], prediction=torch.ones_like(x))


def test_multi_step_feeds_back_its_own_forecasts():
    series = torch.tensor([[1.0, 3.0, 2.0, 5.0, 4.0, 6.0, 1.0, 0.0]]).unsqueeze(-1)
    context = 4
    blind = series.clone()
    blind[:, context:] = float("nan")  # the second half is never read
    model = forecast.model_next_value(window_max)
    multi = forecast.multi_step(model, blind, context)
    assert torch.allclose(multi, torch.full((1, 4), 5.0))  # max of [1,3,2,5], then of windows of forecasts
    one = forecast.one_step(model, series, context)
    assert torch.allclose(one, torch.tensor([[5.0, 5.0, 6.0, 6.0]]))  # max of each true window
    base = forecast.persistence(series, context)
    assert base["onestep"].tolist() == [[5.0, 4.0, 6.0, 1.0]] and base["multistep"].tolist() == [[5.0] * 4]
    err = forecast.errors(series, context, {"multistep": multi})
    assert err["multistep_mse_usd"] == pytest.approx(np.mean([1, 1, 16, 25]))
    assert err["multistep_mse"] == pytest.approx(np.mean([1, 1, 16, 25]) / 16)  # span of the first half: 4


def test_linear_ar_recovers_a_linear_rule_in_window_units():
    g = torch.Generator().manual_seed(0)
    windows = torch.rand(300, 6, 1, generator=g)
    windows[:, 0], windows[:, 1] = 0.0, 1.0  # scaled windows span [0, 1], as the data's do
    targets = 0.1 + 0.3 * windows[:, -2] + 0.5 * windows[:, -1]
    ar = forecast.LinearAR.fit(windows, targets, order=2)
    assert ar.order == 2 and ar.weights[:, 0].tolist() == pytest.approx([0.3, 0.5]) and ar.bias.item() == pytest.approx(0.1)
    # in prices: each window scaled by its own min and max, forecast, scaled back
    prices = 50.0 + 20.0 * windows[:4].double()
    assert ar(prices)[:, 0].tolist() == pytest.approx((50.0 + 20.0 * targets[:4, 0].double()).tolist())
    # one step and multi step go through the same forecaster as the model's
    series = torch.cat([prices, prices], dim=1)
    assert forecast.one_step(ar, series, 6)[:, 0].tolist() == pytest.approx(ar(prices)[:, 0].tolist())
    assert forecast.multi_step(ar, series, 6)[:, 0].tolist() == pytest.approx(ar(prices)[:, 0].tolist())
    with pytest.raises(ValueError, match="order 7 must be in 1 .. 6"):
        forecast.LinearAR.fit(windows, targets, order=7)


def test_linear_ar_on_several_channels_reads_across_them_and_feeds_all_back():
    """With extra prices the baseline is a vector AR: tomorrow's high from today's close, say; multi
    step feeds every channel's forecast back."""
    g = torch.Generator().manual_seed(0)
    windows = torch.rand(400, 5, 2, generator=g)
    windows[:, 0, 0], windows[:, 1, 0] = 0.0, 1.0
    targets = torch.stack([0.2 + 0.7 * windows[:, -1, 1], 0.5 * windows[:, -1, 0]], dim=1)  # high <- close, close <- high
    ar = forecast.LinearAR.fit(windows, targets, order=1)
    assert ar.order == 1 and ar.weights.flatten().tolist() == pytest.approx([0.0, 0.5, 0.7, 0.0], abs=1e-6)
    assert ar.bias.tolist() == pytest.approx([0.2, 0.0], abs=1e-6)
    # multi step: day 1 from the true window, day 2 from day 1's forecast of both channels
    prices = torch.tensor([[[0.0, 1.0], [1.0, 0.0], [0.0, 0.0], [0.0, 0.0], [0.4, 0.6]]], dtype=torch.float64)
    series = torch.cat([prices, torch.full((1, 2, 2), float("nan"), dtype=torch.float64)], dim=1)
    first = ar(prices)[0]  # span 1, offset 0: (0.2 + 0.7 * 0.6, 0.5 * 0.4) = (0.62, 0.2)
    assert first.tolist() == pytest.approx([0.62, 0.2])
    second = ar(torch.cat([prices[:, 1:], first.view(1, 1, 2)], dim=1))[0, 0]
    assert forecast.multi_step(ar, series, 5)[0].tolist() == pytest.approx([0.62, second.item()])
    assert second.item() == pytest.approx(0.2 + 0.7 * 0.2)


def test_the_ar_baseline_is_fitted_on_training_windows_only(csv):
    splits = load_sp500(path=str(csv), seq_len=10)
    task = Predict(ar_order=3)
    base = task.baseline(splits)
    assert {"baseline_test_ar_next_mse", "baseline_test_ar_onestep_mse_usd", "baseline_test_ar_multistep_mse_usd"} <= set(base)
    weights = task.linear_ar(splits).weights.clone()
    splits.test.x.mul_(0.5)  # the test windows do not enter the fit
    assert torch.equal(task.linear_ar(splits).weights, weights)
    splits.train.x.mul_(0.5)
    assert not torch.equal(task.linear_ar(splits).weights, weights)
    assert Predict().linear_ar(splits).order == 10  # task.ar_order null: min(20, the window length)


def test_ar_order_longer_than_the_window_is_refused():
    with pytest.raises(ConfigError, match=r"task.ar_order must be <= dataset.seq_len \(10"):
        validate(compose_cfg("snp500", ["task=predict", "dataset.seq_len=10", "task.ar_order=11"]))
    validate(compose_cfg("snp500", ["task=predict", "dataset.seq_len=10", "task.ar_order=10"]))


def test_scale_windows_keeps_flat_windows_finite():
    scaled, lo, span = scale_windows(torch.tensor([[2.0, 2.0, 2.0]]))
    assert torch.isfinite(scaled).all() and lo.item() == 2.0


# ----------------------------------------------------------------------------- runs
COMMON = [*CPU, "trainer.epochs=1", "model.hidden_size=8", "dataset.seq_len=10", "task.folds=2"]


def run(csv, tmp_path, *overrides):
    cfg = compose_cfg("snp500", [f"dataset.path={csv}", *COMMON, *overrides])
    return train_and_test(cfg, tmp_path), cfg


def test_reconstruct_run_with_cross_validation(csv, tmp_path):
    res, _ = run(csv, tmp_path, "task=reconstruct")
    for name in ["results.json", "metrics.csv", "folds.csv", "loss.png", "reconstructions.png", "daily_high.png",
                 "checkpoints/best.pt", "fold_0/metrics.csv", "fold_1/metrics.csv"]:
        assert (tmp_path / name).is_file(), name
    assert len(res["fold_val_mse"]) == 2 and res["val_mse"] == min(res["fold_val_mse"])
    assert res["test_mse_usd"] > 0 and math.isclose(res["test_rmse_usd"], res["test_mse_usd"] ** 0.5)
    assert pd.read_csv(tmp_path / "folds.csv")["fold"].tolist() == [0, 1]


def test_predict_run(csv, tmp_path):
    res, cfg = run(csv, tmp_path, "task=predict", "dataset.plot_symbols=[]")
    for name in ["training_loss.png", "prediction_loss.png", "multistep.png", "reconstructions.png"]:
        assert (tmp_path / name).stat().st_size > 10_000, name
    assert not (tmp_path / "daily_high.png").exists()  # no symbols, no overview
    for key in ["test_onestep_mse", "test_multistep_mse", "baseline_test_onestep_mse", "baseline_test_multistep_mse",
                "baseline_test_ar_onestep_mse", "baseline_test_ar_multistep_mse"]:
        assert res[key] >= 0 and res[f"{key}_usd"] >= 0, key
    assert res["objective"] == "val_pred_mse" and res["forecast_context_days"] == 10
    assert res["forecast_blocks"] == 3 * 2  # 3 test stocks (20 % of 13) x 2 blocks of 20 days in 41
    assert res["eval_precision"] == (cfg.trainer.precision.value if CPU_BF16 else "fp32")
    df = pd.read_csv(tmp_path / "metrics.csv")
    assert {"train_pred_mse", "val_pred_mse", "val_next_mse", "train_mse"} <= set(df.columns)


def test_no_figures_when_told(csv, tmp_path):
    """task.figures=false (a large sweep's jobs): not one PNG, not even the overview; the rest as always."""
    res, _ = run(csv, tmp_path, "task=predict", "task.figures=false")
    assert not list(tmp_path.rglob("*.png"))
    for name in ["results.json", "metrics.csv", "folds.csv", "checkpoints/best.pt"]:
        assert (tmp_path / name).is_file(), name
    assert res["test_onestep_mse_usd"] > 0


def test_predict_run_with_extra_prices(csv, tmp_path):
    """Four prices a day in, the high forecast and scored: the model reads m = 4, the AR baseline too."""
    res, _ = run(csv, tmp_path, "task=predict", "dataset.plot_symbols=[]", "task.folds=null",
                 "dataset.extra_prices=[open,low,close]")
    weights = torch.load(tmp_path / "checkpoints" / "best.pt", weights_only=False)["model"]
    assert weights["encoder.weight_ih_l0"].shape[1] == 4  # the encoder reads four prices a day
    assert res["test_onestep_mse_usd"] > 0 and res["baseline_test_ar_onestep_mse_usd"] > 0
    assert (tmp_path / "multistep.png").stat().st_size > 10_000
    with pytest.raises(Exception, match="extra_prices"):
        compose_cfg("snp500", ["dataset.extra_prices=[volume]"])


def test_overview_figure_draws_the_chosen_symbols(csv, tmp_path):
    _, cfg = run(csv, tmp_path, "dataset.plot_symbols=[S01,S02]", "dataset.price=low", "task.folds=null")
    assert (tmp_path / "daily_low.png").stat().st_size > 10_000 and not (tmp_path / "daily_high.png").exists()


@pytest.mark.skipif(not (SHARED_DATA / "sp500").is_dir(), reason="../shared/data not present")
def test_real_data_sequences():
    s = load_sp500(root=str(SHARED_DATA), seq_len=50)
    folds = group_folds(s, 5)
    assert len(s.group_names) == 477 and len(s.series_names) == 95  # complete daily highs; 20 % held out
    assert len(s.dates) == 1007 and len(s.test) == 95 * 20
    assert len(folds[0].val) + len(folds[0].train) == (477 - 95) * 20
