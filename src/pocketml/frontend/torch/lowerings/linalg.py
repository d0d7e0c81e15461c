"""Lowerings of matrix products.

aten.linear and aten.matmul are kept whole (one `linear`/`matmul` op); the core ATen forms they
decompose to (mm, bmm, addmm with a permuted weight, ...) are lowered too, for programs that arrive
decomposed.
"""
from __future__ import annotations

from ....ir.types import DType
from ..builder import Builder, Var
from ..registry import Unsupported, lowers
from .elementwise import promote, to_dtype


def _operands(b: Builder, *xs: Var) -> list[Var]:
    xs = promote(b, *xs)
    if xs[0].dtype == DType.bool:
        raise Unsupported("matrix products of bool tensors")
    return xs


def _scaled(b: Builder, v: Var, s) -> Var:
    return v if s == 1 else b.op("mul", [v, to_dtype(b, s, v.dtype)])


@lowers("aten.linear.default")
def linear(b: Builder, x, weight, bias=None):
    if weight.rank == 1:  # torch allows a 1-D weight: a dot product over the last dim
        x, weight = _operands(b, x, weight)
        out = b.op("matmul", [x, weight])
        if bias is not None:
            out = b.op("add", [out, to_dtype(b, bias, out.dtype)])
        return out
    if weight.rank != 2:
        raise Unsupported(f"linear weight of rank {weight.rank}")
    xs = _operands(b, x, weight) if bias is None else _operands(b, x, weight, bias)
    if bias is not None and xs[2].rank != 1:
        out = b.op("linear", xs[:2])
        return b.op("add", [out, xs[2]])
    return b.op("linear", xs)


@lowers("aten.matmul.default", "aten.mm.default", "aten.bmm.default", "aten.mv.default",
        "aten.dot.default")
def matmul(b: Builder, x, y):
    x, y = _operands(b, x, y)
    return b.op("matmul", [x, y])


def _add_product(b: Builder, bias, x, y, beta=1, alpha=1):
    """beta * bias + alpha * (x @ y); beta == 0 ignores bias (even NaN/inf), like torch."""
    x, y, bias = _operands(b, x, y, bias)
    out = _scaled(b, b.op("matmul", [x, y]), alpha)
    if beta == 0:
        return out
    return b.op("add", [_scaled(b, bias, beta), out])


@lowers("aten.addmm.default")
def addmm(b: Builder, bias, x, y, *, beta=1, alpha=1):
    return _add_product(b, bias, x, y, beta, alpha)


@lowers("aten.baddbmm.default")
def baddbmm(b: Builder, bias, x, y, *, beta=1, alpha=1):
    return _add_product(b, bias, x, y, beta, alpha)


@lowers("aten.addmv.default")
def addmv(b: Builder, bias, x, y, *, beta=1, alpha=1):
    return _add_product(b, bias, x, y, beta, alpha)


@lowers("aten.einsum.default")
def einsum(b: Builder, equation, operands, path=None):
    if not operands:
        raise Unsupported("einsum without operands")
    xs = _operands(b, *operands)
    try:
        return b.op("einsum", xs, {"equation": equation.replace(" ", "")})
    except (TypeError, ValueError) as e:
        raise Unsupported(f"einsum {equation!r}: {e}") from None
