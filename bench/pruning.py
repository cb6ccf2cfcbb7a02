"""The toy Optuna search with and without pruning: epochs trained, wall time, best validation MSE.

    python -m bench.pruning                                   # the full search: 20 trials x 150 epochs, twice
    python -m bench.pruning --trials 12 --epochs 40 dataset.num_sequences=2000   # a shorter one

Both searches run ``hparams_search=toy_optuna`` with the same sampler seed and trial budget, one
with ``hydra/sweeper/pruner=none``, one with toy_optuna's ``median`` pruner, each in its own
study (a fresh SQLite file) and sweep folder under a temporary folder. Epochs trained are counted
from the job folders' ``metrics.csv``; the wall time is the whole sweep's (interpreter start
included). Results go to ``--out`` as JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import List, Optional

ROOT = Path(__file__).resolve().parents[1]


def search(folder: Path, pruner: str, trials: int, epochs: int, overrides: List[str]) -> dict:
    """One sweep into ``folder``; its epochs, wall time and study results."""
    import optuna
    import pandas as pd

    db = folder / "study.db"
    cmd = [sys.executable, str(ROOT / "lstm_ae_toy.py"), "-m", "hparams_search=toy_optuna",
           f"hydra/sweeper/pruner={pruner}", f"hydra.sweeper.n_trials={trials}", f"trainer.epochs={epochs}",
           f"hydra.sweeper.storage=sqlite:///{db}", f"hydra.sweep.dir={folder / 'sweep'}", "trainer.progress=false",
           *overrides]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"the {pruner} search failed:\n{proc.stderr[-2000:]}")
    epochs_trained = sum(len(pd.read_csv(m)) for m in (folder / "sweep").glob("*/metrics.csv"))
    study = optuna.load_study(study_name="toy_optuna", storage=f"sqlite:///{db}")
    states = [t.state.name for t in study.trials]
    return {"pruner": pruner, "wall_seconds": round(seconds, 1), "epochs_trained": epochs_trained,
            "best_val_mse": study.best_value, "best_params": study.best_params,
            "complete": states.count("COMPLETE"), "pruned": states.count("PRUNED"), "failed": states.count("FAIL")}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.pruning", description=(__doc__ or "").split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="example:\n  python -m bench.pruning --trials 12 --epochs 40 dataset.num_sequences=2000")
    p.add_argument("--trials", type=int, default=20, help="n_trials of each search (default: %(default)s)")
    p.add_argument("--epochs", type=int, default=150, help="trainer.epochs of each trial (default: %(default)s)")
    p.add_argument("--out", type=Path, default=Path("bench/results/pruning.json"), metavar="FILE",
                   help="the JSON written (default: %(default)s)")
    p.add_argument("overrides", nargs="*", metavar="OVERRIDE", help="Hydra overrides for both searches")
    return p


def main(argv: Optional[List[str]] = None) -> dict:
    args = parser().parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        runs = [search(Path(tmp) / pruner, pruner, args.trials, args.epochs, args.overrides)
                for pruner in ("none", "median")]
    plain, pruned = runs
    result = {
        "benchmark": "pruning", "trials": args.trials, "epochs": args.epochs, "overrides": args.overrides,
        "machine": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
        "date": time.strftime("%Y-%m-%d %H:%M"), "runs": runs,
        "epochs_ratio": round(plain["epochs_trained"] / max(1, pruned["epochs_trained"]), 2),
        "best_val_mse_ratio": round(pruned["best_val_mse"] / plain["best_val_mse"], 4),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for run in runs:
        print(f"{run['pruner']:7s} {run['epochs_trained']:6d} epochs  {run['wall_seconds']:7.1f} s  "
              f"best val_mse {run['best_val_mse']:.5f}  ({run['complete']} complete, {run['pruned']} pruned)")
    print(f"{result['epochs_ratio']}x fewer epochs with pruning; best val_mse ratio {result['best_val_mse_ratio']}; "
          f"written to {args.out}")
    return result


if __name__ == "__main__":
    main()
