"""Muon on the model's hidden weight matrices, Adam on the rest, as one optimizer (``optimizer=muon``).

Muon (Jordan et al. 2024; ``torch.optim.Muon``) replaces each update of a weight matrix by the
nearest orthogonal matrix of its momentum, so every direction of the matrix moves at the same
rate. torch's computes that matrix in bf16, which a CPU without bf16 matrix units does ~7x slower
than fp32 (5.5 against 0.8 ms for a 192 x 48 matrix on an AVX2-only EPYC, one thread: a third
of the toy's update time); :class:`Muon` is torch's with the same iteration in the parameters'
own precision. It is meant for the weights between hidden states only; the input weights, the output
layer, the heads and all biases stay with Adam. Both take ``optimizer.lr``: Muon's step is
rescaled to the size of an Adam step (``adjust_lr_fn="match_rms_adamw"``, Liu et al. 2025), so one
learning rate and one schedule serve both; ``optimizer.weight_decay`` is Adam's L2 penalty on the
rest and, as in torch's Muon, a decoupled decay of Muon's matrices.

The trainer hands every optimizer :func:`param_groups` of the model; torch's own optimizers treat
its two groups alike.
"""
from __future__ import annotations

import math
from typing import Any, Dict, Iterable, List, Optional, Sequence

import torch
from torch import nn


def param_groups(model: nn.Module) -> List[Dict[str, Any]]:
    """The model's parameters as optimizer groups: ``{"params": ..., "hidden": True}`` for the
    weight matrices it names in ``hidden_matrices()`` (where it has that method), then the rest
    with ``"hidden": False``; empty groups left out."""
    hidden = list(model.hidden_matrices()) if hasattr(model, "hidden_matrices") else []
    ids = {id(p) for p in hidden}
    rest = [p for p in model.parameters() if id(p) not in ids]
    return [g for g in ({"params": hidden, "hidden": True}, {"params": rest, "hidden": False}) if g["params"]]


def orthogonalise(m: torch.Tensor, coefficients: Sequence[float], steps: int, eps: float) -> torch.Tensor:
    """``m`` with its singular values pushed to ~1 (0.5-1.5) by torch.optim.Muon's quintic
    Newton-Schulz iteration, in ``m``'s precision."""
    tall = m.shape[0] > m.shape[1]
    x = m.T if tall else m
    x = x / x.norm().clamp(min=eps)  # spectral norm <= 1
    a, b, c = coefficients
    for _ in range(steps):
        gram = x @ x.T
        x = torch.addmm(x, torch.addmm(gram, gram, gram, beta=b, alpha=c), x, beta=a)
    return x.T if tall else x


class Muon(torch.optim.Muon):
    """torch.optim.Muon (its groups, checks and state) with the orthogonalisation in the
    parameters' precision (fp32), and the step always scaled to an Adam step's size (torch's
    ``adjust_lr_fn="match_rms_adamw"``: 0.2 sqrt(max(rows, columns)))."""

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            lr, momentum = group["lr"], group["momentum"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                buf = self.state[p].setdefault("momentum_buffer", torch.zeros_like(p))
                buf.lerp_(p.grad, 1 - momentum)
                update = p.grad.lerp(buf, momentum) if group["nesterov"] else buf
                update = orthogonalise(update, group["ns_coefficients"], group["ns_steps"], group["eps"])
                p.mul_(1 - lr * group["weight_decay"])
                p.add_(update, alpha=-lr * 0.2 * math.sqrt(max(p.shape)))


class MuonAdam(torch.optim.Optimizer):
    """:class:`Muon` on the groups flagged ``hidden``, ``torch.optim.Adam`` on the others.

    One optimizer to the trainer, the learning-rate schedulers and the checkpoints:
    ``param_groups`` are the two optimizers' own groups (a scheduler sets their ``lr`` in place),
    ``state_dict`` holds both. OneCycle's momentum cycle moves Adam's beta1 and Muon's momentum
    alike (Muon's group carries ``betas`` for it); without a cycle Muon keeps ``momentum``.
    """

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, weight_decay: float = 0.0,
                 betas: Sequence[float] = (0.9, 0.999), eps: float = 1e-8, amsgrad: bool = False,
                 fused: Optional[bool] = None, momentum: float = 0.95, nesterov: bool = True,
                 ns_steps: int = 5) -> None:
        groups = [dict(g, params=list(g["params"])) if isinstance(g, dict) else g for g in params]
        if groups and not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        hidden = [g for g in groups if g.get("hidden")]
        if not hidden:
            raise ValueError("optimizer=muon needs a model that names its hidden weight matrices "
                             "(hidden_matrices()); use optimizer=adam for this model")
        rest = [g for g in groups if not g.get("hidden")]
        betas = tuple(betas)
        self.muon = Muon([dict(g, betas=(momentum, betas[1])) for g in hidden], lr=lr, weight_decay=weight_decay,
                         momentum=momentum, nesterov=nesterov, ns_steps=ns_steps, adjust_lr_fn="match_rms_adamw")
        self.adam = torch.optim.Adam(rest, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                     amsgrad=amsgrad, fused=fused) if rest else None
        super().__init__([p for g in groups for p in g["params"]], {"lr": lr, "betas": betas,
                                                                    "weight_decay": weight_decay})
        self._link()

    def _link(self) -> None:
        self.param_groups = self.muon.param_groups + (self.adam.param_groups if self.adam else [])

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.muon.param_groups:  # the momentum a OneCycle cycle has set, if any
            group["momentum"] = group["betas"][0]
        self.muon.step()
        if self.adam is not None:
            self.adam.step()
        return loss

    def state_dict(self) -> Dict[str, Any]:
        return {"muon": self.muon.state_dict(), "adam": self.adam.state_dict() if self.adam else None}

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        if set(state_dict) != {"muon", "adam"}:
            raise ValueError("not a MuonAdam state (keys muon, adam)")
        self.muon.load_state_dict(state_dict["muon"])
        if self.adam is not None:
            self.adam.load_state_dict(state_dict["adam"])
        self._link()  # loading replaces the groups' dicts
