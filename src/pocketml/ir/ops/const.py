"""The const op: brings a stored weight into a function."""
from ..registry import REQUIRED, register


def _infer(types, attrs):  # the verifier checks const types against the stored weight itself
    raise TypeError("const types come from Program.weights")


@register("const", inputs=(), infer=_infer, attrs={"weight": REQUIRED})
def const(arrays, attrs):
    """Value of weight `attrs['weight']`; the runtime binds it once at load, never per call."""
    raise RuntimeError("const is bound by the runtime, not computed")


@register("identity", inputs=("x",), infer=lambda t, a: [t[0]])
def identity(arrays, attrs):
    """The input itself (names a value twice, e.g. a model output that is also an input)."""
    return arrays[0]
