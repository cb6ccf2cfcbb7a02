"""python -m lstm_ae.export: a trained run's model as ONNX and torch.export's .pt2, with preprocessing.json.

Three tiny runs cover the heads (toy: reconstruction; S&P predict: the one-step head; MNIST classify:
the classifier). Each is exported, then the ONNX graph is run with onnxruntime and the .pt2 with
torch.export.load, and both are held to the torch model on the CPU (within 1e-5) and to the test
metrics the run itself wrote, on its own test data: the exported graph is the model that trained.
Needs the export extra (make test installs it); skipped without it.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from lstm_ae import export
from lstm_ae.data.mnist import FILES, read_idx_gz
from tests.conftest import CPU, NO_FIGURES, TINY_TOY, compose_cfg, run_in_process, sp500_root, write_fake_mnist

ort = pytest.importorskip("onnxruntime", reason="the export extra is not installed (pip install -e '.[export]')")
pytest.importorskip("onnxscript", reason="the export extra is not installed (pip install -e '.[export]')")

pytestmark = pytest.mark.xdist_group("export")  # the module's runs stay on one worker

# fp32: results.json's test metrics come from the arithmetic of the (fp32) exported graph
FP32 = ["trainer.precision=fp32", "trainer.epochs=1", NO_FIGURES]
RUNS = {  # name -> (entry script, overrides; {data}: the data root)
    "toy": ("lstm_ae_toy.py", [*TINY_TOY]),
    "sp500_predict": ("lstm_ae_snp500.py", ["task=predict", "task.folds=null", "dataset.root={data}",
                                            "dataset.seq_len=10", "dataset.stride=5", "dataset.extra_prices=[low]",
                                            "model.hidden_size=4", "trainer.num_threads=1", *CPU]),
    "mnist_classify": ("lstm_ae_mnist.py", ["task=classify", "dataset.root={data}", "dataset.val_size=8",
                                            "dataset.shift=0", "model.hidden_size=8", "model.init=default",
                                            "trainer.batch_size=16", "trainer.num_threads=1", *CPU]),
    "csv_train": ("lstm_ae_series.py", ["dataset.path={data}", "dataset.scaling=train", "dataset.seq_len=8",
                                        "model.hidden_size=8", "trainer.batch_size=8", "trainer.num_threads=1", *CPU]),
}


def series_csv(path: Path) -> Path:
    """Two value columns of another range each (a, b) over 120 steps."""
    t = np.arange(120)
    pd.DataFrame({"step": t, "a": 10 + np.sin(t / 5), "b": -3 + 2 * np.cos(t / 7)}).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module", params=list(RUNS))
def exported(request, tmp_path_factory):
    """(kind, run folder, export folder) of a tiny run of each kind, exported in both formats."""
    tmp = tmp_path_factory.mktemp(request.param)
    data = (sp500_root(tmp) if "sp500" in request.param else series_csv(tmp / "series.csv") if "csv" in request.param
            else write_fake_mnist(tmp / "data"))
    script, overrides = RUNS[request.param]
    run = tmp / "run"
    proc = run_in_process(script, *[o.format(data=data) for o in overrides], *FP32, f"hydra.run.dir={run}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    export.main([str(run), "--out", str(tmp / "served")])
    return request.param, run, tmp / "served"


def run_both(served: Path, x: torch.Tensor):
    """The outputs of the ONNX graph (onnxruntime) and of the .pt2 program (torch.export.load), by name."""
    session = ort.InferenceSession(str(served / "model.onnx"), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    onnx = dict(zip(names, session.run(None, {"x": x.numpy()})))
    pt2 = {k: v.detach().numpy() for k, v in torch.export.load(served / "model.pt2").module()(x).items()}
    return onnx, pt2


def test_onnx_and_pt2_give_the_torch_models_outputs(exported):
    kind, run, served = exported
    spec = json.loads((served / "preprocessing.json").read_text())
    model = export.load_run(run).model
    _, t, m = spec["input"]["shape"]
    x = torch.rand(5, t, m)  # another batch size than the export's example: the batch is dynamic
    with torch.no_grad():
        want = {k: v.numpy() for k, v in model(x).items()}
    onnx, pt2 = run_both(served, x)
    heads = {"toy": [], "sp500_predict": ["prediction"], "mnist_classify": ["logits"], "csv_train": []}[kind]
    assert list(onnx) == list(pt2) == list(want) == ["reconstruction", "z", *heads] == list(spec["outputs"])
    for name, value in want.items():
        assert list(onnx[name].shape) == [5, *spec["outputs"][name]["shape"][1:]]
        assert np.abs(onnx[name] - value).max() <= 1e-5, name
        assert np.abs(pt2[name] - value).max() <= 1e-5, name


def test_the_exported_graph_scores_the_runs_own_test_metrics(exported):
    """On the run's test data, built as its config says, the ONNX outputs give the test metrics in
    results.json: the graph holds the trained weights (best.pt), not a fresh model."""
    kind, run, served = exported
    results = json.loads((run / "results.json").read_text())
    cfg = export.load_run(run).cfg
    test = instantiate(cfg.dataset).test
    onnx, _ = run_both(served, test.x)
    assert np.mean((onnx["reconstruction"] - test.x.numpy()) ** 2) == pytest.approx(results["test_mse"], rel=1e-4)
    if "logits" in onnx:
        accuracy = np.mean(onnx["logits"].argmax(1) == test.labels.numpy())
        assert accuracy == pytest.approx(results["test_accuracy"], abs=1e-6)
    if "prediction" in onnx:
        next_mse = np.mean((onnx["prediction"][:, -1] - test.next_value.numpy()) ** 2)
        assert next_mse == pytest.approx(results["test_next_mse"], rel=1e-4)


def test_preprocessing_json_says_how_to_build_the_input(exported):
    kind, run, served = exported
    spec = json.loads((served / "preprocessing.json").read_text())
    results = json.loads((run / "results.json").read_text())
    prep = spec["preprocessing"]
    assert spec["config_sha1"] == results["config_sha1"] and spec["project_version"]
    assert spec["files"] == {"onnx": "model.onnx", "pt2": "model.pt2"} and spec["onnx_opset"] >= 18
    assert spec["input"] == {"name": "x", "shape": ["batch", results["seq_len"], results["input_size"]],
                             "dtype": "float32", "batch": "dynamic", "time": f"fixed: {results['seq_len']} steps"}
    assert prep["seq_len"] == results["seq_len"]
    cfg = export.load_run(run).cfg
    splits = instantiate(cfg.dataset)
    if kind == "toy":
        assert prep["scaling"] == {"kind": "none"}
    elif kind == "mnist_classify":  # the recipe, followed on the raw IDX file, gives the run's own input
        assert prep["scaling"]["kind"] == "divide" and prep["layout"] == "row" and len(prep["classes"]) == 10
        images = read_idx_gz(Path(cfg.dataset.root) / "MNIST" / "raw" / FILES["test_images"], 3)
        assert np.array_equal(images.astype(np.float32) / prep["scaling"]["by"], splits.test.x.numpy())
    elif kind == "csv_train":  # the training rows' min-max, saved by the run, scales the raw rows as the run did
        assert prep["columns"] == results["features"] == ["a", "b"] and prep["layout"] == "long"
        assert prep["scaling"] == {"kind": "train_min_max", **results["scaler"]}
        raw = pd.read_csv(cfg.dataset.path)[prep["columns"]].to_numpy()
        k = len(splits.test) - 1
        start = int(splits.test.start[k])
        rows = raw[start : start + prep["seq_len"]]
        lo, span = np.array(prep["scaling"]["lo"]), np.array(prep["scaling"]["span"])
        assert np.allclose((rows - lo) / span, splits.test.x[k].numpy(), atol=1e-6)
    else:  # the S&P recipe, followed on the raw file, gives the run's own input windows
        assert prep["columns"] == ["high", "low"] and prep["stride"] == 5
        assert prep["scaling"]["kind"] == "window_min_max"
        raw = pd.read_csv(Path(cfg.dataset.root) / "sp500" / "sp500_2014_2017.csv.gz")
        k = 3
        symbol, start = splits.group_names[int(splits.test.group[k])], int(splits.test.start[k])
        days = [d.strftime("%Y-%m-%d") for d in splits.dates[start : start + prep["seq_len"]]]
        rows = raw[raw.symbol == symbol].set_index("date").loc[days, prep["columns"]].to_numpy()
        lo, span = rows.min(), max(rows.max() - rows.min(), prep["scaling"]["span_floor"])
        assert np.allclose((rows - lo) / span, splits.test.x[k].numpy(), atol=1e-6)


@pytest.mark.parametrize("missing", [".hydra/config.yaml", "checkpoints/best.pt"])
def test_a_folder_without_a_model_is_refused_in_one_line(missing, tmp_path, capsys):
    run = tmp_path / "run"
    if missing != ".hydra/config.yaml":
        (run / ".hydra").mkdir(parents=True)
        OmegaConf.save(compose_cfg("toy", TINY_TOY), run / ".hydra" / "config.yaml")
    with pytest.raises(SystemExit) as exc:
        export.main([str(run), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and len(err.strip().splitlines()) == 1
    assert f"has no {missing}" in err
    assert not (tmp_path / "out").exists() and not (run / "export").exists()


def test_onnx_without_the_extra_is_refused_in_one_line(tmp_path, monkeypatch, capsys):
    real = export.importlib.util.find_spec
    monkeypatch.setattr(export.importlib.util, "find_spec", lambda name: None if name == "onnxscript" else real(name))
    with pytest.raises(SystemExit) as exc:
        export.main([str(tmp_path / "run"), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and len(err.strip().splitlines()) == 1
    assert "needs onnxscript: pip install -e '.[export]' (or --format pt2)" in err and not (tmp_path / "out").exists()


def test_help_and_a_bad_option(capsys):
    with pytest.raises(SystemExit) as exc:
        export.main(["--help"])
    out = capsys.readouterr().out
    assert exc.value.code == 0 and out.startswith("usage: python -m lstm_ae.export [-h]")
    for flag in ("RUN", "--out", "--format", "onnx", "pt2"):
        assert flag in out
    with pytest.raises(SystemExit) as exc:
        export.main(["somewhere", "--format", "tflite"])
    assert exc.value.code == 2 and "invalid choice: 'tflite'" in capsys.readouterr().err
