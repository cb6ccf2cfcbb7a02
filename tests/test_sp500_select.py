"""bench.sp500_select: settings are chosen on the validation stocks; the test stocks enter nothing."""
import json

import pytest

from bench import sp500_select
from lstm_ae.data.sp500 import load_sp500
from tests.conftest import CPU, make_csv


def stocks(split, splits):
    return {splits.group_names[g] for g in split.group.tolist()}


def test_the_validation_stocks_stand_in_for_the_test_stocks(tmp_path):
    csv = str(make_csv(tmp_path))
    normal = load_sp500(path=csv, seq_len=10)
    with sp500_select.validation_as_test():
        chosen = load_sp500(path=csv, seq_len=10)
    held_out = stocks(normal.test, normal)
    assert stocks(chosen.test, chosen) == stocks(normal.val, normal) == stocks(chosen.val, chosen)
    assert stocks(chosen.train, chosen) == stocks(normal.train, normal)
    assert not held_out & (stocks(chosen.train, chosen) | stocks(chosen.test, chosen) | set(chosen.series_names))
    assert stocks(load_sp500(path=csv, seq_len=10).test, normal) == held_out  # undone afterwards


def test_a_selection_run_appends_its_ratios(tmp_path):
    csv = make_csv(tmp_path)
    out = tmp_path / "select.json"
    common = [f"dataset.path={csv}", *CPU, "task=predict", "trainer.epochs=1", "model.hidden_size=8",
              "dataset.seq_len=10", "dataset.plot_symbols=[]"]
    with pytest.raises(SystemExit, match="task.folds=null"):
        sp500_select.select("cv", common, out)
    first = sp500_select.select("a", [*common, "task.folds=null"], out)
    sp500_select.select("b", [*common, "task.folds=null", "dataset.extra_prices=[close]"], out)
    records = json.loads(out.read_text())
    assert [r["name"] for r in records] == ["a", "b"] and records[0] == first
    usd = first["usd2"]
    assert first["ratios"]["onestep_vs_persistence"] == pytest.approx(
        usd["test_onestep_mse_usd"] / usd["baseline_test_onestep_mse_usd"])
    assert first["scored_on"] == "validation stocks" and first["overrides"][-1] == "task.folds=null"
