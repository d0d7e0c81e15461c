"""The native hand-off of convolutions: a float32 1-D or 2-D `conv` with a constant float32 weight
(and bias) runs as one `_native.conv` call ("native:conv"), and a `clip` or `relu` that alone
reads its output is applied as each output tile is stored ("native:conv+clip"), equal to the
separate ops. What the kernel does not take (other dtypes, 3-D, a weight computed at run time)
stays on the reference."""
from __future__ import annotations

import numpy as np

from ..ir import registry
from ..ir.program import Function, Op
from ..ir.types import DType
from .plan import Kernel


class FusedConv:
    """conv(x, weight, bias) [then clip to [lo, hi]] via `_native.conv`. Holds the conv's
    attributes (`attrs`: strides, flat pads, dilations, groups, all explicit): when the clip is
    fused, the step is the clip's."""
    __slots__ = ("threads", "lo", "hi", "attrs", "reference")

    def __init__(self, op: Op, threads: int, lo: float | None = None, hi: float | None = None):
        from ..ir.ops.conv import spatial_attrs

        self.threads, self.lo, self.hi = threads, lo, hi
        conv = registry.get("conv")
        attrs = conv.with_defaults(op.attrs)
        strides, pads, dilations = spatial_attrs(attrs, op.outputs[0].type.rank - 2)
        self.attrs = {"strides": [int(v) for v in strides], "pads": [int(v) for p in pads for v in p],
                      "dilations": [int(v) for v in dilations], "groups": int(attrs["groups"])}
        self.reference = conv.compute

    @property
    def clips(self) -> bool:
        return self.lo is not None or self.hi is not None

    def __call__(self, args, _attrs):
        from .native import _native

        attrs = self.attrs
        x, w, bias = (list(args) + [None])[:3]
        n = x.ndim - 2 if isinstance(x, np.ndarray) else 0
        if (n in (1, 2) and x.dtype == w.dtype == np.float32 and w.ndim == x.ndim
                and (bias is None or bias.dtype == np.float32)):
            try:
                out_shape = self.out_shape(x.shape, w.shape, attrs)
            except ValueError:
                out_shape = None
            if out_shape is not None:
                out = np.empty(out_shape, np.float32)
                _native.conv(np.ascontiguousarray(x), np.ascontiguousarray(w),
                             None if bias is None else np.ascontiguousarray(bias), out, attrs["strides"],
                             attrs["pads"], attrs["dilations"], attrs["groups"], self.lo, self.hi, self.threads)
                return [out]
        y = self.reference([x, w, bias], attrs)
        if self.clips:
            y = registry.get("clip").compute([y], {"min": self.lo, "max": self.hi})
        return [y]

    @staticmethod
    def out_shape(x, w, attrs) -> tuple | None:
        """The output shape for x and w's shapes (None where the kernel does not take them; the
        reference then says what is wrong)."""
        from ..ir.ops.conv import spatial_attrs, window_out_dim

        n = len(x) - 2
        strides, pads, dilations = spatial_attrs(attrs, n)
        g = attrs["groups"]
        if g < 1 or x[1] % g or w[0] % g or w[1] * g != x[1]:
            return None
        return (x[0], w[0], *(window_out_dim(x[2 + i], w[2 + i], strides[i], *pads[i], dilations[i])
                              for i in range(n)))


def fuse_convs(ops: list[Op], kernels: dict, fused: set, constants: dict, function: Function,
               threads: int) -> None:
    """Hands each float32 conv with a constant float32 weight (and bias) to `FusedConv`; a
    `clip` with constant bounds or a `relu` that alone reads it moves the kernel to that op."""
    readers: dict[str, list[Op]] = {}
    for op in ops:
        for n in op.inputs:
            if n is not None:
                readers.setdefault(n, []).append(op)
    outputs = set(function.outputs)
    for op in ops:
        if op.type != "conv" or op.outputs[0].type.dtype != DType.float32 or op.outputs[0].type.rank not in (3, 4):
            continue
        w, bias = (list(op.inputs[1:]) + [None])[:2]
        wa, ba = constants.get(w), constants.get(bias) if bias is not None else None
        if not all(isinstance(v, int) for k in ("strides", "pads", "dilations") for v in op.attrs.get(k) or []):
            continue
        if wa is None or wa.dtype != np.float32 or (bias is not None and (ba is None or ba.dtype != np.float32)):
            continue
        y = op.outputs[0]
        users = readers.get(y.name, [])
        user = users[0] if len(users) == 1 and y.name not in outputs else None
        bounds = _clip_bounds(user) if user is not None and user.outputs[0].type == y.type else None
        if bounds is None:
            kernels[id(op)] = Kernel(FusedConv(op, threads), "native:conv", [op.inputs[0], w, bias])
            continue
        kernels[id(user)] = Kernel(FusedConv(op, threads, *bounds), "native:conv+clip", [op.inputs[0], w, bias])
        fused.add(id(op))


def _clip_bounds(op: Op) -> tuple | None:
    """(lo, hi) of a relu or a clip with number (or None) bounds, else None."""
    if op.type == "relu":
        return 0.0, None
    if op.type != "clip":
        return None
    lo, hi = op.attrs.get("min"), op.attrs.get("max")
    if not all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool) and v == v) for v in (lo, hi)):
        return None
    return (None if lo is None else float(lo)), (None if hi is None else float(hi))
