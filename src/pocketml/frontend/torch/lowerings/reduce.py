"""Lowerings of reductions (sum, mean, max, var, norms...), arg-reductions and cumulative ops.

Torch accumulates integer and bool sums/products in int64; that is done here with a cast before
the IR op. An empty `dim` list means "all dims" for most torch reductions (not for any/all.dims).
"""
from __future__ import annotations

import math

from ....ir.types import DType
from ..builder import Builder, Var
from ..registry import Unsupported, lowers
from .elementwise import _ir_dtype, to_dtype


def _axes(dim, rank: int, empty_is_all: bool = True):
    """IR axes (sorted, non-negative) of a torch `dim` argument; None = all."""
    if dim is None:
        return None
    if isinstance(dim, int):
        dim = [dim]
    dim = list(dim)
    if not dim:
        return None if empty_is_all else []
    out = set()
    for d in dim:
        if not -max(rank, 1) <= d < max(rank, 1):
            raise Unsupported(f"dim {d} out of range for rank {rank}")
        if rank:
            out.add(d % rank)
    return sorted(out)


def _reduce(b: Builder, op: str, x: Var, dim, keepdim, **attrs) -> Var:
    return b.op(op, [x], {"axes": _axes(dim, x.rank), "keepdims": bool(keepdim), **attrs})


def _accumulate_dtype(b: Builder, x: Var, dtype) -> Var:
    """Input cast for sum/prod/cumsum: to `dtype` if given, else integers and bool to int64."""
    if dtype is not None:
        return to_dtype(b, x, _ir_dtype(dtype))
    if not x.dtype.is_float:
        return to_dtype(b, x, DType.int64)
    return x


def _float_input(b: Builder, x: Var, dtype, what: str) -> Var:
    if dtype is not None:
        x = to_dtype(b, x, _ir_dtype(dtype))
    if not x.dtype.is_float:
        raise Unsupported(f"{what} of a {x.dtype.value} tensor (torch needs a float input or dtype=)")
    return x


@lowers("aten.sum.dim_IntList", "aten.sum.default")
def sum_(b: Builder, x, dim=None, keepdim=False, dtype=None):
    return _reduce(b, "reduce_sum", _accumulate_dtype(b, x, dtype), dim, keepdim)


@lowers("aten.prod.dim_int", "aten.prod.default")
def prod(b: Builder, x, dim=None, keepdim=False, dtype=None):
    return _reduce(b, "reduce_prod", _accumulate_dtype(b, x, dtype), dim, keepdim)


@lowers("aten.mean.dim", "aten.mean.default")
def mean(b: Builder, x, dim=None, keepdim=False, dtype=None):
    return _reduce(b, "reduce_mean", _float_input(b, x, dtype, "mean"), dim, keepdim)


@lowers("aten.amax.default")
def amax(b: Builder, x, dim=(), keepdim=False):
    return _reduce(b, "reduce_max", x, dim, keepdim)


@lowers("aten.amin.default")
def amin(b: Builder, x, dim=(), keepdim=False):
    return _reduce(b, "reduce_min", x, dim, keepdim)


def _max_min(b: Builder, x: Var, dim, keepdim, op: str, arg: str):
    if dim is None:
        return _reduce(b, op, x, None, False)
    values = _reduce(b, op, x, [dim], keepdim)
    if x.dtype == DType.bool:
        raise Unsupported(f"{arg} indices of a bool tensor")
    axis = _axes([dim], x.rank)
    indices = b.op(arg, [x], {"axis": axis[0] if axis else 0, "keepdims": bool(keepdim)})
    return values, indices


@lowers("aten.max.dim", "aten.max.default")
def max_(b: Builder, x, dim=None, keepdim=False):
    """max.default: the max of all elements; max.dim: (values, indices)."""
    return _max_min(b, x, dim, keepdim, "reduce_max", "argmax")


@lowers("aten.min.dim", "aten.min.default")
def min_(b: Builder, x, dim=None, keepdim=False):
    return _max_min(b, x, dim, keepdim, "reduce_min", "argmin")


def _arg(b: Builder, op: str, x: Var, dim, keepdim):
    if x.dtype == DType.bool:
        raise Unsupported(f"{op} of a bool tensor")
    if dim is None:
        return b.op(op, [x], {"axis": None, "keepdims": bool(keepdim)})
    axis = _axes([dim], x.rank)
    return b.op(op, [x], {"axis": axis[0] if axis else 0, "keepdims": bool(keepdim)})


@lowers("aten.argmax.default")
def argmax(b: Builder, x, dim=None, keepdim=False):
    return _arg(b, "argmax", x, dim, keepdim)


@lowers("aten.argmin.default")
def argmin(b: Builder, x, dim=None, keepdim=False):
    return _arg(b, "argmin", x, dim, keepdim)


def _bool_reduce(b: Builder, op: str, x: Var, dim, keepdim, empty_is_all: bool):
    out = b.op(op, [x], {"axes": _axes(dim, x.rank, empty_is_all), "keepdims": bool(keepdim)})
    # torch keeps uint8 for uint8 inputs (a legacy rule)
    return to_dtype(b, out, DType.uint8) if x.dtype == DType.uint8 else out


@lowers("aten.any.default", "aten.any.dim", "aten.any.dims")
def any_(b: Builder, x, dim=None, keepdim=False):
    return _bool_reduce(b, "reduce_any", x, dim, keepdim, empty_is_all=False)


@lowers("aten.all.default", "aten.all.dim", "aten.all.dims")
def all_(b: Builder, x, dim=None, keepdim=False):
    return _bool_reduce(b, "reduce_all", x, dim, keepdim, empty_is_all=False)


def _correction(correction, unbiased=None) -> float:
    if correction is None:
        return 1.0 if unbiased is None or unbiased else 0.0
    return float(correction)


@lowers("aten.var.correction")
def var(b: Builder, x, dim=None, *, correction=None, keepdim=False):
    x = _float_input(b, x, None, "var")
    return _reduce(b, "reduce_var", x, dim, keepdim, correction=_correction(correction))


@lowers("aten.std.correction")
def std(b: Builder, x, dim=None, *, correction=None, keepdim=False):
    return b.op("sqrt", [var(b, x, dim, correction=correction, keepdim=keepdim)])


@lowers("aten.var_mean.correction")
def var_mean(b: Builder, x, dim=None, *, correction=None, keepdim=False):
    v = var(b, x, dim, correction=correction, keepdim=keepdim)
    return v, mean(b, x, dim, keepdim)


@lowers("aten.std_mean.correction")
def std_mean(b: Builder, x, dim=None, *, correction=None, keepdim=False):
    return std(b, x, dim, correction=correction, keepdim=keepdim), mean(b, x, dim, keepdim)


@lowers("aten.logsumexp.default")
def logsumexp(b: Builder, x, dim, keepdim=False):
    if not x.dtype.is_float:
        x = to_dtype(b, x, DType.float32)
    return _reduce(b, "reduce_logsumexp", x, dim, keepdim)


@lowers("aten.linalg_vector_norm.default")
def vector_norm(b: Builder, x, ord=2, dim=None, keepdim=False, *, dtype=None):
    x = _float_input(b, x, dtype, "linalg_vector_norm")
    ord = float(ord)
    if math.isnan(ord):
        raise Unsupported("norm of order NaN")
    # attributes are JSON, which has no infinities
    return _reduce(b, "reduce_norm", x, dim, keepdim, ord=ord if math.isfinite(ord) else str(ord))


def _cumulative(b: Builder, op: str, x: Var, dim, dtype):
    x = _accumulate_dtype(b, x, dtype)
    axis = _axes([dim], x.rank)
    return b.op(op, [x], {"axis": axis[0] if axis else 0})


@lowers("aten.cumsum.default")
def cumsum(b: Builder, x, dim, *, dtype=None):
    return _cumulative(b, "cumsum", x, dim, dtype)


@lowers("aten.cumprod.default")
def cumprod(b: Builder, x, dim, *, dtype=None):
    return _cumulative(b, "cumprod", x, dim, dtype)
