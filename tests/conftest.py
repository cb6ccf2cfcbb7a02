"""Shared fixtures and helpers: configs composed with Hydra's API, tiny data files with the real
layouts, entry scripts run as a user would. Every test picks its device: the CPU (``trainer.device=cpu``),
or CUDA in the tests marked for it, which skip without a GPU."""
from __future__ import annotations

import contextlib
import gzip
import io
import logging
import os
import runpy
import struct
import subprocess
import sys
from pathlib import Path
from typing import List

import numpy as np
import pandas as pd
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

import lstm_ae.config  # noqa: F401  (registers the schemas and resolvers)
from lstm_ae.config import TrainerConfig
from lstm_ae.data.mnist import FILES
from lstm_ae.trainer import cpu_bf16_lstm

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
SHARED_DATA = ROOT.parent / "shared" / "data"
HAS_CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not HAS_CUDA, reason="no CUDA GPU on this machine")
CPU_BF16 = cpu_bf16_lstm()  # an AVX2-only CPU has no bf16 LSTM kernel: the trainer falls back to fp32 there
needs_cpu_bf16 = pytest.mark.skipif(not CPU_BF16, reason="this CPU has no bf16 LSTM kernel (oneDNN's needs AVX-512)")

CPU = ["trainer.device=cpu", "trainer.progress=false"]
# Small and fast: 100 sequences (60/20/20), hidden 8 (too few units for the default decoder clock's 15), one thread, on the CPU.
TINY_TOY = ["dataset.num_sequences=100", "model.hidden_size=8", "model.decoder_clock=null", "trainer.batch_size=16",
            "trainer.num_threads=1", *CPU]
NO_FIGURES = "task.figures=false"  # for tests of many jobs that look at no figure: ~1 s less per job


def compose_cfg(config_name: str, overrides: List[str] = (), hydra: bool = False):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name, overrides=list(overrides), return_hydra_config=hydra)


def trainer_cfg(**overrides):
    """The trainer config group's defaults (typed, as Hydra composes them) with ``overrides``, on the CPU."""
    return OmegaConf.structured(TrainerConfig(**{"device": "cpu", "progress": False, **overrides}))


def run_script(script: str, *args: str, cwd: Path = ROOT, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run an entry script in a fresh interpreter; output captured as text."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "0"}
    return subprocess.run([sys.executable, str(ROOT / script), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def run_in_process(script: str, *args: str) -> subprocess.CompletedProcess:
    """Run an entry script in this process as ``python <script> <args>`` does (as ``__main__``:
    Hydra's command line, exit status, console output), without a fresh interpreter's start-up.
    sys.argv, HYDRA_FULL_ERROR and the logging handlers are put back afterwards."""
    argv = [str(ROOT / script), *args]
    handlers = logging.getLogger().handlers[:]
    out, err, code = io.StringIO(), io.StringIO(), 0
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        patch.setattr(sys, "argv", argv)
        patch.setenv("HYDRA_FULL_ERROR", "0")
        try:
            runpy.run_path(argv[0], run_name="__main__")
        except SystemExit as exit_:
            if isinstance(exit_.code, (int, type(None))):
                code = exit_.code or 0
            else:  # as the interpreter does: the message goes to stderr, status 1
                print(exit_.code, file=sys.stderr)
                code = 1
        finally:
            for handler in set(logging.getLogger().handlers) - set(handlers):
                handler.close()  # the run's console and log-file handlers
            logging.getLogger().handlers[:] = handlers
    return subprocess.CompletedProcess(argv, code, out.getvalue(), err.getvalue())


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Each test starts with one torch thread (the suite runs on every core at once: more threads
    per test would only fight over them; tests of threading set their own), and whatever an entry
    point sets for the process is undone after it: no test leaks it to the next."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def compose_toy():
    return lambda *overrides: compose_cfg("toy", overrides)


# ----------------------------------------------------------------------- data files
def write_idx(path: Path, array: np.ndarray) -> None:
    header = struct.pack(">I", 0x0800 + array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def write_fake_mnist(root: Path, n_train: int = 40, n_test: int = 12, seed: int = 1) -> Path:
    """The four MNIST files under ``root/MNIST/raw`` with random images; label k % 10 for image k."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for part, n in (("train", n_train), ("test", n_test)):
        write_idx(raw / FILES[f"{part}_images"], rng.integers(0, 256, size=(n, 28, 28)))
        write_idx(raw / FILES[f"{part}_labels"], np.arange(n) % 10)
    return root


DAYS = 41
STOCKS = [f"S{i:02d}" for i in range(12)] + ["AMZN", "GOOGL"]


def make_csv(folder: Path, days: int = DAYS, gz: bool = True, drop=("S03", 5), name: str = "") -> Path:
    """Random-walk prices for STOCKS over ``days`` business days in the Kaggle file's columns;
    ``drop`` removes one day of one stock (so it is incomplete)."""
    rng = np.random.default_rng(0)
    dates = pd.bdate_range("2014-01-02", periods=days)
    rows = []
    for k, sym in enumerate(STOCKS):
        price = 10.0 * (k + 1) * np.exp(np.cumsum(rng.normal(0, 0.02, days)))
        for d, p in zip(dates, price):
            rows.append((sym, d.strftime("%Y-%m-%d"), p, p * 1.01, p * 0.99, p, 1000))
    df = pd.DataFrame(rows, columns=["symbol", "date", "open", "high", "low", "close", "volume"])
    if drop:
        sym, day = drop
        df = df.drop(df.index[(df.symbol == sym)][day])
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (name or ("prices.csv.gz" if gz else "prices.csv"))
    with (gzip.open(path, "wt") if gz else open(path, "w")) as f:
        df.to_csv(f, index=False)
    return path


def sp500_root(tmp: Path, days: int = DAYS) -> Path:
    """A data root with the S&P file where the loader looks by default (<root>/sp500/sp500_2014_2017.csv.gz)."""
    make_csv(tmp / "data" / "sp500", days=days, name="sp500_2014_2017.csv.gz")
    return tmp / "data"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now (for a server a test starts)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url: str, timeout: float = 10):
    """GET ``url`` and decode its JSON body."""
    import json
    import urllib.request

    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())
