"""Lowerings of softmax / log_softmax (kept whole)."""
from __future__ import annotations

from ..builder import Builder
from ..registry import Unsupported, lowers
from ._nn_util import check_float, via


def _emit(b: Builder, op, x, dim, dtype=None, half_to_float=False):
    if half_to_float and x.dtype.value == "float16":
        raise Unsupported(f"{op} with half_to_float=True")
    if dtype is not None:
        from ..convert import ir_dtype
        if ir_dtype(dtype) != x.dtype:  # torch casts the input first
            x = via(b, "aten._to_copy.default", x, dtype=dtype)
    check_float(x, op)
    return b.op(op, [x], {"axis": int(dim)})


@lowers("aten._softmax.default")
def _softmax(b, x, dim, half_to_float=False):
    return _emit(b, "softmax", x, dim, half_to_float=half_to_float)


@lowers("aten.softmax.int")
def softmax_int(b, x, dim, dtype=None):
    return _emit(b, "softmax", x, dim, dtype)


@lowers("aten._log_softmax.default")
def _log_softmax(b, x, dim, half_to_float=False):
    return _emit(b, "log_softmax", x, dim, half_to_float=half_to_float)


@lowers("aten.log_softmax.int")
def log_softmax_int(b, x, dim, dtype=None):
    return _emit(b, "log_softmax", x, dim, dtype)
