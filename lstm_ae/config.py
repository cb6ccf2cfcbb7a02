"""Typed schemas for every config group, and value checks: the one source of every default.

The dataclasses below hold every key and its default. Each YAML option in ``conf/<group>/``
extends one of them (``defaults: [/schema/<group>@_here_: <name>, _self_]``) and sets only what
differs from it; the primary configs (``conf/toy.yaml`` ...) set only what differs from their
groups. Hydra merges the YAML onto the dataclass, so a value of the wrong type, an unknown key or
a value outside an enum (``dataset.layout``, ``dataset.price``, ``trainer.device`` ...) fails
when the config is composed, before any work starts. Ranges (``hidden_size > 0``, ``lr > 0``,
...) are checked by :func:`validate`, which names the offending key. The classes that the config
builds (model, tasks, data loaders) take the same defaults; ``tests/test_config.py`` holds them to
these.
"""
from __future__ import annotations

import enum
import importlib.util
import math
import os
from pathlib import Path
from dataclasses import dataclass, field
from typing import Any, Callable, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from lstm_ae.errors import ConfigError


class Device(enum.Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class PredLoss(enum.Enum):
    all = "all"
    last = "last"


class Precision(enum.Enum):
    fp32 = "fp32"
    bf16 = "bf16"


class ClassifyFrom(enum.Enum):
    decoder = "decoder"  # the decoder's last hidden state h~_T (the assignment's choice)
    latent = "latent"  # the context z = h_T of the encoder


class Layout(enum.Enum):
    row = "row"  # MNIST: 28 steps of 28 pixels
    pixel = "pixel"  # MNIST: 784 steps of 1 pixel


class Price(enum.Enum):
    open = "open"
    high = "high"
    low = "low"
    close = "close"


class CsvLayout(enum.Enum):
    long = "long"  # one row per (series, time step); the value columns are the features m of every series
    wide = "wide"  # one row per time step; each value column is a series of its own (m = 1)


class Scaling(enum.Enum):
    window = "window"  # each window min-max scaled by its own values (as S&P)
    train = "train"  # min-max per feature, fitted on the training rows only


class SplitBy(enum.Enum):
    time = "time"  # each series cut chronologically into train / val / test
    series = "series"  # whole series held out (cross-validation by series with task.folds)


class Duplicates(enum.Enum):
    first = "first"  # the first row of a time that occurs more than once
    last = "last"
    mean = "mean"  # the mean of the rows' values (missing ones left out); a label: 1 if any row has 1


class Fill(enum.Enum):
    ffill = "ffill"  # the last value before the gap
    interpolate = "interpolate"  # linear between the neighbouring rows (at either end: the nearest value)
    zero = "zero"


class LSTMInit(enum.Enum):
    default = "default"  # PyTorch's uniform(-1/sqrt(H), 1/sqrt(H))
    chrono = "chrono"  # gate biases for memory over ~chrono_t_max steps (Tallec & Ollivier 2018)


# ----------------------------------------------------------------------------- model
@dataclass
class ModelConfig:
    _target_: str = "lstm_ae.model.LSTMAutoencoder"
    input_size: Optional[int] = None  # null: taken from the data (features per time step)
    hidden_size: int = 40
    num_layers: int = 1
    dropout: float = 0.0  # between stacked LSTM layers (needs num_layers > 1)
    num_classes: Optional[int] = None  # set by tasks that classify: adds a linear head
    classify_from: ClassifyFrom = ClassifyFrom.decoder
    init: LSTMInit = LSTMInit.default
    decoder_init: Optional[LSTMInit] = None  # the decoder's; null: as init
    chrono_t_max: Optional[int] = None  # null: the sequence length of the data
    # periods of a counter in the decoder's first units, fixed (not trained): [28, 28] gives the
    # decoder an image's (column, row) pixel by pixel; null: none (the assignment's plain decoder)
    decoder_clock: Optional[List[int]] = None


# ------------------------------------------------------------------------- optimizer
@dataclass
class OptimizerConfig:
    _target_: str = "torch.optim.Adam"
    lr: float = 1e-3
    weight_decay: float = 0.0


@dataclass
class AdamConfig(OptimizerConfig):
    _target_: str = "torch.optim.Adam"
    betas: List[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    amsgrad: bool = False
    fused: Optional[bool] = None  # one fused kernel per step (CPU and CUDA); null: torch's choice


@dataclass
class AdamWConfig(AdamConfig):
    _target_: str = "torch.optim.AdamW"
    weight_decay: float = 1e-2


@dataclass
class MuonConfig(AdamConfig):
    """Muon on the hidden weight matrices, Adam (these keys) on the rest (lstm_ae/optim.py)."""
    _target_: str = "lstm_ae.optim.MuonAdam"
    momentum: float = 0.95  # Muon's (a OneCycle schedule cycles it like Adam's beta1)
    nesterov: bool = True
    ns_steps: int = 5  # Newton-Schulz iterations that orthogonalise each update


@dataclass
class SGDConfig(OptimizerConfig):
    _target_: str = "torch.optim.SGD"
    lr: float = 1e-2
    momentum: float = 0.9
    dampening: float = 0.0
    nesterov: bool = False


@dataclass
class RMSpropConfig(OptimizerConfig):
    _target_: str = "torch.optim.RMSprop"
    alpha: float = 0.99
    eps: float = 1e-8
    momentum: float = 0.0
    centered: bool = False


# ------------------------------------------------------------------------- scheduler
@dataclass
class NoSchedulerConfig:
    _target_: Optional[str] = None


@dataclass
class CosineConfig:
    _target_: str = "torch.optim.lr_scheduler.CosineAnnealingLR"
    T_max: int = "${trainer.epochs}"  # type: ignore[assignment]  # one cosine over the whole run
    eta_min: float = 0.0


@dataclass
class StepConfig:
    _target_: str = "torch.optim.lr_scheduler.StepLR"
    step_size: int = 50  # epochs
    gamma: float = 0.5


@dataclass
class PlateauConfig:
    _target_: str = "torch.optim.lr_scheduler.ReduceLROnPlateau"
    factor: float = 0.5
    patience: int = 10
    min_lr: float = 0.0


@dataclass
class OneCycleConfig:
    _target_: str = "torch.optim.lr_scheduler.OneCycleLR"
    max_lr: float = "${optimizer.lr}"  # type: ignore[assignment]
    epochs: int = "${trainer.epochs}"  # type: ignore[assignment]
    steps_per_epoch: Optional[int] = None  # null: filled in by the trainer from the data
    pct_start: float = 0.3
    div_factor: float = 25.0
    final_div_factor: float = 1e4


# --------------------------------------------------------------------------- dataset
@dataclass
class ToyDatasetConfig:
    _target_: str = "lstm_ae.data.toy.load_toy"
    num_sequences: int = 10_000
    seq_len: int = 50
    dip_min: int = 20  # the dip centre i is drawn uniformly from [dip_min, dip_max] (1-based)
    dip_max: int = 30
    dip_half_width: int = 5  # values at t = i-5 .. i+5 are scaled
    dip_scale: float = 0.1
    split: List[float] = field(default_factory=lambda: [0.6, 0.2, 0.2])  # train/val/test
    seed: int = 0


@dataclass
class MnistDatasetConfig:
    _target_: str = "lstm_ae.data.mnist.load_mnist"
    root: str = "${oc.env:LSTM_AE_DATA,data}"  # holds MNIST/raw/*.gz
    layout: Layout = Layout.row  # row: 28 steps x 28 pixels; pixel: 784 steps x 1 pixel
    val_size: int = 5000  # validation images drawn (seeded) from the 60,000 training images
    seed: int = 0
    download: bool = False  # fetch with torchvision into root when the files are missing
    limit: Optional[int] = None  # keep only the first N images of each file (quick trials)
    shift: int = 0  # training images moved by up to this many pixels each way (own draw per image and epoch); 0: off


@dataclass
class SP500DatasetConfig:
    _target_: str = "lstm_ae.data.sp500.load_sp500"
    root: str = "${oc.env:LSTM_AE_DATA,data}"  # holds sp500/sp500_2014_2017.csv.gz (read-only is fine)
    path: Optional[str] = None  # a .csv or .csv.gz file instead (absolute, or relative to root)
    download: bool = False  # fetch the Kaggle dataset with kagglehub when the file is missing
    price: Price = Price.high  # the price column used: open | high | low | close
    extra_prices: List[Price] = field(default_factory=list)  # more of each day's prices as inputs, e.g. [open,low,close]
    plot_symbols: List[str] = field(default_factory=lambda: ["AMZN", "GOOGL"])  # drawn in daily_<price>.png; []: none
    seq_len: Optional[int] = 50  # days per sequence (sub-sequences); null: each whole series
    stride: Optional[int] = None  # days between window starts; null: seq_len (no overlap)
    test_fraction: float = 0.2  # share of the stocks held out for the final test
    val_fraction: float = 0.2  # share of the other stocks for validation (task.folds: train+val cut into folds)
    seed: int = 0


@dataclass
class CsvDatasetConfig:
    """A user's own series from CSV files (lstm_ae/data/csv.py; docs/data.md)."""
    _target_: str = "lstm_ae.data.csv.load_csv"
    path: Optional[str] = None  # a .csv/.csv.gz file, a folder of them or a glob (absolute, or relative to root)
    root: str = "${oc.env:LSTM_AE_DATA,data}"
    layout: CsvLayout = CsvLayout.long  # long: value columns are features; wide: each value column is a series
    time_column: Optional[str] = None  # dates or numbers; null: the first column
    value_columns: Optional[List[str]] = None  # null: every column but time/id/label that holds a number
    id_column: Optional[str] = None  # long layout: several series in one file, one per id; null: one per file
    label_column: Optional[str] = None  # per-step 0/1 labels, kept for evaluation (never an input)
    seq_len: int = 50  # steps per window (each window needs one more row: its next value)
    stride: Optional[int] = None  # steps between window starts; null: seq_len (no overlap)
    scaling: Scaling = Scaling.window  # window: each window by its own min-max; train: per feature, training rows only
    split_by: SplitBy = SplitBy.time  # time: each series cut in time; series: whole series held out
    test_fraction: float = 0.2  # share of each series' rows (split_by=time) or of the series held out for testing
    val_fraction: float = 0.2  # share of the rest for validation
    fill: Optional[Fill] = None  # missing values: null refuses them (one line naming the cell); ffill | interpolate | zero
    sort: bool = False  # false: rows out of time order are refused; true: each series is sorted by time
    duplicates: Optional[Duplicates] = None  # a time twice in a series: null refuses it; first | last | mean
    unit: Optional[str] = None  # the values' unit (e.g. USD): errors in data units
    plot_series: Optional[List[str]] = None  # series drawn before training (dates only); null: the first two; []: none
    seed: int = 0


# ------------------------------------------------------------------------------ task
@dataclass
class ReconstructTaskConfig:
    _target_: str = "lstm_ae.tasks.Reconstruct"
    num_examples: int = 3  # sequences drawn in examples.png
    num_reconstructions: int = 3  # test sequences drawn in reconstructions.png
    folds: Optional[int] = None  # k-fold cross-validation over stocks (dataset=sp500); null: one split
    figures: bool = True  # false: no PNG figures (e.g. a large sweep's jobs); metrics, checkpoints as always


@dataclass
class PredictTaskConfig:
    _target_: str = "lstm_ae.tasks.Predict"
    recon_weight: float = 1.0  # loss = recon_weight * MSE + pred_weight * one-step prediction MSE
    pred_weight: float = 1.0
    num_reconstructions: int = 3  # test stocks in reconstructions.png
    num_forecasts: int = 3  # test stocks in multistep.png
    num_examples: int = 3
    folds: Optional[int] = None
    ar_order: Optional[int] = None  # the linear AR baseline's lags (fitted on the training windows); null: min(20, window)
    # the prediction loss over every position t of the window (all), or only the last, whose target
    # (the day after the window) is outside the window's min-max scaling, as in every forecast (last)
    pred_loss: PredLoss = PredLoss.all
    figures: bool = True


@dataclass
class ClassifyTaskConfig:
    _target_: str = "lstm_ae.tasks.Classify"
    # loss = recon_weight * MSE + class_weight * cross-entropy. The per-pixel MSE is ~100x smaller than
    # the cross-entropy: with weight 1 the reconstruction stays near the mean image (MNIST row by row:
    # test MSE 0.058, against 0.005 with 30).
    recon_weight: float = 30.0
    class_weight: float = 1.0
    num_reconstructions: int = 3
    num_examples: int = 3
    figures: bool = True


# --------------------------------------------------------------------------- trainer
@dataclass
class TrainerConfig:
    epochs: int = 300
    batch_size: int = 64
    eval_batch_size: int = 2048
    grad_clip: Optional[float] = 1.0  # max gradient norm; null disables clipping
    seed: int = 0
    device: Device = Device.auto  # auto: cuda when available, else cpu
    num_threads: Optional[int] = None  # torch intra-op threads; null: torch's default
    precision: Precision = Precision.fp32  # bf16: autocast (AMX on CPU, tensor cores on GPU)
    # CPU: each batch cut into N shards run at once, one thread each (1 = off); null: one shard per
    # thread for sequences of >= 256 steps (pixel-by-pixel MNIST), else 1. Ignored on a GPU.
    shards: Optional[int] = None
    patience: Optional[int] = None  # stop after this many epochs without a better val loss
    progress: bool = True  # tqdm bar per epoch
    save_checkpoints: bool = True
    resume: Optional[str] = None  # auto: continue the newest unfinished run; or a run folder; null: afresh


# ---------------------------------------------------------------------------- logger
@dataclass
class CsvLoggerConfig:
    _target_: Optional[str] = None  # metrics.csv only (always written)


@dataclass
class TensorBoardLoggerConfig:
    _target_: str = "lstm_ae.loggers.TensorBoardLogger"  # + event files (extra .[tensorboard])
    log_dir: str = "tb"  # inside the run folder
    flush_secs: int = 10  # how often the event file is written out


@dataclass
class MlflowLoggerConfig:
    _target_: str = "lstm_ae.loggers.MlflowLogger"  # + an MLflow run per run, a parent per sweep (extra .[mlflow])
    tracking_uri: Optional[str] = None  # null: $MLFLOW_TRACKING_URI, else sqlite:///outputs/mlflow.db (no server)
    experiment: Optional[str] = None  # null: the config's name (toy, mnist, snp500, series)


SCHEMAS = {
    "model": {"lstm_ae": ModelConfig},
    "optimizer": {"adam": AdamConfig, "adamw": AdamWConfig, "muon": MuonConfig, "sgd": SGDConfig,
                  "rmsprop": RMSpropConfig},
    "scheduler": {
        "none": NoSchedulerConfig,
        "cosine": CosineConfig,
        "step": StepConfig,
        "plateau": PlateauConfig,
        "onecycle": OneCycleConfig,
    },
    "dataset": {"toy": ToyDatasetConfig, "mnist": MnistDatasetConfig, "sp500": SP500DatasetConfig,
                "csv": CsvDatasetConfig},
    "task": {
        "reconstruct": ReconstructTaskConfig,
        "classify": ClassifyTaskConfig,
        "predict": PredictTaskConfig,
    },
    "trainer": {"default": TrainerConfig},
    "logger": {"csv": CsvLoggerConfig, "tensorboard": TensorBoardLoggerConfig, "mlflow": MlflowLoggerConfig},
}


# The launchers of the optional extras (pyproject.toml): hydra/launcher option -> (class, extra).
LAUNCHER_EXTRAS = {
    "ray": ("hydra_plugins.hydra_ray_launcher.ray_launcher.RayLauncher", "ray"),
    "submitit_local": ("hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLauncher", "slurm"),
    "submitit_slurm": ("hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher", "slurm"),
}


def launcher_installed(target: str) -> bool:
    """Whether the package of a launcher class (``hydra.launcher._target_``) can be imported."""
    package = ".".join(target.split(".")[:2])  # hydra_plugins.<plugin>
    try:
        return importlib.util.find_spec(package) is not None
    except ImportError:
        return False


def register_configs() -> None:
    """Register every schema in Hydra's ConfigStore as ``schema/<group>/<name>`` (idempotent).

    The YAML options in ``conf/<group>/`` extend them with ``- /schema/<group>@_here_: <name>``.
    A launcher of an extra that is not installed gets a stand-in ``hydra/launcher/<name>`` naming
    its class, so that ``hydra/launcher=ray`` (or ``ray_cluster``, ``slurm``) still composes and
    :class:`lstm_ae.callbacks.CheckLauncher` can say in one line which extra to install.
    """
    cs = ConfigStore.instance()
    for group, nodes in SCHEMAS.items():
        for name, node in nodes.items():
            cs.store(group=f"schema/{group}", name=name, node=node)
    for name, (target, _) in LAUNCHER_EXTRAS.items():
        if not launcher_installed(target):
            cs.store(group="hydra/launcher", name=name, node={"_target_": target})


# ------------------------------------------------------------------------ validation
def _int_at_least(n: int) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= n


def _positive(v: Any) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v) and v > 0


def _non_negative(v: Any) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v) and v >= 0


def _optional(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda v: v is None or check(v)


def _fractions(v: Any) -> bool:
    return len(v) == 3 and all(_positive(f) for f in v) and abs(sum(v) - 1.0) < 1e-6


# (key, check, what the value must be). Keys absent from a config are skipped, so one table
# serves every entry script. Add a line to check a new key.
RULES: list[tuple[str, Callable[[Any], bool], str]] = [
    ("model.input_size", _optional(_int_at_least(1)), "a positive integer or null"),
    ("model.hidden_size", _int_at_least(1), "a positive integer"),
    ("model.num_layers", _int_at_least(1), "a positive integer"),
    ("model.dropout", lambda v: 0 <= v < 1, "in [0, 1)"),
    ("model.chrono_t_max", _optional(_int_at_least(2)), "an integer >= 2 or null"),
    ("model.decoder_clock", _optional(lambda v: 1 <= len(v) <= 2 and all(_int_at_least(2)(p) for p in v)),
     "one or two integers >= 2 (the clock's periods) or null"),
    ("model.num_classes", _optional(_int_at_least(2)), "an integer >= 2 or null"),
    ("optimizer.lr", _positive, "a positive number"),
    ("optimizer.weight_decay", _non_negative, "a non-negative number"),
    ("optimizer.momentum", _non_negative, "a non-negative number"),
    ("optimizer.ns_steps", _int_at_least(1), "a positive integer"),
    ("trainer.epochs", _int_at_least(1), "a positive integer"),
    ("trainer.batch_size", _int_at_least(1), "a positive integer"),
    ("trainer.eval_batch_size", _int_at_least(1), "a positive integer"),
    ("trainer.grad_clip", _optional(_positive), "a positive number, or null to disable clipping"),
    ("trainer.num_threads", _optional(_int_at_least(1)), "a positive integer or null"),
    ("trainer.shards", _optional(_int_at_least(1)), "a positive integer (1: no sharding) or null (auto)"),
    ("trainer.patience", _optional(_int_at_least(1)), "a positive integer or null"),
    ("optimizer.eps", _positive, "a positive number"),
    ("optimizer.betas", lambda v: len(v) == 2 and all(0 <= b < 1 for b in v), "two numbers in [0, 1)"),
    ("optimizer.alpha", lambda v: 0 <= v < 1, "in [0, 1)"),
    ("scheduler.T_max", _int_at_least(1), "a positive integer"),
    ("scheduler.eta_min", _non_negative, "a non-negative number"),
    ("scheduler.min_lr", _non_negative, "a non-negative number"),
    ("scheduler.patience", _int_at_least(0), "a non-negative integer"),
    ("scheduler.div_factor", _positive, "a positive number"),
    ("scheduler.final_div_factor", _positive, "a positive number"),
    ("scheduler.step_size", _int_at_least(1), "a positive integer"),
    ("scheduler.gamma", _positive, "a positive number"),
    ("scheduler.factor", lambda v: 0 < v < 1, "in (0, 1)"),
    ("scheduler.pct_start", lambda v: 0 < v < 1, "in (0, 1)"),
    ("task.num_examples", _int_at_least(1), "a positive integer"),
    ("task.num_reconstructions", _int_at_least(1), "a positive integer"),
    ("task.recon_weight", _non_negative, "a non-negative number"),
    ("task.class_weight", _non_negative, "a non-negative number"),
    ("task.pred_weight", _non_negative, "a non-negative number"),
    ("task.num_forecasts", _int_at_least(1), "a positive integer"),
    ("task.ar_order", _optional(_int_at_least(1)), "a positive integer, or null for min(20, the window length)"),
    ("task.folds", _optional(_int_at_least(2)), "an integer >= 2, or null for a single split"),
    ("dataset.plot_symbols", lambda v: all(isinstance(x, str) and x for x in v), "a list of stock symbols"),
    ("dataset.stride", _optional(_int_at_least(1)), "a positive integer or null"),
    ("dataset.plot_series", _optional(lambda v: all(isinstance(x, str) and x for x in v)),
     "a list of series names, [] for none, or null for the first two"),
    ("dataset.value_columns", _optional(lambda v: len(v) >= 1 and len(set(v)) == len(v)),
     "a list of distinct column names, or null for every column that holds numbers"),
    ("dataset.unit", _optional(lambda v: isinstance(v, str) and v.strip() != ""), "a unit's name (e.g. USD) or null"),
    ("dataset.test_fraction", lambda v: 0 < v < 1, "in (0, 1)"),
    ("dataset.val_fraction", lambda v: 0 < v < 1, "in (0, 1)"),
    ("dataset.val_size", _int_at_least(1), "a positive integer"),
    ("dataset.limit", _optional(_int_at_least(1)), "a positive integer or null"),
    ("dataset.shift", lambda v: 0 <= v <= 13, "an integer of pixels in [0, 13]"),
    ("dataset.num_sequences", _int_at_least(3), "an integer >= 3"),
    ("dataset.seq_len", _optional(_int_at_least(2)), "an integer >= 2 (or null where the dataset allows)"),
    ("dataset.dip_scale", _non_negative, "a non-negative number"),
    ("dataset.split", _fractions, "three positive fractions (train, val, test) summing to 1"),
]


def validate(cfg: DictConfig) -> None:
    """Raise :class:`ConfigError` naming the first key whose value is out of range."""
    missing = object()
    for key, check, what in RULES:
        value = OmegaConf.select(cfg, key, default=missing)
        if value is missing:
            continue
        try:
            ok = check(value)
        except TypeError:
            ok = False
        if not ok:
            raise ConfigError(f"{key} must be {what}; got {value!r}")
    model = cfg.get("model")
    if model is not None and model.get("decoder_clock") and sum(model.decoder_clock) > model.hidden_size:
        raise ConfigError(f"model.decoder_clock needs sum(periods) = {sum(model.decoder_clock)} of the decoder's "
                          f"units; model.hidden_size is {model.hidden_size}: raise it, shorten the clock or turn it off "
                          "(model.decoder_clock=null)")
    ds, task = cfg.get("dataset"), cfg.get("task")
    if task is not None and task.get("ar_order") is not None and ds is not None and ds.get("seq_len") is not None:
        if task.ar_order > ds.seq_len:
            raise ConfigError(f"task.ar_order must be <= dataset.seq_len ({ds.seq_len}: the window the AR "
                              f"baseline reads); got {task.ar_order}")
    if ds is not None and "dip_min" in ds:
        lo, hi, w = ds.dip_min, ds.dip_max, ds.dip_half_width
        if not (1 <= lo - w and lo <= hi and hi + w <= ds.seq_len and w >= 0):
            raise ConfigError(
                "dataset.dip_min/dip_max/dip_half_width must keep the dip inside the sequence: "
                f"need 1 <= dip_min - dip_half_width, dip_min <= dip_max, dip_max + dip_half_width "
                f"<= seq_len; got dip_min={lo}, dip_max={hi}, dip_half_width={w}, seq_len={ds.seq_len}"
            )


def sqlite_url(path: str) -> str:
    """OmegaConf resolver ``${sqlite_url:some/file.db}``: an SQLAlchemy URL for an SQLite file.

    Relative paths are taken from the current folder; the parent folder is created, since
    SQLite cannot create it and the sweep needs the study before Hydra makes the sweep folder.
    """
    file = Path(path).expanduser().resolve()
    file.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{file}"


register_configs()
if not OmegaConf.has_resolver("sqlite_url"):
    OmegaConf.register_new_resolver("sqlite_url", sqlite_url)
if not OmegaConf.has_resolver("pid"):
    # ${pid:} in a sweep folder's name: two sweeps started in the same second (workers of one
    # study) get their own folders. Cached like Hydra's ${now:}, so every job of a sweep sees the
    # launching process's id.
    OmegaConf.register_new_resolver("pid", os.getpid, use_cache=True)
if not OmegaConf.has_resolver("lstm_ae_groups"):  # --help's config groups (conf/hydra/default.yaml; lstm_ae/cli.py)
    OmegaConf.register_new_resolver("lstm_ae_groups", lambda: importlib.import_module("lstm_ae.cli").groups_help())
