"""Recurrent ops mirroring torch's nn.LSTM / nn.GRU / nn.RNN (multi-layer, bidirectional) and cells.

Weights are torch's, in torch's order (`*weights`): for each layer, for each direction (forward,
then reverse): w_ih (G*H, I), w_hh (G*H, H_out), then b_ih (G*H,), b_hh (G*H,) if has_biases, then
w_hr (H_out, H) for an LSTM with projections. G is 4 for lstm (gates i, f, g, o), 3 for gru
(r, z, n), 1 for rnn. x is (T, B, I), or (B, T, I) with batch_first, or unbatched (T, I);
h0/c0 are (layers*directions, B, H) (no B when unbatched) and zeros when omitted.
"""
from __future__ import annotations

import numpy as np

from ..registry import register
from ..types import TensorType

_GATES = {"lstm": 4, "gru": 3, "rnn": 1}


def _sigmoid(x):
    # numerically safe logistic in x's dtype
    return (0.5 * (np.tanh(0.5 * x) + 1)).astype(x.dtype, copy=False)


def _per_layer(kind, attrs):
    return (2 if attrs["has_biases"] else 0) + 2 + (1 if kind == "lstm" and attrs.get("proj_size") else 0)


def _seq_infer(kind):
    def infer(types, attrs):
        x = types[0]
        weights = types[3:] if kind == "lstm" else types[2:]
        L, D = attrs["num_layers"], 2 if attrs["bidirectional"] else 1
        if len(weights) != L * D * _per_layer(kind, attrs):
            raise ValueError(f"{kind}: expected {L * D * _per_layer(kind, attrs)} weights for {L} layer(s), "
                             f"{D} direction(s), has_biases={attrs['has_biases']}, got {len(weights)}")
        if x.rank not in (2, 3) or not x.dtype.is_float:
            raise ValueError(f"{kind}: x must be a float tensor of rank 2 or 3, got {x}")
        w_hh = weights[1]
        H = w_hh.shape[0] // _GATES[kind] if isinstance(w_hh.shape[0], int) else w_hh.shape[0]
        Hout = attrs.get("proj_size") or H
        if x.rank == 2:
            T, lead = x.shape[0], ()
            out = (T, D * Hout)
        elif attrs["batch_first"]:
            B, T = x.shape[:2]
            lead = (B,)
            out = (B, T, D * Hout)
        else:
            T, B = x.shape[:2]
            lead = (B,)
            out = (T, B, D * Hout)
        types_out = [TensorType(x.dtype, out), TensorType(x.dtype, (L * D, *lead, Hout))]
        if kind == "lstm":
            types_out.append(TensorType(x.dtype, (L * D, *lead, H)))
        return types_out
    return infer


def _cell_step(kind, gx, h, c, w_hh, b_hh, w_hr, nonlinearity):
    """One step: gx = x @ w_ih^T + b_ih (precomputed); returns (h', c')."""
    gh = h @ w_hh.T
    if b_hh is not None:
        gh = gh + b_hh
    if kind == "lstm":
        i, f, g, o = np.split(gx + gh, 4, axis=-1)
        c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
        h = _sigmoid(o) * np.tanh(c)
        if w_hr is not None:
            h = h @ w_hr.T
        return h, c
    if kind == "gru":
        xr, xz, xn = np.split(gx, 3, axis=-1)
        hr, hz, hn = np.split(gh, 3, axis=-1)
        r = _sigmoid(xr + hr)
        z = _sigmoid(xz + hz)
        n = np.tanh(xn + r * hn)
        return (1 - z) * n + z * h, None
    pre = gx + gh
    return (np.tanh(pre) if nonlinearity == "tanh" else np.maximum(pre, 0)), None


def _run_seq(kind, a, attrs):
    x = a[0]
    dtype = x.dtype
    f = np.float64 if dtype == np.float64 else np.float32
    h0 = a[1]
    c0 = a[2] if kind == "lstm" else None
    weights = [w.astype(f, copy=False) for w in a[3 if kind == "lstm" else 2:]]
    L, D = attrs["num_layers"], 2 if attrs["bidirectional"] else 1
    per = _per_layer(kind, attrs)
    unbatched = x.ndim == 2
    x = x.astype(f, copy=False)
    if unbatched:
        x = x[:, None]
    elif attrs["batch_first"]:
        x = x.transpose(1, 0, 2)
    T, B = x.shape[:2]
    H = weights[1].shape[0] // _GATES[kind]
    Hout = attrs.get("proj_size") or H

    def state(s, size):
        if s is None:
            return np.zeros((L * D, B, size), dtype=f)
        s = s.astype(f, copy=False)
        return s[:, None] if unbatched else s
    h0, c0 = state(h0, Hout), state(c0, H) if kind == "lstm" else None
    hn, cn = [], []
    inp = x
    for layer in range(L):
        outs = []
        for d in range(D):
            k = (layer * D + d) * per
            w_ih, w_hh = weights[k], weights[k + 1]
            b_ih, b_hh = (weights[k + 2], weights[k + 3]) if attrs["has_biases"] else (None, None)
            w_hr = weights[k + per - 1] if kind == "lstm" and attrs.get("proj_size") else None
            gx = inp @ w_ih.T
            if b_ih is not None:
                gx = gx + b_ih
            h = h0[layer * D + d]
            c = c0[layer * D + d] if kind == "lstm" else None
            out = np.empty((T, B, Hout), dtype=f)
            steps = range(T - 1, -1, -1) if d == 1 else range(T)
            for t in steps:
                h, c = _cell_step(kind, gx[t], h, c, w_hh, b_hh, w_hr, attrs.get("nonlinearity"))
                out[t] = h
            outs.append(out)
            hn.append(h)
            cn.append(c)
        inp = outs[0] if D == 1 else np.concatenate(outs, axis=-1)
    out = inp
    hn = np.stack(hn)
    if unbatched:
        out, hn = out[:, 0], hn[:, 0]
    elif attrs["batch_first"]:
        out = out.transpose(1, 0, 2)
    res = [np.ascontiguousarray(out, dtype=dtype), np.ascontiguousarray(hn, dtype=dtype)]
    if kind == "lstm":
        cn = np.stack(cn)
        res.append(np.ascontiguousarray(cn[:, 0] if unbatched else cn, dtype=dtype))
    return res


_SEQ_ATTRS = {"num_layers": 1, "bidirectional": False, "batch_first": False, "has_biases": True}


@register("lstm", inputs=("x", "h0?", "c0?", "*weights"), infer=_seq_infer("lstm"),
          attrs={**_SEQ_ATTRS, "proj_size": 0})
def lstm(a, attrs):
    """torch's nn.LSTM: returns (output, h_n, c_n). proj_size > 0: LSTM with projections (w_hr)."""
    return _run_seq("lstm", a, attrs)


@register("gru", inputs=("x", "h0?", "*weights"), infer=_seq_infer("gru"), attrs=dict(_SEQ_ATTRS))
def gru(a, attrs):
    """torch's nn.GRU: returns (output, h_n)."""
    return _run_seq("gru", a, attrs)


@register("rnn", inputs=("x", "h0?", "*weights"), infer=_seq_infer("rnn"),
          attrs={**_SEQ_ATTRS, "nonlinearity": "tanh"})
def rnn(a, attrs):
    """torch's nn.RNN (nonlinearity "tanh" or "relu"): returns (output, h_n)."""
    if attrs["nonlinearity"] not in ("tanh", "relu"):
        raise ValueError(f"rnn nonlinearity must be tanh or relu, got {attrs['nonlinearity']!r}")
    return _run_seq("rnn", a, attrs)


def _cell_infer(kind):
    def infer(types, attrs):
        x, h = types[0], types[1]
        if x.rank not in (1, 2) or not x.dtype.is_float:
            raise ValueError(f"{kind}_cell: x must be a float tensor (B, I) or (I,), got {x}")
        if h is None:
            w_hh = types[4 if kind == "lstm" else 3]
            H = w_hh.shape[1]
            h = TensorType(x.dtype, (*x.shape[:-1], H))
        return [h, h] if kind == "lstm" else [h]
    return infer


def _run_cell(kind, a, attrs):
    x = a[0]
    dtype = x.dtype
    f = np.float64 if dtype == np.float64 else np.float32
    if kind == "lstm":
        x, h, c, w_ih, w_hh, b_ih, b_hh = a
    else:
        x, h, w_ih, w_hh, b_ih, b_hh = a
        c = None
    H = w_hh.shape[1]
    x = x.astype(f, copy=False)
    w_ih, w_hh = w_ih.astype(f, copy=False), w_hh.astype(f, copy=False)
    zeros = np.zeros((*x.shape[:-1], H), dtype=f)
    h = zeros if h is None else h.astype(f, copy=False)
    if kind == "lstm":
        c = zeros if c is None else c.astype(f, copy=False)
    gx = x @ w_ih.T
    if b_ih is not None:
        gx = gx + b_ih.astype(f, copy=False)
    h, c = _cell_step(kind, gx, h, c, w_hh, None if b_hh is None else b_hh.astype(f, copy=False), None,
                      attrs.get("nonlinearity"))
    return [h.astype(dtype, copy=False)] + ([c.astype(dtype, copy=False)] if kind == "lstm" else [])


@register("lstm_cell", inputs=("x", "h?", "c?", "w_ih", "w_hh", "b_ih?", "b_hh?"), infer=_cell_infer("lstm"))
def lstm_cell(a, attrs):
    """torch's nn.LSTMCell step: returns (h', c'); h and c are zeros when omitted."""
    return _run_cell("lstm", a, attrs)


@register("gru_cell", inputs=("x", "h?", "w_ih", "w_hh", "b_ih?", "b_hh?"), infer=_cell_infer("gru"))
def gru_cell(a, attrs):
    """torch's nn.GRUCell step: returns h'."""
    return _run_cell("gru", a, attrs)


@register("rnn_cell", inputs=("x", "h?", "w_ih", "w_hh", "b_ih?", "b_hh?"), infer=_cell_infer("rnn"),
          attrs={"nonlinearity": "tanh"})
def rnn_cell(a, attrs):
    """torch's nn.RNNCell step (nonlinearity "tanh" or "relu"): returns h'."""
    return _run_cell("rnn", a, attrs)
