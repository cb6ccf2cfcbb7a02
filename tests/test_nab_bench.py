"""bench.nab: NAB's results layout written exactly, causal scores, the report's per-file metrics, bad input."""
import json
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest

from bench import nab, nab_clock

TINY = ["--seq-len", "8", "--hidden", "4", "--epochs", "2", "--batch-size", "16", "--short", "3", "--long", "50",
        "--min-periods", "10", "--baseline-window", "50", "--suppress", "20"]
SETTINGS = nab.Settings(seq_len=8, hidden=4, epochs=2, batch_size=16, short=3, long=50, min_periods=10,
                        baseline_window=50, suppress=20)


def times(n, start="2020-01-01 00:00:00"):
    return pd.date_range(start, periods=n, freq="5min").strftime("%Y-%m-%d %H:%M:%S").to_numpy().copy()


@pytest.fixture
def folder(tmp_path):
    """A NAB-layout folder: a series with a spike in a labelled window, and a clean one whose timestamps
    repeat and go back once (as two of NAB's files do): NAB pairs rows by position, never by time."""
    root = tmp_path / "nabdata"
    (root / "data" / "realThing").mkdir(parents=True)
    (root / "data" / "artificialNone").mkdir(parents=True)
    (root / "labels").mkdir()
    rng = np.random.default_rng(0)
    n = 400
    v = np.sin(np.arange(n) / 6) + 0.05 * rng.normal(size=n)
    v[300:304] += 6.0
    t = times(n)
    pd.DataFrame({"timestamp": t, "value": np.round(v, 6)}).to_csv(root / "data/realThing/spiky.csv", index=False)
    m = 300
    tb = times(m, "2021-03-01 00:00:00")
    tb[100] = tb[99]  # a repeated time
    tb[200], tb[201] = tb[201], tb[200]  # out of order
    w = np.round(np.cos(np.arange(m) / 5) + 0.05 * rng.normal(size=m), 6)
    pd.DataFrame({"timestamp": tb, "value": w}).to_csv(root / "data/artificialNone/clean.csv", index=False)
    windows = {"realThing/spiky.csv": [[t[290] + ".000000", t[320] + ".000000"]], "artificialNone/clean.csv": []}
    (root / "labels" / "combined_windows.json").write_text(json.dumps(windows))
    return root


def test_layout_and_report(folder, tmp_path, capsys):
    out = tmp_path / "results"
    nab.main(["--nab", str(folder), "--out", str(out), "--detector", "tiny1", *TINY])
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.csv"))
    assert written == ["tiny1/artificialNone/tiny1_clean.csv", "tiny1/realThing/tiny1_spiky.csv"]
    for key, result in (("realThing/spiky.csv", "tiny1/realThing/tiny1_spiky.csv"),
                        ("artificialNone/clean.csv", "tiny1/artificialNone/tiny1_clean.csv")):
        data = pd.read_csv(folder / "data" / key, dtype=str)
        got = pd.read_csv(out / result, dtype=str)
        assert list(got.columns) == ["timestamp", "value", "anomaly_score", "label"]
        assert len(got) == len(data)  # every row, probationary rows included, in the input's order
        assert (got["timestamp"] == data["timestamp"]).all() and (got["value"] == data["value"]).all()
        score = got["anomaly_score"].astype(float).to_numpy()
        assert np.isfinite(score).all() and score.min() >= 0 and score.max() <= 1
        assert score[nab.probation(len(data)):].max() > 0  # scored after the probation
        alarms = np.flatnonzero(score >= SETTINGS.suppress_above)  # repeat alarms suppressed: none within 20 rows
        assert (np.diff(alarms) > 20).all() and (score > 0).sum() > len(alarms)
    spiky = pd.read_csv(out / "tiny1/realThing/tiny1_spiky.csv")
    assert spiky["label"].tolist() == [int(290 <= i <= 320) for i in range(400)]
    assert pd.read_csv(out / "tiny1/artificialNone/tiny1_clean.csv")["label"].sum() == 0

    report = json.loads((out / "tiny1.json").read_text())
    files = {f["file"]: f for f in report["files"]}
    assert sorted(files) == ["artificialNone/clean.csv", "realThing/spiky.csv"]
    s = files["realThing/spiky.csv"]
    assert s["probation"] == 60 and s["rows"] == 400
    for who in ("model", "baseline"):
        m = s[who]
        assert m["rows"] == 400 - 60 and m["labelled_rows"] == 31 and m["windows"] == 1
        assert 0 <= m["auc_roc"] <= 1 and 0 <= m["auc_pr"] <= 1
    assert s["model"]["auc_roc"] > 0.6  # the spike is in the window
    c = files["artificialNone/clean.csv"]
    assert c["probation"] == 45 and c["model"]["windows"] == 0 and c["model"]["auc_roc"] is None
    overall = report["overall"]["model"]
    assert overall["files"] == 2 and overall["windows"] == 1 and overall["auc_pr"] == s["model"]["auc_pr"]
    # NAB's score of the results files as written (NAB's scorer reads them): the rows after each probation, pooled
    got = [pd.read_csv(out / f) for f in ("tiny1/realThing/tiny1_spiky.csv", "tiny1/artificialNone/tiny1_clean.csv")]
    scored = np.r_[np.arange(400) >= 60, np.arange(300) >= 45]
    mine = nab.an.nab_scores(np.r_[got[0]["anomaly_score"], got[1]["anomaly_score"]],
                             np.r_[got[0]["label"], got[1]["label"]], scored, np.repeat([0, 1], [400, 300]))
    assert overall["nab_standard"] == mine["nab_standard"] and overall["nab"] == mine["nab"]
    assert overall["nab"]["standard"]["windows"] == 1 and report["overall"]["baseline"]["nab_standard"] is not None
    assert report["settings"]["seq_len"] == 8 and report["settings"]["epochs"] == 2
    assert report["command"].startswith("python -m bench.nab --nab") and report["machine"]
    assert "tiny1" in capsys.readouterr().out


def test_causal(folder, tmp_path):
    """Changing the rows after t leaves every score up to t unchanged (the probation, hence the model, is kept)."""
    key, t = "realThing/spiky.csv", 100
    changed = tmp_path / "changed"
    (changed / "data/realThing").mkdir(parents=True)
    data = pd.read_csv(folder / "data" / key, dtype=str)
    v = data["value"].astype(float).to_numpy().copy()
    v[t + 1 :] = v[t + 1 :] * 3 + 2
    data.assign(value=np.round(v, 6).astype(str)).to_csv(changed / "data" / key, index=False)
    scores = []
    for root, name in ((folder, "a"), (changed, "b")):
        nab.one_file(str(root), key, [], str(tmp_path / name), "d", SETTINGS)
        scores.append(pd.read_csv(tmp_path / name / "d/realThing/d_spiky.csv")["anomaly_score"].to_numpy())
    np.testing.assert_array_equal(scores[0][: t + 1], scores[1][: t + 1])
    assert not np.array_equal(scores[0][t + 1 :], scores[1][t + 1 :])


def test_the_results_carry_the_detectors_alarm_score():
    """bench.nab's suppression is the detector's own (lstm_ae.anomaly.Scoring.suppress), not a copy."""
    assert nab.suppress is nab.an.suppress
    sc = nab.Settings(suppress=20, suppress_above=0.7).scoring()
    assert (sc.suppress, sc.suppress_above) == (20, 0.7)


@pytest.mark.parametrize("args, says", [
    (["--detector", "lstm_ae"], "--detector 'lstm_ae': give letters and digits only"),
    (["--jobs", "0"], "--jobs 0"),
    (["--quantile", "1.5"], "--quantile 1.5"),
    (["--suppress", "-1"], "--suppress -1"),
])
def test_bad_options(folder, tmp_path, capsys, args, says):
    with pytest.raises(SystemExit) as stop:
        nab.main(["--nab", str(folder), "--out", str(tmp_path / "r"), *args])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and says in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_bad_folder(folder, tmp_path, capsys):
    (folder / "labels" / "combined_windows.json").write_text(json.dumps({"realThing/spiky.csv": []}))
    with pytest.raises(SystemExit):
        nab.main(["--nab", str(folder), "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert "has no entry for artificialNone/clean.csv" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(SystemExit):
        nab.main(["--nab", str(tmp_path), "--out", str(tmp_path / "r")])
    assert "no data/<category>/<file>.csv" in capsys.readouterr().err


# ------------------------------------------------------------------ the Hydra job (python -m bench.nab_search)
TINY_CFG = [f"detector.{k}={v}" for k, v in dict(seq_len=8, hidden=4, epochs=2, batch_size=16, short=3, long=50,
                                                   min_periods=10, baseline_window=50, suppress=20).items()]


def search(*args):
    return nab.run_entry(nab.ROOT / "bench" / "nab_search.py", list(args))


def test_search_job_is_a_run_folder(folder, tmp_path):
    """One job: the run-folder contract (manifest, .hydra/, results.json with val_<metric>), NAB's layout in
    it, listed by the runs table; the same command again returns its results without running again; another
    config in the folder is refused in one line."""
    from lstm_ae import runs

    run = tmp_path / "job"
    proc = search(f"nab.path={folder}", *TINY_CFG, f"hydra.run.dir={run}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    man = json.loads((run / "run.json").read_text())
    assert man["end"]["status"] == "finished" and man["task"] == "nab" and man["config"] == "nab"
    assert man["objective"] == "val_nab_standard" and man["objective_mode"] == "max"
    assert "detector.hidden=4" in man["overrides"]
    res = json.loads((run / "results.json").read_text())
    report = json.loads((run / "nab.json").read_text())
    assert res["objective"] == "val_nab_standard" and res["val_f1"] == report["overall"]["model"]["f1"]
    assert res["val_nab_standard"] == report["overall"]["model"]["nab_standard"]
    assert res["baseline_val_nab_reward_low_FP"] == report["overall"]["baseline"]["nab_reward_low_FP"]
    assert res["val_auc_pr"] == report["overall"]["model"]["auc_pr"] and res["files"] == 2
    assert res["baseline_val_f1"] == report["overall"]["baseline"]["f1"]
    assert report["settings"]["hidden"] == 4 and report["settings"]["seq_len"] == 8
    assert sorted(p.relative_to(run / "results").as_posix() for p in (run / "results").rglob("*.csv")) == [
        "lstmae/artificialNone/lstmae_clean.csv", "lstmae/realThing/lstmae_spiky.csv"]
    assert (run / ".hydra" / "config.yaml").is_file()
    [row] = runs.collect([run]).rows
    assert row["status"] == "finished" and row["task"] == "nab" and row["best_val"] == res["val_nab_standard"]

    stamp = (run / "results.json").stat().st_mtime_ns
    again = search(f"nab.path={folder}", *TINY_CFG, f"hydra.run.dir={run}")
    assert again.returncode == 0 and (run / "results.json").stat().st_mtime_ns == stamp  # not run again

    other = search(f"nab.path={folder}", *TINY_CFG, "detector.hidden=5", f"hydra.run.dir={run}")
    said = other.stdout + other.stderr
    assert other.returncode == 2 and "holds another run" in said and "Traceback" not in said
    assert json.loads((run / "results.json").read_text()) == res


@pytest.mark.parametrize("override, says", [
    ("detector.error=squared", "detector.error squared: give one of error, window_error"),
    ("detector.quantile=2.0", "detector.quantile"),
    ("nab.objective=accuracy", "nab.objective=accuracy: give one of f1"),
    ("detector.long=5", "detector.min_periods 50 is above detector.long 5"),
    ("detector.hiden=3", "detector.hiden: no such key; did you mean detector.hidden?"),
    ("nab.jobs=0", "nab.jobs=0: give a whole number >= 1"),
    ("nab.detector=lstm_ae", "nab.detector='lstm_ae': give letters and digits only"),
    ("nab.path=/nonexistent_nab", "nab.path /nonexistent_nab: no data/<category>/<file>.csv in it"),
])
def test_search_job_refuses_bad_values(folder, tmp_path, override, says):
    proc = search(f"nab.path={folder}", override, f"hydra.run.dir={tmp_path / 'job'}")
    said = proc.stdout + proc.stderr
    assert proc.returncode == 2 and says in said and len(said.strip().splitlines()) == 1, said
    assert not (tmp_path / "job" / "results.json").exists()


def test_the_search_composes_over_real_keys():
    """hparams_search=nab_optuna: an Optuna study that maximises val_nab_standard over keys the job's schema has."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    nab.register()
    with initialize_config_dir(str(nab.ROOT / "conf"), version_base="1.3"):
        cfg = compose("nab", overrides=["hparams_search=nab_optuna"], return_hydra_config=True)
    sweeper = cfg.hydra.sweeper
    assert sweeper.direction == "maximize" and sweeper.storage.endswith("multirun/nab/nab_optuna.db")
    params = OmegaConf.to_container(sweeper.params)
    assert params and all(k.startswith("detector.") and k[9:] in cfg.detector for k in params)
    assert cfg.nab.objective == "nab_standard" and cfg.detector.hidden == nab.Settings.hidden
    [first] = OmegaConf.to_container(sweeper.enqueue, resolve=True)  # the first trial: the composed defaults
    assert first == {k: getattr(nab.Settings(), k[9:]) for k in params}


def test_the_clocks_corpus_has_the_shape_of_the_one_it_copies(folder, tmp_path):
    """bench.nab_clock: the synthetic corpus has the file names and row counts of the folder (or git clone) it
    copies, NAB's layout, one labelled window per file, and none of the copied values."""
    lengths = nab_clock.lengths_of_folder(folder)
    assert lengths == {"artificialNone/clean.csv": 300, "realThing/spiky.csv": 400}
    copy = nab_clock.synthetic(lengths, tmp_path / "copy")
    windows = nab.check_layout(copy)
    assert nab_clock.lengths_of_folder(copy) == lengths and all(len(w) == 1 for w in windows.values())
    spiky = pd.read_csv(copy / "data/realThing/spiky.csv")
    assert not np.isin(spiky["value"], pd.read_csv(folder / "data/realThing/spiky.csv")["value"]).any()
    git = tmp_path / "clone"
    for args in (["init", "-q", str(git)], ["-C", str(git), "config", "user.email", "t@t"],
                 ["-C", str(git), "config", "user.name", "t"]):
        subprocess.run(["git", *args], check=True)
    shutil.copytree(folder / "data", git / "data", dirs_exist_ok=True)
    subprocess.run(["git", "-C", str(git), "add", "data"], check=True)
    subprocess.run(["git", "-C", str(git), "commit", "-qm", "data"], check=True)
    assert nab_clock.lengths_of_git(git / ".git") == lengths
    with pytest.raises(nab.DataError, match="^--like .*: no data/<category>/<file>.csv in it"):
        nab_clock.lengths_of_folder(tmp_path / "nothing")
    with pytest.raises(nab.DataError, match="no data/<category>/<file>.csv at HEAD"):
        subprocess.run(["git", "-C", str(git), "rm", "-rq", "data"], check=True)
        subprocess.run(["git", "-C", str(git), "commit", "-qm", "gone"], check=True)
        nab_clock.lengths_of_git(git / ".git")
