"""The plan's step loop in C++ (`_native.Program`): no Python per step.

A plan built for the native backend (`runtime/plan.py`, views folded) becomes one
`_native.Program` at load: each step a spec naming its kernel (a packed linear or embedding,
attention, a norm, an activation, rotary, float32 arithmetic and math, cast, concat, arange, a
float32 sum or 2-norm over consecutive axes, clip, comparisons, logic and where, int64 add/sub/mul,
a state read or write) or "fallback", which calls back here to run the step's NumPy reference. The
symbolic dimensions of view, arange and state-op attributes are numbered; each call evaluates
them once into a table the steps index. A step whose arguments its kernel does not take (another
dtype, a broadcast it does not handle, a value whose cast NumPy leaves to the platform) goes to
the fallback too, so results never depend on which path ran.
"""
from __future__ import annotations

import time

import numpy as np

from ..ir.ops.state import STATE_OPS
from ..ir.symbolic import compile_value, is_symbolic
from . import conv_fusion, native
from .plan import Plan, Step

_BINARY = ("add", "sub", "mul", "div", "maximum", "minimum", "pow", "fmod", "remainder")
# float32 (other dtypes: the fallback); the attributes each op's kernel takes, in its order
_UNARY = {**{op: () for op in (
    "neg", "exp", "sin", "cos", "tanh", "log", "sigmoid", "relu", "abs", "sign", "floor", "ceil", "round",
    "trunc", "sqrt", "rsqrt", "reciprocal", "exp2", "expm1", "log2", "log10", "log1p", "tan", "atan", "erf",
    "hardsigmoid", "hardswish", "mish", "log_sigmoid")},
    "leaky_relu": ("alpha",), "elu": ("alpha", "scale", "input_scale"), "softplus": ("beta", "threshold")}
_COMPARE = ("equal", "not_equal", "less", "less_equal", "greater", "greater_equal")  # float32, int64, bool
_RECURRENT = ("lstm", "gru", "rnn", "lstm_cell", "gru_cell", "rnn_cell")
_LOGICAL = ("logical_and", "logical_or", "logical_xor")  # bool
_NATIVE_SPECS = ("binary", "unary", "cast", "concat", "arange", "reduce_sum", "reduce_mean", "reduce_norm2", "clip",
                 "fake_quantize", "quantize_rows", "dequantize_rows",
                 "reduce_max", "reduce_min", "argmax", "argmin",
                 "compare", "take", "gather", "index", "cumsum", "pool", "pad",
                 "logical", "where", "copy", "recurrent", "prelu", "softmax", "split", "predicate",
                 "resize", "conv_transpose", "matmul", "linear_dense",
                 "group_norm", "batch_norm", "cumprod", "tile", "tril", "triu",
                 "reduce_prod", "reduce_var", "reduce_logsumexp", "reduce_any", "reduce_all",
                 "adaptive_avg_pool", "adaptive_max_pool", "sort", "topk", "slice_update", "scatter",
                 "full", "full_like", "index_put", "einsum", "decode", *STATE_OPS)  # named native:<op>
_VIEW_ATTRS = {"reshape": ("shape",), "transpose": ("perm",), "squeeze": ("axes",),
               "expand_dims": ("axes",), "expand": ("shape",), "slice": ("axes", "begin", "end", "step")}


class Unsupported(Exception):
    """A plan the native loop cannot express (then the Python loop runs it)."""


class NativeLoop:
    """Runs `plan` through `_native.Program`; `run` has the executor's contract."""

    def __init__(self, plan: Plan, threads: int):
        self.steps = plan.steps
        self.state_names = [s.name for s in plan.function.states]
        self._ops = plan.ops  # each step's op (its output types)
        self._plan, self._constants = plan, None  # weights by name, made when a decode step needs them
        # each value's rank (einsum's equation needs its operands')
        self._ranks = {v.name: v.type.rank for v in plan.function.inputs}
        self._ranks.update({v.name: v.type.rank for op in plan.ops for v in op.outputs})
        self._ranks.update({n: plan.constants[s].ndim for n, s in plan.slots.items() if s in plan.constants})
        self._symbols = set(plan.symbols)
        self._output_slots = set(plan.output_slots)  # a view step left for an output copies (views of
        # a state that is written later stay the reference's, which aliases the state as torch does)
        self._sym_index: dict[str, int] = {}
        self._sym_fns: list = []
        self._sym_steps: list[int] = []  # the first step reading each table entry
        self._failed_step = -1  # set where a table entry failed to evaluate
        specs = []
        for i, s in enumerate(plan.steps):
            self._speccing = i  # the step whose attributes _dims numbers
            specs.append(self._spec(s))
        self.native_seconds = 0.0  # total time in native code over all calls (benchmarks read it)
        self.program = native._native.Program(
            plan.nslots, plan.input_slots, plan.output_slots, list(plan.constants.items()), specs,
            len(self.state_names), len(self._sym_fns), threads)
        for step, spec in zip(plan.steps, specs):  # these run natively now
            if spec[0] in _NATIVE_SPECS:
                step.kernel = f"native:{step.op_type}"

    @property
    def current_step(self) -> int:
        """The step that raised during the last call, or -1."""
        return self._failed_step if self._failed_step >= 0 else self.program.current_step

    @property
    def fallback_seconds(self) -> float:
        """Seconds the last call spent running steps' references in Python."""
        return self.program.fallback_seconds

    def run(self, arrays: list[np.ndarray], bindings: dict, states: dict | None) -> list[np.ndarray]:
        steps, asarray = self.steps, np.asarray
        live = [states[n] for n in self.state_names] if self.state_names else []

        def fallback(i, args):
            step = steps[i]
            attrs = step.attrs
            if step.symbolic_attrs:
                attrs = {**attrs, **{k: f(bindings) for k, f in step.symbolic_attrs}}
            if step.state is None:
                outs = step.compute(args, attrs)
            else:
                outs = step.compute(states[step.state], args, attrs)
            return [asarray(a) for a in outs]

        t0 = time.perf_counter()
        outs = self.program.run(arrays, live, self._table(bindings), fallback)
        self.native_seconds += time.perf_counter() - t0 - self.program.fallback_seconds
        return outs

    def _table(self, bindings: dict) -> list[int]:
        """The call's resolved dimensions; one that fails to evaluate (a division by a zero size)
        is reported as its first reader's failure, as the Python loop reports it."""
        self._failed_step = -1
        table = []
        for k, f in enumerate(self._sym_fns):
            try:
                table.append(f(bindings))
            except Exception:
                self._failed_step = self._sym_steps[k]
                raise
        return table

    # -- specs ---------------------------------------------------------------------------------

    def _dims(self, values) -> list | None:
        """An integer list attribute: ints, and (index,) for each symbolic expression."""
        if values is None:
            return None
        out = []
        for v in values:
            if isinstance(v, str):
                if not is_symbolic(v, self._symbols):
                    raise Unsupported(f"dimension {v!r}")
                if v not in self._sym_index:
                    self._sym_index[v] = len(self._sym_fns)
                    self._sym_fns.append(compile_value(v, self._symbols))
                    self._sym_steps.append(self._speccing)
                out.append((self._sym_index[v],))
            elif _is_int(v) and -2**63 <= v < 2**63:
                out.append(int(v))
            else:
                raise Unsupported(f"dimension {v!r}")
        return out

    def _views(self, step: Step) -> list:
        views = []
        for pos, _, attrs, _, kind in step.views:
            names = _VIEW_ATTRS.get(kind)
            if names is None:
                raise Unsupported(f"view op {kind}")
            dims = [self._dims(attrs[n]) for n in names]
            views.append((pos, kind, *dims, *[None] * (4 - len(dims))))
        return views

    def _decode_spec(self, step: Step) -> tuple[str, dict]:
        if self._constants is None:
            self._constants = {n: self._plan.constants[s] for n, s in self._plan.slots.items()
                               if s in self._plan.constants}
            self._producers = {v.name: op for op in self._ops for v in op.outputs}
        return _decode_spec_for(self._ops[self._speccing], self._constants, self._producers)

    def _spec(self, step: Step) -> tuple:
        kind, params = self._kind(step)
        views = self._views(step)
        if "view" in params:  # a view op left as a step (its output is the function's), a flip: copied
            views.append(params.pop("view"))
        return (kind, step.inputs, step.outputs, step.release, views, params)

    def _kind(self, step: Step) -> tuple[str, dict]:
        c, attrs = step.compute, step.attrs
        if isinstance(c, native.FusedLinear):
            return "linear", {"weight": c.packed, "exact": c.exact, "act": c.act, "residual": c.residual}
        if isinstance(c, native.FusedLinearGroup):
            return "linear_group", {"weights": [f.packed for f in c.linears], "exact": c.linears[0].exact}
        if isinstance(c, native.FusedEmbedding):
            return "embedding", {"weight": c.packed}
        if isinstance(c, conv_fusion.FusedConv):
            return "conv", {"convs": [c.spec()]}
        if isinstance(c, conv_fusion.FusedConvPair):
            return "conv", {"convs": [c.first.spec(), c.second.spec()]}
        if step.op_type in _VIEW_ATTRS and step.kernel == "numpy" and set(step.outputs) <= self._output_slots:
            try:
                dims = [self._dims(attrs[n]) for n in _VIEW_ATTRS[step.op_type]]
            except Unsupported:
                return "fallback", {}
            return "copy", {"view": (0, step.op_type, *dims, *[None] * (4 - len(dims)))}
        if step.symbolic_attrs and step.op_type not in (*STATE_OPS, "arange", "resize", "slice_update", "full"):
            return "fallback", {}
        if isinstance(c, native.FusedSdpa):
            scale = attrs["scale"]
            if scale is not None and (not isinstance(scale, (int, float)) or scale == 0):
                return "fallback", {}
            return "sdpa", {"scale": 0.0 if scale is None else float(scale), "causal": bool(attrs["is_causal"]),
                            "k8": c.int8[0], "v8": c.int8[1]}
        if isinstance(c, native.FusedNorm):
            return c.kind, {"eps": float(attrs["eps"])}
        if isinstance(c, native.FusedActivation):
            if not c.gated and attrs.get("approximate", "none") != "none":
                return ("unary", {"op": "gelu_tanh"}) if attrs["approximate"] == "tanh" else ("fallback", {})
            return "activation", {"act": c.name, "gated": c.gated, "exact": c.exact}
        if isinstance(c, native.FusedRotary):
            return "rotary", {}
        if step.kernel != "numpy":
            return "fallback", {}
        if step.op_type in ("quantize_rows", "dequantize_rows"):
            return step.op_type, {}
        if step.op_type in _BINARY and (step.op_type != "div" or attrs.get("rounding_mode") == "none"):
            return "binary", {"op": step.op_type}
        if step.op_type in _UNARY:
            params = [attrs[k] for k in _UNARY[step.op_type]]
            if not all(_is_number(v) for v in params):
                return "fallback", {}
            return "unary", {"op": step.op_type, "params": [float(v) for v in params]}
        if step.op_type in ("argmax", "argmin"):
            axis = attrs["axis"]
            if axis is None or (_is_int(axis) and -8 <= axis < 8):
                return step.op_type, {"axes": None if axis is None else [int(axis)], "keepdims": bool(attrs["keepdims"])}
            return "fallback", {}
        if step.op_type in ("reduce_sum", "reduce_mean", "reduce_max", "reduce_min", "reduce_prod", "reduce_var",
                            "reduce_logsumexp", "reduce_any", "reduce_all") or (step.op_type == "reduce_norm" and _is_number(attrs["ord"])
                                                              and float(attrs["ord"]) == 2.0):
            axes = attrs["axes"]
            if isinstance(axes, int):
                axes = [axes]
            if axes is None or (isinstance(axes, list) and axes and all(_is_int(a) and -8 <= a < 8 for a in axes)):
                params = {"axes": None if axes is None else [int(a) for a in axes], "keepdims": bool(attrs["keepdims"])}
                if step.op_type == "reduce_var":
                    if not _is_number(attrs["correction"]):
                        return "fallback", {}
                    params["correction"] = float(attrs["correction"])
                return ("reduce_norm2" if step.op_type == "reduce_norm" else step.op_type, params)
            return "fallback", {}
        if step.op_type == "pad" and isinstance(attrs["pads"], list) and all(_is_int(p) for p in attrs["pads"]):
            value = attrs["value"]
            try:
                value = float(value)  # "inf" / "-inf" / "nan" as the reference reads them
            except (TypeError, ValueError):
                return "fallback", {}
            return "pad", {"mode": attrs["mode"], "pads": [int(p) for p in attrs["pads"]], "value": value}
        if step.op_type in ("max_pool", "avg_pool"):
            return _pool_spec(step.op_type, attrs)
        if step.op_type == "adaptive_avg_pool":  # to one value per map (global pooling): a mean
            size = attrs["output_size"]
            if (isinstance(size, list) and 0 < len(size) <= 8 and all(o is None or o == 1 for o in size)
                    and any(o == 1 for o in size)):
                n = len(size)
                return "reduce_mean", {"axes": [i - n for i, o in enumerate(size) if o == 1], "keepdims": True}
        if step.op_type in ("adaptive_avg_pool", "adaptive_max_pool"):
            size = attrs["output_size"]
            if isinstance(size, list) and 0 < len(size) <= 8 and all(o is None or (_is_int(o) and 0 < o < 2**40)
                                                                    for o in size):
                return step.op_type, {"output_size": [-1 if o is None else int(o) for o in size]}
            return "fallback", {}
        if (step.op_type == "scatter" and _is_int(attrs["axis"]) and -8 <= attrs["axis"] < 8
                and attrs["reduce"] in ("none", "add", "mul", "max", "min")):
            return "scatter", {"axis": int(attrs["axis"]), "reduce": attrs["reduce"]}
        if step.op_type in ("full", "full_like"):
            from ..ir.ops.shape import scalar_value

            out = self._ops[self._speccing].outputs[0].type
            if out.dtype.value not in ("float32", "float16", "int64", "int32", "int16", "int8", "uint8", "bool"):
                return "fallback", {}
            try:
                fill = scalar_value(attrs["value"], out.dtype.np)
                shape = self._dims(attrs["shape"]) if step.op_type == "full" else None
            except (Unsupported, ValueError, TypeError, OverflowError):
                return "fallback", {}  # the reference's error, if any
            return step.op_type, {"dtype": out.dtype.value, "bytes": fill.tobytes(), "shape": shape}
        if step.op_type == "slice_update":
            try:
                return "slice_update", {"axes": self._dims(attrs["axes"]), "begin": self._dims(attrs["begin"]),
                                        "end": self._dims(attrs["end"]), "step": self._dims(attrs["step"])}
            except Unsupported:
                return "fallback", {}
        if step.op_type in ("sort", "topk") and _is_int(attrs["axis"]) and -8 <= attrs["axis"] < 8:
            if step.op_type == "sort":
                return "sort", {"axis": int(attrs["axis"]), "descending": bool(attrs["descending"])}
            if _is_int(attrs["k"]) and 0 <= attrs["k"] < 2**62:
                return "topk", {"axis": int(attrs["axis"]), "descending": bool(attrs["largest"]), "k": int(attrs["k"])}
        if step.op_type == "tile" and isinstance(attrs["reps"], list) and all(
                _is_int(r) and 0 <= r < 2**31 for r in attrs["reps"]):
            return "tile", {"reps": [int(r) for r in attrs["reps"]]}
        if step.op_type in ("tril", "triu") and _is_int(attrs["diagonal"]) and abs(attrs["diagonal"]) < 2**62:
            return step.op_type, {"diagonal": int(attrs["diagonal"])}
        if step.op_type in ("take", "gather", "cumsum", "cumprod") and _is_int(attrs["axis"]) and -8 <= attrs["axis"] < 8:
            params = {"axis": int(attrs["axis"])}
            if step.op_type == "take":
                params["negative"] = bool(attrs["negative_indices"])
            return step.op_type, params
        if (step.op_type in ("index", "index_put") and isinstance(attrs["axes"], list) and 0 < len(attrs["axes"]) <= 8
                and all(_is_int(a) and -8 <= a < 8 for a in attrs["axes"])):
            params = {"axes": [int(a) for a in attrs["axes"]]}
            if step.op_type == "index_put":
                params["accumulate"] = bool(attrs["accumulate"])
            return step.op_type, params
        if step.op_type in ("group_norm", "batch_norm") and _is_number(attrs["eps"]) and (
                step.op_type == "batch_norm" or (_is_int(attrs["groups"]) and attrs["groups"] >= 1)):
            params = {"eps": float(attrs["eps"])}
            if step.op_type == "group_norm":
                params["groups"] = int(attrs["groups"])
            return step.op_type, params
        if step.op_type == "einsum":
            op = self._ops[self._speccing]
            layout = _einsum_layout(attrs["equation"], [self._ranks.get(n, -1) for n in op.inputs])
            return ("einsum", {"layout": layout}) if layout else ("fallback", {})
        if step.op_type in ("matmul", "linear"):  # of activations: the packed-weight ones are fused above
            return ("matmul" if step.op_type == "matmul" else "linear_dense"), {}
        if step.op_type == "conv_transpose":
            lists = {k: attrs.get(k) for k in ("strides", "dilations", "pads", "output_padding")}
            rank = len(attrs["strides"]) if isinstance(attrs.get("strides"), list) else None
            if rank is None:
                return "fallback", {}
            defaults = {"strides": [1] * rank, "dilations": [1] * rank, "pads": [0] * (2 * rank),
                        "output_padding": [0] * rank}
            lists = {k: v if v is not None else defaults[k] for k, v in lists.items()}
            if not (_is_int(attrs["groups"]) and all(isinstance(v, list) and all(_is_int(d) and 0 <= d < 2**31 for d in v)
                                                     for v in lists.values())):
                return "fallback", {}
            return "conv_transpose", {**{k: [int(d) for d in v] for k, v in lists.items()}, "groups": int(attrs["groups"])}
        if step.op_type == "resize" and attrs["mode"] in ("nearest", "nearest_exact", "linear", "cubic"):
            sizes, scales = attrs["sizes"], attrs["scales"]
            if scales is not None and not (isinstance(scales, list) and all(_is_number(v) for v in scales)):
                return "fallback", {}
            try:
                sizes = self._dims(sizes)
            except Unsupported:
                return "fallback", {}
            if not (sizes or scales) or len(sizes or scales) > 8:
                return "fallback", {}
            return "resize", {"mode": attrs["mode"], "sizes": sizes,
                              "scales": None if scales is None else [float(v) for v in scales],
                              "align_corners": bool(attrs["align_corners"])}
        if step.op_type in ("lut_to_dense", "dequantize", "sparse_to_dense"):
            return self._decode_spec(step)
        if step.op_type in ("isnan", "isinf", "logical_not"):
            return "predicate", {"op": step.op_type}
        if step.op_type == "identity":
            return "copy", {}
        if step.op_type == "flip" and isinstance(attrs["axes"], list) and all(
                _is_int(a) and -8 <= a < 8 for a in attrs["axes"]):
            n = len(attrs["axes"])
            return "copy", {"view": (0, "slice", [int(a) for a in attrs["axes"]], [-1] * n, [-2**62] * n, [-1] * n)}
        if (step.op_type == "split" and _is_int(attrs["axis"]) and -8 <= attrs["axis"] < 8
                and isinstance(attrs["sizes"], list) and attrs["sizes"] and all(
                    _is_int(n) and 0 <= n < 2**62 for n in attrs["sizes"])):
            return "split", {"axis": int(attrs["axis"]), "sizes": [int(n) for n in attrs["sizes"]]}
        if step.op_type == "prelu":
            return "prelu", {}
        if step.op_type in ("softmax", "log_softmax") and _is_int(attrs["axis"]) and -8 <= attrs["axis"] < 8:
            return "softmax", {"axis": int(attrs["axis"]), "log": step.op_type == "log_softmax"}
        if step.op_type in _RECURRENT:
            return _recurrent_spec(step.op_type, attrs)
        if step.op_type in _COMPARE:
            return "compare", {"op": step.op_type}
        if step.op_type in _LOGICAL:
            return "logical", {"op": step.op_type}
        if step.op_type == "where":
            return "where", {}
        if step.op_type == "clip" and all(attrs[k] is None or _is_number(attrs[k]) for k in ("min", "max")):
            return "clip", {k: None if attrs[k] is None else float(attrs[k]) for k in ("min", "max")}
        if step.op_type == "fake_quantize" and _is_number(attrs["scale"]):
            return "fake_quantize", {"scale": float(attrs["scale"]), "zero_point": attrs["zero_point"]}
        if step.op_type == "cast":
            return "cast", {"dtype": attrs["dtype"]}
        if step.op_type == "concat" and _is_int(attrs["axis"]) and -8 <= attrs["axis"] < 8:
            return "concat", {"axis": int(attrs["axis"])}
        if step.op_type == "arange":
            try:  # integer bounds only: float ones take the reference's float64 path
                return "arange", {"start": self._dims([attrs["start"]]), "end": self._dims([attrs["end"]]),
                                  "step": self._dims([attrs["step"]]), "dtype": attrs["dtype"]}
            except Unsupported:
                return "fallback", {}
        if step.op_type in STATE_OPS:
            params = {"state": self.state_names.index(step.state)}
            if step.op_type == "update_state_slice":
                try:
                    params.update(axes=self._dims(attrs["axes"]), begin=self._dims(attrs["begin"]),
                                  end=self._dims(attrs["end"]), step=self._dims(attrs["step"]))
                except Unsupported:
                    return "fallback", {}
            return step.op_type, params
        return "fallback", {}


def _decode_spec_for(op, constants: dict, producers: dict | None = None) -> tuple[str, dict]:
    """A decompression op whose inputs are all constants and whose output no fused kernel reads
    (a matmul's weight, say) as one native decode of its packed weight ("decode"), else the
    fallback (vector palettization, other shapes)."""
    out = op.outputs[0].type
    if out.rank != 2 or out.dtype.value not in ("float32", "float16"):
        return "fallback", {}
    packed = native._pack(op.outputs[0].name, {**(producers or {}), op.outputs[0].name: op}, constants,
                          cast=out.dtype.value == "float16")
    if packed is None or tuple(packed[4]) != tuple(out.shape):
        return "fallback", {}
    return "decode", {"weight": packed[0], "dtype": out.dtype.value}


def _einsum_layout(equation: str, ranks: list[int]) -> list[int] | None:
    """[nb, nl, nk, nr, A's axis permutation, B's, the output's] of a two-operand einsum that is one
    batched matrix product (no label repeated in an operand, none summed out of one operand
    alone), or None."""
    from ..ir.ops.linalg import parse_einsum

    if len(ranks) != 2 or min(ranks) < 0:
        return None
    try:
        (la, lb), lo = parse_einsum(equation, ranks)
    except ValueError:
        return None
    if len(set(la)) != len(la) or len(set(lb)) != len(lb) or any(c not in lb and c not in lo for c in la) or any(
            c not in la and c not in lo for c in lb):
        return None
    batch = [c for c in lo if c in la and c in lb]
    left = [c for c in lo if c in la and c not in lb]
    right = [c for c in lo if c in lb and c not in la]
    contracted = [c for c in la if c in lb and c not in lo]
    perm_a = [la.index(c) for c in batch + left + contracted]
    perm_b = [lb.index(c) for c in batch + contracted + right]
    order = batch + left + right
    if len(order) > 8:
        return None
    return [len(batch), len(left), len(contracted), len(right), *perm_a, *perm_b, *[order.index(c) for c in lo]]


def _recurrent_spec(op_type: str, attrs: dict) -> tuple[str, dict]:
    """An LSTM / GRU / RNN cell or sequence ("recurrent"), else the fallback."""
    cell = op_type.removesuffix("_cell")
    if cell == "rnn":
        if attrs.get("nonlinearity") not in ("tanh", "relu"):
            return "fallback", {}  # the reference's error
        cell = f"rnn_{attrs['nonlinearity']}"
    if op_type.endswith("_cell"):
        return "recurrent", {"cell": cell, "sequence": False, "layers": 1, "bidirectional": False,
                             "batch_first": False, "biases": True, "proj": 0}
    layers, proj = attrs["num_layers"], attrs.get("proj_size") or 0
    if not (_is_int(layers) and 1 <= layers <= 64 and _is_int(proj) and 0 <= proj < 2**31):
        return "fallback", {}
    return "recurrent", {"cell": cell, "sequence": True, "layers": int(layers),
                         "bidirectional": bool(attrs["bidirectional"]), "batch_first": bool(attrs["batch_first"]),
                         "biases": bool(attrs["has_biases"]), "proj": int(proj)}


def _pool_spec(op_type: str, attrs: dict) -> tuple[str, dict]:
    """A max_pool / avg_pool over 1 or 2 dims with integer attributes ("pool"), else the fallback."""
    kernel = attrs["kernel"]
    n = len(kernel) if isinstance(kernel, list) else 0
    lists = [kernel, attrs["strides"] or kernel, attrs.get("dilations") or [1] * n, attrs["pads"] or [0] * (2 * n)]
    div = attrs.get("divisor_override")
    if (n not in (1, 2) or not all(isinstance(v, list) and all(_is_int(d) for d in v) for v in lists)
            or not (div is None or (_is_int(div) and div > 0))):
        return "fallback", {}
    kernel, strides, dilations, pads = ([int(d) for d in v] for v in lists)
    if len(strides) != n or len(dilations) != n or len(pads) != 2 * n or any(
            p < 0 or p > (d * (k - 1) + 1) // 2 for k, d, p in zip(kernel * 2, dilations * 2, pads[0::2] + pads[1::2])):
        return "fallback", {}  # the reference's error
    return "pool", {"max": op_type == "max_pool", "kernel": kernel, "strides": strides,
                     "dilations": dilations, "pads": pads, "ceil_mode": bool(attrs["ceil_mode"]),
                     "count_include_pad": bool(attrs.get("count_include_pad", True)), "divisor": int(div or 0)}


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


def build(plan: Plan, threads: int) -> NativeLoop | None:
    """The native loop of `plan`, or None where the extension lacks it or the plan has what it
    cannot express (then the executor's Python loop runs the plan)."""
    if not hasattr(native._native, "Program"):
        return None
    try:
        return NativeLoop(plan, threads)
    except Unsupported:
        return None
