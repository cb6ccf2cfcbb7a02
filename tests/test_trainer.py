"""The one training loop: schedulers, clipping, best checkpoint, divergence."""
import math
from functools import partial

import pandas as pd
import pytest
import torch

from lstm_ae.data.toy import load_toy
from lstm_ae.errors import TrainingDiverged
from lstm_ae.experiment import scheduler_factory
from lstm_ae.model import LSTMAutoencoder
from lstm_ae.tasks import Reconstruct
from lstm_ae.trainer import Trainer
from tests.conftest import compose_cfg


def fit(tmp_path, scheduler="none", epochs=3, lr=1e-2, **trainer_kw):
    cfg = compose_cfg("toy", [f"scheduler={scheduler}", f"trainer.epochs={epochs}", f"optimizer.lr={lr}"])
    splits = load_toy(num_sequences=40, seed=0)
    model = LSTMAutoencoder(1, 4)
    trainer = Trainer(run_dir=tmp_path, epochs=epochs, batch_size=8, progress=False, device="cpu", **trainer_kw)
    result = trainer.fit(model, Reconstruct(), splits, partial(torch.optim.Adam, lr=lr),
                         scheduler_factory(cfg.scheduler))
    return result, pd.read_csv(tmp_path / "metrics.csv"), model


@pytest.mark.parametrize(
    "scheduler,check",
    [
        ("none", lambda lr: all(x == pytest.approx(1e-2) for x in lr)),
        ("cosine", lambda lr: lr[0] == pytest.approx(1e-2) and lr[1] < lr[0] and lr[2] < lr[1]),
        ("step", lambda lr: all(x == pytest.approx(1e-2) for x in lr)),  # step_size 50 > 3 epochs
        ("onecycle", lambda lr: lr[0] == pytest.approx(1e-2 / 25, rel=0.05) and lr[1] > lr[0]),
        ("plateau", lambda lr: all(x <= 1e-2 for x in lr)),
    ],
)
def test_schedulers_drive_the_learning_rate(tmp_path, scheduler, check):
    result, df, _ = fit(tmp_path, scheduler)
    assert list(df["epoch"]) == [1, 2, 3]
    assert check(list(df["lr"])), list(df["lr"])


def test_model_ends_with_best_validation_weights(tmp_path):
    result, df, model = fit(tmp_path, epochs=4)
    best = int(df.loc[df["val_loss"].idxmin(), "epoch"])
    assert result.best_epoch == best
    ckpt = torch.load(tmp_path / "checkpoints" / "best.pt", weights_only=True)
    assert ckpt["epoch"] == best
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, ckpt["model"][k])
    last = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=False)
    assert last["epoch"] == 4 and "optimizer" in last


def test_gradient_clipping_bounds_the_update(tmp_path):
    # With lr=1 and clip 1e-6 the weights barely move; without clipping they move a lot.
    def moved(clip):
        torch.manual_seed(0)
        splits = load_toy(num_sequences=40, seed=0)
        model = LSTMAutoencoder(1, 4)
        before = [p.detach().clone() for p in model.parameters()]
        Trainer(run_dir=tmp_path / str(clip), epochs=1, batch_size=40, grad_clip=clip, progress=False,
                device="cpu", save_checkpoints=False).fit(model, Reconstruct(), splits,
                                                          partial(torch.optim.SGD, lr=1.0))
        return sum((p - b).norm().item() for p, b in zip(model.parameters(), before))

    assert moved(1e-6) < 1e-5 < moved(None)


def test_non_finite_loss_stops_at_once_and_keeps_the_last_good_epoch(tmp_path):
    class NanAtStep(Reconstruct):
        calls = 0

        def losses(self, out, batch):
            parts = super().losses(out, batch)
            if out.reconstruction.requires_grad:  # training steps only
                NanAtStep.calls += 1
                if NanAtStep.calls == 5 + 3:  # epoch 2 (5 steps each), step 3
                    return {**parts, "loss": parts["loss"] * math.nan}
            return parts

    splits = load_toy(num_sequences=40, seed=0)  # 24 training sequences: 5 steps of 5 per epoch
    trainer = Trainer(run_dir=tmp_path, epochs=3, batch_size=5, progress=False, device="cpu")
    model = LSTMAutoencoder(1, 4)
    with pytest.raises(TrainingDiverged, match=r"training \(step 3 of 5\) loss became nan in epoch 2; the last good"
                                               r" epoch's checkpoint is .*last.pt.*optimizer.lr"):
        trainer.fit(model, NanAtStep(), splits, partial(torch.optim.Adam, lr=1e-3))
    assert all(torch.isfinite(p).all() for p in model.parameters())  # the bad step was never applied
    assert list(pd.read_csv(tmp_path / "metrics.csv")["epoch"]) == [1]
    assert torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=False)["epoch"] == 1


def test_bf16_precision_trains_and_keeps_metrics_fp32(tmp_path):
    result, df, _ = fit(tmp_path, precision="bf16", epochs=2)
    assert df["val_mse"].dtype == float and (df["val_mse"] > 0).all()


def test_sharded_step_gives_the_gradients_and_metrics_of_the_whole_batch():
    from concurrent.futures import ThreadPoolExecutor

    from lstm_ae.data import Split
    from lstm_ae.tasks import Classify

    torch.manual_seed(0)
    model = LSTMAutoencoder(3, 6, num_classes=4)
    batch = Split(torch.rand(7, 5, 3), torch.randint(0, 4, (7,)))  # 7 = 3 + 2 + 2: uneven shards
    task = Classify(recon_weight=2.0)
    whole = Trainer("unused", progress=False, device="cpu", num_threads=2)
    parts1 = whole._forward_backward(model, task, batch)
    grads1 = [p.grad.clone() for p in model.parameters()]
    model.zero_grad(set_to_none=True)
    with ThreadPoolExecutor(3) as pool:
        parts3 = whole._forward_backward(model, task, batch, pool, 3)
    assert torch.get_num_threads() == 2  # the shards' one-thread setting does not leak
    for p, g in zip(model.parameters(), grads1):
        torch.testing.assert_close(p.grad, g, rtol=1e-5, atol=1e-6)
    assert parts3.keys() == parts1.keys()
    for k in parts1:
        torch.testing.assert_close(parts3[k], parts1[k].detach(), rtol=1e-5, atol=1e-6)


def test_sharded_training_matches_and_repeats_exactly(tmp_path):
    def train(shards, name):
        torch.manual_seed(0)
        splits = load_toy(num_sequences=43, seed=0)  # 25 training sequences: the last batch has 1
        model = LSTMAutoencoder(1, 4)
        trainer = Trainer(tmp_path / name, epochs=2, batch_size=8, progress=False, device="cpu", shards=shards)
        result = trainer.fit(model, Reconstruct(), splits, partial(torch.optim.SGD, lr=0.5))
        return model.state_dict(), [row["train_loss"] for row in result.history]

    (w1, loss1), (w2, loss2), (w2b, loss2b) = train(1, "a"), train(2, "b"), train(2, "c")
    assert loss2 == pytest.approx(loss1, rel=1e-5)
    assert loss2b == loss2
    for k in w1:
        torch.testing.assert_close(w2[k], w1[k], rtol=1e-4, atol=1e-6)
        assert torch.equal(w2b[k], w2[k]), k  # gradients summed in a fixed order: bitwise repeatable


def test_auto_shards_only_for_long_sequences_on_cpu_and_validated():
    from lstm_ae.config import validate

    assert Trainer("unused", progress=False, device="cpu", shards=3).shards == 3
    auto = Trainer("unused", progress=False, device="cpu", num_threads=2)
    assert auto.shards is None
    assert auto.auto_shards(784) == 2 and auto.auto_shards(50) == 1 and auto.auto_shards(28) == 1
    assert Trainer("unused", progress=False, device="cpu", num_threads=1).auto_shards(784) == 1
    cfg = compose_cfg("toy", ["trainer.shards=0"])
    with pytest.raises(Exception, match="trainer.shards must be a positive integer"):
        validate(cfg)
