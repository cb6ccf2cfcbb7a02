"""Run every experiment of the assignment, each into its own folder; skip the finished ones.

    python -m lstm_ae.reproduce                      # --budget full: the documented default settings
    python -m lstm_ae.reproduce --budget smoke       # the whole chain on tiny settings, minutes
    python -m lstm_ae.reproduce --budget smoke --only toy mnist_row_classify --out outputs/reproduce

Runs go to ``<out>/<budget>/<experiment>/`` (default ``--out outputs/reproduce``). A folder whose
run is no longer the experiment's (its definition, the command's overrides or a default in conf/
changed: its saved overrides or ``config_sha1`` differ) is moved aside to ``<experiment>.old-<time>``
and run anew. An experiment
whose run finished (a sweep: ran to its end, ``sweep.json``) is skipped, and an interrupted
run is continued from its ``last.pt`` (``trainer.resume``), so the command can be rerun after a
crash (an interrupted sweep is run again). ``<out>/<budget>/reproduce.csv`` keeps each
experiment's status and wall time (of the call that ran it), the machine and the torch version;
the report shows it.
Data come from ``--data ROOT`` or ``$LSTM_AE_DATA``. Then ``python -m lstm_ae.report`` builds the
report from these folders. ``python -m lstm_ae.reproduce --help`` lists the options and the
experiment names; the exit status is 0 when no experiment failed, 1 otherwise (2: a bad option).
"""
from __future__ import annotations

import argparse
import csv
import functools
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import yaml

from lstm_ae.run_folder import defining_overrides, finished, saved_fingerprint

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Experiment:
    name: str
    script: str
    args: List[str]  # the experiment (both budgets)
    smoke: List[str] = field(default_factory=list)  # added for --budget smoke
    sweep: bool = False
    title: str = ""

    @property
    def shell_command(self) -> str:
        """The one command that reruns this experiment by hand (as in the README's results table)."""
        return " ".join(["python", self.script, *map(shlex.quote, self.args)])

    def overrides(self, budget: str, extra: Sequence[str] = ()) -> List[str]:
        """What a run of this experiment is, as Hydra overrides (without ``-m``)."""
        return [a for a in [*self.args, *(self.smoke if budget == "smoke" else []), *extra] if a != "-m"]


SMOKE_TOY = ["dataset.num_sequences=200", "model.hidden_size=16", "trainer.epochs=2"]  # 16: the decoder clock's 15 units fit
SMOKE_MNIST = ["dataset.limit=300", "dataset.val_size=50", "model.hidden_size=16", "trainer.epochs=1", "trainer.batch_size=64"]
SMOKE_PIXEL = ["dataset.limit=40", "dataset.val_size=10", "model.hidden_size=8", "trainer.epochs=1", "trainer.batch_size=30"]
SMOKE_FORECAST = ["model.hidden_size=8", "trainer.epochs=1"]  # the forecast experiments: one split, as in full
SMOKE_SP = [*SMOKE_FORECAST, "task.folds=2"]  # the others keep their cross-validation, on 2 folds

EXPERIMENTS = [
    Experiment("toy", "lstm_ae_toy.py", [], SMOKE_TOY, title="Toy sequences: default run"),
    Experiment("toy_grid", "lstm_ae_toy.py", ["-m", "hparams_search=toy_grid"],
               ["dataset.num_sequences=200", "trainer.epochs=1", "model.hidden_size=16,20", "optimizer.lr=0.01",
                "trainer.grad_clip=1.0"],  # smoke: 2 of the grid's 8 jobs
               sweep=True, title="Toy sequences: grid search"),
    Experiment("mnist_row_reconstruct", "lstm_ae_mnist.py", ["task=reconstruct"], SMOKE_MNIST,
               title="MNIST row by row: reconstruction"),
    Experiment("mnist_row_classify", "lstm_ae_mnist.py", ["task=classify"], SMOKE_MNIST,
               title="MNIST row by row: reconstruction + classification"),
    # head on h~_T; the CPU budget (issue 15): Muon, 2 epochs of batch 64, 31 min on the 2-core AMD VM, 96.5 %
    # (docs/results.md); on a GPU the clock run below reached 99.04 % in 153 s
    Experiment("mnist_pixel_classify", "lstm_ae_mnist.py",
               ["task=classify", "dataset.layout=pixel", "dataset.shift=0", "model.hidden_size=128",
                "model.chrono_t_max=100", "task.recon_weight=1", "optimizer=muon", "optimizer.lr=0.006",
                "trainer.epochs=2", "trainer.batch_size=64"],
               SMOKE_PIXEL, title="MNIST pixel by pixel: reconstruction + classification"),
    Experiment("mnist_pixel_clock", "lstm_ae_mnist.py",
               ["task=classify", "dataset.layout=pixel", "dataset.shift=0", "model.hidden_size=128",
                "model.chrono_t_max=100", "model.decoder_clock=[28,28]", "task.recon_weight=1", "trainer.epochs=35"],  # 153 s on an H100
               [*SMOKE_PIXEL, "model.hidden_size=64"],  # the clock's 56 units
               title="MNIST pixel by pixel, the decoder given a (column, row) clock: reconstruction + classification"),
    Experiment("sp500_reconstruct", "lstm_ae_snp500.py", ["task=reconstruct"], SMOKE_SP,
               title="S&P 500: reconstruction with cross-validation"),
    Experiment("sp500_predict", "lstm_ae_snp500.py", ["task=predict"], SMOKE_SP,
               title="S&P 500: one-step and multi-step prediction"),
    Experiment("sp500_forecast", "lstm_ae_snp500.py",
               ["task=predict", "task.pred_loss=last", "dataset.stride=1", "trainer.epochs=4", "task.folds=null"],
               SMOKE_FORECAST, title="S&P 500: forecasting, trained on a window ending on every day"),
    Experiment("sp500_forecast_ohlc", "lstm_ae_snp500.py",
               ["task=predict", "task.pred_loss=last", "dataset.stride=1", "trainer.epochs=4", "task.folds=null",
                "dataset.extra_prices=[open,low,close]"],
               SMOKE_FORECAST, title="S&P 500: forecasting the high from each day's open, high, low and close"),
]
BY_NAME = {e.name: e for e in EXPERIMENTS}


def is_complete(folder: Path, sweep: bool) -> bool:
    """The run finished (a sweep: ran to its end), as :func:`lstm_ae.run_folder.finished` decides."""
    return finished(folder, sweep)


def ran_with(folder: Path, sweep: bool) -> Optional[List[str]]:
    """The overrides the run in ``folder`` was started with, from its saved config (a sweep: ``multirun.yaml``),
    but those that do not change what is trained (``run_folder.defining_overrides``); None where none are saved."""
    try:
        if sweep:
            saved = yaml.safe_load((folder / "multirun.yaml").read_text())["hydra"]["overrides"]["task"]
        else:
            saved = yaml.safe_load((folder / ".hydra" / "overrides.yaml").read_text())
    except (OSError, KeyError, TypeError, yaml.YAMLError):
        return None
    return defining_overrides(saved or [])


def set_aside(folder: Path) -> Path:
    """Rename ``folder`` to ``<name>.old-<time>`` (``-2``, ``-3``, ... if taken), and its log ``<name>.log``
    beside it to ``<name>.old-<time>.log``; return the folder's new path."""
    stem = f"{folder.name}.old-{time.strftime('%Y%m%d-%H%M%S')}"
    aside, n = folder.with_name(stem), 1
    while aside.exists():
        n += 1
        aside = folder.with_name(f"{stem}-{n}")
    log = folder.with_name(f"{folder.name}.log")
    if log.exists():
        log.rename(folder.with_name(f"{aside.name}.log"))
    return folder.rename(aside)


@functools.lru_cache(maxsize=None)  # the report asks twice per run
def _composed_fingerprint(script: str, overrides: Tuple[str, ...]) -> str:
    from hydra import compose, initialize_config_dir

    import lstm_ae.config  # noqa: F401 - the schemas conf/ builds on
    from lstm_ae.run_folder import fingerprint

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return fingerprint(compose(Path(script).stem.removeprefix("lstm_ae_"), overrides=list(overrides)))


def composed_fingerprint(script: str, overrides: Sequence[str]) -> str:
    """The ``config_sha1`` a run of ``python <script> <overrides>`` gets from conf/ as it is now."""
    return _composed_fingerprint(script, tuple(overrides))


def config_changed(exp: Experiment, folder: Path) -> Optional[str]:
    """Why the run in ``folder`` (a sweep: its first job) is not what conf/ now makes of its own command
    (a default changed since), or None: the same, or nothing to tell by (no results, or no longer composes)."""
    jobs = sorted((p for p in folder.glob("*") if p.name.isdigit()), key=lambda p: int(p.name)) if exp.sweep else [folder]
    for job in jobs:
        ran = ran_with(job, sweep=False)
        if ran is None:
            continue
        saved = saved_fingerprint(job)[0]  # the manifest's (else results.json's, a folder from before it)
        try:
            now = composed_fingerprint(exp.script, ran) if saved is not None else None
        except Exception:  # an override conf/ no longer has
            continue
        if now is None:
            continue
        return None if now == saved else (f"has config_sha1 {saved}, but conf/ now makes {now} of the same command "
                                          "(a default changed)")
    return None


def stale(exp: Experiment, folder: Path, wanted: Sequence[str]) -> Optional[str]:
    """Why the run in ``folder`` is not a run of ``wanted`` (the experiment's overrides; those that do not
    change what is trained aside, as for the saved ones) with conf/ as it is now."""
    ran, wanted = ran_with(folder, exp.sweep), defining_overrides(wanted)
    if ran is not None and ran != wanted:
        return f"was run with {' '.join(ran) or 'no overrides'}, not {' '.join(wanted) or 'no overrides'}"
    return config_changed(exp, folder)


def run_command(exp: Experiment, folder: Path) -> Tuple[str, bool]:
    """(the command that reruns the run in ``folder``, whether that run is of the experiment's current
    definition: its saved overrides start with the experiment's and conf/ still makes the same config of
    them); without saved overrides, the experiment's."""
    ran = ran_with(folder, exp.sweep)
    if ran is None:
        return exp.shell_command, True
    flag = ["-m"] if exp.sweep else []
    args = exp.overrides("full")
    current = ran[:len(args)] == args and config_changed(exp, folder) is None
    return " ".join(["python", exp.script, *flag, *map(shlex.quote, ran)]), current


def command(exp: Experiment, folder: Path, budget: str, overrides: Sequence[str] = ()) -> List[str]:
    args = [*(["-m"] if exp.sweep else []), *exp.overrides(budget), "trainer.progress=false", *overrides]
    if exp.sweep:
        args.append(f"hydra.sweep.dir={folder}")
    else:
        args.append(f"hydra.run.dir={folder}")
        if list(folder.glob("checkpoints/last.pt")) + list(folder.glob("fold_*/checkpoints/last.pt")):
            args.append(f"trainer.resume={folder}")  # interrupted earlier: continue from its last.pt
    return [sys.executable, str(ROOT / exp.script), *args]


LEDGER = "reproduce.csv"  # <out>/<budget>/reproduce.csv: one row per experiment, its latest run
LEDGER_FIELDS = ["experiment", "status", "wall_seconds", "finished", "machine", "cpus", "torch"]


def cpu_name() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def trained_on(folder: Path) -> Optional[str]:
    """The ``device`` in the ``results.json`` of the run in ``folder`` (a sweep: its first job); None if none."""
    for path in [folder / "results.json", *sorted(folder.glob("*/results.json"))]:
        try:
            return str(json.loads(path.read_text())["device"])
        except (OSError, ValueError, KeyError):
            continue
    return None


def machine(gpu: bool = True) -> Dict[str, str]:
    """The CPU, and the GPU where ``gpu`` and one is visible; the CPU count and torch's version."""
    import torch  # only here: the launcher itself needs no torch

    name = f" + {torch.cuda.get_device_name(0)}" if gpu and torch.cuda.is_available() else ""
    return {"machine": cpu_name() + name, "cpus": str(os.cpu_count()), "torch": torch.__version__}


def record(ledger: Path, name: str, status: str, seconds: float, folder: Optional[Path] = None) -> None:
    """Write (or replace) the ledger row of experiment ``name``; rows of other experiments stay.

    The machine names the GPU only if the run in ``folder`` trained on one (``trainer.device=cpu`` on a
    GPU machine is a CPU run); where no results say (no folder, a failed run), whenever one is visible.
    """
    device = trained_on(folder) if folder is not None else None
    rows = {}
    if ledger.exists():
        with open(ledger, newline="") as f:
            rows = {r["experiment"]: r for r in csv.DictReader(f)}
    rows[name] = {"experiment": name, "status": status, "wall_seconds": f"{seconds:.1f}",
                  "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
                  **machine(gpu=device is None or device.startswith("cuda"))}
    ledger.parent.mkdir(parents=True, exist_ok=True)
    with open(ledger, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=LEDGER_FIELDS)
        writer.writeheader()
        writer.writerows(rows[e.name] for e in EXPERIMENTS if e.name in rows)


def reproduce(budget: str = "full", out: Path = Path("outputs/reproduce"), only: Optional[List[str]] = None,
              data: Optional[str] = None, overrides: Sequence[str] = ()) -> Dict[str, dict]:
    """Run the experiments not yet complete; return {name: {status, seconds, folder}}.

    ``overrides`` (Hydra ``key=value``) are added to every experiment's command, e.g. ``trainer.device=cpu``.
    """
    if budget not in ("full", "smoke"):
        raise SystemExit(f"budget must be 'full' or 'smoke'; got {budget!r}")
    unknown = sorted(set(only or []) - set(BY_NAME))
    if unknown:
        raise SystemExit(f"unknown experiment(s) {', '.join(unknown)}; choose from {', '.join(BY_NAME)}")
    env = dict(os.environ)
    if data:
        env["LSTM_AE_DATA"] = str(Path(data).resolve())
    status: Dict[str, dict] = {}
    chosen = [e for e in EXPERIMENTS if not only or e.name in only]
    for i, exp in enumerate(chosen, 1):
        folder = (out / budget / exp.name).resolve()
        reason = stale(exp, folder, exp.overrides(budget, overrides))
        if reason:  # the experiment, the overrides or a default changed since: run it anew
            aside = set_aside(folder)
            print(f"[{i}/{len(chosen)}] {exp.name}: {folder} {reason}; moved to {aside.name}", flush=True)
        if is_complete(folder, exp.sweep):
            status[exp.name] = {"status": "done before", "seconds": 0.0, "folder": str(folder)}
            print(f"[{i}/{len(chosen)}] {exp.name}: already complete ({folder})", flush=True)
            continue
        print(f"[{i}/{len(chosen)}] {exp.name}: running ...", flush=True)
        t0 = time.perf_counter()
        proc = subprocess.run(command(exp, folder, budget, overrides), cwd=ROOT, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - t0
        folder.mkdir(parents=True, exist_ok=True)
        (folder.parent / f"{exp.name}.log").write_text(proc.stdout + proc.stderr)
        ok = proc.returncode == 0 and is_complete(folder, exp.sweep)
        status[exp.name] = {"status": "done" if ok else "failed", "seconds": round(seconds, 1), "folder": str(folder)}
        record(out / budget / LEDGER, exp.name, status[exp.name]["status"], seconds, folder)
        last = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [""]
        print(f"[{i}/{len(chosen)}] {exp.name}: {'done' if ok else 'FAILED: ' + last[0]} in {seconds:.0f} s", flush=True)
    done = sum(s["status"] != "failed" for s in status.values())
    total = sum(s["seconds"] for s in status.values())
    print(f"{done}/{len(status)} experiments complete; {total:.0f} s this time; folders under {out / budget}")
    return status


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m lstm_ae.reproduce", description=(__doc__ or "").split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
               "  python -m lstm_ae.reproduce --budget smoke trainer.device=cpu\n"
               "  python -m lstm_ae.reproduce --only toy sp500_reconstruct --data ../shared/data --out outputs/reproduce\n"
               "then: python -m lstm_ae.report --runs outputs/reproduce/full --out report")
    p.add_argument("--budget", choices=["full", "smoke"], default="full",
                   help="full: the documented settings (hours on 2 cores); smoke: tiny settings (minutes) "
                        "(default: %(default)s)")
    p.add_argument("--only", nargs="+", action="extend", choices=list(BY_NAME), metavar="NAME",
                   help="run only these experiments (repeatable; default: all): " + ", ".join(BY_NAME))
    p.add_argument("--out", type=Path, default=Path("outputs/reproduce"), metavar="DIR",
                   help="runs go to DIR/<budget>/<experiment>/ (default: %(default)s)")
    p.add_argument("--data", default=None, metavar="ROOT",
                   help="the data folder (default: $LSTM_AE_DATA, else data/ in the project)")
    p.add_argument("overrides", nargs="*", metavar="OVERRIDE",
                   help="Hydra overrides (key=value) added to every experiment, e.g. trainer.device=cpu")
    return p


def main(argv: Optional[List[str]] = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    for arg in args.overrides:
        key = arg.partition("=")[0]
        if "=" not in arg or key in ("budget", "only", "out", "data"):
            p.error(f"{arg!r} is not a Hydra override (key=value)" + (f"; use --{key}" if "=" in arg else ""))
    status = reproduce(args.budget, args.out, args.only, args.data, args.overrides)
    return 0 if all(s["status"] != "failed" for s in status.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
