"""Hydra callbacks that run before any job: checks a user can fail in one line."""
from __future__ import annotations

import sys
import uuid
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig


def check_writable(folder: str, key: str) -> None:
    """Exit with status 2 and one line when ``folder`` cannot be created or written. Folders made
    for the test are removed again: a run that stops before its first job leaves nothing behind."""
    path = Path(folder).absolute()
    made = [p for p in [path, *path.parents] if not p.exists()]
    probe = path / f".write-test-{uuid.uuid4().hex}"
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
        for p in made:  # deepest first
            p.rmdir()
    except OSError as err:
        print(f"Error: cannot write the output folder {path} ({err.strerror or err}); "
              f"choose another with {key}=<folder>", file=sys.stderr)
        sys.exit(2)


class CheckOutputFolder(Callback):
    """Hydra creates the run (or sweep) folder before a job starts; check it can, first."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        check_writable(config.hydra.run.dir, "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        check_writable(config.hydra.sweep.dir, "hydra.sweep.dir")
