"""Throughput of ``python -m lstm_ae.apply`` (time steps per second) on a long series.

    python -m bench.apply_throughput                        # trains a small csv run; 100,000 rows
    python -m bench.apply_throughput --run RUN --rows 20000 --out /tmp/apply.json

Takes a csv run (``--run``) or trains one (``lstm_ae_series.py`` with the project's defaults for
a series -- seq_len 50, hidden 64 -- for one epoch on 2,000 rows: the weights do not change the
time), writes a one-column series of ``--rows`` rows and times :func:`lstm_ae.apply.apply` on it:

- ``batched``: every window (stride 1), each step the mean over its windows;
- ``causal``: the same windows, each step scored by the window ending at it (``--causal``);
- ``live``: a feed scored row by row, one window (the one ending at the new row) per forward pass,
  for the last ``--live-rows`` rows: what a stream pays per arriving row.

``batched`` and ``causal`` include reading the CSV and building the tables, not writing them
(``write_csv_s``: writing the batched tables as CSV). Torch's default threads (the machine's cores).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import List, Optional

import numpy as np
import pandas as pd
import torch

from lstm_ae import apply as ap
from lstm_ae.data.windows import cut_windows, scale_for_inference
from lstm_ae.reproduce import cpu_name
from lstm_ae.trained import load_run

ROOT = Path(__file__).resolve().parents[1]


def series(path: Path, rows: int, seed: int = 0, column: str = "value") -> Path:
    t = np.arange(rows)
    value = np.sin(t / 20) + 0.1 * np.random.default_rng(seed).normal(size=rows)
    pd.DataFrame({"step": t, column: value}).to_csv(path, index=False)
    return path


def train(folder: Path) -> Path:
    data = series(folder / "train.csv", 2000)
    cmd = [sys.executable, str(ROOT / "lstm_ae_series.py"), f"dataset.path={data}", "trainer.epochs=1",
           "trainer.device=cpu", "trainer.progress=false", "task.figures=false", f"hydra.run.dir={folder / 'run'}"]
    subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT)
    return folder / "run"


def live(run, path: Path, rows: int) -> float:
    """Seconds to score the last ``rows`` rows one at a time, each by the window ending at it."""
    values = torch.tensor(pd.read_csv(path).iloc[:, 1:2].to_numpy())  # the value column (after the step)
    T = run.seq_len
    began = time.perf_counter()
    for end in range(len(values) - rows, len(values)):
        win = cut_windows(values[end - T + 1 : end + 1], np.array([0]), T)
        x, lo, span = scale_for_inference(win)
        ap.forward(run, x)
    return time.perf_counter() - began


def main(argv: Optional[List[str]] = None) -> dict:
    p = argparse.ArgumentParser(prog="python -m bench.apply_throughput", description=(__doc__ or "").split("\n")[0])
    p.add_argument("--run", type=Path, help="a csv run of one value column (default: train a small one)")
    p.add_argument("--rows", type=int, default=100_000, help="rows of the series applied to")
    p.add_argument("--live-rows", type=int, default=2_000, help="rows scored one at a time")
    p.add_argument("--out", type=Path, default=ROOT / "bench/results/apply_throughput.json", metavar="FILE")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        run = load_run(args.run or train(tmp))
        column = (run.results.get("features") or ["value"])[0]  # the run's value column, by name
        data = series(tmp / "new.csv", args.rows, seed=1, column=column)
        ap.apply(run, [data], limit=1)  # warm-up (imports, first forward)
        timings = {}
        for name, causal in (("batched", False), ("causal", True)):
            began = time.perf_counter()
            applied = ap.apply(run, [data], causal=causal)
            seconds = time.perf_counter() - began
            timings[name] = {"seconds": round(seconds, 3), "steps_per_s": round(args.rows / seconds, 1),
                             "windows": len(applied.windows)}
            if not causal:
                began = time.perf_counter()
                ap.write(applied, tmp / "out")
                write_s = time.perf_counter() - began
        seconds = live(run, data, args.live_rows)
        timings["live"] = {"seconds": round(seconds, 3), "steps_per_s": round(args.live_rows / seconds, 1),
                           "rows": args.live_rows}
    result = {
        "command": ("python -m bench.apply_throughput " + " ".join(argv if argv is not None else sys.argv[1:])).strip(),
        "date": dt.date.today().isoformat(), "cpu": cpu_name(), "threads": torch.get_num_threads(),
        "torch_version": torch.__version__, "rows": args.rows, "seq_len": run.seq_len, "input_size": run.input_size,
        "hidden_size": int(run.model.model.hidden_size), "batch": ap.BATCH, **timings,
        "write_csv_s": round(write_s, 3),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
