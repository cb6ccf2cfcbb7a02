"""bench.prune_replay: a finished search's learning curves reported to a pruner, as the sweeper would."""
import json

import pandas as pd
import pytest

from bench import prune_replay

EPOCHS = 20


def write_sweep(root, curves):
    for job, curve in enumerate(curves):
        (root / str(job)).mkdir(parents=True)
        pd.DataFrame({"epoch": range(1, len(curve) + 1), "val_mse": curve}).to_csv(root / str(job) / "metrics.csv", index=False)
        (root / str(job) / "results.json").write_text(json.dumps({"val_mse": min(curve)}))
    return root


def test_a_bad_trial_is_stopped_where_the_pruner_would_stop_it(tmp_path, capsys):
    good = [[1.0 / (e + k) for e in range(1, EPOCHS + 1)] for k in range(5)]  # 5 startup trials, all finish
    bad = [0.9] * EPOCHS                                                      # above the median from epoch 2 on
    late = [1.0] * 15 + [0.01] * 5                                            # the best, but only at the end
    sweep = write_sweep(tmp_path / "sweep", [*good, bad, late])
    (tmp_path / "sweep" / "7").mkdir()  # a job without results (running or killed): not replayed
    pd.DataFrame({"epoch": [1], "val_mse": [0.0]}).to_csv(tmp_path / "sweep" / "7" / "metrics.csv", index=False)

    rows = {r["pruner"]: r for r in prune_replay.main([str(sweep), "--pruners", "median", "median:n_warmup_steps=16",
                                                        "--out", str(tmp_path / "r.json")])}
    assert rows["none"]["epochs_trained"] == 7 * EPOCHS and rows["none"]["best_value"] == 0.01
    median = rows["median"]  # the sweeper's defaults: 5 startup trials, 10 warm-up epochs
    assert median["pruned_at"] == [None] * 5 + [10, 10] and median["epochs_trained"] == 5 * EPOCHS + 20
    assert median["best_value"] == pytest.approx(1 / 24) and median["best_ratio"] == pytest.approx(1 / 0.24, rel=1e-3)
    patient = rows["median:n_warmup_steps=16"]  # late enough: the late winner survives
    assert patient["pruned_at"] == [None] * 5 + [16, None] and patient["best_value"] == 0.01
    assert json.loads((tmp_path / "r.json").read_text())["trials"] == 7
    assert "median:n_warmup_steps=16" in capsys.readouterr().out


def test_a_percentile_pruner_is_a_sweeper_option_and_unknown_ones_are_named(tmp_path):
    curves = [[1.0 / e + 0.01 * k for e in range(1, EPOCHS + 1)] for k in range(5)]  # each worse than the last
    curves.insert(3, [1.0 / e + 0.007 for e in range(1, EPOCHS + 1)])  # between the startup trials 0 and 1
    sweep = write_sweep(tmp_path / "sweep", curves)
    rows = prune_replay.main([str(sweep), "--pruners", "percentile:percentile=90,n_startup_trials=2", "median:n_startup_trials=2"])
    assert rows[1]["pruned_at"] == [None, None, 10, None, 10, 10]  # only what is worse than 90 % of the finished
    assert rows[2]["pruned_at"] == [None, None, 10, 10, 10, 10]  # the median of trials 0 and 1 is 1/e + 0.005
    with pytest.raises(SystemExit, match="unknown pruner 'medain': one of .*median, none, percentile"):
        prune_replay.main([str(sweep), "--pruners", "medain"])
    with pytest.raises(SystemExit, match="no finished job folder"):
        prune_replay.main([str(tmp_path), "--pruners", "median"])


def test_the_replay_reports_the_best_value_so_far_as_the_sweeper_does(tmp_path):
    good = [[1.0 / (e + k) for e in range(1, EPOCHS + 1)] for k in range(5)]
    spiky = [0.01] * 9 + [5.0] + [0.01] * 10  # the best trial, with one bad epoch at the rung (epoch 10)
    rows = prune_replay.main([str(write_sweep(tmp_path / "sweep", [*good, spiky])), "--pruners",
                              "successive_halving:min_resource=10,reduction_factor=2"])
    assert rows[1]["pruned_at"][5] is None and rows[1]["best_value"] == 0.01  # its best so far (0.01) ranks first
