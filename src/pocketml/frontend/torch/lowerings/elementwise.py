"""Lowerings of elementwise arithmetic, math, comparison, logic, casts and identity-like ops.

Torch type promotion happens here: operands are cast to `result_type(...)` (torch's rules, with
dimensioned tensors > zero-dim tensors > Python scalars) so that IR ops always see one dtype.
Other families may use `result_type`, `promote`, `to_dtype`, `to_float` and `binary`.
"""
from __future__ import annotations

import math

import numpy as np

from ....ir.types import DType
from ..builder import Builder, Var
from ..registry import Unsupported, lowers

FLOATS = (DType.float16, DType.float32)
DEFAULT_FLOAT = DType.float32


# ----------------------------------------------------------------------------- type promotion

def promote_types(a: DType | None, b: DType | None) -> DType | None:
    """torch.promote_types over IR dtypes (ints and floats: the float wins, like torch)."""
    if a is None or b is None:
        return a if b is None else b
    if a == b:
        return a
    if a.is_float or b.is_float:
        if a.is_float and b.is_float:
            return DType.float32
        return a if a.is_float else b
    return DType.of(np.promote_types(a.np, b.np))


def _combine(higher: DType | None, lower: DType | None) -> DType | None:
    """torch's combine_categories: a lower priority group only matters if its category is higher."""
    if higher is None:
        return lower
    if lower is None:
        return higher
    if higher.is_float:
        return higher
    if higher == DType.bool or lower.is_float:
        return promote_types(higher, lower)
    return higher


def scalar_dtype(v) -> DType:
    if isinstance(v, (bool, np.bool_)):
        return DType.bool
    if isinstance(v, (int, np.integer)):
        return DType.int64
    if isinstance(v, (float, np.floating)):
        return DEFAULT_FLOAT
    raise Unsupported(f"operand {v!r} of type {type(v).__name__} is not a tensor or a real number")


def result_type(*operands) -> DType:
    """torch.result_type of tensors (Vars) and Python scalars; None operands are ignored."""
    dim = zero = wrapped = None
    for o in operands:
        if o is None:
            continue
        if isinstance(o, Var):
            if o.rank == 0:
                zero = promote_types(zero, o.dtype)
            else:
                dim = promote_types(dim, o.dtype)
        else:
            wrapped = promote_types(wrapped, scalar_dtype(o))
    out = _combine(dim, _combine(zero, wrapped))
    if out is None:
        raise Unsupported("no operands to promote")
    return out


def to_dtype(b: Builder, v, dtype: DType) -> Var:
    """A Var of `dtype`: casts a Var when needed, makes a literal of a Python scalar."""
    dtype = DType(dtype)
    if isinstance(v, Var):
        return v if v.dtype == dtype else b.op("cast", [v], {"dtype": dtype.value})
    if dtype.is_float:
        return b.const(float(v), dtype)
    if dtype == DType.bool:
        return b.const(bool(v), dtype)
    if isinstance(v, float):
        if not math.isfinite(v) or v != int(v):
            raise Unsupported(f"scalar {v!r} cannot be represented as {dtype.value}")
        v = int(v)
    v = int(v)
    if not -2**63 <= v < 2**63:
        raise Unsupported(f"scalar {v!r} overflows int64")
    # an out-of-range scalar wraps to the tensor's dtype, as in torch's integer arithmetic
    return b.const(np.asarray(v, np.int64).astype(dtype.np), dtype)


def to_float(b: Builder, v: Var) -> Var:
    """Integer/bool tensors become float32 (torch's default dtype) for float-only math."""
    return v if v.dtype.is_float else to_dtype(b, v, DEFAULT_FLOAT)


def promote(b: Builder, *operands, dtype: DType | None = None) -> list[Var]:
    """All operands as Vars of their torch result type (or of `dtype` if given)."""
    dt = dtype or result_type(*operands)
    return [to_dtype(b, o, dt) for o in operands]


def binary(b: Builder, op: str, x, y, attrs: dict | None = None) -> Var:
    """Emit a same-dtype binary IR op on two operands (tensors or scalars) after promotion."""
    if not isinstance(x, Var) and not isinstance(y, Var):
        raise Unsupported(f"{op} of two Python scalars")
    x, y = promote(b, x, y)
    return b.op(op, [x, y], attrs)


def _half_with_scalar(dt: DType, *operands) -> bool:
    """Torch computes float16 add/sub/mul/div with a CPU scalar (a Python number or a 0-dim
    tensor) in float32 without rounding the scalar to float16 first; True when that matters."""
    if dt != DType.float16:
        return False
    for v in operands:
        if isinstance(v, Var):
            if v.rank == 0 and v.dtype != DType.float16:
                return True
        elif float(np.float16(v)) != float(v):
            return True
    return False


def _opmath(b: Builder, op: str, x, y, dt: DType, attrs=None) -> Var:
    """x op y in dtype dt, computed in float32 where torch does (see _half_with_scalar)."""
    if _half_with_scalar(dt, x, y):
        x, y = promote(b, x, y, dtype=DType.float32)
        return to_dtype(b, b.op(op, [x, y], attrs), dt)
    x, y = promote(b, x, y, dtype=dt)
    return b.op(op, [x, y], attrs)


# ----------------------------------------------------------------------------- arithmetic

def _add_sub(b: Builder, op: str, x, y, alpha):
    dt = result_type(x, y)
    if alpha != 1:
        if not dt.is_float and isinstance(alpha, float) and alpha != int(alpha):
            raise Unsupported(f"float alpha {alpha} with {dt.value} operands")
        if isinstance(y, Var):
            ct = DType.float32 if _half_with_scalar(dt, x, alpha) else dt
            y = b.op("mul", [to_dtype(b, y, ct), to_dtype(b, alpha, ct)])
        else:
            y = y * alpha
    return _opmath(b, op, x, y, dt)


@lowers("aten.add.Tensor", "aten.add.Scalar")
def add(b: Builder, x, y, alpha=1):
    return _add_sub(b, "add", x, y, alpha)


@lowers("aten.sub.Tensor", "aten.sub.Scalar")
def sub(b: Builder, x, y, alpha=1):
    return _add_sub(b, "sub", x, y, alpha)


@lowers("aten.rsub.Tensor", "aten.rsub.Scalar")
def rsub(b: Builder, x, y, alpha=1):
    """y - alpha * x."""
    return _add_sub(b, "sub", y, x, alpha)


@lowers("aten.mul.Tensor", "aten.mul.Scalar")
def mul(b: Builder, x, y):
    if not isinstance(x, Var) and not isinstance(y, Var):
        raise Unsupported("mul of two Python scalars")
    return _opmath(b, "mul", x, y, result_type(x, y))


@lowers("aten.div.Tensor", "aten.div.Scalar", "aten.div.Tensor_mode", "aten.div.Scalar_mode")
def div(b: Builder, x, y, rounding_mode=None):
    dt = result_type(x, y)
    if rounding_mode is None:
        if not dt.is_float:
            dt = DEFAULT_FLOAT
        return _opmath(b, "div", x, y, dt)
    if rounding_mode not in ("trunc", "floor"):
        raise Unsupported(f"rounding_mode {rounding_mode!r}")
    if dt == DType.bool:
        raise Unsupported("integer division of bool tensors")
    x, y = promote(b, x, y, dtype=dt)
    return b.op("div", [x, y], {"rounding_mode": rounding_mode})


@lowers("aten.floor_divide.default", "aten.floor_divide.Scalar")
def floor_divide(b: Builder, x, y):
    return div(b, x, y, rounding_mode="floor")


@lowers("aten.pow.Tensor_Scalar", "aten.pow.Tensor_Tensor", "aten.pow.Scalar")
def pow_(b: Builder, x, y):
    dt = result_type(x, y)
    if isinstance(x, Var) and not isinstance(y, Var):
        x = to_dtype(b, x, dt)
        if y == 1:
            return x
        if y == 2:
            return b.op("mul", [x, x])
        if dt.is_float and y == 0.5:
            return b.op("sqrt", [x])
        if dt.is_float and y == -0.5:
            return b.op("rsqrt", [x])
        if dt.is_float and y == -1:
            return b.op("reciprocal", [x])
        if y == 3:
            return b.op("mul", [b.op("mul", [x, x]), x])
        if dt.is_float and y == -2:
            return b.op("reciprocal", [b.op("mul", [x, x])])
    x, y = promote(b, x, y, dtype=dt)
    return b.op("pow", [x, y])


@lowers("aten.maximum.default", "aten.max.other")
def maximum(b: Builder, x, y):
    return binary(b, "maximum", x, y)


@lowers("aten.minimum.default", "aten.min.other")
def minimum(b: Builder, x, y):
    return binary(b, "minimum", x, y)


@lowers("aten.fmod.Tensor", "aten.fmod.Scalar")
def fmod(b: Builder, x, y):
    return binary(b, "fmod", x, y)


@lowers("aten.remainder.Tensor", "aten.remainder.Scalar", "aten.remainder.Scalar_Tensor")
def remainder(b: Builder, x, y):
    return binary(b, "remainder", x, y)


# ----------------------------------------------------------------------------- unary math

@lowers("aten.neg.default")
def neg(b: Builder, x):
    if x.dtype == DType.bool:
        raise Unsupported("negation of a bool tensor (use logical_not)")
    return b.op("neg", [x])


@lowers("aten.abs.default")
def abs_(b: Builder, x):
    return b.op("abs", [x])


@lowers("aten.sign.default", "aten.sgn.default")
def sign(b: Builder, x):
    return b.op("sign", [x])


def _float_unary(op: str, *targets: str):
    @lowers(*targets)
    def lower(b: Builder, x):
        return b.op(op, [to_float(b, x)])
    lower.__name__ = op
    return lower


_float_unary("exp", "aten.exp.default")
_float_unary("exp2", "aten.exp2.default")
_float_unary("expm1", "aten.expm1.default")
_float_unary("log", "aten.log.default")
_float_unary("log2", "aten.log2.default")
_float_unary("log10", "aten.log10.default")
_float_unary("log1p", "aten.log1p.default")
_float_unary("sqrt", "aten.sqrt.default")
_float_unary("rsqrt", "aten.rsqrt.default")
_float_unary("reciprocal", "aten.reciprocal.default")
_float_unary("sin", "aten.sin.default")
_float_unary("cos", "aten.cos.default")
_float_unary("tan", "aten.tan.default")
_float_unary("atan", "aten.atan.default")
_float_unary("tanh", "aten.tanh.default")
_float_unary("erf", "aten.erf.default")


def _rounding(op: str, *targets: str):
    @lowers(*targets)
    def lower(b: Builder, x):
        if x.dtype == DType.bool:
            raise Unsupported(f"{op} of a bool tensor")
        return b.op(op, [x])
    lower.__name__ = op
    return lower


_rounding("floor", "aten.floor.default")
_rounding("ceil", "aten.ceil.default")
_rounding("trunc", "aten.trunc.default", "aten.fix.default")


@lowers("aten.round.default", "aten.round.decimals")
def round_(b: Builder, x, decimals=0):
    if x.dtype == DType.bool:
        raise Unsupported("round of a bool tensor")
    if decimals == 0 or not x.dtype.is_float:
        return b.op("round", [x])
    # torch: nearbyint(x * 10^d) / 10^d, or nearbyint(x / 10^-d) * 10^-d for negative d
    scale = b.const(10.0 ** abs(decimals), x.dtype)
    if decimals > 0:
        return b.op("div", [b.op("round", [b.op("mul", [x, scale])]), scale])
    return b.op("mul", [b.op("round", [b.op("div", [x, scale])]), scale])


@lowers("aten.isnan.default")
def isnan(b: Builder, x):
    return b.op("isnan", [x])


@lowers("aten.isinf.default")
def isinf(b: Builder, x):
    return b.op("isinf", [x])


# ----------------------------------------------------------------------------- comparison and logic

def _compare(op: str, *targets: str):
    @lowers(*targets)
    def lower(b: Builder, x, y):
        return binary(b, op, x, y)
    lower.__name__ = op
    return lower


_compare("equal", "aten.eq.Tensor", "aten.eq.Scalar")
_compare("not_equal", "aten.ne.Tensor", "aten.ne.Scalar")
_compare("less", "aten.lt.Tensor", "aten.lt.Scalar")
_compare("less_equal", "aten.le.Tensor", "aten.le.Scalar")
_compare("greater", "aten.gt.Tensor", "aten.gt.Scalar")
_compare("greater_equal", "aten.ge.Tensor", "aten.ge.Scalar")


def _as_tensor(b: Builder, v) -> Var:
    return v if isinstance(v, Var) else to_dtype(b, v, scalar_dtype(v))


def _logical(op: str, *targets: str):
    @lowers(*targets)
    def lower(b: Builder, x, y):
        return b.op(op, [_as_tensor(b, x), _as_tensor(b, y)])
    lower.__name__ = op
    return lower


_logical("logical_and", "aten.logical_and.default")
_logical("logical_or", "aten.logical_or.default")
_logical("logical_xor", "aten.logical_xor.default")


@lowers("aten.logical_not.default")
def logical_not(b: Builder, x):
    return b.op("logical_not", [x])


def _bitwise(op: str, *targets: str):
    @lowers(*targets)
    def lower(b: Builder, x, y):
        if result_type(x, y) != DType.bool:
            raise Unsupported("bitwise ops on integer tensors (only bool tensors are supported)")
        return b.op(op, [_as_tensor(b, x), _as_tensor(b, y)])
    lower.__name__ = op
    return lower


_bitwise("logical_and", "aten.bitwise_and.Tensor", "aten.bitwise_and.Scalar")
_bitwise("logical_or", "aten.bitwise_or.Tensor", "aten.bitwise_or.Scalar")
_bitwise("logical_xor", "aten.bitwise_xor.Tensor", "aten.bitwise_xor.Scalar")


@lowers("aten.bitwise_not.default")
def bitwise_not(b: Builder, x):
    if x.dtype != DType.bool:
        raise Unsupported("bitwise_not of an integer tensor (only bool tensors are supported)")
    return b.op("logical_not", [x])


@lowers("aten.where.self", "aten.where.ScalarSelf", "aten.where.ScalarOther", "aten.where.Scalar")
def where(b: Builder, cond, x, y):
    if cond.dtype != DType.bool:
        cond = to_dtype(b, cond, DType.bool)
    x, y = promote(b, x, y)
    return b.op("where", [cond, x, y])


# ----------------------------------------------------------------------------- clamp

@lowers("aten.clamp.default")
def clamp(b: Builder, x, min=None, max=None):
    if min is None and max is None:
        raise Unsupported("clamp needs min or max")
    dt = result_type(x, min, max)
    if dt == DType.bool:
        raise Unsupported("clamp of a bool tensor")
    if dt.is_float:
        if min is not None and float(min) == -math.inf:
            min = None
        if max is not None and float(max) == math.inf:
            max = None
        if any(v is not None and not math.isfinite(float(v)) for v in (min, max)):
            # JSON attributes have no inf/NaN: clamp against literals instead
            return clamp_tensor(b, x, min, max)
        if min is None and max is None:
            return to_dtype(b, x, dt)
    x = to_dtype(b, x, dt)
    conv = float if dt.is_float else int
    return b.op("clip", [x], {"min": None if min is None else conv(min),
                              "max": None if max is None else conv(max)})


@lowers("aten.clamp.Tensor")
def clamp_tensor(b: Builder, x, min=None, max=None):
    """maximum/minimum with tensor (or literal) bounds."""
    if min is None and max is None:
        raise Unsupported("clamp needs min or max")
    dt = result_type(x, min, max)
    out = to_dtype(b, x, dt)
    if min is not None:
        out = b.op("maximum", [out, to_dtype(b, min, dt)])
    if max is not None:
        out = b.op("minimum", [out, to_dtype(b, max, dt)])
    return out


@lowers("aten.clamp_min.default", "aten.clamp_min.Tensor")
def clamp_min(b: Builder, x, min):
    return clamp_tensor(b, x, min=min) if isinstance(min, Var) else clamp(b, x, min=min)


@lowers("aten.clamp_max.default", "aten.clamp_max.Tensor")
def clamp_max(b: Builder, x, max):
    return clamp_tensor(b, x, max=max) if isinstance(max, Var) else clamp(b, x, max=max)


# ----------------------------------------------------------------------------- casts and identities

def _ir_dtype(dtype) -> DType:
    from ..convert import ir_dtype
    return ir_dtype(dtype)


@lowers("aten._to_copy.default")
def to_copy(b: Builder, x, dtype=None, **_ignored):
    """Dtype conversion; device, layout, memory format and pinning do not matter here."""
    return x if dtype is None else to_dtype(b, x, _ir_dtype(dtype))


@lowers("aten.to.dtype")
def to_dtype_op(b: Builder, x, dtype, *_ignored, **_kw):
    return to_dtype(b, x, _ir_dtype(dtype))


@lowers("aten.to.dtype_layout")
def to_dtype_layout(b: Builder, x, dtype=None, **_ignored):
    return x if dtype is None else to_dtype(b, x, _ir_dtype(dtype))


@lowers("aten.to.device")
def to_device(b: Builder, x, device=None, dtype=None, *_ignored, **_kw):
    return x if dtype is None else to_dtype(b, x, _ir_dtype(dtype))


@lowers("aten.to.other", "aten.type_as.default")
def to_other(b: Builder, x, other, *_ignored, **_kw):
    return to_dtype(b, x, other.dtype)


@lowers("aten._assert_tensor_metadata.default")
def assert_tensor_metadata(b: Builder, *args, **kwargs):
    """A check torch.export inserts before .to(); the conversion already checks types."""
    return None


@lowers("aten.clone.default", "aten.alias.default", "aten.detach.default",
        "aten.lift_fresh_copy.default")
def identity_like(b: Builder, x, *_ignored, **_kw):
    """Copies and aliases are the value itself (IR values are immutable)."""
    return x
