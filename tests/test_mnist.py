"""MNIST loading from gzipped IDX files (tiny fake ones), the classify task, and compare."""
import json
import stat

import numpy as np
import pandas as pd
import pytest
import torch

from lstm_ae.compare import compare
from lstm_ae.config import validate
from lstm_ae.data.mnist import FILES, load_mnist, random_shift
from lstm_ae.errors import ConfigError, DataError
from lstm_ae.experiment import train_and_test
from tests.conftest import CPU, SHARED_DATA, compose_cfg, write_fake_mnist, write_idx

pytestmark = pytest.mark.xdist_group("mnist_run")  # its one run stays on one worker

N_TRAIN, N_TEST = 40, 12


@pytest.fixture
def fake_root(tmp_path):
    """A read-only data root with tiny MNIST files: image k is filled with value 10*label."""
    raw = tmp_path / "root" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for part, n in (("train", N_TRAIN), ("test", N_TEST)):
        labels = np.arange(n) % 10
        images = rng.integers(0, 256, size=(n, 28, 28))
        images[:, 0, 0] = 255  # the max value, so scaling to [0, 1] is checkable
        images[:, 0, 1] = 0
        write_idx(raw / FILES[f"{part}_images"], images)
        write_idx(raw / FILES[f"{part}_labels"], labels)
    for path in [raw, raw.parent, raw.parent.parent]:
        path.chmod(stat.S_IRUSR | stat.S_IXUSR)
    yield tmp_path / "root"
    for path in [raw.parent.parent, raw.parent, raw]:
        path.chmod(stat.S_IRWXU)


def listing(root):
    return sorted((p.relative_to(root), p.stat().st_mtime) for p in root.rglob("*"))


@pytest.mark.parametrize("layout,shape", [("row", (28, 28)), ("pixel", (784, 1))])
def test_loader_layouts_range_and_splits(fake_root, layout, shape):
    before = listing(fake_root)
    splits = load_mnist(root=str(fake_root), layout=layout, val_size=8, seed=0)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (N_TRAIN - 8, 8, N_TEST)
    for split in (splits.train, splits.val, splits.test):
        assert split.x.shape[1:] == shape and split.x.dtype == torch.float32
        assert split.x.min() == 0.0 and split.x.max() == 1.0
        assert split.labels.dtype == torch.int64 and split.next_value is None
    # train and val are a partition of the 40 training images
    rows = torch.cat([splits.train.x, splits.val.x]).reshape(N_TRAIN, -1)
    assert torch.unique(rows, dim=0).shape[0] == N_TRAIN
    assert splits.num_classes == 10 and splits.image_shape == (28, 28)
    assert listing(fake_root) == before  # nothing written into the (read-only) root


def test_row_and_pixel_layouts_hold_the_same_pixels(fake_root):
    row = load_mnist(root=str(fake_root), layout="row", val_size=8)
    pixel = load_mnist(root=str(fake_root), layout="pixel", val_size=8)
    torch.testing.assert_close(row.test.x.reshape(N_TEST, -1), pixel.test.x.reshape(N_TEST, -1))


def test_validation_split_is_seeded(fake_root):
    a = load_mnist(root=str(fake_root), val_size=8, seed=1)
    b = load_mnist(root=str(fake_root), val_size=8, seed=1)
    c = load_mnist(root=str(fake_root), val_size=8, seed=2)
    assert torch.equal(a.val.x, b.val.x) and not torch.equal(a.val.x, c.val.x)


def test_random_shift_moves_each_image_by_its_own_offset():
    x = torch.zeros(64, 28, 28)
    x[:, 14, 14] = 1.0  # one lit pixel in the middle of each image
    y = random_shift(x, torch.Generator().manual_seed(0), max_shift=2, image_shape=(28, 28))
    pos = y.reshape(64, -1).argmax(1)
    dy, dx = pos // 28 - 14, pos % 28 - 14
    assert torch.equal(y.sum(dim=(1, 2)), torch.ones(64))  # moved, not lost
    assert dy.abs().max() == 2 and dx.abs().max() == 2
    assert len(set(zip(dy.tolist(), dx.tolist()))) > 10  # each image its own of the 25 offsets
    # the pixel layout gets the same moves from the same draw
    pixel = random_shift(x.reshape(64, 784, 1), torch.Generator().manual_seed(0), 2, (28, 28))
    assert torch.equal(pixel, y.reshape(64, 784, 1))
    # vacated pixels are 0: a white image keeps all its pixels only where the offset is (0, 0)
    white = random_shift(torch.ones(64, 28, 28), torch.Generator().manual_seed(0), 2, (28, 28))
    assert torch.equal(white.sum(dim=(1, 2)) == 28 * 28, (dy == 0) & (dx == 0))


def test_shift_is_the_loaders_training_augmentation(fake_root):
    assert load_mnist(root=str(fake_root), val_size=8).augment is None
    splits = load_mnist(root=str(fake_root), val_size=8, shift=3)
    moved = splits.augment(splits.train.x, torch.Generator().manual_seed(0))
    assert moved.shape == splits.train.x.shape and not torch.equal(moved, splits.train.x)
    with pytest.raises(ConfigError, match=r"dataset\.shift"):
        validate(compose_cfg("mnist", ["dataset.shift=14"]))


def test_missing_file_names_it_and_the_fix(tmp_path):
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte.gz not found.*dataset.root.*LSTM_AE_DATA"):
        load_mnist(root=str(tmp_path))


@pytest.mark.parametrize("damage", ["truncate", "garbage", "magic"])
def test_corrupt_file_gives_one_clear_error(tmp_path, damage):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for part, n in (("train", N_TRAIN), ("test", N_TEST)):
        write_idx(raw / FILES[f"{part}_images"], np.zeros((n, 28, 28)))
        write_idx(raw / FILES[f"{part}_labels"], np.zeros(n))
    target = raw / FILES["train_images"]
    data = target.read_bytes()
    if damage == "truncate":
        target.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        target.write_bytes(b"not a gzip file at all")
    else:
        write_idx(target, np.zeros((N_TRAIN, 28)))  # an idx2 file where idx3 is expected
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte.gz is corrupt"):
        load_mnist(root=str(tmp_path), val_size=8)


def test_val_size_must_leave_training_images(fake_root):
    with pytest.raises(ConfigError, match=f"dataset.val_size must be below {N_TRAIN}"):
        load_mnist(root=str(fake_root), val_size=N_TRAIN)


@pytest.fixture(scope="session")  # made once, also when xdist interleaves other tests
def classify_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("mnist")
    write_fake_mnist(base / "root")
    cfg = compose_cfg("mnist", ["task=classify", f"dataset.root={base / 'root'}", "dataset.val_size=8",
                                "model.hidden_size=8", "trainer.epochs=2", "trainer.batch_size=16", *CPU])
    train_and_test(cfg, base / "run")
    return base / "run"


def test_classify_run_writes_every_artefact(classify_run):
    for name in ("metrics.csv", "results.json", "checkpoints/best.pt", "loss.png", "accuracy.png",
                 "reconstructions.png"):
        assert (classify_run / name).is_file(), name
    res = json.loads((classify_run / "results.json").read_text())
    for key in ("test_accuracy", "test_mse", "val_accuracy", "baseline_test_accuracy"):
        assert 0 <= res[key] <= 1
    assert res["objective"] == "val_accuracy" and res["objective_mode"] == "max"
    df = pd.read_csv(classify_run / "metrics.csv")
    assert {"train_accuracy", "val_accuracy", "train_ce", "val_mse"} <= set(df.columns)
    assert res["val_accuracy"] == df["val_accuracy"][res["best_epoch"] - 1]


def test_compare_two_runs(classify_run, tmp_path):
    written = compare([classify_run, classify_run], ["row", "pixel"], tmp_path)
    names = {p.name for p in written}
    assert names == {"compare_loss.png", "compare_mse.png", "compare_accuracy.png", "compare.csv"}
    table = pd.read_csv(tmp_path / "compare.csv")
    assert list(table["run"]) == ["row", "pixel"] and "test_accuracy" in table


@pytest.mark.skipif(not (SHARED_DATA / "MNIST" / "raw").is_dir(), reason="../shared/data not present")
def test_real_mnist_counts():
    splits = load_mnist(root=str(SHARED_DATA), layout="row", val_size=5000)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (55_000, 5_000, 10_000)
    assert torch.bincount(splits.test.labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert splits.test.labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
