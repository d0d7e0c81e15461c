"""Compressed-weight ops: a dense weight computed from packed constants where it is used.

`lut_to_dense` (palettization), `dequantize` (linear quantization) and `sparse_to_dense`
(pruning) read stored encodings (defined in `pocketml.formats`, whose decoders are their
references) and chain for joint modes: the values of `sparse_to_dense` may come from
`lut_to_dense` or `dequantize` over the nnz non-zeros, and a look-up table may itself be the
output of a `dequantize` (an int8 table). None of them is constant-folded: folding would store the
dense weight again.
"""
from __future__ import annotations

import math

from ...formats import bits, lut as lut_format, quant, sparse
from ...formats.args import check_nbits
from ..registry import REQUIRED, register
from ..types import DType, TensorType


def _static_shape(attrs, op: str) -> tuple[int, ...]:
    shape = attrs["shape"]
    if not isinstance(shape, (list, tuple)) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise ValueError(f"{op}: shape must be a list of non-negative integers, got {shape!r}")
    return tuple(shape)


def _packed_stream(t: TensorType, count: int, nbits: int, what: str) -> None:
    need = bits.packed_size(count, nbits)
    if t.dtype != DType.uint8 or t.shape != (need,):
        raise ValueError(f"{what} must be uint8[{need}] ({count} values of {nbits} bits packed), got {t}")


def _lut_infer(types, attrs):
    idx, lut = types
    shape = _static_shape(attrs, "lut_to_dense")
    nbits = check_nbits(attrs["nbits"])
    r = len(shape)
    if r == 0:
        raise ValueError("lut_to_dense: shape must have rank >= 1")
    if not lut.dtype.is_float:
        raise ValueError(f"lut_to_dense: lut must be float, got {lut}")
    if lut.rank != r + 2 or not lut.is_static:
        raise ValueError(f"lut_to_dense: lut must have rank {r + 2} ([*G, 2**nbits, cluster_dim]) "
                         f"for shape {list(shape)}, got {lut}")
    K, d = lut.shape[-2:]
    if K != 1 << nbits:
        raise ValueError(f"lut_to_dense: lut has {K} entries, nbits={nbits} needs {1 << nbits}")
    va = attrs["vector_axis"]
    if not isinstance(va, int) or not -r <= va < r:
        raise ValueError(f"lut_to_dense: vector_axis {va!r} out of range for rank {r}")
    va %= r
    if not lut_format.groups_fit(shape, lut.shape[:r], d, va):
        raise ValueError(f"lut_to_dense: lut groups {list(lut.shape[:r])} (cluster_dim {d}) do not "
                         f"divide shape {list(shape)}")
    _packed_stream(idx, math.prod(shape) // d, nbits, "lut_to_dense: indices")
    return [TensorType(lut.dtype, shape)]


@register("lut_to_dense", inputs=("indices", "lut"), infer=_lut_infer,
          attrs={"nbits": REQUIRED, "shape": REQUIRED, "vector_axis": 0}, const_foldable=False)
def lut_to_dense(a, attrs):
    """Palettized weight: `indices` is pack_bits(Palettized.indices, nbits); out[idx] =
    lut[g(idx), index, v] (formats.lut.depalettize), of `shape` and the lut's dtype."""
    packed, lut = a
    shape = tuple(attrs["shape"])
    va = attrs["vector_axis"] % len(shape)
    ishape = lut_format.index_shape(shape, lut.shape[-1], va)
    idx = bits.unpack_bits(packed, attrs["nbits"], math.prod(ishape)).reshape(ishape)
    return lut_format.depalettize(idx, lut, None, va)


def _dq_infer(types, attrs):
    data, scale = types[:2]
    zp = types[2] if len(types) > 2 else None
    shape = _static_shape(attrs, "dequantize")
    dtype = attrs["dtype"]
    if dtype not in quant.QUANT_DTYPES:
        raise ValueError(f"dequantize: dtype must be one of {list(quant.QUANT_DTYPES)}, got {dtype!r}")
    nbits, _ = quant.QUANT_DTYPES[dtype]
    store = DType.of(quant.storage_dtype(dtype))
    if nbits == 8:
        if data.dtype != store or data.shape != shape:
            raise ValueError(f"dequantize: {dtype} data must be {store.value}{list(shape)}, got {data}")
    else:
        _packed_stream(data, math.prod(shape), nbits, f"dequantize: {dtype} data")
    if not scale.dtype.is_float:
        raise ValueError(f"dequantize: scale must be float, got {scale}")
    if scale.rank != len(shape) or not scale.is_static or any(
            s < 1 or n % s for n, s in zip(shape, scale.shape)):
        raise ValueError(f"dequantize: scale {scale} must have rank {len(shape)} with dimensions "
                         f"dividing shape {list(shape)}")
    if zp is not None:
        if zp.shape != scale.shape or not (zp.dtype == store or zp.dtype.is_float):
            raise ValueError(f"dequantize: zero_point must be {store.value} or float of the scale's "
                             f"shape {list(scale.shape)}, got {zp}")
    return [TensorType(scale.dtype, shape)]


@register("dequantize", inputs=("data", "scale", "zero_point?"), infer=_dq_infer,
          attrs={"dtype": REQUIRED, "shape": REQUIRED}, const_foldable=False)
def dequantize(a, attrs):
    """Linearly quantized weight: (data - zero_point) * scale, scale/zero_point broadcast per
    block (formats.quant.dequantize). 8-bit data are int8/uint8 of `shape`; 4-bit data are packed
    LSB-first nibbles (formats.quant.pack_quantized; int4 as two's complement). Scale's dtype."""
    data, scale = a[:2]
    zp = a[2] if len(a) > 2 else None
    q = quant.unpack_quantized(data, attrs["dtype"], attrs["shape"])
    return quant.dequantize(q, scale, zp)


def _sparse_infer(types, attrs):
    mask, values = types
    shape = _static_shape(attrs, "sparse_to_dense")
    _packed_stream(mask, math.prod(shape), 1, "sparse_to_dense: mask")
    if values.rank != 1:
        raise ValueError(f"sparse_to_dense: values must be 1-D, got {values}")
    if isinstance(values.shape[0], int) and values.shape[0] > math.prod(shape):
        raise ValueError(f"sparse_to_dense: {values.shape[0]} values exceed shape {list(shape)}")
    return [TensorType(values.dtype, shape)]


@register("sparse_to_dense", inputs=("mask", "values"), infer=_sparse_infer,
          attrs={"shape": REQUIRED}, const_foldable=False)
def sparse_to_dense(a, attrs):
    """Pruned weight: zeros of `shape` with `values` (nnz, row-major) where the packed bit mask
    is set (formats.sparse.densify); the values' dtype."""
    mask, values = a
    return sparse.densify(mask, values, attrs["shape"])


def _fq_infer(types, attrs):
    (x,) = types
    s, zp = attrs["scale"], attrs["zero_point"]
    if not x.dtype.is_float:
        raise ValueError(f"fake_quantize: x must be float, got {x}")
    if isinstance(s, bool) or not isinstance(s, (int, float)) or not math.isfinite(s) or s <= 0:
        raise ValueError(f"fake_quantize: scale must be a finite number > 0, got {s!r}")
    if zp is not None and (isinstance(zp, bool) or not isinstance(zp, int) or not 0 <= zp <= 255):
        raise ValueError(f"fake_quantize: zero_point must be None or an int in [0, 255], got {zp!r}")
    return [x]


@register("fake_quantize", inputs=("x",), infer=_fq_infer, attrs={"scale": REQUIRED, "zero_point": None})
def fake_quantize(a, attrs):
    """An activation quantized to 8 bits and back (W8A8), in x's dtype, round half to even, NaN
    staying NaN: int8 without a zero point, clip(round(x / scale), -127, 127) * scale; uint8 with
    one, (clip(round(x / scale) + zero_point, 0, 255) - zero_point) * scale (a range not
    centred on 0, as after a GELU). Scale and zero point are calibrated per tensor."""
    import numpy as np

    x = a[0]
    s, zp = x.dtype.type(attrs["scale"]), attrs["zero_point"]
    if zp is None:
        return (np.clip(np.round(x / s), -127, 127) * s).astype(x.dtype, copy=False)
    z = x.dtype.type(zp)
    return ((np.clip(np.round(x / s) + z, 0, 255) - z) * s).astype(x.dtype, copy=False)
