"""How long python -m lstm_ae.runs takes over 1,000 run folders (goal: under 2 s on 2 cores).

    python -m bench.runs_table                       # 1,000 folders, 5 repeats
    python -m bench.runs_table --folders 200 --repeats 3 --out /tmp/runs_table.json

One real tiny toy run (the entry script, 2 epochs: what Hydra and the trainer really write) is
the template of every synthetic folder: its ``.hydra/config.yaml``, ``hydra.yaml``,
``overrides.yaml``, ``results.json`` and log, with other overrides, 150 epochs of ``metrics.csv``
rows, a log line per epoch, the checkpoint and figure files (as empty stand-ins: they are only
listed, never read). Half the folders are single runs (``outputs/toy/reconstruct/<date>_<time>/``),
half are jobs of 20-job sweeps (``multirun/toy/reconstruct/<date>_<time>_<pid>/<job>/``), with a
mix of statuses: finished, finished cross-validation (5 ``fold_<k>/``), interrupted (killed
mid-epoch: a cut last row, no results, no end state), running (``run.lock`` held by this process
while the table is timed), failed, diverged and pruned (the end state in ``run.json``, the
template's manifest with its own overrides). One folder in ``LEGACY`` is written as before the
manifest existed (no ``run.json``; ``error.txt``, ``pruned.json``; a running one's last write
now): the table reads those from ``.hydra/``. Every row's status is checked against the status
the folder was made with.

Timed: the listing in this process (``lstm_ae.runs.main``, output to a buffer) and the command
in a fresh interpreter (``python -m lstm_ae.runs ROOT``, interpreter start included; also with
``--json`` and with ``--where`` on a config key), each the
median and minimum of ``--repeats``; the files are in the page cache (just written). Results go
to ``--out`` as JSON with the CPU model.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import yaml

from lstm_ae import run_folder as rf
from lstm_ae import runs
from lstm_ae.reproduce import cpu_name

ROOT = Path(__file__).resolve().parents[1]
GOAL_SECONDS = 2.0
EPOCHS = 150
SWEEP_JOBS = 20
# status the folder is made with -> its share of single runs, of sweep jobs
MIX = {
    "finished": (0.74, 0.62),
    "finished_cv": (0.04, 0.0),
    "interrupted": (0.08, 0.06),
    "running": (0.04, 0.04),
    "failed": (0.06, 0.08),
    "diverged": (0.04, 0.06),
    "pruned": (0.0, 0.14),
}
FIGURES = ["examples.png", "reconstructions.png", "loss.png"]
LEGACY = 10  # one folder in LEGACY has no manifest (written before it existed)


def template(folder: Path) -> Path:
    """One real toy run of 2 epochs into ``folder``: the shape of every file."""
    # hidden 8 is too few units for the toy's decoder clock (conf/toy.yaml: 15), so the clock is off
    cmd = [sys.executable, str(ROOT / "lstm_ae_toy.py"), "dataset.num_sequences=100", "model.hidden_size=8",
           "model.decoder_clock=null", "trainer.epochs=2", "trainer.device=cpu", "trainer.progress=false",
           "trainer.num_threads=1", f"hydra.run.dir={folder}"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if proc.returncode != 0:  # the run's own error is logged to stdout, a traceback goes to stderr
        raise SystemExit(f"the template run failed ({' '.join(cmd[1:])}):\n{(proc.stdout + proc.stderr)[-2000:]}")
    return folder


class Maker:
    """Writes synthetic run folders shaped like the template run's."""

    def __init__(self, tpl: Path, seed: int = 0) -> None:
        self.rng = random.Random(seed)
        self.config = yaml.safe_load((tpl / ".hydra" / "config.yaml").read_text())
        self.hydra = (tpl / ".hydra" / "hydra.yaml").read_text()
        self.results = json.loads((tpl / "results.json").read_text())
        self.header = (tpl / "metrics.csv").read_text().splitlines()[0]
        self.log_name = next(tpl.glob("*.log")).name
        self.manifest = json.loads((tpl / "run.json").read_text())
        self.tpl_dir = str(tpl)
        self.locks: List[rf.Lock] = []  # of the "running" folders, held while the table is timed

    def make(self, folder: Path, kind: str, sweep: bool, now: float, legacy: bool = False) -> None:
        rng = self.rng
        hidden, lr, seed = rng.choice([8, 16, 24, 32, 48]), rng.choice([0.001, 0.005, 0.01]), rng.randrange(5)
        overrides = [f"model.hidden_size={hidden}", f"optimizer.lr={lr}", f"trainer.epochs={EPOCHS}",
                     f"trainer.seed={seed}", "trainer.progress=false"]
        cv = kind == "finished_cv"
        config = json.loads(json.dumps(self.config))
        config["model"]["hidden_size"], config["optimizer"]["lr"] = hidden, lr
        config["trainer"].update(epochs=EPOCHS, seed=seed, progress=False)
        config["task"]["folds"] = 5 if cv else None
        hydra_dir = folder / ".hydra"
        hydra_dir.mkdir(parents=True)
        (hydra_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        (hydra_dir / "overrides.yaml").write_text(yaml.safe_dump(overrides))
        hydra = self.hydra.replace(self.tpl_dir, str(folder)).replace("mode: RUN", "mode: MULTIRUN" if sweep else "mode: RUN")
        hydra = re.sub(r"(?m)^    task:\n(?:    - .*\n)*", "    task:\n" + "".join(f"    - {o}\n" for o in overrides), hydra)
        (hydra_dir / "hydra.yaml").write_text(hydra)

        epochs = {"interrupted": rng.randrange(10, EPOCHS - 10), "running": rng.randrange(1, EPOCHS - 1),
                  "failed": 0, "diverged": rng.randrange(5, 100), "pruned": rng.randrange(5, 60)}.get(kind, EPOCHS)
        rows = self.metrics(epochs)
        log = [f"[2026-11-26 10:00:00,000][lstm_ae][INFO] - data: 6000/2000/2000 sequences of 50 steps x 1; "
               f"model: {4 * hidden * (hidden + 2) * 2 + hidden + 1} parameters; device cpu"]
        log += [f"[2026-11-26 10:00:{e % 60:02d},000][lstm_ae.trainer][INFO] - epoch {e}/{EPOCHS}  train_loss 0.01  "
                f"val_loss 0.01  lr 0.001  1.0s" for e in range(1, epochs + 1)]
        targets = [folder / f"fold_{k}" for k in range(5)] if cv else [folder]
        for target in targets:
            target.mkdir(exist_ok=True)
            if epochs or kind != "failed":
                text = self.header + "\r\n" + "".join(r + "\r\n" for r in rows)
                if kind == "interrupted":
                    text += self.metrics(epochs + 1)[-1][:30]  # the row the kill cut
                (target / "metrics.csv").write_text(text, newline="")
                (target / "checkpoints").mkdir()
                for name in ("best.pt", "last.pt"):
                    (target / "checkpoints" / name).write_bytes(b"")
        if cv:
            (folder / "metrics.csv").write_text((folder / "fold_2" / "metrics.csv").read_text())
            (folder / "folds.csv").write_text("fold,best_epoch,val_loss,val_mse\n" +
                                              "".join(f"{k},{EPOCHS},0.01,0.01\n" for k in range(5)))
        reason = ""
        if kind in ("finished", "finished_cv"):
            results = dict(self.results, epochs_run=EPOCHS, best_epoch=rng.randrange(100, EPOCHS + 1),
                           train_seconds=round(rng.uniform(100, 400), 2))
            for key in ("val_loss", "val_mse", "test_loss", "test_mse"):
                results[key] = rng.uniform(0.005, 0.05)
            if cv:
                results.update(best_fold=2, fold_val_mse=[0.01] * 5, cv_mean_val_mse=0.01)
            (folder / "results.json").write_text(json.dumps(results, indent=2) + "\n")
            for name in FIGURES:
                (folder / name).write_bytes(b"")
            log.append("[2026-11-26 10:05:00,000][lstm_ae][INFO] - best epoch 140: val_mse 0.01; test_mse 0.01; "
                       f"results in {folder}")
        elif kind in ("failed", "diverged"):
            reason = ("ConfigError: model.hidden_size must be < dataset.seq_len" if kind == "failed" else
                      f"TrainingDiverged: training (step 3 of 94) loss became nan in epoch {epochs + 1}; the last good "
                      f"epoch's checkpoint is {folder}/checkpoints/last.pt. Try a lower optimizer.lr (now 0.01) or "
                      "gradient clipping (trainer.grad_clip).")
            log.append(f"[2026-11-26 10:05:00,000][lstm_ae][ERROR] - {reason}")
            if legacy:
                (folder / "error.txt").write_text(reason + "\n")
        elif kind == "pruned" and legacy:
            (folder / "pruned.json").write_text(json.dumps({"epoch": epochs}) + "\n")
        if not legacy:
            ends = {"finished": ("finished", ""), "finished_cv": ("finished", ""),
                    "pruned": ("pruned", f"pruned by the Optuna study after epoch {epochs}"),
                    "failed": ("failed", reason), "diverged": ("diverged", reason)}
            end = ends.get(kind)
            man = dict(self.manifest, overrides=[o for o in overrides if not o.startswith("trainer.progress")],
                       epochs_planned=EPOCHS, folds=5 if cv else None, job=int(folder.name) if sweep else None,
                       end=None if end is None else {"status": end[0], "reason": end[1], "epoch": epochs})
            (folder / rf.MANIFEST).write_text(json.dumps(man, indent=2) + "\n")
            if kind == "running":
                self.locks.append(rf.Lock(folder).acquire())
        (folder / self.log_name).write_text("\n".join(log) + "\n")
        if kind != "running" or not legacy:  # everything else ended a day ago (a legacy running one: now)
            old = now - 86400 - rng.uniform(0, 86400)
            for path in sorted(folder.rglob("*"), reverse=True):
                os.utime(path, (old, old))
            os.utime(folder, (old, old))

    def metrics(self, n: int) -> List[str]:
        columns = self.header.split(",")
        rows = []
        for e in range(1, n + 1):
            loss = 0.1 / e ** 0.5
            values = {"epoch": str(e), "lr": repr(0.001 * (1 - e / (EPOCHS + 1))), "seconds": repr(self.rng.uniform(0.8, 2.0))}
            rows.append(",".join(values.get(c, repr(loss * self.rng.uniform(0.9, 1.1))) for c in columns))
        return rows


def make_folders(root: Path, tpl: Path, count: int, seed: int = 0) -> Tuple[Dict[str, str], "Maker"]:
    """``count`` run folders under ``root/outputs`` and ``root/multirun``; ({folder: expected status}, the maker,
    holding the running folders' locks)."""
    maker, rng, now = Maker(tpl, seed), random.Random(seed), time.time()
    expected: Dict[str, str] = {}
    singles = count // 2
    for i in range(count):
        sweep = i >= singles
        shares = {k: v[1 if sweep else 0] for k, v in MIX.items()}
        kind = rng.choices(list(shares), weights=list(shares.values()))[0]
        stamp = time.strftime("%Y-%m-%d_%H-%M-%S", time.localtime(1795000000 + i * 7))
        if sweep:  # the sweep's folder is named after its first job's time and the process id
            j = i - singles
            first = time.strftime("%Y-%m-%d_%H-%M-%S", time.localtime(1795000000 + (i - j % SWEEP_JOBS) * 7))
            folder = root / "multirun" / "toy" / "reconstruct" / f"{first}_{4000 + j // SWEEP_JOBS}" / str(j % SWEEP_JOBS)
        else:
            folder = root / "outputs" / "toy" / "reconstruct" / stamp
        maker.make(folder, kind, sweep, now, legacy=i % LEGACY == LEGACY - 1)
        expected[str(folder)] = "finished" if kind == "finished_cv" else kind
    for sweep_dir in (root / "multirun" / "toy" / "reconstruct").iterdir():
        (sweep_dir / "multirun.yaml").write_text("hydra:\n  mode: MULTIRUN\n")
        (sweep_dir / "summary.csv").write_text("job,status\n")
    return expected, maker


def time_in_process(root: Path, repeats: int) -> List[float]:
    times = []
    for _ in range(repeats):
        out, err = io.StringIO(), io.StringIO()
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = runs.main([str(root)])
        times.append(time.perf_counter() - t0)
        if status != 0:
            raise SystemExit(f"lstm_ae.runs exited {status}:\n{err.getvalue()[-2000:]}")
    return times


def time_command(args: List[str], repeats: int) -> List[float]:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True)
        times.append(time.perf_counter() - t0)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(args)} exited {proc.returncode}:\n{proc.stderr[-2000:]}")
    return times


def check(root: Path, expected: Dict[str, str]) -> Dict[str, int]:
    """Every folder listed once with the status it was made with; the count of each status."""
    listing = runs.collect([root])
    got = {os.path.abspath(r["folder"]): r["status"] for r in listing.rows}
    wrong = {f: (s, got.get(f)) for f, s in expected.items() if got.get(f) != s}
    if wrong or len(got) != len(expected) or listing.messages.errors:
        sample = dict(list(wrong.items())[:5])
        raise SystemExit(f"wrong statuses ({len(wrong)}; e.g. {sample}), {len(got)} rows for {len(expected)} folders, "
                         f"errors: {listing.messages.errors[:3]}")
    counts: Dict[str, int] = {}
    for status in got.values():
        counts[status] = counts.get(status, 0) + 1
    return dict(sorted(counts.items()))


def summary(times: List[float]) -> Dict[str, float]:
    return {"median_s": round(statistics.median(times), 3), "min_s": round(min(times), 3),
            "all_s": [round(t, 3) for t in times]}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.runs_table", description=(__doc__ or "").split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="example:\n  python -m bench.runs_table --folders 200 --repeats 3")
    p.add_argument("--folders", type=int, default=1000, help="run folders made (default: %(default)s)")
    p.add_argument("--repeats", type=int, default=5, help="timings of each kind (default: %(default)s)")
    p.add_argument("--template", type=Path, metavar="RUN",
                   help="a finished toy run folder to copy the files' shape from (default: make one, ~10 s)")
    p.add_argument("--out", type=Path, default=Path("bench/results/runs_table.json"), metavar="FILE",
                   help="the JSON written (default: %(default)s)")
    return p


def main(argv: Optional[List[str]] = None) -> dict:
    args = parser().parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp).resolve()
        tpl = args.template or template(tmp_path / "template")
        root = tmp_path / "runs"
        t0 = time.perf_counter()
        expected, maker = make_folders(root, tpl, args.folders)
        made = time.perf_counter() - t0
        counts = check(root, expected)
        in_process = time_in_process(root, args.repeats)
        command = time_command(["-m", "lstm_ae.runs", str(root)], args.repeats)
        python = time_command(["-c", "pass"], args.repeats)
        json_command = time_command(["-m", "lstm_ae.runs", str(root), "--json"], args.repeats)
        where_command = time_command(["-m", "lstm_ae.runs", str(root), "--where", "model.hidden_size=8"], args.repeats)
        files = sum(len(f) for _, _, f in os.walk(root))
        for lock in maker.locks:
            lock.release()
    result = {
        "benchmark": "runs_table", "folders": args.folders, "files": files, "statuses": counts,
        "metrics_rows_per_finished_run": EPOCHS, "seconds_to_make_folders": round(made, 1),
        "in_process": summary(in_process), "command": summary(command), "command_json": summary(json_command),
        "command_where_config_key": summary(where_command),
        "python_startup": summary(python), "goal_s": GOAL_SECONDS,
        "meets_goal": statistics.median(command) < GOAL_SECONDS,
        "machine": cpu_name(), "cpu_count": os.cpu_count(), "python": sys.version.split()[0],
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{args.folders} run folders ({files} files): {counts}")
    print(f"in process:  {result['in_process']['median_s']:.3f} s median ({result['in_process']['min_s']:.3f} min)")
    print(f"command:     {result['command']['median_s']:.3f} s median ({result['command']['min_s']:.3f} min), "
          f"--json {result['command_json']['median_s']:.3f} s, --where model.hidden_size=8 "
          f"{result['command_where_config_key']['median_s']:.3f} s; python -c pass {result['python_startup']['median_s']:.3f} s")
    print(f"goal < {GOAL_SECONDS} s: {'met' if result['meets_goal'] else 'NOT met'}; written to {args.out}")
    return result


if __name__ == "__main__":
    main()
