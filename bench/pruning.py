"""The toy Optuna search with and without pruning: epochs trained, wall time, best validation MSE.

    python -m bench.pruning                                   # the full search: toy_optuna's 20 trials
    python -m bench.pruning --trials 12 --epochs 40 dataset.num_sequences=2000   # a shorter one
    python -m bench.pruning --pruners none median successive_halving:min_resource=10,reduction_factor=3
    python -m bench.pruning --seeds 0 1 2                     # each search once per sampler seed
    python -m bench.pruning --combine a.json b.json --out all.json   # earlier runs' seeds, summarised

Every search runs ``hparams_search=toy_optuna`` with the same sampler seed and trial budget; only
``hydra/sweeper/pruner`` differs (``none`` first: the reference; ``NAME:key=value,...`` sets the
pruner's keys). Each search has its own study (a fresh SQLite file) and sweep folder under a
temporary folder; ``--jobs`` searches run at once (one thread each). Epochs trained are counted from
the job folders' ``metrics.csv``; the wall time is the whole sweep's (interpreter start included).
Results go to ``--out`` as JSON: per search its epochs, wall time and best validation MSE, and
its ratios to the search without pruning with the same sampler seed; and a ``summary`` per pruner
over the seeds: epochs trained in all, mean best validation MSE, their ratios to the searches
without pruning and whether they meet the goal of issue 13 (>= 2x fewer epochs, best within 5 %).
On 20 trials one seed's best value depends on where TPE samples after the first prunes more than
on the pruner, so the summary over several seeds is the comparison to read.
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
SEED_KEY = "hydra.sweeper.sampler.seed"
GOAL_EPOCHS_RATIO = 2.0   # issue 13: at least 2x fewer epochs trained ...
GOAL_BEST_RATIO = 1.05    # ... for a best validation MSE within 5 % of the search without pruning


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
    p.add_argument("--seeds", type=int, nargs="+", default=None, metavar="SEED",
                   help="run every search once per sampler seed (default: toy_optuna's seed only)")
    p.add_argument("--combine", type=Path, nargs="+", default=None, metavar="FILE",
                   help="run nothing: merge earlier results (e.g. one seed each) and summarise them")
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


def check_specs(specs: List[str]) -> None:
    """Refuse, before any search starts, a --pruners entry that names no pruner option.

    ``--pruners`` takes several values, so overrides written after it land there: say so.
    """
    names = {"none", "default", *pruner_options(), *(f.stem for f in (ROOT / "conf/hydra/sweeper/pruner").glob("*.yaml"))}
    wrong = [s for s in specs if s.partition(":")[0] not in names]
    if wrong:
        raise SystemExit(f"--pruners: {', '.join(map(repr, wrong))} names no pruner (options: {', '.join(sorted(names))}); "
                         "Hydra overrides go before --pruners or after '--'")


def toy_optuna_sweeper():
    """``hydra.sweeper`` of ``hparams_search=toy_optuna`` as composed (no second copy of its settings)."""
    from hydra import compose, initialize_config_dir

    from lstm_ae.config import register_configs

    register_configs()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose("toy", ["hparams_search=toy_optuna"], return_hydra_config=True).hydra.sweeper


def default_pruner() -> str:
    """toy_optuna's own pruner as a spec, read from its config."""
    pruner = toy_optuna_sweeper().pruner
    name = next(n for n, node in pruner_options().items() if node._target_ == pruner._target_)
    keys = ",".join(f"{k}={v}" for k, v in pruner.items() if k != "_target_" and v is not None)
    return f"{name}:{keys}" if keys else name


def is_seed(override: str) -> bool:
    """Whether ``override`` sets the sampler seed (``hydra.sweeper.sampler.seed=...``, ``+`` or not)."""
    return override.split("=", 1)[0].lstrip("+") == SEED_KEY


def sampler_seed(overrides: List[str]) -> int:
    """The sampler seed a search with these overrides uses: its ``hydra.sweeper.sampler.seed=`` or toy_optuna's."""
    given = [o.split("=", 1)[1] for o in overrides if is_seed(o)]
    return int(given[-1]) if given else int(toy_optuna_sweeper().sampler.seed)


def ratios(epochs_without: float, epochs: float, best_without: float, best: float) -> tuple:
    """(how many times fewer epochs, best value relative to the one without pruning), rounded as reported."""
    return round(epochs_without / max(1, epochs), 2), round(best / best_without, 4)


def summarise(runs: List[dict]) -> List[dict]:
    """Per pruner, over the seeds searched both with it and without pruning: totals, means, ratios, goal."""
    plain = {r["seed"]: r for r in runs if r["pruner"] == "none"}
    summary = []
    for spec in dict.fromkeys(r["pruner"] for r in runs if r["pruner"] != "none"):
        mine = {r["seed"]: r for r in runs if r["pruner"] == spec and r["seed"] in plain}
        if not mine:
            continue
        seeds = sorted(mine)
        epochs, plain_epochs = (sum(rs[s]["epochs_trained"] for s in seeds) for rs in (mine, plain))
        best, plain_best = (sum(rs[s]["best_val_mse"] for s in seeds) / len(seeds) for rs in (mine, plain))
        epochs_ratio, best_ratio = ratios(plain_epochs, epochs, plain_best, best)
        summary.append({"pruner": spec, "seeds": seeds, "epochs_trained": epochs, "epochs_trained_without": plain_epochs,
                        "mean_best_val_mse": best, "mean_best_val_mse_without": plain_best,
                        "epochs_ratio": epochs_ratio, "best_val_mse_ratio": best_ratio,
                        "goal_met": epochs_ratio >= GOAL_EPOCHS_RATIO and best_ratio <= GOAL_BEST_RATIO})
    return summary


def add_ratios(runs: List[dict]) -> None:
    """Each pruned search's ratios to the search without pruning of its seed."""
    plain = {r["seed"]: r for r in runs if r["pruner"] == "none"}
    for run in runs:
        if run["pruner"] != "none" and run["seed"] in plain:
            without = plain[run["seed"]]
            run["epochs_ratio"], run["best_val_mse_ratio"] = ratios(
                without["epochs_trained"], run["epochs_trained"], without["best_val_mse"], run["best_val_mse"])


def combine(files: List[Path]) -> dict:
    """Earlier results (e.g. one seed per file) as one: their runs, each with its seed, and the summary.

    The searches must be comparable: the same trials, epochs and overrides apart from the sampler seed.
    """
    results = [json.loads(Path(f).read_text()) for f in files]
    same = {(r["trials"], r["epochs"], tuple(sorted(o for o in r["overrides"] if not is_seed(o))))
            for r in results}
    if len(same) > 1:
        raise SystemExit(f"--combine: these files searched differently (trials, epochs, overrides): {sorted(same)}")
    runs = []
    for f, result in zip(files, results):
        for run in result["runs"]:
            run = {**run, "seed": run.get("seed", sampler_seed(result["overrides"])), "file": str(f),
                   "machine": result["machine"], "date": result["date"]}
            if any((r["pruner"], r["seed"]) == (run["pruner"], run["seed"]) for r in runs):
                raise SystemExit(f"--combine: {run['pruner']} with seed {run['seed']} is in two files")
            runs.append(run)
    return {"benchmark": "pruning", "trials": results[0]["trials"], "epochs": results[0]["epochs"],
            "overrides": [o for o in results[0]["overrides"] if not is_seed(o)],
            "combined_from": [str(f) for f in files], "runs": runs, "summary": summarise(runs)}


def report(result: dict, out: Path) -> dict:
    """Write ``result`` to ``out`` as JSON and print a line per search and per summary row."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    for run in result["runs"]:
        ratios = (f"  {run['epochs_ratio']}x fewer epochs, best ratio {run['best_val_mse_ratio']}"
                  if "epochs_ratio" in run else "")
        print(f"seed {run['seed']}  {run['pruner']:50s} {run['epochs_trained']:6d} epochs  {run['wall_seconds']:7.1f} s  "
              f"best val_mse {run['best_val_mse']:.5f}  ({run['complete']} complete, {run['pruned']} pruned){ratios}")
    for row in result["summary"]:
        print(f"seeds {row['seeds']}  {row['pruner']}: {row['epochs_ratio']}x fewer epochs, mean best "
              f"{row['mean_best_val_mse']:.5f} vs {row['mean_best_val_mse_without']:.5f} "
              f"(ratio {row['best_val_mse_ratio']}); goal {'met' if row['goal_met'] else 'not met'}")
    print(f"written to {out}")
    return result


def main(argv: Optional[List[str]] = None) -> dict:
    args = parser().parse_args(argv)
    if args.combine:
        return report(combine(args.combine), args.out)
    if args.seeds and any(map(is_seed, args.overrides)):
        raise SystemExit(f"give the sampler seeds either as --seeds or as {SEED_KEY}=..., not both")
    check_specs(args.pruners)
    specs = ["none"] + [default_pruner() if s == "default" else s for s in args.pruners if s != "none"]
    searches = [(spec, seed, args.overrides + ([f"{SEED_KEY}={seed}"] if args.seeds else []))
                for seed in args.seeds or [sampler_seed(args.overrides)] for spec in specs]
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(max(1, args.jobs)) as pool:
        where = args.keep.resolve() if args.keep else Path(tmp)

        def one(i: int) -> dict:
            spec, seed, overrides = searches[i]
            try:
                return {**search(where / str(i), spec, args.trials, args.epochs, overrides), "seed": seed}
            except SystemExit as e:  # the other searches go on, and their results are kept
                return {"pruner": spec, "seed": seed, "error": str(e)}

        done = list(pool.map(one, range(len(searches))))
    runs, failed = [r for r in done if "error" not in r], [r for r in done if "error" in r]
    add_ratios(runs)
    result = report({
        "benchmark": "pruning", "trials": args.trials, "epochs": args.epochs, "overrides": args.overrides,
        "seeds": sorted({r["seed"] for r in runs}), "searches_at_once": args.jobs, "machine": cpu_name(),
        "cpu_count": os.cpu_count(), "date": time.strftime("%Y-%m-%d %H:%M"), "runs": runs,
        "summary": summarise(runs), **({"failed": failed} if failed else {}),
    }, args.out)
    if failed:
        raise SystemExit(f"{len(failed)} of {len(done)} searches failed (the others are in {args.out}); the first: "
                         f"{failed[0]['error']}")
    return result


if __name__ == "__main__":
    main()
