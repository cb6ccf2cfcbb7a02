"""Config composition, typing and value checks."""
import dataclasses
import inspect
import itertools
import re

import pytest
import torch
import yaml
from hydra.utils import get_method
from omegaconf import OmegaConf
from hydra.errors import ConfigCompositionException
from omegaconf.errors import ValidationError

from lstm_ae.config import SCHEMAS, ClassifyFrom, Device, Layout, Price, validate
from lstm_ae.errors import ConfigError
from lstm_ae.experiment import scheduler_factory
from tests.conftest import CONF, compose_cfg

# the primary configs that train a model (their defaults choose a model); conf/nab.yaml is bench.nab_search's
# job over a NAB folder, whose schema lives in bench/nab.py (tests/test_nab_bench.py composes it)
PRIMARY = sorted(p.stem for p in CONF.glob("*.yaml") if {"model": "lstm_ae"} in yaml.safe_load(p.read_text())["defaults"])


def test_every_primary_config_composes():
    assert "toy" in PRIMARY
    for name in PRIMARY:
        cfg = compose_cfg(name)
        for group in ("model", "optimizer", "scheduler", "dataset", "task", "trainer"):
            assert group in cfg, f"{name}.yaml lacks the {group} group"
        validate(cfg)


def test_toy_defaults_are_typed_and_sensible(compose_toy):
    cfg = compose_toy()
    assert cfg.model.hidden_size < 50  # no identity map on sequences of length 50
    assert cfg.trainer.device is Device.auto
    assert cfg.model.classify_from is ClassifyFrom.decoder
    assert cfg.dataset.num_sequences == 10_000 and cfg.dataset.seq_len == 50
    assert list(cfg.dataset.split) == [0.6, 0.2, 0.2]


@pytest.mark.parametrize(
    "option,target",
    [
        ("adam", "torch.optim.Adam"),
        ("adamw", "torch.optim.AdamW"),
        ("muon", "lstm_ae.optim.MuonAdam"),
        ("sgd", "torch.optim.SGD"),
        ("rmsprop", "torch.optim.RMSprop"),
    ],
)
def test_optimizer_options(compose_toy, option, target):
    cfg = compose_toy(f"optimizer={option}", "optimizer.lr=0.05")
    assert cfg.optimizer._target_ == target and cfg.optimizer.lr == 0.05


@pytest.mark.parametrize(
    "option,cls,expected",
    [
        ("cosine", torch.optim.lr_scheduler.CosineAnnealingLR, {"T_max": 7, "eta_min": 0.0}),  # T_max follows trainer.epochs
        ("step", torch.optim.lr_scheduler.StepLR, {"step_size": 50, "gamma": 0.5}),
        ("plateau", torch.optim.lr_scheduler.ReduceLROnPlateau, {"factor": 0.5, "patience": 10}),
        ("onecycle", torch.optim.lr_scheduler.OneCycleLR, {"total_steps": 7 * 3}),  # epochs x steps per epoch
    ],
)
def test_scheduler_options_build_the_scheduler_they_name(compose_toy, option, cls, expected):
    cfg = compose_toy(f"scheduler={option}", "trainer.epochs=7", "optimizer.lr=0.02")
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.02)
    sched = scheduler_factory(cfg.scheduler)(opt, 3)
    assert type(sched) is cls
    for key, value in expected.items():
        assert getattr(sched, key) == value, key
    if option == "onecycle":  # the peak learning rate is optimizer.lr
        assert opt.param_groups[0]["max_lr"] == 0.02


def test_no_scheduler(compose_toy):
    assert scheduler_factory(compose_toy("scheduler=none").scheduler) is None


def test_issue_example_command_composes(compose_toy):
    cfg = compose_toy(
        "model.hidden_size=32", "optimizer=sgd", "optimizer.lr=0.05", "trainer.epochs=300",
        "trainer.batch_size=64", "trainer.grad_clip=1.0", "scheduler=cosine", "trainer.seed=7",
    )
    validate(cfg)
    assert (cfg.model.hidden_size, cfg.optimizer.lr, cfg.trainer.seed) == (32, 0.05, 7)
    assert cfg.scheduler.T_max == 300


@pytest.mark.parametrize(
    "override",
    ["model.hidden_size=abc", "trainer.epochs=1.5", "trainer.device=gpu", "trainer.precision=fp8",
     "dataset.split=0.5"],
)
def test_wrong_type_fails_at_composition(compose_toy, override):
    with pytest.raises((ValidationError, ConfigCompositionException)) as err:
        compose_toy(override)
    assert override.split("=")[0] in str(err.value) or override.split("=")[0] in str(err.value.__cause__)


def test_unknown_key_fails_at_composition(compose_toy):
    with pytest.raises(ConfigCompositionException) as err:
        compose_toy("model.hiden_size=3")
    assert "hiden_size" in str(err.value.__cause__ or err.value)


@pytest.mark.parametrize(
    "override,key",
    [
        ("model.hidden_size=0", "model.hidden_size"),
        ("optimizer.lr=0", "optimizer.lr"),
        ("optimizer.lr=-0.1", "optimizer.lr"),
        ("trainer.batch_size=0", "trainer.batch_size"),
        ("trainer.epochs=0", "trainer.epochs"),
        ("trainer.grad_clip=-1", "trainer.grad_clip"),
        ("model.dropout=1.0", "model.dropout"),
        ("dataset.split=[0.5,0.5,0.5]", "dataset.split"),
        ("dataset.dip_max=48", "dataset.dip_min/dip_max"),
        ("model.decoder_clock=[28,1]", "model.decoder_clock"),
        ("model.decoder_clock=[2,2,2]", "model.decoder_clock"),
        ("model.decoder_clock=[28,28]", "model.decoder_clock"),  # 56 units; the toy's hidden_size is 48
    ],
)
def test_impossible_value_names_the_key(compose_toy, override, key):
    cfg = compose_toy(override)
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        validate(cfg)


def test_grad_clip_null_disables_clipping(compose_toy):
    cfg = compose_toy("trainer.grad_clip=null")
    validate(cfg)
    assert cfg.trainer.grad_clip is None


def _grid(params):
    return [v.split(",") for v in params.values()]


def test_toy_grid_is_at_most_30_models_with_hidden_below_50():
    cfg = compose_cfg("toy", ["hparams_search=toy_grid"], hydra=True)
    params = cfg.hydra.sweeper.params
    assert set(params) == {"model.hidden_size", "optimizer.lr", "trainer.grad_clip"}
    combos = list(itertools.product(*_grid(params)))
    assert 1 < len(combos) <= 30
    assert all(int(h) < 50 for h in params["model.hidden_size"].split(","))


def test_toy_optuna_searches_the_grids_keys_with_adam_and_sqlite_storage():
    grid = compose_cfg("toy", ["hparams_search=toy_grid"], hydra=True).hydra.sweeper.params
    cfg = compose_cfg("toy", ["hparams_search=toy_optuna"], hydra=True)
    sweeper = cfg.hydra.sweeper
    assert "optuna" in sweeper._target_.lower() and 1 < sweeper.n_trials <= 30
    assert sweeper.sampler._target_.endswith("TPESampler") and sweeper.sampler.seed is not None
    raw = OmegaConf.to_container(sweeper, resolve=False)
    assert raw["storage"].startswith("${sqlite_url:")
    assert set(sweeper.params) == set(grid)
    # the search its pruning was measured on (docs/sweeps.md): Adam over the grid's ranges of 11-27, 100 epochs
    ranges = {key: tuple(float(v) for v in re.search(r"interval\(([^,]+),\s*([^)]+)\)", sweeper.params[key]).groups())
              for key in grid}
    assert ranges == {"model.hidden_size": (40, 48), "optimizer.lr": (0.01, 0.02), "trainer.grad_clip": (0.02, 1.0)}
    assert cfg.optimizer._target_ == "torch.optim.Adam" and cfg.trainer.epochs == 100


@pytest.mark.parametrize("config,override", [("mnist", "dataset.layout=diagonal"), ("snp500", "dataset.price=volume")])
def test_closed_choices_are_enums_checked_at_composition(config, override):
    with pytest.raises(ConfigCompositionException) as err:
        compose_cfg(config, [override])
    assert "Invalid value" in str(err.value.__cause__ or err.value)
    assert compose_cfg("mnist").dataset.layout is Layout.row and compose_cfg("snp500").dataset.price is Price.high


# ------------------------------------------------------------- one place per default
def _schema_defaults(schema):
    out = {}
    for f in dataclasses.fields(schema):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


def _plain(value):
    return getattr(value, "value", value)


@pytest.mark.parametrize("group,name", [(g, n) for g, opts in SCHEMAS.items() for n in opts])
def test_group_yaml_sets_only_what_differs_from_its_schema(group, name):
    raw = yaml.safe_load((CONF / group / f"{name}.yaml").read_text()) or {}
    assert raw.pop("defaults") == [{f"/schema/{group}@_here_": name}, "_self_"]
    defaults = _schema_defaults(SCHEMAS[group][name])
    repeated = {k: v for k, v in raw.items() if k in defaults and _plain(defaults[k]) == v}
    assert not repeated, f"conf/{group}/{name}.yaml repeats schema defaults {repeated}"


@pytest.mark.parametrize("config", PRIMARY)
def test_primary_config_sets_only_what_differs_from_its_groups(config):
    raw = yaml.safe_load((CONF / f"{config}.yaml").read_text())
    chosen = {next(iter(d)): d[next(iter(d))] for d in raw["defaults"] if isinstance(d, dict)}
    for group, values in raw.items():
        if group == "defaults":
            continue
        defaults = _schema_defaults(SCHEMAS[group][chosen[group]])
        repeated = {k: v for k, v in values.items() if _plain(defaults[k]) == v}
        assert not repeated, f"conf/{config}.yaml repeats {group} defaults {repeated}"


@pytest.mark.parametrize("group,name", [(g, n) for g, opts in SCHEMAS.items() for n in opts
                                        if g in ("model", "dataset", "task") or (g, n) == ("optimizer", "muon")])
def test_constructors_take_the_schema_defaults(group, name):
    """Code called directly (bench, tests) behaves as the command line: one default per key."""
    schema = SCHEMAS[group][name]
    defaults = _schema_defaults(schema)
    params = inspect.signature(get_method(defaults["_target_"])).parameters
    checked = 0
    for key, value in defaults.items():
        if key == "_target_" or isinstance(value, str) and value.startswith("${"):
            continue  # interpolations (the data root) are resolved by Hydra
        assert key in params, f"{defaults['_target_']} takes no {key}"
        default = params[key].default
        if default is inspect.Parameter.empty:
            continue  # required: no competing default (the config or the data fills it)
        if isinstance(default, tuple):
            default = list(default)
        assert _plain(default) == _plain(value), f"{defaults['_target_']}({key}={default!r}) but the schema says {value!r}"
        checked += 1
    assert checked >= 2
