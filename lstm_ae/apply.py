"""Apply a trained run to new data: per time step its reconstruction and error, per window its embedding z.

    python -m lstm_ae.apply RUN [DATA ...] --out DIR [--stride S | --causal] [--format csv|parquet]

Rebuilds the run's model from its folder (:func:`lstm_ae.trained.load_run`: ``.hydra/config.yaml``
and ``checkpoints/best.pt``), reads the data through the run's own dataset settings and never trains.

What is read, by the run's dataset:

- ``csv``: DATA (files, folders or globs; none: the run's own ``dataset.path``, every row of every
  series) with the run's layout, time, value, id and label columns, fill and sort
  (:func:`lstm_ae.data.csv.read_for_run`); windows of the run's ``seq_len`` scaled as the run scaled
  its own: ``scaling=window`` each window by its own min and max, ``scaling=train`` with the min-max
  the run fitted on its training rows (``results.json``'s ``scaler``; never refitted on new data);
- ``sp500``: a price file in the Kaggle layout (none: the run's own), every symbol a series of its
  ``price`` and ``extra_prices`` columns, days without those prices left out, windows scaled by their own min and max;
- ``toy``, ``mnist``: the run's own test split, rebuilt from its config (no DATA: these runs read no user files);
  each test sequence is a series of ``seq_len`` steps and one window.

Windows start every ``--stride`` steps (default 1) and never need a step after them; with a stride
> 1 a last window ends at the last step, so every step is in at least one window.

Output, in ``--out``: ``steps.csv`` (``.parquet`` with ``--format parquet``, which needs pyarrow),
one row per time step of each series, in time order:

- ``series``, ``time`` (as written in the file; toy, MNIST: the step 0..seq_len-1), the label column
  when the data has it (toy: ``label`` = 1 inside the dip);
- per feature ``f`` (the value column; ``value`` for one-column series): ``f`` the value (data units),
  ``f_recon`` its reconstruction (data units), ``f_error`` the squared error in the run's scaled units
  (what the model was trained on), ``f_error_units`` in data units (csv, S&P only; toy and MNIST are
  their own units); ``error``: the mean of ``f_error`` over the features -- the step's score;
- default (all windows): every quantity is the mean over the windows covering the step, each window's
  own reconstruction, scaling and error (the error is the mean of the windows' squared errors, not the
  squared error of the mean reconstruction); ``windows``: how many windows cover the step;
- ``--causal``: the step's quantities come from the one window that ends at it (its last position),
  so a step's score depends on no later step and a live feed is scored row by row; ``window``: that
  window's number in the series, ``window_error`` its mean squared error (scaled, every step and
  feature); the first seq_len - 1 steps of a series have no window ending at them: empty;
- runs with a prediction head (task=predict): ``f_forecast``, the one-step forecast of step t made by
  the window of the seq_len steps before it (its head at the last position; data units), and
  ``f_forecast_error`` its squared error in that window's scaled units; empty where no window ends at t - 1.

``windows.csv`` (``.parquet``): one row per window: ``series``, ``window`` (its number in the series),
``start`` (its first step's row in the series, 0-based), ``first_time``, ``last_time``, ``error``
(its mean squared error, scaled units), ``next_f`` (runs with a prediction head: the forecast of the
step after the window, data units; for the last window, the step after the data), ``label`` (1 when a
step of it is labelled 1; MNIST: the image's class), ``predicted`` (classify runs: the class).
``z.npy``: the windows' embeddings z, (windows, hidden_size) float32, rows as in ``windows.csv``.
``summary.json``: the run, its ``config_sha1``, the files read, series, rows, windows, settings, seconds.

Data that does not fit the run (other value columns, another number of features, a series shorter
than one window), a run folder without ``checkpoints/best.pt``: one line, exit status 2, nothing written.
"""
from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Union

import numpy as np
import pandas as pd
import torch

from lstm_ae import run_folder as rf
from lstm_ae.data.csv import Series, read_for_run
from lstm_ae.data.windows import MinMax, cut_windows, inference_starts, scale_for_inference
from lstm_ae.errors import ConfigError, DataError, UserError
from lstm_ae.trained import RunError, SavedRun, load_run

FILES = {"steps": "steps", "windows": "windows", "z": "z.npy", "summary": "summary.json"}  # steps/windows + .csv|.parquet
FORMATS = ("csv", "parquet")
BATCH = 4096  # windows per forward pass
CSV = "lstm_ae.data.csv.load_csv"
SP500 = "lstm_ae.data.sp500.load_sp500"
OWN_TEST_SPLIT = ("lstm_ae.data.toy.load_toy", "lstm_ae.data.mnist.load_mnist")


@dataclass
class Source:
    """What apply reads: the series, their feature names and how their windows are scaled."""

    series: List[Series]
    features: List[str]
    scaling: str  # "window" | "train" | "none" (already in the model's scale)
    scaler: Optional[MinMax] = None  # scaling == "train"
    files: List[str] = field(default_factory=list)
    label_name: Optional[str] = None  # the per-step label column's name
    classes: Optional[np.ndarray] = None  # (series,) a class per series (MNIST), for windows' label

    @property
    def units(self) -> bool:
        return self.scaling != "none"


@dataclass
class Applied:
    """What :func:`apply` returns: the per-step table, the per-window table, z and a summary."""

    steps: pd.DataFrame  # one row per time step (module docstring)
    windows: pd.DataFrame  # one row per window
    z: np.ndarray  # (windows, hidden_size) float32
    summary: Dict[str, Any]


# ------------------------------------------------------------------------------ reading
def read_source(run: SavedRun, paths: Sequence[Union[str, Path]] = ()) -> Source:
    """The data of ``paths`` (or the run's own, see the module docstring) read as the run reads its data."""
    ds, target = run.cfg.dataset, str(run.cfg.dataset.get("_target_"))
    if target in OWN_TEST_SPLIT:
        if paths:
            raise ConfigError(f"a run of {target.rsplit('.', 1)[-1]} is applied to its own test split, not to files: "
                              "give no DATA")
        from hydra.utils import instantiate

        test = instantiate(ds).test
        x = test.x.double().numpy()
        t = np.arange(x.shape[1])
        labels = None
        if test.highlight is not None:  # toy: the dip, 1-based first and last step
            hl = test.highlight.numpy()
            labels = ((t[None] >= hl[:, :1] - 1) & (t[None] <= hl[:, 1:] - 1)).astype(np.int64)
        width = len(str(len(x) - 1))
        series = [Series(f"{i:0{width}d}", Path("test split"), "step", [], t.astype(float), t, x[i], t + 1,
                         None if labels is None else labels[i]) for i in range(len(x))]
        features = ["value"] if x.shape[2] == 1 else [f"p{j}" for j in range(x.shape[2])]
        classes = test.labels.numpy() if test.labels is not None else None
        return Source(series, features, "none", files=[f"{target}: the run's test split"],
                      label_name="label" if labels is not None else None, classes=classes)
    if target == CSV:
        given = [str(p) for p in paths] or [str(ds.path)]
        series, features, files = read_for_run(given, ds, run.input_size, run.seq_len, root=ds.get("root"))
        trained = run.results.get("features")  # the run's value columns, by name (a long layout)
        if trained and str(ds.get("layout", "long")).endswith("long") and list(features) != list(trained):
            raise DataError(f"{', '.join(map(str, files))}: value columns {','.join(features)}, the run was trained on "
                            f"{','.join(trained)}; give data with those columns (in that order), or name them with "
                            "the run's dataset.value_columns")
        scaling, scaler = str(getattr(ds.scaling, "value", ds.scaling)), None
        if scaling == "train":
            saved = run.results.get("scaler")
            if not saved:
                raise RunError(f"{run.folder}/results.json has no scaler (the min-max the run fitted with "
                               "dataset.scaling=train); train the run again to apply it to new data")
            scaler = MinMax(torch.tensor(saved["lo"], dtype=torch.float64), torch.tensor(saved["span"], dtype=torch.float64))
        label = ds.get("label_column")
        return Source(series, features, scaling, scaler, [str(f) for f in files],
                      label_name=label if label and any(s.labels is not None for s in series) else None)
    if target == SP500:
        from omegaconf import OmegaConf

        from lstm_ae.data.sp500 import locate

        columns = [str(ds.get("price", "high"))] + [str(p) for p in ds.get("extra_prices") or []]
        given = [str(p) for p in paths] or [str(locate(ds.get("root"), ds.get("path")))]
        settings = OmegaConf.create({"layout": "long", "time_column": "date", "value_columns": columns,
                                     "id_column": "symbol", "sort": True})
        series, features, files = read_for_run(given, settings, run.input_size, run.seq_len, root=ds.get("root"),
                                               drop_missing=True)
        return Source(series, features, "window", files=[str(f) for f in files])
    raise ConfigError(f"apply does not know the dataset {target} of {run.folder}; it applies runs of dataset=csv, "
                      "sp500, toy and mnist")


# ------------------------------------------------------------------------------ the model
@torch.no_grad()
def forward(run: SavedRun, x: torch.Tensor, batch_size: int = BATCH) -> Dict[str, np.ndarray]:
    """The model's outputs on windows ``x`` ((N, T, m) float32, scaled), by name (``reconstruction``,
    ``z``, and ``prediction``, ``logits`` where the run has those heads), as numpy arrays."""
    outs: Dict[str, List[torch.Tensor]] = {}
    for i in range(0, len(x), batch_size):
        for name, value in run.model(x[i : i + batch_size]).items():
            outs.setdefault(name, []).append(value[:, -1] if name == "prediction" else value)
    return {name: torch.cat(parts).numpy() for name, parts in outs.items()}


# ------------------------------------------------------------------------------ apply
def apply(run: Union[SavedRun, str, Path], paths: Sequence[Union[str, Path]] = (), stride: int = 1,
          causal: bool = False, limit: Optional[int] = None, batch_size: int = BATCH) -> Applied:
    """Apply the run (a folder or :func:`lstm_ae.trained.load_run`'s result) to the data of ``paths``
    (none: the run's own, see the module docstring): every window of the run's seq_len every ``stride``
    steps, scaled as the run scaled its data, through the model. Returns the per-step table, the
    per-window table, z and a summary (columns: the module docstring). ``causal``: each step's
    quantities from the window ending at it (needs ``stride`` 1). ``limit``: the first ``limit`` series only.
    Raises a :class:`lstm_ae.errors.UserError` (one line) for data or a folder that does not fit."""
    began = time.perf_counter()
    if stride < 1:
        raise ConfigError(f"--stride {stride}: give a stride >= 1")
    if causal and stride != 1:
        raise ConfigError(f"--causal scores each step by the window ending at it, which needs every window: "
                          f"leave out --stride {stride} (or give 1)")
    run = run if isinstance(run, SavedRun) else load_run(Path(run))
    src = read_source(run, paths)
    if limit is not None:
        src.series = src.series[:limit]
    T, m = run.seq_len, run.input_size
    if len(src.features) != m:
        raise DataError(f"the data has {len(src.features)} feature(s) per step, the run reads {m}")
    starts = [inference_starts(len(s.values), T, stride) for s in src.series]
    raw = torch.cat([cut_windows(torch.from_numpy(s.values), st, T) for s, st in zip(src.series, starts)])
    if src.scaling == "none":
        x, lo, span = raw.float(), torch.zeros(1, 1, 1, dtype=torch.float64), torch.ones(1, 1, 1, dtype=torch.float64)
    else:
        x, lo, span = scale_for_inference(raw, src.scaler)
    out = forward(run, x, batch_size)
    xs = x.double().numpy()
    recon = out["reconstruction"].astype(np.float64)
    err = (xs - recon) ** 2  # (N, T, m) scaled units, each window its own scaling
    lo_n, span_n = lo.numpy(), span.numpy()
    recon_units = recon * span_n + lo_n
    err_units = (raw.numpy() - recon_units) ** 2
    pred = out.get("prediction")  # (N, m): each window's forecast of the step after it, scaled
    # each window's scaling as (N, m): data = scaled * span + lo
    lo_w, span_w = (np.broadcast_to(a[:, 0], (len(x), m)) for a in (lo_n, span_n))
    pred_units = pred * span_w + lo_w if pred is not None else None

    steps, windows, k = [], [], 0
    for i, (s, st) in enumerate(zip(src.series, starts)):
        w = slice(k, k + len(st))
        k += len(st)
        steps.append(_steps(src, s, st, T, causal, err[w], recon_units[w], err_units[w],
                            None if pred is None else (pred[w], pred_units[w], lo_w[w], span_w[w])))
        table = {"series": s.name, "window": np.arange(len(st)), "start": st, "first_time": s.time_text[st],
                 "last_time": s.time_text[st + T - 1], "error": err[w].mean(axis=(1, 2))}
        if pred is not None:
            for j, f in enumerate(src.features):
                table[f"next_{f}"] = pred_units[w][:, j]
        if src.classes is not None:
            table["label"] = src.classes[i]
        elif s.labels is not None:
            table["label"] = np.array([s.labels[a : a + T].max() for a in st])
        if "logits" in out:
            table["predicted"] = out["logits"][w].argmax(axis=1)
        windows.append(pd.DataFrame(table))
    steps_df, windows_df = pd.concat(steps, ignore_index=True), pd.concat(windows, ignore_index=True)
    man = rf.manifest(run.folder) or {}
    summary = {
        "run": str(run.folder.resolve()), "config_sha1": run.results.get("config_sha1") or man.get("config_sha1"),
        "best_epoch": run.epoch, "dataset": str(run.cfg.dataset.get("_target_")), "files": src.files,
        "series": len(src.series), "rows": len(steps_df), "windows": len(windows_df), "seq_len": T,
        "features": src.features, "stride": stride, "causal": causal, "scaling": src.scaling,
        "forecast": pred is not None, "seconds": round(time.perf_counter() - began, 3),
    }
    return Applied(steps_df, windows_df, out["z"], summary)


def _steps(src: Source, s: Series, starts: np.ndarray, T: int, causal: bool, err, recon_units, err_units,
           pred) -> pd.DataFrame:
    """The per-step table of one series from its windows' (len(starts), T, m) quantities."""
    n, m = len(s.values), len(src.features)
    table: Dict[str, Any] = {"series": np.full(n, s.name, dtype=object), "time": s.time_text}
    if src.label_name and s.labels is not None:
        table[src.label_name] = s.labels
    if causal:  # the window ending at each step (stride 1: window i ends at step i + T - 1)
        ends = starts + T - 1
        e, r, u = (np.full((n, m), np.nan) for _ in range(3))
        e[ends], r[ends], u[ends] = err[:, -1], recon_units[:, -1], err_units[:, -1]
        window, window_error = np.full(n, np.nan), np.full(n, np.nan)
        window[ends], window_error[ends] = np.arange(len(starts)), err.mean(axis=(1, 2))
    else:  # the mean over the windows covering each step
        e, r, u, count = np.zeros((n, m)), np.zeros((n, m)), np.zeros((n, m)), np.zeros(n)
        for j in range(T):  # the starts are distinct: one += per position in the window
            e[starts + j] += err[:, j]
            r[starts + j] += recon_units[:, j]
            u[starts + j] += err_units[:, j]
            count[starts + j] += 1
        e, r, u = e / count[:, None], r / count[:, None], u / count[:, None]
    for j, f in enumerate(src.features):
        table[f] = s.values[:, j]
        table[f"{f}_recon"] = r[:, j]
        table[f"{f}_error"] = e[:, j]
        if src.units:
            table[f"{f}_error_units"] = u[:, j]
    if pred is not None:  # the window ending at step t - 1 forecasts step t
        scaled, units, lo, span = pred
        rows = starts + T
        has = rows < n
        fc, fe = np.full((n, m), np.nan), np.full((n, m), np.nan)
        fc[rows[has]] = units[has]
        fe[rows[has]] = ((s.values[rows[has]] - lo[has]) / span[has] - scaled[has]) ** 2
        for j, f in enumerate(src.features):
            table[f"{f}_forecast"] = fc[:, j]
            table[f"{f}_forecast_error"] = fe[:, j]
    table["error"] = e.mean(axis=1)
    if causal:
        table["window"] = pd.array(np.where(np.isnan(window), pd.NA, window), dtype="Int64")
        table["window_error"] = window_error
    else:
        table["windows"] = count.astype(np.int64)
    return pd.DataFrame(table)


# ------------------------------------------------------------------------------ writing
def outputs(out: Path, fmt: str = "csv") -> Dict[str, Path]:
    """The files :func:`write` writes into ``out``."""
    return {"steps": out / f"{FILES['steps']}.{fmt}", "windows": out / f"{FILES['windows']}.{fmt}",
            "z": out / FILES["z"], "summary": out / FILES["summary"]}


def check_out(out: Path, fmt: str, overwrite: bool) -> None:
    """Refuse (one line) a format without its package, or output files already there."""
    if fmt not in FORMATS:
        raise ConfigError(f"--format {fmt}: give one of {', '.join(FORMATS)}")
    if fmt == "parquet" and importlib.util.find_spec("pyarrow") is None:
        raise ConfigError("--format parquet needs pyarrow (pip install pyarrow); or --format csv")
    refuse_existing(outputs(out, fmt).values(), overwrite)


def refuse_existing(paths: Iterable[Path], overwrite: bool) -> None:
    """Refuse (one line) to write over files already there, unless ``overwrite`` (apply's and anomaly's --out)."""
    there = [p for p in paths if p.exists()]
    if there and not overwrite:
        raise ConfigError(f"{there[0]} exists; give another --out, or --overwrite")


def write(applied: Applied, out: Path, fmt: str = "csv") -> List[Path]:
    """Write ``applied`` into ``out``: steps, windows (csv or parquet), z.npy, summary.json."""
    out.mkdir(parents=True, exist_ok=True)
    files = outputs(out, fmt)
    for name in ("steps", "windows"):
        table = getattr(applied, name)
        if fmt == "csv":
            table.to_csv(files[name], index=False, float_format="%.9g")
        else:
            table.to_parquet(files[name], index=False)
    np.save(files["z"], applied.z)
    rf.write_json(files["summary"], {**applied.summary, "outputs": {k: p.name for k, p in files.items()}})
    return list(files.values())


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m lstm_ae.apply", description=(__doc__ or "").split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  python -m lstm_ae.apply outputs/series/reconstruct/2025-01-01_12-00-00 new.csv --out scored\n"
               "  python -m lstm_ae.apply RUN feed.csv --causal --out live\n"
               "columns and their meaning: python -c 'import lstm_ae.apply as a; help(a)'")
    parser.add_argument("run", type=Path, metavar="RUN", help="a run folder (with .hydra/ and checkpoints/best.pt)")
    parser.add_argument("data", nargs="*", metavar="DATA",
                        help="files, folders or globs (csv, S&P runs); none: the run's own data (toy, MNIST: its test split)")
    parser.add_argument("--out", type=Path, metavar="DIR", required=True, help="folder for the output files")
    parser.add_argument("--stride", type=int, default=1, help="steps between window starts (default 1)")
    parser.add_argument("--causal", action="store_true",
                        help="each step scored by the window ending at it (no later step enters its score)")
    parser.add_argument("--format", choices=FORMATS, default="csv", dest="fmt",
                        help="steps and windows tables as csv (default) or parquet (needs pyarrow)")
    parser.add_argument("--limit", type=int, metavar="N", help="only the first N series (by name)")
    parser.add_argument("--overwrite", action="store_true", help="replace output files already in DIR")
    args = parser.parse_args(argv)
    try:
        check_out(args.out, args.fmt, args.overwrite)
        applied = apply(args.run, args.data, stride=args.stride, causal=args.causal, limit=args.limit)
        paths = write(applied, args.out, args.fmt)
    except UserError as err:
        print(f"apply: {err}", file=sys.stderr)
        sys.exit(2)
    s = applied.summary
    print(f"{s['rows']} steps of {s['series']} series, {s['windows']} windows in {s['seconds']} s")
    for path in paths:
        print(path)


if __name__ == "__main__":
    main(sys.argv[1:])
