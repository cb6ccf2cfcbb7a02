"""The toy Optuna search with and without pruning: epochs trained, wall time, best validation MSE.

    python -m bench.pruning                                   # the full search: toy_optuna's 20 trials
    python -m bench.pruning --trials 12 --epochs 40 dataset.num_sequences=2000   # a shorter one
    python -m bench.pruning --pruners none median successive_halving:min_resource=10,reduction_factor=3

Every search runs ``hparams_search=toy_optuna`` with the same sampler seed and trial budget; only
``hydra/sweeper/pruner`` differs (``none`` first: the reference; ``NAME:key=value,...`` sets the
pruner's keys). Each search has its own study (a fresh SQLite file) and sweep folder under a
temporary folder; ``--jobs`` searches run at once (one thread each). Epochs trained are counted from
the job folders' ``metrics.csv``; the wall time is the whole sweep's (interpreter start included).
Results go to ``--out`` as JSON: per search its epochs, wall time and best validation MSE, and
its ratios to the search without pruning.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import List, Optional

from lstm_ae.reproduce import cpu_name

ROOT = Path(__file__).resolve().parents[1]


def pruner_overrides(spec: str) -> List[str]:
    """``median`` -> [hydra/sweeper/pruner=median]; ``NAME:k=v,k2=v2`` also sets the pruner's keys."""
    name, _, keys = spec.partition(":")
    return [f"hydra/sweeper/pruner={name}"] + [f"hydra.sweeper.pruner.{kv}" for kv in keys.split(",") if kv]


def search(folder: Path, spec: str, trials: int, epochs: Optional[int], overrides: List[str]) -> dict:
    """One sweep into ``folder``; its epochs, wall time and study results."""
    import optuna
    import pandas as pd

    folder.mkdir(parents=True)
    db = folder / "study.db"
    cmd = [sys.executable, str(ROOT / "lstm_ae_toy.py"), "-m", "hparams_search=toy_optuna", *pruner_overrides(spec),
           f"hydra.sweeper.n_trials={trials}", *([f"trainer.epochs={epochs}"] if epochs else []), "trainer.num_threads=1",
           f"hydra.sweeper.storage=sqlite:///{db}", f"hydra.sweep.dir={folder / 'sweep'}", "trainer.progress=false",
           *overrides]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"the {spec} search failed:\n{proc.stderr[-2000:]}")
    epochs_trained = sum(len(pd.read_csv(m)) for m in (folder / "sweep").glob("*/metrics.csv"))
    study = optuna.load_study(study_name="toy_optuna", storage=f"sqlite:///{db}")
    states = [t.state.name for t in study.trials]
    trials = [{"number": t.number, "state": t.state.name, "value": t.value, "params": t.params,
               "last_epoch": max(t.intermediate_values, default=None)} for t in study.trials]
    return {"pruner": spec, "wall_seconds": round(seconds, 1), "epochs_trained": epochs_trained,
            "best_val_mse": study.best_value, "best_params": study.best_params,
            "complete": states.count("COMPLETE"), "pruned": states.count("PRUNED"), "failed": states.count("FAIL"),
            "trials": trials}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.pruning", description=(__doc__ or "").split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="example:\n  python -m bench.pruning --trials 12 --epochs 40 dataset.num_sequences=2000")
    p.add_argument("--trials", type=int, default=20, help="n_trials of each search (default: %(default)s)")
    p.add_argument("--epochs", type=int, default=None, help="trainer.epochs of each trial (default: toy_optuna's)")
    p.add_argument("--pruners", nargs="+", default=["none", "default"], metavar="NAME[:KEY=VALUE,...]",
                   help="the searches: 'none' (the reference, always run), 'default' (toy_optuna's own "
                        "pruner) or a hydra/sweeper/pruner option with its keys (default: none default)")
    p.add_argument("--jobs", type=int, default=2, help="searches run at once (default: %(default)s)")
    p.add_argument("--out", type=Path, default=Path("bench/results/pruning.json"), metavar="FILE",
                   help="the JSON written (default: %(default)s)")
    p.add_argument("--keep", type=Path, default=None, metavar="DIR",
                   help="keep every search's sweep folder and study under DIR (default: a temporary folder)")
    p.add_argument("overrides", nargs="*", metavar="OVERRIDE", help="Hydra overrides for every search")
    return p


def pruner_options() -> dict:
    """``hydra/sweeper/pruner`` options as the sweeper stores them: {name: config node}."""
    import hydra_plugins.lstm_ae_optuna_sweeper  # noqa: F401  (stores the options)
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    return {o[: -len(".yaml")]: store.load(f"hydra/sweeper/pruner/{o}").node for o in store.list("hydra/sweeper/pruner")}


def default_pruner() -> str:
    """toy_optuna's own pruner as a spec, read from its config (no second copy of its settings)."""
    from hydra import compose, initialize_config_dir

    from lstm_ae.config import register_configs

    register_configs()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("toy", ["hparams_search=toy_optuna"], return_hydra_config=True)
    pruner = cfg.hydra.sweeper.pruner
    name = next(n for n, node in pruner_options().items() if node._target_ == pruner._target_)
    keys = ",".join(f"{k}={v}" for k, v in pruner.items() if k != "_target_" and v is not None)
    return f"{name}:{keys}" if keys else name


def main(argv: Optional[List[str]] = None) -> dict:
    args = parser().parse_args(argv)
    specs = ["none"] + [default_pruner() if s == "default" else s for s in args.pruners if s != "none"]
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(max(1, args.jobs)) as pool:
        where = args.keep.resolve() if args.keep else Path(tmp)
        runs = list(pool.map(lambda i_s: search(where / str(i_s[0]), i_s[1], args.trials, args.epochs,
                                                args.overrides), enumerate(specs)))
    plain = runs[0]
    for run in runs[1:]:
        run["epochs_ratio"] = round(plain["epochs_trained"] / max(1, run["epochs_trained"]), 2)
        run["best_val_mse_ratio"] = round(run["best_val_mse"] / plain["best_val_mse"], 4)
    result = {
        "benchmark": "pruning", "trials": args.trials, "epochs": args.epochs, "overrides": args.overrides,
        "searches_at_once": args.jobs, "machine": cpu_name(),
        "cpu_count": os.cpu_count(), "date": time.strftime("%Y-%m-%d %H:%M"), "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for run in runs:
        ratios = f"  {run['epochs_ratio']}x fewer epochs, best ratio {run['best_val_mse_ratio']}" if run is not plain else ""
        print(f"{run['pruner']:50s} {run['epochs_trained']:6d} epochs  {run['wall_seconds']:7.1f} s  "
              f"best val_mse {run['best_val_mse']:.5f}  ({run['complete']} complete, {run['pruned']} pruned){ratios}")
    print(f"written to {args.out}")
    return result


if __name__ == "__main__":
    main()
