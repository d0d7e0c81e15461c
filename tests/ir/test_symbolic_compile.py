"""compile_value (what the runtime evaluates per call) agrees with resolve, errors included."""
import pytest
from hypothesis import given, strategies as st

from pocketml.ir.symbolic import compile_value, resolve

EXPRS = ["a", "a+1", "2*a - b", "Max(a, b)", "Min(a, b, 3)", "a//2", "a % 3 + b*4", "-a + 3", "a//(b-b)",
         "a*b*a*b*a*b*a*b*a*b*a*b*a*b", ["a", 1, "b-1"], [[2, "a"], "b"], 5, "c", "x+1"]


def outcome(f):
    try:
        return f()
    except ValueError as e:
        return ("ValueError", str(e))


@pytest.mark.parametrize("expr", EXPRS, ids=str)
@given(a=st.integers(0, 10**6), b=st.integers(0, 10**6))
def test_compiled_values_equal_resolve(expr, a, b):
    env, symbols = {"a": a, "b": b}, {"a", "b"}
    assert outcome(lambda: compile_value(expr, symbols)(env)) == outcome(lambda: resolve(expr, env, symbols))
