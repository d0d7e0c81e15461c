"""Lowerings of activation functions.

High-level activations (silu, hardswish, softplus, mish, prelu...) are registered so that the
export keeps them whole; relu6 decomposes to hardtanh, which is `clip`.
"""
from __future__ import annotations

from ....ir.types import DType
from ..builder import Builder, Var
from ..registry import Unsupported, lowers
from .elementwise import _float_unary as _float_act, clamp, to_dtype


_float_act("sigmoid", "aten.sigmoid.default")
_float_act("silu", "aten.silu.default")
_float_act("hardsigmoid", "aten.hardsigmoid.default")
_float_act("hardswish", "aten.hardswish.default")
_float_act("mish", "aten.mish.default")
_float_act("log_sigmoid", "aten.log_sigmoid.default")


@lowers("aten.relu.default")
def relu(b: Builder, x):
    if x.dtype == DType.bool:
        raise Unsupported("relu of a bool tensor")
    return b.op("relu", [x])


def _check_float(x: Var, what: str) -> None:
    if not x.dtype.is_float:
        raise Unsupported(f"{what} of a {x.dtype.value} tensor")


@lowers("aten.hardtanh.default")
def hardtanh(b: Builder, x, min_val=-1.0, max_val=1.0):
    if x.dtype == DType.bool:
        raise Unsupported("hardtanh of a bool tensor")
    if x.dtype.is_float:
        return clamp(b, x, float(min_val), float(max_val))
    return b.op("clip", [x], {"min": int(min_val), "max": int(max_val)})


@lowers("aten.relu6.default")
def relu6(b: Builder, x):
    return hardtanh(b, x, 0, 6)


@lowers("aten.leaky_relu.default")
def leaky_relu(b: Builder, x, negative_slope=0.01):
    _check_float(x, "leaky_relu")
    return b.op("leaky_relu", [x], {"alpha": float(negative_slope)})


@lowers("aten.elu.default")
def elu(b: Builder, x, alpha=1.0, scale=1.0, input_scale=1.0):
    _check_float(x, "elu")
    return b.op("elu", [x], {"alpha": float(alpha), "scale": float(scale),
                             "input_scale": float(input_scale)})


@lowers("aten.selu.default")
def selu(b: Builder, x):
    return elu(b, x, 1.6732632423543772848170429916717, 1.0507009873554804934193349852946)


@lowers("aten.celu.default")
def celu(b: Builder, x, alpha=1.0):
    if alpha == 0:
        raise Unsupported("celu with alpha 0")
    return elu(b, x, alpha, 1.0, 1.0 / alpha)


@lowers("aten.gelu.default")
def gelu(b: Builder, x, approximate="none"):
    _check_float(x, "gelu")
    if approximate not in ("none", "tanh"):
        raise Unsupported(f"gelu approximate={approximate!r}")
    return b.op("gelu", [x], {"approximate": approximate})


@lowers("aten.softplus.default")
def softplus(b: Builder, x, beta=1.0, threshold=20.0):
    _check_float(x, "softplus")
    return b.op("softplus", [x], {"beta": float(beta), "threshold": float(threshold)})


@lowers("aten.prelu.default")
def prelu(b: Builder, x, weight):
    _check_float(x, "prelu")
    weight = to_dtype(b, weight, x.dtype)
    if weight.rank != 1:
        raise Unsupported(f"prelu weight of shape {weight.shape} (expected 1-D)")
    return b.op("prelu", [x, weight])


@lowers("aten.threshold.default")
def threshold(b: Builder, x, threshold, value):
    """value if x <= threshold else x (NaN stays NaN)."""
    if x.dtype == DType.bool:
        raise Unsupported("threshold of a bool tensor")
    t = to_dtype(b, threshold, x.dtype)
    v = to_dtype(b, value, x.dtype)
    return b.op("where", [b.op("less_equal", [x, t]), v, x])
