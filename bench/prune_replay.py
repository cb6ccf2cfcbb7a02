"""Replay the learning curves of a search run without pruning through pruners: which trials each
would stop, when, and the best validation objective it would keep. Seconds instead of a new search.

    python -m bench.pruning --pruners none --keep /tmp/search          # once: a search without pruning
    python -m bench.prune_replay /tmp/search/0/sweep --pruners median hyperband:min_resource=15

Each job folder's ``metrics.csv`` (the per-epoch validation objective) is reported epoch by epoch, as
the best value so far like the sweeper's jobs (lstm_ae.optuna_sweeper.pruning_callback), to
an in-memory study with the pruner, in job order, as the sweeper does with ``n_jobs=1``; a stopped
trial counts its epochs up to the stop. The sampled parameters are fixed: how the sampler would
react to pruned trials is not modelled, so a real search (``python -m bench.pruning``) confirms the
choice. Pruner specs are those of bench.pruning: ``NAME:key=value,...``, a ``hydra/sweeper/pruner``
option with its defaults for the keys not given.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Dict, List, Optional

import optuna
import pandas as pd
import yaml
from hydra.utils import instantiate

from bench.pruning import pruner_options


def curves(sweep: Path, objective: str) -> List[pd.Series]:
    """Per job (in job order) its objective per epoch."""
    finished = [d for d in sweep.iterdir() if d.name.isdigit() and (d / "results.json").exists()]
    if not finished:
        raise SystemExit(f"no finished job folder (results.json, metrics.csv) in {sweep}: give a sweep folder "
                         "(e.g. <keep>/0/sweep of python -m bench.pruning --keep <keep>)")
    jobs = sorted(finished, key=lambda d: int(d.name))
    return [pd.read_csv(d / "metrics.csv").set_index("epoch")[objective] for d in jobs]


def make_pruner(spec: str) -> optuna.pruners.BasePruner:
    """``NAME:key=value,...`` -> the pruner ``hydra/sweeper/pruner=NAME`` builds (its defaults, these keys)."""
    name, _, keys = spec.partition(":")
    options = pruner_options()
    if name not in options:
        raise SystemExit(f"unknown pruner {name!r}: one of {', '.join(sorted(options))}")
    node = options[name]
    for kv in filter(None, keys.split(",")):
        key, _, value = kv.partition("=")
        node[key] = yaml.safe_load(value)
    return instantiate(node)


def replay(series: List[pd.Series], spec: str, minimize: bool = True) -> Dict:
    """Report every curve to a fresh study with ``spec``'s pruner; epochs trained and the best value kept."""
    study = optuna.create_study(study_name="toy_optuna", direction="minimize" if minimize else "maximize",
                                pruner=make_pruner(spec))
    epochs, stops = 0, []
    for curve in series:
        trial = study.ask()
        for epoch, value in (curve.cummin() if minimize else curve.cummax()).items():  # as the sweeper reports
            trial.report(float(value), int(epoch))
            epochs += 1
            if trial.should_prune():
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                stops.append(int(epoch))
                break
        else:
            study.tell(trial, float(curve.min() if minimize else curve.max()))
            stops.append(None)
    best = study.best_trial
    return {"pruner": spec, "epochs_trained": epochs, "best_value": best.value, "best_trial": best.number,
            "complete": sum(s is None for s in stops), "pruned_at": stops}


def main(argv: Optional[List[str]] = None) -> List[Dict]:
    p = argparse.ArgumentParser(prog="python -m bench.prune_replay", description=(__doc__ or "").split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sweep", type=Path, help="a sweep folder without pruning (job folders 0, 1, ... with metrics.csv)")
    p.add_argument("--pruners", nargs="+", required=True, metavar="NAME[:KEY=VALUE,...]")
    p.add_argument("--objective", default="val_mse", help="the metrics.csv column reported (default: %(default)s)")
    p.add_argument("--maximize", action="store_true", help="the objective is maximised")
    p.add_argument("--out", type=Path, default=None, metavar="FILE", help="also write the results as JSON")
    args = p.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    series = curves(args.sweep, args.objective)
    plain = replay(series, "none", not args.maximize)
    rows = [plain] + [replay(series, spec, not args.maximize) for spec in args.pruners if spec != "none"]
    for row in rows:
        row["epochs_ratio"] = round(plain["epochs_trained"] / max(1, row["epochs_trained"]), 2)
        row["best_ratio"] = round(row["best_value"] / plain["best_value"], 4)
        print(f"{row['pruner']:60s} {row['epochs_trained']:6d} epochs ({row['epochs_ratio']:.2f}x fewer)  "
              f"best {row['best_value']:.5f} (x{row['best_ratio']:.3f}, trial {row['best_trial']})  {row['complete']} complete")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"sweep": str(args.sweep), "trials": len(series), "runs": rows}, indent=2) + "\n")
    return rows


if __name__ == "__main__":
    main()
