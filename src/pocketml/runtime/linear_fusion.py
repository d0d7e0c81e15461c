"""Plan rewrites over the packed linears `native._fuse` made (one `native.FusedLinear` each):
the op after a layer computed in its step (`fuse_epilogues`), and the layers reading one
activation run as one step (`group_linears`)."""
from __future__ import annotations

from ..ir.program import Function, Op
from . import native
from .plan import Kernel


def fuse_epilogues(ops: list[Op], kernels: dict, fused: set, function: Function) -> None:
    """A packed linear whose output only a float32 `gelu`/`silu` (erf form, not gated) or an `add`
    of a same-typed value reads computes it in its kernel (`FusedLinear.act` / `.residual`),
    block by block while in cache: the kernel moves to that op, the linear op goes into `fused`.
    Equal bit for bit to the separate ops."""
    types = {v.name: v.type for op in ops for v in op.outputs}
    types.update((v.name, v.type) for v in function.inputs)
    readers: dict[str, list[Op]] = {}
    for op in ops:
        k = kernels.get(id(op))
        for n in (k.inputs if k is not None else op.inputs):
            if n is not None:
                readers.setdefault(n, []).append(op)
    outputs = set(function.outputs)
    producers = {v.name: op for op in ops for v in op.outputs}
    position = {id(op): i for i, op in enumerate(ops)}

    def packed(op) -> bool:
        k = kernels.get(id(op))
        return op is not None and op.type == "linear" and k is not None and type(k.compute) is native.FusedLinear

    def shares_input(op) -> bool:  # another packed linear reads its input: they can run as one step
        return any(o is not op and packed(o) for o in readers.get(op.inputs[0], []))
    writes = [i for i, op in enumerate(ops) if op.type in ("write_state", "update_state_slice")]
    for op in ops:
        k = kernels.get(id(op))
        if op.type != "linear" or k is None or type(k.compute) is not native.FusedLinear or id(op) in fused:
            continue
        y = op.outputs[0]
        users = readers.get(y.name, [])
        if len(users) != 1 or y.name in outputs:
            continue
        user = users[0]
        # the layer then runs at the user's place: no state written in between (its input may
        # be a view of one)
        if any(position[id(op)] < i < position[id(user)] for i in writes):
            continue
        uk = kernels.get(id(user))
        f = k.compute
        if (uk is not None and isinstance(uk.compute, native.FusedActivation) and not uk.compute.gated
                and user.outputs[0].type == y.type):
            fl = native.FusedLinear(f.packed, f.n, f.threads, f.exact, f.keep, act=uk.compute.name)
            kernels[id(user)] = Kernel(fl, f"{k.name}+{uk.compute.name}", list(k.inputs))
        elif (user.type == "add" and uk is None and len(user.inputs) == 2 and user.inputs[0] != user.inputs[1]
              and user.outputs[0].type == y.type):
            other = user.inputs[1] if user.inputs[0] == y.name else user.inputs[0]
            if types.get(other) != y.type:
                continue
            # the sum of two layers (a frozen one and its LoRA path): the add goes to the one whose
            # input no other layer reads, so the other joins the layers reading its input
            twin = producers.get(other)
            if (packed(twin) and readers.get(other) == [user] and other not in outputs and id(twin) not in fused
                    and shares_input(op) and not shares_input(twin)):
                continue
            bias = k.inputs[2] if len(k.inputs) > 2 else None
            fl = native.FusedLinear(f.packed, f.n, f.threads, f.exact, f.keep, residual=True)
            kernels[id(user)] = Kernel(fl, f"{k.name}+add", [k.inputs[0], None, bias, other])
        else:
            continue
        del kernels[id(op)]
        fused.add(id(op))


_MAX_GROUP = 8  # linear::kMaxGroup


def group_linears(ops: list[Op], kernels: dict) -> list[Op]:
    """ops with the packed linears that read the same activation (attention's q/k/v, an MLP's
    gate/up) replaced by one "linear" op with their outputs, at the first one's place (they read
    nothing else but constants, so nothing between depends on them)."""
    groups: dict[tuple, list[Op]] = {}
    for op in ops:
        k = kernels.get(id(op))
        if op.type == "linear" and k is not None and isinstance(k.compute, native.FusedLinear):
            groups.setdefault((op.inputs[0], k.compute.exact), []).append(op)
    first = {}
    for g in groups.values():
        for i in range(0, len(g), _MAX_GROUP):
            part = g[i:i + _MAX_GROUP]
            if len(part) > 1:
                first[id(part[0])] = part
    if not first:
        return ops
    out, grouped = [], set()
    for op in ops:
        part = first.get(id(op))
        if part is None:
            if id(op) not in grouped:
                out.append(op)
            continue
        ks = [kernels.pop(id(o)) for o in part]
        biases = [k.inputs[2] if len(k.inputs) > 2 else None for k in ks]
        group = Op("linear", [op.inputs[0]], [o.outputs[0] for o in part], {}, op.loc)
        names = [k.name for k in ks]
        name = names[0] if len(set(names)) == 1 else "native:" + "+".join(n.removeprefix("native:") for n in names)
        kernels[id(group)] = Kernel(native.FusedLinearGroup([k.compute for k in ks]), f"{name} x{len(part)}",
                                    [op.inputs[0], *biases])
        grouped.update(id(o) for o in part)
        out.append(group)
    return out
