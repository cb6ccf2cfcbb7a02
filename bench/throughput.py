"""Training throughput (samples/s) of the project's trainer against a naive LSTMCell loop.

    python -m bench.throughput                       # toy, row and pixel shapes; table + JSON
    python -m bench.throughput --shapes pixel --batches 8 --threads 2

Every variant trains the same autoencoder (encoder, decoder fed z, sigmoid output, MSE) on random
data of the shape, through the same ``lstm_ae.trainer.Trainer`` (one warm-up epoch, then a timed
one), so the numbers differ only in the model's implementation and precision:

- ``naive-cell fp32``: ``nn.LSTMCell`` stepped in a Python loop (what many solutions do);
- ``lstm fp32``: ``lstm_ae.model.LSTMAutoencoder`` (fused ``nn.LSTM``, oneDNN on CPU, cuDNN on GPU);
- ``lstm bf16``: the same under bf16 autocast (``trainer.precision=bf16``: AMX on CPU);
- ``lstm bf16 N shards``: and each batch cut into N shards computed at once on one thread each
  (``trainer.shards=N``; with N = ``--threads`` > 1, CPU only).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf
from torch import nn

from lstm_ae.config import TrainerConfig
from lstm_ae.data import Split, Splits
from lstm_ae.model import AEOutput, LSTMAutoencoder
from lstm_ae.tasks import Reconstruct
from lstm_ae.trainer import Trainer, configure_torch

SHAPES = {  # name: (steps T, features m, hidden H, batch)
    "toy": (50, 1, 48, 64),
    "row": (28, 28, 128, 128),
    "pixel": (784, 1, 128, 128),
}


class NaiveCellAE(nn.Module):
    """The same autoencoder written with ``nn.LSTMCell`` loops, one Python step per time step."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.encoder = nn.LSTMCell(input_size, hidden_size)
        self.decoder = nn.LSTMCell(hidden_size, hidden_size)
        self.output = nn.Linear(hidden_size, input_size)

    def forward(self, x: torch.Tensor) -> AEOutput:
        b, steps, _ = x.shape
        h = c = x.new_zeros(b, self.hidden_size)
        for t in range(steps):
            h, c = self.encoder(x[:, t], (h, c))
        z = h
        h = c = x.new_zeros(b, self.hidden_size)
        outs = []
        for _ in range(steps):
            h, c = self.decoder(z, (h, c))
            outs.append(h)
        recon = torch.sigmoid(self.output(torch.stack(outs, dim=1)))
        return AEOutput(reconstruction=recon, latent=z)


def measure(model: nn.Module, shape: str, precision: str, batches: int, threads: int, device: str,
            batch: int | None = None, shards: int = 1) -> float:
    """Samples per second of the second of two training epochs of ``batches`` batches."""
    steps, features, _, default_batch = SHAPES[shape]
    batch = batch or default_batch
    n = batches * batch
    x = torch.rand(n + 1, steps, features)
    splits = Splits(Split(x[:n]), Split(x[n:]), Split(x[n:]))
    configure_torch(threads)
    cfg = OmegaConf.structured(TrainerConfig(epochs=2, batch_size=batch, precision=precision, device=device,
                                             progress=False, save_checkpoints=False, shards=shards))
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(tmp, cfg)
        fit = trainer.fit(model, Reconstruct(), splits, optimizer=lambda p: torch.optim.Adam(p, lr=1e-3))
    return n / fit.history[-1]["seconds"]


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(
        prog="python -m bench.throughput", description=(__doc__ or "").split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  python -m bench.throughput --shapes pixel --batches 8 --threads 2 --out /tmp/throughput.json")
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES), metavar="SHAPE",
                        help="which shapes (T, m, H, batch), from: " + ", ".join(
                            f"{k} {v}" for k, v in SHAPES.items()) + " (default: all)")
    parser.add_argument("--batches", type=int, default=10, metavar="N",
                        help="batches per timed epoch (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), metavar="N",
                        help="torch threads (default: torch's default, here %(default)s)")
    parser.add_argument("--batch", type=int, default=None, metavar="N",
                        help="batch size for every shape (default: per shape)")
    parser.add_argument("--variants", nargs="+", default=None, metavar="NAME",
                        help="only these variants, e.g. 'lstm bf16' (the first one, the baseline, always runs; "
                             "default: all)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where to train (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/throughput.json"), metavar="FILE",
                        help="the JSON result (default: %(default)s)")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    rows = []
    for shape in args.shapes:
        steps, features, hidden, batch = SHAPES[shape]
        batch = args.batch or batch
        variants = [
            ("naive-cell fp32", lambda: NaiveCellAE(features, hidden), "fp32", 1),
            ("lstm fp32", lambda: LSTMAutoencoder(features, hidden), "fp32", 1),
            ("lstm bf16", lambda: LSTMAutoencoder(features, hidden), "bf16", 1),
        ]
        if args.threads > 1 and args.device == "cpu":
            variants.append((f"lstm bf16 {args.threads} shards", lambda: LSTMAutoencoder(features, hidden), "bf16",
                             args.threads))
        base = None
        for name, make, precision, shards in variants:
            if args.variants and name not in args.variants and base is not None:
                continue
            rate = measure(make(), shape, precision, args.batches, args.threads, args.device, batch, shards)
            base = base or rate
            row = {"shape": shape, "T": steps, "m": features, "H": hidden, "batch": batch, "variant": name,
                   "samples_per_s": round(rate, 1), "vs_naive": round(rate / base, 2)}
            rows.append(row)
            print(f"{shape:6s} T{steps:<4d} m{features:<3d} H{hidden:<4d} {name:16s} {rate:9.1f} samples/s  x{rate / base:.2f}",
                  flush=True)
    result = {
        "benchmark": "throughput",
        "machine": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "threads": args.threads,
        "device": args.device,
        "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {args.out}")
    return result


if __name__ == "__main__":
    main()
