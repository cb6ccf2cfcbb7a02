"""Shared helpers: compose configs with Hydra's API, and run entry scripts as a user would."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import List

import pytest
from hydra import compose, initialize_config_dir

import lstm_ae.config  # noqa: F401  (registers the schemas and resolvers)

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
SHARED_DATA = ROOT.parent / "shared" / "data"

# Small and fast: 100 sequences (60/20/20), hidden 8, one thread, no progress bars.
TINY_TOY = [
    "dataset.num_sequences=100",
    "model.hidden_size=8",
    "trainer.batch_size=16",
    "trainer.num_threads=1",
    "trainer.progress=false",
]


def compose_cfg(config_name: str, overrides: List[str] = (), hydra: bool = False):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name, overrides=list(overrides), return_hydra_config=hydra)


def run_script(script: str, *args: str, cwd: Path = ROOT, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run an entry script in a fresh interpreter; output captured as text."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "0"}
    return subprocess.run(
        [sys.executable, str(ROOT / script), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def compose_toy():
    return lambda *overrides: compose_cfg("toy", overrides)
