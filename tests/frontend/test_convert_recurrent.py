"""Conversion of LSTM / GRU / RNN layers and cells end to end.

nn.LSTM & co. are kept whole (aten.lstm.input -> the `lstm` op, ...). Without an initial state the
exported graph makes one with aten.zeros (creation family); decomposed programs unroll the
recurrence into mm/sigmoid/tanh/... (elementwise, linalg and shape families).
"""
import pytest
import torch
from torch import nn

from helpers import check_module
from nn_op_helpers import check_decomposed, op_types

torch.manual_seed(0)
pytestmark = pytest.mark.filterwarnings("ignore:The tensor attributes", "ignore:LSTM with projections")


class Seq(nn.Module):
    """Runs a recurrent layer with or without explicit initial states; returns every output flat."""

    def __init__(self, rnn):
        super().__init__()
        self.rnn = rnn

    def forward(self, x, *state):
        if isinstance(self.rnn, nn.LSTM):
            out, (h, c) = self.rnn(x, tuple(state)) if state else self.rnn(x)
            return out, h, c
        out, h = self.rnn(x, state[0]) if state else self.rnn(x)
        return out, h


LAYERS = [
    ("lstm", nn.LSTM(4, 8, batch_first=True)),
    ("lstm_2layer_bidir", nn.LSTM(4, 8, num_layers=2, bidirectional=True)),
    ("lstm_proj_nobias", nn.LSTM(4, 8, proj_size=3, bias=False, batch_first=True)),
    ("gru", nn.GRU(4, 8)),
    ("gru_2layer_bidir", nn.GRU(4, 8, num_layers=2, bidirectional=True, batch_first=True)),
    ("rnn_relu", nn.RNN(4, 8, nonlinearity="relu")),
    ("rnn_tanh_bidir", nn.RNN(4, 8, bidirectional=True, batch_first=True)),
]


def _inputs(rnn, with_state, batch=2, T=5):
    bf = rnn.batch_first
    x = torch.randn((batch, T, 4) if bf else (T, batch, 4))
    if not with_state:
        return (x,)
    n = rnn.num_layers * (2 if rnn.bidirectional else 1)
    h = torch.randn(n, batch, getattr(rnn, "proj_size", 0) or rnn.hidden_size)
    if isinstance(rnn, nn.LSTM):
        return x, h, torch.randn(n, batch, rnn.hidden_size)
    return x, h


@pytest.mark.parametrize("name,rnn", LAYERS, ids=[n for n, _ in LAYERS])
def test_sequence_layers_with_state(name, rnn, tmp_path):
    m = check_module(Seq(rnn), _inputs(rnn, True), tmp_path)
    assert op_types(m) == [name.split("_")[0]]  # one whole op


@pytest.mark.parametrize("name,rnn", LAYERS[:2] + LAYERS[3:4], ids=["lstm", "lstm_2layer_bidir", "gru"])
def test_sequence_layers_zero_state(name, rnn, tmp_path):
    """No initial state: torch builds zeros (aten.zeros, creation family)."""
    check_module(Seq(rnn), _inputs(rnn, False), tmp_path)


def test_unbatched_lstm(tmp_path):
    rnn = nn.LSTM(4, 8)
    check_module(Seq(rnn), (torch.randn(5, 4), torch.randn(1, 8), torch.randn(1, 8)), tmp_path)


class Cells(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTMCell(4, 8)
        self.gru = nn.GRUCell(4, 8, bias=False)
        self.rnn = nn.RNNCell(4, 8, nonlinearity="relu")

    def forward(self, x, h, c):
        h1, c1 = self.lstm(x, (h, c))
        return h1, c1, self.gru(x, h), self.rnn(x, h)


def test_cells(tmp_path):
    m = check_module(Cells(), (torch.randn(3, 4), torch.randn(3, 8), torch.randn(3, 8)), tmp_path)
    assert {"lstm_cell", "gru_cell", "rnn_cell"} <= set(op_types(m))


def test_cell_zero_state(tmp_path):
    """No state: torch builds zeros (aten.zeros, creation family)."""
    check_module(nn.GRUCell(4, 8), torch.randn(3, 4), tmp_path)


@pytest.mark.parametrize("name,rnn", [LAYERS[1], LAYERS[3]], ids=["lstm_2layer_bidir", "gru"])
def test_decomposed_sequence(name, rnn):
    """Decomposed programs unroll the recurrence into elementwise/linalg/shape ops."""
    check_decomposed(Seq(rnn), _inputs(rnn, True, T=2))


def test_decomposed_cells():
    check_decomposed(Cells(), (torch.randn(3, 4), torch.randn(3, 8), torch.randn(3, 8)))
