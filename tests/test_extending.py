"""docs/extending.md stays true: its marked python blocks run in order and train the example end to
end, its tables name what the code has, and the shipped tasks have the members of ``Task``."""
from __future__ import annotations

import json
import math
import re
import sys
import types

import pandas as pd
import pytest
import yaml

import lstm_ae.config
from lstm_ae.config import validate
from lstm_ae.errors import ConfigError
from lstm_ae.experiment import build
from lstm_ae.tasks import Classify, Predict, Reconstruct, Task
from tests.conftest import CONF, ROOT, compose_cfg

PAGE = ROOT / "docs" / "extending.md"
EXAMPLE = re.compile(r"<!-- extending-example -->\n```python\n(.*?)```", re.S)
MODULE = "extending_example"  # the module the page's blocks run in, so that Hydra can import their _target_s
EXAMPLE_CFG = ["dataset=sine", "task=mae", "trainer.device=cpu"]


def page() -> str:
    return PAGE.read_text()


def stored(tree: dict, path: tuple = ()):
    """The (group, ..., name) of every config in a ConfigStore repo but Hydra's own (registered as it starts)."""
    for key, value in tree.items():
        if path == () and key == "hydra":
            continue
        if isinstance(value, dict):
            yield from stored(value, (*path, key))
        else:
            yield (*path, key)


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    """The page's python blocks run as one module from an empty folder; the module, lstm_ae.config.RULES and
    Hydra's ConfigStore are put back afterwards (the example's options would show in other tests' --help)."""
    from hydra.core.config_store import ConfigStore

    blocks = EXAMPLE.findall(page())
    assert len(blocks) == 3, "docs/extending.md: the dataset, the task, the run"
    module = types.ModuleType(MODULE)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(lstm_ae.config, "RULES", list(lstm_ae.config.RULES))
        repo = ConfigStore.instance().repo
        before = set(stored(repo))
        patch.setitem(sys.modules, MODULE, module)
        patch.chdir(tmp_path_factory.mktemp("extending"))
        exec(compile("\n".join(blocks), str(PAGE), "exec"), module.__dict__)
        yield module
        for path in set(stored(repo)) - before:  # the example's options (dataset/sine.yaml, task/mae.yaml) go again
            *groups, name = path
            node = repo
            for group in groups:
                node = node[group]
            del node[name]


def test_the_example_trains_end_to_end(example):
    run_dir = example.run_dir.resolve()
    results = json.loads((run_dir / "results.json").read_text())
    assert results == example.results
    assert (results["objective"], results["objective_mode"], results["epochs_run"]) == ("val_mae", "min", 2)
    for key in ("test_mae", "val_mae", "test_loss", "baseline_test_mae"):
        assert math.isfinite(results[key]) and results[key] > 0, key
    assert results["test_mae"] == results["test_loss"]
    assert results["sequences"] == {"train": 120, "val": 40, "test": 40}
    metrics = pd.read_csv(run_dir / "metrics.csv")
    assert list(metrics["epoch"]) == [1, 2] and {"train_mae", "val_mae"} <= set(metrics.columns)
    assert results["val_mae"] == pytest.approx(metrics["val_mae"].min())
    assert (run_dir / "mae.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (run_dir / "checkpoints" / "best.pt").is_file()
    assert abs(results["baseline_test_mae"] - 1 / math.pi) < 0.03  # as the page says: 1/pi for these sines


def test_the_example_dataset_is_sines_of_its_period(example):
    splits = build(compose_cfg("toy", [*EXAMPLE_CFG, "dataset.num_sequences=50", "dataset.period=10"]).dataset)
    x = splits.train.x
    assert x.shape == (30, 50, 1) and 0 <= x.min() and x.max() <= 1
    assert (x[:, 10:] - x[:, :-10]).abs().max() < 1e-5  # one cycle every `period` steps
    assert x[:, 0].std() > 0.2  # phases differ


def test_the_example_task_is_a_task_and_its_rule_is_checked(example):
    cfg = compose_cfg("toy", EXAMPLE_CFG)
    assert isinstance(build(cfg.task), Task)
    validate(cfg)
    with pytest.raises(ConfigError, match=r"^dataset\.period must be a positive number; got 0\.0$"):
        validate(compose_cfg("toy", [*EXAMPLE_CFG, "dataset.period=0"]))


@pytest.mark.parametrize("name", ["reconstruct", "classify", "predict"])
def test_the_shipped_tasks_are_tasks(name):
    assert isinstance(build(compose_cfg("toy", [f"task={name}"]).task), Task)


def test_an_object_without_a_member_of_task_is_not_one():
    class NoDraw(Reconstruct):
        draw = None  # not callable

    class NoFolds:
        objective, objective_mode, needs_labels, needs_next, figures = "mse", "min", False, False, True
        losses = baseline = test = draw = Reconstruct.draw

    assert isinstance(Reconstruct(), Task) and isinstance(Classify(), Task) and isinstance(Predict(), Task)
    assert not isinstance(NoDraw(), Task)
    assert not isinstance(NoFolds(), Task)


def test_the_page_lists_the_members_of_task():
    """The table under 'A task' names exactly the protocol's members."""
    section = page().split("## A task", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^\s*\| `(\w+)", section, re.M))
    members = set(Task.__annotations__) | {n for n, v in vars(Task).items() if callable(v) and not n.startswith("_")}
    assert listed == members


def test_the_pages_yaml_option_is_the_shipped_pattern():
    """The option file shown for a new dataset extends its schema as conf/dataset/toy.yaml does."""
    block = re.search(r"```yaml\n(.*?)```", page(), re.S).group(1)
    shown = yaml.safe_load(re.sub(r"^   ", "", block, flags=re.M))
    shipped = yaml.safe_load((CONF / "dataset" / "toy.yaml").read_text())
    assert shown == json.loads(json.dumps(shipped).replace('"toy"', '"sine"'))
