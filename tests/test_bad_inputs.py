"""A catalogue of user mistakes: each gets one clear error, a non-zero exit, no half-written artefact.

Add a case in one line to CASES: (id, script, arguments, expected message (regex), setup).
``setup(tmp)`` may create bad files and returns extra arguments; ``{root}``, ``{csv}`` and ``{tmp}``
in the arguments are filled in. Every case runs the real entry script's main() with its command line
(in this process: conftest.run_in_process; the scripts' start-up is tested in test_toy_run.py).
"""
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from lstm_ae.callbacks import check_ray_address
from lstm_ae.data.mnist import FILES
from tests.conftest import HAS_CUDA, ROOT, run_in_process, sp500_root, write_fake_mnist

TOY = ["trainer.epochs=1", "dataset.num_sequences=30", "model.hidden_size=4", "model.decoder_clock=null"]


def mnist_root(tmp, drop=None, truncate=None):
    raw = write_fake_mnist(tmp / "data", n_train=20, n_test=10) / "MNIST" / "raw"
    if drop:
        (raw / FILES[drop]).unlink()
    if truncate:
        data = (raw / FILES[truncate]).read_bytes()
        (raw / FILES[truncate]).write_bytes(data[: len(data) // 2])
    return tmp / "data"


def csv_text(tmp, text):
    path = tmp / "data" / "sp500" / "sp500_2014_2017.csv"
    path.parent.mkdir(parents=True)
    path.write_text(text)
    return tmp / "data"


good_csv = sp500_root


def checkpoint(tmp, content=b"garbage"):
    (tmp / "old" / "checkpoints").mkdir(parents=True)
    (tmp / "old" / "checkpoints" / "last.pt").write_bytes(content)
    return []


HEADER = "symbol,date,open,high,low,close,volume\n"
CASES = [
    # --- data
    ("missing data root", "lstm_ae_mnist.py", ["dataset.root={tmp}/nowhere"], r"MNIST file .* not found.*dataset.download=true", None),
    ("missing MNIST file", "lstm_ae_mnist.py", ["dataset.root={root}"], r"t10k-labels-idx1-ubyte.gz", lambda t: mnist_root(t, drop="test_labels")),
    ("truncated MNIST gz", "lstm_ae_mnist.py", ["dataset.root={root}"], r"train-images-idx3-ubyte.gz.*(corrupt|truncated)", lambda t: mnist_root(t, truncate="train_images")),
    ("CSV missing a column", "lstm_ae_snp500.py", ["dataset.root={root}"], r"lacks the column\(s\) volume", lambda t: csv_text(t, "symbol,date,open,high,low,close\nA,2014-01-02,1,2,1,1\n")),
    ("CSV with non-numeric prices", "lstm_ae_snp500.py", ["dataset.root={root}"], r"non-numeric high 'abc' at line 2", lambda t: csv_text(t, HEADER + "A,2014-01-02,1,abc,1,1,5\n")),
    ("empty CSV", "lstm_ae_snp500.py", ["dataset.root={root}"], r"is empty", lambda t: csv_text(t, "")),
    ("CSV with a bad date", "lstm_ae_snp500.py", ["dataset.root={root}"], r"bad date '02/01/2014'", lambda t: csv_text(t, HEADER + "A,02/01/2014,1,2,1,1,5\n")),
    ("missing S&P file", "lstm_ae_snp500.py", ["dataset.root={tmp}/nowhere"], r"S&P 500 file not found.*dataset.path", None),
    ("unknown stock symbol", "lstm_ae_snp500.py", ["dataset.root={root}", "dataset.plot_symbols=[AMZN,XYZQ]"], r"symbol\(s\) XYZQ not in the price file.*dataset.plot_symbols", good_csv),
    ("sequence longer than the data", "lstm_ae_snp500.py", ["dataset.root={root}", "dataset.seq_len=500"], r"dataset.seq_len=500 is longer than the data", good_csv),
    ("folds < 2", "lstm_ae_snp500.py", ["dataset.root={root}", "task.folds=1"], r"task.folds must be an integer >= 2", good_csv),
    ("more folds than stocks", "lstm_ae_snp500.py", ["dataset.root={root}", "dataset.seq_len=10", "task.folds=50"], r"task.folds=50 needs 2 <= folds <= 10", good_csv),
    ("unknown price column", "lstm_ae_snp500.py", ["dataset.root={root}", "dataset.price=volume"], r"Invalid value 'volume', expected one of \[open, high, low, close\]", good_csv),
    ("prediction without next-step targets", "lstm_ae_toy.py", ["task=predict"], r"task=predict needs next-step targets, which dataset=toy does not have", None),
    ("classification without labels", "lstm_ae_toy.py", ["task=classify"], r"task=classify needs class labels, which dataset=toy does not have", None),
    ("cross-validation without groups", "lstm_ae_toy.py", ["task.folds=3"], r"task.folds \(cross-validation\) needs a dataset with groups", None),
    # --- config
    ("unknown config key", "lstm_ae_toy.py", ["model.hiden_size=3"], r"model.hiden_size: no such key; did you mean model.hidden_size\?", None),
    ("unknown config group option", "lstm_ae_toy.py", ["optimizer=adamm"], r"optimizer=adamm: no such option; did you mean optimizer=adam\?", None),
    ("wrong value type", "lstm_ae_toy.py", ["trainer.epochs=many"], r"Value 'many' of type 'str' could not be converted to Integer", None),
    ("hidden_size 0", "lstm_ae_toy.py", ["model.hidden_size=0"], r"model.hidden_size must be a positive integer; got 0", None),
    ("negative learning rate", "lstm_ae_toy.py", ["optimizer.lr=-0.1"], r"optimizer.lr must be a positive number; got -0.1", None),
    ("batch_size 0", "lstm_ae_toy.py", ["trainer.batch_size=0"], r"trainer.batch_size must be a positive integer; got 0", None),
    ("epochs 0", "lstm_ae_toy.py", ["trainer.epochs=0"], r"trainer.epochs must be a positive integer; got 0", None),
    ("negative grad_clip", "lstm_ae_toy.py", ["trainer.grad_clip=-1"], r"trainer.grad_clip must be a positive number, or null", None),
    ("input_size that does not match the data", "lstm_ae_toy.py", ["model.input_size=3"], r"model.input_size=3 does not match the data, which has 1", None),
    ("unknown prediction loss", "lstm_ae_snp500.py", ["dataset.root={root}", "task=predict", "task.pred_loss=first"], r"Invalid value 'first', expected one of \[all, last\]", good_csv),
    ("unknown MNIST layout", "lstm_ae_mnist.py", ["dataset.layout=diagonal"], r"Invalid value 'diagonal', expected one of \[row, pixel\]", None),
    ("dip outside the sequence", "lstm_ae_toy.py", ["dataset.dip_max=48"], r"dataset.dip_min/dip_max/dip_half_width must keep the dip inside", None),
    pytest.param("CUDA requested without a GPU", "lstm_ae_toy.py", ["trainer.device=cuda"], r"trainer.device=cuda but no CUDA GPU is visible", None,
                 marks=pytest.mark.skipif(HAS_CUDA, reason="this machine has a CUDA GPU"), id="CUDA requested without a GPU"),
    # --- run folders and checkpoints
    ("resume path that does not exist", "lstm_ae_toy.py", ["trainer.resume={tmp}/no_such_run"], r"trainer.resume=.*no such run folder or checkpoint", None),
    ("corrupt checkpoint", "lstm_ae_toy.py", ["trainer.resume={tmp}/old"], r"checkpoint .*last.pt is not readable", checkpoint),
    ("unwritable output folder", "lstm_ae_toy.py", ["hydra.run.dir={tmp}/a_file/run"], r"cannot write the output folder .*a_file/run", lambda t: (t / "a_file").write_text("x") and []),
]


def listing(root: Path):
    return sorted((str(p.relative_to(root)), p.stat().st_mtime_ns) for p in root.rglob("*")) if root.exists() else []


@pytest.mark.parametrize("name,script,args,message,setup",
                         [c if hasattr(c, "marks") else pytest.param(*c, id=c[0]) for c in CASES])
def test_bad_input(tmp_path, name, script, args, message, setup):
    root = setup(tmp_path) if setup else None
    root = root if isinstance(root, Path) else tmp_path / "data"
    before = listing(root)
    run_dir = tmp_path / "run"
    filled = [a.format(root=root, tmp=tmp_path) for a in args]
    given = {a.split("=")[0] for a in filled}
    defaults = [*(TOY if script == "lstm_ae_toy.py" else ["trainer.epochs=1"]), "trainer.progress=false",
                "trainer.device=cpu", f"hydra.run.dir={run_dir}"]
    proc = run_in_process(script, *[a for a in defaults if a.split("=")[0] not in given], *filled)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-2000:]
    assert re.search(message, out, re.S), out[-2000:]
    assert "Traceback" not in out, out[-3000:]
    assert out.count("[ERROR]") <= 1, out[-2000:]  # our own errors: one logged line
    for artefact in ["results.json", "metrics.csv", "checkpoints"]:
        assert not (run_dir / artefact).exists(), artefact
    assert not list(run_dir.glob("*.png"))
    assert listing(root) == before  # the data root is never written to


@pytest.mark.parametrize("launcher, extra", [("ray_cluster", "ray"), ("slurm", "slurm")])
def test_a_launcher_whose_extra_is_missing_is_one_line(tmp_path, launcher, extra):
    # A fresh interpreter in which the launcher plugins cannot be imported: the stand-in configs are
    # registered at import (lstm_ae.config), so this is what a user without the extra gets.
    hide = "hydra_plugins.hydra_ray_launcher", "hydra_plugins.hydra_submitit_launcher", "ray", "submitit"
    argv = [str(ROOT / "lstm_ae_toy.py"), "-m", f"hydra/launcher={launcher}", *TOY, "model.hidden_size=4,8",
            f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    code = (f"import runpy, sys\nsys.modules.update(dict.fromkeys({hide!r}))\nsys.argv = {argv!r}\n"
            "runpy.run_path(sys.argv[0], run_name='__main__')\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr[-3000:]
    assert lines[0].startswith(f"Error: hydra/launcher={launcher}: its launcher") and f"pip install -e '.[{extra}]'" in lines[0]
    assert not (tmp_path / "sweep").exists()


def test_a_ray_address_without_a_cluster_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path))  # no cluster started from here
    with pytest.raises(SystemExit) as exit_:
        check_ray_address("auto")
    assert exit_.value.code == 2 and "address=auto: no running Ray cluster found" in capsys.readouterr().err
    listening = socket.create_server(("127.0.0.1", 0))
    port = listening.getsockname()[1]
    (tmp_path / "ray").mkdir()
    (tmp_path / "ray" / "ray_current_cluster").write_text(f"127.0.0.1:{port}\n")  # as `ray start` leaves it
    check_ray_address("auto")  # answers: no exit
    check_ray_address(f"ray://127.0.0.1:{port}")
    listening.close()
    for address in ["auto", f"127.0.0.1:{port}"]:
        with pytest.raises(SystemExit) as exit_:
            check_ray_address(address)
        err = capsys.readouterr().err
        assert exit_.value.code == 2 and len(err.strip().splitlines()) == 1, err
        assert f"no Ray cluster answers at 127.0.0.1:{port}" in err and "ray start --head" in err
