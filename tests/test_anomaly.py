"""lstm_ae.anomaly: causal scores, thresholds, intervals and metrics of a trained run on new series.

A tiny csv run (a noisy sine of 800 rows, seq_len 16, 40 epochs, ~2 s) learns normal behaviour; a
spike, a level shift and a frozen stretch injected into new series must be flagged, the clean
series must not. The formulas (score, baseline, metrics) are checked against numbers worked by hand.
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from lstm_ae import anomaly as an
from lstm_ae.errors import ConfigError, DataError
from tests.conftest import CPU, NO_FIGURES, run_in_process

T, N = 16, 600
AT = 400  # where the anomalies start
SCORING = an.Scoring(short=10, long=200, min_periods=30, baseline_window=200, suppress=0, suppress_above=0.5)  # small series; no suppression


def wave(n: int, seed: int) -> np.ndarray:
    t = np.arange(n)
    return np.sin(2 * np.pi * t / 25) + 0.05 * np.random.default_rng(seed).normal(size=n)


def write_series(path, values, labels=None):
    table = {"step": np.arange(len(values)), "value": values}
    if labels is not None:
        table["label"] = labels
    pd.DataFrame(table).to_csv(path, index=False)
    return path


def injected(kind: str):
    """A new series (seed 1) with ``kind`` injected at row AT, and its labels."""
    v, lab = wave(N, 1), np.zeros(N, dtype=int)
    if kind == "spike":
        v[AT] += 3.0
        lab[AT] = 1
    elif kind == "shift":
        v[AT:] += 1.5
        lab[AT : AT + 10] = 1
    elif kind == "frozen":
        v[AT : AT + 50] = v[AT]
        lab[AT : AT + 50] = 1
    return v, lab


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("anomaly")
    clean = write_series(tmp / "clean_train.csv", wave(800, 0), np.zeros(800, dtype=int))
    folder = tmp / "run"
    proc = run_in_process("lstm_ae_series.py", f"dataset.path={clean}", f"dataset.seq_len={T}", "dataset.stride=1",
                          "dataset.scaling=train", "dataset.label_column=label", "model.hidden_size=16",
                          "trainer.epochs=40", "trainer.batch_size=32", "trainer.precision=fp32",
                          "trainer.num_threads=1", NO_FIGURES, *CPU, f"hydra.run.dir={folder}")
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    return folder


@pytest.mark.parametrize("kind", ["spike", "shift", "frozen"])
def test_injected_anomalies_are_flagged(run, tmp_path, kind):
    v, lab = injected(kind)
    det = an.detect(run, [write_series(tmp_path / f"{kind}.csv", v, lab)], scoring=SCORING, val_share=0.5)
    iv = det.intervals
    assert len(iv) >= 1 and (iv["start_row"] >= AT).all(), iv  # nothing before the anomaly
    first = iv.iloc[0]
    assert first["start_row"] <= AT + 5 and first["peak_score"] > 0.99  # found at once, with a clear score
    assert det.metrics["model"]["windows_found"] == 1 and det.metrics["model"]["recall"] == 1.0
    assert det.metrics["threshold"] == pytest.approx(an.MIN_THRESHOLD)  # the validation quantile is below the floor


def test_a_clean_series_is_not_flagged(run, tmp_path):
    det = an.detect(run, [write_series(tmp_path / "clean.csv", wave(N, 1), np.zeros(N, dtype=int))],
                    scoring=SCORING, val_share=0.5)
    assert det.intervals.empty and det.metrics["flagged_rows"] == 0
    assert np.nanmax(det.steps["score"]) < 0.5
    m = det.metrics["model"]
    assert m["windows"] == 0 and m["events"] == 0 and m["auc_roc"] is None and m["f1"] is None


def test_scores_are_causal(run, tmp_path):
    rng = np.random.default_rng(3)
    e, x = rng.gamma(2.0, size=400), rng.normal(size=400)
    e2, x2 = e.copy(), x.copy()
    e2[250:] *= 7.0
    x2[250:] += 9.0
    for a, b in ((an.likelihood(e), an.likelihood(e2)), (an.rolling_zscore(x), an.rolling_zscore(x2))):
        assert np.array_equal(a[:250], b[:250], equal_nan=True) and not np.allclose(a[250:], b[250:], equal_nan=True)
    # end to end: the series cut after row 450 scores rows 0..450 alike
    v, lab = injected("shift")
    whole = an.detect(run, [write_series(tmp_path / "s.csv", v, lab)], scoring=SCORING).steps
    cut = an.detect(run, [write_series(tmp_path / "s.csv", v[:451], lab[:451])], scoring=SCORING).steps
    for col in ("error", "score", "baseline_score"):
        assert np.allclose(whole[col][:451], cut[col], rtol=1e-6, equal_nan=True), col


def test_the_likelihood_is_the_tail_of_the_recent_mean_against_earlier_means():
    e = np.array([1.0, 2.0, 1.0, 3.0, 2.0, 2.0, 9.0, 1.0])
    got = an.likelihood(e, short=2, long=3, min_periods=2, mapping="linear")
    means = np.convolve(e, [0.5, 0.5], "valid")  # m_t for t = 1..7
    assert np.isnan(got[:4]).all()  # m_3's reference m_1 alone (< min_periods)
    t = 6  # m_6 = 5.5 against m_2..m_4 (the three means ending before m_6's window)
    ref = means[2 - 1 : 4]
    z = (means[t - 1] - ref.mean()) / ref.std()
    assert got[t] == pytest.approx(norm.cdf(z), rel=1e-9)
    log = an.likelihood(e, short=2, long=3, min_periods=2)
    assert log[t] == pytest.approx(np.log(norm.sf(z) + 1e-10) / np.log(1e-10), rel=1e-9)
    assert ((log[4:] >= 0) & (log[4:] <= 1)).all()
    flat = 0.2 + 1e-9 * np.random.default_rng(0).normal(size=200)  # a near-constant error: no alarm
    assert np.nanmax(an.likelihood(flat, short=2, long=10, min_periods=2)) < 0.05


def test_the_baseline_is_a_rolling_z_score_of_the_value():
    x = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    got = an.rolling_zscore(x, window=3, min_periods=2, mapping="linear")
    assert np.isnan(got[:2]).all()
    z = (5.0 - 3.0) / np.std([2.0, 3.0, 4.0])  # the 3 rows before t = 4
    assert got[4] == pytest.approx(1 - 2 * norm.sf(z), rel=1e-12)
    two = an.rolling_zscore(np.stack([x, -x[::-1]], axis=1), window=3, min_periods=2, mapping="linear")
    assert two[4] == pytest.approx(got[4])  # several features: the largest z


def test_metrics_by_hand():
    labels = np.array([0, 0, 1, 1, 0, 0, 0, 1, 0, 0])
    flagged = np.array([0, 1, 1, 0, 0, 1, 0, 0, 0, 0])
    scores = np.array([0.1, 0.6, 0.9, 0.4, 0.2, 0.7, 0.05, 0.5, 0.3, 0.15])
    m = an.evaluate(scores, labels, flagged)
    # positives 0.9, 0.5, 0.4 above 7, 5, 5 of the 7 negatives; AP: hits at ranks 1, 4, 5
    assert m["auc_roc"] == pytest.approx(17 / 21) and m["auc_pr"] == pytest.approx((1 + 2 / 4 + 3 / 5) / 3)
    # windows [2, 3] (found: row 2 flagged) and [7] (missed); events [1, 2] (true) and [5] (false)
    assert (m["windows"], m["windows_found"], m["events"], m["events_true"]) == (2, 1, 2, 1)
    assert m["precision"] == 0.5 and m["recall"] == 0.5 and m["f1"] == pytest.approx(0.5)
    joined = an.evaluate(scores, labels, flagged, gap=2)  # [1, 2] and [5] 2 rows apart: one true event
    assert (joined["events"], joined["precision"], joined["f1"]) == (1, 1.0, pytest.approx(2 * 0.5 / 1.5))
    groups = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1, 1])
    split = an.evaluate(scores, labels, np.array([0, 0, 0, 0, 1, 1, 0, 0, 0, 0]), groups)  # rows 4, 5: two series
    assert split["events"] == 2 and split["events_true"] == 0 and split["f1"] == 0.0
    quiet = an.evaluate(scores, labels, np.zeros(10))
    assert quiet["precision"] is None and quiet["recall"] == 0.0 and quiet["f1"] == 0.0
    both = an.combine([m, joined])
    assert (both["windows"], both["windows_found"], both["events"], both["events_true"]) == (4, 2, 3, 2)
    assert both["f1"] == pytest.approx(2 * (2 / 3) * 0.5 / (2 / 3 + 0.5)) and both["auc_roc"] == pytest.approx(17 / 21)


def S(x):  # NAB's scaled sigmoid, by hand
    return 2 / (1 + np.exp(5 * x)) - 1


def test_nab_scores_by_hand():
    """NAB's scoring rule (nab/sweeper.py) worked by hand on one series of 100 rows, a window at rows 40-49."""
    labels = np.zeros(100, dtype=int)
    labels[40:50] = 1

    def stream(**at):
        a = np.zeros(100)
        for row, value in at.items():
            a[int(row[1:])] = value
        return a

    first = an.nab_scores(stream(r40=1.0), labels)  # found at its first row, no false alarm
    assert first["nab_standard"] == pytest.approx(100) and first["nab_reward_low_FN"] == pytest.approx(100)
    d = first["nab"]["standard"]
    assert (d["threshold"], d["raw"], d["null"], d["perfect"], d["windows_found"], d["false_alarms"]) == (
        1.0, pytest.approx(1.0), -1.0, 1.0, 1, 0)
    late = an.nab_scores(stream(r49=1.0), labels)["nab_standard"]  # the window's last row: S(-1/10) / S(-1)
    assert late == pytest.approx(100 * (S(-0.1) / S(-1) + 1) / 2, abs=1e-3)
    # a false alarm before the window scoring higher than the hit: the threshold 0.9 takes both (1 - 0.11)
    both = an.nab_scores(stream(r10=1.0, r45=0.9), labels)
    assert both["nab"]["standard"]["threshold"] == 0.9 and both["nab"]["standard"]["false_alarms"] == 1
    hit = S(-5 / 10) / S(-1)
    assert both["nab_standard"] == pytest.approx(100 * (hit - 0.11 + 1) / 2, abs=1e-3)
    assert both["nab_reward_low_FP"] == pytest.approx(100 * (hit - 0.22 + 1) / 2, abs=1e-3)
    # 20 false alarms above a late hit cost more than a miss (standard: no threshold), less than low_FN's miss of 2
    many = an.nab_scores(stream(r49=0.9, **{f"r{r}": 1.0 for r in range(20)}), labels)
    assert many["nab"]["standard"]["threshold"] is None and many["nab_standard"] == 0.0
    assert many["nab"]["reward_low_FN"]["threshold"] == 0.9
    assert many["nab_reward_low_FN"] == pytest.approx(100 * (S(-0.1) / S(-1) - 2.2 + 2) / 3, abs=1e-3)
    # a false alarm just after the window costs less: S(1 / 9) of 0.11 at row 50, the full 0.11 at row 99
    near, far = (an.nab_scores(stream(r40=1.0, **{f"r{r}": 1.0}), labels) for r in (50, 99))
    assert near["nab_standard"] == pytest.approx(100 * (1 + 0.11 * S(1 / 9) + 1) / 2, abs=1e-3)
    assert far["nab_standard"] == pytest.approx(100 * (1 - 0.11 + 1) / 2, abs=1e-3)
    assert an.nab_scores(np.zeros(100), labels)["nab_standard"] == 0.0  # never fires
    assert an.nab_scores(np.full(100, np.nan), labels)["nab"]["standard"]["threshold"] is None
    # rows not scored (a probation) neither earn nor cost; a window with no scored row is neither found nor missed,
    # but NAB's perfect score counts it; two series share one threshold
    two = np.r_[labels, labels]
    scored = np.r_[np.arange(100) >= 60, np.ones(100, bool)]
    pooled = an.nab_scores(np.r_[stream(r40=1.0, r70=1.0), stream(r40=0.5)], two, scored, np.repeat([0, 1], 100))
    d = pooled["nab"]["standard"]
    assert (d["windows"], d["windows_scored"], d["null"], d["perfect"]) == (2, 1, -1.0, 2.0)
    assert d["threshold"] == 0.5 and d["windows_found"] == 1 and d["false_alarms"] == 1
    assert pooled["nab_standard"] == pytest.approx(100 * (1 - 0.11 + 1) / 3, abs=1e-3)


def test_intervals_and_threshold():
    flagged = np.array([0, 1, 1, 1, 0, 0, 1, 0, 1])
    scores = np.array([0.1, 0.6, 0.95, 0.7, 0.2, 0.3, 0.8, 0.1, 0.9])
    iv = an.intervals(flagged, scores, time=np.array([f"t{i}" for i in range(9)]))
    assert iv[["start", "end", "steps", "peak_score", "peak_time"]].values.tolist() == [
        ["t1", "t3", 3, 0.95, "t2"], ["t6", "t6", 1, 0.8, "t6"], ["t8", "t8", 1, 0.9, "t8"]]
    assert an.intervals(flagged, scores, gap=1)[["start_row", "end_row"]].values.tolist() == [[1, 3], [6, 8]]
    s = np.r_[np.linspace(0, 0.9, 101), np.nan]
    assert an.threshold(s, 0.9, 0.0) == pytest.approx(0.81) and an.threshold(s, 0.9, 0.85) == 0.85
    for bad in (dict(quantile=1.5), dict(min_threshold=1.0), dict(quantile=-0.1)):
        with pytest.raises(ConfigError, match=r"give a number in \[0, 1"):
            an.threshold(s, **{"quantile": 0.99, "min_threshold": 0.5, **bad})
    with pytest.raises(DataError, match="no validation row has a score"):
        an.threshold(np.full(5, np.nan))


def test_suppress_keeps_the_first_alarm_and_zeroes_the_rows_after_it():
    s = np.array([np.nan, 0.1, 0.6, 0.9, 0.2, 0.7, 0.3, 0.8, 0.95, 0.4, np.nan])
    np.testing.assert_array_equal(an.suppress(s, 2), [np.nan, 0.1, 0.6, 0, 0, 0.7, 0, 0, 0.95, 0, np.nan])
    np.testing.assert_array_equal(an.suppress(s, 2, above=0.75), [np.nan, 0.1, 0.6, 0.9, 0, 0, 0.3, 0.8, 0, 0, np.nan])
    np.testing.assert_array_equal(an.suppress(s, 0), s)
    for t in range(len(s)):  # causal: row t depends on rows <= t only
        changed = s.copy()
        changed[t + 1 :] = 1.0
        np.testing.assert_array_equal(an.suppress(changed, 2)[: t + 1], an.suppress(s, 2)[: t + 1])
    for bad, says in ((dict(suppress=-1), "--suppress -1"), (dict(suppress_above=0.0), "--suppress-above 0.0")):
        with pytest.raises(ConfigError, match=says):
            an.Scoring(**bad).check()


def test_detect_gives_the_alarm_score(run, tmp_path):
    v, _ = injected("shift")
    data = write_series(tmp_path / "s.csv", v)
    plain = an.detect(run, [data], scoring=SCORING).steps
    np.testing.assert_array_equal(plain["alarm_score"], plain["score"])  # suppress 0: the score itself
    quiet = an.detect(run, [data], scoring=an.Scoring(**{**SCORING.__dict__, "suppress": 50})).steps
    np.testing.assert_array_equal(quiet["score"], plain["score"])
    np.testing.assert_array_equal(quiet["alarm_score"], an.suppress(plain["score"].to_numpy(), 50, above=0.5))
    assert (quiet["alarm_score"] >= 0.5).sum() < (plain["score"] >= 0.5).sum()


def test_labels_from_nab_windows():
    time = ["2014-02-14 14:30:00", "2014-02-14 14:35:00", "2014-02-14 14:40:00", "2014-02-14 14:45:00"]
    windows = {"realKnownCause/machine.csv": [["2014-02-14 14:35:00.000000", "2014-02-14 14:40:00.000000"]],
               "other/x.csv": []}
    assert an.labels_from_windows(windows, "machine", time).tolist() == [0, 1, 1, 0]
    with pytest.raises(DataError, match="has no entry for the series pump; give one key naming its file"):
        an.labels_from_windows(windows, "pump", time)


def test_the_command_writes_scores_intervals_metrics_and_a_figure(run, tmp_path, capsys):
    v, lab = injected("spike")
    data = write_series(tmp_path / "spike.csv", v)  # no label column: the windows file labels it
    labels = tmp_path / "windows.json"
    labels.write_text(json.dumps({"synthetic/spike.csv": [[str(AT - 2), str(AT + 2)]]}))
    out = tmp_path / "out"
    an.main([str(run), str(data), "--out", str(out), "--labels", str(labels), "--short", "10", "--long", "200", "--min-periods", "30",
             "--baseline-window", "200", "--val-share", "0.5", "--suppress", "20", "--suppress-above", "0.3"])
    assert "model    auc_roc" in capsys.readouterr().out
    scores = pd.read_csv(out / "scores.csv")
    assert list(scores.columns) == ["series", "time", "value", "error", "score", "baseline_score", "alarm_score",
                                    "baseline_alarm_score", "validation", "label", "flagged", "baseline_flagged"]
    np.testing.assert_array_equal(scores["alarm_score"], an.suppress(scores["score"].to_numpy(), 20, 0.3))
    alarms = np.flatnonzero(scores["alarm_score"] >= 0.3)  # repeat alarms 20 rows apart at least
    assert len(alarms) and (np.diff(alarms) > 20).all() and (scores["score"] >= 0.3).sum() > len(alarms)
    assert scores["label"].sum() == 5 and scores["validation"].sum() == N // 2
    iv = pd.read_csv(out / "intervals.csv")
    assert list(iv.columns[:6]) == ["series", "start", "end", "steps", "peak_score", "peak_time"]
    assert iv["start"].iloc[0] == AT
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model"]["windows_found"] == 1 and "auc_pr" in metrics["baseline"]
    assert (out / "anomaly.png").stat().st_size > 10_000


def test_the_runs_own_data_takes_its_validation_rows(run, tmp_path):
    det = an.detect(run, scoring=SCORING)  # 800 rows: test 160, validation round(640 * 0.2) = 128
    assert np.flatnonzero(det.steps["validation"]).tolist() == list(range(512, 640))
    assert "the run's validation rows" == det.metrics["settings"]["validation"]


@pytest.mark.parametrize("args, says", [
    (["--threshold-quantile", "1.5"], "--threshold-quantile 1.5: give a number in [0, 1]"),
    (["--threshold", "1"], "--threshold 1.0: give a number in [0, 1)"),
    (["--false-alarm-rate", "-0.1"], "--false-alarm-rate -0.1: give a number in [0, 1]"),
    (["--labels", "WINDOWS"], "has no entry for the series clean; give one key naming its file"),
])
def test_bad_input_is_one_line(run, tmp_path, capsys, args, says):
    data = write_series(tmp_path / "clean.csv", wave(N, 1))
    (tmp_path / "w.json").write_text(json.dumps({"realKnownCause/other.csv": []}))
    args = [str(tmp_path / "w.json") if a == "WINDOWS" else a for a in args]
    with pytest.raises(SystemExit) as stop:
        an.main([str(run), str(data), "--out", str(tmp_path / "out"), *args])
    err = capsys.readouterr().err.strip()
    assert stop.value.code == 2 and says in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "out").exists()


def test_an_ensemble_averages_its_members_errors(run, tmp_path):
    """detect([a, b]): each run applied causally, the per-step errors averaged before scoring."""
    import torch

    from lstm_ae.trained import load_run

    v, _ = injected("spike")
    data = write_series(tmp_path / "s.csv", v)
    a, b = load_run(run), load_run(run)
    with torch.no_grad():
        for p in b.model.parameters():
            p.add_(0.05 * torch.randn_like(p, generator=torch.Generator().manual_seed(0)) if p.dim() > 1 else 0.0)
    one, two = an.detect(a, [data], scoring=SCORING).steps, an.detect(b, [data], scoring=SCORING).steps
    both = an.detect([a, b], [data], scoring=SCORING)
    assert not np.allclose(one["error"], two["error"], equal_nan=True)
    for col in ("error",):
        np.testing.assert_allclose(both.steps[col], (one[col] + two[col]) / 2, rtol=1e-6)
    np.testing.assert_allclose(both.steps["score"], an.likelihood(both.steps["error"], SCORING.short, SCORING.long,
                                                                  SCORING.min_periods, SCORING.mapping), rtol=1e-9)
    assert both.metrics["run"] == [str(a.folder.resolve())] * 2
