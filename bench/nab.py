"""The LSTM-AE detector on a NAB-layout folder, under NAB's rules, in NAB's results layout.

    python -m bench.nab --nab ../shared/data/nab --out /tmp/nab_results --jobs 2
    python -m bench.nab --nab ../shared/data/nab --jobs 2 --nab-git GITDIR --json bench/results/nab_dev.json

``--nab PATH``: a full NAB checkout or a folder in its layout (``data/<category>/<file>.csv`` with
``timestamp,value``; ``labels/combined_windows.json``). Every data file on its own, from scratch,
with one configuration for every file (the options below, same for all; seeded; CPU):

1. **Learn** from the probationary period only: the first min(floor(0.15 * rows), 750) rows, written
   to a temporary CSV and trained with the project's own entry path (``lstm_ae_series.py``, run in
   the worker's process, reconstruct task, ``dataset.split_by=time``: the probation's own
   train / validation / test cut; ``dataset.scaling=train`` by default: the probation's min-max); ``--models N``:
   N such runs, seeds ``--seed`` .. ``--seed`` + N - 1, scored as one (their causal errors averaged).
2. **Score** every row from the rows up to it: :func:`lstm_ae.anomaly.detect` on the whole file
   (causal apply: each step's error from the window of ``--seq-len`` steps ending at it, by default
   that window's mean error, ``--error window_error``; the score:
   :func:`lstm_ae.anomaly.likelihood`; the baseline: :func:`lstm_ae.anomaly.rolling_zscore`; the
   threshold: the ``--quantile`` of the probationary rows' scores, at least ``--min-threshold``).
   NAB pairs scores with labels by row position and streams a file in its row order, so both the
   training copy and the scored copy carry the row number as their time column (``step``): the rows
   stay in the file's order, repeated or out-of-order timestamps (ec2_request_latency_system_failure,
   machine_temperature_system_failure) included, and no row is merged or moved.
3. **Write** ``<out>/<detector>/<category>/<detector>_<file>.csv`` with ``timestamp,value,anomaly_score,label``:
   every row of the data file in its order (probationary rows included), timestamp and value as
   written, ``anomaly_score`` the score (0 where a row has none yet: the first
   seq_len + 2 short + min_periods - 3 rows) with repeat alarms suppressed (the detector's
   ``alarm_score``, :func:`lstm_ae.anomaly.suppress`: after a row scoring >= ``--suppress-above``, 0.6,
   the next ``--suppress`` rows, 100, get 0; causal; NAB rewards the first detection in a window and
   charges every later one outside it), ``label`` 1
   inside a labelled window. NAB's scorer
   (``../shared/tools/nab/score.sh``; ``--nab-git``) reads this folder as it is.
4. **Measure** (the JSON, ``--json``; default ``<out>/<detector>.json``): per file the project's
   metrics of the score itself, before suppression (:func:`lstm_ae.anomaly.evaluate`: AUC-ROC, AUC-PR,
   event-wise precision / recall / F1;
   the model and the rolling z-score baseline on the same rows: the rows after the probation where
   both have a score), the threshold and the seconds (training, scoring, whole file); overall
   :func:`lstm_ae.anomaly.combine` of the files (event counts summed, AUCs averaged over the files
   that have both classes) and NAB's score of the alarm streams (:func:`lstm_ae.anomaly.nab_scores`: the
   results files' ``anomaly_score``, the baseline's score suppressed alike; the rows after the probations;
   one threshold for all files, as NAB's scorer picks it); the command, machine, cores, load average before and after, the date,
   the wall time; with ``--nab-git`` NAB's own scores (standard, reward_low_FP, reward_low_FN).

``--jobs N`` files at once (processes; each trains with one torch thread). Temporary run folders
live in a temporary directory that is removed. Bad input (a folder not in NAB's layout, a file
without a labels entry, a detector name NAB cannot take, an existing results folder): one line, status 2.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import io
import json
import logging
import os
import re
import runpy
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import pandas as pd

from lstm_ae import anomaly as an
from lstm_ae.errors import ConfigError, DataError, RunFolderError, UserError
from lstm_ae.sweep import TRIAL_ENV

ROOT = Path(__file__).resolve().parents[1]
SCORER = Path(os.environ.get("NAB_SCORER", ROOT.parent / "shared" / "tools" / "nab" / "score.sh"))  # NAB_SCORER: elsewhere
LABELS = Path("labels") / "combined_windows.json"
COLUMNS = ["timestamp", "value", "anomaly_score", "label"]
log = logging.getLogger("lstm_ae")


@dataclass
class Settings:
    """The one configuration every file gets (command-line options, with these defaults). The defaults
    are the best of the nab_optuna study on NAB's development subset (../shared/data/nab) only, the mean
    NAB standard over 3 seeds (docs/anomaly.md 'Search'; 'NAB runner' lists other settings measured)."""

    seq_len: int = 32  # steps per window (dataset.seq_len)
    hidden: int = 32  # model.hidden_size
    epochs: int = 100  # trainer.epochs, on the probation's windows (stride 1)
    batch_size: int = 32  # trainer.batch_size
    scaling: str = "train"  # dataset.scaling: train (the probation's min-max) | window
    seed: int = 0  # trainer.seed and dataset.seed
    models: int = 1  # an ensemble: this many runs, seeds seed .. seed + models - 1, their causal errors averaged
    # the probation cut in time: its last test_fraction for the run's test, the last val_fraction of the rest
    # for its validation (best epoch); each part needs seq_len + 1 rows: NAB's shortest file (realTraffic/
    # speed_7578, 1,127 rows, a probation of 168) takes seq_len 32 with 0.2 / 0.25, not with 0.2 / 0.2
    test_fraction: float = 0.2
    val_fraction: float = 0.25
    # the score: lstm_ae.anomaly's defaults (one place), chosen on the subset with this runner
    short: int = an.Scoring.short
    long: int = an.Scoring.long
    min_periods: int = an.Scoring.min_periods
    mapping: str = an.Scoring.mapping
    baseline_window: int = an.Scoring.baseline_window
    error: str = an.ERROR  # error | window_error
    suppress: int = an.Scoring.suppress  # NAB's anomaly_score: after a row scoring >= suppress_above, the next rows get 0
    suppress_above: float = an.Scoring.suppress_above  # the project's metrics use the score before this
    quantile: float = an.QUANTILE  # threshold: this quantile of the probation's scores ...
    min_threshold: float = an.MIN_THRESHOLD  # ... at least this

    def scoring(self) -> an.Scoring:
        return an.Scoring(self.short, self.long, self.min_periods, self.mapping, self.baseline_window, self.suppress,
                          self.suppress_above).check()

    def check(self, prefix: str = "--") -> "Settings":
        """Every value in range, or one line naming the option (``prefix`` + its name: ``--seq-len``, or
        ``detector.`` under Hydra)."""
        name = (lambda k: f"--{k.replace('_', '-')}") if prefix == "--" else (lambda k: f"{prefix}{k}")
        for key in ("seq_len", "hidden", "epochs", "batch_size", "models"):
            value = getattr(self, key)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name(key)} {value}: give a whole number >= 1")
        for key, choices in CHOICES.items():
            if getattr(self, key) not in choices:
                raise ConfigError(f"{name(key)} {getattr(self, key)}: give one of {', '.join(choices)}")
        an.check_fraction(name("test_fraction"), self.test_fraction, 0.0, 1.0, lower_open=True, upper_open=True)
        an.check_fraction(name("val_fraction"), self.val_fraction, 0.0, 1.0, lower_open=True, upper_open=True)
        an.check_fraction(name("quantile"), self.quantile, 0.0, 1.0)
        an.check_fraction(name("min_threshold"), self.min_threshold, 0.0, 1.0, upper_open=True)
        try:
            self.scoring()
        except ConfigError as err:  # Scoring names its keys as options
            raise ConfigError(re.sub(r"--([a-z-]+)", lambda m: name(m[1].replace("-", "_")), str(err))) from None
        return self


CHOICES = {"mapping": an.MAPPINGS, "error": ("error", "window_error"), "scaling": ("train", "window")}



def probation(rows: int) -> int:
    """NAB's probationary period: the first min(floor(0.15 * rows), 750) rows."""
    return min(int(0.15 * rows), 750)


suppress = an.suppress  # repeat alarms suppressed: lstm_ae.anomaly.suppress


def data_files(nab: Path) -> List[str]:
    """The data files of a NAB-layout folder as ``<category>/<file>.csv``, sorted."""
    return sorted(p.relative_to(nab / "data").as_posix() for p in (nab / "data").glob("*/*.csv"))


def check_layout(nab: Path, option: str = "--nab") -> Dict[str, list]:
    """The folder's windows, or one line saying what is missing (naming the ``option`` that gave the folder)."""
    if not (nab / "data").is_dir() or not data_files(nab):
        raise DataError(f"{option} {nab}: no data/<category>/<file>.csv in it; give a NAB checkout or a folder in its "
                        "layout (data/<category>/<file>.csv, labels/combined_windows.json)")
    if not (nab / LABELS).is_file():
        raise DataError(f"{option} {nab}: no {LABELS}; give a NAB checkout or a folder in its layout")
    windows = an.read_windows(nab / LABELS)
    missing = [k for k in data_files(nab) if k not in windows]
    if missing:
        raise DataError(f"{nab / LABELS} has no entry for {missing[0]}"
                        f"{f' (and {len(missing) - 1} more)' if len(missing) > 1 else ''}; "
                        'give every data file an entry ("<category>/<file>.csv": [] for none)')
    return windows


def check_runner(detector: str, jobs: int, git: Any, hydra: bool = False) -> None:
    """The detector's name, the jobs and the NAB clone, or one line naming the option (``--detector`` on the
    command line, ``nab.detector=`` under Hydra)."""
    d, j, g = ("nab.detector=", "nab.jobs=", "nab.git=") if hydra else ("--detector ", "--jobs ", "--nab-git ")
    if not re.fullmatch(r"[A-Za-z0-9]+", detector) or re.search("standard|reward", detector):
        raise ConfigError(f"{d}{detector!r}: give letters and digits only, without 'standard' or 'reward' (NAB splits "
                          "result names on '_')")
    if jobs < 1:
        raise ConfigError(f"{j}{jobs}: give a whole number >= 1")
    if git is not None and not Path(git).is_dir():
        raise ConfigError(f"{g}{git}: not a folder; give the git folder of a NAB clone")


# ------------------------------------------------------------------------------ training
def run_entry(script: Path, args: Sequence[str]) -> subprocess.CompletedProcess:
    """``python <script> <args>`` in this process (Hydra's command line, exit status, output captured);
    sys.argv and the logging handlers are put back afterwards."""
    argv, saved_argv = [str(script), *args], sys.argv
    handlers = logging.getLogger().handlers[:]
    out, err, code = io.StringIO(), io.StringIO(), 0
    saved_env = os.environ.get("HYDRA_FULL_ERROR")
    os.environ["HYDRA_FULL_ERROR"] = "0"
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            sys.argv = argv
            runpy.run_path(argv[0], run_name="__main__")
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    finally:
        sys.argv = saved_argv
        if saved_env is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = saved_env
        for handler in set(logging.getLogger().handlers) - set(handlers):
            handler.close()
        logging.getLogger().handlers[:] = handlers
    return subprocess.CompletedProcess(argv, code, out.getvalue(), err.getvalue())


def train(rows: pd.DataFrame, folder: Path, s: Settings, name: str = "the file", seed: Optional[int] = None) -> Path:
    """A reconstruct run on ``rows`` (step, value) in ``folder / 'run'`` (``seed``: ``s.seed`` unless given,
    then in ``folder / 'run<seed>'``)."""
    data = folder / "probation.csv"
    rows.to_csv(data, index=False)
    run = folder / ("run" if seed is None else f"run{seed}")
    seed = s.seed if seed is None else seed
    proc = run_entry(ROOT / "lstm_ae_series.py", [
        f"dataset.path={data}", f"dataset.seq_len={s.seq_len}", "dataset.stride=1", f"dataset.scaling={s.scaling}",
        "dataset.split_by=time", f"dataset.test_fraction={s.test_fraction}",
        f"dataset.val_fraction={s.val_fraction}", f"dataset.seed={seed}", "dataset.plot_series=[]", f"model.hidden_size={s.hidden}",
        f"trainer.epochs={s.epochs}", f"trainer.batch_size={s.batch_size}", f"trainer.seed={seed}",
        "trainer.num_threads=1", "trainer.device=cpu", "trainer.progress=false", "task.figures=false",
        f"hydra.run.dir={run}"])
    if proc.returncode != 0:
        tail = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-1:] or ["no output"]
        what = f"training on {name}'s probationary rows failed (status {proc.returncode}): {tail[0]}"
        raise DataError(what) if proc.returncode == 2 else RuntimeError(what)
    return run


# ------------------------------------------------------------------------------ one file
def one_file(nab: str, key: str, windows: list, out: str, detector: str, s: Settings) -> Dict[str, Any]:
    """Train on ``key``'s probation, score every row causally, write its NAB results file; its metrics."""
    import torch

    torch.set_num_threads(1)
    os.environ.pop(TRIAL_ENV, None)  # the probation's training is no trial of a search this file may run in
    began = time.perf_counter()
    raw = pd.read_csv(Path(nab) / "data" / key, dtype=str, keep_default_na=False)
    if list(raw.columns[:2]) != ["timestamp", "value"]:
        raise DataError(f"{Path(nab) / 'data' / key}: columns {','.join(raw.columns)}; NAB's files have timestamp,value")
    n, prob = len(raw), probation(len(raw))
    values = pd.to_numeric(raw["value"], errors="coerce").to_numpy(dtype=float)
    if np.isnan(values).any():
        line = int(np.flatnonzero(np.isnan(values))[0]) + 2
        raise DataError(f"{Path(nab) / 'data' / key} line {line}: value {raw['value'].iloc[line - 2]!r} is not a number")
    stream = pd.DataFrame({"step": np.arange(n), "value": values})  # row order = NAB's order
    with tempfile.TemporaryDirectory(prefix="nab_") as tmp:
        folder = Path(tmp)
        runs = ([train(stream.iloc[:prob], folder, s, key)] if s.models == 1 else
                [train(stream.iloc[:prob], folder, s, key, s.seed + i) for i in range(s.models)])
        trained = time.perf_counter()
        stream.to_csv(folder / "stream.csv", index=False)
        det = an.detect(runs, [folder / "stream.csv"], None, s.scoring(), s.quantile, s.min_threshold,
                        val_share=prob / n, error=s.error)
    steps = det.steps
    if len(steps) != n or not (steps["time"].astype(float).to_numpy() == np.arange(n)).all():
        raise RuntimeError(f"{key}: detect returned {len(steps)} rows for {n}, or another order")
    labels = an.labels_from_windows({key: windows}, an._stem(key), raw["timestamp"].to_numpy(),
                                    source=str(LABELS))
    def stream(column: str) -> np.ndarray:  # an alarm stream as NAB reads it: in [0, 1], 0 where none yet
        return np.clip(steps[column].fillna(0.0).to_numpy(dtype=float), 0.0, 1.0)

    score = stream("alarm_score")  # repeat alarms suppressed
    category, name = key.split("/", 1)
    target = Path(out) / detector / category / f"{detector}_{name}"
    target.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"timestamp": raw["timestamp"], "value": raw["value"], "anomaly_score": score,
                  "label": labels}).to_csv(target, index=False, columns=COLUMNS)
    after = np.arange(n) >= prob
    rows = after & steps["score"].notna().to_numpy() & steps["baseline_score"].notna().to_numpy()
    ev = steps[rows]
    metrics = {who: an.evaluate(ev[col], labels[rows], ev[flag])
               for who, col, flag in (("model", "score", "flagged"), ("baseline", "baseline_score", "baseline_flagged"))}
    done = time.perf_counter()
    return {"file": key, "rows": n, "probation": prob, "threshold": det.metrics["threshold"],
            "baseline_threshold": det.metrics["baseline_threshold"], **metrics,
            "seconds": round(done - began, 2), "train_seconds": round(trained - began, 2),
            "score_seconds": round(done - trained, 2), "results": str(target),
            STREAMS: {"model": score, "baseline": stream("baseline_alarm_score"), "labels": labels}}


# ------------------------------------------------------------------------------ NAB's scorer
def nab_score(results: Path, detector: str, nab_git: Path, scorer: Path = SCORER) -> Dict[str, Any]:
    """NAB's own scores of ``results`` (``score.sh``'s last line), the subset line when it prints one."""
    env = {**os.environ, "NAB_GIT": str(nab_git), "NAB_PYTHON": sys.executable}
    began = time.perf_counter()
    proc = subprocess.run(["bash", str(scorer), str(results), detector], capture_output=True, text=True, env=env)
    lines = proc.stdout.strip().splitlines()
    last = lines[-1] if lines else ""
    found = re.fullmatch(r"NAB \S+: standard (\S+) reward_low_FP (\S+) reward_low_FN (\S+)", last)
    if proc.returncode != 0 or not found:
        tail = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"{scorer} failed (status {proc.returncode}): {tail[0]}")
    subset = [ln for ln in lines if ln.startswith("NAB SUBSET")]
    return {"standard": float(found[1]), "reward_low_FP": float(found[2]), "reward_low_FN": float(found[3]),
            "line": last, "subset": subset[-1] if subset else None, "scorer": str(scorer),
            "seconds": round(time.perf_counter() - began, 1)}


# ------------------------------------------------------------------------------ the benchmark
def run_all(nab: Path, out: Path, s: Settings, detector: str = "lstmae", jobs: int = 1,
            files: Optional[Sequence[str]] = None, processes: bool = False) -> Dict[str, Any]:
    """Every file of ``nab`` (or ``files``, ``<category>/<file>.csv``): results files and the report.
    ``processes``: each file in a process of its own even with ``jobs=1`` (a Hydra job: the training's own
    Hydra app cannot run inside it)."""
    windows = check_layout(nab)
    s.scoring()
    keys = list(files) if files else data_files(nab)
    unknown = [k for k in keys if not (nab / "data" / k).is_file()]
    if unknown:
        raise DataError(f"--files: {unknown[0]} is not a file under {nab / 'data'}; give <category>/<file>.csv")
    began, load = time.perf_counter(), os.getloadavg()
    tasks = [(str(nab), k, windows[k], str(out), detector, s) for k in keys]
    if jobs == 1 and not processes:
        per_file = [one_file(*t) for t in tasks]
    else:
        import multiprocessing as mp

        with ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn")) as pool:
            per_file = list(pool.map(one_file, *zip(*tasks)))
    from lstm_ae.reproduce import cpu_name

    streams = [f.pop(STREAMS) for f in per_file]  # pooled below: NAB's score takes one threshold for all files
    pooled = {k: np.concatenate([st[k] for st in streams]) for k in ("model", "baseline", "labels")}
    after = np.concatenate([np.arange(f["rows"]) >= f["probation"] for f in per_file])
    files = np.repeat(np.arange(len(per_file)), [f["rows"] for f in per_file])

    return {
        "machine": cpu_name(), "cores": os.cpu_count(), "device": "cpu", "jobs": jobs,
        "load_average_before": [round(x, 2) for x in load], "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "date": dt.date.today().isoformat(), "nab": str(nab), "results": str(out / detector), "detector": detector,
        "settings": asdict(s), "probation": "the first min(floor(0.15 * rows), 750) rows of each file",
        "evaluated": "per file, the rows after the probation where the model's score and the baseline's are both "
                     "defined; overall: lstm_ae.anomaly.combine of the files; nab_*: lstm_ae.anomaly.nab_scores of "
                     "every file's alarm stream (the model's: its results file's anomaly_score; the baseline's: its "
                     "score, repeat alarms suppressed alike) on the rows after the probations, one threshold",
        "overall": {who: {**an.combine([f[who] for f in per_file]), **an.nab_scores(pooled[who], pooled["labels"],
                                                                                   after, files)}
                    for who in ("model", "baseline")},
        "seconds": round(time.perf_counter() - began, 1), "files": per_file,
    }


# ------------------------------------------------------------------------------ as a Hydra job (searches)
NAB_METRICS = tuple(f"nab_{profile}" for profile in an.PROFILES)
OBJECTIVES = ("f1", "auc_pr", "auc_roc", "precision", "recall", *NAB_METRICS)
STREAMS = "streams"  # one_file's per-row alarm scores and labels, pooled by run_all (not in the report)
REPORT = "nab.json"  # in the job's run folder: run_all's report; results/<detector>/...: NAB's layout


@dataclass
class Runner:
    """``nab.*`` of conf/nab.yaml: where the folder is and how the job runs over it."""

    path: str = "${oc.env:LSTM_AE_DATA,data}/nab"  # a NAB checkout or a folder in its layout
    jobs: int = 2  # files at once, one process each
    files: Optional[List[str]] = None  # only these <category>/<file>.csv (null: all)
    detector: str = "lstmae"  # the results' name: results/<detector>/<category>/<detector>_<file>.csv
    objective: str = "nab_standard"  # what the job returns (val_<objective>, maximised): one of OBJECTIVES
    git: Optional[str] = "${oc.env:NAB_GIT,null}"  # a NAB clone's git folder: NAB's own scores too (null: none)


@dataclass
class SearchConfig:
    """The schema of conf/nab.yaml (ConfigStore ``nab_schema``): ``nab.*`` and ``detector.*`` (:class:`Settings`)."""

    nab: Runner = field(default_factory=Runner)
    detector: Settings = field(default_factory=Settings)


def register() -> None:
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name="nab_schema", node=SearchConfig)


def results_of(report: Dict[str, Any], objective: str) -> Dict[str, Any]:
    """What a search job's ``results.json`` holds: the overall metrics as ``val_<metric>`` (the development
    subset is the search's validation data; NAB's full corpus its held-out test), the baseline's as
    ``baseline_val_<metric>`` (``nab_<profile>``: the project's NAB score, :func:`lstm_ae.anomaly.nab_scores`),
    NAB's own scorer's as ``val_nab_scorer_<profile>`` when it ran, the seconds."""
    out: Dict[str, Any] = {"objective": f"val_{objective}", "objective_mode": "max"}
    for who, prefix in (("model", "val_"), ("baseline", "baseline_val_")):
        c = report["overall"][who]
        out.update({f"{prefix}{k}": c[k] for k in ("f1", "auc_pr", "auc_roc", "precision", "recall",
                                                     "windows_found", "windows", "events", *NAB_METRICS)})
    for profile in an.PROFILES:
        if "nab_scorer" in report:
            out[f"val_nab_scorer_{profile}"] = report["nab_scorer"][profile]
    out.update(files=len(report["files"]), seconds=report["seconds"], train_seconds=report["seconds"],
               results=report["results"], report=REPORT)
    if out.get(out["objective"]) is None:
        raise ConfigError(f"nab.objective={objective}: this job has no {out['objective']} (no file with both "
                          "classes, no event, or no labelled window)")
    return out


def search_job(cfg: Any, run_dir: Path, continue_job: bool = False) -> Dict[str, Any]:
    """One job of conf/nab.yaml under the run-folder contract (lstm_ae.run_folder): the lock; a folder holding
    this config's results returns them; one holding another run is refused; then ``.hydra/``, the manifest
    (task ``nab``), :func:`run_all` into ``run_dir/results``, NAB's scorer (``nab.git``), ``nab.json``,
    ``results.json`` (:func:`results_of`) and the end state."""
    from omegaconf import OmegaConf

    from lstm_ae import experiment as ex
    from lstm_ae import run_folder as rf

    s = Settings(**OmegaConf.to_container(cfg.detector, resolve=True)).check("detector.")
    r = cfg.nab
    if r.objective not in OBJECTIVES:
        raise ConfigError(f"nab.objective={r.objective}: give one of {', '.join(OBJECTIVES)}")
    check_runner(r.detector, r.jobs, r.git, hydra=True)
    fingerprint = rf.fingerprint(cfg)
    with rf.Lock(run_dir):
        done = rf.read_json(run_dir / rf.RESULTS)
        saved = rf.saved_fingerprint(run_dir)[0]
        if saved is not None and saved != fingerprint:
            raise RunFolderError(f"{run_dir} holds another run (config_sha1 {saved}); this job's config is "
                                    f"{fingerprint}; choose another hydra.run.dir (or hydra.sweep.dir)")
        if done is not None:
            log.info("%s holds this config's results (finished before): not run again", run_dir / rf.RESULTS)
            return done
        check_layout(Path(r.path), "nab.path")
        ex.save_hydra(run_dir, cfg)
        rf.start(run_dir, **{**ex.identity(cfg, fingerprint), "task": "nab"}, resumes=None,
                 objective=f"val_{r.objective}", objective_mode="max")
        try:
            out = run_dir / "results"
            if (out / r.detector).exists():  # an interrupted job's partial results
                shutil.rmtree(out / r.detector)
            report = run_all(Path(r.path), out, s, r.detector, r.jobs, list(r.files) if r.files else None,
                             processes=True)
            if r.git is not None:
                report["nab_scorer"] = nab_score(out / r.detector, r.detector, Path(r.git))
            rf.write_json(run_dir / REPORT, report)
            results = {**results_of(report, r.objective), "config_sha1": fingerprint}
            rf.write_json(run_dir / rf.RESULTS, results)
        except BaseException as err:
            status, reason, _ = ex.ended(err, run_dir)
            with contextlib.suppress(OSError):
                rf.end(run_dir, status, reason)
            raise
        rf.end(run_dir, "finished")
    log.info("%s: %s %.4f (baseline %s); NAB standard %s (NAB's scorer: %s); %s files in %s s", run_dir,
             results["objective"], results[results["objective"]], results.get(f"baseline_{results['objective']}"),
             results["val_nab_standard"], results.get("val_nab_scorer_standard", "not run"), results["files"],
             results["seconds"])
    return results


def main(argv: Optional[Sequence[str]] = None) -> None:
    d = Settings()
    p = argparse.ArgumentParser(prog="python -m bench.nab", description=(__doc__ or "").split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="what is computed: python -c 'import bench.nab as b; help(b)'; docs/anomaly.md")
    p.add_argument("--nab", type=Path, required=True, metavar="PATH",
                   help="a NAB checkout or a folder in its layout (data/<category>/<file>.csv, labels/)")
    p.add_argument("--out", type=Path, default=Path("results"), metavar="DIR",
                   help="results go to DIR/DETECTOR/<category>/DETECTOR_<file>.csv (default results)")
    p.add_argument("--detector", default="lstmae", help="the detector's name: letters and digits (lstmae)")
    p.add_argument("--json", type=Path, metavar="FILE", help="the report (default DIR/DETECTOR.json)")
    p.add_argument("--jobs", type=int, default=1, metavar="N", help="files at once, one process each (1)")
    p.add_argument("--files", metavar="LIST", help="only these files, comma-separated <category>/<file>.csv")
    p.add_argument("--overwrite", action="store_true", help="replace DIR/DETECTOR if it exists")
    p.add_argument("--nab-git", type=Path, metavar="GITDIR", default=os.environ.get("NAB_GIT"),
                   help="score with NAB's own scorer (../shared/tools/nab/score.sh), this NAB clone's git "
                        "folder (default: $NAB_GIT; none: not scored)")
    for key, value in asdict(d).items():
        kind = type(value)
        extra = {"choices": CHOICES[key]} if key in CHOICES else {}
        p.add_argument(f"--{key.replace('_', '-')}", type=kind, default=value, help=f"({value})", **extra)
    args = p.parse_args(argv)
    try:
        check_runner(args.detector, args.jobs, args.nab_git)
        results = args.out / args.detector
        if results.exists() and not args.overwrite:
            raise ConfigError(f"{results} exists; give another --out or --detector, or --overwrite")
        s = Settings(**{k: getattr(args, k) for k in asdict(d)}).check()
        check_layout(args.nab)
        if results.exists():
            shutil.rmtree(results)
        report = run_all(args.nab, args.out, s, args.detector, args.jobs,
                         args.files.split(",") if args.files else None)
    except UserError as err:
        print(f"bench.nab: {err}", file=sys.stderr)
        sys.exit(2)
    report["command"] = "python -m bench.nab " + " ".join(sys.argv[1:] if argv is None else argv)
    if args.nab_git is not None:
        report["nab_scorer"] = nab_score(results, args.detector, Path(args.nab_git))
    path = args.json or args.out / f"{args.detector}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    f = lambda x: "   -" if x is None else f"{x:.3f}"  # noqa: E731
    print(f"{'file':58s} {'rows':>6s} {'s':>6s}  model auc_pr  f1  | baseline auc_pr  f1")
    for r in report["files"]:
        m, b = r["model"], r["baseline"]
        print(f"{r['file']:58s} {r['rows']:6d} {r['seconds']:6.1f}  {f(m['auc_pr'])} {f(m['f1'])}  | "
              f"{f(b['auc_pr'])} {f(b['f1'])}")
    g = lambda x: "   -" if x is None else f"{x:.2f}"  # noqa: E731
    for who in ("model", "baseline"):
        c = report["overall"][who]
        print(f"{who:8s} auc_roc {f(c['auc_roc'])}  auc_pr {f(c['auc_pr'])}  precision {f(c['precision'])}  "
              f"recall {f(c['recall'])}  f1 {f(c['f1'])}  ({c['windows_found']}/{c['windows']} windows, "
              f"{c['events']} events)  NAB " + " ".join(f"{p} {g(c['nab_' + p])}" for p in an.PROFILES))
    if "nab_scorer" in report:
        if report["nab_scorer"]["subset"]:
            print(report["nab_scorer"]["subset"])
        print(report["nab_scorer"]["line"])
    print(f"{len(report['files'])} files in {report['seconds']} s; results {results}; report {path}")


if __name__ == "__main__":
    main()
