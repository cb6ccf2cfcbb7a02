"""The one training loop: schedulers, clipping, precision, best checkpoint, divergence, shards."""
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from functools import partial

import pandas as pd
import pytest
import torch

from lstm_ae.config import Precision
from lstm_ae.data import Split
from lstm_ae.data.toy import load_toy
from lstm_ae.errors import TrainingDiverged
from lstm_ae.experiment import scheduler_factory
from lstm_ae.model import LSTMAutoencoder
from lstm_ae.tasks import Classify, Reconstruct
from lstm_ae.trainer import AUTO_SHARDS_MIN_STEPS, Trainer
from tests.conftest import compose_cfg, needs_cpu_bf16, needs_cuda, trainer_cfg


def fit(tmp_path, scheduler="none", epochs=3, lr=1e-2, task=None, overrides=(), **trainer_kw):
    cfg = compose_cfg("toy", [f"scheduler={scheduler}", f"trainer.epochs={epochs}", f"optimizer.lr={lr}", *overrides])
    splits = load_toy(num_sequences=40, seed=0)
    torch.manual_seed(0)
    model = LSTMAutoencoder(1, 4)
    trainer = Trainer(tmp_path, trainer_cfg(epochs=epochs, batch_size=8, **trainer_kw))
    result = trainer.fit(model, task or Reconstruct(), splits, partial(torch.optim.Adam, lr=lr),
                         scheduler_factory(cfg.scheduler))
    return result, pd.read_csv(tmp_path / "metrics.csv"), model


class Recording(Reconstruct):
    """Records, for each batch the loss sees, whether it trains and the batch's largest value."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def losses(self, out, batch):
        self.seen.append((out.reconstruction.requires_grad, batch.x.abs().max().item()))
        return super().losses(out, batch)


def test_a_datasets_augment_transforms_training_batches_only(tmp_path):
    splits = load_toy(num_sequences=40, seed=0)
    rows = []

    def augment(x, generator):  # draws from the trainer's seeded generator, like MNIST's shifts
        rows.append(len(x))
        return x * 0 + torch.rand(1, generator=generator) * 1e-3  # training sees near-constant sequences

    task = Recording()
    model = LSTMAutoencoder(1, 4)
    Trainer(tmp_path, trainer_cfg(epochs=2, batch_size=8)).fit(
        model, task, replace(splits, augment=augment), partial(torch.optim.Adam, lr=1e-2))
    assert sum(rows) == 2 * len(splits.train)  # every training sequence, each epoch
    train = [m for grad, m in task.seen if grad]
    evaluation = [m for grad, m in task.seen if not grad]
    assert len(train) == 2 * 3 and max(train) <= 1e-3  # 24 sequences in batches of 8, augmented
    assert evaluation and min(evaluation) > 0.5  # validation reads the data itself


class FlatValidation(Reconstruct):
    """Validation loss never improves after the first epoch (it is constant): plateau schedulers react."""

    def losses(self, out, batch):
        parts = super().losses(out, batch)
        return parts if out.reconstruction.requires_grad else {**parts, "loss": torch.tensor(1.0)}


@pytest.mark.parametrize(
    "scheduler,overrides,task,expected",
    [
        ("none", [], None, [1e-2, 1e-2, 1e-2]),
        ("cosine", [], None, [1e-2, 1e-2 * (1 + math.cos(math.pi / 3)) / 2, 1e-2 * (1 + math.cos(2 * math.pi / 3)) / 2]),
        ("step", ["scheduler.step_size=1", "scheduler.gamma=0.5"], None, [1e-2, 5e-3, 2.5e-3]),
        ("plateau", ["scheduler.patience=0"], FlatValidation(), [1e-2, 1e-2, 5e-3]),  # epoch 2 did not improve
    ],
)
def test_schedulers_drive_the_learning_rate(tmp_path, scheduler, overrides, task, expected):
    _, df, _ = fit(tmp_path, scheduler, task=task, overrides=overrides)
    assert list(df["epoch"]) == [1, 2, 3]
    assert list(df["lr"]) == pytest.approx(expected)


def test_onecycle_warms_up_within_the_epoch(tmp_path):
    _, df, _ = fit(tmp_path, "onecycle")
    lr = list(df["lr"])
    assert lr[0] == pytest.approx(1e-2 / 25, rel=0.05) and lr[1] > lr[0]  # stepped per batch, from max_lr / 25


def test_model_ends_with_best_validation_weights(tmp_path):
    result, df, model = fit(tmp_path, epochs=4)
    best = int(df.loc[df["val_loss"].idxmin(), "epoch"])
    assert result.best_epoch == best
    ckpt = torch.load(tmp_path / "checkpoints" / "best.pt", weights_only=True)
    assert ckpt["epoch"] == best
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, ckpt["model"][k])
    last = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=False)
    assert last["epoch"] == 4 and "optimizer" in last and last["finished"]
    assert last["rng"]["cuda"] is None  # a CPU run never touches CUDA, even where there is a GPU


def test_gradient_clipping_bounds_the_update(tmp_path):
    # With lr=1 and clip 1e-6 the weights barely move; without clipping they move a lot.
    def moved(clip):
        torch.manual_seed(0)
        splits = load_toy(num_sequences=40, seed=0)
        model = LSTMAutoencoder(1, 4)
        before = [p.detach().clone() for p in model.parameters()]
        trainer = Trainer(tmp_path / str(clip), trainer_cfg(epochs=1, batch_size=40, grad_clip=clip, save_checkpoints=False))
        trainer.fit(model, Reconstruct(), splits, partial(torch.optim.SGD, lr=1.0))
        return sum((p - b).norm().item() for p, b in zip(model.parameters(), before))

    assert moved(1e-6) < 1e-5 < moved(None)


def test_metrics_record_the_share_of_clipped_steps_and_the_gradient_norm(tmp_path):
    # 40 sequences in batches of 8: 5 steps per epoch. The pre-clip norms of a fresh model are
    # around 0.1: a threshold of 1e-6 clips every step, 1e6 none; null logs neither column.
    def fit_clip(clip):
        return fit(tmp_path / str(clip), epochs=2, grad_clip=clip, save_checkpoints=False)[1]

    always, never, off = fit_clip(1e-6), fit_clip(1e6), fit_clip(None)
    assert always["train_clip_fraction"].tolist() == [1.0, 1.0]
    assert never["train_clip_fraction"].tolist() == [0.0, 0.0]
    assert (never["train_grad_norm"] > 1e-6).all() and (never["train_grad_norm"] < 1e6).all()
    assert "train_clip_fraction" not in off and "train_grad_norm" not in off
    # the epoch's mean norm as the threshold clips some of its steps, not all
    middle = fit_clip(float(never["train_grad_norm"].iloc[0]))
    assert 0.0 < middle["train_clip_fraction"].iloc[0] < 1.0


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
    trainer = Trainer(tmp_path, trainer_cfg(epochs=3, batch_size=5))
    model = LSTMAutoencoder(1, 4)
    with pytest.raises(TrainingDiverged, match=r"training \(step 3 of 5\) loss became nan in epoch 2; the last good"
                                               r" epoch's checkpoint is .*last.pt.*optimizer.lr"):
        trainer.fit(model, NanAtStep(), splits, partial(torch.optim.Adam, lr=1e-3))
    assert all(torch.isfinite(p).all() for p in model.parameters())  # the bad step was never applied
    assert list(pd.read_csv(tmp_path / "metrics.csv")["epoch"]) == [1]
    assert torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=False)["epoch"] == 1


@pytest.mark.parametrize("precision,inside", [pytest.param("bf16", torch.bfloat16, marks=needs_cpu_bf16),
                                              ("fp32", torch.float32)])
def test_precision_sets_the_forward_dtype_and_losses_stay_fp32(tmp_path, precision, inside):
    seen = {"forward": set(), "losses": set()}

    class Spy(Reconstruct):
        def losses(self, out, batch):
            seen["losses"].add(out.reconstruction.dtype)
            return super().losses(out, batch)

    torch.manual_seed(0)
    model = LSTMAutoencoder(1, 4)
    model.output.register_forward_hook(lambda m, i, out: seen["forward"].add(out.dtype))
    trainer = Trainer(tmp_path, trainer_cfg(epochs=1, batch_size=8, precision=precision))
    trainer.fit(model, Spy(), load_toy(num_sequences=40), partial(torch.optim.Adam, lr=1e-3))
    outputs = trainer.predict(model, torch.rand(3, 50, 1))
    assert seen["forward"] == {inside}  # training and evaluation forwards alike
    assert seen["losses"] == {torch.float32} and outputs.reconstruction.dtype == torch.float32


def test_bf16_falls_back_to_fp32_on_a_cpu_without_a_bf16_lstm(tmp_path, monkeypatch, caplog):
    import lstm_ae.trainer as trainer_module

    monkeypatch.setattr(trainer_module, "cpu_bf16_lstm", lambda: False)
    with caplog.at_level("WARNING", logger="lstm_ae.trainer"):
        trainer = Trainer(tmp_path, trainer_cfg(precision="bf16"))
    assert trainer.precision is Precision.fp32 and "no bf16 LSTM kernel" in caplog.text
    monkeypatch.setattr(trainer_module, "cpu_bf16_lstm", lambda: True)
    assert Trainer(tmp_path, trainer_cfg(precision="bf16")).precision is Precision.bf16


def test_predict_batches_at_eval_batch_size_and_matches_one_forward():
    torch.manual_seed(0)
    model = LSTMAutoencoder(2, 5, num_classes=3)
    x = torch.rand(7, 6, 2)
    sizes = []
    model.encoder.register_forward_hook(lambda m, i, out: sizes.append(i[0].shape[0]))
    out = Trainer("unused", trainer_cfg(eval_batch_size=3)).predict(model, x)
    assert sizes == [3, 3, 1]
    with torch.no_grad():
        whole = model.eval()(x)
    torch.testing.assert_close(out.reconstruction, whole.reconstruction)
    torch.testing.assert_close(out.logits, whole.logits)


def test_sharded_step_gives_the_gradients_and_metrics_of_the_whole_batch():
    torch.manual_seed(0)
    model = LSTMAutoencoder(3, 6, num_classes=4)
    batch = Split(torch.rand(7, 5, 3), labels=torch.randint(0, 4, (7,)))  # 7 = 3 + 2 + 2: uneven shards
    task = Classify(recon_weight=2.0)
    trainer = Trainer("unused", trainer_cfg())
    parts1 = trainer._forward_backward(model, task, batch)
    grads1 = [p.grad.clone() for p in model.parameters()]
    model.zero_grad(set_to_none=True)
    torch.set_num_threads(2)
    with ThreadPoolExecutor(3) as pool:
        parts3 = trainer._forward_backward(model, task, batch, pool, 3)
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
        trainer = Trainer(tmp_path / name, trainer_cfg(epochs=2, batch_size=8, shards=shards))
        result = trainer.fit(model, Reconstruct(), splits, partial(torch.optim.SGD, lr=0.5))
        return model.state_dict(), [row["train_loss"] for row in result.history]

    (w1, loss1), (w2, loss2), (w2b, loss2b) = train(1, "a"), train(2, "b"), train(2, "c")
    assert loss2 == pytest.approx(loss1, rel=1e-5)
    assert loss2b == loss2
    for k in w1:
        torch.testing.assert_close(w2[k], w1[k], rtol=1e-4, atol=1e-6)
        assert torch.equal(w2b[k], w2[k]), k  # gradients summed in a fixed order: bitwise repeatable


def test_auto_shards_only_for_long_sequences_on_cpu():
    long, short = AUTO_SHARDS_MIN_STEPS, AUTO_SHARDS_MIN_STEPS - 1
    assert Trainer("unused", trainer_cfg(shards=3)).shards_for(short) == 3
    auto = Trainer("unused", trainer_cfg())
    torch.set_num_threads(2)
    assert auto.shards_for(long) == 2 and auto.shards_for(short) == 1
    torch.set_num_threads(1)
    assert auto.shards_for(long) == 1


def test_trainer_leaves_process_settings_alone(tmp_path):
    torch.set_num_threads(1)
    Trainer(tmp_path, trainer_cfg(epochs=1, num_threads=2)).fit(LSTMAutoencoder(1, 4), Reconstruct(), load_toy(num_sequences=30),
                                                      partial(torch.optim.Adam, lr=1e-3))
    assert torch.get_num_threads() == 1  # threads are the entry point's (lstm_ae.trainer.configure_torch)


@needs_cuda
def test_training_and_prediction_on_cuda(tmp_path):
    torch.manual_seed(0)
    model = LSTMAutoencoder(1, 4)
    trainer = Trainer(tmp_path, trainer_cfg(epochs=2, batch_size=8, device="cuda", precision="bf16"))
    result = trainer.fit(model, Reconstruct(), load_toy(num_sequences=40), partial(torch.optim.Adam, lr=1e-3))
    assert next(model.parameters()).is_cuda and len(result.history) == 2
    out = trainer.predict(model, torch.rand(3, 50, 1))  # inputs on the CPU: outputs come back there, in fp32
    assert out.reconstruction.device.type == "cpu" and out.reconstruction.dtype == torch.float32
    assert torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=False)["rng"]["cuda"] is not None


@pytest.mark.parametrize("gpus, job, expected", [
    (4, 5, "cuda:1"), (4, 0, "cuda:0"), (4, None, "cuda"),  # a single run: the current GPU
    (1, 5, "cuda"),  # one visible GPU (or the engine gave this job its own): that one
])
def test_parallel_jobs_get_one_gpu_each(monkeypatch, gpus, job, expected):
    from lstm_ae.trainer import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
    assert str(resolve_device("auto", job)) == expected and str(resolve_device("cuda", job)) == expected
    assert str(resolve_device("cpu", job)) == "cpu"


def test_a_multirun_job_passes_its_number_to_the_trainer(tmp_path, monkeypatch):
    """In a multirun the experiment hands the trainer hydra.job.num; in a single run nothing."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from omegaconf import OmegaConf

    from lstm_ae.experiment import multirun_job

    cfg = compose_cfg("toy", hydra=True)
    assert multirun_job() is None  # no Hydra app
    try:
        for mode, expected in ((RunMode.MULTIRUN, 3), (RunMode.RUN, None)):
            hydra_cfg = OmegaConf.merge(cfg.hydra, {"mode": mode, "job": {"num": 3}})
            HydraConfig.instance().set_config(OmegaConf.create({"hydra": hydra_cfg}))
            assert multirun_job() == expected
    finally:
        HydraConfig.instance().cfg = None
