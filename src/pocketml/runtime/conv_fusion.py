"""The native hand-off of convolutions: a float32 1-D or 2-D `conv` with a constant weight runs as
one `_native.conv` call ("native:conv"), and a `clip` or `relu` that alone reads its output is
applied as each output tile is stored ("native:conv+clip"), a `gelu` (erf form) or `silu` to each
tile while in cache ("native:conv+gelu"), equal to the separate ops.

The weight is a float32 constant, or a compressed one in any format of the linear layers (int8 /
int4 per channel or block, LUT, sparse, float16: `native._pack` over the weight viewed as
[C_out, C_in/groups * KH * KW]): the plan keeps it packed and the GEMM decodes a block of output
channels at a time into a buffer that stays in cache (the decode costs 1/(OH * OW) of the
layer's arithmetic), so memory stays near the compressed size. With `exact` False (the
runtime's default), a compressed pointwise convolution whose format has an int8 GEMM
(`takes_int8`; a table of 5-8 bits with an int8 copy per row) takes the linear layers'
int8-activation path instead (`conv::pointwise_int8`: each pixel's channels quantized per block
of 32, integer dot products) where it is wide enough to pay for its transposes, as compressed
linear layers do. What the kernels do not take (other dtypes, 3-D, a weight computed at run
time) stays on the reference."""
from __future__ import annotations

import numpy as np

from ..ir import registry
from ..ir.program import Function, Op, Value
from ..ir.types import DType, TensorType
from .plan import Kernel


class FusedConv:
    """conv(x, weight, bias) [then clip to [lo, hi], or `act`: "gelu" / "silu"] via `_native.conv`.
    Holds the conv's attributes (`attrs`: strides, flat pads, dilations, groups, all explicit;
    when the clip or activation is fused, the step is its op's) and, for a compressed weight, its
    `packed` form (a `PackedLinear` [C_out, K]) with the weight's shape and the arrays it borrows
    (`keep`); `int8`: a packed pointwise one on int8 activations (see `takes_int8`); `exact`: the
    activation's, as FusedActivation's."""
    __slots__ = ("threads", "lo", "hi", "act", "exact", "attrs", "reference", "packed", "wshape", "keep", "int8")

    def __init__(self, op: Op, threads: int, lo: float | None = None, hi: float | None = None,
                 packed=None, wshape: tuple | None = None, keep=(), exact: bool = True, act: str | None = None):
        from ..ir.ops.conv import spatial_attrs

        self.threads, self.lo, self.hi, self.act, self.exact = threads, lo, hi, act, exact
        self.packed, self.keep = packed, keep
        self.wshape = wshape
        conv = registry.get("conv")
        attrs = conv.with_defaults(op.attrs)
        strides, pads, dilations = spatial_attrs(attrs, op.outputs[0].type.rank - 2)
        self.attrs = {"strides": [int(v) for v in strides], "pads": [int(v) for p in pads for v in p],
                      "dilations": [int(v) for v in dilations], "groups": int(attrs["groups"])}
        self.reference = conv.compute
        self.int8 = not exact and self.pointwise and _int8_pays(self.wshape) and takes_int8(packed)

    @property
    def clips(self) -> bool:
        return self.lo is not None or self.hi is not None

    def spec(self) -> dict:
        """This convolution in a native Conv step (`_native.Program`)."""
        return {**self.attrs, "min": self.lo, "max": self.hi, "weight": self.packed,
                "wshape": None if self.packed is None else list(self.wshape), "int8": self.int8,
                "act": self.act, "exact": self.exact}

    @property
    def pointwise(self) -> bool:
        a = self.attrs
        return (self.wshape is not None and len(self.wshape) >= 3 and all(d == 1 for d in self.wshape[2:])
                and a["groups"] == 1 and all(v == 1 for v in a["strides"]) and not any(a["pads"]))

    @property
    def depthwise(self) -> bool:
        return self.wshape is not None and self.wshape[1] == 1 and self.attrs["groups"] == self.wshape[0]

    def __call__(self, args, _attrs):
        y = self._conv(args)
        if self.act is None:
            return y
        from .native import FusedActivation

        return FusedActivation(self.act, self.threads, exact=self.exact)(y, {"approximate": "none"})

    def _conv(self, args):
        from .native import _native

        attrs = self.attrs
        x, w, bias = (list(args) + [None])[:3]
        if (self.int8 and isinstance(x, np.ndarray) and x.dtype == np.float32 and x.ndim == len(self.wshape)
                and x.shape[1] == self.wshape[1] and (bias is None or bias.dtype == np.float32)):
            # as conv::pointwise_int8: every pixel a row of channels on the int8-activation path
            rows = np.ascontiguousarray(np.moveaxis(x, 1, -1).reshape(-1, x.shape[1]))
            y = np.empty((rows.shape[0], self.wshape[0]), np.float32)
            self.packed.gemm(rows, y, None if bias is None else np.ascontiguousarray(bias), self.threads, False)
            y = np.moveaxis(y.reshape(x.shape[0], *x.shape[2:], -1), -1, 1)
            if self.clips:
                y = registry.get("clip").compute([y], {"min": self.lo, "max": self.hi})[0]
            return [np.ascontiguousarray(y)]
        if self.packed is not None:
            w = np.empty(self.packed.shape, np.float32)
            self.packed.rows(np.arange(w.shape[0], dtype=np.int64), w, self.threads)
            w = w.reshape(self.wshape)
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
        y = self.reference([x, w, bias], attrs)[0]
        if self.clips:
            y = registry.get("clip").compute([y], {"min": self.lo, "max": self.hi})[0]
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


def _int8_pays(wshape) -> bool:
    """Whether conv::pointwise_int8 pays for its transposes: (C + Cout) P floats moved twice
    against C Cout P multiply-adds 2-3x faster, from ~64 multiply-adds a moved float (measured on
    EfficientNet-Lite0: its 14 x 14 and 7 x 7 layers gain, the wide early maps lose; 32 and 96
    measured slower)."""
    cout, c = wshape[0], wshape[1]
    return c * cout >= 64 * (c + cout)


def takes_int8(packed) -> bool:
    """Whether a packed pointwise weight may run on int8 activations: its format has an int8 GEMM
    on this CPU, with int8 weights that are its own codes (int8 / int4), tables of at most 16
    entries, or wider tables copied to int8 per row (`_pack_rows`): one copy of a 6-bit table
    for all rows rounds its finely spaced entries to one grid (EfficientNet-Lite0's logit cosine
    with the float model 0.975 -> 0.960; per row 0.971)."""
    if packed is None or not packed.int8_gemm:
        return False
    fmt = packed.format
    return not fmt.startswith("lut") or int(fmt[3:].split()[0]) <= 4 or packed.int8_rows == 1


def fuse_convs(ops: list[Op], kernels: dict, fused: set, constants: dict, function: Function,
               threads: int, exact: bool = True) -> None:
    """Hands each float32 conv with a constant weight (float32, or compressed: `_pack_rows`) and
    bias to `FusedConv` (`exact`: see FusedConv); a `clip` with constant bounds or a `relu` that
    alone reads it moves the kernel to that op. The compressed weight's chain ops go into
    `fused`."""
    producers = {v.name: op for op in ops for v in op.outputs}
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
        if bias is not None and (ba is None or ba.dtype != np.float32):
            continue
        packed, name, keep, chain, wshape = None, "native:conv", (), [], None if wa is None else wa.shape
        if wa is None or wa.dtype != np.float32:
            t = producers[w].outputs[0].type if w in producers else None
            wshape = tuple(t.shape) if t is not None and t.is_static else None
            found = _pack_rows(w, wshape, producers, constants) if wshape is not None else None
            if found is None:
                continue
            packed, fmt, keep, chain, _ = found
            name = f"native:conv {fmt.removeprefix('native:')}"
        inputs = [op.inputs[0], None if packed is not None else w, bias]
        y = op.outputs[0]
        users = readers.get(y.name, [])
        user = users[0] if len(users) == 1 and y.name not in outputs else None
        same = user is not None and user.outputs[0].type == y.type
        bounds = _clip_bounds(user) if same else None
        act = user.type if same and user.type in ("gelu", "silu") and user.attrs.get(
            "approximate", "none") == "none" else None
        conv = FusedConv(op, threads, *(bounds or (None, None)), packed=packed, wshape=wshape, keep=keep,
                         exact=exact, act=act)
        if bounds is None and act is None:
            kernels[id(op)] = Kernel(conv, name, inputs)
        else:
            kernels[id(user)] = Kernel(conv, name.replace("native:conv", f"native:conv+{act or 'clip'}", 1), inputs)
            fused.add(id(op))
        fused.update(id(c) for c in chain)
    _pair_convs(ops, kernels, fused, producers, readers, outputs)


class FusedConvPair:
    """A pointwise convolution (and its clip) whose output only a depthwise one reads, run as one
    `_native.pointwise_depthwise` call in the C++ loop ("native:conv1x1+dw"): args (x, w1, b1, w2,
    b2). The Python loop runs the two convolutions one after the other, equal bit for bit."""
    __slots__ = ("first", "second")

    def __init__(self, first: FusedConv, second: FusedConv):
        self.first, self.second = first, second

    def __call__(self, args, attrs):
        x, w1, b1, w2, b2 = (list(args) + [None] * 5)[:5]
        y = self.first([x, w1, b1], attrs)[0]
        return self.second([y, w2, b2], attrs)


def _pair_convs(ops: list[Op], kernels: dict, fused: set, producers: dict, readers: dict,
                outputs: set) -> None:
    """Each depthwise FusedConv whose input only it reads, made by a pointwise FusedConv, becomes
    one FusedConvPair step (where the depthwise's was)."""
    for op in ops:
        k2 = kernels.get(id(op))
        if k2 is None or type(k2.compute) is not FusedConv or not k2.compute.depthwise:
            continue
        x = k2.inputs[0]
        producer = producers.get(x)
        k1 = kernels.get(id(producer)) if producer is not None else None
        if (k1 is None or type(k1.compute) is not FusedConv or not k1.compute.pointwise or x in outputs
                or len(readers.get(x, [])) != 1 or k1.compute.wshape[0] != k2.compute.wshape[0]
                or k1.compute.act or k2.compute.act):
            continue
        kernels[id(op)] = Kernel(FusedConvPair(k1.compute, k2.compute), "native:conv1x1+dw",
                                 [*k1.inputs[:3], *k2.inputs[1:3]])
        del kernels[id(producer)]
        fused.add(id(producer))


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


def _pack_rows(name: str, wshape: tuple, producers: dict, constants: dict):
    """`native._pack` over conv weight `name` of shape wshape [C_out, ...] viewed as [C_out, K]:
    its chain (mul by a row scale, cast, dequantize, lut_to_dense, sparse_to_dense) copied with
    2-D shapes, their parameters' trailing unit axes dropped (a block along C_in spans its KH KW
    taps, contiguous in the row). None where a parameter varies along a kernel axis."""
    from . import native

    cout, k = wshape[0], int(np.prod(wshape[1:]))
    rows = [cout, k]
    spatial = len(wshape) - 2
    p2: dict = {}
    c2: dict = {}

    def param(a: np.ndarray, lead: int) -> np.ndarray | None:
        """a [*lead axes, *kernel axes] with unit kernel axes -> [*lead axes]."""
        if a.ndim != lead + spatial or any(d != 1 for d in a.shape[lead:]):
            return None
        return a.reshape(a.shape[:lead])

    def visit(n: str) -> bool:
        if n in constants:
            a = constants[n]
            if a.shape == tuple(wshape):
                c2[n] = a.reshape(rows)
            else:
                c2[n] = a
            return True
        op = producers.get(n)
        if op is None or op.type not in ("mul", "cast", "dequantize", "lut_to_dense", "sparse_to_dense"):
            return False
        attrs = dict(op.attrs)
        if "shape" in attrs:
            if list(attrs["shape"]) != list(wshape):
                return False
            attrs["shape"] = rows
        for i, m in enumerate(op.inputs):
            if m is None:
                continue
            if m in constants:
                a = constants[m]
                if op.type == "mul" or (op.type == "dequantize" and i > 0):
                    a = a.reshape(rows) if a.shape == tuple(wshape) else param(a, 2)
                elif op.type == "lut_to_dense" and i == 1:
                    a = a.reshape(a.shape[:2] + a.shape[2 + spatial:]) if (
                        a.ndim == 4 + spatial and all(d == 1 for d in a.shape[2:2 + spatial])) else None
                elif a.shape == tuple(wshape):
                    a = a.reshape(rows)
                if a is None:
                    return False
                c2[m] = a
            elif op.type == "dequantize" and i > 0 and _cast_of_const(m, producers, constants):
                cast = producers[m]  # float16 scales read through a cast: the kernels widen them
                src = constants[cast.inputs[0]]
                a = src.reshape(rows) if src.shape == tuple(wshape) else param(src, 2)
                if a is None:
                    return False
                c2[cast.inputs[0]] = a
                p2[m] = cast
            elif not visit(m):
                return False
        t = op.outputs[0].type
        out = Value(op.outputs[0].name, TensorType(t.dtype, tuple(rows))) if t.shape == tuple(wshape) else op.outputs[0]
        p2[n] = Op(op.type, list(op.inputs), [out], attrs, op.loc)
        return True

    if not visit(name):
        return None
    # a pointwise weight's table of 5-8 bits: int8 copies per row for conv::pointwise_int8
    found = native._pack(name, p2, c2, int8_per_row=all(d == 1 for d in wshape[2:]))
    if found is None:
        return None
    packed, fmt, keep, chain2, nk = found
    originals = {id(op2): producers[n] for n, op2 in p2.items()}
    return packed, fmt, keep, [originals[id(c)] for c in chain2 if id(c) in originals], nk


def _cast_of_const(name: str, producers: dict, constants: dict) -> bool:
    op = producers.get(name)
    return op is not None and op.type == "cast" and op.inputs[0] in constants
