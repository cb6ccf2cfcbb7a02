"""The LSTM autoencoder of the assignment (Fig. 1), with optional heads switched on by config.

    encoder LSTM reads x_1..x_T            -> z = h_T (top layer's last hidden state)
    decoder LSTM reads z at every step     -> h~_1..h~_T
    x~_t = sigmoid(U h~_t)                 (inputs are min-max scaled to [0, 1])

Heads read what the model already computes, so a task only switches them on:
``num_classes`` adds a classifier on h~_T (or on z with ``classify_from=latent``);
``predict_next`` adds a one-step-ahead head y~_t = V h_t on the encoder's per-step hidden states,
which depend on x_1..x_t only -- never on z or the decoder, which have read the whole sequence.
It is linear: a next value may leave the [0, 1] range of the window it follows.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Callable, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from lstm_ae.config import ClassifyFrom, LSTMInit


@dataclass
class AEOutput:
    reconstruction: torch.Tensor  # (B, T, input_size), in [0, 1]
    latent: torch.Tensor  # z, (B, hidden_size)
    logits: Optional[torch.Tensor] = None  # (B, num_classes) when the classifier head is on
    prediction: Optional[torch.Tensor] = None  # (B, T, input_size): y~_t predicts x_{t+1}

    def map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> "AEOutput":
        """``fn`` applied to every output that is there."""
        return AEOutput(**{f.name: None if (t := getattr(self, f.name)) is None else fn(t) for f in fields(self)})

    def float(self) -> "AEOutput":
        """The same outputs in fp32 (after a bf16 autocast forward), so losses stay in fp32."""
        return self.map(lambda t: t.float())

    @staticmethod
    def cat(outputs: Sequence["AEOutput"]) -> "AEOutput":
        """The outputs of consecutive batches as one."""
        first = outputs[0]
        return AEOutput(**{f.name: None if getattr(first, f.name) is None
                           else torch.cat([getattr(o, f.name) for o in outputs]) for f in fields(first)})


Predictor = Callable[[torch.Tensor], AEOutput]  # x (N, T, m) -> outputs, e.g. Trainer.predict bound to a model


class LSTMAutoencoder(nn.Module):
    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        dropout: float = 0.0,
        num_classes: Optional[int] = None,
        classify_from: ClassifyFrom | str = ClassifyFrom.decoder,
        init: LSTMInit | str = LSTMInit.default,
        chrono_t_max: Optional[int] = None,
        predict_next: bool = False,
        decoder_init: Optional[LSTMInit | str] = None,
        decoder_clock: Optional[Sequence[int]] = None,
    ) -> None:
        super().__init__()
        dropout = dropout if num_layers > 1 else 0.0  # nn.LSTM warns on dropout with one layer
        self.input_size, self.hidden_size = input_size, hidden_size
        self.encoder = nn.LSTM(input_size, hidden_size, num_layers, batch_first=True, dropout=dropout)
        self.decoder = nn.LSTM(hidden_size, hidden_size, num_layers, batch_first=True, dropout=dropout)
        self.output = nn.Linear(hidden_size, input_size)
        self.classify_from = ClassifyFrom(getattr(classify_from, "value", classify_from))
        self.classifier = nn.Linear(hidden_size, num_classes) if num_classes else None
        self.predictor = nn.Linear(hidden_size, input_size) if predict_next else None
        decoder_init = init if decoder_init is None else decoder_init  # the decoder's: as the encoder's by default
        for lstm, how in ((self.encoder, init), (self.decoder, decoder_init)):
            if LSTMInit(getattr(how, "value", how)) is LSTMInit.chrono:
                if chrono_t_max is None:  # (its range is checked with the config)
                    raise ValueError("chrono initialisation needs chrono_t_max (the sequence length)")
                chrono_init_(lstm, chrono_t_max)
        self.clock_units, self._clock = 0, None
        if decoder_clock:
            self.clock_units = clock_init_(self.decoder, decoder_clock)
            self._clock = HeldRows(self.decoder, self.clock_units)  # not trained, not in the clipped norm

    def encode_steps(self, x: torch.Tensor) -> "tuple[torch.Tensor, torch.Tensor]":
        """x -> (h_1..h_T of the top layer: (B, T, H), z = h_T: (B, H))."""
        steps, (h, _) = run_lstm(self.encoder, x)
        return steps, h[-1]

    def hidden_matrices(self) -> "list[nn.Parameter]":
        """The weight matrices between hidden states (``optimizer=muon`` trains them with Muon,
        lstm_ae/optim.py): every LSTM weight matrix but the encoder's first-layer input weights,
        which read the data; not the output layer or the heads."""
        return [p for lstm in (self.encoder, self.decoder) for name, p in lstm.named_parameters()
                if name.startswith("weight_") and not (lstm is self.encoder and name == "weight_ih_l0")]

    def after_step(self) -> None:
        """Put the decoder clock's weights back after an optimiser step (weight decay moves them)."""
        if self._clock is not None:
            self._clock.restore()

    def decode(self, z: torch.Tensor, steps: int) -> torch.Tensor:
        """z: (B, H) -> decoder hidden states h~_1..h~_T: (B, T, H). z is the input at every step."""
        dec_in = z.unsqueeze(1).expand(-1, steps, -1)
        out, _ = self.decoder(dec_in)
        return out

    def forward(self, x: torch.Tensor) -> AEOutput:
        steps, z = self.encode_steps(x)
        h_dec = self.decode(z, x.shape[1])
        recon = torch.sigmoid(self.output(h_dec))
        logits = None
        if self.classifier is not None:
            features = h_dec[:, -1] if self.classify_from is ClassifyFrom.decoder else z
            logits = self.classifier(features)
        prediction = self.predictor(steps) if self.predictor is not None else None
        return AEOutput(reconstruction=recon, latent=z, logits=logits, prediction=prediction)


# oneDNN runs a bf16 LSTM layer's forward pass on AMX only when its input is wide enough
# (measured with torch 2.14.1: 1 feature takes the AVX-512 kernel, 16 features the AMX one, about
# twice as fast for pixel-by-pixel MNIST). Zero features times zero weights change no result.
AMX_MIN_INPUT = 16


def run_lstm(lstm: nn.LSTM, x: torch.Tensor):
    """``lstm(x)`` from zero states; under CPU bf16 autocast a narrower input is zero-padded.

    The padding goes through the same fused op ``nn.LSTM`` calls, with the first layer's input
    weights padded by zero columns on the fly: parameters, outputs and gradients are those of
    ``lstm`` itself.
    """
    pad = AMX_MIN_INPUT - x.shape[-1]
    if pad <= 0 or x.device.type != "cpu" or not torch.is_autocast_enabled("cpu"):
        return lstm(x)
    weights = list(lstm._flat_weights)
    weights[0] = F.pad(weights[0], (0, pad))
    zeros = x.new_zeros(lstm.num_layers, x.shape[0], lstm.hidden_size)
    out, h, c = torch._VF.lstm(F.pad(x, (0, pad)), (zeros, zeros), weights, lstm.bias, lstm.num_layers,
                               lstm.dropout, lstm.training, lstm.bidirectional, lstm.batch_first)
    return out, (h, c)


@torch.no_grad()
def chrono_init_(lstm: nn.LSTM, t_max: int) -> None:
    """Chrono initialisation (Tallec & Ollivier, ICLR 2018) of every layer of ``lstm``.

    Forget-gate biases b_f ~ log(U[1, t_max - 1]) and input-gate biases b_i = -b_f, so that at
    initialisation the cells keep information for up to ~t_max steps instead of ~2. PyTorch
    packs the gates as (input, forget, cell, output) and adds bias_ih + bias_hh.
    """
    h = lstm.hidden_size
    for layer in range(lstm.num_layers):
        b_ih, b_hh = getattr(lstm, f"bias_ih_l{layer}"), getattr(lstm, f"bias_hh_l{layer}")
        b_f = torch.log(torch.empty(h).uniform_(1.0, t_max - 1.0))
        b_ih.zero_()
        b_hh.zero_()
        b_ih[h : 2 * h] = b_f
        b_ih[0:h] = -b_f


CLOCK_PARAMS = ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")


@torch.no_grad()
def clock_init_(lstm: nn.LSTM, periods: Sequence[int], weight: float = 8.0, bias: float = 3.0,
                gate: float = 12.0, open_: float = 6.0) -> int:
    """Make the first ``sum(periods)`` units of ``lstm``'s first layer a counter of the time step.

    Each of the one or two periods p is a ring of p units, a shift register holding one hot unit
    (h ~ +0.76, the others ~ -0.76): the first ring moves one unit per step, the second one unit
    whenever the first wraps around, so periods (28, 28) count (column, row) of a 28 x 28 image
    read pixel by pixel. The units read no input and nothing outside their rings; the rest of the
    layer reads them. Returns the number of clock units.
    """
    if not 1 <= len(periods) <= 2:  # a third ring would need the AND of both faster rings' last units
        raise ValueError(f"model.decoder_clock takes one or two periods; got {list(periods)}")
    h = lstm.hidden_size
    if sum(periods) > h:
        raise ValueError(f"model.decoder_clock needs sum(periods) = {sum(periods)} decoder units; "
                         f"model.hidden_size is {h}")
    w_ih, w_hh, b_ih, b_hh = (getattr(lstm, n) for n in CLOCK_PARAMS)
    start, carry = 0, None  # carry: the last unit of the previous (faster) ring
    for p in periods:
        ring = list(range(start, start + p))
        for k, u in enumerate(ring):
            i, f, g, o = (gate_ * h + u for gate_ in range(4))
            for t in (w_ih, w_hh, b_ih, b_hh):
                t[[i, f, g, o]] = 0
            w_hh[g, ring[k - 1]] = weight  # copy the previous unit of the ring ...
            b_ih[g] = bias if k == 0 else -bias  # ... with the first unit hot at the first step (h = 0)
            b_ih[o] = open_
            if carry is None:  # the fastest ring moves at every step: input gate open, forget gate shut
                b_ih[i], b_ih[f] = open_, -open_
            else:  # the slower ring moves (input open, forget shut) when the faster one's last unit is hot
                w_hh[i, carry], w_hh[f, carry] = gate, -gate
                b_ih[i], b_ih[f] = bias, -bias  # and at the first step, from h = 0
        carry, start = ring[-1], start + p
    return start


class HeldRows:
    """The first ``units`` units' gate rows of an LSTM's first layer (``CLOCK_PARAMS``), held at
    their present values: a gradient hook zeroes their rows, and :meth:`restore` puts the values
    back (after an optimiser step whose weight decay moved them)."""

    def __init__(self, lstm: nn.LSTM, units: int) -> None:
        h = lstm.hidden_size
        rows = torch.zeros(4 * h, dtype=torch.bool)
        for gate in range(4):
            rows[gate * h : gate * h + units] = True
        self.lstm = lstm
        self.held = {}  # name -> (mask shaped for broadcasting, values), moved to the parameter's device once
        for n in CLOCK_PARAMS:
            param = getattr(lstm, n)
            self.held[n] = (rows.view(-1, *[1] * (param.dim() - 1)), param.detach().clone())
            param.register_hook(lambda grad, n=n: grad.masked_fill(self._on(n, grad.device)[0], 0.0))

    def _on(self, name: str, device: torch.device) -> "tuple[torch.Tensor, torch.Tensor]":
        mask, values = self.held[name]
        if mask.device != device:  # once, not at every step: a copy to the GPU would wait for it
            self.held[name] = mask, values = mask.to(device), values.to(device)
        return mask, values

    @torch.no_grad()
    def restore(self) -> None:
        for n in CLOCK_PARAMS:
            param = getattr(self.lstm, n)
            mask, values = self._on(n, param.device)
            param.copy_(torch.where(mask, values, param))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
