"""The autoencoder's shapes and wiring (assignment Fig. 1)."""
import pytest
import torch

from lstm_ae.model import LSTMAutoencoder, count_parameters
from lstm_ae.optim import MuonAdam, param_groups
from tests.conftest import needs_cpu_bf16


def test_shapes_and_range():
    model = LSTMAutoencoder(input_size=3, hidden_size=16)
    x = torch.rand(5, 11, 3)
    out = model(x)
    assert out.reconstruction.shape == (5, 11, 3)
    assert out.latent.shape == (5, 16)
    assert out.logits is None
    assert 0 <= out.reconstruction.min() and out.reconstruction.max() <= 1  # sigmoid output


def test_latent_is_encoders_last_hidden_state_of_top_layer():
    model = LSTMAutoencoder(input_size=2, hidden_size=6, num_layers=2, dropout=0.1).eval()
    x = torch.rand(4, 9, 2)
    seq_out, _ = model.encoder(x)
    torch.testing.assert_close(model(x).latent, seq_out[:, -1])


def test_decoder_receives_z_at_every_step():
    model = LSTMAutoencoder(input_size=1, hidden_size=8)
    seen = {}

    def keep_input(module, args, output):
        seen["input"] = args[0]

    model.decoder.register_forward_hook(keep_input)
    x = torch.rand(3, 7, 1)
    out = model(x)
    dec_in = seen["input"]
    assert dec_in.shape == (3, 7, 8)
    for t in range(7):
        torch.testing.assert_close(dec_in[:, t], out.latent)


def test_encoder_and_decoder_are_different_lstms():
    model = LSTMAutoencoder(input_size=1, hidden_size=8)
    enc, dec = ({p.data_ptr() for p in lstm.parameters()} for lstm in (model.encoder, model.decoder))
    assert enc and dec and not enc & dec  # no weight is shared
    assert model.decoder.input_size == 8  # the decoder reads z, not x
    # encoder 4H(m + H + 2), decoder 4H(H + H + 2), output H*m + m (m = 1, H = 8)
    assert count_parameters(model) == 4 * 8 * (1 + 8 + 2) + 4 * 8 * (8 + 8 + 2) + 8 + 1


@pytest.mark.parametrize("classify_from", ["decoder", "latent"])
def test_classifier_head(classify_from):
    model = LSTMAutoencoder(input_size=28, hidden_size=12, num_classes=10, classify_from=classify_from)
    x = torch.rand(4, 28, 28)
    out = model(x)
    assert out.logits.shape == (4, 10)
    if classify_from == "latent":
        torch.testing.assert_close(out.logits, model.classifier(out.latent))
    else:
        h_dec = model.decode(out.latent, 28)
        torch.testing.assert_close(out.logits, model.classifier(h_dec[:, -1]))


@needs_cpu_bf16
def test_output_float_keeps_fp32_after_bf16_autocast():
    model = LSTMAutoencoder(input_size=1, hidden_size=8, num_classes=3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(torch.rand(2, 5, 1))
    f = out.float()
    assert f.reconstruction.dtype == f.latent.dtype == f.logits.dtype == torch.float32


def test_chrono_init_sets_long_memory_gate_biases():
    t_max, h = 100, 16
    model = LSTMAutoencoder(input_size=1, hidden_size=h, num_layers=2, init="chrono", chrono_t_max=t_max)
    for lstm in (model.encoder, model.decoder):
        for layer in range(2):
            b_ih, b_hh = getattr(lstm, f"bias_ih_l{layer}"), getattr(lstm, f"bias_hh_l{layer}")
            assert torch.count_nonzero(b_hh) == 0
            b_i, b_f = b_ih[:h], b_ih[h : 2 * h]
            torch.testing.assert_close(b_i, -b_f)
            assert b_f.min() >= 0 and b_f.max() <= torch.log(torch.tensor(t_max - 1.0))
            assert torch.count_nonzero(b_ih[2 * h :]) == 0  # cell and output gates untouched


def test_the_decoder_can_keep_pytorchs_initialisation():
    torch.manual_seed(0)
    model = LSTMAutoencoder(input_size=1, hidden_size=8, init="chrono", chrono_t_max=100, decoder_init="default")
    assert torch.count_nonzero(model.encoder.bias_hh_l0) == 0  # chrono: only bias_ih is set
    assert torch.count_nonzero(model.decoder.bias_hh_l0) == 32  # PyTorch's uniform biases
    torch.manual_seed(0)
    both = LSTMAutoencoder(input_size=1, hidden_size=8, init="chrono", chrono_t_max=100)
    assert torch.count_nonzero(both.decoder.bias_hh_l0) == 0  # null: as the encoder


def test_chrono_init_needs_a_horizon():
    with pytest.raises(ValueError, match="chrono_t_max"):
        LSTMAutoencoder(input_size=1, hidden_size=4, init="chrono")


def _clock_reading(model, steps, periods):
    """The (column, row, ...) the decoder's clock units show at each step: the hot unit of each ring."""
    h = model.decode(torch.rand(2, model.hidden_size), steps)[0]
    start, reading = 0, []
    for p in periods:
        reading.append(h[:, start : start + p].argmax(-1))
        start += p
    return reading


def test_decoder_clock_counts_columns_and_rows_of_a_pixel_by_pixel_image():
    torch.manual_seed(0)
    model = LSTMAutoencoder(input_size=1, hidden_size=64, init="chrono", chrono_t_max=784, decoder_clock=[28, 28])
    assert model.clock_units == 56
    col, row = _clock_reading(model, 784, [28, 28])
    t = torch.arange(784)
    assert torch.equal(col, t % 28) and torch.equal(row, t // 28)
    (step,) = _clock_reading(LSTMAutoencoder(1, 8, decoder_clock=[5]), 12, [5])
    assert torch.equal(step, torch.arange(12) % 5)  # one ring: the step modulo its period
    col, row = _clock_reading(LSTMAutoencoder(1, 8, decoder_clock=[3, 2]), 12, [3, 2])
    assert torch.equal(col, torch.arange(12) % 3) and torch.equal(row, torch.arange(12) // 3 % 2)  # wraps too


@pytest.mark.parametrize("optimizer", [torch.optim.AdamW, MuonAdam])
def test_decoder_clock_is_not_trained_and_the_rest_is(optimizer):
    torch.manual_seed(0)
    model = LSTMAutoencoder(input_size=1, hidden_size=12, num_classes=3, decoder_clock=[4, 3])
    before = {n: p.detach().clone() for n, p in model.decoder.named_parameters()}
    opt = optimizer(param_groups(model), lr=0.1, weight_decay=0.5)  # decay would move every weight
    x = torch.rand(5, 12, 1)
    for _ in range(3):
        out = model(x)
        loss = out.reconstruction.mean() + out.logits.logsumexp(-1).mean()
        opt.zero_grad()
        loss.backward()
        g = model.decoder.weight_hh_l0.grad.view(4, 12, 12)
        assert g[:, :7].abs().sum() == 0 and g[:, 7:].abs().sum() > 0  # the clock's rows get no gradient
        opt.step()
        model.after_step()  # as the trainer does after every step
    for n, p in model.decoder.named_parameters():
        rows = p.view(4, 12, -1)
        if n.endswith("l0"):
            assert torch.equal(rows[:, :7], before[n].view(4, 12, -1)[:, :7]), n  # the clock as initialised
        assert not torch.equal(rows[:, 7:], before[n].view(4, 12, -1)[:, 7:]), n  # the other units trained
    col, row = _clock_reading(model, 12, [4, 3])
    assert torch.equal(col, torch.arange(12) % 4) and torch.equal(row, torch.arange(12) // 4)


@pytest.mark.parametrize("periods", [[28, 28], [2, 2, 2]])
def test_decoder_clock_needs_enough_units_and_at_most_two_periods(periods):
    with pytest.raises(ValueError, match="decoder_clock"):
        LSTMAutoencoder(input_size=1, hidden_size=50, decoder_clock=periods)


@needs_cpu_bf16
@pytest.mark.parametrize("layers", [1, 2])
def test_narrow_input_is_padded_for_amx_under_bf16_and_changes_nothing(monkeypatch, layers):
    from lstm_ae import model as model_module

    torch.manual_seed(0)
    lstm = torch.nn.LSTM(1, 8, layers, batch_first=True)
    x = torch.rand(3, 12, 1)
    widths = []
    real = torch._VF.lstm

    def spy(inp, *args):
        widths.append(inp.shape[-1])
        return real(inp, *args)

    with torch.autocast("cpu", dtype=torch.bfloat16):
        ref, (h_ref, c_ref) = lstm(x)
        monkeypatch.setattr(model_module.torch._VF, "lstm", spy)
        out, (h, c) = model_module.run_lstm(lstm, x)
    monkeypatch.undo()
    assert widths == [model_module.AMX_MIN_INPUT]  # the fused op saw the padded input
    assert out.shape == ref.shape and h.shape == h_ref.shape == (layers, 3, 8) and c.shape == c_ref.shape
    torch.testing.assert_close(out.float(), ref.float(), atol=2e-2, rtol=0)
    torch.testing.assert_close(h.float(), h_ref.float(), atol=2e-2, rtol=0)
    g_ref = torch.autograd.grad(ref.float().pow(2).sum(), lstm.weight_ih_l0)[0]
    g = torch.autograd.grad(out.float().pow(2).sum(), lstm.weight_ih_l0)[0]
    assert g.shape == lstm.weight_ih_l0.shape == (32, 1)  # the parameters are the LSTM's own
    torch.testing.assert_close(g, g_ref, atol=5e-2 * g_ref.abs().max().item(), rtol=0)


def test_no_padding_in_fp32_or_for_wide_inputs(monkeypatch):
    from lstm_ae import model as model_module

    calls = []
    monkeypatch.setattr(model_module.torch._VF, "lstm", lambda *a: calls.append(a))
    lstm = torch.nn.LSTM(1, 4, batch_first=True)
    wide = torch.nn.LSTM(model_module.AMX_MIN_INPUT, 4, batch_first=True)
    monkeypatch.setattr(torch.nn.LSTM, "forward", lambda self, x: ("module", x.shape[-1]))
    assert model_module.run_lstm(lstm, torch.rand(2, 3, 1)) == ("module", 1)  # fp32
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert model_module.run_lstm(wide, torch.rand(2, 3, model_module.AMX_MIN_INPUT)) == ("module", 16)
    assert calls == []


@pytest.mark.parametrize("preset,expected", [(None, "1"), ("0", "0")])
def test_importing_the_package_turns_on_huge_pages_unless_the_user_chose(preset, expected):
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "THP_MEM_ALLOC_ENABLE"}
    if preset is not None:
        env["THP_MEM_ALLOC_ENABLE"] = preset
    code = "import os, lstm_ae; print(os.environ['THP_MEM_ALLOC_ENABLE'])"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == expected
