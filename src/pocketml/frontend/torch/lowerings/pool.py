"""Lowerings of max/avg/adaptive pooling (1d/2d/3d) to the pool ops."""
from __future__ import annotations

from ..builder import Builder
from ..registry import Unsupported, lowers
from ._nn_util import Outputs, as_list, sym_pads


def _max_pool(b: Builder, n: int, x, kernel_size, stride=(), padding=0, dilation=1, ceil_mode=False):
    kernel = as_list(kernel_size, n, "kernel_size")
    strides = as_list(stride, n, "stride") if stride not in (None, [], ()) else kernel
    if x.rank < n + 1:
        raise Unsupported(f"max_pool{n}d of a rank-{x.rank} input")
    return b.op("max_pool", [x], {"kernel": kernel, "strides": strides,
                                  "pads": sym_pads(as_list(padding, n, "padding")),
                                  "dilations": as_list(dilation, n, "dilation"), "ceil_mode": bool(ceil_mode)})


def _values_only(out, what):
    return Outputs((out, None), what, ("values", "indices"))


@lowers("aten.max_pool1d.default")
def max_pool1d(b, x, *args, **kwargs):
    return _max_pool(b, 1, x, *args, **kwargs)


@lowers("aten.max_pool2d.default")
def max_pool2d(b, x, *args, **kwargs):
    return _max_pool(b, 2, x, *args, **kwargs)


@lowers("aten.max_pool3d.default")
def max_pool3d(b, x, *args, **kwargs):
    return _max_pool(b, 3, x, *args, **kwargs)


@lowers("aten.max_pool1d_with_indices.default")
def max_pool1d_with_indices(b, x, *args, **kwargs):
    return _values_only(_max_pool(b, 1, x, *args, **kwargs), "max_pool1d_with_indices")


@lowers("aten.max_pool2d_with_indices.default")
def max_pool2d_with_indices(b, x, *args, **kwargs):
    return _values_only(_max_pool(b, 2, x, *args, **kwargs), "max_pool2d_with_indices")


@lowers("aten.max_pool3d_with_indices.default")
def max_pool3d_with_indices(b, x, *args, **kwargs):
    return _values_only(_max_pool(b, 3, x, *args, **kwargs), "max_pool3d_with_indices")


def _avg_pool(b: Builder, n: int, x, kernel_size, stride=(), padding=0, ceil_mode=False, count_include_pad=True,
              divisor_override=None):
    if not x.dtype.is_float:
        raise Unsupported(f"avg_pool{n}d of a {x.dtype.value} input")
    kernel = as_list(kernel_size, n, "kernel_size")
    strides = as_list(stride, n, "stride") if stride not in (None, [], ()) else kernel
    return b.op("avg_pool", [x], {"kernel": kernel, "strides": strides,
                                  "pads": sym_pads(as_list(padding, n, "padding")), "ceil_mode": bool(ceil_mode),
                                  "count_include_pad": bool(count_include_pad),
                                  "divisor_override": divisor_override or None})


@lowers("aten.avg_pool1d.default")
def avg_pool1d(b, x, *args, **kwargs):
    return _avg_pool(b, 1, x, *args, **kwargs)


@lowers("aten.avg_pool2d.default")
def avg_pool2d(b, x, *args, **kwargs):
    return _avg_pool(b, 2, x, *args, **kwargs)


@lowers("aten.avg_pool3d.default")
def avg_pool3d(b, x, *args, **kwargs):
    return _avg_pool(b, 3, x, *args, **kwargs)


def _adaptive(b: Builder, op: str, n: int, x, output_size):
    size = as_list(output_size, n, "output_size")
    if x.rank < n + 1:
        raise Unsupported(f"adaptive pooling of {n} dims of a rank-{x.rank} input")
    size = [x.shape[x.rank - n + i] if s is None else int(s) for i, s in enumerate(size)]
    if any(not isinstance(s, int) or s < 1 for s in size):
        raise Unsupported(f"adaptive pooling to output size {size}")
    return b.op(op, [x], {"output_size": size})


@lowers("aten.adaptive_avg_pool1d.default")
def adaptive_avg_pool1d(b, x, output_size):
    return _adaptive(b, "adaptive_avg_pool", 1, x, output_size)


@lowers("aten.adaptive_avg_pool2d.default", "aten._adaptive_avg_pool2d.default")
def adaptive_avg_pool2d(b, x, output_size):
    return _adaptive(b, "adaptive_avg_pool", 2, x, output_size)


@lowers("aten.adaptive_avg_pool3d.default", "aten._adaptive_avg_pool3d.default")
def adaptive_avg_pool3d(b, x, output_size):
    return _adaptive(b, "adaptive_avg_pool", 3, x, output_size)


@lowers("aten.adaptive_max_pool1d.default")
def adaptive_max_pool1d(b, x, output_size):
    return _values_only(_adaptive(b, "adaptive_max_pool", 1, x, output_size), "adaptive_max_pool1d")


@lowers("aten.adaptive_max_pool2d.default")
def adaptive_max_pool2d(b, x, output_size):
    return _values_only(_adaptive(b, "adaptive_max_pool", 2, x, output_size), "adaptive_max_pool2d")


@lowers("aten.adaptive_max_pool3d.default")
def adaptive_max_pool3d(b, x, output_size):
    return _values_only(_adaptive(b, "adaptive_max_pool", 3, x, output_size), "adaptive_max_pool3d")
