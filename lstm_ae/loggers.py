"""Loggers (config group ``logger``): where a run's per-epoch metrics go besides ``metrics.csv``.

``logger=csv`` (default) adds nothing: ``metrics.csv`` is always written, because resume, sweep
summaries, the runs table and the report read it. ``logger=tensorboard`` adds TensorBoard event
files in ``<run folder>/<logger.log_dir>`` (``tb/``): one scalar per ``metrics.csv`` column per
epoch (the learning rate included) and, at the end, the run's hyper-parameters with its final
metrics (``hparam/<metric>``) for TensorBoard's HParams view, so ``tensorboard --logdir
multirun/...`` compares the jobs of a sweep. Each training writes from its first epoch on with
``purge_step`` at that epoch: a resumed run makes TensorBoard drop the steps an interrupted run
wrote after its checkpoint, so no step appears twice. Cross-validation logs each fold in
``fold_<k>/tb``. Needs the extra: ``pip install -e '.[tensorboard]'``.

``logger=mlflow`` (:class:`MlflowLogger`, extra ``.[mlflow]``, imported only then) makes each run an
MLflow run in the experiment named after the config (``toy``, ``mnist``, ...): the composed config
as params, every ``metrics.csv`` column per epoch (``step`` = epoch), the final metrics, the
figures, ``results.json``, ``metrics.csv`` and ``.hydra/`` as artifacts, and tags for its end
status, run folder and git commit. A sweep is one parent run (:func:`sweep_parent`, made by the
Hydra callback :class:`lstm_ae.callbacks.MlflowSweep` before any job) with a child run per job:
each job, in whatever process or machine, finds its parent by a tag that names the sweep (its
folder; the study, for Optuna workers sharing one storage). The run's id is kept in the run
folder (``mlflow.json``): a resumed run continues it, logging only the epochs it lacks.
"""
from __future__ import annotations

import csv
import getpass
import hashlib
import json
import logging
import math
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from lstm_ae.errors import ConfigError, UserError

log = logging.getLogger(__name__)

# A run's hyper-parameters in TensorBoard's HParams view: what defines a model and its training,
# and every key the run's overrides set (a sweep's swept keys are always there). Kept short: the
# view shows a handful of columns at first.
CORE_HPARAMS = ("model.hidden_size", "model.num_layers", "model.dropout", "optimizer.lr", "optimizer.weight_decay",
                "trainer.epochs", "trainer.batch_size", "trainer.grad_clip", "trainer.precision", "trainer.seed")

def summary_writer() -> Any:
    """TensorBoard's ``SummaryWriter`` class; one line naming the fix when the extra is missing."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise UserError("logger=tensorboard needs TensorBoard: pip install -e '.[tensorboard]' "
                        "(or use logger=csv)") from None
    return SummaryWriter


class TensorBoardLogger:
    """An epoch callback (``callback(epoch, model, row)``): ``row``'s values as scalars at step ``epoch``."""

    def __init__(self, run_dir: Path, log_dir: str = "tb", flush_secs: int = 10) -> None:
        self.writer_class = summary_writer()  # fails here, before training, without the extra
        self.dir, self.flush_secs, self.writer = Path(run_dir) / log_dir, flush_secs, None

    def __call__(self, epoch: int, model: Any, row: Mapping[str, float]) -> None:
        if self.writer is None:  # steps >= this epoch written before (an interrupted run) are dropped
            self.writer = self.writer_class(str(self.dir), flush_secs=self.flush_secs, purge_step=epoch)
        for key, value in row.items():
            if key != "epoch":
                self.writer.add_scalar(key, value, epoch)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()

    def finish(self, cfg: DictConfig, results: Mapping[str, Any], overrides: Sequence[str] = ()) -> None:
        """The run's hyper-parameters and final metrics, for the HParams view (in the same folder)."""
        metrics = {f"hparam/{k}": float(v) for k, v in results.items()
                   if k.startswith(("test_", "val_", "baseline_", "best_epoch", "train_seconds"))
                   and isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}
        with self.writer_class(str(self.dir), flush_secs=self.flush_secs) as writer:
            writer.add_hparams(hparams(cfg, overrides), metrics, run_name=".")


def hparams(cfg: DictConfig, overrides: Sequence[str] = ()) -> Dict[str, Any]:
    """The run's hyper-parameters as ``key`` -> a number, bool or string (what HParams takes):
    :data:`CORE_HPARAMS`, the optimizer's and scheduler's class names, and the keys ``overrides``
    (``key=value`` strings) set; a group chosen by an override (``optimizer=sgd``) by its option."""
    def value(key: str) -> Any:
        v = OmegaConf.select(cfg, key)
        v = OmegaConf.to_container(OmegaConf.create({"v": v}), resolve=True, enum_to_str=True)["v"]
        return v if isinstance(v, (bool, int, float, str)) else str(v)  # None, lists: as text

    absent = object()
    has = lambda key: OmegaConf.select(cfg, key, default=absent) is not absent  # noqa: E731 - None is a value
    flat: Dict[str, Any] = {key: value(key) for key in CORE_HPARAMS if has(key)}
    for group in ("optimizer", "scheduler"):
        target = OmegaConf.select(cfg, f"{group}._target_")
        flat[group] = str(target).rsplit(".", 1)[-1] if target else "none"
    for item in overrides:
        key, _, text = item.partition("=")
        key = key.lstrip("+~")
        if key.startswith(("hydra.", "hparams_search", "logger")) or not has(key):
            continue
        flat[key] = text if OmegaConf.is_dict(OmegaConf.select(cfg, key)) else value(key)
    return flat


def build_logger(cfg: DictConfig, run_dir: Path) -> Optional[Any]:
    """The configured logger for a training into ``run_dir``; None for ``logger=csv``."""
    logger = cfg.get("logger")
    if logger is None or logger.get("_target_") is None:
        return None
    try:
        built = instantiate(logger, run_dir=run_dir)
    except InstantiationException as err:  # Hydra wraps a missing extra's one line: unwrap it
        if isinstance(err.__cause__, UserError):
            raise err.__cause__ from None
        raise
    if hasattr(built, "start"):  # a logger that opens a run with the composed config (logger=mlflow)
        built.start(cfg)
    return built


# ---------------------------------------------------------------------------------- logger=mlflow
MLFLOW_TARGET = "lstm_ae.loggers.MlflowLogger"
LOCAL_TRACKING_URI = "sqlite:///outputs/mlflow.db"  # neither logger.tracking_uri nor $MLFLOW_TRACKING_URI set
TRACKING_ENV = "MLFLOW_TRACKING_URI"
RUN_FILE = "mlflow.json"  # in the run folder: the MLflow run it logs to (a resume continues it)
SWEEP_TAG = "lstm_ae.sweep"  # on a sweep's parent run: a hash of what names the sweep (its folder, or its study)
END_STATUS = {"finished": "FINISHED", "pruned": "FINISHED", "failed": "FAILED", "diverged": "FAILED",
              "interrupted": "KILLED"}  # the run folder's end status -> MLflow's (the tag `status` keeps ours)
PROBE_SECONDS = 10  # how long the check before a run waits for the tracking server
_OPEN: Dict[Path, "MlflowRun"] = {}  # run folder -> its MLflow run, while it trains in this process


def shown(text: str) -> str:
    """``text`` with every password of a URL in it (``//user:password@``) masked: what logs and files get."""
    return re.sub(r"(//[^/@\s:]*):[^/@\s]*@", r"\1:***@", str(text))


def mlflow_client(uri: str) -> Any:
    """An ``MlflowClient`` for ``uri``; one line naming the fix when the extra is missing."""
    try:
        from mlflow import MlflowClient
    except ImportError:
        raise UserError("logger=mlflow needs MLflow: pip install -e '.[mlflow]' (or use logger=csv)") from None
    # MLflow prints "View run ... at <URI>" as a run ends, a password in the URI included: our log says where
    # the run is (masked) as it starts
    if urllib.parse.urlsplit(uri).password:
        os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    return MlflowClient(tracking_uri=uri)


def tracking_uri(configured: Optional[str]) -> Tuple[str, str]:
    """(tracking URI, the key that sets it): ``logger.tracking_uri``, else ``$MLFLOW_TRACKING_URI``, else
    :data:`LOCAL_TRACKING_URI` (an SQLite store in ``outputs/``: no server needed)."""
    if configured:
        return str(configured), "logger.tracking_uri"
    if os.environ.get(TRACKING_ENV):
        return os.environ[TRACKING_ENV], TRACKING_ENV
    return LOCAL_TRACKING_URI, "logger.tracking_uri"


def check_tracking(configured: Optional[str]) -> Tuple[str, str]:
    """:func:`tracking_uri`, checked before anything is written or trained: no password in the config (it
    would reach every run folder's ``.hydra/``), and a server that answers. One line naming the key if not."""
    uri, key = tracking_uri(configured)
    parts = urllib.parse.urlsplit(uri)
    if configured and parts.password:
        raise ConfigError(f"logger.tracking_uri={shown(uri)} holds a password, which would be written to every run "
                          "folder: leave it out and set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD "
                          "(or MLFLOW_TRACKING_TOKEN) instead")
    if parts.scheme in ("http", "https"):
        host = parts.netloc.rpartition("@")[2]  # no credentials in the probe: it only asks whether a server is there
        probe = urllib.parse.urlunsplit((parts.scheme, host, parts.path.rstrip("/") + "/health", "", ""))
        try:
            import ssl

            urllib.request.urlopen(probe, timeout=PROBE_SECONDS, context=ssl._create_unverified_context()).close()
        except urllib.error.HTTPError:
            pass  # a server answered (one in front of MLflow may want the credentials that MLflow's calls send)
        except (urllib.error.URLError, OSError, ValueError) as err:
            reason = getattr(err, "reason", None) or err
            unset = "unset it" if key == TRACKING_ENV else "null"
            raise UserError(f"{key}={shown(uri)}: no MLflow server answers ({reason}); start it, or set {key} to a "
                            f"server that runs ({unset}: a local store, {LOCAL_TRACKING_URI})") from None
    return uri, key


def experiment_id(client: Any, name: str, uri: str) -> str:
    """The id of the experiment ``name``, created if missing (with a local SQLite store, its artifacts
    beside the database, in ``mlartifacts/``)."""
    from mlflow.exceptions import MlflowException

    exp = client.get_experiment_by_name(name)
    if exp is None:
        location = None
        if uri.startswith("sqlite:///"):
            db = Path(urllib.parse.urlsplit(uri).path[1:] or ".")
            location = (db.parent.resolve() / "mlartifacts").as_uri()
        try:  # the kind tells MLflow's UI (3.x) to open it on its runs and their charts
            return client.create_experiment(name, artifact_location=location,
                                            tags={"mlflow.experimentKind": "custom_model_development"})
        except MlflowException:  # another process made it meanwhile
            exp = client.get_experiment_by_name(name)
            if exp is None:
                raise
    if exp.lifecycle_stage == "deleted":
        raise UserError(f"the MLflow experiment {name!r} at {shown(uri)} is deleted: restore it (mlflow experiments "
                        f"restore --experiment-id {exp.experiment_id}) or choose another with logger.experiment=<name>")
    return exp.experiment_id


def git_commit() -> Optional[str]:
    """The commit of the project's checkout (None outside git)."""
    try:
        out = subprocess.run(["git", "-C", str(Path(__file__).resolve().parents[1]), "rev-parse", "HEAD"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else None


def source_tags() -> Dict[str, str]:
    """MLflow's own tags for who ran what (as ``mlflow.start_run`` sets them): user, entry script, git commit."""
    from mlflow.utils.mlflow_tags import MLFLOW_SOURCE_NAME, MLFLOW_SOURCE_TYPE, MLFLOW_USER, MLFLOW_GIT_COMMIT

    tags = {MLFLOW_SOURCE_NAME: Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python",
            MLFLOW_SOURCE_TYPE: "LOCAL"}
    with_user = {MLFLOW_USER: _user()} if _user() else {}
    commit = git_commit()
    return {**tags, **with_user, **({MLFLOW_GIT_COMMIT: commit} if commit else {})}


def _user() -> Optional[str]:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return None


def flat_params(cfg: DictConfig) -> Dict[str, str]:
    """The composed config as MLflow params: ``group.key`` -> text (lists as JSON, null as ``None``)."""
    try:
        data = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    except Exception:  # an interpolation that only resolves under Hydra: as written
        data = OmegaConf.to_container(cfg, resolve=False, enum_to_str=True)
    flat: Dict[str, str] = {}

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(f"{prefix}.{key}" if prefix else str(key), value)
        else:
            flat[prefix] = (json.dumps(node) if isinstance(node, (list, tuple)) else str(node))[:6000]

    walk("", data)
    return flat


def sweep_of(hydra: Any) -> Tuple[str, str, Dict[str, str]]:
    """(key, name, tags) of the sweep a multirun belongs to, from its Hydra config (``config.hydra`` in a
    callback, ``HydraConfig.get()`` in a job). Optuna workers sharing a study (same storage and study name)
    are one sweep, whatever their folders; any other sweep is its folder. The key is a hash (a tag value
    that any process computes alike)."""
    sweeper = hydra.get("sweeper") or {}
    study, storage = sweeper.get("study_name"), sweeper.get("storage")
    folder = os.path.abspath(str(hydra.sweep.dir))
    if study and storage:
        name, tags = f"study {study}", {"study": str(study), "storage": shown(storage)}
        identity = f"optuna:{shown(storage)}#{study}"
    else:
        name, tags, identity = f"sweep {Path(folder).name}", {"sweep_dir": folder}, folder
    return hashlib.sha1(identity.encode()).hexdigest()[:16], name, tags


def sweep_parent(client: Any, experiment: str, hydra: Any) -> str:
    """The id of the sweep's parent run, created when there is none yet. Several processes may look at
    once (the jobs of a launcher, Optuna workers): each that made one looks again, keeps the oldest and
    deletes its own if that is not it, so all of them end up under one parent."""
    key, name, tags = sweep_of(hydra)

    def parents() -> List[Any]:
        runs = client.search_runs([experiment], filter_string=f"tags.`{SWEEP_TAG}` = '{key}'", max_results=100)
        return sorted(runs, key=lambda r: (r.info.start_time or 0, r.info.run_id))

    found = parents()
    if found:
        return found[0].info.run_id
    mine = client.create_run(experiment, run_name=name, tags={SWEEP_TAG: key, **tags, **source_tags()}).info.run_id
    oldest = parents()[0].info.run_id
    if oldest != mine:
        client.delete_run(mine)
    return oldest


def start_sweep(config: DictConfig) -> Optional[Tuple[Any, str]]:
    """Before a multirun's first job (:class:`lstm_ae.callbacks.MlflowSweep`): the parent run, found or
    created and marked running; (client, run id). A tracking server that does not answer: one line."""
    uri, key = check_tracking(OmegaConf.select(config, "logger.tracking_uri"))
    client = mlflow_client(uri)
    with _answers(uri, key):
        exp = experiment_id(client, experiment_name(config.logger.get("experiment"), config.hydra), uri)
        parent = sweep_parent(client, exp, config.hydra)
        client.update_run(parent, status="RUNNING")
        client.set_tag(parent, "status", "running")
        client.set_tag(parent, "swept", ",".join(swept_keys(config)))  # the children are named by their values
    log.info("MLflow: the sweep's parent run %s%s", parent, _where(uri, exp, parent))
    return client, parent


def swept_keys(config: DictConfig) -> List[str]:
    """The keys a multirun varies: its sweep overrides (``k=1,2``, ``choice(...)``) and the Optuna sweeper's params."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    keys: List[str] = []
    try:
        parsed = OverridesParser.create().parse_overrides([str(o) for o in config.hydra.overrides.task])
    except Exception:  # noqa: BLE001 - Hydra parsed them already; only the names are lost
        parsed = []
    keys += [o.get_key_element().lstrip("+~") for o in parsed if o.is_sweep_override()]
    params = OmegaConf.select(config, "hydra.sweeper.params") or {}
    keys += [str(k) for k in params if str(k) not in keys]
    return keys


def end_sweep(client: Any, parent: str, sweep_dir: Path) -> None:
    """After a multirun: the parent run finished, with the sweep's ``summary.csv`` (lstm_ae.sweep)."""
    try:
        summary = Path(sweep_dir) / "summary.csv"
        if summary.is_file():
            client.log_artifact(parent, str(summary), artifact_path=Path(sweep_dir).name)
        client.set_tag(parent, "status", "finished")
        client.set_terminated(parent, "FINISHED")
    except Exception as err:  # the jobs are done and recorded: a tracking hiccup only warns
        log.warning("MLflow: could not end the sweep's parent run %s: %s", parent, shown(err))


def experiment_name(configured: Optional[str], hydra: Any = None) -> str:
    """``logger.experiment``, else the config's name (``toy``, ``mnist``, ...)."""
    if configured:
        return str(configured)
    name = OmegaConf.select(hydra, "job.config_name") if hydra is not None else None
    return str(name) if name else "lstm_ae"


def ui_url(uri: str, experiment: str, run: str) -> Optional[str]:
    """Where a tracking server's web UI shows ``run`` (None for a local store)."""
    if uri.startswith(("http://", "https://")):
        return f"{shown(uri).rstrip('/')}/#/experiments/{experiment}/runs/{run}"
    return None


def _where(uri: str, experiment: str, run: str) -> str:
    url = ui_url(uri, experiment, run)
    return f": {url}" if url else f" (to browse: mlflow ui --backend-store-uri {shown(uri)})"


class _answers:
    """Around calls to MLflow while a run starts: its errors (a server that refuses, a wrong URL) as one
    line naming the key; passwords masked."""

    def __init__(self, uri: str, key: str) -> None:
        self.uri, self.key = uri, key

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, err: Any, tb: Any) -> bool:
        from mlflow.exceptions import MlflowException

        if isinstance(err, MlflowException):
            first = shown(str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__)
            raise UserError(f"{self.key}={shown(self.uri)}: MLflow answered: {first[:500]}") from None
        return False


class MlflowRun:
    """The MLflow run of one run folder (a job's: a child of its sweep's parent), while it trains."""

    def __init__(self, client: Any, run_id: str, uri: str) -> None:
        self.client, self.id, self.uri = client, run_id, uri
        self.steps: Dict[str, int] = {}  # metric prefix -> the last epoch logged
        self.broken = False  # a call failed while training: per-epoch logging stops (finish fills the gaps)

    @classmethod
    def open(cls, folder: Path, cfg: DictConfig, configured: Optional[str], experiment: Optional[str]) -> "MlflowRun":
        """The run ``folder`` records (``mlflow.json``: a resumed run), or a new one with the config as params."""
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        from lstm_ae import run_folder as rf
        from lstm_ae.sweep import TRIAL_ENV

        uri, key = check_tracking(configured)
        client = mlflow_client(uri)
        hydra = HydraConfig.get() if HydraConfig.initialized() else None
        with _answers(uri, key):
            exp = experiment_id(client, experiment_name(experiment, hydra), uri)
            saved = rf.read_json(folder / RUN_FILE) or {}
            run = None
            if saved.get("run_id") and saved.get("tracking_uri") == shown(uri) and saved.get("experiment_id") == exp:
                run = _get_run(client, saved["run_id"])
            if run is not None:
                client.update_run(run.info.run_id, status="RUNNING")
                client.set_tag(run.info.run_id, "status", "running")
                log.info("MLflow: continuing run %s%s", run.info.run_id, _where(uri, exp, run.info.run_id))
                return cls(client, run.info.run_id, uri)
            from mlflow.entities import Param
            from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

            tags = {"run_dir": str(folder), "status": "running", **source_tags()}
            name = folder.name
            if hydra is not None and hydra.mode == RunMode.MULTIRUN:
                tags[MLFLOW_PARENT_RUN_ID] = sweep_parent(client, exp, hydra)
                tags["job"] = str(hydra.job.num)
                trial = os.environ.get(TRIAL_ENV)
                if trial is not None:
                    tags["optuna_trial"] = trial
                parent = _get_run(client, tags[MLFLOW_PARENT_RUN_ID])
                swept = ((parent.data.tags.get("swept") if parent is not None else None) or "").split(",")
                values = " ".join(o for o in map(str, hydra.overrides.task) if o.split("=", 1)[0].lstrip("+~") in swept)
                name = (f"trial {trial}" if trial is not None else f"job {hydra.job.num}") + (f": {values}" if values else "")
            run_id = client.create_run(exp, run_name=name[:250], tags=tags).info.run_id
            client.log_batch(run_id, params=[Param(k, v) for k, v in flat_params(cfg).items()])
        rf.write_json(folder / RUN_FILE, {"run_id": run_id, "experiment_id": exp, "tracking_uri": shown(uri),
                                          "url": ui_url(uri, exp, run_id)})
        log.info("MLflow: run %s%s", run_id, _where(uri, exp, run_id))
        return cls(client, run_id, uri)

    def log_epochs(self, prefix: str, csv_path: Path, row: Optional[Mapping[str, float]] = None) -> None:
        """The epochs not yet in the run: ``row`` (this epoch), or on the first call (and without a row) every
        row of ``csv_path`` after the last epoch the run holds (a resumed run: what its interruption missed;
        never a step twice)."""
        from mlflow.entities import Metric

        rows: List[Mapping[str, float]] = [row] if row is not None else []
        if prefix not in self.steps or row is None:
            from lstm_ae.trainer import read_metrics

            rows = read_metrics(csv_path) or rows
            if not rows:
                return
            if prefix not in self.steps:
                first = next(k for k in rows[0] if k != "epoch")
                history = self.client.get_metric_history(self.id, prefix + first)
                self.steps[prefix] = max((m.step for m in history), default=0)
        new = [r for r in rows if int(r["epoch"]) > self.steps[prefix]]
        now = int(time.time() * 1000)
        metrics = [Metric(prefix + k, float(v), now, int(r["epoch"])) for r in new for k, v in r.items() if k != "epoch"]
        if metrics:
            self.client.log_batch(self.id, metrics=metrics)
            self.steps[prefix] = max(int(r["epoch"]) for r in new)

    def log_results(self, results: Mapping[str, Any]) -> None:
        """The run's final numbers: test metrics, baselines, ``best_epoch``, ... (the best validation
        metrics as ``best_val_*``: ``val_*`` are the per-epoch curves)."""
        from mlflow.entities import Metric

        now, step = int(time.time() * 1000), int(results.get("epochs_run") or 0)
        metrics = [Metric(f"best_{k}" if k.startswith("val_") else k, float(v), now, step) for k, v in results.items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                   and k not in ("seq_len", "input_size", "eval_batch_size")]  # sizes, not results
        self.client.log_batch(self.id, metrics=metrics)

    def end(self, folder: Path, status: str, reason: str = "") -> None:
        """The run's end: its status (tag ``status`` as ``run.json`` has it), the figures, ``results.json``,
        ``metrics.csv`` and ``.hydra/`` as artifacts. A tracking error only warns: the run folder has it all."""
        try:
            tags = {"status": status, **({"status_reason": shown(reason)[:5000]} if reason else {})}
            for k, v in tags.items():
                self.client.set_tag(self.id, k, v)
            for path in sorted(folder.rglob("*.png")):
                rel = path.relative_to(folder)
                if rel.parts[0] != "checkpoints":
                    self.client.log_artifact(self.id, str(path), artifact_path=str(rel.parent) if rel.parent.parts else None)
            for name in ("results.json", "metrics.csv"):
                if (folder / name).is_file():
                    self.client.log_artifact(self.id, str(folder / name))
            if (folder / ".hydra").is_dir():
                self.client.log_artifacts(self.id, str(folder / ".hydra"), artifact_path=".hydra")
            self.client.set_terminated(self.id, END_STATUS.get(status, "FAILED"))
        except Exception as err:
            log.warning("MLflow: could not end run %s (%s): %s", self.id, status, shown(err))


def _get_run(client: Any, run_id: str) -> Optional[Any]:
    from mlflow.exceptions import MlflowException

    try:
        run = client.get_run(run_id)
    except MlflowException:
        return None
    return run if run.info.lifecycle_stage == "active" else None


class MlflowLogger:
    """``logger=mlflow``: an epoch callback logging into the MLflow run of its run folder (a fold's folder,
    ``fold_<k>``, into its run's, as ``fold_<k>/<metric>``). :meth:`start` opens (or continues) the run:
    without the extra, a server that does not answer or a password in ``tracking_uri``, one line, before
    the data are loaded."""

    def __init__(self, run_dir: Path, tracking_uri: Optional[str] = None, experiment: Optional[str] = None) -> None:
        self.dir, self.tracking_uri, self.experiment = Path(run_dir).resolve(), tracking_uri, experiment
        self.run: Optional[MlflowRun] = None
        self.prefix = ""

    def start(self, cfg: DictConfig) -> None:
        if self.dir in _OPEN:
            self.run = _OPEN[self.dir]
        elif self.dir.name.startswith("fold_") and self.dir.parent in _OPEN:
            self.run, self.prefix = _OPEN[self.dir.parent], f"{self.dir.name}/"
        else:
            self.run = _OPEN[self.dir] = MlflowRun.open(self.dir, cfg, self.tracking_uri, self.experiment)

    def __call__(self, epoch: int, model: Any, row: Mapping[str, float]) -> None:
        if self.run is None or self.run.broken:
            return
        try:
            self.run.log_epochs(self.prefix, self.dir / "metrics.csv", row)
        except Exception as err:  # training goes on: metrics.csv has the epoch, finish() logs what is missing
            self.run.broken = True
            log.warning("MLflow: could not log epoch %d (%s); per-epoch logging stops, the end of the run "
                        "logs what is missing", epoch, shown(err))

    def close(self) -> None:
        """Nothing: the run ends with :func:`end_run`, once its folder's end status is known."""

    def finish(self, cfg: DictConfig, results: Mapping[str, Any], overrides: Sequence[str] = ()) -> None:
        """Every epoch of ``metrics.csv`` not yet logged (cross-validation: the chosen fold's), the final metrics."""
        if self.run is None:
            return
        try:
            self.run.log_epochs("", self.dir / "metrics.csv")
            self.run.log_results(results)
        except Exception as err:
            log.warning("MLflow: could not log the results of run %s: %s", self.run.id, shown(err))


def end_run(folder: Path, status: str, reason: str = "") -> None:
    """The end of the run in ``folder`` (``status`` as ``run.json`` records it) for the logger that tracks it
    in this process, if any (``logger=mlflow``); nothing otherwise."""
    run = _OPEN.pop(Path(folder).resolve(), None)
    if run is not None:
        run.end(Path(folder).resolve(), status, reason)
