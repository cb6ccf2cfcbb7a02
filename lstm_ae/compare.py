"""Compare finished runs: loss, MSE and accuracy per epoch of each run, one figure per metric.

    python -m lstm_ae.compare RUN_A RUN_B [--labels "row by row" "pixel by pixel"] [--out DIR]

Reads only the run folders (``metrics.csv``, ``results.json``, ``.hydra/``); never trains.
Writes ``compare_loss.png``, ``compare_mse.png``, ``compare_accuracy.png`` (when every run
classifies) and ``compare.csv`` (each run's final metrics) into ``--out`` (default: the current
folder).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import List, Optional, Sequence

import pandas as pd
from omegaconf import OmegaConf

from lstm_ae import plots


def default_label(run_dir: Path) -> str:
    """'<task>, <layout>' from the run's saved config, else the folder name."""
    try:
        cfg = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
        task = str(cfg.task._target_).rsplit(".", 1)[-1].lower()
        layout = cfg.dataset.get("layout")
        return f"{task}, {layout}" if layout else task
    except Exception:  # a folder without Hydra's files still compares
        return run_dir.name


def load_run(run_dir: Path) -> pd.DataFrame:
    metrics = run_dir / "metrics.csv"
    if not metrics.is_file():
        raise SystemExit(f"compare: {run_dir} is not a run folder (no metrics.csv)")
    return pd.read_csv(metrics)


def compare(run_dirs: Sequence[Path], labels: Optional[Sequence[str]] = None, out: Path = Path(".")) -> List[Path]:
    run_dirs = [Path(r) for r in run_dirs]
    labels = list(labels) if labels else [default_label(r) for r in run_dirs]
    if len(labels) != len(run_dirs):
        raise SystemExit(f"compare: {len(run_dirs)} runs but {len(labels)} labels")
    frames = [load_run(r) for r in run_dirs]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for metric, ylabel, log_y in (
        ("loss", "loss", True),
        ("mse", "reconstruction MSE per value", True),
        ("accuracy", "accuracy", False),
    ):
        if all(f"train_{metric}" in f for f in frames):
            written.append(plots.runs(out / f"compare_{metric}.png", frames, labels, metric, ylabel, log_y))
    rows = []
    for run_dir, label in zip(run_dirs, labels):
        results_file = run_dir / "results.json"
        results = json.loads(results_file.read_text()) if results_file.is_file() else {}
        rows.append({"run": label, "run_dir": str(run_dir), **{k: v for k, v in results.items() if k.startswith(("test_", "val_", "train_sec", "best_epoch"))}})
    pd.DataFrame(rows).to_csv(out / "compare.csv", index=False)
    written.append(out / "compare.csv")
    return written


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m lstm_ae.compare", description=(__doc__ or "").split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n"
               "  python -m lstm_ae.compare outputs/reproduce/full/mnist_row_classify "
               "outputs/reproduce/full/mnist_pixel_classify \\\n"
               "      --labels \"row by row\" \"pixel by pixel\" --out compare")
    parser.add_argument("runs", nargs="+", type=Path, metavar="RUN", help="run folders (each with metrics.csv)")
    parser.add_argument("--labels", nargs="+", metavar="LABEL",
                        help="one legend label per run (default: task and layout from each run's config)")
    parser.add_argument("--out", type=Path, default=Path("."), metavar="DIR",
                        help="folder for the figures and compare.csv (default: the current folder)")
    args = parser.parse_args(argv)
    for path in compare(args.runs, args.labels, args.out):
        print(path)


if __name__ == "__main__":
    main(sys.argv[1:])
