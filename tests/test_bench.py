"""Every bench/ module run for real on tiny settings: its JSON has the keys and sane values.

The benchmarks' defaults take minutes to hours, so nothing else runs them; a changed default or API
(a config key, a model's default, a module's function) must fail here, not silently in the next
benchmark. Each test calls the module's ``main(argv)`` with its JSON written under ``tmp_path``; data
that only exists in the shared data folder (MNIST, S&P) is replaced by tiny synthetic files.
bench.pruning's and bench.prune_replay's bookkeeping, and bench.sp500_select's split, have their own
tests (tests/test_pruning_bench.py, test_prune_replay.py, test_sp500_select.py).
"""
from __future__ import annotations

import json
import math

import pytest

from bench import decoder_probe, prune_replay, pruning, runs_table, sp500_select, throughput, time_to_accuracy
from tests.conftest import CPU, make_csv, write_fake_mnist


def positive(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def test_runs_table_makes_lists_and_times_the_folders(tmp_path):
    # the template is a real toy run (the entry script, in a fresh interpreter): a toy default its
    # settings do not fit (e.g. the decoder clock's 15 units for hidden 8) fails here
    out = tmp_path / "runs_table.json"
    result = runs_table.main(["--folders", "20", "--repeats", "1", "--out", str(out)])
    assert json.loads(out.read_text()) == result
    assert result["folders"] == 20 and sum(result["statuses"].values()) == 20  # each with the status it was made with
    assert "finished" in result["statuses"] and set(result["statuses"]) <= {*runs_table.MIX} - {"finished_cv"}
    for timing in ("in_process", "command", "command_json", "command_where_config_key", "python_startup"):
        assert positive(result[timing]["median_s"]) and len(result[timing]["all_s"]) == 1, timing
    assert result["files"] > 20 and isinstance(result["meets_goal"], bool) and result["machine"]


def test_throughput_trains_every_variant(tmp_path):
    out = tmp_path / "throughput.json"
    # one thread: no "lstm bf16 N shards" variant (N threads spin against the other tests on shared cores)
    result = throughput.main(["--shapes", "toy", "--batches", "1", "--batch", "4", "--threads", "1", "--out", str(out)])
    assert json.loads(out.read_text()) == result
    assert [r["variant"] for r in result["rows"]] == ["naive-cell fp32", "lstm fp32", "lstm bf16"]
    steps, features, hidden, _ = throughput.SHAPES["toy"]
    for row in result["rows"]:
        assert (row["shape"], row["T"], row["m"], row["H"], row["batch"]) == ("toy", steps, features, hidden, 4)
        assert positive(row["samples_per_s"]) and positive(row["vs_naive"])
    assert result["rows"][0]["vs_naive"] == 1.0 and (result["threads"], result["device"]) == (1, "cpu")


@pytest.fixture
def mnist_root(tmp_path):
    """Tiny random MNIST files (40 training, 12 test images)."""
    return write_fake_mnist(tmp_path / "data")


def test_time_to_accuracy_evaluates_every_epoch(tmp_path, mnist_root):
    out = tmp_path / "tta.json"
    tiny = [f"dataset.root={mnist_root}", "dataset.val_size=8", "trainer.epochs=2", "model.hidden_size=8",
            "trainer.batch_size=16", "trainer.num_threads=1", *CPU]
    result = time_to_accuracy.main(["--out", str(out), *tiny])
    assert json.loads(out.read_text()) == result
    assert result["overrides"] == [*time_to_accuracy.DEFAULTS, *tiny]
    epochs = result["epochs"]
    assert [e["epoch"] for e in epochs] == [1, 2]
    assert 0 < epochs[0]["train_seconds"] < epochs[1]["train_seconds"]  # the clock adds the epochs' times
    for e in epochs:
        assert 0 <= e["val_accuracy"] <= 1 and 0 <= e["test_accuracy"] <= 1 and positive(e["test_mse"])
    for target in ("seconds_to_98", "seconds_to_99"):  # random images: never reached
        assert target in result and result[target] is None


def test_decoder_probe_trains_and_appends(tmp_path, mnist_root):
    out = tmp_path / "probe.json"
    tiny = ["--steps", "2", "--batch", "2", "--hidden", "64", "--val-size", "1", "--root", str(mnist_root), "--out", str(out)]
    clock = decoder_probe.main(["clock", *tiny])  # the [28, 28] clock: 56 of the 64 units
    chrono = decoder_probe.main(["chrono", "--trainable-clock", *tiny])
    assert json.loads(out.read_text()) == [clock, chrono]  # appended
    assert (clock["decoder"], chrono["decoder"]) == ("clock", "chrono (trainable)")
    for result in (clock, chrono):
        assert (result["steps"], result["batch"], result["hidden"]) == (2, 2, 64)
        assert [c["step"] for c in result["curve"]] == [2] and result["curve"][-1]["test_mse"] == result["test_mse"]
        for key in ("test_mse", "mean_image_test_mse", "class_mean_test_mse"):
            assert positive(result[key]) and result[key] < 1, key  # pixels in [0, 1]


def test_sp500_select_main_writes_its_record(tmp_path, capsys):
    csv = make_csv(tmp_path)
    out = tmp_path / "select.json"
    sp500_select.main(["tiny", f"dataset.path={csv}", *CPU, "task=predict", "trainer.epochs=1", "model.hidden_size=8",
                       "dataset.seq_len=10", "dataset.plot_symbols=[]", "task.folds=null", "--out", str(out)])
    (record,) = json.loads(out.read_text())
    assert record["name"] == "tiny" and record["scored_on"] == "validation stocks"
    assert set(record["ratios"]) == {"onestep_vs_persistence", "onestep_vs_ar", "multistep_vs_flat", "multistep_vs_ar"}
    assert all(positive(v) for v in [*record["ratios"].values(), *record["usd2"].values()])
    assert positive(record["train_seconds"]) and record["best_epoch"] == 1
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["name"] == "tiny"


# ------------------------------------------- bench.pruning: two real searches, replayed by bench.prune_replay
TRIALS, EPOCHS = 2, 2


@pytest.fixture(scope="module")
def searches(tmp_path_factory):
    """bench.pruning's two searches (without pruning, toy_optuna's own pruner) at once, sweep folders kept."""
    tmp = tmp_path_factory.mktemp("pruning")
    out = tmp / "pruning.json"
    result = pruning.main(["--trials", str(TRIALS), "--epochs", str(EPOCHS), "--jobs", "2", "--keep", str(tmp / "keep"),
                           "--out", str(out), "dataset.num_sequences=100", "trainer.device=cpu", "task.figures=false"])
    assert json.loads(out.read_text()) == result
    return tmp / "keep", result


@pytest.mark.xdist_group("bench_pruning")
def test_pruning_runs_both_searches(searches):
    _, result = searches
    assert "failed" not in result and (result["trials"], result["epochs"]) == (TRIALS, EPOCHS)
    plain, pruned = result["runs"]
    assert (plain["pruner"], pruned["pruner"]) == ("none", pruning.default_pruner())
    for run in (plain, pruned):  # too few epochs to reach a rung: nothing is pruned
        assert (run["complete"], run["pruned"], run["failed"]) == (TRIALS, 0, 0)
        assert run["epochs_trained"] == TRIALS * EPOCHS and positive(run["wall_seconds"]) and positive(run["best_val_mse"])
        assert 40 <= run["best_params"]["model.hidden_size"] <= 48  # toy_optuna's search space
    # only a search with a pruner reports each epoch to its trials
    assert [t["last_epoch"] for t in plain["trials"]] == [None] * TRIALS
    assert [t["last_epoch"] for t in pruned["trials"]] == [EPOCHS] * TRIALS
    assert (pruned["epochs_ratio"], pruned["best_val_mse_ratio"]) == (1.0, 1.0)  # same seed, same trials
    (summary,) = result["summary"]
    assert summary["seeds"] == [0] and summary["goal_met"] is False


@pytest.mark.xdist_group("bench_pruning")
def test_prune_replay_reads_the_kept_search(searches, tmp_path):
    keep, result = searches
    out = tmp_path / "replay.json"
    rows = prune_replay.main([str(keep / "0" / "sweep"), "--pruners", "median", "--out", str(out)])
    assert json.loads(out.read_text())["trials"] == TRIALS
    assert [r["pruner"] for r in rows] == ["none", "median"]
    assert rows[0]["epochs_trained"] == TRIALS * EPOCHS and rows[0]["complete"] == TRIALS
    assert rows[0]["best_value"] == pytest.approx(result["runs"][0]["best_val_mse"])
