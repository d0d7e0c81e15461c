"""The native recurrent step (src/native/kernels/recurrent, plan "recurrent") against the NumPy
references of ir/ops/recurrent.py: LSTM / GRU / RNN cells and sequences, several layers, both
directions, batch first, without biases, an LSTM with projections, unbatched inputs, sizes that
are not multiples of the vector width; every instruction set the CPU has and the portable kernels,
1 and 2 threads. Arguments the kernel does not take go to the reference."""
import numpy as np
import pytest

from pocketml import _native
from pocketml.ir.registry import get as get_op
from pocketml.runtime import native_loop

RNG = np.random.default_rng(7)
GATES = {"lstm": 4, "gru": 3, "rnn": 1}


def run(op, attrs, arrays, threads):
    """(outputs, fallback calls) of one recurrent step as the native loop specs it."""
    opdef = get_op(op)
    attrs = opdef.with_defaults(attrs)
    kind, params = native_loop._recurrent_spec(op, attrs)
    assert kind == "recurrent"
    n = len(arrays)
    nout = len(opdef.compute([a for a in arrays], attrs))
    slots = [i if a is not None else -1 for i, a in enumerate(arrays)]
    p = _native.Program(n + nout, [i for i, a in enumerate(arrays) if a is not None],
                        list(range(n, n + nout)), [], [(kind, slots, list(range(n, n + nout)), [], [], params)],
                        0, 0, threads)
    calls = []

    def fallback(i, args):
        calls.append(i)
        return opdef.compute(list(args), attrs)
    outs = p.run([a for a in arrays if a is not None], [], [], fallback)
    return outs, len(calls)


def weights(kind, layers, dirs, I, H, biases=True, proj=0):
    G, Hout = GATES[kind], proj or H
    ws = []
    for layer in range(layers):
        for _ in range(dirs):
            In = I if layer == 0 else dirs * Hout
            ws += [RNG.standard_normal((G * H, In)).astype(np.float32) * 0.4,
                   RNG.standard_normal((G * H, Hout)).astype(np.float32) * 0.4]
            if biases:
                ws += [RNG.standard_normal(G * H).astype(np.float32) * 0.2 for _ in range(2)]
            if proj:
                ws.append(RNG.standard_normal((Hout, H)).astype(np.float32) * 0.4)
    return ws


def check(outs, want):
    assert len(outs) == len(want)
    for g, w in zip(outs, want):
        assert g.dtype == w.dtype and g.shape == w.shape
        np.testing.assert_allclose(g, w, rtol=2e-5, atol=2e-6)


# (kind, layers, bidirectional, batch_first, biases, proj, x shape, with initial state)
SEQUENCES = [
    ("lstm", 1, False, False, True, 0, (9, 3, 7), True),      # (T, B, I)
    ("lstm", 2, True, True, True, 0, (2, 11, 5), True),       # batch first, both directions
    ("lstm", 3, False, False, False, 0, (4, 1, 17), False),   # three layers, no biases
    ("lstm", 1, True, False, True, 3, (6, 2, 5), True),       # projections
    ("lstm", 1, False, False, True, 0, (13, 6), False),       # unbatched (T, I)
    ("gru", 2, True, False, True, 0, (5, 4, 9), True),
    ("gru", 1, False, True, True, 0, (3, 1, 33), False),
    ("rnn", 2, False, False, True, 0, (7, 2, 3), True),
    ("rnn_relu", 1, True, True, False, 0, (2, 5, 6), False),
]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("case", SEQUENCES, ids=lambda c: f"{c[0]}-L{c[1]}-bi{int(c[2])}-bf{int(c[3])}-p{c[5]}")
def test_sequences_match_the_reference(simd_level, threads, case):
    kind, layers, bi, bf, biases, proj, xshape, with_state = case
    op = kind.split("_")[0]
    attrs = {"num_layers": layers, "bidirectional": bi, "batch_first": bf, "has_biases": biases}
    if op == "lstm":
        attrs["proj_size"] = proj
    if kind == "rnn_relu":
        attrs["nonlinearity"] = "relu"
    D, H = 2 if bi else 1, 10
    x = RNG.standard_normal(xshape).astype(np.float32)
    lead = () if len(xshape) == 2 else ((xshape[0] if bf else xshape[1]),)
    h0 = RNG.standard_normal((layers * D, *lead, proj or H)).astype(np.float32) if with_state else None
    c0 = RNG.standard_normal((layers * D, *lead, H)).astype(np.float32) if with_state else None
    arrays = [x, h0] + ([c0] if op == "lstm" else []) + weights(op, layers, D, xshape[-1], H, biases, proj)
    outs, calls = run(op, attrs, arrays, threads)
    assert calls == 0
    check(outs, get_op(op).compute(arrays, get_op(op).with_defaults(attrs)))


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn", "rnn_relu"])
@pytest.mark.parametrize("batch", [None, 1, 5])
@pytest.mark.parametrize("state,biases", [(True, True), (False, False)])
def test_cells_match_the_reference(simd_level, threads, kind, batch, state, biases):
    op = kind.split("_")[0]
    attrs = {"nonlinearity": "relu"} if kind == "rnn_relu" else {}
    I, H, G = 19, 21, GATES[op]
    lead = () if batch is None else (batch,)
    x = RNG.standard_normal((*lead, I)).astype(np.float32)
    hc = [RNG.standard_normal((*lead, H)).astype(np.float32) if state else None for _ in range(2 if op == "lstm" else 1)]
    w = [RNG.standard_normal((G * H, I)).astype(np.float32) * 0.4, RNG.standard_normal((G * H, H)).astype(np.float32) * 0.4]
    b = [RNG.standard_normal(G * H).astype(np.float32) if biases else None for _ in range(2)]
    arrays = [x, *hc, *w, *b]
    outs, calls = run(f"{op}_cell", attrs, arrays, threads)
    assert calls == 0
    check(outs, get_op(f"{op}_cell").compute(arrays, get_op(f"{op}_cell").with_defaults(attrs)))


def test_what_the_kernel_does_not_take_goes_to_the_reference():
    x = RNG.standard_normal((3, 2, 4)).astype(np.float32)
    ws = weights("gru", 1, 1, 4, 6)
    attrs = {"num_layers": 1}
    # float64 weights
    outs, calls = run("gru", attrs, [x, None, ws[0].astype(np.float64), *ws[1:]], 1)
    assert calls == 1
    # a wrong input size: the reference's error
    with pytest.raises(ValueError):
        run("gru", attrs, [x[..., :3], None, *ws], 1)
