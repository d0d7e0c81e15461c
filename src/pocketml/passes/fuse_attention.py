"""Attention fusion: attention spelled out op by op becomes one `scaled_dot_product_attention`.

The chain matched is the one the torch frontend produces for `softmax(q @ k^T * scale + mask) @ v`:

    matmul(q, k^T) → [mul/div by scalar consts] → [add float mask | where(bool, ., -inf)]
      → [cast to float32] → softmax(last axis) → [cast back] → matmul(., v)

k^T may be any value; a `transpose` producing it is looked through (k = its input, re-permuted if
the transpose did more than swap the last two axes). A scalar `mul` applied to q before it was split
into heads (q_proj(x) * scale, then reshape/transpose) is folded into the scale too. A constant
mask equal to a lower-triangular (L, L) one (bool, or 0/-inf) becomes is_causal=True; any other mask
is passed as is. Every intermediate must have exactly one user and not be a function output, and
the fused op's inferred type must equal the replaced output's, so shapes and broadcasting are
exactly those of the unfused chain.

One difference from the unfused chain: a query row whose keys are all masked gives 0 (torch's sdpa)
instead of softmax's NaN.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..ir import registry
from ..ir.program import Function, Op, Program, Value
from ..ir.types import DType, TensorType

_LAYOUT = ("reshape", "transpose")  # ops a scalar multiplier of q commutes with


def fuse_attention(program: Program) -> Program:
    for fn in program.functions.values():
        while _fuse_one(program, fn):
            pass
    return program


@dataclass
class _Match:
    final: Op  # the matmul(probs, v) whose output the fused op defines
    q: str
    k: str
    v: str
    mask: str | None = None
    is_causal: bool = False
    scale: float = 1.0
    dead: list[Op] = field(default_factory=list)  # ops the fused op replaces
    new: list[Op] = field(default_factory=list)  # ops placed before it (k re-permuted, mask negated)
    new_weights: dict[str, np.ndarray] = field(default_factory=dict)
    relink: tuple[Op, int, str] | None = None  # (op, input index, value): drops q's pre-scale mul


class _Graph:
    """Lookups over one function, rebuilt after each fusion."""

    def __init__(self, program: Program, fn: Function):
        self.program, self.fn = program, fn
        self.producer = fn.producers()
        self.users = fn.users()
        self.types = {n: v.type for n, v in fn.values().items()}
        self.weight = {op.output.name: program.weights[op.attrs["weight"]]
                       for op in fn.ops if op.type == "const"}
        self.taken = set(self.types) | set(program.weights)

    def single_use(self, name: str) -> bool:
        return len(self.users.get(name, [])) == 1 and name not in self.fn.outputs

    def made_by(self, name: str, *types: str) -> Op | None:
        op = self.producer.get(name)
        return op if op is not None and op.type in types else None

    def scalar(self, name: str | None) -> float | None:
        """The value of a one-element constant (None for anything else)."""
        w = self.weight.get(name)
        return float(w.reshape(())) if w is not None and w.size == 1 else None

    def fresh(self, base: str, t: TensorType) -> str:
        """A new value name (also free as a weight key) of type `t`."""
        name, i = base, 1
        while name in self.taken:
            name, i = f"{base}_{i}", i + 1
        self.taken.add(name)
        self.types[name] = t
        return name


def _fuse_one(program: Program, fn: Function) -> bool:
    g = _Graph(program, fn)
    for op in fn.ops:
        if op.type == "softmax":
            m = _match(g, op)
            if m is not None:
                _apply(program, fn, m)
                return True
    return False


def _match(g: _Graph, softmax: Op) -> _Match | None:
    x = softmax.inputs[0]
    t = g.types[x]
    if t.rank < 2 or softmax.attrs.get("axis", -1) not in (-1, t.rank - 1):
        return None
    # softmax → [cast back to float16] → matmul(probs, v)
    dead, probs = [softmax], softmax.output.name
    if not g.single_use(probs):
        return None
    final = g.users[probs][0]
    up = g.made_by(x, "cast")
    if up is not None and g.types[up.inputs[0]].dtype == DType.float16 and t.dtype == DType.float32:
        down = final
        if (not g.single_use(x) or down.type != "cast" or down.output.type.dtype != DType.float16
                or not g.single_use(down.output.name)):
            return None
        dead += [up, down]
        x, probs, final = up.inputs[0], down.output.name, g.users[down.output.name][0]
    if final.type != "matmul" or final.inputs[0] != probs or not g.single_use(x):
        return None
    for scores, mask in _mask_options(g, x, t.shape[-2:]):
        m = _Match(final=final, q="", k="", v=final.inputs[1], dead=list(dead))
        if mask is not None:
            m.mask, m.is_causal, op, m.new, m.new_weights = mask
            m.dead.append(op)
        if _match_scores(g, scores, m):
            return m
    return None


def _mask_options(g: _Graph, x: str, ls: tuple):
    """(scores, mask) pairs for the softmax input `x` of last dims `ls`: masked scores, then `x`
    unmasked. mask is (value or None, is_causal, the masking op, new ops, new weights)."""
    op = g.made_by(x, "add", "where")
    if op is not None and op.type == "add":
        for scores, mask in (op.inputs, op.inputs[::-1]):
            causal = _is_causal(g.weight.get(mask), ls, _additive_allowed)
            yield scores, (None if causal else mask, causal, op, [], {})
    elif op is not None:
        cond, a, b = op.inputs
        if g.scalar(b) == -np.inf:
            yield a, _bool_mask(g, cond, op, ls, negate=False)
        if g.scalar(a) == -np.inf:
            yield b, _bool_mask(g, cond, op, ls, negate=True)
    yield x, None


def _additive_allowed(w: np.ndarray) -> np.ndarray | None:
    """Where an additive mask of only 0 and -inf lets a score through (None for other values)."""
    return w == 0 if np.all((w == 0) | (w == -np.inf)) else None


def _is_causal(w: np.ndarray | None, ls: tuple, allowed) -> bool:
    """Whether constant mask `w` lets through exactly the lower triangle of the scores' (L, L)."""
    if w is None or w.ndim < 2 or any(d != 1 for d in w.shape[:-2]) or w.shape[-2:] != ls or ls[0] != ls[1]:
        return False
    a = allowed(w.reshape(w.shape[-2:]))
    return a is not None and np.array_equal(a, np.tril(np.ones(w.shape[-2:], dtype=bool)))


def _bool_mask(g: _Graph, cond: str, where: Op, ls: tuple, negate: bool):
    """The mask option of where(cond, scores, -inf) (or of where(cond, -inf, scores), `negate`)."""
    w = g.weight.get(cond)
    if w is not None:
        w = np.logical_not(w) if negate else w
        if _is_causal(w, ls, lambda a: a):
            return None, True, where, [], {}
    if not negate:
        return cond, False, where, [], {}
    inverse = g.made_by(cond, "logical_not")
    if inverse is not None:
        return inverse.inputs[0], False, where, [], {}
    t = g.types[cond]
    name = g.fresh(f"{cond}_not", t)
    if w is not None:
        return name, False, where, [Op("const", [], [Value(name, t)], {"weight": name}, where.loc)], {name: w}
    return name, False, where, [Op("logical_not", [cond], [Value(name, t)], {}, where.loc)], {}


def _scalar_factor(g: _Graph, op: Op | None) -> tuple[str, float] | None:
    """(x, s) when `op` is x * s, s * x or x / s for a scalar constant s, keeping x's type."""
    if op is None:
        return None
    if op.type == "mul":
        for x, c in (op.inputs, op.inputs[::-1]):
            s = g.scalar(c)
            if s is not None and math.isfinite(s) and op.output.type == g.types[x]:
                return x, s
    if op.type == "div" and op.attrs.get("rounding_mode", "none") == "none":
        x, c = op.inputs
        s = g.scalar(c)
        if s and math.isfinite(s) and op.output.type == g.types[x]:
            return x, 1.0 / s
    return None


def _match_scores(g: _Graph, x: str, m: _Match) -> bool:
    """Matches [scalar mul/div]* over matmul(q, k^T) at `x`; completes `m` and checks its type."""
    while g.single_use(x) and (f := _scalar_factor(g, g.producer.get(x))) is not None:
        m.dead.append(g.producer[x])
        x, m.scale = f[0], m.scale * f[1]
    scores = g.made_by(x, "matmul")
    if scores is None or not g.single_use(x):
        return False
    m.dead.append(scores)
    q, kt = scores.inputs
    if not all(g.types[n].rank == g.types[q].rank >= 2 for n in (kt, m.v)):
        return False
    m.q = _absorb_q_scale(g, q, m)
    m.k = _untranspose(g, kt, m)
    types = [g.types[n] for n in (m.q, m.k, m.v)] + [None if m.mask is None else g.types[m.mask]]
    try:
        out = registry.get("scaled_dot_product_attention").infer(
            types, {"is_causal": m.is_causal, "scale": m.scale})
    except (ValueError, TypeError, KeyError):
        return False
    return out == [m.final.output.type]


def _untranspose(g: _Graph, kt: str, m: _Match) -> str:
    """k for k^T: the input of the transpose making k^T when that is a plain swap of the last axes,
    else a new transpose."""
    t = g.types[kt]
    op = g.made_by(kt, "transpose")
    if op is None:
        src, perm = kt, list(range(t.rank))
    else:
        src, perm = op.inputs[0], [p % t.rank for p in op.attrs["perm"]]
        if g.single_use(kt):
            m.dead.append(op)
    perm[-2:] = perm[-1], perm[-2]
    if perm == list(range(t.rank)):
        return src
    k_type = TensorType(t.dtype, t.shape[:-2] + (t.shape[-1], t.shape[-2]))
    name = g.fresh(f"{kt}_k", k_type)
    m.new.append(Op("transpose", [src], [Value(name, k_type)], {"perm": perm}, m.final.loc))
    return name


def _absorb_q_scale(g: _Graph, q: str, m: _Match) -> str:
    """Folds a scalar mul of q (directly, or before a reshape/transpose into heads) into the scale."""
    x, consumer = q, None
    while g.single_use(x) and g.made_by(x, *_LAYOUT) is not None:
        consumer = g.producer[x]
        x = consumer.inputs[0]
    f = _scalar_factor(g, g.made_by(x, "mul"))
    if f is None or not g.single_use(x):
        return q
    m.dead.append(g.producer[x])
    m.scale *= f[1]
    if consumer is None:
        return f[0]
    m.relink = (consumer, 0, f[0])
    return q


def _apply(program: Program, fn: Function, m: _Match) -> None:
    program.weights.update(m.new_weights)
    if m.relink is not None:
        op, i, name = m.relink
        op.inputs = [name if j == i else n for j, n in enumerate(op.inputs)]
    dead = {id(op) for op in m.dead}
    sdpa = Op("scaled_dot_product_attention", [m.q, m.k, m.v, m.mask], m.final.outputs,
              {"is_causal": m.is_causal, "scale": float(m.scale)}, m.final.loc)
    ops = []
    for op in fn.ops:
        if op is m.final:
            ops += m.new + [sdpa]
        elif id(op) not in dead:
            ops.append(op)
    fn.ops = ops
