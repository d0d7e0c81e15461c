"""Shared test helpers: convert a torch module, round-trip it through a package, compare with torch."""
from __future__ import annotations

import itertools
import math

import numpy as np


def to_numpy(t):
    return t.detach().cpu().numpy()


def check_module(module, inputs, tmp_path=None, atol=1e-5, rtol=1e-5, **convert_kwargs):
    """Convert `module`, save+load it (if tmp_path), predict, and compare every output with torch.

    Returns the loaded pocketml Model.
    """
    import torch
    import pocketml as pm

    module = module.eval()
    if not isinstance(inputs, tuple):
        inputs = (inputs,)
    with torch.no_grad():
        expected = module(*inputs)
    if isinstance(expected, dict):
        expected = list(expected.values())
    elif isinstance(expected, torch.Tensor):
        expected = [expected]
    m = pm.convert(module, inputs, **convert_kwargs)
    if tmp_path is not None:
        path = tmp_path / "model.pocket"
        m.save(path)
        m = pm.load(path)
    out = m.predict({n: to_numpy(t) for n, t in zip(m.input_names, inputs)})
    assert len(out) == len(expected)
    for name, want in zip(m.output_names, expected):
        got = out[name]
        want = to_numpy(want)
        assert got.shape == want.shape, (name, got.shape, want.shape)
        assert got.dtype == want.dtype, (name, got.dtype, want.dtype)
        if want.dtype == bool or np.issubdtype(want.dtype, np.integer):
            np.testing.assert_array_equal(got, want)
        else:
            np.testing.assert_allclose(got, want, atol=atol, rtol=rtol, err_msg=name)
    return m


def run(name, arrays, **attrs):
    """Compute op `name` and check that its inferred types equal the computed ones.

    One output comes back as an array, several as a list.
    """
    import json

    from pocketml.ir import TensorType, get_op

    opdef = get_op(name)
    full = opdef.with_defaults(attrs)
    json.dumps(full, allow_nan=False)  # attributes must be strict JSON (packages refuse NaN/inf)
    inferred = opdef.infer([None if a is None else TensorType.of(a) for a in arrays], full)
    outs = [np.asarray(o) for o in opdef.compute(arrays, full)]
    assert [TensorType.of(o) for o in outs] == inferred
    _check_native(name, arrays, full, inferred, outs)
    return outs if len(outs) > 1 else outs[0]


# ops a one-op function cannot run alone (they need a declared state or a constant weight)
_NOT_ALONE = {"read_state", "write_state", "update_state_slice", "const"}


def _check_native(name, arrays, attrs, types, want):
    """The conformance check: the op as a one-op function on the native backend (the C++ step
    loop and its kernels, or the reference called back from it) gives the reference's outputs:
    bit for bit, or within float32 rounding where a native kernel computes it."""
    from pocketml.ir import Function, Op, Program, TensorType, Value
    from pocketml.runtime import native
    from pocketml.runtime.executor import Executor

    if name in _NOT_ALONE or not native.available():
        return
    inputs = [Value(f"in{i}", TensorType.of(a)) for i, a in enumerate(arrays) if a is not None]
    names = iter(v.name for v in inputs)
    op = Op(name, [None if a is None else next(names) for a in arrays],
            [Value(f"out{i}", t) for i, t in enumerate(types)], attrs)
    fn = Function("main", inputs, [op], [v.name for v in op.outputs])
    ex = Executor(Program({"main": fn}, {}), fn, backend="native")
    got = ex.run([np.ascontiguousarray(a).reshape(a.shape) for a in arrays if a is not None])
    for g, w in zip(got, want):
        assert g.shape == w.shape and g.dtype == w.dtype, (name, g.shape, w.shape, g.dtype, w.dtype)
        if ex.steps[0].kernel == "numpy" or ex.steps[0].kernel.startswith("native:") and name in (
                "add", "sub", "mul", "div", "neg", "cast", "concat", "arange"):
            np.testing.assert_array_equal(g, w, err_msg=f"{name} on the native backend")
        else:
            finite = np.abs(w[np.isfinite(w)]) if w.dtype.kind in "fc" else np.abs(w)
            scale = float(finite.max()) if finite.size else 0.0
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6 * max(scale, 1.0),
                                       err_msg=f"{name} on the native backend ({ex.steps[0].kernel})")


def infer(name, types, **attrs):
    """Op `name`'s inferred output types for inputs given as (dtype, shape) pairs."""
    from pocketml.ir import DType, TensorType, get_op

    opdef = get_op(name)
    return opdef.infer([TensorType(DType(d), s) for d, s in types], opdef.with_defaults(attrs))


def op_types(model) -> list[str]:
    """The op types of a converted Model's main function (consts left out)."""
    return [op.type for op in model.program.main.ops if op.type != "const"]


def _flat(v) -> list:
    if isinstance(v, (list, tuple)):
        return [t for x in v for t in _flat(x)]
    return [v]


def Fn(*fns):
    """A module whose forward(*args) returns every result of `fns`, flattened into one tuple (a
    single tensor result stays a tensor): one export then checks many lowerings, keeping tests fast."""
    import torch

    class _Fn(torch.nn.Module):
        def forward(self, *args):
            results = [fn(*args) for fn in fns]
            if len(results) == 1 and not isinstance(results[0], (list, tuple)):
                return results[0]
            return tuple(t for r in results for t in _flat(r))

    return _Fn()


def kmeans_brute_force(x, k, w=None):
    """Minimum cost over every partition of the sorted distinct values into contiguous runs."""
    w = np.ones_like(x) if w is None else w
    u = np.unique(x)
    best = math.inf
    for cuts in itertools.combinations(range(1, len(u)), min(k, len(u)) - 1):
        b = [0, *cuts, len(u)]
        cost = 0.0
        for lo, hi in zip(b[:-1], b[1:]):
            sel = (x >= u[lo]) & (x <= u[hi - 1])
            if w[sel].sum() > 0:
                c = (w[sel] * x[sel]).sum() / w[sel].sum()
                cost += float((w[sel] * (x[sel] - c) ** 2).sum())
        best = min(best, cost)
    return best


def every_weight(spec, min_weight_size=0):
    """A config giving `spec` to every compressible weight, output heads included (a global
    config below 8 bits keeps those at int8): for tests of a format's kernels."""
    import pocketml as pm
    from pocketml.compress.apply import WEIGHT_AXES

    return pm.OptimizationConfig(op_type_configs={t: spec for t in WEIGHT_AXES}, min_weight_size=min_weight_size)


def tiny_llamas(context: int = 24):
    """(torch base, its package with a KV cache of `context` tokens as states) of a tiny random
    Llama (untied: a tied random model repeats its last token); vocabulary 40, EOS id 39."""
    import torch

    import pocketml as pm
    from pocketml.generation import causal_mask
    from pocketml.zoo._llama import CachedLlama, Llama, LlamaConfig

    cfg = LlamaConfig(vocab_size=40, hidden_size=32, intermediate_size=64, num_layers=2, num_heads=4,
                      num_kv_heads=2, head_dim=8, rope_theta=10000.0, rms_norm_eps=1e-5, max_positions=64,
                      tie_embeddings=False)
    torch.manual_seed(0)
    base = Llama(cfg).eval()
    seq = torch.export.Dim("seq", min=1, max=context)
    ctx = torch.export.Dim("context", min=1, max=context)
    cached = pm.convert(CachedLlama(base, context).eval(),
                        (torch.zeros(1, 3, dtype=torch.int64), torch.from_numpy(causal_mask(0, 3))),
                        input_names=["input_ids", "causal_mask"], output_names=["logits"],
                        dynamic_shapes=({1: seq}, {2: seq, 3: ctx}))
    return base, cached


class CharTokenizer:
    """Token i is the letter chr(ord('a') + i % 26); EOS is id 39 (tiny_llamas' vocabulary)."""
    eos_id = 39

    def encode(self, text, add_special=False):
        return [ord(c) - ord("a") for c in text]

    def decode(self, ids):
        return "".join(chr(ord("a") + i % 26) for i in ids)

    def decode_stream(self):
        tok = self

        class Stream:
            def feed(self, i):
                return tok.decode([i])

            def flush(self):
                return ""
        return Stream()
