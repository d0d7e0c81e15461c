"""The IR: typed values, ops from a registry, functions, programs."""
from .program import Function, Op, Program, Value
from .registry import OpDef, get as get_op, register
from .types import DType, TensorType
from .verify import verify

__all__ = ["DType", "Function", "Op", "OpDef", "Program", "TensorType", "Value", "get_op", "register", "verify"]
