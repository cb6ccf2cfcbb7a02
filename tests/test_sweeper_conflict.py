"""With the official hydra-optuna-sweeper importable too (it registers hydra/sweeper=optuna and the
sampler names in Hydra's ConfigStore as ours does), the project's searches still run the project's
sweeper, and say in one line that the plugin is not used. The plugin is installed for real (pip
install --no-deps --target, from the configured index or wheel folder) and put on PYTHONPATH of
the entry script; without pip access to it the test is skipped with the reason."""
import os
import subprocess
import sys

import optuna
import pytest

from tests.conftest import CONF, NO_FIGURES, ROOT, TINY_TOY

VERSIONS = ["1.3.0", "1.4.0rc3"]  # the plugin's line for hydra-core 1.3, and the release candidate of 1.4


@pytest.fixture(scope="module", params=VERSIONS)
def official_plugin(request, tmp_path_factory):
    target = tmp_path_factory.mktemp(f"hydra-optuna-sweeper-{request.param}")
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--disable-pip-version-check",
                          "--retries", "0", "--timeout", "10", "--target", str(target),
                          f"hydra-optuna-sweeper=={request.param}"], capture_output=True, text=True, timeout=120)
    if pip.returncode != 0 or not (target / "hydra_plugins" / "hydra_optuna_sweeper" / "config.py").exists():
        pytest.skip(f"pip cannot get hydra-optuna-sweeper=={request.param} here: {pip.stderr.strip()[-300:]}")
    return target


def _env(plugin_dir):
    return {**os.environ, "PYTHONPATH": str(plugin_dir), "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "0"}


COMPOSE = f"""
import lstm_ae.config  # the project's schemas and resolvers, as the entry scripts import them
from hydra import compose, initialize_config_dir
import hydra_plugins.hydra_optuna_sweeper.config as theirs
print("theirs:", theirs.__file__)
with initialize_config_dir(config_dir={str(CONF)!r}, version_base="1.3"):
    for overrides in (["hparams_search=toy_optuna"], ["hydra/sweeper=optuna", "hydra/sweeper/sampler=random"]):
        sweeper = compose("toy", overrides=overrides, return_hydra_config=True).hydra.sweeper
        print(sweeper._target_, sweeper.sampler._target_, sweeper.pruner._target_, sorted(sweeper.sampler))
"""


def test_the_project_composes_its_own_sweeper_beside_the_official_plugin(official_plugin):
    """What Could not override 'hydra/sweeper/pruner' stopped (hparams_search=toy_optuna), and what
    ran the plugin's sweeper (hydra/sweeper=optuna), composed with the plugin imported."""
    proc = subprocess.run([sys.executable, "-c", COMPOSE], cwd=ROOT, env=_env(official_plugin), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    theirs, toy, plain = proc.stdout.splitlines()
    assert theirs.startswith(f"theirs: {official_plugin}")  # the plugin was on the path, and imported
    assert toy == ("hydra_plugins.lstm_ae_optuna_sweeper.OptunaSweeper optuna.samplers.TPESampler "
                   "optuna.pruners.SuccessiveHalvingPruner ['_target_', 'constant_liar', 'group', 'multivariate', "
                   "'n_ei_candidates', 'n_startup_trials', 'seed']")
    assert plain == ("hydra_plugins.lstm_ae_optuna_sweeper.OptunaSweeper optuna.samplers.RandomSampler "
                     "optuna.pruners.NopPruner ['_target_', 'seed']")


@pytest.mark.parametrize("official_plugin", ["1.3.0"], indirect=True)  # each version's composition: above
def test_toy_optuna_runs_the_projects_sweeper_beside_the_official_plugin(official_plugin, tmp_path):
    """A real search with the plugin's 1.3 on the path (as a user who installed it has): it runs, and
    says in one line that the plugin's entries are not used."""
    db = tmp_path / "s.db"
    proc = subprocess.run([sys.executable, str(ROOT / "lstm_ae_toy.py"), "-m", "hparams_search=toy_optuna", *TINY_TOY,
                           NO_FIGURES, "trainer.epochs=1", "dataset.num_sequences=60", "hydra.sweeper.n_trials=1",
                           f"hydra.sweeper.storage=sqlite:///{db}", f"hydra.sweep.dir={tmp_path / 'sweep'}"],
                          cwd=tmp_path, env=_env(official_plugin), capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    notice = [line for line in out.splitlines() if "registers hydra/sweeper/optuna" in line]
    assert len(notice) == 1 and "optuna_sweeper" in notice[0] and "pip uninstall hydra-optuna-sweeper" in notice[0]
    trial, = optuna.load_study(study_name="toy_optuna", storage=f"sqlite:///{db}").trials
    assert trial.state == optuna.trial.TrialState.COMPLETE
