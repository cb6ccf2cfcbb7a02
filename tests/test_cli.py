"""One command-line style for the tools: argparse, ``--help``, usage errors with exit status 2.

In-process (each module's ``main([...])``); the work each tool would do is replaced by a recorder,
so nothing trains, and a parser that wrongly accepted a bad value returns instead of exiting 2.
"""
from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest

from bench import prune_replay, pruning, runs_table, throughput, time_to_accuracy
from lstm_ae import anomaly, apply, compare, export, report, reproduce, runs

# module, its prog, flags its --help must list
TOOLS = {
    "reproduce": (reproduce, "python -m lstm_ae.reproduce", ["--budget", "--only", "--out", "--data", "smoke"]),
    "report": (report, "python -m lstm_ae.report", ["--runs", "--out", "--mnist_pixel_classify"]),
    "compare": (compare, "python -m lstm_ae.compare", ["RUN", "--labels", "--out"]),
    "export": (export, "python -m lstm_ae.export", ["RUN", "--out", "--format"]),
    "anomaly": (anomaly, "python -m lstm_ae.anomaly", ["RUN", "DATA", "--out", "--labels", "--threshold-quantile",
                                                       "--false-alarm-rate", "--val-share"]),
    "apply": (apply, "python -m lstm_ae.apply", ["RUN", "DATA", "--out", "--stride", "--causal", "--format", "--limit",
                                                 "--overwrite"]),
    "runs": (runs, "python -m lstm_ae.runs", ["PATH", "--task", "--status", "--where", "--sort", "--reverse", "--top",
                                              "--csv", "--json", "--stale"]),
    "throughput": (throughput, "python -m bench.throughput", ["--shapes", "--batches", "--threads", "--device", "--out"]),
    "time_to_accuracy": (time_to_accuracy, "python -m bench.time_to_accuracy", ["--out", "OVERRIDE"]),
    "pruning": (pruning, "python -m bench.pruning", ["--trials", "--epochs", "--seeds", "--combine", "--out", "OVERRIDE"]),
    "prune_replay": (prune_replay, "python -m bench.prune_replay", ["sweep", "--pruners", "--objective", "--maximize", "--out"]),
    "runs_table": (runs_table, "python -m bench.runs_table", ["--folders", "--repeats", "--template", "--out"]),
}


@pytest.fixture
def calls(monkeypatch, tmp_path):
    """Replace what each tool would run with a recorder: {tool: [its arguments, by parameter name]}.

    Run in an empty folder, so that a tool writing its default output path cannot touch the project's.
    """
    monkeypatch.chdir(tmp_path)
    seen: dict = {}

    def recorder(tool, real, result):
        def fake(*args, **kwargs):
            seen.setdefault(tool, []).append(dict(inspect.signature(real).bind(*args, **kwargs).arguments))
            return result
        return fake

    monkeypatch.setattr(reproduce, "reproduce", recorder("reproduce", reproduce.reproduce, {}))
    monkeypatch.setattr(report, "build", recorder("report", report.build, {}))
    monkeypatch.setattr(compare, "compare", recorder("compare", compare.compare, []))
    monkeypatch.setattr(export, "export", recorder("export", export.export, []))
    monkeypatch.setattr(apply, "apply", recorder("apply", apply.apply, None))
    monkeypatch.setattr(anomaly, "detect", recorder("anomaly", anomaly.detect, None))
    monkeypatch.setattr(runs, "collect", recorder("runs", runs.collect, runs.Listing([], {}, runs.Messages())))
    monkeypatch.setattr(throughput, "measure", recorder("throughput", throughput.measure, 1.0))
    # time_to_accuracy: the real Hydra compose (recorded), then no data, no model, no training. The
    # fakes take any arguments; if one of these names leaves the module, setattr fails loudly here.
    real_compose = time_to_accuracy.compose

    def compose(*args, **kwargs):
        cfg = real_compose(*args, **kwargs)
        seen.setdefault("compose", []).append({"overrides": list(kwargs.get("overrides", [])), "cfg": cfg})
        return cfg

    monkeypatch.setattr(time_to_accuracy, "compose", compose)
    for name in ("build", "load_data", "Trainer", "fit_one"):
        monkeypatch.setattr(time_to_accuracy, name, lambda *a, **k: None)
    return seen


@pytest.mark.parametrize("tool", list(TOOLS))
def test_help_exits_0_and_shows_the_tools_usage(tool, calls, capsys):
    module, prog, flags = TOOLS[tool]
    with pytest.raises(SystemExit) as exc:
        module.main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: {prog} [-h]")
    for flag in flags:
        assert flag in out
    assert module.__doc__.split("\n")[0].replace("``", "") in out  # description: the docstring's first line
    assert calls == {}


@pytest.mark.parametrize("tool, argv, message", [
    ("reproduce", ["--budget", "huge"], "argument --budget: invalid choice: 'huge'"),
    ("reproduce", ["--only", "toy", "nosuch"], "argument --only: invalid choice: 'nosuch'"),
    ("reproduce", ["budget=smoke"], "'budget=smoke' is not a Hydra override (key=value); use --budget"),  # old style
    ("reproduce", ["trainer.device"], "'trainer.device' is not a Hydra override (key=value)"),
    ("report", ["--runs"], "argument --runs: expected one argument"),
    ("report", ["--nosuch_experiment", "x"], "unrecognized arguments: --nosuch_experiment x"),
    ("compare", [], "the following arguments are required: RUN"),
    ("export", [], "the following arguments are required: RUN"),
    ("export", ["run", "--format", "zip"], "argument --format: invalid choice: 'zip'"),
    ("apply", ["run", "new.csv"], "the following arguments are required: --out"),
    ("anomaly", ["run", "new.csv"], "the following arguments are required: --out"),
    ("apply", ["run", "--out", "x", "--stride", "two"], "argument --stride: invalid int value: 'two'"),
    ("runs", ["--top", "0"], "argument --top: must be at least 1, got 0"),
    ("runs", ["--status", "done"], "argument --status: invalid choice: 'done'"),
    ("runs", ["--where", "model.hidden_size"], "argument --where: 'model.hidden_size' is not KEY=VALUE"),
    ("runs", ["--stale", "soon"], "argument --stale: invalid float value: 'soon'"),
    ("throughput", ["--shapes", "huge"], "argument --shapes: invalid choice: 'huge'"),
    ("throughput", ["--batches", "many"], "argument --batches: invalid int value: 'many'"),
    ("time_to_accuracy", ["trainer.epochs", "6"], "argument OVERRIDE: 'trainer.epochs' is not a config override"),
    ("time_to_accuracy", ["--out"], "argument --out: expected one argument"),
    ("prune_replay", ["some/sweep"], "the following arguments are required: --pruners"),
])
def test_a_bad_argument_exits_2_with_one_error_line(tool, argv, message, calls, capsys):
    module, prog, _ = TOOLS[tool]
    with pytest.raises(SystemExit) as exc:
        module.main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"usage: {prog} ")
    last = err.rstrip("\n").splitlines()[-1]
    assert last.startswith(f"{prog}: error: ") and message in last
    assert calls == {}  # nothing ran


def test_reproduce_passes_its_arguments_to_reproduce(calls, tmp_path):
    assert reproduce.main([]) == 0
    assert reproduce.main(["trainer.device=cpu", "--budget", "smoke", "--only", "toy", "sp500_predict", "--out",
                           str(tmp_path), "--data", "some/data", "--only", "mnist_row_classify"]) == 0
    assert calls["reproduce"] == [
        {"budget": "full", "out": Path("outputs/reproduce"), "only": None, "data": None, "overrides": []},
        {"budget": "smoke", "out": tmp_path, "only": ["toy", "sp500_predict", "mnist_row_classify"], "data": "some/data",
         "overrides": ["trainer.device=cpu"]},
    ]


def test_reproduce_exits_1_when_an_experiment_failed(monkeypatch):
    monkeypatch.setattr(reproduce, "reproduce", lambda *a, **k: {"toy": {"status": "done"}, "sp500_predict": {"status": "failed"}})
    assert reproduce.main(["--only", "toy", "sp500_predict"]) == 1
    monkeypatch.setattr(reproduce, "reproduce", lambda *a, **k: {"toy": {"status": "done before"}})
    assert reproduce.main(["--only", "toy"]) == 0


def test_report_and_compare_pass_their_arguments_on(calls):
    report.main(["--runs", "runs/smoke", "--out", "rep", "--sp500_predict", "elsewhere"])
    assert calls["report"] == [{"runs": Path("runs/smoke"), "out": Path("rep"), "overrides": {"sp500_predict": Path("elsewhere")}}]
    compare.main(["a", "b", "--labels", "row", "pixel", "--out", "cmp"])
    assert calls["compare"] == [{"run_dirs": [Path("a"), Path("b")], "labels": ["row", "pixel"], "out": Path("cmp")}]


def test_runs_passes_its_paths_and_stale_on(calls, capsys):
    assert runs.main(["a", "b", "--stale", "5"]) == 0
    (call,) = calls["runs"]
    assert call["paths"] == [Path("a"), Path("b")] and call["stale"] == 5.0
    assert capsys.readouterr().out == "no runs found\n"


def test_time_to_accuracy_passes_overrides_and_out(calls, tmp_path):
    out = tmp_path / "sub" / "tta.json"
    # overrides before and after --out (intermixed), applied after the benchmark's own settings
    result = time_to_accuracy.main(["trainer.epochs=3", "--out", str(out), "model.hidden_size=16"])
    (composed,) = calls["compose"]
    assert composed["overrides"] == [*time_to_accuracy.DEFAULTS, "trainer.epochs=3", "model.hidden_size=16"]
    assert composed["cfg"].trainer.epochs == 3 and composed["cfg"].model.hidden_size == 16
    written = json.loads(out.read_text())
    assert written["overrides"] == result["overrides"] == composed["overrides"]


def test_time_to_accuracy_writes_the_default_file_without_out(calls, tmp_path):
    time_to_accuracy.main([])  # in tmp_path (the fixture's folder)
    assert calls["compose"][0]["overrides"] == time_to_accuracy.DEFAULTS
    assert json.loads((tmp_path / "bench/results/time_to_accuracy.json").read_text())["benchmark"] == "time_to_accuracy"
