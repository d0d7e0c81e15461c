"""Symbolic integers: dimension expressions such as "seq" or "2*seq + 1" over named symbols.

A function's input types name the symbols; shapes and attributes (reshape targets, arange bounds,
slice ends) may hold expressions over them, which the runtime evaluates once the inputs bind the
symbols. Only integer arithmetic is allowed, parsed with `ast`, never `eval`.
"""
from __future__ import annotations

import ast
import re
from functools import lru_cache

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_FUNCS = {"Max": max, "Min": min, "max": max, "min": min}


def symbols_in(expr: str) -> set[str]:
    return set(_IDENT.findall(expr)) - set(_FUNCS)


def is_symbolic(value, symbols: set[str]) -> bool:
    """True for a string that is an integer expression over `symbols` only."""
    if not isinstance(value, str) or not symbols_in(value) or not symbols_in(value) <= symbols:
        return False
    try:
        _parse(value)
    except ValueError:
        return False
    return True


def evaluate(expr: str, bindings: dict[str, int]) -> int:
    return _eval(_parse(expr), bindings)


@lru_cache(maxsize=4096)
def _parse(expr: str) -> ast.AST:
    try:
        tree = ast.parse(expr, mode="eval").body
    except SyntaxError:
        raise ValueError(f"not a dimension expression: {expr!r}") from None
    for node in ast.walk(tree):
        if not isinstance(node, (ast.BinOp, ast.UnaryOp, ast.Name, ast.Constant, ast.Call, ast.Load,
                                 ast.Add, ast.Sub, ast.Mult, ast.FloorDiv, ast.Mod, ast.USub)):
            raise ValueError(f"not a dimension expression: {expr!r}")
        if isinstance(node, ast.Call) and not (isinstance(node.func, ast.Name) and node.func.id in _FUNCS):
            raise ValueError(f"not a dimension expression: {expr!r}")
    return tree


def _eval(node: ast.AST, env: dict[str, int]) -> int:
    if isinstance(node, ast.Constant):
        return int(node.value)
    if isinstance(node, ast.Name):
        try:
            return env[node.id]
        except KeyError:
            raise ValueError(f"dimension symbol {node.id!r} is not bound by the inputs") from None
    if isinstance(node, ast.UnaryOp):
        return -_eval(node.operand, env)
    if isinstance(node, ast.Call):
        return _FUNCS[node.func.id](*(_eval(a, env) for a in node.args))
    a, b = _eval(node.left, env), _eval(node.right, env)
    op = type(node.op)
    return a + b if op is ast.Add else a - b if op is ast.Sub else a * b if op is ast.Mult \
        else a // b if op is ast.FloorDiv else a % b


def resolve(value, bindings: dict[str, int], symbols: set[str]):
    """`value` with every symbolic expression in it (also inside lists) replaced by its integer."""
    if isinstance(value, list):
        return [resolve(v, bindings, symbols) for v in value]
    if is_symbolic(value, symbols):
        return evaluate(value, bindings)
    return value
