"""bench.pruning's bookkeeping: one search per (seed, pruner), ratios per seed, the summary over seeds, --combine.

The searches themselves are Hydra multiruns of the toy script (minutes each); here ``search`` is replaced
by a function of its arguments, so what is tested is which searches run and how their numbers are summed.
"""
from __future__ import annotations

import json

import pytest

from bench import pruning

# (pruner, seed) -> (epochs trained, best validation MSE)
NUMBERS = {("none", 0): (2000, 0.0180), ("sh", 0): (800, 0.0198),
           ("none", 1): (2000, 0.0170), ("sh", 1): (1120, 0.0157),
           ("none", 2): (2000, 0.0200), ("sh", 2): (1000, 0.0290)}


def run(pruner: str, seed: int) -> dict:
    epochs, best = NUMBERS[pruner, seed]
    return {"pruner": pruner, "seed": seed, "epochs_trained": epochs, "best_val_mse": best, "wall_seconds": 1.0,
            "complete": 1, "pruned": 0}


def test_the_summary_sums_epochs_and_averages_best_values_over_the_seeds():
    (row,) = pruning.summarise([run(p, s) for p in ("none", "sh") for s in (0, 1)])
    assert row["seeds"] == [0, 1]
    assert (row["epochs_trained"], row["epochs_trained_without"]) == (1920, 4000)
    assert row["epochs_ratio"] == round(4000 / 1920, 2) == 2.08
    assert row["mean_best_val_mse"] == pytest.approx((0.0198 + 0.0157) / 2)
    assert row["best_val_mse_ratio"] == round(((0.0198 + 0.0157) / 2) / ((0.0180 + 0.0170) / 2), 4)
    assert row["goal_met"]                                  # 2.08x, +1.4 %
    # seed 0 alone: 2.5x fewer epochs but +10 %; seed 2 drags the mean best far off: not met
    (alone,) = pruning.summarise([run("none", 0), run("sh", 0)])
    assert (alone["epochs_ratio"], alone["goal_met"]) == (2.5, False)
    (three,) = pruning.summarise([run(p, s) for p in ("none", "sh") for s in (0, 1, 2)])
    assert three["best_val_mse_ratio"] > pruning.GOAL_BEST_RATIO and not three["goal_met"]


def test_a_seed_searched_only_with_pruning_is_left_out_of_the_summary():
    (row,) = pruning.summarise([run("none", 0), run("sh", 0), run("sh", 1)])
    assert row["seeds"] == [0] and row["epochs_trained"] == 800
    runs = [run("none", 0), run("sh", 0), run("sh", 1)]
    pruning.add_ratios(runs)
    assert runs[1]["epochs_ratio"] == 2.5 and "epochs_ratio" not in runs[2]


def test_seeds_run_every_pruner_once_per_seed(monkeypatch, tmp_path):
    seen = []

    def search(folder, spec, trials, epochs, overrides):
        seed = int(next(o for o in overrides if o.startswith(pruning.SEED_KEY)).split("=")[1])
        seen.append((spec, seed, trials, epochs, tuple(overrides)))
        numbers = run("none" if spec == "none" else "sh", seed)
        return {**{k: v for k, v in numbers.items() if k != "seed"}, "pruner": spec}

    monkeypatch.setattr(pruning, "search", search)
    out = tmp_path / "p.json"
    result = pruning.main(["--seeds", "0", "1", "--pruners", "none", "median", "--trials", "3", "--epochs", "4",
                           "--out", str(out), "--jobs", "1", "dataset.num_sequences=100"])
    assert sorted(s[:4] for s in seen) == [("median", 0, 3, 4), ("median", 1, 3, 4), ("none", 0, 3, 4), ("none", 1, 3, 4)]
    assert all("dataset.num_sequences=100" in s[4] for s in seen)
    assert [(r["pruner"], r["seed"]) for r in result["runs"]] == [("none", 0), ("median", 0), ("none", 1), ("median", 1)]
    assert json.loads(out.read_text())["summary"][0]["epochs_ratio"] == 2.08
    with pytest.raises(SystemExit, match="not both"):
        pruning.main(["--seeds", "0", "--out", str(out), f"{pruning.SEED_KEY}=3"])


def test_combine_merges_files_of_one_seed_each_and_refuses_mismatches(tmp_path):
    def write(name, seed_overrides, runs, trials=20):
        f = tmp_path / name
        f.write_text(json.dumps({"trials": trials, "epochs": None, "overrides": ["trainer.device=cpu", *seed_overrides],
                                 "machine": "cpu", "date": "today",
                                 "runs": [{k: v for k, v in r.items() if k != "seed"} for r in runs]}))
        return f

    # the first file names no seed: toy_optuna's own (read from its config: 0)
    a = write("a.json", [], [run("none", 0), run("sh", 0)])
    b = write("b.json", [f"{pruning.SEED_KEY}=1"], [run("none", 1), run("sh", 1)])
    result = pruning.combine([a, b])
    assert [(r["pruner"], r["seed"], r["file"]) for r in result["runs"]] == [
        ("none", 0, str(a)), ("sh", 0, str(a)), ("none", 1, str(b)), ("sh", 1, str(b))]
    assert result["overrides"] == ["trainer.device=cpu"]
    assert result["summary"][0]["epochs_ratio"] == 2.08 and result["summary"][0]["goal_met"]
    with pytest.raises(SystemExit, match="searched differently"):
        pruning.combine([a, write("c.json", [f"{pruning.SEED_KEY}=2"], [run("none", 2)], trials=10)])
    with pytest.raises(SystemExit, match="in two files"):
        pruning.combine([a, write("d.json", [f"{pruning.SEED_KEY}=0"], [run("none", 0)])])


def test_an_override_written_after_pruners_is_refused_before_any_search(monkeypatch, tmp_path):
    monkeypatch.setattr(pruning, "search", lambda *a: pytest.fail("no search may start"))
    with pytest.raises(SystemExit, match=r"'hydra.sweeper.sampler.seed=2' names no pruner.*after '--'"):
        pruning.main(["--pruners", "none", "default", "hydra.sweeper.sampler.seed=2", "--out", str(tmp_path / "p.json")])
    pruning.check_specs(["none", "default", "toy_halving", "successive_halving:min_resource=20", "median"])  # all known


def test_a_failed_search_keeps_the_others_results(monkeypatch, tmp_path):
    def search(folder, spec, trials, epochs, overrides):
        if spec == "median":
            raise SystemExit("the median search failed:\nboom")
        return {k: v for k, v in run("none", 0).items() if k != "seed"}

    monkeypatch.setattr(pruning, "search", search)
    out = tmp_path / "p.json"
    with pytest.raises(SystemExit, match=r"(?s)1 of 2 searches failed.*boom"):
        pruning.main(["--pruners", "none", "median", "--out", str(out), "--jobs", "2"])
    result = json.loads(out.read_text())
    assert [r["pruner"] for r in result["runs"]] == ["none"] and result["runs"][0]["epochs_trained"] == 2000
    assert [f["pruner"] for f in result["failed"]] == ["median"] and "boom" in result["failed"][0]["error"]
