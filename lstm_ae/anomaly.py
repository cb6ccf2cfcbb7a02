"""Anomaly detection with a trained run: causal scores in [0, 1], a threshold, flagged intervals, metrics.

    python -m lstm_ae.anomaly RUN [DATA ...] --out DIR [--labels windows.json] [--threshold-quantile Q]

Applies the run causally (:func:`lstm_ae.apply.apply` with ``causal=True``: each step's error from the
one window that ends at it), turns each series' errors into scores, picks a threshold on validation
rows, flags the steps above it, groups them into intervals and, when labels are known, measures them
beside a rolling z-score baseline on the same rows. docs/anomaly.md says the same with the numbers.

**Score** (:func:`likelihood`, after NAB's HTM anomaly likelihood). With e_t the step's error and
``short`` = s, ``long`` = L: m_t = mean(e_{t-s+1} .. e_t); the reference is the m_u of the L steps
u = t-s-L+1 .. t-s (means of windows that end before m_t's window starts; at least ``min_periods``
of them): mu_t, sd_t their mean and standard deviation, sd_t raised to at least
``SD_FLOOR * |mu_t| + 1e-12``; z_t = (m_t - mu_t) / sd_t and q_t = P(N(0,1) > z_t), the upper Gaussian tail.
``mapping="log"`` (default, HTM's log form): score = log(q_t + 1e-10) / log(1e-10) clipped to
[0, 1] (0.5: q = 1e-5; 1: q <= 1e-10); ``"linear"``: score = 1 - q_t. Only rows up to t enter
score t; steps before the first full reference have no score (NaN): the first is at row
seq_len + 2 s + min_periods - 3 (0-based). A tail probability, not an
error in the series' units, so a threshold means the same on every series.

**Baseline** (:func:`rolling_zscore`, a windowed Gaussian of the value): z_t = |x_t - mean| / std
over the ``baseline_window`` rows before t (at least ``min_periods``; several features: the largest
z); the two-sided tail q_t = 2 P(N(0,1) > z_t), mapped as the score.

**Alarms** (:func:`suppress`, ``suppress`` rows, ``suppress_above``; the ``alarm_score`` column): the score
with repeat alarms suppressed, as a stream of alarms (NAB's scorer) wants it: a row scoring >=
``suppress_above`` keeps its score and the ``suppress`` rows after it get 0; then the next row scoring
>= ``suppress_above`` starts again (0 rows: the score itself). Causal. Thresholds, flags, intervals
and metrics use the score before it.

**Threshold** (:func:`threshold`): the ``quantile`` of the validation rows' scores (``--false-alarm-rate
r`` is the quantile 1 - r), raised to at least ``min_threshold``; or a fixed ``--threshold``. A step is
flagged when its score is above it (>). Validation rows: the run's own (split_by=time: each series'
validation part as the loader cuts it; split_by=series: its validation series) when DATA is left
out of a csv run; else the first ``val_share`` of each series' rows. The baseline gets its own
threshold from its scores on the same rows.

**Intervals and events** (:func:`intervals`): runs of consecutive flagged steps of a series, runs
separated by at most ``gap`` unflagged steps joined (default 0: none); each with its start, end,
steps, peak score and the peak's time.

**Metrics** (:func:`evaluate`, with per-step labels 0/1: a label column, or NAB-style windows
``{"<category>/<file>.csv": [[start, end], ...]}`` whose rows start <= time <= end are 1), over the
evaluated rows (those where the score and the baseline are both defined): ``auc_roc`` =
``sklearn.metrics.roc_auc_score``, ``auc_pr`` = ``sklearn.metrics.average_precision_score``
(step-wise, labels against scores, all series pooled); event-wise: a labelled window (a run of
consecutive labelled rows) is *found* when a flagged step falls in it; an event (an interval) is
*true* when one of its steps is labelled; ``recall`` = found / windows, ``precision`` = true events /
events, ``f1`` their harmonic mean (0 when both are 0; null where a share has no denominator).
``nab_standard``, ``nab_reward_low_FP``, ``nab_reward_low_FN`` (:func:`nab_scores`): NAB's score of the alarm
stream (``alarm_score``; the baseline's: its score with repeat alarms suppressed alike) on the same rows, all
series under one threshold, the one that maximises it, as NAB's scorer picks it: early detections in a window
earn more, false alarms cost, 0 = never fires, 100 = every window found at its first row and no false alarm.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np
import pandas as pd
from scipy.stats import norm

from lstm_ae.errors import ConfigError, DataError, UserError

SD_FLOOR = 0.05  # the reference spread is at least this share of its mean: a near-constant error is no alarm
LOG_EPS = 1e-10  # HTM's log form: score 1 at a tail probability of 1e-10
FILES = {"scores": "scores.csv", "intervals": "intervals.csv", "metrics": "metrics.json", "figure": "anomaly.png"}
MAPPINGS = ("log", "linear")
DERIVED = ("error", "score", "baseline_score", "alarm_score", "baseline_alarm_score", "validation", "label", "flagged",
           "baseline_flagged")  # scores.csv's columns after the value column(s), in this order


ERROR = "window_error"  # the error scored by default: the mean over the window ending at the step (NAB subset)
QUANTILE = 0.98  # the threshold: this quantile of the validation rows' scores ...
MIN_THRESHOLD = 0.7  # ... raised to at least this (both chosen by the event F1 on NAB's subset, docs/anomaly.md)


@dataclass(frozen=True)
class Scoring:
    """How errors and values become scores (the module docstring)."""

    short: int = 20  # steps in the recent mean of the error
    long: int = 1000  # recent means in the reference distribution
    min_periods: int = 50  # fewest reference means (baseline: rows) before a step is scored
    mapping: str = "log"  # log | linear: the tail probability q as log(q + 1e-10) / log(1e-10), or 1 - q
    baseline_window: int = 500  # rows before t in the rolling z-score
    suppress: int = 200  # alarm_score: after a row scoring >= suppress_above, the next ``suppress`` rows get 0 (0: none)
    suppress_above: float = 0.6
    # (short, long, suppress, suppress_above and detect's error="window_error": chosen on NAB's development subset
    # by the study of docs/anomaly.md 'Search'; bench.nab takes these defaults)

    def check(self) -> "Scoring":
        for key in ("short", "long", "min_periods", "baseline_window"):
            if getattr(self, key) < 1:
                raise ConfigError(f"--{key.replace('_', '-')} {getattr(self, key)}: give a whole number >= 1")
        if self.suppress < 0:
            raise ConfigError(f"--suppress {self.suppress}: give a whole number of rows >= 0")
        check_fraction("--suppress-above", self.suppress_above, 0.0, 1.0, lower_open=True)
        if self.min_periods > min(self.long, self.baseline_window):
            raise ConfigError(f"--min-periods {self.min_periods} is above --long {self.long} or --baseline-window "
                              f"{self.baseline_window}; give at most the smaller")
        if self.mapping not in MAPPINGS:
            raise ConfigError(f"--mapping {self.mapping}: give one of {', '.join(MAPPINGS)}")
        return self


# ------------------------------------------------------------------------------ scores (arrays)
def to_score(tail: np.ndarray, mapping: str = "log") -> np.ndarray:
    """A tail probability q (NaN: not scored) as a score in [0, 1], higher = more anomalous."""
    tail = np.asarray(tail, dtype=float)
    if mapping == "linear":
        return 1.0 - tail
    with np.errstate(invalid="ignore"):
        return np.clip(np.log(tail + LOG_EPS) / np.log(LOG_EPS), 0.0, 1.0)


def likelihood(errors: Sequence[float], short: int = Scoring.short, long: int = Scoring.long,
               min_periods: int = Scoring.min_periods, mapping: str = Scoring.mapping) -> np.ndarray:
    """Causal scores in [0, 1] of one series' per-step errors (NaN where missing); NaN before the
    first full reference. The module docstring gives the formula."""
    e = pd.Series(np.asarray(errors, dtype=float))
    recent = e.rolling(short, min_periods=short).mean()
    ref = recent.shift(short).rolling(long, min_periods=min_periods)
    mu, sd = ref.mean().to_numpy(), ref.std(ddof=0).to_numpy()
    sd = np.maximum(sd, SD_FLOOR * np.abs(mu) + 1e-12)
    z = (recent.to_numpy() - mu) / sd
    return to_score(norm.sf(z), mapping)  # NaN z -> NaN score


def rolling_zscore(values: np.ndarray, window: int = Scoring.baseline_window, min_periods: int = Scoring.min_periods,
                   mapping: str = Scoring.mapping) -> np.ndarray:
    """The baseline's causal scores of one series' values ((n,) or (n, m)); the module docstring."""
    v = pd.DataFrame(np.asarray(values, dtype=float).reshape(len(values), -1))
    ref = v.shift(1).rolling(window, min_periods=min_periods)
    mu, sd = ref.mean(), ref.std(ddof=0)
    sd = np.maximum(sd, 1e-9 * (1.0 + mu.abs()))
    z = ((v - mu).abs() / sd).to_numpy()
    z = np.where(np.isnan(z).all(axis=1), np.nan, np.nanmax(np.where(np.isnan(z), -np.inf, z), axis=1))
    return to_score(2.0 * norm.sf(z), mapping)


def suppress(scores: np.ndarray, rows: int, above: float = Scoring.suppress_above) -> np.ndarray:
    """Scores with repeat alarms suppressed: a row scoring >= ``above`` (an alarm) keeps its score, the
    ``rows`` rows after it get 0, then the next alarm starts again; NaN (not scored) stays NaN and is no
    alarm. Causal: row t depends on rows <= t only."""
    out = np.asarray(scores, dtype=float).copy()
    last = -rows - 1
    for i in range(len(out)):
        if i - last <= rows:
            out[i] = 0.0 if out[i] == out[i] else out[i]
        elif out[i] >= above:
            last = i
    return out


def threshold(scores: np.ndarray, quantile: float = QUANTILE, min_threshold: float = MIN_THRESHOLD) -> float:
    """The ``quantile`` of the (non-NaN) ``scores``, raised to at least ``min_threshold``."""
    check_fraction("--threshold-quantile", quantile, 0.0, 1.0)
    check_fraction("--min-threshold", min_threshold, 0.0, 1.0, upper_open=True)
    s = np.asarray(scores, dtype=float)
    s = s[~np.isnan(s)]
    if not len(s):
        raise DataError("no validation row has a score (a series' first score is at its row seq_len + 2 short + "
                        "min_periods - 3); give longer series, a larger --val-share, or lower --short / --min-periods")
    return max(float(np.quantile(s, quantile)), float(min_threshold))


def check_fraction(name: str, value: float, lo: float, hi: float, upper_open: bool = False,
                   lower_open: bool = False) -> None:
    bad = not (lo <= value <= hi) or (upper_open and value >= hi) or (lower_open and value <= lo)
    if bad or value != value:
        interval = f"{'(' if lower_open else '['}{lo:g}, {hi:g}{')' if upper_open else ']'}"
        raise ConfigError(f"{name} {value}: give a number in {interval}")


# ------------------------------------------------------------------------------ intervals, labels
def runs(mask: np.ndarray, groups: Optional[np.ndarray] = None, gap: int = 0) -> List[tuple]:
    """(first, last) rows (inclusive) of the runs of True in ``mask``, runs of one group separated by
    at most ``gap`` False rows joined; a run never crosses a change of ``groups``."""
    mask = np.asarray(mask, dtype=bool)
    groups = np.zeros(len(mask), dtype=np.int64) if groups is None else pd.factorize(np.asarray(groups))[0]
    out: List[tuple] = []
    for i in np.flatnonzero(mask):
        if out and groups[i] == groups[out[-1][1]] and i - out[-1][1] - 1 <= gap:
            out[-1] = (out[-1][0], i)
        else:
            out.append((i, i))
    return out


def intervals(flagged: np.ndarray, scores: np.ndarray, time: Optional[Sequence] = None, gap: int = 0) -> pd.DataFrame:
    """One series' flagged intervals: start, end (times; rows without ``time``), steps, peak_score,
    peak_time, start_row, end_row (0-based rows of the series)."""
    time = np.arange(len(flagged)) if time is None else np.asarray(time)
    rows = []
    for a, b in runs(flagged, gap=gap):
        peak = a + int(np.nanargmax(np.asarray(scores[a : b + 1], dtype=float)))
        rows.append({"start": time[a], "end": time[b], "steps": b - a + 1, "peak_score": float(scores[peak]),
                     "peak_time": time[peak], "start_row": a, "end_row": b})
    columns = ["start", "end", "steps", "peak_score", "peak_time", "start_row", "end_row"]
    return pd.DataFrame(rows, columns=columns)


def parse_times(text: Sequence) -> np.ndarray:
    """Times as written (numbers or dates) as float64 or datetime64 values."""
    numbers = pd.to_numeric(pd.Series(text), errors="coerce")
    if numbers.notna().all():
        return numbers.to_numpy(dtype=float)
    return pd.to_datetime(pd.Series(text), format="mixed").to_numpy()


def read_windows(path: Union[str, Path]) -> Dict[str, list]:
    """A NAB-style windows file: ``{"<category>/<file>.csv": [[start, end], ...]}``."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise DataError(f"--labels {path}: cannot read it as JSON ({err}); give a file "
                        '{"<file>.csv": [["start", "end"], ...]}') from None
    if not isinstance(data, dict) or not all(isinstance(v, list) and all(isinstance(w, list) and len(w) == 2 for w in v)
                                             for v in data.values()):
        raise DataError(f"--labels {path}: expected {{\"<file>.csv\": [[start, end], ...]}}, one list of "
                        "[start, end] pairs per file")
    return data


def _stem(key: str) -> str:
    name = key.replace("\\", "/").rsplit("/", 1)[-1]
    for suffix in (".csv.gz", ".csv"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def labels_from_windows(windows: Dict[str, list], series: str, time: Sequence, source: str = "--labels") -> np.ndarray:
    """Per-step 0/1 labels of ``series`` (rows start <= time <= end of one of its windows). Its entry:
    the key whose file name (without .csv/.csv.gz) is the series' name or the part before its '/'.
    A series without an entry, or an entry whose times are not the series' kind: one line."""
    stem = series.split("/", 1)[0]
    keys = [k for k in windows if _stem(k) in (series, stem)]
    if len(keys) != 1:
        what = "no entry" if not keys else f"{len(keys)} entries ({', '.join(keys)})"
        example = next(iter(windows), "none")
        raise DataError(f"{source} has {what} for the series {series}; give one key naming its file "
                        f"(e.g. '<category>/{stem}.csv'; a key there: {example})")
    t = parse_times(time)
    labels = np.zeros(len(t), dtype=np.int64)
    for start, end in windows[keys[0]]:
        try:
            a, b = parse_times([start, end])
            hit = (t >= a) & (t <= b)
        except (ValueError, TypeError):
            raise DataError(f"{source}: window [{start}, {end}] of {keys[0]} is not in the time kind of the "
                            f"series {series} (e.g. {time[0]})") from None
        labels[hit] = 1
    return labels


# ------------------------------------------------------------------------------ metrics
def evaluate(scores: np.ndarray, labels: np.ndarray, flagged: np.ndarray, groups: Optional[np.ndarray] = None,
             gap: int = 0) -> Dict[str, Any]:
    """Step-wise AUC-ROC / AUC-PR and event-wise precision / recall / F1 of one detector on the given
    rows (the module docstring); ``groups``: the series of each row (runs never cross series)."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    scores, labels, flagged = np.asarray(scores, dtype=float), np.asarray(labels, dtype=np.int64), np.asarray(flagged, bool)
    if np.isnan(scores).any():
        raise ValueError("evaluate() takes rows with a score only")
    two = len(np.unique(labels)) == 2
    windows = runs(labels == 1, groups)
    events = runs(flagged, groups, gap)
    found = sum(bool(flagged[a : b + 1].any()) for a, b in windows)
    true = sum(bool(labels[a : b + 1].any()) for a, b in events)
    return {"rows": int(len(scores)), "labelled_rows": int(labels.sum()), "flagged_rows": int(flagged.sum()),
            "auc_roc": float(roc_auc_score(labels, scores)) if two else None,
            "auc_pr": float(average_precision_score(labels, scores)) if two else None,
            **event_scores(len(windows), found, len(events), true)}


def event_scores(windows: int, found: int, events: int, true: int) -> Dict[str, Any]:
    """Precision, recall and F1 from the event counts (null where a share has no denominator)."""
    recall = found / windows if windows else None
    precision = true / events if events else None
    f1 = None
    if recall is not None and precision is not None:
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    elif windows and not events:
        f1 = 0.0  # labelled windows, no alarm
    return {"windows": windows, "windows_found": found, "events": events, "events_true": true,
            "precision": precision, "recall": recall, "f1": f1}


def combine(metrics: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    """Metrics of several files in one: event counts summed (precision, recall, F1 from the sums),
    AUCs averaged over the files that have them (``*_files``: how many)."""
    total = {k: sum(m[k] for m in metrics) for k in ("windows", "windows_found", "events", "events_true")}
    out: Dict[str, Any] = {"files": len(metrics), "rows": sum(m["rows"] for m in metrics)}
    for key in ("auc_roc", "auc_pr"):
        have = [m[key] for m in metrics if m[key] is not None]
        out[key] = float(np.mean(have)) if have else None
        out[f"{key}_files"] = len(have)
    return {**out, **event_scores(total["windows"], total["windows_found"], total["events"], total["events_true"])}


# ------------------------------------------------------------------------------ NAB's scoring rule
# NAB's application profiles (numenta/NAB config/profiles.json): the weights of a found window, a false alarm,
# a missed window
PROFILES = {"standard": (1.0, 0.11, 1.0), "reward_low_FP": (1.0, 0.22, 1.0), "reward_low_FN": (1.0, 0.11, 2.0)}


def _sigmoid_scaled(x: np.ndarray) -> np.ndarray:
    """NAB's scaled sigmoid of a relative position: 2 sigmoid(-5 x) - 1 (x > 3: -1)."""
    with np.errstate(over="ignore"):
        return np.where(x > 3.0, -1.0, 2.0 / (1.0 + np.exp(5.0 * np.asarray(x, dtype=float))) - 1.0)


def nab_scores(alarms: np.ndarray, labels: np.ndarray, scored: Optional[np.ndarray] = None,
               groups: Optional[np.ndarray] = None) -> Dict[str, Any]:
    """NAB's score of an alarm stream (Lavin and Ahmad 2015, NAB's ``run.py --optimize --score --normalize``),
    per profile of :data:`PROFILES`, all series (``groups``) pooled under one threshold.

    A row is a detection when its alarm score is >= the threshold (NaN: 0). A labelled window (a run of
    labelled rows, width W rows, last row b) earns tp * S(-(b - i + 1) / W) / S(-1) for its earliest
    detection i (S: NAB's scaled sigmoid, 2 sigmoid(-5 x) - 1; the window's first row earns tp), or -fn when
    it has none; every detection outside a window costs fp * S(d / (W' - 1)), d rows after the end of the
    previous window of width W' (at most fp, or fp when no window came before; near the window's end less).
    Only ``scored`` rows (NAB: after each file's probation) count; a window without one is neither found nor
    missed. The threshold is the one (of the alarm scores, or none) that maximises the raw sum over all
    series; ``nab_<profile>`` = 100 (raw - null) / (perfect - null), perfect = tp * windows (every window,
    NAB's count), null = the raw score of a constant stream (NAB's null detector), so 0 = never fires and
    100 = every window found at its first row, no false alarm. Details per profile in ``nab``."""
    alarms = np.nan_to_num(np.asarray(alarms, dtype=float), nan=0.0)
    labels = np.asarray(labels, dtype=np.int64)
    n = len(alarms)
    scored = np.ones(n, dtype=bool) if scored is None else np.asarray(scored, dtype=bool)
    if groups is not None and len(groups) != n or len(labels) != n or len(scored) != n:
        raise ValueError("nab_scores() takes alarms, labels, scored and groups of one length")
    windows = runs(labels == 1, groups)
    gid = np.zeros(n, dtype=np.int64) if groups is None else pd.factorize(np.asarray(groups))[0]
    inside = np.full(n, -1, dtype=np.int64)  # each row's window, -1 outside
    position = np.empty(n)  # the relative position NAB's sigmoid takes
    after_window = np.full(n, np.inf)
    for k, (a, b) in enumerate(windows):
        width = b - a + 1
        rows = np.arange(a, b + 1)
        inside[rows] = k
        position[rows] = -(b - rows + 1) / width
        nxt = next((c for c, _ in windows[k + 1 :] if gid[c] == gid[b]), None)
        stop = nxt if nxt is not None else (np.flatnonzero(gid == gid[b])[-1] + 1)
        tail = np.arange(b + 1, stop)
        after_window[tail] = (tail - b) / max(width - 1, 1)
    out_rows = inside < 0
    position[out_rows] = after_window[out_rows]
    shape = _sigmoid_scaled(position)  # in a window: the tp shape; outside: the fp shape (inf -> -1)
    keep = np.flatnonzero(scored)
    order = keep[np.argsort(-alarms[keep], kind="stable")]
    s = alarms[order]
    last_of_tie = np.r_[s[1:] != s[:-1], True] if len(s) else np.zeros(0, dtype=bool)
    live = np.unique(inside[keep][inside[keep] >= 0])  # windows with a scored row
    perfect_count = len(windows)
    result: Dict[str, Any] = {"nab": {}}
    for profile, (tp, fp, fn) in PROFILES.items():
        weight = np.where(inside >= 0, shape * tp / _sigmoid_scaled(-1.0), shape * fp)

        def sweep(stream_order: np.ndarray) -> np.ndarray:
            w = weight[stream_order]
            win = inside[stream_order]
            gain = np.where(win < 0, w, 0.0)  # false alarms add up
            best = pd.Series(np.where(win >= 0, w, -np.inf)).groupby(win).cummax().to_numpy()
            before = pd.Series(best).groupby(win).shift(1).fillna(-fn).to_numpy()
            gain = gain + np.where(win >= 0, np.maximum(best, -fn) - np.maximum(before, -fn), 0.0)
            return -fn * len(live) + np.cumsum(gain)  # the raw score once every row up to k is a detection

        raw = sweep(order)
        totals = np.r_[-fn * len(live), raw[last_of_tie]]  # no detection, then each threshold from the top
        thresholds = np.r_[np.inf, s[last_of_tie]]
        pick = int(np.argmax(totals))  # ties: the highest threshold (NAB's order)
        null_raw = max(-fn * len(live), float(sweep(keep)[-1]) if len(keep) else -fn * len(live))
        perfect = tp * perfect_count
        detected = order[: int(np.flatnonzero(last_of_tie)[pick - 1]) + 1] if pick else order[:0]
        score = 100.0 * (totals[pick] - null_raw) / (perfect - null_raw) if perfect > null_raw else None
        result[f"nab_{profile}"] = None if score is None else round(float(score), 4)
        result["nab"][profile] = {
            "threshold": None if pick == 0 else float(thresholds[pick]), "raw": round(float(totals[pick]), 6),
            "null": round(null_raw, 6), "perfect": perfect, "windows": perfect_count, "windows_scored": len(live),
            "windows_found": int(len(np.unique(inside[detected][inside[detected] >= 0]))),
            "false_alarms": int((inside[detected] < 0).sum())}
    return result


# ------------------------------------------------------------------------------ one run on data
@dataclass
class Detection:
    """What :func:`detect` returns: the per-step table (scores.csv), the intervals, the metrics."""

    steps: pd.DataFrame
    intervals: pd.DataFrame
    metrics: Dict[str, Any]


def own_validation(ds: Any, names: List[str], lengths: List[int]) -> Dict[str, np.ndarray]:
    """Per series, the rows the run validated on (a csv run's own data, in the loader's order)."""
    from lstm_ae.data.windows import split_groups, time_split_sizes

    tf, vf = float(ds.get("test_fraction", 0.2)), float(ds.get("val_fraction", 0.2))
    if str(getattr(ds.get("split_by"), "value", ds.get("split_by") or "time")) == "series":
        val = set(split_groups(names, tf, vf, int(ds.get("seed", 0)))["val"])
        return {n: np.full(k, n in val) for n, k in zip(names, lengths)}
    out = {}
    for name, n in zip(names, lengths):  # as lstm_ae.data.csv.load_csv cuts a series in time
        _, n_val, n_test = time_split_sizes(n, tf, vf)
        rows = np.zeros(n, dtype=bool)
        rows[n - n_test - n_val : n - n_test] = True
        out[name] = rows
    return out


def detect(run: Any, paths: Sequence[Union[str, Path]] = (), labels: Optional[Union[str, Path, dict]] = None,
           scoring: Scoring = Scoring(), quantile: float = QUANTILE, min_threshold: float = MIN_THRESHOLD,
           fixed: Optional[float] = None, val_share: float = 0.15, gap: int = 0, error: str = ERROR) -> Detection:
    """Apply ``run`` causally to ``paths`` (none: the run's own data), score, threshold, flag, group,
    and evaluate against ``labels`` (a windows JSON file or dict; none: the data's label column, if any).
    ``run``: a run folder or :func:`lstm_ae.trained.load_run`'s result, or a list of them trained on the same
    data (an ensemble, e.g. over seeds): each applied causally, their per-step errors averaged.
    ``fixed``: a threshold in [0, 1) instead of the validation quantile. ``error``: the per-step error
    scored (``error``: the step's own; ``window_error``: the mean over the window ending at it)."""
    from lstm_ae.apply import apply
    from lstm_ae.trained import load_run

    scoring.check()
    check_fraction("--val-share", val_share, 0.0, 1.0, lower_open=True)
    if fixed is not None:
        check_fraction("--threshold", fixed, 0.0, 1.0, upper_open=True)
    if error not in ("error", "window_error"):
        raise ConfigError(f"--error {error}: give error or window_error")
    if gap < 0:
        raise ConfigError(f"--gap {gap}: give a whole number >= 0")
    windows = read_windows(labels) if isinstance(labels, (str, Path)) else labels
    members = [r if not isinstance(r, (str, Path)) else load_run(Path(r))
               for r in (run if isinstance(run, (list, tuple)) else [run])]
    run = members[0]
    applied = apply(run, paths, causal=True)
    steps, features = applied.steps, applied.summary["features"]
    for other in members[1:]:  # an ensemble: the mean of the members' errors, step by step
        more = apply(other, paths, causal=True).steps
        if len(more) != len(steps) or not (more["time"].to_numpy() == steps["time"].to_numpy()).all():
            raise DataError("the ensemble's runs read these series differently; give runs trained on the same data")
        for col in ("error", "window_error"):
            steps[col] = steps[col] + more[col]
    for col in ("error", "window_error"):
        steps[col] = steps[col] / len(members)
    ds = run.cfg.dataset
    label_name = ds.get("label_column") or "label"
    names = list(dict.fromkeys(steps["series"]))
    parts = [steps[steps["series"] == n] for n in names]
    own = not paths and str(ds.get("_target_")).endswith("load_csv")
    val = own_validation(ds, names, [len(p) for p in parts]) if own else None
    tables = []
    for name, part in zip(names, parts):
        n = len(part)
        t = {"series": part["series"].to_numpy(), "time": part["time"].to_numpy()}
        for f in features:
            t[f] = part[f].to_numpy()
        t["error"] = part[error].to_numpy(dtype=float)
        t["score"] = likelihood(t["error"], scoring.short, scoring.long, scoring.min_periods, scoring.mapping)
        t["baseline_score"] = rolling_zscore(part[features].to_numpy(), scoring.baseline_window,
                                             scoring.min_periods, scoring.mapping)
        t["alarm_score"] = suppress(t["score"], scoring.suppress, scoring.suppress_above)
        t["baseline_alarm_score"] = suppress(t["baseline_score"], scoring.suppress, scoring.suppress_above)
        t["validation"] = val[name] if val is not None else np.arange(n) < max(1, round(val_share * n))
        if windows is not None:
            t["label"] = labels_from_windows(windows, name, t["time"])
        elif label_name in part:
            t["label"] = part[label_name].to_numpy(dtype=np.int64)
        tables.append(pd.DataFrame(t))
    table = pd.concat(tables, ignore_index=True)
    on_val = table["validation"].to_numpy()
    thresholds = {}
    for det in ("score", "baseline_score"):
        s = table[det].to_numpy()
        thresholds[det] = fixed if fixed is not None else threshold(s[on_val], quantile, min_threshold)
        table[det.replace("score", "flagged")] = (np.nan_to_num(s, nan=-1.0) > thresholds[det]).astype(np.int64)
    table["validation"] = table["validation"].astype(np.int64)
    found = []
    for name in names:
        part = table[table["series"] == name]
        iv = intervals(part["flagged"].to_numpy(), part["score"].to_numpy(), part["time"].to_numpy(), gap)
        found.append(iv.assign(series=name)[["series", *iv.columns]])
    ivs = pd.concat(found, ignore_index=True)
    metrics: Dict[str, Any] = {
        "run": applied.summary["run"] if len(members) == 1 else [str(m.folder.resolve()) for m in members],
        "files": applied.summary["files"], "series": len(names), "rows": len(table),
        "unit": ds.get("unit"),
        "settings": {**asdict(scoring), "error": error, "threshold_quantile": quantile, "min_threshold": min_threshold,
                     "threshold": fixed, "gap": gap,
                     "validation": "the run's validation rows" if own else f"the first {val_share:g} of each series"},
        "threshold": thresholds["score"], "baseline_threshold": thresholds["baseline_score"],
        "validation_rows": int(on_val.sum()), "intervals": len(ivs),
        "flagged_rows": int(table["flagged"].sum()), "baseline_flagged_rows": int(table["baseline_flagged"].sum()),
    }
    if "label" in table:
        rows = table["score"].notna() & table["baseline_score"].notna()
        ev = table[rows]
        groups = ev["series"].to_numpy()
        metrics["evaluated"] = "rows where the score and the baseline are both defined, validation rows included"
        for who, col in (("model", ""), ("baseline", "baseline_")):
            metrics[who] = {**evaluate(ev[f"{col}score"], ev["label"], ev[f"{col}flagged"], groups, gap),
                            **nab_scores(table[f"{col}alarm_score"], table["label"], rows, table["series"])}
    return Detection(table, ivs, metrics)


# ------------------------------------------------------------------------------ writing, the figure
def figure(det: Detection, path: Path, unit: Optional[str] = None, limit: int = 3) -> Path:
    """The first ``limit`` series: value (labelled windows, flagged intervals shaded) over the score
    and its threshold."""
    import matplotlib.pyplot as plt

    from lstm_ae.plots import STYLE, _save

    names = list(dict.fromkeys(det.steps["series"]))[:limit]
    features = [c for c in det.steps.columns[2:] if c not in DERIVED]
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(2 * len(names), 1, figsize=(11, 4.2 * len(names)), sharex=False,
                                 gridspec_kw={"height_ratios": [2, 1] * len(names)}, squeeze=False)
        for k, name in enumerate(names):
            part = det.steps[det.steps["series"] == name]
            t = parse_times(part["time"].to_numpy())
            dates = np.issubdtype(t.dtype, np.datetime64)
            top, bottom = axes[2 * k, 0], axes[2 * k + 1, 0]
            top.plot(t, part[features[0]], lw=0.8, color="C0", label=features[0])
            if "label" in part:
                for j, (a, b) in enumerate(runs(part["label"].to_numpy() == 1)):
                    top.axvspan(t[a], t[b], color="C2", alpha=0.25, lw=0, label="labelled window" if j == 0 else None)
            for j, (a, b) in enumerate(zip(det.intervals.loc[det.intervals["series"] == name, "start_row"],
                                           det.intervals.loc[det.intervals["series"] == name, "end_row"])):
                for ax in (top, bottom):
                    ax.axvspan(t[a], t[b] if b > a else t[min(b + 1, len(t) - 1)], color="C3", alpha=0.35, lw=0,
                               label="flagged" if j == 0 and ax is top else None)
            top.set_ylabel(f"{features[0]} ({unit})" if unit else f"{features[0]} (data units)")
            top.set_title(f"{name}: value, labelled windows and flagged intervals")
            top.legend(loc="upper left")
            bottom.plot(t, part["score"], lw=0.8, color="C1", label="score")
            bottom.plot(t, part["baseline_score"], lw=0.6, color="0.6", label="rolling z-score (baseline)")
            bottom.axhline(det.metrics["threshold"], color="C3", ls="--", lw=1,
                           label=f"threshold {det.metrics['threshold']:.3f}")
            bottom.set_ylim(-0.03, 1.03)
            bottom.set_ylabel("score (0-1)")
            bottom.set_xlabel("time" if dates else "step")
            bottom.legend(loc="upper left", ncol=3)
        return _save(fig, path)


def outputs(out: Path) -> Dict[str, Path]:
    return {k: out / v for k, v in FILES.items()}


def write(det: Detection, out: Path) -> List[Path]:
    """scores.csv, intervals.csv, metrics.json and anomaly.png into ``out``."""
    from lstm_ae import run_folder as rf

    files = outputs(out)
    out.mkdir(parents=True, exist_ok=True)
    det.steps.to_csv(files["scores"], index=False, float_format="%.9g")
    det.intervals.to_csv(files["intervals"], index=False, float_format="%.9g")
    rf.write_json(files["metrics"], det.metrics)
    figure(det, files["figure"], det.metrics.get("unit"))
    return list(files.values())


def main(argv: Optional[Sequence[str]] = None) -> None:
    d = Scoring()
    parser = argparse.ArgumentParser(
        prog="python -m lstm_ae.anomaly", description=(__doc__ or "").split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  python -m lstm_ae.anomaly RUN --out anomalies            # the run's own data\n"
               "  python -m lstm_ae.anomaly RUN new.csv --labels windows.json --out anomalies\n"
               "what each number is: python -c 'import lstm_ae.anomaly as a; help(a)'; docs/anomaly.md")
    parser.add_argument("run", type=Path, metavar="RUN", help="a run folder (with .hydra/ and checkpoints/best.pt)")
    parser.add_argument("data", nargs="*", metavar="DATA", help="files, folders or globs; none: the run's own data")
    parser.add_argument("--out", type=Path, metavar="DIR", required=True, help="folder for the output files")
    parser.add_argument("--labels", type=Path, metavar="JSON", help='windows {"<file>.csv": [[start, end], ...]} '
                        "(NAB's combined_windows.json); default: the data's label column, if any")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--threshold-quantile", type=float, default=QUANTILE, metavar="Q",
                       help=f"threshold: this quantile of the validation rows' scores (default {QUANTILE})")
    group.add_argument("--false-alarm-rate", type=float, metavar="R", help="threshold: quantile 1 - R")
    group.add_argument("--threshold", type=float, metavar="T", help="a fixed threshold in [0, 1)")
    parser.add_argument("--min-threshold", type=float, default=MIN_THRESHOLD,
                        help=f"the quantile raised to at least this ({MIN_THRESHOLD})")
    parser.add_argument("--val-share", type=float, default=0.15,
                        help="new data: the first share of each series' rows for the threshold (default 0.15)")
    parser.add_argument("--short", type=int, default=d.short, help=f"steps in the recent error mean ({d.short})")
    parser.add_argument("--long", type=int, default=d.long, help=f"recent means in the reference ({d.long})")
    parser.add_argument("--min-periods", type=int, default=d.min_periods,
                        help=f"fewest reference means (baseline: rows) before a step is scored ({d.min_periods})")
    parser.add_argument("--mapping", choices=MAPPINGS, default=d.mapping, help="tail probability to score (log)")
    parser.add_argument("--baseline-window", type=int, default=d.baseline_window,
                        help=f"rows in the rolling z-score baseline ({d.baseline_window})")
    parser.add_argument("--suppress", type=int, default=d.suppress, metavar="ROWS",
                        help="alarm_score: after a row scoring >= --suppress-above, the next ROWS rows get 0 "
                             f"(repeat alarms of a stream; default {d.suppress}; 0: none)")
    parser.add_argument("--suppress-above", type=float, default=d.suppress_above,
                        help=f"the score that starts a suppression ({d.suppress_above})")
    parser.add_argument("--gap", type=int, default=0, help="join flagged runs at most this many steps apart (0)")
    parser.add_argument("--error", choices=("error", "window_error"), default=ERROR,
                        help=f"the error scored: the step's own, or its window's mean (default {ERROR})")
    parser.add_argument("--overwrite", action="store_true", help="replace output files already in DIR")
    args = parser.parse_args(argv)
    try:
        from lstm_ae.apply import refuse_existing  # (imports torch: not at module import)

        refuse_existing(outputs(args.out).values(), args.overwrite)
        quantile = args.threshold_quantile
        if args.false_alarm_rate is not None:
            check_fraction("--false-alarm-rate", args.false_alarm_rate, 0.0, 1.0)
            quantile = 1.0 - args.false_alarm_rate
        scoring = Scoring(args.short, args.long, args.min_periods, args.mapping, args.baseline_window, args.suppress,
                          args.suppress_above)
        det = detect(args.run, args.data, args.labels, scoring, quantile, args.min_threshold, args.threshold,
                     args.val_share, args.gap, args.error)
        paths = write(det, args.out)
    except UserError as err:
        print(f"anomaly: {err}", file=sys.stderr)
        sys.exit(2)
    m = det.metrics
    print(f"{m['rows']} steps of {m['series']} series: threshold {m['threshold']:.4f}, {m['intervals']} interval(s), "
          f"{m['flagged_rows']} flagged step(s)")
    for who in ("model", "baseline"):
        if who in m:
            r = m[who]
            print(f"{who:8s} auc_roc {_f(r['auc_roc'])}  auc_pr {_f(r['auc_pr'])}  precision {_f(r['precision'])}  "
                  f"recall {_f(r['recall'])}  f1 {_f(r['f1'])}  NAB standard {_f(r['nab_standard'], 2)}")
    for path in paths:
        print(path)


def _f(x: Optional[float], digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


if __name__ == "__main__":
    main(sys.argv[1:])
