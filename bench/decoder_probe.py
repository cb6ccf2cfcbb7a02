"""Can the assignment's decoder draw MNIST pixel by pixel? The decoder alone, on the CPU.

    python -m bench.decoder_probe chrono          # the plain decoder (chrono init, t_max 784)
    python -m bench.decoder_probe clock           # the same with model.decoder_clock=[28,28]
    python -m bench.decoder_probe clock --trainable-clock

The encoder is replaced by the best context it could give: a learned vector z per class, so the
decoder (an LSTM fed z at every step, x~_t = sigmoid(U h~_t)) only has to draw its class's digits.
It is trained on the MSE to the training images (Adam + OneCycle, 784 steps of one pixel) and
scored on the first 500 test images against the mean training image and the class-mean images
(the best any per-class drawing can do). Each run appends its curve to the JSON (``--out``).
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import List, Optional

import torch
from torch import nn

from lstm_ae.data.mnist import load_mnist
from lstm_ae.model import HeldRows, chrono_init_, clock_init_

OUT = Path(__file__).resolve().parent / "results" / "decoder_probe.json"


def main(argv: Optional[List[str]] = None) -> dict:
    p = argparse.ArgumentParser(prog="python -m bench.decoder_probe", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("decoder", choices=["default", "chrono", "clock"])
    p.add_argument("--trainable-clock", action="store_true", help="train the clock's weights too")
    p.add_argument("--steps", type=int, default=550)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--val-size", type=int, default=None,
                   help="training images held out (unused here) as load_mnist does (default: load_mnist's)")
    p.add_argument("--root", default=None, help="data root (default: LSTM_AE_DATA or data)")
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    held_out = {} if args.val_size is None else {"val_size": args.val_size}
    splits = load_mnist(root=args.root or os.environ.get("LSTM_AE_DATA", "data"), layout="pixel", **held_out)
    x, y = splits.train.x[..., 0], splits.train.labels
    xt, yt = splits.test.x[:500, :, 0], splits.test.labels[:500]
    mean = x.mean(0)
    class_mean = torch.stack([x[y == c].mean(0) for c in range(10)])
    h = args.hidden
    z, dec, out = nn.Embedding(10, h), nn.LSTM(h, h, batch_first=True), nn.Linear(h, 1)
    if args.decoder != "default":
        chrono_init_(dec, 784)
    if args.decoder == "clock":
        n = clock_init_(dec, [28, 28])
        if not args.trainable_clock:  # as LSTMAutoencoder does: the clock's rows get no gradient
            HeldRows(dec, n)
    params = [*z.parameters(), *dec.parameters(), *out.parameters()]
    opt = torch.optim.Adam(params, lr=args.lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.steps)

    def draw(labels: torch.Tensor) -> torch.Tensor:
        hs, _ = dec(z(labels).unsqueeze(1).expand(-1, 784, -1))
        return torch.sigmoid(out(hs))[..., 0]

    curve, start = [], time.time()
    for step in range(1, args.steps + 1):
        idx = torch.randint(0, len(x), (args.batch,))
        loss = ((draw(y[idx]) - x[idx]) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 50 == 0 or step == args.steps:
            with torch.no_grad():
                test = ((draw(yt) - xt) ** 2).mean().item()
            curve.append({"step": step, "test_mse": round(test, 5), "seconds": round(time.time() - start, 1)})
            print(curve[-1], flush=True)
    result = {"decoder": args.decoder + (" (trainable)" if args.trainable_clock else ""), "steps": args.steps,
              "lr": args.lr, "batch": args.batch, "hidden": h, "test_mse": curve[-1]["test_mse"],
              "mean_image_test_mse": round(((xt - mean) ** 2).mean().item(), 5),
              "class_mean_test_mse": round(((xt - class_mean[yt]) ** 2).mean().item(), 5), "curve": curve}
    runs = json.loads(args.out.read_text()) if args.out.exists() else []
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps([*runs, result], indent=1) + "\n")
    print({k: v for k, v in result.items() if k != "curve"})
    return result


if __name__ == "__main__":
    main()
