"""Lowerings of torch's LSTM / GRU / RNN (kept whole, incl. multi-layer, bidirectional) and cells."""
from __future__ import annotations

from ..builder import Builder
from ..registry import Unsupported, lowers
from ._nn_util import check_float


def _seq(b: Builder, kind, x, hx, params, has_biases, num_layers, dropout, train, bidirectional, batch_first,
         nonlinearity=None):
    check_float(x, kind)
    if train and dropout:
        raise Unsupported(f"{kind} in training mode with dropout={dropout}")
    per = 4 if has_biases else 2
    dirs = 2 if bidirectional else 1
    attrs = {"num_layers": int(num_layers), "bidirectional": bool(bidirectional),
             "batch_first": bool(batch_first), "has_biases": bool(has_biases)}
    if kind == "lstm" and len(params) == num_layers * dirs * (per + 1):
        attrs["proj_size"] = params[per].shape[0]
    elif len(params) != num_layers * dirs * per:
        raise Unsupported(f"{kind}: {len(params)} weights for {num_layers} layer(s) x {dirs} direction(s)")
    if nonlinearity is not None:
        attrs["nonlinearity"] = nonlinearity
    states = list(hx) if isinstance(hx, (list, tuple)) else [hx]
    return b.op(kind, [x, *states, *params], attrs)


@lowers("aten.lstm.input")
def lstm(b, x, hx, params, has_biases, num_layers, dropout, train, bidirectional, batch_first):
    if len(hx) != 2:
        raise Unsupported(f"lstm with {len(hx)} state tensors")
    return _seq(b, "lstm", x, hx, params, has_biases, num_layers, dropout, train, bidirectional, batch_first)


@lowers("aten.gru.input")
def gru(b, x, hx, params, has_biases, num_layers, dropout, train, bidirectional, batch_first):
    return _seq(b, "gru", x, hx, params, has_biases, num_layers, dropout, train, bidirectional, batch_first)


@lowers("aten.rnn_tanh.input")
def rnn_tanh(b, x, hx, params, has_biases, num_layers, dropout, train, bidirectional, batch_first):
    return _seq(b, "rnn", x, hx, params, has_biases, num_layers, dropout, train, bidirectional, batch_first,
                "tanh")


@lowers("aten.rnn_relu.input")
def rnn_relu(b, x, hx, params, has_biases, num_layers, dropout, train, bidirectional, batch_first):
    return _seq(b, "rnn", x, hx, params, has_biases, num_layers, dropout, train, bidirectional, batch_first,
                "relu")


@lowers("aten.lstm_cell.default")
def lstm_cell(b, x, hx, w_ih, w_hh, b_ih=None, b_hh=None):
    check_float(x, "lstm_cell")
    if len(hx) != 2:
        raise Unsupported(f"lstm_cell with {len(hx)} state tensors")
    return b.op("lstm_cell", [x, hx[0], hx[1], w_ih, w_hh, b_ih, b_hh])


@lowers("aten.gru_cell.default")
def gru_cell(b, x, hx, w_ih, w_hh, b_ih=None, b_hh=None):
    check_float(x, "gru_cell")
    return b.op("gru_cell", [x, hx, w_ih, w_hh, b_ih, b_hh])


@lowers("aten.rnn_tanh_cell.default")
def rnn_tanh_cell(b, x, hx, w_ih, w_hh, b_ih=None, b_hh=None):
    check_float(x, "rnn_tanh_cell")
    return b.op("rnn_cell", [x, hx, w_ih, w_hh, b_ih, b_hh], {"nonlinearity": "tanh"})


@lowers("aten.rnn_relu_cell.default")
def rnn_relu_cell(b, x, hx, w_ih, w_hh, b_ih=None, b_hh=None):
    check_float(x, "rnn_relu_cell")
    return b.op("rnn_cell", [x, hx, w_ih, w_hh, b_ih, b_hh], {"nonlinearity": "relu"})
