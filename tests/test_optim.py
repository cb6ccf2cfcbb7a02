"""optimizer=muon: torch's Muon on the hidden weight matrices, torch's Adam on the rest, as one optimizer."""
import copy
import json

import pytest
import torch
from torch import nn

from lstm_ae.model import LSTMAutoencoder
from lstm_ae.optim import MuonAdam, orthogonalise, param_groups
from tests.conftest import TINY_TOY, run_in_process


def _model(seed=0):
    torch.manual_seed(seed)
    return LSTMAutoencoder(input_size=3, hidden_size=6, num_layers=2, num_classes=4)


def _backward(model, seed):
    g = torch.Generator().manual_seed(seed)
    out = model(torch.rand(5, 7, 3, generator=g))
    (out.reconstruction.square().mean() + out.logits.logsumexp(-1).mean()).backward()


def test_param_groups_put_the_hidden_matrices_first_and_everything_else_after():
    model = _model()
    hidden, rest = param_groups(model)
    names = {id(p): n for n, p in model.named_parameters()}
    assert hidden["hidden"] and not rest["hidden"]
    assert sorted(names[id(p)] for p in hidden["params"]) == sorted(
        ["encoder.weight_hh_l0", "encoder.weight_ih_l1", "encoder.weight_hh_l1", "decoder.weight_ih_l0",
         "decoder.weight_hh_l0", "decoder.weight_ih_l1", "decoder.weight_hh_l1"])
    assert "encoder.weight_ih_l0" in {names[id(p)] for p in rest["params"]}  # it reads the data
    assert len(hidden["params"]) + len(rest["params"]) == len(list(model.parameters()))
    assert [g["hidden"] for g in param_groups(nn.Linear(2, 2))] == [False]  # no hidden_matrices(): one group


def test_orthogonalise_gives_the_polar_factor_with_singular_values_near_one():
    m = torch.randn(40, 12, generator=torch.Generator().manual_seed(0)) @ torch.diag(torch.logspace(-1, 1, 12))
    o = orthogonalise(m, (3.4445, -4.775, 2.0315), steps=5, eps=1e-7)
    u, _, vh = torch.linalg.svd(m, full_matrices=False)
    s = torch.linalg.svdvals(o)
    assert o.dtype == m.dtype and s.min() > 0.5 and s.max() < 1.5  # condition number 100 -> < 3
    assert torch.nn.functional.cosine_similarity(o.flatten(), (u @ vh).flatten(), dim=0) > 0.95


def test_muon_adam_steps_as_torchs_muon_and_adam_side_by_side(monkeypatch):
    # torch's Muon orthogonalises in bf16, ours in the parameters' fp32: with torch's iteration run
    # in fp32 too, the two must agree to the bit (momentum, Nesterov, weight decay, step size)
    monkeypatch.setattr(torch.optim._muon, "_zeropower_via_newtonschulz", orthogonalise)
    ours, ref = _model(), _model()
    opt = MuonAdam(param_groups(ours), lr=0.01, weight_decay=0.1, betas=(0.9, 0.99))
    hidden, rest = param_groups(ref)
    muon = torch.optim.Muon(hidden["params"], lr=0.01, weight_decay=0.1, momentum=0.95, adjust_lr_fn="match_rms_adamw")
    adam = torch.optim.Adam(rest["params"], lr=0.01, weight_decay=0.1, betas=(0.9, 0.99))
    before = copy.deepcopy(ours.state_dict())
    for step in range(3):
        for model in (ours, ref):
            model.zero_grad()
            _backward(model, step)
        opt.step()
        muon.step()
        adam.step()
    for (name, p), q in zip(ours.named_parameters(), ref.parameters()):
        assert torch.equal(p, q), name
        assert not torch.equal(p, before[name]), name  # every parameter moved
    update = ours.decoder.weight_hh_l0.detach() - before["decoder.weight_hh_l0"]
    assert torch.linalg.matrix_rank(update) == 6  # Muon's steps span every direction (Adam's need not)


def test_one_cycle_schedules_the_lr_and_momentum_of_both():
    opt = MuonAdam(param_groups(_model()), lr=0.02)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.02, total_steps=10)
    for _ in range(4):
        opt.step()
        sched.step()
    lrs = {g["lr"] for g in opt.param_groups}
    assert len(opt.param_groups) == 2 and len(lrs) == 1 and lrs != {0.02}
    opt.step()  # takes the momentum the schedule has set
    muon_group, adam_group = opt.muon.param_groups[0], opt.adam.param_groups[0]
    assert muon_group["momentum"] == muon_group["betas"][0] == adam_group["betas"][0] != 0.95


def test_state_dict_round_trip_continues_identically():
    a, b = _model(), _model()
    opt_a = MuonAdam(param_groups(a), lr=0.01)
    for step in range(2):
        a.zero_grad()
        _backward(a, step)
        opt_a.step()
    b.load_state_dict(a.state_dict())
    opt_b = MuonAdam(param_groups(b), lr=0.5)  # its own lr and empty state are replaced by the loaded ones
    opt_b.load_state_dict(copy.deepcopy(opt_a.state_dict()))
    assert opt_b.param_groups[0] is opt_b.muon.param_groups[0]  # still the optimizers' own groups after loading
    for model, opt in ((a, opt_a), (b, opt_b)):
        model.zero_grad()
        _backward(model, 5)
        opt.step()
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)
    with pytest.raises(ValueError, match="MuonAdam"):
        opt_b.load_state_dict(torch.optim.Adam(b.parameters()).state_dict())


def test_a_model_without_hidden_matrices_is_one_clear_error():
    with pytest.raises(ValueError, match="optimizer=adam"):
        MuonAdam(param_groups(nn.Linear(3, 2)))


def test_toy_run_with_muon(tmp_path):
    proc = run_in_process("lstm_ae_toy.py", *TINY_TOY, "optimizer=muon", "trainer.epochs=2", "task.figures=false",
                          f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((tmp_path / "results.json").read_text())["epochs_run"] == 2
    saved = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=False)["optimizer"]
    assert set(saved) == {"muon", "adam"} and saved["muon"]["state"]  # trained by Muon and Adam
