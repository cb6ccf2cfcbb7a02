"""Export a trained run's model for a serving stack without this project: ONNX and torch.export's ``.pt2``.

    python -m lstm_ae.export RUN [--out DIR] [--format onnx pt2]

Reads the run folder only (``.hydra/config.yaml``, ``checkpoints/best.pt``, ``results.json``);
never trains. Writes into ``--out`` (default: ``RUN/export``):

- ``model.onnx``: the ONNX graph (``torch.onnx.export``, dynamo exporter; needs the ``export``
  extra: ``pip install -e '.[export]'``), run with e.g. onnxruntime;
- ``model.pt2``: the ``torch.export`` program (``torch.export.load(path).module()(x)``; needs torch);
- ``preprocessing.json``: what a client does to build the input from its data (by dataset:
  :data:`PREPROCESSING`), the input and output names, shapes and dtype, the run's ``config_sha1``
  and the project's version.

Both graphs take one float32 input ``x`` of shape (batch, seq_len, input_size) and return named
outputs: ``reconstruction`` (batch, seq_len, input_size), ``z`` (batch, hidden_size), and the heads
the run has: ``logits`` (batch, classes), ``prediction`` (batch, seq_len, input_size). The batch
is dynamic; the time length is fixed to the run's seq_len (torch.export unrolls nn.LSTM over the
steps, so a dynamic time dimension is refused as specialised). The graphs are in fp32 whatever
precision the run trained with.
"""
from __future__ import annotations

import argparse
import importlib.util
import sys
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import torch
from omegaconf import DictConfig, OmegaConf

from lstm_ae import run_folder as rf
from lstm_ae.errors import UserError
from lstm_ae.trained import OUTPUTS, Named, SavedRun, load_run  # noqa: F401  (export's names before lstm_ae.trained)

FORMATS = {"onnx": "model.onnx", "pt2": "model.pt2"}
PREPROCESSING_FILE = "preprocessing.json"
INPUT = "x"
# what each output (lstm_ae.trained.OUTPUTS) holds, for preprocessing.json
MEANING = {
    "reconstruction": "x~: the input reconstructed, in the input's scale",
    "z": "the latent code (the encoder's last hidden state)",
    "logits": "class scores (argmax: the class; softmax: probabilities)",
    "prediction": "y~_t predicts x_(t+1) in the window's scale; prediction[:, -1]: the step after the window",
}
EXTRA = "pip install -e '.[export]'"


class ExportError(UserError):
    """An export that cannot be made (the format's packages missing); a run folder without a model
    raises :class:`lstm_ae.trained.RunError`."""


# ------------------------------------------------------------------------- preprocessing, by dataset
def _toy(ds: DictConfig) -> Dict[str, Any]:
    return {"seq_len": ds.seq_len, "columns": ["value"], "scaling": {"kind": "none"},
            "how": "each sequence's seq_len values as they are: the toy sequences are in [0, 1] already"}


def _mnist(ds: DictConfig) -> Dict[str, Any]:
    row = str(ds.get("layout", "row")) == "row"
    return {"seq_len": 28 if row else 784, "layout": "row" if row else "pixel", "image_shape": [28, 28],
            "scaling": {"kind": "divide", "by": 255.0},
            "how": ("a 28 x 28 uint8 image (MNIST's IDX layout, white digit on black) / 255, as "
                    + ("28 steps of 28 pixels: one image row per step, top row first" if row else
                       "784 steps of 1 pixel: image.reshape(784, 1), row by row")),
            "classes": [str(d) for d in range(10)]}


def _sp500(ds: DictConfig) -> Dict[str, Any]:
    columns = [str(ds.get("price", "high"))] + [str(p) for p in ds.get("extra_prices") or []]
    floor = _span_floor()
    return {"seq_len": ds.get("seq_len"), "stride": ds.get("stride") or ds.get("seq_len"), "columns": columns,
            "scaling": {"kind": "window_min_max", "span_floor": floor},
            "how": (f"seq_len consecutive trading days of one stock, a step per day holding its {', '.join(columns)} "
                    "prices in that order; min-max scale each window with its own lo = min and "
                    f"span = max(max - lo, {floor:g}) over all of its values (every column): x = (price - lo) / span. "
                    "Outputs back in prices: value * span + lo, every column; the prediction may leave [0, 1]")}


def _csv(ds: DictConfig, results: Dict[str, Any]) -> Dict[str, Any]:
    """dataset=csv: the run's value columns (results.json ``features``; a wide layout: one value per
    series), and its scaling: each window by its own min-max, or the min-max fitted on the training rows
    (results.json ``scaler``)."""
    columns = results.get("features") or ["value"]
    common = {"seq_len": ds.get("seq_len"), "stride": ds.get("stride") or ds.get("seq_len"), "columns": columns,
              "layout": str(ds.get("layout")), "time_column": ds.get("time_column"), "id_column": ds.get("id_column"),
              "fill": ds.get("fill"), "sort": ds.get("sort"), "duplicates": ds.get("duplicates")}
    if str(ds.get("scaling")) == "train" and results.get("scaler"):
        lo, span = results["scaler"]["lo"], results["scaler"]["span"]
        return {**common, "scaling": {"kind": "train_min_max", "lo": lo, "span": span},
                "how": (f"seq_len consecutive rows of one series in time order, a step holding its {', '.join(columns)} "
                        "values in that order; scale each column j with the numbers fitted on the run's training rows: "
                        "x = (value - lo[j]) / span[j]; outputs back: value * span[j] + lo[j]")}
    return {**common, "scaling": {"kind": "window_min_max", "span_floor": _span_floor()},
            "how": (f"seq_len consecutive rows of one series in time order, a step holding its {', '.join(columns)} "
                    "values in that order; min-max scale each window with its own lo = min and span = max(max - lo, "
                    f"{_span_floor():g}) per column: x = (value - lo) / span; outputs back: value * span + lo")}


def _span_floor() -> float:
    from lstm_ae.data.windows import scale_windows

    return float(scale_windows(torch.zeros(1, 1, dtype=torch.float64))[2])  # the span of a flat window


# dataset._target_ -> what a client must do to build the input (seq_len, columns, scaling, how), from the
# dataset's config and the run's results.json; a new dataset adds its entry here (docs/extending.md)
PREPROCESSING: Dict[str, Callable[[DictConfig, Dict[str, Any]], Dict[str, Any]]] = {
    "lstm_ae.data.toy.load_toy": lambda ds, results: _toy(ds),
    "lstm_ae.data.mnist.load_mnist": lambda ds, results: _mnist(ds),
    "lstm_ae.data.sp500.load_sp500": lambda ds, results: _sp500(ds),
    "lstm_ae.data.csv.load_csv": _csv,
}


def preprocessing(ds: DictConfig, results: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """The dataset's entry of :data:`PREPROCESSING`, with its ``dataset`` (``_target_``); ``{}`` for a
    dataset without one. ``results``: the run's results.json (what the run learned of its data)."""
    target = str(ds.get("_target_"))
    entry = PREPROCESSING.get(target)
    return {"dataset": target, **entry(ds, results or {})} if entry else {}


def describe(run: SavedRun, files: Dict[str, str], opset: Optional[int]) -> Dict[str, Any]:
    """What ``preprocessing.json`` holds."""
    with torch.no_grad():
        out = run.model(torch.zeros(1, run.seq_len, run.input_size))
    outputs = {name: {"shape": ["batch", *t.shape[1:]], "dtype": "float32", "meaning": MEANING[name]}
               for name, t in out.items()}
    prep = preprocessing(run.cfg.dataset, run.results)
    if not prep:
        prep = {"dataset": str(run.cfg.dataset.get("_target_")), "how": "unknown: add this dataset's entry to "
                "lstm_ae.export.PREPROCESSING; its config is under dataset_config"}
    prep["seq_len"] = run.seq_len  # the run's own (results.json), e.g. a whole series for sp500 seq_len=null
    man = rf.manifest(run.folder) or {}
    return {
        "run": str(run.folder.resolve()), "config_sha1": run.results.get("config_sha1") or man.get("config_sha1"),
        "task": man.get("task") or str(run.cfg.task.get("_target_", "")).rsplit(".", 1)[-1].lower(),
        "best_epoch": run.epoch, "project_version": rf.project_version(), "torch_version": torch.__version__,
        "files": files, "onnx_opset": opset,
        "input": {"name": INPUT, "shape": ["batch", run.seq_len, run.input_size], "dtype": "float32",
                  "batch": "dynamic", "time": f"fixed: {run.seq_len} steps"},
        "outputs": outputs,
        "preprocessing": prep,
        "dataset_config": OmegaConf.to_container(run.cfg.dataset, resolve=False),
    }


# ------------------------------------------------------------------------------------ export
def export(folder: Path, out: Optional[Path] = None, formats: Sequence[str] = tuple(FORMATS)) -> List[Path]:
    """Export the run in ``folder`` to ``out`` (default ``folder/export``) in ``formats``; returns the
    files written. Everything is checked before the first file is written."""
    folder = Path(folder)
    out = Path(out) if out is not None else folder / "export"
    formats = list(dict.fromkeys(formats))
    if "onnx" in formats:
        lacking = [m for m in ("onnx", "onnxscript") if importlib.util.find_spec(m) is None]
        if lacking:
            raise ExportError(f"--format onnx needs {' and '.join(lacking)}: {EXTRA} (or --format pt2)")
    run = load_run(folder)
    x = torch.rand(2, run.seq_len, run.input_size)
    dims = {"x": {0: torch.export.Dim("batch", min=1)}}
    with warnings.catch_warnings():  # nn.LSTM's _flat_weights and torch's own deprecations: nothing to act on
        warnings.simplefilter("ignore")
        program = torch.export.export(run.model, (x,), dynamic_shapes=dims)
    out.mkdir(parents=True, exist_ok=True)
    written, opset = [], None
    if "pt2" in formats:
        torch.export.save(program, out / FORMATS["pt2"])
        written.append(out / FORMATS["pt2"])
    if "onnx" in formats:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            onnx_program = torch.onnx.export(program, (x,), out / FORMATS["onnx"], input_names=[INPUT],
                                             output_names=list(program.module()(x)), dynamic_shapes=dims,
                                             dynamo=True, external_data=False, verbose=False)
        opset = onnx_program.model.opset_imports.get("")
        written.append(out / FORMATS["onnx"])
    files = {f: FORMATS[f] for f in formats}
    rf.write_json(out / PREPROCESSING_FILE, describe(run, files, opset))
    return [*written, out / PREPROCESSING_FILE]


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m lstm_ae.export", description=(__doc__ or "").split("\n")[0].replace("``", ""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  python -m lstm_ae.export outputs/toy/reconstruct/2025-01-01_12-00-00 --out served\n"
               f"ONNX needs the export extra: {EXTRA}")
    parser.add_argument("run", type=Path, metavar="RUN", help="a run folder (with .hydra/ and checkpoints/best.pt)")
    parser.add_argument("--out", type=Path, metavar="DIR", help="folder for the files (default: RUN/export)")
    parser.add_argument("--format", nargs="+", choices=list(FORMATS), default=list(FORMATS), dest="formats",
                        help="what to write (default: both); preprocessing.json is always written")
    args = parser.parse_args(argv)
    try:
        paths = export(args.run, args.out, args.formats)
    except UserError as err:
        print(f"export: {err}", file=sys.stderr)
        sys.exit(2)
    for path in paths:
        print(path)


if __name__ == "__main__":
    main(sys.argv[1:])
