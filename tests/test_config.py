"""Config composition, typing and value checks."""
import itertools
import re

import pytest
from omegaconf import OmegaConf
from hydra.errors import ConfigCompositionException
from omegaconf.errors import ValidationError

from lstm_ae.config import ClassifyFrom, Device, validate
from lstm_ae.errors import ConfigError
from tests.conftest import CONF, compose_cfg

PRIMARY = sorted(p.stem for p in CONF.glob("*.yaml"))


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
        ("sgd", "torch.optim.SGD"),
        ("rmsprop", "torch.optim.RMSprop"),
    ],
)
def test_optimizer_options(compose_toy, option, target):
    cfg = compose_toy(f"optimizer={option}", "optimizer.lr=0.05")
    assert cfg.optimizer._target_ == target and cfg.optimizer.lr == 0.05


@pytest.mark.parametrize("option", ["none", "cosine", "step", "plateau", "onecycle"])
def test_scheduler_options_compose(compose_toy, option):
    cfg = compose_toy(f"scheduler={option}", "trainer.epochs=7")
    if option == "cosine":
        assert cfg.scheduler.T_max == 7  # follows trainer.epochs
    if option == "none":
        assert cfg.scheduler._target_ is None


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
    ["model.hidden_size=abc", "trainer.epochs=1.5", "trainer.device=gpu", "trainer.precision=fp8"],
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


def test_toy_optuna_searches_the_grid_ranges_with_sqlite_storage():
    grid = compose_cfg("toy", ["hparams_search=toy_grid"], hydra=True).hydra.sweeper.params
    cfg = compose_cfg("toy", ["hparams_search=toy_optuna"], hydra=True)
    sweeper = cfg.hydra.sweeper
    assert "optuna" in sweeper._target_.lower() and 1 < sweeper.n_trials <= 30
    assert sweeper.sampler._target_.endswith("TPESampler") and sweeper.sampler.seed is not None
    raw = OmegaConf.to_container(sweeper, resolve=False)
    assert raw["storage"].startswith("${sqlite_url:")
    assert set(sweeper.params) == set(grid)
    for key, values in grid.items():
        low, high = re.search(r"interval\(([^,]+),\s*([^)]+)\)", sweeper.params[key]).groups()
        grid_values = [float(v) for v in values.split(",")]
        assert (float(low), float(high)) == (min(grid_values), max(grid_values)), key
    assert cfg.trainer.epochs == compose_cfg("toy", ["hparams_search=toy_grid"]).trainer.epochs
