"""Lowerings of creation ops: arange, full/zeros/ones/empty (and their *_like and new_* forms),
scalar_tensor, fill/zero, triu/tril.

empty* becomes zeros: the values of an uninitialised tensor are unspecified, zeros are one choice.
"""
from __future__ import annotations

from ....ir.ops.shape import float_attr
from ....ir.types import DType
from ..builder import Builder, Var
from ..registry import Unsupported, lowers
from .shape import cast, expand


def _ir_dtype(dtype) -> DType | None:
    if dtype is None:
        return None
    from ..convert import ir_dtype
    return ir_dtype(dtype)


def _dtype_of_value(value) -> DType:
    """torch's dtype for a fill value when none is given (default float dtype float32)."""
    if isinstance(value, bool):
        return DType.bool
    if isinstance(value, int):
        return DType.int64
    return DType.float32


def _shape(size) -> list[int]:
    shape = [size] if isinstance(size, int) else list(size)
    if not all(isinstance(d, int) for d in shape):
        raise Unsupported(f"a creation op with a symbolic size {shape}")
    return shape


def full(b: Builder, size, value, dtype: DType | None) -> Var:
    dtype = dtype or _dtype_of_value(value)
    return b.op("full", [], {"shape": _shape(size), "value": float_attr(value), "dtype": dtype.value})


def full_like(b: Builder, x: Var, value, dtype: DType | None) -> Var:
    attrs = {"value": float_attr(value)}
    if dtype is not None and dtype != x.dtype:
        attrs["dtype"] = dtype.value
    return b.op("full_like", [x], attrs)


@lowers("aten.arange.default")
def arange(b: Builder, end, *, dtype=None, layout=None, device=None, pin_memory=None):
    return arange_start_step(b, 0, end, 1, dtype=dtype)


@lowers("aten.arange.start")
def arange_start(b: Builder, start, end, *, dtype=None, layout=None, device=None, pin_memory=None):
    return arange_start_step(b, start, end, 1, dtype=dtype)


@lowers("aten.arange.start_step")
def arange_start_step(b: Builder, start, end, step=1, *, dtype=None, layout=None, device=None,
                      pin_memory=None):
    vals = (start, end, step)
    if any(isinstance(v, Var) or not isinstance(v, (int, float, str)) for v in vals) or isinstance(step, str):
        raise Unsupported("arange with a tensor bound or a symbolic step")
    dt = _ir_dtype(dtype) or (DType.int64 if all(isinstance(v, (int, str)) for v in vals) else DType.float32)
    if dt == DType.bool:
        raise Unsupported("arange of dtype bool")
    return b.op("arange", [], {"start": start, "end": end, "step": step, "dtype": dt.value})


@lowers("aten.full.default")
def full_(b: Builder, size, fill_value, *, dtype=None, layout=None, device=None, pin_memory=None):
    return full(b, size, fill_value, _ir_dtype(dtype))


@lowers("aten.zeros.default")
def zeros(b: Builder, size, *, dtype=None, layout=None, device=None, pin_memory=None):
    return full(b, size, 0.0, _ir_dtype(dtype) or DType.float32)


@lowers("aten.ones.default")
def ones(b: Builder, size, *, dtype=None, layout=None, device=None, pin_memory=None):
    return full(b, size, 1.0, _ir_dtype(dtype) or DType.float32)


@lowers("aten.empty.memory_format")
def empty(b: Builder, size, *, dtype=None, layout=None, device=None, pin_memory=None, memory_format=None):
    return full(b, size, 0.0, _ir_dtype(dtype) or DType.float32)


@lowers("aten.empty_permuted.default")
def empty_permuted(b: Builder, size, physical_layout, *, dtype=None, layout=None, device=None,
                   pin_memory=None):
    return full(b, size, 0.0, _ir_dtype(dtype) or DType.float32)


@lowers("aten.scalar_tensor.default")
def scalar_tensor(b: Builder, s, *, dtype=None, layout=None, device=None, pin_memory=None):
    return full(b, [], s, _ir_dtype(dtype) or DType.float32)


@lowers("aten.full_like.default")
def full_like_(b: Builder, x, fill_value, *, dtype=None, layout=None, device=None, pin_memory=None,
               memory_format=None):
    return full_like(b, x, fill_value, _ir_dtype(dtype))


@lowers("aten.zeros_like.default", "aten.empty_like.default")
def zeros_like(b: Builder, x, *, dtype=None, layout=None, device=None, pin_memory=None, memory_format=None):
    return full_like(b, x, 0, _ir_dtype(dtype))


@lowers("aten.ones_like.default")
def ones_like(b: Builder, x, *, dtype=None, layout=None, device=None, pin_memory=None, memory_format=None):
    return full_like(b, x, 1, _ir_dtype(dtype))


@lowers("aten.new_full.default")
def new_full(b: Builder, x, size, fill_value, *, dtype=None, layout=None, device=None, pin_memory=None):
    return full(b, size, fill_value, _ir_dtype(dtype) or x.dtype)


@lowers("aten.new_zeros.default", "aten.new_empty.default")
def new_zeros(b: Builder, x, size, *, dtype=None, layout=None, device=None, pin_memory=None):
    return full(b, size, 0, _ir_dtype(dtype) or x.dtype)


@lowers("aten.new_ones.default")
def new_ones(b: Builder, x, size, *, dtype=None, layout=None, device=None, pin_memory=None):
    return full(b, size, 1, _ir_dtype(dtype) or x.dtype)


@lowers("aten.fill.Scalar")
def fill_scalar(b: Builder, x, value):
    return full_like(b, x, value, None)


@lowers("aten.fill.Tensor")
def fill_tensor(b: Builder, x, value):
    if value.rank != 0:
        raise Unsupported("fill with a tensor that is not 0-d")
    return expand(b, cast(b, value, x.dtype), x.shape)


@lowers("aten.zero.default")
def zero(b: Builder, x):
    return full_like(b, x, 0, None)


@lowers("aten.triu.default")
def triu(b: Builder, x, diagonal=0):
    return b.op("triu", [x], {"diagonal": int(diagonal)})


@lowers("aten.tril.default")
def tril(b: Builder, x, diagonal=0):
    return b.op("tril", [x], {"diagonal": int(diagonal)})
