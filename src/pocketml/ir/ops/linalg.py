"""Matrix products: matmul (NumPy semantics), linear (torch weight layout) and einsum.

Operands share one dtype (the frontend promotes). float16 is computed in float32 and rounded once;
float32 uses NumPy's float32 BLAS.
"""
from __future__ import annotations

import re

import numpy as np

from ..registry import REQUIRED, register
from ..types import DType, TensorType, broadcast_shapes


def _same_dtype(op: str, types) -> DType:
    present = [t for t in types if t is not None]
    if len({t.dtype for t in present}) > 1:
        raise TypeError(f"{op}: operands have different dtypes ({', '.join(str(t) for t in present)})")
    dt = present[0].dtype
    if dt == DType.bool:
        raise TypeError(f"{op}: bool operands are not supported")
    return dt


def _dims_agree(a, b) -> bool:
    return a == b or isinstance(a, str) or isinstance(b, str)


def _compute_dtype(dt: np.dtype) -> np.dtype:
    return np.dtype(np.float32) if dt == np.float16 else dt


def _matmul_infer(types, attrs):
    x, y = types
    dt = _same_dtype("matmul", types)
    if x.rank == 0 or y.rank == 0:
        raise TypeError(f"matmul: operands must be at least 1-D, got {x} and {y}")
    xs = ((1,) + x.shape) if x.rank == 1 else x.shape
    ys = (y.shape + (1,)) if y.rank == 1 else y.shape
    if not _dims_agree(xs[-1], ys[-2]):
        raise TypeError(f"matmul: inner dimensions differ in {x} @ {y}")
    batch = broadcast_shapes(xs[:-2], ys[:-2])
    out = batch + ((xs[-2],) if x.rank > 1 else ()) + ((ys[-1],) if y.rank > 1 else ())
    return [TensorType(dt, out)]


@register("matmul", inputs=("x", "y"), infer=_matmul_infer, weight=(1, -1, -2))  # x @ W, W (..., in, out)
def matmul(a, attrs):
    """x @ y with NumPy/torch.matmul semantics: 1-D operands are vectors, leading dims broadcast."""
    x, y = a
    ct = _compute_dtype(x.dtype)
    return np.asarray(np.matmul(x.astype(ct, copy=False), y.astype(ct, copy=False))).astype(x.dtype, copy=False)


def _linear_infer(types, attrs):
    x, w = types[:2]
    bias = types[2] if len(types) > 2 else None
    dt = _same_dtype("linear", types)
    if w.rank != 2 or x.rank == 0:
        raise TypeError(f"linear: weight must be 2-D (out, in) and x at least 1-D, got {w} and {x}")
    if not _dims_agree(x.shape[-1], w.shape[1]):
        raise TypeError(f"linear: input features of {x} do not match weight {w}")
    if bias is not None and (bias.rank != 1 or not _dims_agree(bias.shape[0], w.shape[0])):
        raise TypeError(f"linear: bias {bias} does not match weight {w}")
    return [TensorType(dt, x.shape[:-1] + (w.shape[0],))]


@register("linear", inputs=("x", "weight", "bias?"), infer=_linear_infer, weight=(1, 0, 1))  # (out, in)
def linear(a, attrs):
    """x @ weight.T + bias, weight (out_features, in_features) and bias (out_features,) like torch."""
    x, w = a[:2]
    bias = a[2] if len(a) > 2 else None
    ct = _compute_dtype(x.dtype)
    xs = x.astype(ct, copy=False).reshape(-1, x.shape[-1])
    wc = w.astype(ct, copy=False)
    if xs.shape[0] == 1:  # one row (a decode step): BLAS gemv, ~3x faster than a 1-row gemm
        r = (wc @ xs[0]).reshape(*x.shape[:-1], w.shape[0])
    else:  # one 2-D GEMM over all leading dims, rather than a stack of per-row products
        r = np.matmul(xs, wc.T).reshape(*x.shape[:-1], w.shape[0])
    if bias is not None:
        r = r + bias.astype(ct, copy=False)
    return np.asarray(r).astype(x.dtype, copy=False)


_EQ = re.compile(r"^[A-Za-z.,]*(->[A-Za-z.]*)?$")


def parse_einsum(equation: str, ranks: list[int]):
    """(input subscripts, output subscripts) with '...' expanded to distinct capital-free labels.

    Ellipsis dims are named '0', '1', ... counted from the right so they broadcast like NumPy.
    """
    eq = equation.replace(" ", "")
    if not _EQ.match(eq):
        raise ValueError(f"einsum: bad equation {equation!r}")
    lhs, _, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(ranks):
        raise ValueError(f"einsum: equation {equation!r} has {len(terms)} operands, got {len(ranks)}")
    ins, ell = [], 0
    for term, rank in zip(terms, ranks):
        if term.count("...") > 1 or "." in term.replace("...", ""):
            raise ValueError(f"einsum: bad term {term!r}")
        if "..." in term:
            head, tail = term.split("...")
            n = rank - len(head) - len(tail)
            if n < 0:
                raise ValueError(f"einsum: term {term!r} has more labels than rank {rank}")
            ell = max(ell, n)
            ins.append(list(head) + [str(n - 1 - i) for i in range(n)] + list(tail))
        else:
            if len(term) != rank:
                raise ValueError(f"einsum: term {term!r} does not match rank {rank}")
            ins.append(list(term))
    ell_labels = [str(ell - 1 - i) for i in range(ell)]
    if "->" in eq:
        if rhs.count("...") > 1 or "." in rhs.replace("...", ""):
            raise ValueError(f"einsum: bad output {rhs!r}")
        if "..." in rhs:
            head, tail = rhs.split("...")
            out = list(head) + ell_labels + list(tail)
        else:
            out = list(rhs)
    else:
        letters = [c for t in ins for c in t if not c.isdigit()]
        out = ell_labels + sorted(c for c in set(letters) if letters.count(c) == 1)
    seen = {c for t in ins for c in t}
    for c in out:
        if c not in seen or out.count(c) > 1:
            raise ValueError(f"einsum: output label {c!r} is missing from the inputs or repeated")
    return ins, out


def _einsum_infer(types, attrs):
    dt = _same_dtype("einsum", types)
    ins, out = parse_einsum(attrs["equation"], [t.rank for t in types])
    sizes: dict[str, object] = {}
    for labels, t in zip(ins, types):
        for c, d in zip(labels, t.shape):
            prev = sizes.get(c)
            if prev is None or prev == 1:
                sizes[c] = d
            elif d != 1 and not _dims_agree(prev, d):
                raise TypeError(f"einsum: label {c!r} has sizes {prev} and {d}")
    return [TensorType(dt, tuple(sizes[c] for c in out))]


@register("einsum", inputs=("*xs",), infer=_einsum_infer, attrs={"equation": REQUIRED})
def einsum(a, attrs):
    """Einstein summation over the operands (torch.einsum equation syntax, incl. '...')."""
    ins, out = parse_einsum(attrs["equation"], [x.ndim for x in a])
    used = {c for t in ins for c in t if c.isalpha()}
    free = (c for c in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ" if c not in used)
    mapping: dict[str, str] = {}
    for t in ins:
        for c in t:
            if c not in mapping:
                mapping[c] = c if c.isalpha() else next(free)
    eq = ",".join("".join(mapping[c] for c in t) for t in ins) + "->" + "".join(mapping[c] for c in out)
    ct = _compute_dtype(a[0].dtype)
    ops = [x.astype(ct, copy=False) for x in a]
    # size-1 dims broadcast against the other operands' sizes of the same label (like torch)
    sizes: dict[str, int] = {}
    for t, x in zip(ins, ops):
        for c, d in zip(t, x.shape):
            sizes[c] = max(sizes.get(c, 1), d)
    ops = [np.broadcast_to(x, tuple(sizes[c] for c in t)) for t, x in zip(ins, ops)]
    return np.asarray(np.einsum(eq, *ops, optimize=len(ops) > 2)).astype(a[0].dtype, copy=False)
