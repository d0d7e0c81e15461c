"""A readable text form of a program, for `inspect --ir` and debugging."""
from __future__ import annotations

from .program import Program


def _attr(v) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    return repr(v) if isinstance(v, str) else str(v)


def to_text(program: Program, weights: bool = False) -> str:
    lines = []
    for fn in program.functions.values():
        args = ", ".join(f"%{v.name}: {v.type}" for v in fn.inputs)
        lines.append(f"func {fn.name}({args}) {{")
        for sym, (lo, hi) in fn.dim_ranges.items():
            lines.append(f"  dim {sym} in [{lo}, {'inf' if hi is None else hi}]")
        for name, shapes in fn.input_shapes.items():
            lines.append(f"  shapes %{name} in {[tuple(s) for s in shapes]}")
        for st in fn.states:
            lines.append(f"  state {st.name}: {st.type}{f' = {st.init}' if st.init else ''}")
        for op in fn.ops:
            outs = ", ".join(f"%{v.name}: {v.type}" for v in op.outputs)
            ins = ", ".join("_" if n is None else f"%{n}" for n in op.inputs)
            attrs = ", ".join(f"{k}={_attr(v)}" for k, v in op.attrs.items())
            body = f"{op.type}({ins}{', ' if ins and attrs else ''}{attrs})"
            loc = f"  # {op.loc}" if op.loc else ""
            lines.append(f"  {outs + ' = ' if outs else ''}{body}{loc}")
        lines.append(f"  return {', '.join('%' + n for n in fn.outputs)}")
        lines.append("}")
    if weights:
        for name, w in program.weights.items():
            lines.append(f"weight {name}: {w.dtype}{list(w.shape)}")
    return "\n".join(lines)
