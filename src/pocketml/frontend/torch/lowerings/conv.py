"""Lowerings of convolutions (kept whole: conv1d/2d/3d, conv_transpose*, convolution) to conv ops."""
from __future__ import annotations

from ..builder import Builder, Var
from ..registry import Unsupported, lowers
from ._nn_util import as_list, check_float, sym_pads, via


def _emit(b: Builder, x: Var, weight: Var, bias, stride, pads, dilation, groups, transposed=False,
          output_padding=None, what="conv"):
    n = weight.rank - 2
    if n < 1:
        raise Unsupported(f"{what}: weight of rank {weight.rank}")
    check_float(x, what)
    unbatched = x.rank == n + 1
    if unbatched:
        x = via(b, "aten.unsqueeze.default", x, 0)
    elif x.rank != n + 2:
        raise Unsupported(f"{what}: input of rank {x.rank} for a {n}d convolution")
    attrs = {"strides": as_list(stride, n, "stride"), "pads": pads,
             "dilations": as_list(dilation, n, "dilation"), "groups": int(groups)}
    if transposed:
        attrs["output_padding"] = as_list(output_padding or 0, n, "output_padding")
        out = b.op("conv_transpose", [x, weight, bias], attrs)
    else:
        out = b.op("conv", [x, weight, bias], attrs)
    if unbatched:
        out = via(b, "aten.squeeze.dims", out, [0])
    return out


def _pads(padding, weight: Var, dilation, stride, what) -> list[int]:
    n = weight.rank - 2
    if isinstance(padding, str):
        if padding == "valid":
            return [0] * (2 * n)
        if padding == "same":
            if any(s != 1 for s in as_list(stride, n)):
                raise Unsupported(f"{what}: padding='same' needs stride 1")
            out = []
            for k, d in zip(weight.shape[2:], as_list(dilation, n)):
                if not isinstance(k, int):
                    raise Unsupported(f"{what}: padding='same' with a symbolic kernel size")
                total = d * (k - 1)
                out += [total // 2, total - total // 2]  # torch puts the odd extra at the end
            return out
        raise Unsupported(f"{what}: unknown padding {padding!r}")
    return sym_pads(as_list(padding, n, "padding"))


@lowers("aten.conv1d.default", "aten.conv2d.default", "aten.conv3d.default",
        "aten.conv1d.padding", "aten.conv2d.padding", "aten.conv3d.padding")
def conv_nd(b: Builder, x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    return _emit(b, x, weight, bias, stride, _pads(padding, weight, dilation, stride, "conv"),
                 dilation, groups)


@lowers("aten.conv_transpose1d.default", "aten.conv_transpose2d.input", "aten.conv_transpose3d.input")
def conv_transpose_nd(b: Builder, x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                      dilation=1):
    n = weight.rank - 2
    return _emit(b, x, weight, bias, stride, sym_pads(as_list(padding, n, "padding")), dilation, groups,
                 transposed=True, output_padding=output_padding, what="conv_transpose")


@lowers("aten.convolution.default")
def convolution(b: Builder, x, weight, bias, stride, padding, dilation, transposed, output_padding, groups):
    n = weight.rank - 2
    if not transposed and any(p for p in as_list(output_padding or 0, n)):
        raise Unsupported("convolution: output_padding on a non-transposed convolution")
    return _emit(b, x, weight, bias, stride, sym_pads(as_list(padding, n, "padding")), dilation, groups,
                 transposed=bool(transposed), output_padding=output_padding,
                 what="conv_transpose" if transposed else "conv")


@lowers("aten._convolution.default")
def _convolution(b: Builder, x, weight, bias, stride, padding, dilation, transposed, output_padding, groups,
                 *flags):
    return convolution(b, x, weight, bias, stride, padding, dilation, transposed, output_padding, groups)
