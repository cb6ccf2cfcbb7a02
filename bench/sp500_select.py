"""Choose S&P forecasting settings on the validation stocks; the test stocks are never read.

    python -m bench.sp500_select ohlc task=predict task.pred_loss=last dataset.stride=1 \
        trainer.epochs=4 task.folds=null "dataset.extra_prices=[open,low,close]"
    python -m bench.sp500_select --out bench/results/other.json NAME OVERRIDE ...

It composes ``conf/snp500.yaml`` with the overrides and trains as ``lstm_ae_snp500.py`` would
(use ``task.folds=null``), but the split's "test" part is the **validation stocks**: the model
is trained on the training stocks, its best epoch chosen on the validation stocks, and its
forecasts (one step and multi step over the second halves of their blocks) scored on them against
persistence and the linear AR, which is fitted on the training stocks as always. The held-out
test stocks enter nothing, so a setting chosen here can be read on the test stocks once, with
the command without ``bench.sp500_select``. Each run appends its ratios to the JSON (``--out``).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import tempfile
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

from hydra import compose, initialize_config_dir

import lstm_ae.data.sp500 as sp500
from lstm_ae.experiment import train_and_test

CONF = Path(__file__).resolve().parents[1] / "conf"
OUT = Path(__file__).resolve().parent / "results" / "sp500_select.json"


@contextlib.contextmanager
def validation_as_test() -> Iterator[None]:
    """While active, :func:`lstm_ae.data.sp500.load_sp500` returns the validation stocks as the test
    part too (and the held-out test stocks nowhere)."""
    split = sp500.split_stocks

    def without_test(*args: Any, **kwargs: Any) -> Dict[str, List[str]]:
        parts = split(*args, **kwargs)
        return {"train": parts["train"], "val": parts["val"], "test": parts["val"]}

    sp500.split_stocks = without_test
    try:
        yield
    finally:
        sp500.split_stocks = split


def ratios(results: Dict[str, Any]) -> Dict[str, float]:
    """The model's forecast errors (USD^2, validation stocks) relative to the baselines."""
    model1, model_n = results["test_onestep_mse_usd"], results["test_multistep_mse_usd"]
    return {
        "onestep_vs_persistence": model1 / results["baseline_test_onestep_mse_usd"],
        "onestep_vs_ar": model1 / results["baseline_test_ar_onestep_mse_usd"],
        "multistep_vs_flat": model_n / results["baseline_test_multistep_mse_usd"],
        "multistep_vs_ar": model_n / results["baseline_test_ar_multistep_mse_usd"],
    }


def select(name: str, overrides: List[str], out: Path = OUT, run_dir: Optional[Path] = None) -> Dict[str, Any]:
    """Train with ``overrides``, score on the validation stocks, append the record to ``out``."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("snp500", overrides=overrides)
    if cfg.task.get("folds") is not None:
        raise SystemExit("bench.sp500_select needs one train/validation split: add task.folds=null")
    with validation_as_test(), tempfile.TemporaryDirectory() as tmp:
        results = train_and_test(cfg, run_dir or Path(tmp))
    usd2 = {k: results[k] for k in sorted(results) if k.endswith(("onestep_mse_usd", "multistep_mse_usd"))}
    record = {"name": name, "overrides": overrides, "scored_on": "validation stocks", "ratios": ratios(results), "usd2": usd2,
              "train_seconds": results.get("train_seconds"), "best_epoch": results.get("best_epoch")}
    records = json.loads(out.read_text()) if out.exists() else []
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps([*records, record], indent=2) + "\n")
    return record


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("name", help="a label for this setting in the JSON")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of conf/snp500.yaml")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    record = select(args.name, args.overrides, args.out)
    print(json.dumps({"name": record["name"], **{k: round(v, 4) for k, v in record["ratios"].items()}}))


if __name__ == "__main__":
    main()
