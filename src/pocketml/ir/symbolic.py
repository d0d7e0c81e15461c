"""Symbolic integers: dimension expressions such as "seq" or "2*seq + 1" over named symbols.

A function's input types name the symbols; shapes and attributes (reshape targets, arange bounds,
slice ends) may hold expressions over them, which the runtime evaluates once the inputs bind the
symbols. Only integer arithmetic is allowed, parsed with `ast`, never `eval`.

Packages are untrusted, so the parser is strict: it refuses what evaluation could not handle
(long or deeply nested text, non-integer literals, `Max()`, a division by a literal 0), and
evaluation raises ValueError, never another exception.
"""
from __future__ import annotations

import ast
import re
from functools import lru_cache

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_FUNCS = {"Max": max, "Min": min, "max": max, "min": min}
MAX_LENGTH = 256  # characters; real expressions are a few dozen
MAX_DEPTH = 32  # AST levels
MAX_VALUE = 2**63  # literals and every intermediate value stay within int64 (no blowups)
_BINOPS = (ast.Add, ast.Sub, ast.Mult, ast.FloorDiv, ast.Mod)


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


def check(expr, symbols: set[str]) -> None:
    """Raise ValueError unless `expr` is an expression over `symbols` (at least one) that parses."""
    if not isinstance(expr, str):
        raise ValueError(f"not a dimension expression: {expr!r}")
    _parse(expr)
    used = symbols_in(expr)
    if not used or not used <= symbols:
        raise ValueError(f"dimension expression {expr!r} must use the function's input symbols "
                         f"{sorted(symbols)}; it uses {sorted(used)}")


def evaluate(expr: str, bindings: dict[str, int]) -> int:
    return _eval(_parse(expr), bindings)


@lru_cache(maxsize=4096)
def _parse(expr: str) -> ast.AST:
    if len(expr) > MAX_LENGTH:
        raise ValueError(f"dimension expression of {len(expr)} characters (at most {MAX_LENGTH})")
    try:
        tree = ast.parse(expr, mode="eval").body
    except (SyntaxError, ValueError, RecursionError, MemoryError):  # ValueError: a null byte
        raise ValueError(f"not a dimension expression: {expr!r}") from None
    _check_node(tree, expr, 0)
    return tree


def _check_node(node: ast.AST, expr: str, depth: int) -> None:
    """Every node one that `_eval` handles, with its arguments checked; raises ValueError."""
    def bad(why: str = ""):
        return ValueError(f"not a dimension expression: {expr!r}{' (' + why + ')' if why else ''}")

    if depth > MAX_DEPTH:
        raise bad(f"nested more than {MAX_DEPTH} levels")
    if isinstance(node, ast.Constant):
        if type(node.value) is not int:  # bool, float, str, complex, None, ...
            raise bad(f"literal {node.value!r} is not an integer")
        if abs(node.value) >= MAX_VALUE:
            raise bad("literal out of range")
    elif isinstance(node, ast.Name):
        pass
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        _check_node(node.operand, expr, depth + 1)
    elif isinstance(node, ast.BinOp) and isinstance(node.op, _BINOPS):
        if isinstance(node.op, (ast.FloorDiv, ast.Mod)) and isinstance(node.right, ast.Constant) \
                and node.right.value == 0:
            raise bad("division by zero")
        _check_node(node.left, expr, depth + 1)
        _check_node(node.right, expr, depth + 1)
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUNCS:
        if not node.args or node.keywords:
            raise bad(f"{node.func.id} takes one or more positional arguments")
        for a in node.args:
            _check_node(a, expr, depth + 1)
    else:
        raise bad()


def _eval(node: ast.AST, env: dict[str, int]) -> int:
    if isinstance(node, ast.Constant):
        return node.value
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
    if op in (ast.FloorDiv, ast.Mod) and b == 0:
        raise ValueError(f"dimension expression divides by zero ({ast.unparse(node)} with {env})")
    out = a + b if op is ast.Add else a - b if op is ast.Sub else a * b if op is ast.Mult \
        else a // b if op is ast.FloorDiv else a % b
    if abs(out) >= MAX_VALUE:
        raise ValueError(f"dimension expression {ast.unparse(node)} overflows with {env}")
    return out


def compile_value(value, symbols: set[str]):
    """A function of the bindings giving `value` resolved, as `resolve` would; the expressions in
    it are parsed once here, so a runtime resolves them per call without parsing anything."""
    if isinstance(value, list):
        parts = [compile_value(v, symbols) for v in value]
        return lambda env: [p(env) for p in parts]
    if is_symbolic(value, symbols):
        return _compile(_parse(value))
    return lambda env: value


def _compile(node: ast.AST):
    """`_eval` of a checked tree as nested closures: the same results and errors, no dispatch."""
    if isinstance(node, ast.Constant):
        c = node.value
        return lambda env: c
    if isinstance(node, (ast.Name, ast.UnaryOp, ast.Call)) or type(node.op) in (ast.FloorDiv, ast.Mod):
        return lambda env: _eval(node, env)  # symbol lookups with their error, and the rarer forms
    left, right, op = _compile(node.left), _compile(node.right), type(node.op)
    fn = {ast.Add: int.__add__, ast.Sub: int.__sub__, ast.Mult: int.__mul__}[op]

    def binop(env):
        out = fn(left(env), right(env))
        if abs(out) >= MAX_VALUE:
            raise ValueError(f"dimension expression {ast.unparse(node)} overflows with {env}")
        return out
    return binop


def resolve(value, bindings: dict[str, int], symbols: set[str]):
    """`value` with every symbolic expression in it (also inside lists) replaced by its integer."""
    if isinstance(value, list):
        return [resolve(v, bindings, symbols) for v in value]
    if is_symbolic(value, symbols):
        return evaluate(value, bindings)
    return value
