"""Lowerings of elementwise arithmetic, comparison and logic."""
from ..builder import Builder, Var
from ..registry import lowers


def _operand(b: Builder, v, like: Var) -> Var:
    """A Python scalar operand becomes a literal of the tensor operand's dtype."""
    return v if isinstance(v, Var) else b.const(v, like.dtype)


@lowers("aten.add.Tensor")
def add(b: Builder, x, y, alpha=1):
    x, y = _operand(b, x, y if isinstance(y, Var) else x), _operand(b, y, x if isinstance(x, Var) else y)
    if alpha != 1:
        raise NotImplementedError  # the full elementwise family is being written
    return b.op("add", [x, y])
