"""lstm / gru / rnn and their cells against torch.nn modules."""
import numpy as np
import pytest
import torch
from torch import nn

from nn_op_helpers import rand, run_op

rng = np.random.default_rng(6)
pytestmark = pytest.mark.filterwarnings("ignore:LSTM with projections")


def _params(m):
    return [p.detach().numpy() for p in m._flat_weights]


@pytest.mark.parametrize("kind,cls", [("lstm", nn.LSTM), ("gru", nn.GRU), ("rnn", nn.RNN)])
@pytest.mark.parametrize("layers,bidir,batch_first,bias", [
    (1, False, False, True), (2, False, True, True), (1, True, False, False), (2, True, True, True)])
def test_sequence(kind, cls, layers, bidir, batch_first, bias):
    torch.manual_seed(0)
    m = cls(4, 6, num_layers=layers, bidirectional=bidir, batch_first=batch_first, bias=bias).eval()
    D = 2 if bidir else 1
    x = rand(rng, (3, 5, 4))
    h0 = rand(rng, (layers * D, 3 if batch_first else 5, 6))
    attrs = dict(num_layers=layers, bidirectional=bidir, batch_first=batch_first, has_biases=bias)
    with torch.no_grad():
        if kind == "lstm":
            c0 = rand(rng, h0.shape)
            ref_out, (ref_h, ref_c) = m(torch.from_numpy(x), (torch.from_numpy(h0), torch.from_numpy(c0)))
            out, h, c = run_op("lstm", [x, h0, c0, *_params(m)], **attrs)
            np.testing.assert_allclose(c, ref_c.numpy(), atol=1e-5)
        else:
            ref_out, ref_h = m(torch.from_numpy(x), torch.from_numpy(h0))
            if kind == "rnn":
                attrs["nonlinearity"] = "tanh"
            out, h = run_op(kind, [x, h0, *_params(m)], **attrs)
    np.testing.assert_allclose(out, ref_out.numpy(), atol=1e-5)
    np.testing.assert_allclose(h, ref_h.numpy(), atol=1e-5)


def test_lstm_zero_state_unbatched_and_projection():
    torch.manual_seed(1)
    m = nn.LSTM(4, 8, proj_size=3).eval()
    x = rand(rng, (5, 4))  # unbatched (T, I)
    with torch.no_grad():
        ref_out, (ref_h, ref_c) = m(torch.from_numpy(x))
    out, h, c = run_op("lstm", [x, None, None, *_params(m)], proj_size=3)
    for a, r in ((out, ref_out), (h, ref_h), (c, ref_c)):
        np.testing.assert_allclose(a, r.numpy(), atol=1e-5)


def test_rnn_relu():
    torch.manual_seed(2)
    m = nn.RNN(4, 6, nonlinearity="relu").eval()
    x = rand(rng, (5, 2, 4))
    with torch.no_grad():
        ref_out, ref_h = m(torch.from_numpy(x))
    out, h = run_op("rnn", [x, None, *_params(m)], nonlinearity="relu")
    np.testing.assert_allclose(out, ref_out.numpy(), atol=1e-5)
    np.testing.assert_allclose(h, ref_h.numpy(), atol=1e-5)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("batched", [True, False])
def test_cells(bias, batched):
    torch.manual_seed(3)
    lead = (3,) if batched else ()
    x, h, c = rand(rng, lead + (4,)), rand(rng, lead + (6,)), rand(rng, lead + (6,))
    X, H, C = map(torch.from_numpy, (x, h, c))

    def ps(m):
        return [m.weight_ih.detach().numpy(), m.weight_hh.detach().numpy(),
                *((m.bias_ih.detach().numpy(), m.bias_hh.detach().numpy()) if bias else (None, None))]
    with torch.no_grad():
        m = nn.LSTMCell(4, 6, bias=bias)
        rh, rc = m(X, (H, C))
        oh, oc = run_op("lstm_cell", [x, h, c, *ps(m)])
        np.testing.assert_allclose(oh, rh.numpy(), atol=1e-6)
        np.testing.assert_allclose(oc, rc.numpy(), atol=1e-6)
        m = nn.GRUCell(4, 6, bias=bias)
        oh, = run_op("gru_cell", [x, h, *ps(m)])
        np.testing.assert_allclose(oh, m(X, H).numpy(), atol=1e-6)
        oh, = run_op("gru_cell", [x, None, *ps(m)])
        np.testing.assert_allclose(oh, m(X).numpy(), atol=1e-6)
        m = nn.RNNCell(4, 6, bias=bias, nonlinearity="relu")
        oh, = run_op("rnn_cell", [x, h, *ps(m)], nonlinearity="relu")
        np.testing.assert_allclose(oh, m(X, H).numpy(), atol=1e-6)
