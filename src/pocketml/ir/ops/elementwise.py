"""Elementwise arithmetic, math, comparison and logic ops (NumPy broadcasting).

Type rules (the frontend inserts `cast`s so that they hold, following torch type promotion):
- binary arithmetic (`add`, `sub`, `mul`, `div`, `pow`, `maximum`, `minimum`, `fmod`, `remainder`)
  and comparisons take two operands of the same dtype; arithmetic keeps it, comparisons give bool;
- transcendental unary ops (`exp`, `log`, `sqrt`, `erf`, ...) take float inputs only;
- logical ops take any dtypes (nonzero is true) and give bool;
- `where(cond, x, y)`: cond bool, x and y of one dtype.

References compute float16/float32 transcendental functions in float64 and round the result once,
so they are the correctly rounded value in almost every case.
"""
from __future__ import annotations

import functools

import numpy as np

from ..registry import REQUIRED, register
from ..types import DType, TensorType, broadcast_shapes

FLOATS = (DType.float16, DType.float32)


# ----------------------------------------------------------------------------- helpers

def quiet(fn):
    """Run a reference with NumPy floating-point warnings silenced (overflow, 0/0... are defined)."""
    @functools.wraps(fn)
    def wrapper(arrays, attrs):
        with np.errstate(all="ignore"):
            return fn(arrays, attrs)
    return wrapper


def upcast(a: np.ndarray) -> np.ndarray:
    """float16/float32 → float64 for accurate internal computation (other dtypes unchanged)."""
    return a.astype(np.float64) if a.dtype.kind == "f" and a.dtype != np.float64 else a


def like(result, dtype) -> np.ndarray:
    """`result` as an ndarray of `dtype` (0-d results stay arrays)."""
    return np.asarray(result).astype(dtype, copy=False)


def _require_same_dtype(op: str, types) -> DType:
    present = [t for t in types if t is not None]
    dts = {t.dtype for t in present}
    if len(dts) > 1:
        raise TypeError(f"{op}: operands have different dtypes ({', '.join(str(t) for t in present)}); "
                        "cast them to one dtype first")
    return present[0].dtype


def _require_float(op: str, t: TensorType) -> None:
    if t.dtype not in FLOATS:
        raise TypeError(f"{op}: needs a float input, got {t}")


def _binary_infer(op: str, out: DType | None = None, allowed=None):
    def infer(types, attrs):
        x, y = types
        dt = _require_same_dtype(op, types)
        if allowed is not None and dt not in allowed:
            raise TypeError(f"{op}: dtype {dt.value} is not supported")
        return [TensorType(out or dt, broadcast_shapes(x.shape, y.shape))]
    return infer


def _unary_infer(op: str, float_only: bool, out: DType | None = None, allowed=None):
    def infer(types, attrs):
        (x,) = types
        if float_only:
            _require_float(op, x)
        if allowed is not None and x.dtype not in allowed:
            raise TypeError(f"{op}: dtype {x.dtype.value} is not supported")
        return [TensorType(out or x.dtype, x.shape)]
    return infer


_NUMERIC = tuple(d for d in DType if d != DType.bool)
_SIGNED = tuple(d for d in DType if d not in (DType.bool, DType.uint8))


# ----------------------------------------------------------------------------- arithmetic

@register("add", inputs=("x", "y"), infer=_binary_infer("add"))
@quiet
def add(a, attrs):
    """x + y (integers wrap; bool + bool is logical or, like torch)."""
    return np.add(a[0], a[1])


@register("sub", inputs=("x", "y"), infer=_binary_infer("sub", allowed=_NUMERIC))
@quiet
def sub(a, attrs):
    """x - y."""
    return np.subtract(a[0], a[1])


@register("mul", inputs=("x", "y"), infer=_binary_infer("mul"))
@quiet
def mul(a, attrs):
    """x * y (bool * bool is logical and)."""
    return np.multiply(a[0], a[1])


def _div_infer(types, attrs):
    x, y = types
    dt = _require_same_dtype("div", types)
    mode = attrs["rounding_mode"]
    if mode not in ("none", "trunc", "floor"):
        raise ValueError(f"div: rounding_mode must be 'none', 'trunc' or 'floor', got {mode!r}")
    if mode == "none" and dt not in FLOATS:
        raise TypeError(f"div: true division needs float operands, got {dt.value} (cast to float first)")
    if dt == DType.bool:
        raise TypeError("div: bool operands are not supported")
    return [TensorType(dt, broadcast_shapes(x.shape, y.shape))]


@register("div", inputs=("x", "y"), infer=_div_infer, attrs={"rounding_mode": "none"})
@quiet
def div(a, attrs):
    """x / y. rounding_mode "none": true division (floats only); "trunc": rounds toward zero;
    "floor": rounds toward -inf (Python's //). Integer division by zero is undefined (gives 0)."""
    x, y = a
    mode = attrs["rounding_mode"]
    if mode == "none":
        return np.true_divide(x, y)
    if x.dtype.kind == "f":
        if mode == "trunc":
            return np.trunc(np.true_divide(x, y))
        return np.where(y == 0, np.true_divide(x, y), np.floor_divide(x, y)).astype(x.dtype, copy=False)
    ysafe = np.where(y == 0, np.ones_like(y), y)
    q = np.floor_divide(x, ysafe)
    if mode == "trunc":
        fix = (np.remainder(x, ysafe) != 0) & ((x < 0) != (ysafe < 0))
        q = q + fix.astype(q.dtype)
    return np.where(y == 0, np.zeros_like(q), q)


@register("pow", inputs=("x", "y"), infer=_binary_infer("pow", allowed=_NUMERIC))
@quiet
def pow_(a, attrs):
    """x ** y (integers: y must be non-negative; floats computed in float64 and rounded)."""
    x, y = a
    if x.dtype.kind == "f":
        return like(np.power(upcast(x), upcast(y)), x.dtype)
    return np.power(x, y)


@register("maximum", inputs=("x", "y"), infer=_binary_infer("maximum"))
def maximum(a, attrs):
    """Elementwise max; NaN propagates."""
    return np.maximum(a[0], a[1])


@register("minimum", inputs=("x", "y"), infer=_binary_infer("minimum"))
def minimum(a, attrs):
    """Elementwise min; NaN propagates."""
    return np.minimum(a[0], a[1])


@register("fmod", inputs=("x", "y"), infer=_binary_infer("fmod", allowed=_NUMERIC))
@quiet
def fmod(a, attrs):
    """C fmod: remainder with the sign of x (torch.fmod)."""
    x, y = a
    if x.dtype.kind == "f":
        return np.fmod(x, y)
    ysafe = np.where(y == 0, np.ones_like(y), y)
    return np.where(y == 0, np.zeros_like(x), np.fmod(x, ysafe))


@register("remainder", inputs=("x", "y"), infer=_binary_infer("remainder", allowed=_NUMERIC))
@quiet
def remainder(a, attrs):
    """Python-style modulo: remainder with the sign of y (torch.remainder)."""
    x, y = a
    if x.dtype.kind == "f":
        m = np.fmod(x, y)
        return np.where((m != 0) & ((y < 0) != (m < 0)), m + y, m).astype(x.dtype, copy=False)
    ysafe = np.where(y == 0, np.ones_like(y), y)
    return np.where(y == 0, np.zeros_like(x), np.remainder(x, ysafe))


# ----------------------------------------------------------------------------- unary math

def _float_unary(name: str, fn, doc: str):
    def compute(a, attrs):
        return like(fn(upcast(a[0])), a[0].dtype)
    compute.__doc__ = doc
    return register(name, inputs=("x",), infer=_unary_infer(name, float_only=True))(quiet(compute))


@register("neg", inputs=("x",), infer=_unary_infer("neg", False, allowed=_NUMERIC))
@quiet
def neg(a, attrs):
    """-x (unsigned integers wrap)."""
    return np.negative(a[0])


@register("abs", inputs=("x",), infer=_unary_infer("abs", False))
def abs_(a, attrs):
    """|x|."""
    x = a[0]
    return x.copy() if x.dtype == np.bool_ or x.dtype.kind == "u" else np.abs(x)


@register("sign", inputs=("x",), infer=_unary_infer("sign", False))
def sign(a, attrs):
    """-1, 0 or 1 in x's dtype; sign(NaN) is 0 and bool is unchanged (like torch)."""
    x = a[0]
    if x.dtype == np.bool_:
        return x.copy()
    return like((x > 0).astype(np.int8) - (x < 0).astype(np.int8), x.dtype)


def _rsqrt(x):
    return 1.0 / np.sqrt(x)


_float_unary("exp", np.exp, "e ** x.")
_float_unary("exp2", np.exp2, "2 ** x.")
_float_unary("expm1", np.expm1, "e ** x - 1, accurate near 0.")
_float_unary("log", np.log, "Natural logarithm (log(0) = -inf, log(<0) = NaN).")
_float_unary("log2", np.log2, "Base-2 logarithm.")
_float_unary("log10", np.log10, "Base-10 logarithm.")
_float_unary("log1p", np.log1p, "log(1 + x), accurate near 0.")
_float_unary("sqrt", np.sqrt, "Square root.")
_float_unary("rsqrt", _rsqrt, "1 / sqrt(x).")
_float_unary("reciprocal", np.reciprocal, "1 / x.")
_float_unary("sin", np.sin, "Sine.")
_float_unary("cos", np.cos, "Cosine.")
_float_unary("tan", np.tan, "Tangent.")
_float_unary("atan", np.arctan, "Arctangent.")
_float_unary("tanh", np.tanh, "Hyperbolic tangent.")


def _rounding(name: str, fn, doc: str):
    def compute(a, attrs):
        x = a[0]
        return np.asarray(fn(x)) if x.dtype.kind == "f" else x.copy()
    compute.__doc__ = doc
    return register(name, inputs=("x",), infer=_unary_infer(name, False, allowed=_NUMERIC))(compute)


_rounding("floor", np.floor, "Round toward -inf (integers unchanged).")
_rounding("ceil", np.ceil, "Round toward +inf (integers unchanged).")
_rounding("round", np.round, "Round half to even (integers unchanged).")
_rounding("trunc", np.trunc, "Round toward zero (integers unchanged).")


@register("isnan", inputs=("x",), infer=_unary_infer("isnan", False, out=DType.bool))
def isnan(a, attrs):
    """x is NaN (always false for integers)."""
    x = a[0]
    return np.isnan(x) if x.dtype.kind == "f" else np.zeros(x.shape, np.bool_)


@register("isinf", inputs=("x",), infer=_unary_infer("isinf", False, out=DType.bool))
def isinf(a, attrs):
    """x is +inf or -inf (always false for integers)."""
    x = a[0]
    return np.isinf(x) if x.dtype.kind == "f" else np.zeros(x.shape, np.bool_)


# erf: a vectorised port of FreeBSD msun s_erf.c (via Go's math.Erf), evaluated in float64:
# ====================================================
# Copyright (C) 1993 by Sun Microsystems, Inc. All rights reserved.
#
# Developed at SunPro, a Sun Microsystems, Inc. business.
# Permission to use, copy, modify, and distribute this
# software is freely granted, provided that this notice
# is preserved.
# ====================================================
_ERX = 8.45062911510467529297e-01
_PP = (1.28379167095512558561e-01, -3.25042107247001499370e-01, -2.84817495755985104766e-02,
       -5.77027029648944159157e-03, -2.37630166566501626084e-05)
_QQ = (1.0, 3.97917223959155352819e-01, 6.50222499887672944485e-02, 5.08130628187576562776e-03,
       1.32494738004321644526e-04, -3.96022827877536812320e-06)
_PA = (-2.36211856075265944077e-03, 4.14856118683748331666e-01, -3.72207876035701323847e-01,
       3.18346619901161753674e-01, -1.10894694282396677476e-01, 3.54783043256182359371e-02,
       -2.16637559486879084300e-03)
_QA = (1.0, 1.06420880400844228286e-01, 5.40397917702171048937e-01, 7.18286544141962662868e-02,
       1.26171219808761642112e-01, 1.36370839120290507362e-02, 1.19844998467991074170e-02)
_RA = (-9.86494403484714822705e-03, -6.93858572707181764372e-01, -1.05586262253232909814e+01,
       -6.23753324503260060396e+01, -1.62396669462573470355e+02, -1.84605092906711035994e+02,
       -8.12874355063065934246e+01, -9.81432934416914548592e+00)
_SA = (1.0, 1.96512716674392571292e+01, 1.37657754143519042600e+02, 4.34565877475229228821e+02,
       6.45387271733267880336e+02, 4.29008140027567833386e+02, 1.08635005541779435134e+02,
       6.57024977031928170135e+00, -6.04244152148580987438e-02)
_RB = (-9.86494292470009928597e-03, -7.99283237680523006574e-01, -1.77579549177547519889e+01,
       -1.60636384855821916062e+02, -6.37566443368389627722e+02, -1.02509513161107724954e+03,
       -4.83519191608651397019e+02)
_SB = (1.0, 3.03380607434824582924e+01, 3.25792512996573918826e+02, 1.53672958608443695994e+03,
       3.19985821950859553908e+03, 2.55305040643316442583e+03, 4.74528541206955367215e+02,
       -2.24409524465858183362e+01)


def _poly(coeffs, z):
    r = np.full_like(z, coeffs[-1])
    for c in coeffs[-2::-1]:
        r = r * z + c
    return r


def erf64(x: np.ndarray) -> np.ndarray:
    """erf in float64 (max error about 1 ulp of float64)."""
    x = np.asarray(x, dtype=np.float64)
    ax = np.abs(x)
    out = np.empty_like(x)
    with np.errstate(all="ignore"):
        m = ax < 0.84375
        z = ax[m] * ax[m]
        out[m] = ax[m] + ax[m] * (_poly(_PP, z) / _poly(_QQ, z))
        m = (ax >= 0.84375) & (ax < 1.25)
        s = ax[m] - 1.0
        out[m] = _ERX + _poly(_PA, s) / _poly(_QA, s)
        m = (ax >= 1.25) & (ax < 6.0)
        v = ax[m]
        s = 1.0 / (v * v)
        small = v < 1.0 / 0.35
        rs = np.where(small, _poly(_RA, s) / _poly(_SA, s), _poly(_RB, s) / _poly(_SB, s))
        hi = (v.view(np.uint64) & np.uint64(0xFFFFFFFF00000000)).view(np.float64)
        r = np.exp(-hi * hi - 0.5625) * np.exp((hi - v) * (hi + v) + rs)
        out[m] = 1.0 - r / v
        out[ax >= 6.0] = 1.0
        out[np.isnan(x)] = np.nan
    return np.copysign(out, x)


_float_unary("erf", erf64, "Error function.")


# ----------------------------------------------------------------------------- comparison and logic

def _compare(name: str, fn, doc: str):
    def compute(a, attrs):
        return np.asarray(fn(a[0], a[1]))
    compute.__doc__ = doc
    return register(name, inputs=("x", "y"), infer=_binary_infer(name, out=DType.bool))(compute)


_compare("equal", np.equal, "x == y.")
_compare("not_equal", np.not_equal, "x != y.")
_compare("less", np.less, "x < y.")
_compare("less_equal", np.less_equal, "x <= y.")
_compare("greater", np.greater, "x > y.")
_compare("greater_equal", np.greater_equal, "x >= y.")


def _logical_infer(types, attrs):
    present = [t for t in types if t is not None]
    return [TensorType(DType.bool, broadcast_shapes(*(t.shape for t in present)))]


def _logical(name: str, fn, doc: str):
    def compute(a, attrs):
        return np.asarray(fn(a[0], a[1]))
    compute.__doc__ = doc
    return register(name, inputs=("x", "y"), infer=_logical_infer)(compute)


_logical("logical_and", np.logical_and, "x and y (nonzero is true; any dtypes).")
_logical("logical_or", np.logical_or, "x or y (nonzero is true; any dtypes).")
_logical("logical_xor", np.logical_xor, "x xor y (nonzero is true; any dtypes).")


@register("logical_not", inputs=("x",), infer=_logical_infer)
def logical_not(a, attrs):
    """not x (nonzero is true)."""
    return np.asarray(np.logical_not(a[0]))


def _where_infer(types, attrs):
    c, x, y = types
    if c.dtype != DType.bool:
        raise TypeError(f"where: condition must be bool, got {c}")
    dt = _require_same_dtype("where", [x, y])
    return [TensorType(dt, broadcast_shapes(c.shape, x.shape, y.shape))]


@register("where", inputs=("cond", "x", "y"), infer=_where_infer)
def where(a, attrs):
    """x where cond else y (all three broadcast)."""
    c, x, y = a
    return np.asarray(np.where(c, x, y)).astype(x.dtype, copy=False)


# ----------------------------------------------------------------------------- clip and cast

def _clip_infer(types, attrs):
    (x,) = types
    if x.dtype == DType.bool:
        raise TypeError("clip: bool input is not supported")
    return [x]


@register("clip", inputs=("x",), infer=_clip_infer, attrs={"min": None, "max": None})
def clip(a, attrs):
    """min(max(x, min), max); either bound may be None. Bounds are converted to x's dtype; NaN in x
    propagates; if min > max every value becomes max (like torch.clamp)."""
    x = a[0]
    r = x
    if attrs["min"] is not None:
        r = np.maximum(r, np.asarray(attrs["min"]).astype(x.dtype))
    if attrs["max"] is not None:
        r = np.minimum(r, np.asarray(attrs["max"]).astype(x.dtype))
    return x.copy() if r is x else np.asarray(r, dtype=x.dtype)


def _cast_infer(types, attrs):
    (x,) = types
    return [TensorType(DType(attrs["dtype"]), x.shape)]


@register("cast", inputs=("x",), infer=_cast_infer, attrs={"dtype": REQUIRED})
@quiet
def cast(a, attrs):
    """x converted to `dtype`: float → int truncates toward zero, nonzero → True for bool."""
    x = a[0]
    dt = DType(attrs["dtype"]).np
    if dt == np.bool_:
        return x != 0
    return x.astype(dt)
