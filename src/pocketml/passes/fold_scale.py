"""A linear layer's output times a constant scalar becomes the layer with its weight (and bias)
times that scalar: LoRA's `lora_B(lora_A(x)) * (alpha / r)`, as `peft` spells it, is then two
linears, and the second can take the residual add of the frozen layer's output in its step
(runtime/linear_fusion.py) while the frozen layer and `lora_A` join the other linears reading x.
The product is computed in float64 and rounded once (the reference rounds the dot product, then
the product: the two differ by a rounding). Only a float32 linear with constant weights whose
output nothing else reads is folded; the new weights get new keys (a shared weight stays as it is).
"""
from __future__ import annotations

import numpy as np

from ..ir.program import Function, Op, Program, Value
from ..ir.types import DType, TensorType


def fold_scale(program: Program) -> Program:
    for fn in program.functions.values():
        _fold(program, fn)
    return program


def _const(producers: dict, program: Program, name: str | None) -> np.ndarray | None:
    op = producers.get(name) if name is not None else None
    return program.weights.get(op.attrs["weight"]) if op is not None and op.type == "const" else None


def _fold(program: Program, fn: Function) -> None:
    producers, users = fn.producers(), fn.users()
    outputs = set(fn.outputs)
    dead: set[int] = set()
    for mul in fn.ops:
        if mul.type != "mul" or len(mul.inputs) != 2 or mul.outputs[0].type.dtype != DType.float32:
            continue
        for y, s in (mul.inputs, mul.inputs[::-1]):
            lin, scale = producers.get(y), _const(producers, program, s)
            if (lin is None or lin.type != "linear" or scale is None or scale.size != 1 or scale.dtype != np.float32
                    or len(users.get(y, [])) != 1 or y in outputs or lin.outputs[0].type != mul.outputs[0].type):
                continue
            w = _const(producers, program, lin.inputs[1])
            bias = lin.inputs[2] if len(lin.inputs) > 2 else None
            b = _const(producers, program, bias)
            if w is None or w.dtype != np.float32 or (bias is not None and (b is None or b.dtype != np.float32)):
                continue
            k = float(scale.reshape(()))
            new = [_weight(program, fn, lin, 1, producers, (w.astype(np.float64) * k).astype(np.float32))]
            if bias is not None:
                new.append(_weight(program, fn, lin, 2, producers, (b.astype(np.float64) * k).astype(np.float32)))
            at = fn.ops.index(lin)
            fn.ops[at:at] = new
            lin.outputs[0] = Value(mul.outputs[0].name, lin.outputs[0].type)
            dead.add(id(mul))
            break
    fn.ops = [op for op in fn.ops if id(op) not in dead]


def _weight(program: Program, fn: Function, lin: Op, i: int, producers: dict, value: np.ndarray) -> Op:
    """A const op of `value` under a new key, which input i of `lin` now reads."""
    key, n = f"{producers[lin.inputs[i]].attrs['weight']}.scaled", 1
    while key in program.weights:
        key, n = f"{key}{n}", n + 1
    program.weights[key] = value
    taken = set(fn.values())
    name, n = f"{lin.inputs[i]}_scaled", 1
    while name in taken:
        name, n = f"{lin.inputs[i]}_scaled{n}", n + 1
    lin.inputs[i] = name
    return Op("const", [], [Value(name, TensorType(DType.float32, value.shape))], {"weight": key}, lin.loc)

