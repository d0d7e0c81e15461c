"""The native hand-off: at plan time, linear and embedding ops whose weight is a packed constant
become one call of `pocketml._native.PackedLinear`, which reads the packed data directly.

Fused (float32 activations only; fp16 emulation keeps the reference path):
- `lut_to_dense(indices, lut)` [-> cast float32] [-> mul by a [N, 1] row scale]: palettization
  with scalar LUTs (cluster_dim 1), per-tensor or grouped; the LUT may itself be computed from
  constants (an int8 `dequantize`), evaluated once here with the references.
- `dequantize(data, scale, zero_point?)` [-> cast float32] with a float32 scale: int8/uint8/
  int4/uint4, per tensor, channel or block.
- a float16 or float32 const [-> cast float32] (the native f32 kernels measured faster than NumPy's
  BLAS on this project's models, decode and prefill alike).
- `sparse_to_dense(mask, values)`: pruning, its kept values themselves one of the above (a
  float32/float16 const, or `dequantize` / `lut_to_dense` of shape [nnz]: the joint modes).
Vector palettization and the rest stay on the references, which remain
the definition every native kernel is tested against. One `PackedLinear` is built per weight value
(a tied embedding/output weight shares it), and the chain ops computing the dense weight are
dropped when nothing else reads them, so the dense weight is never materialised.

Also handed over (float32 outputs): `scaled_dot_product_attention` ("native:sdpa": rank 4, k/v
read through their strides, so a KV cache's slice is never copied), `rms_norm` and `layer_norm`
over the last axis ("native:rms_norm", "native:layer_norm"), `gelu` (erf form) and `silu`
("native:gelu", "native:silu": in double like the references with `exact`, else in float32 within
6 ulp). Each checks its arguments when
called and runs the reference for what the kernel does not take (other dtypes or ranks, shapes
broadcast beyond the query's, parameters not of shape [D]).
"""
from __future__ import annotations

import math
import os

import numpy as np

from ..errors import ConfigError
from ..ir import registry
from ..ir.ops.indexing import _check_range
from ..ir.program import Function, Op
from ..ir.types import DType
from . import conv_fusion, linear_fusion
from .plan import Kernel

try:
    from .. import _native
except ImportError:  # a source checkout without a build: the references run everything
    _native = None

BACKENDS = ("native", "reference")
_CONST_EVAL_MAX = 1 << 16  # elements of a constant subexpression (a LUT) evaluated at plan time
_QUANT = ("int8", "uint8", "int4", "uint4")


def available() -> bool:
    """Whether the native extension provides the packed kernels."""
    return _native is not None and hasattr(_native, "PackedLinear")


def resolve_backend(backend: str | None) -> str:
    """None -> "native" where the extension provides the kernels, else "reference"."""
    if backend is None:
        return "native" if available() else "reference"
    if backend not in BACKENDS:
        raise ConfigError(f"backend must be one of {BACKENDS} (or None: native where built), got {backend!r}")
    if backend == "native" and not available():
        raise ConfigError("backend='native' needs the native extension pocketml._native with its packed "
                          "kernels, which this installation lacks; build it with ./scripts/setup.sh "
                          "(pip install -e . compiles it), or use backend='reference'")
    return backend


def resolve_threads(threads: int | None) -> int:
    """Threads for native calls: threads, else $POCKETML_THREADS, else 0 (all the process may use)."""
    source = "threads"
    if threads is None:
        env = os.environ.get("POCKETML_THREADS", "").strip()
        if not env:
            return 0
        source = "POCKETML_THREADS"
        try:
            threads = int(env)
        except ValueError:
            raise ConfigError(f"POCKETML_THREADS must be a positive integer, got {env!r}") from None
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
        raise ConfigError(f"{source} must be a positive integer or None, got {threads!r}")
    return threads


class FusedLinear:
    """linear(x, W, bias) with W packed: x [..., K] -> [..., N]; with `residual`, args[3] (of the
    output's shape) is added, then `act` ("gelu", "silu" or None) applied, block by block as the
    kernel computes them (a graph's add / activation after the layer, fused: `linear_fusion.fuse_epilogues`)."""
    __slots__ = ("packed", "n", "threads", "exact", "keep", "act", "residual")  # keep: arrays `packed` borrows

    def __init__(self, packed, n: int, threads: int, exact: bool, keep, act: str | None = None,
                 residual: bool = False):
        self.packed, self.n, self.threads, self.exact, self.keep = packed, n, threads, exact, keep
        self.act, self.residual = act, residual

    def __call__(self, args, attrs):
        x = args[0]
        bias = args[2] if len(args) > 2 else None
        x2 = np.ascontiguousarray(x.reshape(-1, x.shape[-1]), dtype=np.float32)
        out = np.empty((x2.shape[0], self.n), np.float32)
        shape = (*x.shape[:-1], self.n)
        r = None
        if self.residual:
            r = args[3]
            if r.dtype != np.float32 or r.shape != shape:  # as the add op would: broadcast, promote
                y = FusedLinear(self.packed, self.n, self.threads, self.exact, self.keep)(args[:3], attrs)[0]
                y = registry.get("add").compute([y, r], {})[0]
                return [self._act(y)] if self.act else [y]
            r = np.ascontiguousarray(r.reshape(-1, self.n))
        if x2.shape[0]:
            if bias is not None:
                bias = np.ascontiguousarray(bias, dtype=np.float32)
            self.packed.gemm(x2, out, bias, self.threads, self.exact, residual=r, act=self.act)
        return [out.reshape(shape)]

    def _act(self, y):
        return FusedActivation(self.act, self.threads, exact=self.exact)([y], {"approximate": "none"})[0]


class FusedLinearGroup:
    """Several FusedLinear reading one x (q/k/v, gate/up): one step, outputs in their order; the
    native loop runs them as one dispatch (`linear::gemm_group`), equal bit for bit."""
    __slots__ = ("linears",)

    def __init__(self, linears: list[FusedLinear]):
        self.linears = linears

    def __call__(self, args, attrs):
        x = args[0]
        return [f([x, None, b], attrs)[0] for f, b in zip(self.linears, args[1:])]


class FusedEmbedding:
    """embedding(W, ids) with W packed [V, D]: ids [...] -> [..., D]."""
    __slots__ = ("packed", "v", "d", "keep")

    def __init__(self, packed, v: int, d: int, keep):
        self.packed, self.v, self.d, self.keep = packed, v, d, keep

    def __call__(self, args, attrs):
        ids = args[1]
        flat = np.ascontiguousarray(ids.reshape(-1), dtype=np.int64)
        _check_range(flat, self.v, 1, None, what="token id")  # the reference's error, input named
        out = np.empty((flat.size, self.d), np.float32)
        if flat.size:
            self.packed.rows(flat, out)
        return [out.reshape(*ids.shape, self.d)]


class FusedSdpa:
    """scaled_dot_product_attention in float32 via `_native.sdpa`, else the reference. `int8`:
    (keys, values) read from an int8 cache, args then (q, k or its int8 rows, v or its, mask, k's
    scales, v's scales): the `dequantize_rows` ops that made them, computed by the kernel."""
    __slots__ = ("threads", "reference", "int8")

    def __init__(self, threads: int, int8: tuple[bool, bool] = (False, False)):
        self.threads, self.reference = threads, registry.get("scaled_dot_product_attention").compute
        self.int8 = int8

    def __call__(self, args, attrs):
        q, k, v, mask, ks, vs = (list(args) + [None] * 6)[:6]
        want = [np.int8 if i8 else np.float32 for i8 in self.int8]
        if (q.dtype == np.float32 and k.dtype == want[0] and v.dtype == want[1] and q.ndim == k.ndim == v.ndim == 4
                and q.shape[-1] and (mask is None or mask.dtype in _MASK_DTYPES and mask.ndim <= 4)):
            q, k, v = (a if a.strides[-1] == a.itemsize else np.ascontiguousarray(a) for a in (q, k, v))
            out = np.empty((*q.shape[:3], v.shape[3]), np.float32)
            scale = attrs["scale"]
            scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
            try:
                _native.sdpa(q, k, v, mask, out, scale, bool(attrs["is_causal"]), self.threads, ks, vs)
                return [out]
            except (ValueError, TypeError):  # shapes the kernel does not take: the reference decides
                pass
        dequantize = registry.get("dequantize_rows").compute
        k = dequantize([k, ks], {})[0] if self.int8[0] else k
        v = dequantize([v, vs], {})[0] if self.int8[1] else v
        return self.reference([q, k, v, mask], attrs)


class FusedNorm:
    """rms_norm / layer_norm over the last axis in float32 via `_native`, else the reference."""
    __slots__ = ("kind", "threads", "reference")

    def __init__(self, kind: str, threads: int):
        self.kind, self.threads, self.reference = kind, threads, registry.get(kind).compute

    def __call__(self, args, attrs):
        x, *params = args
        if x.dtype == np.float32 and x.ndim and tuple(attrs["axes"]) in ((-1,), (x.ndim - 1,)):
            d = x.shape[-1]
            ps = []
            for p in params:
                if p is not None:
                    if p.dtype != np.float32 or p.ndim > x.ndim or p.size != d or p.shape[-1] != d:
                        return self.reference(args, attrs)
                    p = np.ascontiguousarray(p.reshape(d))
                ps.append(p)
            x = np.ascontiguousarray(x)
            out = np.empty(x.shape, np.float32)
            eps = float(attrs["eps"])
            if self.kind == "rms_norm":
                _native.rms_norm(x, ps[0], eps, out, self.threads)
            else:
                _native.layer_norm(x, ps[0], ps[1] if len(ps) > 1 else None, eps, out, self.threads)
            return [out]
        return self.reference(args, attrs)


class FusedActivation:
    """gelu (erf form) / silu in float32 via `_native`: computed in double like the references, or
    with `exact` False in float32 within 6 ulp (GELU in 40 % of the time); gated (`mul(act(x), y)`,
    SwiGLU): args are (x, y) and the product is one pass."""
    __slots__ = ("name", "threads", "gated", "exact", "reference")

    def __init__(self, op_type: str, threads: int, gated: bool = False, exact: bool = True):
        self.name, self.threads, self.gated, self.exact = op_type, threads, gated, exact
        self.reference = registry.get(op_type).compute

    def __call__(self, args, attrs):
        x = args[0]
        if self.gated:
            y = args[1]
            if x.dtype != np.float32 or y.dtype != np.float32 or x.shape != y.shape:
                a = self.reference([x], {"approximate": "none"})[0]
                return [np.multiply(a, y)]
            out = np.empty(x.shape, np.float32)
            _native.activation(self.name, np.ascontiguousarray(x), out, self.threads, np.ascontiguousarray(y),
                               exact=self.exact)
            return [out]
        if x.dtype != np.float32 or attrs.get("approximate", "none") != "none":
            return self.reference(args, attrs)
        x = np.ascontiguousarray(x)
        out = np.empty(x.shape, np.float32)
        _native.activation(self.name, x, out, self.threads, exact=self.exact)
        return [out]


class FusedRotary:
    """x * cos + concat(-x[..., h:], x[..., :h]) * sin (rotary embedding, seven ops in the graph)
    via `_native.rotary`, which reads x (a transposed projection) where it lies; equal to the
    references bit for bit. Shapes the kernel does not take run the same formula in NumPy."""
    __slots__ = ("threads",)

    def __init__(self, threads: int):
        self.threads = threads

    def __call__(self, args, attrs):
        x, cos, sin = args
        if (x.dtype == cos.dtype == sin.dtype == np.float32 and x.ndim == 4 and x.strides[-1] == 4
                and x.shape[-1] % 2 == 0 and cos.shape == sin.shape and cos.ndim >= 2
                and cos.shape[-2:] == x.shape[-2:] and all(d == 1 for d in cos.shape[:-2])):
            t, d = x.shape[-2:]
            out = np.empty(x.shape, np.float32)
            _native.rotary(x, np.ascontiguousarray(cos.reshape(t, d)), np.ascontiguousarray(sin.reshape(t, d)),
                           out, self.threads)
            return [out]
        h = x.shape[-1] // 2
        return [np.add(np.multiply(x, cos), np.multiply(np.concatenate((-x[..., h:], x[..., :h]), -1), sin))]


_MASK_DTYPES = (np.dtype(np.float32), np.dtype(np.bool_))
_NORMS = ("rms_norm", "layer_norm")
_ACTIVATIONS = ("gelu", "silu")
_NATIVE_OPS = ("scaled_dot_product_attention", *_NORMS, *_ACTIVATIONS)


def _fuse_ops(ops: list[Op], kernels: dict, threads: int, fused: set, exact: bool = True,
              outputs: frozenset = frozenset()) -> None:
    """Hands float32 attention, last-axis normalizations, activations (gated ones included) and
    rotary embeddings to the native kernels (in `kernels`); ops they absorb go into `fused`
    (never one making a function output, in `outputs`). `exact` False: activations in float32
    (FusedActivation)."""
    if not hasattr(_native, "sdpa"):  # an older build
        return
    producers = {v.name: op for op in ops for v in op.outputs}
    readers: dict[str, list[Op]] = {}
    for op in ops:
        for n in op.inputs:
            if n is not None:
                readers.setdefault(n, []).append(op)
    if hasattr(_native, "rotary"):
        for op in ops:
            match = _match_rotary(op, producers, readers)
            if match is not None:
                x, cos, sin, absorbed = match
                kernels[id(op)] = Kernel(FusedRotary(threads), "native:rotary", [x, cos, sin])
                fused.update(id(a) for a in absorbed)
    for op in ops:
        if op.type not in _NATIVE_OPS or op.outputs[0].type.dtype != DType.float32 or id(op) in kernels:
            continue  # (an activation a convolution computes already has its kernel)
        if op.type == "scaled_dot_product_attention":
            inputs, scales, int8 = (list(op.inputs) + [None])[:4], [None, None], [False, False]
            for i in (1, 2):  # keys / values of an int8 cache, dequantized for this attention alone
                dq = producers.get(inputs[i])
                if dq is not None and dq.type == "dequantize_rows" and len(readers[inputs[i]]) == 1 \
                        and inputs.count(inputs[i]) == 1 and inputs[i] not in outputs:
                    inputs[i], scales[i - 1], int8[i - 1] = dq.inputs[0], dq.inputs[1], True
                    fused.add(id(dq))
            kernels[id(op)] = Kernel(FusedSdpa(threads, tuple(int8)), "native:sdpa" + (" int8 kv" if any(int8) else ""),
                                     inputs + scales if any(int8) else list(op.inputs))
        elif op.type in _NORMS:
            axes = op.attrs.get("axes", [-1])
            rank = op.outputs[0].type.rank
            if isinstance(axes, list) and len(axes) == 1 and axes[0] in (-1, rank - 1):
                kernels[id(op)] = Kernel(FusedNorm(op.type, threads), f"native:{op.type}", list(op.inputs))
        elif op.attrs.get("approximate", "none") == "none" and hasattr(_native, "activation"):
            out = op.outputs[0]
            users = readers.get(out.name, [])
            gate = users[0] if len(users) == 1 else None
            if (gate is not None and gate.type == "mul" and len(set(gate.inputs)) == 2
                    and gate.outputs[0].type == out.type and all(
                        producers[n].outputs[0].type == out.type if n in producers else False
                        for n in gate.inputs)):
                other = gate.inputs[1] if gate.inputs[0] == out.name else gate.inputs[0]
                kernels[id(gate)] = Kernel(FusedActivation(op.type, threads, gated=True, exact=exact),
                                           f"native:{op.type}*", [op.inputs[0], other])
                fused.add(id(op))
            else:
                kernels[id(op)] = Kernel(FusedActivation(op.type, threads, exact=exact), f"native:{op.type}",
                                         list(op.inputs))


def _match_rotary(op: Op, producers: dict, readers: dict):
    """(x, cos, sin, absorbed ops) if `op` ends x * cos + concat(-x[..., h:], x[..., :h]) * sin
    on a float32 x of rank 4 and static even last dimension 2h, else None."""
    if op.type != "add" or op.outputs[0].type.dtype != DType.float32:
        return None
    muls = [producers.get(n) for n in op.inputs]
    if len(muls) != 2 or any(m is None or m.type != "mul" for m in muls):
        return None
    for m_cos, m_sin in (muls, muls[::-1]):
        for rot in m_sin.inputs:
            cat = producers.get(rot)
            if cat is None or cat.type != "concat" or len(cat.inputs) != 2:
                continue
            neg, lo = (producers.get(n) for n in cat.inputs)
            hi = producers.get(neg.inputs[0]) if neg is not None and neg.type == "neg" else None
            if hi is None or lo is None or hi.type != "slice" or lo.type != "slice" or hi.inputs[0] != lo.inputs[0]:
                continue
            x = hi.inputs[0]
            t = producers[x].outputs[0].type if x in producers else None
            if t is None or t.rank != 4 or t.dtype != DType.float32 or not isinstance(t.shape[-1], int):
                continue
            d = t.shape[-1]
            h = d // 2
            if (d % 2 or cat.attrs.get("axis") not in (-1, 3) or not _is_slice(hi, h, d) or not _is_slice(lo, 0, h)
                    or x not in m_cos.inputs or len(m_cos.inputs) != 2 or len(m_sin.inputs) != 2):
                continue
            cos = m_cos.inputs[1] if m_cos.inputs[0] == x else m_cos.inputs[0]
            sin = m_sin.inputs[1] if m_sin.inputs[0] == rot else m_sin.inputs[0]
            absorbed = [m_cos, m_sin, cat, neg, hi, lo]
            inner = {id(a) for a in absorbed}  # intermediates read only inside the pattern
            if all(all(id(r) in inner or r is op for r in readers.get(a.outputs[0].name, [])) for a in absorbed
                   if a not in (hi, lo)) and all(id(r) in inner for a in (hi, lo) for r in readers[a.outputs[0].name]):
                return x, cos, sin, absorbed
    return None


def _is_slice(op: Op, begin: int, end: int) -> bool:
    """Whether `op` is x[..., begin:end] on the last of 4 axes."""
    a = op.attrs
    return (a.get("axes") in ([3], [-1]) and a.get("begin") == [begin] and a.get("end") == [end]
            and a.get("step") in (None, [1]))


def fuse(threads: int, exact: bool = True):
    """The plan rewrite (plan.build's `rewrite`) handing packed-weight linear/embedding to native.
    `exact`: compressed linear layers compute in fp32 like the references, gelu/silu in double;
    False lets the layers quantize activations to int8 blocks of 32 (integer dot products, ~0.6 %
    error per output) and the activations compute in float32 (within 6 ulp)."""
    def rewrite(ops: list[Op], constants: dict, function: Function):
        return _fuse(ops, constants, function, threads, exact)
    return rewrite


def _fuse(ops: list[Op], constants: dict, function: Function, threads: int, exact: bool):
    producers = {v.name: op for op in ops for v in op.outputs}
    packed: dict[str, tuple | None] = {}  # weight value -> (PackedLinear, kernel name, arrays, chain)
    kernels: dict[int, Kernel] = {}
    chain_ops: set[int] = set()
    for op in ops:
        if op.type not in ("linear", "embedding") or op.outputs[0].type.dtype != DType.float32:
            continue
        w = op.inputs[1] if op.type == "linear" else op.inputs[0]
        if w not in packed:
            packed[w] = _pack(w, producers, constants)
        if packed[w] is None:
            continue
        p, name, keep, chain, (n, k) = packed[w]
        if op.type == "linear":
            bias = op.inputs[2] if len(op.inputs) > 2 else None
            kernels[id(op)] = Kernel(FusedLinear(p, n, threads, exact, keep), name, [op.inputs[0], None, bias])
        else:
            kernels[id(op)] = Kernel(FusedEmbedding(p, n, k, keep), name, [None, op.inputs[1]])
        chain_ops.update(id(c) for c in chain)
    if hasattr(_native, "conv"):
        conv_fusion.fuse_convs(ops, kernels, chain_ops, constants, function, threads, exact)
    _fuse_ops(ops, kernels, threads, chain_ops, exact, frozenset(function.outputs))
    linear_fusion.fuse_epilogues(ops, kernels, chain_ops, function)
    if not chain_ops:
        return linear_fusion.group_linears(ops, kernels), kernels
    # drop the chain ops nothing reads any more (walking back: users come after producers)
    uses: dict[str, int] = dict.fromkeys(function.outputs, 1)
    for op in ops:
        for n in (kernels[id(op)].inputs if id(op) in kernels else op.inputs):
            if n is not None:
                uses[n] = uses.get(n, 0) + 1
    kept = []
    for op in reversed(ops):
        if id(op) in chain_ops and not any(uses.get(v.name, 0) for v in op.outputs):
            for n in op.inputs:
                if n is not None:
                    uses[n] -= 1
            continue
        kept.append(op)
    return linear_fusion.group_linears(kept[::-1], kernels), kernels


def _pack(name: str, producers: dict, constants: dict, flat: bool = False, cast: bool = False,
          int8_per_row: bool = False):
    """(PackedLinear, kernel name, arrays it was built from, chain ops, (N, K)) for weight `name`,
    or None where its chain is not one the native kernels take. `flat`: a 1-D weight (a sparse
    weight's kept values) packed as [1, nnz], its parameters with a leading axis of 1; `cast`:
    the weight is cast to float32 after (float16 allowed); `int8_per_row`: a table of 5-8 bits
    gets its int8 copy (exact=False) per row (PackedLinear.lut)."""
    chain: list[Op] = []
    op = producers.get(name)
    rank = 1 if flat else 2
    if name in constants:
        w = constants[name]
        if w.ndim != rank or w.dtype not in ((np.float32, np.float16) if cast else (np.float32,)):
            return None
        w = np.ascontiguousarray(w).reshape(1, -1) if flat else np.ascontiguousarray(w)
        return _native.PackedLinear.dense(w), f"native:f{w.dtype.itemsize * 8}", (w,), chain, w.shape
    row_scale = None
    if op is not None and op.type == "mul" and not flat:
        scaled, s = op.inputs
        s_arr = constants.get(s)
        n = op.outputs[0].type.shape[0] if op.outputs[0].type.rank == 2 else None
        if s_arr is None or s_arr.dtype != np.float32 or s_arr.shape != (n, 1):
            return None
        row_scale = np.ascontiguousarray(s_arr.reshape(-1))
        chain.append(op)
        name, op = scaled, producers.get(scaled)
    if op is not None and op.type == "cast" and op.attrs.get("dtype") == "float32":
        chain.append(op)
        cast = True
        name, op = op.inputs[0], producers.get(op.inputs[0])
        if name in constants and row_scale is None:
            w = constants[name]
            if w.ndim != rank or w.dtype != np.float16:
                return None
            w = np.ascontiguousarray(w).reshape(1, -1) if flat else np.ascontiguousarray(w)
            return _native.PackedLinear.dense(w), "native:f16", (w,), chain, w.shape
    if op is None or op.type not in ("lut_to_dense", "dequantize", "sparse_to_dense"):
        return None
    shape = op.attrs.get("shape")
    if not (isinstance(shape, list) and len(shape) == rank and all(isinstance(d, int) for d in shape)):
        return None
    n, k = (1, shape[0]) if flat else shape
    chain.append(op)
    if op.type == "sparse_to_dense":
        mask = constants.get(op.inputs[0])
        values = None if flat or row_scale is not None else _pack(op.inputs[1], producers, constants,
                                                                  flat=True, cast=cast)
        if mask is None or mask.dtype != np.uint8 or mask.ndim != 1 or values is None:
            return None
        vp, vname, varrays, vchain, _ = values
        mask = np.ascontiguousarray(mask)
        p = _native.PackedLinear.sparse(mask, vp, n, k)
        return p, "native:sparse " + vname.removeprefix("native:"), (mask, vp) + tuple(varrays), \
            chain + vchain, (n, k)
    if op.type == "lut_to_dense":
        idx = constants.get(op.inputs[0])
        lut = _const_eval(op.inputs[1], producers, constants, chain)
        nbits = op.attrs["nbits"]
        if flat and lut is not None and lut.ndim == 3:
            lut = lut.reshape((1,) + lut.shape)
        if (idx is None or idx.dtype != np.uint8 or lut is None or lut.ndim != 4
                or lut.shape[2:] != (1 << nbits, 1) or n % lut.shape[0] or k % lut.shape[1]
                or lut.dtype not in (np.float32, np.float16) or lut.dtype == np.float16 and not cast):
            return None
        idx, lut = np.ascontiguousarray(idx.reshape(-1)), np.ascontiguousarray(lut)
        p = _native.PackedLinear.lut(idx, lut, nbits, n, k, row_scale, int8_per_row and nbits > 4)
        kname = f"native:lut{nbits} g[{lut.shape[0]},{lut.shape[1]}]" + (" scaled" if row_scale is not None else "")
        return p, kname, (idx, lut, row_scale), chain, (n, k)
    data, scale = constants.get(op.inputs[0]), _half_or_const(op.inputs[1], producers, constants, chain)
    zp_name = op.inputs[2] if len(op.inputs) > 2 else None
    zp = None if zp_name is None else constants.get(zp_name)
    if flat:  # parameters over [nnz] -> over [1, nnz]
        scale, zp = (None if a is None or a.ndim != 1 else a.reshape(1, -1) for a in (scale, zp))
        data = None if data is None else data.reshape(1, -1) if op.attrs["dtype"] in ("int8", "uint8") else data
    dtype = op.attrs["dtype"]
    if (row_scale is not None or dtype not in _QUANT or data is None or scale is None
            or scale.dtype not in (np.float32, np.float16) or scale.ndim != 2 or n % scale.shape[0]
            or k % scale.shape[1]
            or (zp_name is not None and (zp is None or zp.shape != scale.shape))):
        return None
    arrays = [np.ascontiguousarray(a) for a in (data, scale)] + [None if zp is None else np.ascontiguousarray(zp)]
    p = _native.PackedLinear.quantized(*arrays, dtype, n, k)
    return p, f"native:{dtype} {_granularity(n, k, scale.shape)}" + (" zp" if zp is not None else ""), \
        tuple(arrays), chain, (n, k)


def _half_or_const(name: str, producers: dict, constants: dict, chain: list[Op]):
    """A constant, or the float16 constant a cast to float32 reads (the kernels widen it
    themselves; the cast joins `chain`); else None."""
    if name in constants:
        return constants[name]
    op = producers.get(name)
    if op is not None and op.type == "cast" and op.attrs.get("dtype") == "float32":
        src = constants.get(op.inputs[0])
        if src is not None and src.dtype == np.float16:
            chain.append(op)
            return src
    return None


def _granularity(n: int, k: int, groups: tuple) -> str:
    gn, gk = groups
    if gn == 1 and gk == 1:
        return "per_tensor"
    if gk == 1:
        return "per_channel" if gn == n else f"g[{gn},1]"
    return f"block{k // gk}" if gn == n else f"g[{gn},{gk}]"


def _const_eval(name: str, producers: dict, constants: dict, chain: list[Op]):
    """The value of `name` if it is a constant, or a small one computed from constants by
    dequantize/cast (evaluated here with the references); its ops are added to `chain`."""
    if name in constants:
        return constants[name]
    op = producers.get(name)
    if op is None or op.type not in ("dequantize", "cast") or len(op.outputs) != 1:
        return None
    t = op.outputs[0].type
    if not t.is_static or int(np.prod(t.shape)) > _CONST_EVAL_MAX:
        return None
    sub: list[Op] = []
    args = []
    for n in op.inputs:
        if n is None:
            args.append(None)
            continue
        a = _const_eval(n, producers, constants, sub)
        if a is None:
            return None
        args.append(a)
    opdef = registry.get(op.type)
    value = np.asarray(opdef.compute(args, opdef.with_defaults(op.attrs))[0])
    chain.extend(sub)
    chain.append(op)
    return value
