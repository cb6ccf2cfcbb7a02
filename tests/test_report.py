"""python -m lstm_ae.reproduce --budget smoke runs every experiment; python -m lstm_ae.report builds the report."""
import re

import pytest

from lstm_ae import report, reproduce
from tests.conftest import sp500_root, write_fake_mnist

pytestmark = pytest.mark.xdist_group("reproduce_smoke")  # its one run stays on one worker


@pytest.fixture(scope="session")  # made once, also when xdist interleaves other tests
def smoke(tmp_path_factory):
    """A fake data root (MNIST and S&P with the real file layout) and one smoke run of the whole chain."""
    tmp = tmp_path_factory.mktemp("reproduce")
    write_fake_mnist(tmp / "data", n_train=400, n_test=100)
    sp500_root(tmp, days=130)
    status = reproduce.reproduce("smoke", tmp / "runs", data=str(tmp / "data"), overrides=["trainer.device=cpu"])
    return tmp, status


def test_smoke_budget_runs_every_experiment(smoke, capsys):
    tmp, status = smoke
    assert set(status) == {e.name for e in reproduce.EXPERIMENTS}
    assert all(s["status"] == "done" for s in status.values()), status
    again = reproduce.reproduce("smoke", tmp / "runs", data=str(tmp / "data"))  # complete runs are skipped
    assert all(s["status"] == "done before" for s in again.values())
    assert "already complete" in capsys.readouterr().out
    import pandas as pd

    ledger = pd.read_csv(tmp / "runs" / "smoke" / "reproduce.csv")  # the skipped call kept the first timings
    assert list(ledger["experiment"]) == [e.name for e in reproduce.EXPERIMENTS]
    assert (ledger["status"] == "done").all() and (ledger["wall_seconds"] > 0).all()
    assert (ledger["cpus"] >= 1).all() and ledger["torch"].str.startswith("2.").all()


def test_report_has_every_section_and_figure(smoke):
    tmp, _ = smoke
    paths = report.build(tmp / "runs" / "smoke", tmp / "report")
    md, page = paths["md"].read_text(), paths["html"].read_text()
    for exp in reproduce.EXPERIMENTS:
        assert f"## {exp.title}" in md
        for figure, _ in report.FIGURES[exp.name]:
            assert f"figures/{exp.name}_{figure}" in md
            assert (tmp / "report" / "figures" / f"{exp.name}_{figure}").is_file()
    for needle in ["## Budget and wall time", "| total |", "## Summary", "| mnist_row_classify | test accuracy |",
                   "| toy_grid | test MSE of the best of", "### Architecture", "Classifier: Linear(16 -> 10) on h~_T", "One-step head", "(persistence)",
                   "### Cross-validation folds", "row_vs_pixel_compare_accuracy.png",
                   "| `python lstm_ae_toy.py -m hparams_search=toy_grid` |", "Command: python lstm_ae_toy.py\n",
                   "`python lstm_ae_snp500.py task=predict task.pred_loss=last dataset.stride=1 trainer.epochs=4 "
                   "task.folds=null 'dataset.extra_prices=[open,low,close]'` |"]:
        assert needle in md, needle
    assert "Missing" not in md
    assert page.count("data:image/png;base64,") == md.count("![")  # every figure embedded
    pdf = paths["pdf"].read_bytes()
    pages = len(re.findall(rb"/Type\s*/Page[^s]", pdf))
    assert pdf.startswith(b"%PDF") and pages == md.count("![") + 1  # contents + one page per figure


def test_a_missing_run_is_named_not_a_crash(smoke):
    tmp, _ = smoke
    runs = tmp / "runs" / "smoke"
    paths = report.build(runs, tmp / "report_missing", {"sp500_predict": tmp / "nowhere"})
    md = paths["md"].read_text()
    assert "**Missing:** no complete run of 'sp500_predict'" in md
    assert "python -m lstm_ae.reproduce --only sp500_predict" in md
    assert "## S&P 500: reconstruction with cross-validation" in md  # the rest is still there
