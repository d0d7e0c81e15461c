"""torch.export → IR: export, decompose to core ATen (keeping ops we lower whole), lower each node."""
from __future__ import annotations

import contextlib
import operator
import re
import warnings
from typing import Any, Sequence

import numpy as np
import torch

from ...errors import ConversionError
from ...ir.program import Function, Program, State, Value
from ...ir.types import DType, TensorType
from .builder import Builder, Var, _ident
from .registry import Unsupported, lowering_for

_DTYPES = {
    torch.float32: DType.float32, torch.float64: DType.float32, torch.bfloat16: DType.float32,
    torch.float16: DType.float16, torch.int64: DType.int64, torch.int32: DType.int32,
    torch.int16: DType.int16, torch.int8: DType.int8, torch.uint8: DType.uint8, torch.bool: DType.bool,
}


def ir_dtype(dtype: torch.dtype) -> DType:
    try:
        return _DTYPES[dtype]
    except KeyError:
        raise Unsupported(f"dtype {dtype} is not supported") from None


def export(model, example_inputs: Sequence | None, dynamic_shapes=None) -> torch.export.ExportedProgram:
    """An ExportedProgram from an nn.Module (+ example inputs) or one given already.

    `dynamic_shapes` is torch.export's: e.g. `{"input_ids": {1: torch.export.Dim("seq", max=512)}}`;
    each Dim's name becomes the symbol of that dimension in the package's input types.
    """
    if isinstance(model, torch.export.ExportedProgram):
        return model
    if not isinstance(model, torch.nn.Module):
        hint = "; wrap a function in an nn.Module whose forward() calls it" if callable(model) else ""
        raise ConversionError(f"expected a torch.nn.Module or torch.export.ExportedProgram, "
                              f"got {_type_name(model)}{hint}")
    if type(model).forward is torch.nn.Module.forward:  # torch.export would blame dynamic_shapes
        raise ConversionError(f"{type(model).__qualname__} has no forward() method: torch.export traces "
                              "forward(), and its arguments name the inputs; define forward() "
                              "(rather than __call__)")
    if example_inputs is None:
        raise ConversionError("converting an nn.Module needs example_inputs=(tensor, ...) to trace it")
    if isinstance(example_inputs, torch.Tensor):
        example_inputs = (example_inputs,)
    try:
        with torch.no_grad(), _quiet_torch():
            return torch.export.export(model.eval(), tuple(example_inputs), dynamic_shapes=dynamic_shapes)
    except Exception as e:
        raise ConversionError(f"torch.export could not trace the model: {type(e).__name__}: "
                              f"{str(e).strip()[:2000]}") from e


@contextlib.contextmanager
def _quiet_torch():
    """Hide the deprecation warnings torch.export raises about its own internals (torch 2.13 deep-
    copies pytree LeafSpecs), which no user of pocketml can act on."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", r"`isinstance\(treespec, LeafSpec\)` is deprecated", FutureWarning)
        yield


def decompose(ep: torch.export.ExportedProgram) -> torch.export.ExportedProgram:
    """Core ATen, except ops that have a lowering of their own (linear, conv, layer_norm, sdpa...)."""
    table = torch.export.default_decompositions()
    for op in list(table):
        if lowering_for(str(op)) is not None:
            del table[op]
    try:
        with _quiet_torch():
            return ep.run_decompositions(table)
    except Exception as e:
        raise ConversionError(f"decomposing the exported program failed: {type(e).__name__}: {e}") from e


def location(node) -> str:
    """"module.path (file.py:123)" for messages and for Op.loc."""
    stack = node.meta.get("nn_module_stack") or {}
    path = list(stack.values())[-1][0] if stack else ""
    frames = re.findall(r'File "([^"]+)", line (\d+)', node.meta.get("stack_trace") or "")
    src = f"{frames[-1][0].rsplit('/', 1)[-1]}:{frames[-1][1]}" if frames else ""
    if path and src:
        return f"{path} ({src})"
    return path or src


_SYMBOL = re.compile(r"\bs\d+\b")


class Symbols:
    """Names torch's shape symbols (s0, s70, ...) after the user's Dims, or input_axis."""

    def __init__(self):
        self.names: dict[str, str] = {}

    def name_inputs(self, placeholders: list[tuple[str, torch.Tensor]], dynamic_shapes) -> None:
        dims = _dims_by_input([n for n, _ in placeholders], dynamic_shapes)
        for name, val in placeholders:
            for axis, d in enumerate(val.shape):
                key = str(d)
                if _SYMBOL.fullmatch(key) and key not in self.names:
                    dim = dims.get((name, axis))
                    self.names[key] = getattr(dim, "__name__", None) or f"{name}_{axis}"

    def expr(self, d) -> int | str:
        """An int, or the dimension expression of a SymInt in our symbol names."""
        if isinstance(d, int):
            return d
        if hasattr(d, "node") and d.node.is_constant():
            return int(d)
        return _SYMBOL.sub(lambda m: self.names.get(m.group(0), m.group(0)), str(d)).replace(" ", "")

    def tensor_type(self, val) -> TensorType:
        return TensorType(ir_dtype(val.dtype), tuple(self.expr(d) for d in val.shape))


def _dims_by_input(names: list[str], spec) -> dict[tuple[str, int], object]:
    """(input name, axis) -> torch.export.Dim, from a dynamic_shapes spec (tuple or dict)."""
    if spec is None:
        return {}
    per_input = spec.items() if isinstance(spec, dict) else zip(names, spec)
    out = {}
    for name, axes in per_input:
        if isinstance(axes, dict):
            out.update({(name, int(a)): d for a, d in axes.items()})
        elif isinstance(axes, (list, tuple)):
            out.update({(name, a): d for a, d in enumerate(axes) if d is not None})
    return out


def _is_symint(node) -> bool:
    val = node.meta.get("val")
    return isinstance(val, (torch.SymInt, int)) and not isinstance(val, bool) and node.op == "call_function"


def _weight_array(t: torch.Tensor) -> np.ndarray:
    t = t.detach().cpu()
    if t.dtype in (torch.float64, torch.bfloat16):
        t = t.float()
    return t.contiguous().numpy().copy()


def _output_names(ep, n: int) -> list[str]:
    spec = ep.call_spec.out_spec
    try:
        if spec is not None and spec.type is dict and spec.num_leaves == n:
            return [str(k) for k in spec.context]
        if spec is not None and hasattr(spec.type, "_fields") and spec.num_leaves == n:
            return list(spec.type._fields)
    except AttributeError:
        pass
    return ["output"] if n == 1 else [f"output_{i}" for i in range(n)]


# Runtime checks torch inserts for symbolic shapes; the runtime checks input shapes itself.
_ASSERTIONS = {"aten._assert_scalar.default", "aten.sym_constrain_range_for_size.default",
               "aten.sym_constrain_range.default", "aten._assert_tensor_metadata.default"}


def to_program(ep: torch.export.ExportedProgram, input_names: Sequence[str] | None = None,
               output_names: Sequence[str] | None = None, dynamic_shapes=None) -> Program:
    ep = decompose(ep)
    sig = ep.graph_signature
    graph = ep.graph_module.graph

    unsupported = [n for n in graph.nodes if n.op == "call_function" and n.target is not operator.getitem
                   and not _is_symint(n) and str(n.target) not in _ASSERTIONS
                   and lowering_for(str(n.target)) is None]
    if unsupported:
        lines = "\n".join(f"  - {n.target} at {location(n) or '<unknown location>'}" for n in unsupported)
        raise ConversionError(
            f"{len(unsupported)} op(s) have no pocketml lowering:\n{lines}\n"
            "Work around by rewriting that code with supported ops (see `pocketml.frontend.torch."
            "supported_targets()`), or register a lowering with `pocketml.frontend.torch.lowers`.")
    bad = [s for s in sig.output_specs if s.kind.name not in ("USER_OUTPUT", "BUFFER_MUTATION")]
    if bad:
        raise ConversionError("the model updates its inputs or parameters in place ("
                              + ", ".join(str(s.target) for s in bad) + "); only buffers "
                              "(register_buffer) may be updated in place: they become states")
    # buffers updated in place become states: read where the buffer is used, written at the end
    mutated = [s.target for s in sig.output_specs if s.kind.name == "BUFFER_MUTATION"]

    weights: dict[str, np.ndarray] = {}
    states: list[State] = []
    b = Builder(weights)
    env: dict[str, Any] = {}
    user_inputs = [s for s in sig.input_specs if s.kind.name == "USER_INPUT"]
    if input_names is not None and len(input_names) != len(user_inputs):
        raise ConversionError(f"input_names has {len(input_names)} names but the model takes "
                              f"{len(user_inputs)} tensor inputs ({[s.arg.name for s in user_inputs]})")
    fn_inputs: list[Value] = []
    specs = {s.arg.name: s for s in sig.input_specs}
    nodes = {n.name: n for n in graph.nodes}
    symbols = Symbols()
    symbols.name_inputs([(s.arg.name, nodes[s.arg.name].meta.get("val")) for s in user_inputs
                         if isinstance(nodes[s.arg.name].meta.get("val"), torch.Tensor)], dynamic_shapes)
    for i, spec in enumerate(user_inputs):
        node = nodes[spec.arg.name]
        val = node.meta.get("val")
        if not isinstance(val, torch.Tensor):
            raise ConversionError(f"input {spec.arg.name!r} is not a tensor ({type(val).__name__}); "
                                  "pass non-tensor arguments as Python constants in the module")
        if val.dtype == torch.float64:
            raise ConversionError(f"input {spec.arg.name!r} is float64; convert with float32 inputs")
        name = input_names[i] if input_names is not None else spec.arg.name
        v = Value(b.fresh(name), symbols.tensor_type(val))
        fn_inputs.append(v)
        env[node.name] = Var(v.name, v.type)

    for node in graph.nodes:
        if node.op == "placeholder":
            spec = specs[node.name]
            if spec.kind.name == "USER_INPUT":
                continue
            tensor = ep.state_dict.get(spec.target)
            if tensor is None:
                tensor = ep.constants.get(spec.target)
            if not isinstance(tensor, torch.Tensor):
                raise ConversionError(f"input {spec.target!r} of kind {spec.kind.name} is not a tensor")
            b.loc = ""
            if spec.target in mutated:
                env[node.name] = _declare_state(b, states, spec.target, tensor)
            else:
                env[node.name] = b.weight(spec.target, _weight_array(tensor))
        elif node.op == "call_function" and _is_symint(node):  # sym_size, arithmetic on sizes
            env[node.name] = symbols.expr(node.meta["val"])
        elif node.op == "call_function" and str(node.target) in _ASSERTIONS:
            env[node.name] = None
        elif node.op == "call_function":
            b.loc = location(node)
            args = _map(node.args, env)
            kwargs = _map(node.kwargs, env)
            if node.target is operator.getitem:
                env[node.name] = args[0][args[1]]
                continue
            fn = lowering_for(str(node.target))
            try:
                out = fn(b, *args, **kwargs)
            except Unsupported as e:
                raise ConversionError(f"{node.target} at {b.loc or '<unknown location>'}: {e}") from None
            except Exception as e:  # a lowering bug or an argument combination it did not foresee
                raise ConversionError(f"internal error lowering {node.target} at "
                                      f"{b.loc or '<unknown location>'}: {type(e).__name__}: {e}") from e
            _check(node, out, symbols)
            env[node.name] = out
        elif node.op == "output":
            results = node.args[0]
            break

    for spec, r in zip(sig.output_specs, results):  # mutations come first, in spec order
        if spec.kind.name == "BUFFER_MUTATION":
            b.loc = ""
            b.op("write_state", [_as_state_value(b, env[r.name], b.states[spec.target], spec.target)],
                 {"state": spec.target})
    results = [r for spec, r in zip(sig.output_specs, results) if spec.kind.name == "USER_OUTPUT"]
    out_vars = []
    for r in results:
        v = env[r.name] if hasattr(r, "name") else None
        if not isinstance(v, Var):
            raise ConversionError(f"model output {r} is not a tensor; return tensors only")
        out_vars.append(v)
    names = list(output_names) if output_names is not None else _output_names(ep, len(out_vars))
    if len(names) != len(out_vars):
        raise ConversionError(f"output_names has {len(names)} names but the model returns {len(out_vars)} tensors")
    fn = Function("main", fn_inputs, b.ops, [v.name for v in out_vars], states=states,
                  dim_ranges=_dim_ranges(ep, symbols, fn_inputs))
    _name_outputs(fn, names)
    return Program({"main": fn}, weights)


def _declare_state(b: Builder, states: list[State], name: str, tensor: torch.Tensor) -> Var:
    """A state for buffer `name` (initial value stored unless all zeros), and its read."""
    array = _weight_array(tensor)
    if array.dtype == np.float64:
        array = array.astype(np.float32)
    init = None
    if array.any():
        init = f"{name}.init"
        b.weights[init] = array
    t = TensorType.of(array)
    if not t.is_static:
        raise ConversionError(f"state {name!r} must have a fixed shape")
    states.append(State(name, t, init))
    b.states[name] = t
    return b.op("read_state", [], {"state": name}, name=_ident(name))


def _as_state_value(b: Builder, v, t: TensorType, name: str) -> Var:
    """The value written into state `name`, cast/broadcast to its declared type if torch left it
    wider (e.g. an int64 counter updated with an int32 result)."""
    from .lowerings.shape import cast, expand
    if not isinstance(v, Var):
        raise ConversionError(f"state {name!r} is updated with a non-tensor value")
    if v.dtype != t.dtype:
        v = cast(b, v, t.dtype)
    if tuple(v.shape) != tuple(t.shape):
        v = expand(b, v, t.shape)
    return v


def _finite_int(x) -> int | None:
    """A sympy bound as an int; None for (torch's integer) infinity."""
    try:
        return None if "oo" in str(x) else int(x)
    except (TypeError, ValueError, AttributeError):
        return None


def _dim_ranges(ep, symbols: "Symbols", inputs: list[Value]) -> dict[str, list]:
    """[min, max] of every symbolic input dimension, from torch.export's range constraints."""
    used = {d for v in inputs for d in v.type.shape if isinstance(d, str) and d.isidentifier()}
    out = {}
    for sym, vr in ep.range_constraints.items():
        name = symbols.names.get(str(sym))
        if name not in used:
            continue
        lo, hi = _finite_int(vr.lower) or 0, _finite_int(vr.upper)
        out[name] = [lo, hi]
    return out


def _map(a, env):
    if isinstance(a, torch.fx.Node):
        return env[a.name]
    if isinstance(a, (list, tuple)):
        return type(a)(_map(x, env) for x in a)
    if isinstance(a, dict):
        return {k: _map(v, env) for k, v in a.items()}
    return a


def _check(node, out, symbols: Symbols) -> None:
    """A lowering's result must have the type torch computed for the node."""
    val = node.meta.get("val")
    pairs = []
    if isinstance(val, torch.Tensor) and isinstance(out, Var):
        pairs = [(val, out)]
    elif isinstance(val, (list, tuple)) and isinstance(out, (list, tuple)):
        pairs = [(v, o) for v, o in zip(val, out) if isinstance(v, torch.Tensor) and isinstance(o, Var)]
    for v, o in pairs:
        want = symbols.tensor_type(v)
        if want.dtype != o.type.dtype or want.rank != o.type.rank or any(
                isinstance(x, int) and isinstance(y, int) and x != y for x, y in zip(want.shape, o.type.shape)):
            raise ConversionError(f"internal error lowering {node.target} at {location(node)}: "
                                  f"produced {o.type}, torch expects {want}")


def _name_outputs(fn: Function, names: list[str]) -> None:
    """Give the function's outputs the user-facing names (inserting identities where needed)."""
    from ...ir.program import Op
    if len(set(names)) != len(names) or set(names) & set(fn.input_names):
        raise ConversionError(f"output names {names} must be distinct from each other and from "
                              f"the input names {fn.input_names}")
    producers = fn.producers()
    values = fn.values()
    for i, old in enumerate(list(fn.outputs)):  # first to unique temporary names, so swaps work
        tmp = _unused(fn, f"__output{i}")
        if old in producers and fn.outputs.count(old) == 1:
            _rename(fn, old, tmp)
        else:  # an input, or a value returned twice: this output gets its own value
            fn.ops.append(Op("identity", [old], [Value(tmp, values[old].type)]))
            fn.outputs[i] = tmp
    for new in names:  # move intermediate values that happen to carry an output's name aside
        if new in fn.values():
            _rename(fn, new, _unused(fn, new))
    for tmp, new in zip(list(fn.outputs), names):
        _rename(fn, tmp, new)


def _unused(fn: Function, base: str) -> str:
    taken = set(fn.values())
    i = 1
    while f"{base}_{i}" in taken:
        i += 1
    return f"{base}_{i}"


def _rename(fn: Function, old: str, new: str) -> None:
    for v in fn.inputs:
        if v.name == old:
            v.name = new
    for op in fn.ops:
        op.inputs = [new if n == old else n for n in op.inputs]
        for v in op.outputs:
            if v.name == old:
                v.name = new
    fn.outputs = [new if n == old else n for n in fn.outputs]


def _type_name(x) -> str:
    t = type(x)
    return t.__qualname__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__qualname__}"
