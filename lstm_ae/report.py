"""Build the assignment report from run folders: ``report/report.md``, a self-contained ``report.html``, ``report.pdf``.

    python -m lstm_ae.report                               # the folders of python -m lstm_ae.reproduce
    python -m lstm_ae.report --runs outputs/reproduce/full --out report
    python -m lstm_ae.report --runs outputs/reproduce/smoke --out report_smoke

Each experiment of :mod:`lstm_ae.reproduce` is looked up as ``<runs>/<name>/`` (or
``--<name> FOLDER`` points at any run folder). The report reads only the run-folder contract
(``.hydra/config.yaml``, ``results.json``, ``metrics.csv``, ``summary.csv``, PNGs); it never
trains. ``report.pdf`` is a figure appendix (matplotlib's PdfPages: every figure on an A4
page with its caption). For each task: the architecture (from the saved config and results), the
hyper-parameters, the figures, and the metrics beside their baselines. A missing run is named in
the report, not a crash.
"""
from __future__ import annotations

import argparse
import base64
import html
import json
import platform
import shutil
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import pandas as pd
from omegaconf import OmegaConf

from lstm_ae.reproduce import BY_NAME, EXPERIMENTS, Experiment, cpu_name, is_complete, run_command

# What the assignment asks to show, per experiment: (figure file, caption)
FIGURES: Dict[str, List[tuple]] = {
    "toy": [("examples.png", "Synthetic examples (the shaded window is scaled by 0.1)"),
            ("reconstructions.png", "Test sequences and their reconstructions"),
            ("loss.png", "Training and validation loss per epoch")],
    "toy_grid": [],
    "mnist_row_reconstruct": [("reconstructions.png", "Test digits and their reconstructions"),
                              ("loss.png", "Loss per epoch")],
    "mnist_row_classify": [("reconstructions.png", "Test digits, reconstructions and predicted classes"),
                           ("loss.png", "Loss per epoch"), ("accuracy.png", "Accuracy per epoch")],
    "mnist_pixel_classify": [("reconstructions.png", "Test digits, reconstructions and predicted classes"),
                             ("loss.png", "Loss per epoch"), ("accuracy.png", "Accuracy per epoch")],
    "mnist_pixel_clock": [("reconstructions.png", "Test digits, reconstructions and predicted classes"),
                          ("loss.png", "Loss per epoch"), ("accuracy.png", "Accuracy per epoch")],
    "sp500_reconstruct": [("daily_high.png", "Daily high of AMZN and GOOGL"),
                          ("reconstructions.png", "Three test stocks and their reconstructions (USD)"),
                          ("loss.png", "Loss per epoch (the selected fold)")],
    "sp500_predict": [("training_loss.png", "Training loss per epoch"),
                      ("prediction_loss.png", "Prediction loss per epoch"),
                      ("multistep.png", "One-step vs multi-step prediction on test stocks"),
                      ("reconstructions.png", "Reconstructions of the same model")],
    "sp500_forecast": [("prediction_loss.png", "Prediction loss per epoch (the day after each window)"),
                       ("multistep.png", "One-step vs multi-step prediction on test stocks")],
    "sp500_forecast_ohlc": [("prediction_loss.png", "Prediction loss per epoch (the day after each window)"),
                            ("multistep.png", "One-step vs multi-step prediction of the daily high on test stocks")],
}
# (metric, baselines, label) rows of each results table
METRICS = [
    ("test_mse", ("baseline_test_mse",), "test MSE (scaled units)"),
    ("test_accuracy", ("baseline_test_accuracy",), "test accuracy"),
    ("test_rmse_usd", (), "test RMSE of the reconstruction (USD)"),
    ("test_next_mse", ("baseline_test_next_mse", "baseline_test_ar_next_mse"),
     "one-step MSE, the day after each window (scaled)"),
    ("test_onestep_mse_usd", ("baseline_test_onestep_mse_usd", "baseline_test_ar_onestep_mse_usd"),
     "one-step MSE over second halves (USD^2)"),
    ("test_multistep_mse_usd", ("baseline_test_multistep_mse_usd", "baseline_test_ar_multistep_mse_usd"),
     "multi-step MSE over second halves (USD^2)"),
    ("cv_mean_val_mse", (), "cross-validation: mean validation MSE of the folds"),
    ("cv_mean_val_pred_mse", (), "cross-validation: mean validation prediction MSE"),
]
AR = "linear AR on the training stocks"
BASELINE_NAMES = {"baseline_test_mse": "each step's training mean", "baseline_test_accuracy": "majority class",
                  "baseline_test_next_mse": "persistence", "baseline_test_onestep_mse_usd": "persistence",
                  "baseline_test_multistep_mse_usd": "last price held flat", "baseline_test_ar_next_mse": AR,
                  "baseline_test_ar_onestep_mse_usd": AR, "baseline_test_ar_multistep_mse_usd": AR + ", fed back"}


class Doc:
    """A report built once, written as Markdown, self-contained HTML and a PDF figure appendix."""

    def __init__(self, out: Path) -> None:
        self.out, self.md, self.html = out, [], []
        self.figures: List[tuple] = []  # (png, caption, section) for the PDF
        self.section = ""

    def heading(self, text: str, level: int = 2) -> None:
        if level == 2:
            self.section = text
        self.md.append(f"{'#' * level} {text}\n")
        self.html.append(f"<h{level}>{html.escape(text)}</h{level}>")

    def para(self, text: str) -> None:
        self.md.append(text + "\n")
        self.html.append(f"<p>{html.escape(text)}</p>")

    def items(self, lines: Sequence[str]) -> None:
        self.md.append("\n".join(f"- {line}" for line in lines) + "\n")
        self.html.append("<ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in lines) + "</ul>")

    def table(self, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        cells = [[_fmt(c) for c in row] for row in rows]
        self.md.append("| " + " | ".join(header) + " |\n| " + " | ".join("---" for _ in header) + " |\n"
                       + "".join("| " + " | ".join(r) + " |\n" for r in cells))
        self.html.append("<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>"
                         + "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in cells)
                         + "</table>")

    def figure(self, path: Path, caption: str, name: str) -> None:
        target = self.out / "figures" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)
        self.figures.append((target, caption, self.section))
        self.md.append(f"![{caption}](figures/{name})\n\n*{caption}*\n")
        data = base64.b64encode(path.read_bytes()).decode()
        self.html.append(f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(caption)}">'
                         f"<figcaption>{html.escape(caption)}</figcaption></figure>")

    def missing(self, text: str) -> None:
        self.md.append(f"> **Missing:** {text}\n")
        self.html.append(f'<p class="missing"><b>Missing:</b> {html.escape(text)}</p>')

    def write(self, title: str) -> Dict[str, Path]:
        self.out.mkdir(parents=True, exist_ok=True)
        md = self.out / "report.md"
        md.write_text("\n".join(self.md))
        page = self.out / "report.html"
        style = ("body{font-family:sans-serif;max-width:60em;margin:2em auto;line-height:1.45}"
                 "img{max-width:100%}table{border-collapse:collapse;margin:1em 0}"
                 "td,th{border:1px solid #bbb;padding:.25em .6em;text-align:left}"
                 "figcaption{font-style:italic;margin-bottom:1.5em}.missing{color:#a00}")
        page.write_text(f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
                        f"<style>{style}</style></head><body>" + "\n".join(self.html) + "</body></html>\n")
        return {"md": md, "html": page, "pdf": self.write_pdf(title)}

    def write_pdf(self, title: str) -> Path:
        """``report.pdf``: a contents page, then every figure on its own A4 page with its caption."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.backends.backend_pdf import PdfPages

        path = self.out / "report.pdf"
        a4 = (8.27, 11.69)
        with PdfPages(path) as pdf:
            fig = plt.figure(figsize=a4)
            lines = [f"{i}. {section}: {caption}" for i, (_, caption, section) in enumerate(self.figures, 1)]
            fig.text(0.08, 0.95, title, fontsize=16, weight="bold", va="top")
            fig.text(0.08, 0.91, "Figure appendix of report.md / report.html (tables and text are there)",
                     fontsize=9, va="top")
            fig.text(0.08, 0.87, "\n".join(lines), fontsize=8, va="top", wrap=True)
            pdf.savefig(fig)
            plt.close(fig)
            for i, (png, caption, section) in enumerate(self.figures, 1):
                fig = plt.figure(figsize=a4)
                fig.text(0.06, 0.96, f"{i}. {section}", fontsize=13, weight="bold", va="top")
                ax = fig.add_axes([0.05, 0.12, 0.9, 0.8])
                ax.imshow(plt.imread(png))
                ax.axis("off")
                fig.text(0.06, 0.08, caption, fontsize=10, style="italic", va="top", wrap=True)
                pdf.savefig(fig)
                plt.close(fig)
        return path


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def saved_input_size(folder: Path) -> Any:
    """Features per time step, read from the saved model (the encoder's input weights)."""
    try:
        import torch

        state = torch.load(folder / "checkpoints" / "best.pt", map_location="cpu", weights_only=True)["model"]
        return int(state["encoder.weight_ih_l0"].shape[1])
    except Exception:  # no checkpoint (save_checkpoints=false) or another model
        return "?"


def architecture(cfg, results: Dict[str, Any], task: str, folder: Path) -> List[str]:
    """The model in words, from the saved config, results.json and the saved model."""
    m = results.get("input_size") or saved_input_size(folder)
    h, layers = cfg.model.hidden_size, cfg.model.num_layers
    lines = [
        f"Encoder: LSTM, input {m}, hidden {h}, {layers} layer(s); reads x_1..x_T"
        + (f" (T = {results['seq_len']})" if "seq_len" in results else "") + "; context z = h_T",
        f"Decoder: a different LSTM, input {h} (z at every step), hidden {h}, {layers} layer(s)",
        f"Output: x~_t = sigmoid(Linear({h} -> {m}) h~_t)",
    ]
    if task == "classify":
        where = "z (the encoder's last state)" if cfg.model.classify_from == "latent" else "h~_T (the decoder's last state)"
        lines.append(f"Classifier: Linear({h} -> 10) on {where}")
        lines.append(f"Loss: {cfg.task.recon_weight} x MSE + {cfg.task.class_weight} x cross-entropy")
    elif task == "predict":
        lines.append(f"One-step head: y~_t = Linear({h} -> {m}) h_t on the encoder's per-step states (causal)")
        lines.append(f"Loss: {cfg.task.recon_weight} x MSE(x~, x) + {cfg.task.pred_weight} x MSE(y~_t, x_(t+1))")
    else:
        lines.append("Loss: MSE")
    lines.append(f"Parameters: {results.get('num_parameters', '?'):,}" if isinstance(results.get("num_parameters"), int)
                 else "Parameters: ?")
    return lines


def hyperparameters(cfg) -> List[List[Any]]:
    opt = cfg.optimizer._target_.rsplit(".", 1)[-1]
    sched = (cfg.scheduler.get("_target_") or "none").rsplit(".", 1)[-1]
    rows = [["optimizer", f"{opt}, lr {cfg.optimizer.lr}"], ["scheduler", sched],
            ["epochs", cfg.trainer.epochs], ["batch size", cfg.trainer.batch_size],
            ["gradient clipping", cfg.trainer.grad_clip], ["precision", cfg.trainer.precision],
            ["initialisation", cfg.model.init], ["seed", cfg.trainer.seed]]
    for key in ("layout", "seq_len", "price", "num_sequences"):
        if key in cfg.dataset:
            rows.append([f"dataset.{key}", cfg.dataset[key]])
    if cfg.task.get("folds"):
        rows.append(["cross-validation folds", cfg.task.folds])
    return rows


def results_rows(results: Dict[str, Any]) -> List[List[Any]]:
    rows = []
    for metric, baselines, label in METRICS:
        if metric in results:
            bases = [f"{_fmt(results[b])} ({BASELINE_NAMES[b]})" for b in baselines if results.get(b) is not None]
            rows.append([label, results[metric], "; ".join(bases)])
    return rows


def section(doc: Doc, name: str, title: str, folder: Optional[Path]) -> bool:
    doc.heading(title)
    exp = BY_NAME[name]
    if folder is None or not is_complete(folder, exp.sweep):
        where = f" (looked in {folder})" if folder else ""
        doc.missing(f"no complete run of '{name}'{where}; run `python -m lstm_ae.reproduce --only {name}`")
        return False
    if exp.sweep:
        df = pd.read_csv(folder / "summary.csv")
        swept = [c for c in df.columns if "." in c and df[c].nunique() > 1]
        cols = [c for c in [*swept, "val_mse", "test_mse", "best_epoch", "train_seconds", "status"] if c in df]
        doc.para(f"{len(df)} models ({(df['status'] == 'finished').sum()} finished), best validation MSE first "
                 f"(folder {folder}).")
        doc.table(cols, df[cols].values.tolist())
        return True
    cfg = OmegaConf.load(folder / ".hydra" / "config.yaml")
    results = json.loads((folder / "results.json").read_text())
    task = OmegaConf.load(folder / ".hydra" / "hydra.yaml").hydra.runtime.choices.get("task", "")
    doc.para(f"Run folder: {folder}. Command: {command_cell(exp, folder)}")
    doc.heading("Architecture", 3)
    doc.items(architecture(cfg, results, task, folder))
    doc.heading("Hyper-parameters", 3)
    doc.table(["setting", "value"], hyperparameters(cfg))
    doc.heading("Results", 3)
    doc.table(["metric", "model", "baseline"], results_rows(results))
    doc.para(f"Training: {results.get('epochs_run')} epochs, best epoch {results.get('best_epoch')}, "
             f"{results.get('train_seconds')} s on {results.get('device')} (torch {results.get('torch_version')}); "
             f"test metrics from one evaluation pass at {results.get('eval_precision', 'the training precision')}.")
    if (folder / "folds.csv").exists():
        doc.heading("Cross-validation folds", 3)
        folds = pd.read_csv(folder / "folds.csv")
        doc.table(list(folds.columns), folds.values.tolist())
    for file, caption in FIGURES.get(name, []):
        if (folder / file).exists():
            doc.figure(folder / file, caption, f"{name}_{file}")
        else:
            doc.missing(f"{file} in {folder}")
    return True


def command_cell(exp: Experiment, folder: Path) -> str:
    """The command the run in ``folder`` was made with, and a warning where it is not the experiment's any more."""
    text, current = run_command(exp, folder)
    return f"`{text}`" + ("" if current else f" (a run of an earlier definition; now: `{exp.shell_command}`)")


def summary_rows(folders: Dict[str, Path]) -> List[List[Any]]:
    """[experiment, metric, model, baseline] of every complete run: the report's (and README's) headline table."""
    rows = []
    for exp in EXPERIMENTS:
        folder = folders[exp.name]
        if not is_complete(folder, exp.sweep):
            continue
        if exp.sweep:
            df = pd.read_csv(folder / "summary.csv")
            best = df.sort_values("val_mse").iloc[0]
            rows.append([exp.name, f"test MSE of the best of {len(df)} models on validation", best["test_mse"], "",
                         command_cell(exp, folder)])
            continue
        for i, (label, model, baseline) in enumerate(results_rows(json.loads((folder / "results.json").read_text()))):
            rows.append([exp.name, label, model, baseline, "same run" if i else command_cell(exp, folder)])
    return rows


# the pixel-by-pixel runs drawn beside row by row in the comparison, where present
PIXEL_RUNS = [("mnist_pixel_classify", "pixel by pixel"), ("mnist_pixel_clock", "pixel by pixel (decoder clock)")]


def budget_table(doc: Doc, ledger: Path) -> None:
    """The wall time of each experiment as ``python -m lstm_ae.reproduce`` measured it."""
    doc.heading("Budget and wall time")
    if not ledger.exists():
        doc.para(f"No {ledger} (python -m lstm_ae.reproduce writes it); each run's training time is in its section.")
        return
    df = pd.read_csv(ledger)
    rows = [[r.experiment, r.status, f"{r.wall_seconds:.0f}", r.finished, f"{r.machine}, {r.cpus} CPUs, torch {r.torch}"]
            for r in df.itertuples()]
    total = df["wall_seconds"].sum()
    rows.append(["total", "", f"{total:.0f} ({total / 60:.0f} min; the sum: runs made at once overlap)", "", ""])
    doc.table(["experiment", "status", "wall time (s)", "finished", "machine"], rows)


def build(runs: Path, out: Path, overrides: Optional[Dict[str, Path]] = None) -> Dict[str, Path]:
    """Write the report for the experiments under ``runs`` (or the folders in ``overrides``)."""
    overrides = overrides or {}
    doc = Doc(out)
    doc.heading("LSTM autoencoders on time series: report", 1)
    doc.para(f"Built {time.strftime('%Y-%m-%d %H:%M')} on {platform.node()} ({cpu_name()}) "
             f"from the run folders under {runs}. Every number below is read from those folders.")
    budget_table(doc, runs / "reproduce.csv")
    folders = {exp.name: overrides.get(exp.name) or runs / exp.name for exp in EXPERIMENTS}
    doc.heading("Summary")
    doc.table(["experiment", "metric", "model", "baseline", "command"], summary_rows(folders))
    found = {}
    for exp in EXPERIMENTS:
        folder = folders[exp.name]
        found[exp.name] = section(doc, exp.name, exp.title, folder if folder.exists() else None)
    doc.heading("MNIST: row by row against pixel by pixel")
    pixel = [(name, label) for name, label in PIXEL_RUNS if found[name]]
    if found["mnist_row_classify"] and pixel:
        from lstm_ae.compare import compare

        written = compare([folders["mnist_row_classify"], *(folders[name] for name, _ in pixel)],
                          ["row by row", *(label for _, label in pixel)], out / "compare")
        for path in written:
            if path.suffix == ".png":
                doc.figure(path, f"Row by row vs pixel by pixel: {path.stem.replace('compare_', '')} per epoch",
                           f"row_vs_pixel_{path.name}")
    else:
        doc.missing("the comparison needs mnist_row_classify and mnist_pixel_classify or mnist_pixel_clock")
    paths = doc.write("LSTM autoencoders: report")
    missing = [name for name, ok in found.items() if not ok]
    print(f"report: {paths['md']}, {paths['html']} and {paths['pdf']}" + (f"; missing runs: {', '.join(missing)}" if missing else ""))
    return paths


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m lstm_ae.report", description=(__doc__ or "").split("\n")[0].replace("``", ""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
               "  python -m lstm_ae.report --runs outputs/reproduce/smoke --out report_smoke\n"
               "  python -m lstm_ae.report --mnist_row_classify outputs/my_run   # one run from elsewhere")
    parser.add_argument("--runs", type=Path, default=Path("outputs/reproduce/full"), metavar="DIR",
                        help="the folder holding one folder per experiment, as python -m lstm_ae.reproduce "
                             "writes it (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=Path("report"), metavar="DIR",
                        help="folder for report.md, report.html, report.pdf and figures/ (default: %(default)s)")
    for exp in EXPERIMENTS:
        parser.add_argument(f"--{exp.name}", type=Path, default=None, metavar="DIR",
                            help=f"run folder of {exp.name} (overrides --runs)")
    args = parser.parse_args(argv)
    overrides = {e.name: getattr(args, e.name) for e in EXPERIMENTS if getattr(args, e.name)}
    build(args.runs, args.out, overrides)


if __name__ == "__main__":
    main()
