"""Hydra callback: after a multirun, ``summary.csv`` in the sweep folder, best job first."""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Dict, List

import pandas as pd
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


def collect(sweep_dir: Path) -> pd.DataFrame:
    """One row per job folder under ``sweep_dir``: overrides, results.json metrics, folder."""
    rows: List[Dict[str, Any]] = []
    for overrides_file in sorted(Path(sweep_dir).glob("*/.hydra/overrides.yaml")):
        job_dir = overrides_file.parent.parent
        row: Dict[str, Any] = {"job": job_dir.name}
        for item in OmegaConf.load(overrides_file):
            key, _, value = str(item).partition("=")
            if not key.startswith(("hparams_search", "hydra")):
                row[key.lstrip("+~")] = value
        results_file = job_dir / "results.json"
        if results_file.exists():
            row["status"] = "completed"
            row.update(json.loads(results_file.read_text()))
        else:
            row["status"] = "failed"
            error_file = job_dir / "error.txt"
            row["error"] = error_file.read_text().strip() if error_file.exists() else "no results.json (killed?)"
        row["run_dir"] = str(job_dir)
        rows.append(row)
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    objective = df["objective"].dropna().iloc[0] if "objective" in df and df["objective"].notna().any() else None
    if objective in df:
        ascending = "objective_mode" not in df or df["objective_mode"].dropna().iloc[0] != "max"
        df = df.sort_values(objective, ascending=ascending, na_position="last", kind="stable")
    return df.reset_index(drop=True)


class SweepSummary(Callback):
    """Writes ``<sweep dir>/summary.csv`` and prints the best job (best validation objective)."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        df = collect(sweep_dir)
        if df.empty:
            log.warning("no job folders found in %s; no summary written", sweep_dir)
            return
        path = sweep_dir / "summary.csv"
        df.to_csv(path, index=False)
        done = df[df["status"] == "completed"]
        if done.empty:
            log.warning("no job completed; summary in %s", path)
            return
        best = done.iloc[0]
        objective = best["objective"]
        swept = {k: best[k] for k in df.columns if "." in k and df[k].nunique(dropna=False) > 1}
        test = f"  test_mse={best['test_mse']:.5f}" if "test_mse" in best else ""
        # printed, not logged: this is the answer the user ran the sweep for
        print(
            f"summary of {len(df)} jobs ({len(done)} completed): {path}\n"
            f"best: {swept or 'all jobs equal'}  {objective}={best[objective]:.5f}{test}\n"
            f"      {best['run_dir']}"
        )
