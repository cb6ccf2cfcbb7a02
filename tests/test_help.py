"""The entry scripts' command line (lstm_ae/cli.py): ``--help`` lists only the groups and options a script can use,
each with its line, then the composed config; a mistyped key or option, another script's dataset or a task its data
cannot serve stops in one line with the closest valid names, exit status 2, before any run or sweep folder.

The scripts run in this process (conftest.run_in_process) as a user runs them; nothing trains.
"""
import re
from pathlib import Path

import pytest

from lstm_ae import cli
from lstm_ae.experiment import build
from tests.conftest import CONF, ROOT, compose_cfg, run_in_process, sp500_root, write_fake_mnist

SCRIPTS = {"lstm_ae_toy.py": "toy", "lstm_ae_mnist.py": "mnist", "lstm_ae_snp500.py": "snp500",
           "lstm_ae_series.py": "series"}


@pytest.fixture
def fast_help(monkeypatch):
    """Hydra's get_help lists every group for $APP_CONFIG_GROUPS and $HYDRA_CONFIG_GROUPS whether the template uses
    them or not (~3 s); here that listing is a marker that must not reach the help text (or a test's output)."""
    from hydra._internal.hydra import Hydra

    monkeypatch.setattr(Hydra, "format_config_groups", lambda self, predicate, compact=True: "schema/HYDRA-LISTING\n")


def groups_section(out: str) -> dict:
    """--help's group lines as {group: (options as listed, description)}."""
    section = out.split("== Config groups", 1)[1].split("\n", 1)[1].split("== Config (", 1)[0]
    rows = {}
    for line in filter(str.strip, section.splitlines()):
        group, rest = line.split(": ", 1)
        options, _, about = re.split(r"(\s{2,})", rest.strip(), maxsplit=1) if "  " in rest else (rest, "", "")
        rows[group] = (options.split(", "), about)
    return rows


@pytest.mark.parametrize("script, datasets, tasks", [
    ("lstm_ae_toy.py", ["toy*"], ["reconstruct*"]),
    ("lstm_ae_mnist.py", ["mnist*"], ["classify*", "reconstruct"]),
    ("lstm_ae_snp500.py", ["sp500*"], ["predict", "reconstruct*"]),
    ("lstm_ae_series.py", ["csv*"], ["predict", "reconstruct*"]),
])
def test_help_lists_the_scripts_own_groups_and_options_then_the_config(fast_help, script, datasets, tasks):
    proc = run_in_process(script, "--help")
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    out = proc.stdout
    assert "schema" not in out.split("== Config (", 1)[0] and "HYDRA-LISTING" not in out
    rows = groups_section(out)
    assert rows["dataset"][0] == datasets and rows["task"][0] == tasks
    assert rows["optimizer"][0] == sorted(rows["optimizer"][0]) and len(rows["optimizer"][0]) >= 5
    assert "hydra" not in rows
    for group, (_, about) in rows.items():
        assert about == cli.GROUPS[group]  # every group: its one line
    if script == "lstm_ae_toy.py":
        assert rows["hparams_search"][0] == ["toy_grid", "toy_optuna"]  # the toy searches only
    else:
        assert "hparams_search" not in rows  # no search of its own: the group is not offered
    # then the composed config: this script's values
    config = out.split("== Config (override any key with key=value) ==\n", 1)[1]
    assert f"hidden_size: {compose_cfg(SCRIPTS[script]).model.hidden_size}\n" in config
    assert "Examples:" in out  # the footer


def test_help_shows_the_overrides_choices_and_values(fast_help):
    proc = run_in_process("lstm_ae_mnist.py", "--help", "optimizer=sgd", "task=reconstruct", "trainer.epochs=7")
    assert proc.returncode == 0
    rows = groups_section(proc.stdout)
    assert "sgd*" in rows["optimizer"][0] and rows["task"][0] == ["classify", "reconstruct*"]
    assert "  epochs: 7\n" in proc.stdout and "dampening:" in proc.stdout


def test_hydra_help_and_cfg_still_work():
    proc = run_in_process("lstm_ae_toy.py", "--hydra-help")
    assert proc.returncode == 0 and "== Flags ==" in proc.stdout
    proc = run_in_process("lstm_ae_toy.py", "--cfg", "job", "optimizer=sgd", "optimizer.momentum=0.5", "++trainer.epochs=2")
    assert proc.returncode == 0 and "momentum: 0.5" in proc.stdout and "epochs: 2" in proc.stdout, proc.stderr
    proc = run_in_process("lstm_ae_toy.py", "--cfg", "hydra", "hydra.job.chdir=true", "hydra/launcher=joblib")
    assert proc.returncode == 0 and "chdir: true" in proc.stdout and "joblib" in proc.stdout, proc.stderr


BAD = [
    # script, overrides, the one line
    ("lstm_ae_toy.py", ["model.hiden_size=32"], "model.hiden_size: no such key; did you mean model.hidden_size?"),
    ("lstm_ae_toy.py", ["optimizer=adamm"], "optimizer=adamm: no such option; did you mean optimizer=adam?"),
    ("lstm_ae_mnist.py", ["optimizer.betass=[0.9,0.99]"], "optimizer.betass: no such key; did you mean optimizer.betas?"),
    ("lstm_ae_toy.py", ["trainer.epoch=3"], "trainer.epoch: no such key; did you mean trainer.epochs?"),
    ("lstm_ae_toy.py", ["trainr.epochs=3"], "trainr.epochs: no such key; did you mean trainer.epochs?"),
    ("lstm_ae_toy.py", ["optimiser=sgd"], "optimiser: no such key; did you mean optimizer?"),
    ("lstm_ae_toy.py", ["+model.hiden_size=32"], "model.hiden_size: no such key; did you mean model.hidden_size?"),
    ("lstm_ae_toy.py", ["+model.hidden_size=32"], "+model.hidden_size: model.hidden_size is already a key; drop the +: "
                                                  "model.hidden_size=32"),
    ("lstm_ae_toy.py", ["optimizer=sgd", "optimizer.betas=[0.9,0.99]"],
     "optimizer.betas: no such key with optimizer=sgd; optimizer has _target_, lr, weight_decay, momentum, dampening, nesterov"),
    ("lstm_ae_toy.py", ["scheduler=warmup"], "scheduler=warmup: no such option; scheduler's options: cosine, none, onecycle, "
                                           "plateau, step"),
    ("lstm_ae_toy.py", ["dataset=mnist"], "dataset=mnist belongs to lstm_ae_mnist.py; lstm_ae_toy.py's dataset: toy"),
    ("lstm_ae_toy.py", ["task=predict"], "task=predict needs next-step targets, which dataset=toy does not have; "
                                         "lstm_ae_toy.py's tasks: reconstruct"),
    ("lstm_ae_series.py", ["task=classify"], "task=classify needs class labels, which dataset=csv does not have; "
                                             "lstm_ae_series.py's tasks: predict, reconstruct"),
    ("lstm_ae_mnist.py", ["hparams_search=toy_grid"], "hparams_search=toy_grid belongs to lstm_ae_toy.py; "
                                                      "lstm_ae_mnist.py's hparams_search: none"),
    ("lstm_ae_toy.py", ["trainer.epochs=many"], "Error merging override trainer.epochs=many: Value 'many' of type 'str' "
                                                "could not be converted to Integer"),
    ("lstm_ae_toy.py", ["--help", "model.hiden_size=32"], "model.hiden_size: no such key; did you mean model.hidden_size?"),
    # in a sweep: before any job
    ("lstm_ae_toy.py", ["-m", "model.hiden_size=16,32"], "model.hiden_size: no such key; did you mean model.hidden_size?"),
    ("lstm_ae_toy.py", ["-m", "optimizer=adam,sgd", "optimizer.betas=[0.9,0.99]"],
     "optimizer.betas: no such key with optimizer=sgd; optimizer has _target_, lr, weight_decay, momentum, dampening, nesterov"),
    ("lstm_ae_toy.py", ["-m", "optimizer=adam,adamm"], "optimizer=adamm: no such option; did you mean optimizer=adam?"),
    ("lstm_ae_toy.py", ["-m", "hparams_search=toy_grid", "trainer.epoch=3"],
     "trainer.epoch: no such key; did you mean trainer.epochs?"),
]


@pytest.mark.parametrize("script, overrides, line", BAD, ids=[" ".join(c[1]) for c in BAD])
def test_a_mistake_is_one_line_with_the_closest_names_and_no_folder(tmp_path, monkeypatch, script, overrides, line):
    monkeypatch.chdir(tmp_path)  # Hydra's default folders (outputs/, multirun/) would land here
    proc = run_in_process(script, *overrides, f"hydra.run.dir={tmp_path}/run", f"hydra.sweep.dir={tmp_path}/sweep")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr == f"Error: {line}\n" if not line.startswith("Error") else proc.stderr == f"{line}\n"
    assert proc.stdout == ""
    assert list(tmp_path.iterdir()) == []  # no run folder, no sweep folder, nothing


@pytest.mark.parametrize("overrides, multirun", [
    (["model.hidden_size=16", "optimizer=sgd", "optimizer.momentum=0.5", "+hydra.job.env_set.X=1", "++trainer.patience=3"], False),
    (["model.hidden_size=16,32", "optimizer=adam,adamw", "optimizer.betas=[0.8,0.9]", "trainer.seed=range(3)"], True),
    (["hparams_search=toy_optuna", "model.hidden_size=int(interval(8,16))", "optimizer.lr=tag(log, interval(0.01, 0.1))",
      "hydra.sweeper.n_trials=2"], True),
    (["optimizer=glob(adam*)", "dataset=toy", "task=reconstruct", "hparams_search=null"], True),
    (["scheduler=choice(none,step)", "scheduler.step_size=5"], True),  # step_size: a step key; none lacks it (see below)
])
def test_valid_command_lines_pass(overrides, multirun):
    found = cli.problem("toy", overrides, multirun=multirun)
    if "scheduler.step_size=5" in overrides:  # every job is checked: scheduler=none has no step_size
        assert found == "scheduler.step_size: no such key with scheduler=none; scheduler has _target_"
    else:
        assert found is None


def test_the_declaration_covers_every_option_and_script():
    for group in ("dataset", "hparams_search", "task"):
        assert {p.stem for p in (CONF / group).glob("*.yaml")}  # the folders are there
    datasets = {p.stem for p in (CONF / "dataset").glob("*.yaml")}
    assert datasets == {s.dataset for s in cli.SCRIPTS.values() if s.dataset}  # every dataset has its script
    searches = {p.stem for p in (CONF / "hparams_search").glob("*.yaml")}
    assert searches == {name for s in cli.SCRIPTS.values() for name in s.searches}
    groups = {p.name for p in CONF.iterdir() if p.is_dir() and p.name != "hydra"}
    assert groups <= set(cli.GROUPS), groups - set(cli.GROUPS)  # every group has its line
    for config, script in cli.SCRIPTS.items():
        assert (CONF / f"{config}.yaml").exists()
        if script.file.endswith(".py"):  # the entry script checks with its own config's name
            text = (ROOT / script.file).read_text()
            assert f'config_name="{config}"' in text and f'lstm_ae.cli.check("{config}")' in text


def tiny_data(tmp: Path) -> dict:
    csv = tmp / "series.csv"
    csv.write_text("t,v\n" + "".join(f"{i},{(i * 7) % 11}\n" for i in range(200)))
    return {
        "toy": ["dataset.num_sequences=30"],
        "mnist": [f"dataset.root={write_fake_mnist(tmp / 'mnist', n_train=20, n_test=10)}", "dataset.val_size=5"],
        "sp500": [f"dataset.root={sp500_root(tmp)}", "dataset.seq_len=10"],
        "csv": [f"dataset.path={csv}", "dataset.seq_len=10"],
    }


def test_what_each_dataset_provides_is_what_its_data_has(tmp_path):
    """The declaration against the real loaders: class labels and next-step targets, as the tasks read them."""
    overrides = tiny_data(tmp_path)
    for config, script in cli.SCRIPTS.items():
        if script.dataset is None:
            continue
        splits = build(compose_cfg(config, overrides[script.dataset]).dataset)
        assert (splits.num_classes is not None) == ("class labels" in script.provides), config
        assert splits.has_next == ("next-step targets" in script.provides), config
    assert cli.task_needs("classify") == ["class labels"] and cli.task_needs("predict") == ["next-step targets"]
    assert cli.task_needs("reconstruct") == []


@pytest.mark.parametrize("task, needs", [("predict", "next-step targets"), ("classify", "class labels")])
def test_the_run_time_guard_stays_behind_the_command_line_one(task, needs):
    """A config composed elsewhere (the API, a dataset no script claims) is still refused once its data is loaded."""
    from lstm_ae.errors import ConfigError
    from lstm_ae.experiment import load_data

    cfg = compose_cfg("toy", [f"task={task}", "dataset.num_sequences=30"])
    with pytest.raises(ConfigError, match=f"needs {needs}, which this dataset does not have"):
        load_data(cfg, build(cfg.task))
