"""Convolution folding: an inference batch norm after a convolution becomes the convolution's
weight and bias, and a zero `pad` before it becomes its padding; any other inference batch norm
of a float32 tensor (after an activation, as CREPE's) becomes a `mul` and an `add` by per-channel
constants, the reference's own float32 arithmetic (bit for bit), which every backend runs as
plain elementwise ops.

Both are what a trained CNN spells out op by op (conv → batch_norm → activation, with TF-style
"same" padding as an explicit pad) and what the native runtime would otherwise run as separate
passes over each feature map. Folding a batch norm with running statistics is exact in real
arithmetic: w' = w * g / sqrt(var + eps) per output channel, b' = (b - mean) * g / sqrt(var + eps)
+ beta, computed in float64 and rounded once. Only a conv whose output nothing else reads, with
constant weights, is folded; new weights get new keys (a weight another op shares is left alone).
"""
from __future__ import annotations

import numpy as np

from ..ir.program import Function, Op, Program, Value
from ..ir.types import DType, TensorType


def fold_conv(program: Program) -> Program:
    for fn in program.functions.values():
        _fold_pads(fn)
        _fold_batch_norms(program, fn)
        _lower_batch_norms(program, fn)
    return program


def _fold_pads(fn: Function) -> None:
    producers, users = fn.producers(), fn.users()
    dead = set()
    for op in fn.ops:
        if op.type != "conv":
            continue
        pad = producers.get(op.inputs[0])
        if pad is None or pad.type != "pad" or not _foldable_pad(pad, fn, users):
            continue
        pads = pad.attrs["pads"]
        n = len(pads) // 2 - 2  # spatial dims
        own = list(op.attrs.get("pads") or [0] * (2 * n))
        if len(own) != 2 * n:
            continue
        op.attrs = {**op.attrs, "pads": [int(own[i]) + int(pads[4 + i]) for i in range(2 * n)]}
        op.inputs = [pad.inputs[0], *op.inputs[1:]]
        dead.add(id(pad))
    fn.ops = [op for op in fn.ops if id(op) not in dead]


def _foldable_pad(pad: Op, fn: Function, users: dict) -> bool:
    pads = pad.attrs.get("pads")
    value = pad.attrs.get("value", 0.0)
    return (pad.attrs.get("mode", "constant") == "constant" and isinstance(value, (int, float))
            and float(value) == 0.0 and isinstance(pads, list) and len(pads) >= 6
            and all(isinstance(p, int) and p >= 0 for p in pads) and not any(pads[:4])
            and len(users.get(pad.output.name, [])) == 1 and pad.output.name not in fn.outputs)


def _fold_batch_norms(program: Program, fn: Function) -> None:
    producers, users, taken = fn.producers(), fn.users(), set(fn.values())
    replaced: dict[int, list[Op]] = {}  # id(conv) -> ops that take its place
    dead = set()
    for bn in fn.ops:
        if bn.type != "batch_norm":
            continue
        conv = producers.get(bn.inputs[0])
        if (conv is None or conv.type != "conv" or id(conv) in replaced or len(users[bn.inputs[0]]) != 1
                or bn.inputs[0] in fn.outputs):
            continue
        names = [*(list(conv.inputs[1:]) + [None])[:2], *(list(bn.inputs[1:]) + [None] * 4)[:4]]
        w, b, mean, var, gamma, beta = (_const(program, producers, name) for name in names)
        if w is None or mean is None or var is None or not np.issubdtype(w.dtype, np.floating):
            continue
        if any(name is not None and a is None for name, a in zip(names, (w, b, mean, var, gamma, beta))):
            continue  # a non-constant bias or affine parameter
        cout = w.shape[0]
        if any(a is not None and a.size != cout for a in (b, mean, var, gamma, beta)):
            continue
        alpha = 1.0 / np.sqrt(var.astype(np.float64).reshape(cout) + float(bn.attrs.get("eps", 1e-5)))
        if gamma is not None:
            alpha = alpha * gamma.astype(np.float64).reshape(cout)
        new_w = (w.astype(np.float64) * alpha.reshape(cout, *[1] * (w.ndim - 1))).astype(w.dtype)
        shift = -mean.astype(np.float64).reshape(cout)
        if b is not None:
            shift = shift + b.astype(np.float64).reshape(cout)
        new_b = shift * alpha + (0.0 if beta is None else beta.astype(np.float64).reshape(cout))
        new_b = new_b.astype(w.dtype)
        consts = [_const_op(program, taken, f"{conv.output.name}_folded_weight", new_w, conv.loc),
                  _const_op(program, taken, f"{conv.output.name}_folded_bias", new_b, conv.loc)]
        folded = Op("conv", [conv.inputs[0], consts[0].output.name, consts[1].output.name], list(bn.outputs),
                    dict(conv.attrs), conv.loc)
        replaced[id(conv)] = [*consts, folded]
        dead.add(id(bn))
    if replaced:
        fn.ops = [new for op in fn.ops if id(op) not in dead for new in replaced.get(id(op), [op])]


def _lower_batch_norms(program: Program, fn: Function) -> None:
    producers, taken = fn.producers(), set(fn.values())
    values = fn.values()
    replaced: dict[int, list[Op]] = {}
    for bn in fn.ops:
        if bn.type != "batch_norm" or bn.inputs[0] not in values:
            continue
        x = values[bn.inputs[0]].type
        names = (list(bn.inputs[1:]) + [None] * 4)[:4]
        mean, var, gamma, beta = (_const(program, producers, name) for name in names)
        if (x.dtype != DType.float32 or x.rank < 2 or mean is None or var is None
                or any(name is not None and a is None for name, a in zip(names, (mean, var, gamma, beta)))):
            continue
        c = x.shape[1]
        if not isinstance(c, int) or any(a is not None and a.size != c for a in (mean, var, gamma, beta)):
            continue
        # ir/ops/norm.py batch_norm with running statistics, its arithmetic unchanged
        alpha = 1.0 / np.sqrt(var.astype(np.float64).reshape(c) + float(bn.attrs.get("eps", 1e-5)))
        if gamma is not None:
            alpha = alpha * gamma.reshape(c)
        shift = -mean.astype(np.float64).reshape(c) * alpha
        if beta is not None:
            shift = shift + beta.reshape(c)
        shape = (c,) + (1,) * (x.rank - 2)
        consts = [_const_op(program, taken, f"{bn.output.name}_scale", alpha.astype(np.float32).reshape(shape), bn.loc),
                  _const_op(program, taken, f"{bn.output.name}_shift", shift.astype(np.float32).reshape(shape), bn.loc)]
        scaled = Value(_fresh(taken, f"{bn.output.name}_scaled"), x)
        replaced[id(bn)] = [*consts, Op("mul", [bn.inputs[0], consts[0].output.name], [scaled], {}, bn.loc),
                            Op("add", [scaled.name, consts[1].output.name], list(bn.outputs), {}, bn.loc)]
    if replaced:
        fn.ops = [new for op in fn.ops for new in replaced.get(id(op), [op])]


def _fresh(taken: set, base: str) -> str:
    name, i = base, 1
    while name in taken:
        name, i = f"{base}_{i}", i + 1
    taken.add(name)
    return name


def _const(program: Program, producers: dict, name: str | None) -> np.ndarray | None:
    op = producers.get(name) if name is not None else None
    return program.weights.get(op.attrs["weight"]) if op is not None and op.type == "const" else None


def _const_op(program: Program, taken: set, base: str, array: np.ndarray, loc: str) -> Op:
    """A const op for a new weight; its key and value name are fresh (added to `taken`)."""
    key, i = base, 1
    while key in program.weights or key in taken:
        key, i = f"{base}_{i}", i + 1
    program.weights[key] = array
    taken.add(key)
    return Op("const", [], [Value(key, TensorType(DType.of(array.dtype), array.shape))], {"weight": key}, loc)
