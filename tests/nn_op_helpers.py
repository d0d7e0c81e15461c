"""Helpers for the NN op-family tests (conv, pool, resize, norm, softmax, attention, recurrent)."""
from __future__ import annotations

import numpy as np

from helpers import op_types, run  # noqa: F401  (op_types is re-exported)
from pocketml.ir import registry
from pocketml.ir.types import TensorType


def run_op(name: str, arrays: list, **attrs) -> list[np.ndarray]:
    """`helpers.run`, always returning a list of outputs."""
    out = run(name, arrays, **attrs)
    return out if isinstance(out, list) else [out]


def infer_op(name: str, types: list, **attrs) -> list[TensorType]:
    opdef = registry.get(name)
    return opdef.infer(types, opdef.with_defaults(attrs))


def rand(rng, shape, dtype=np.float32, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(dtype)


def check_decomposed(module, inputs, atol=1e-5, rtol=1e-5, dynamic_shapes=None):
    """Convert an ExportedProgram already decomposed to core ATen (as a user may pass one) and compare.

    Returns the pocketml Model.
    """
    import torch
    import pocketml as pm

    module = module.eval()
    if not isinstance(inputs, tuple):
        inputs = (inputs,)
    with torch.no_grad():
        ep = torch.export.export(module, inputs, dynamic_shapes=dynamic_shapes)
        ep = ep.run_decompositions(torch.export.default_decompositions())
        expected = module(*inputs)
    expected = [expected] if isinstance(expected, torch.Tensor) else list(expected)
    m = pm.convert(ep)
    out = m.predict({n: t.numpy() for n, t in zip(m.input_names, inputs)})
    for name, want in zip(m.output_names, expected):
        np.testing.assert_allclose(out[name], want.numpy(), atol=atol, rtol=rtol, err_msg=name)
        assert out[name].dtype == want.numpy().dtype
    return m


class Fn:
    """Wrap a function as an nn.Module (for functional-API tests)."""

    def __new__(cls, fn, *params):
        import torch

        class _M(torch.nn.Module):
            def __init__(self):
                super().__init__()
                for i, p in enumerate(params):
                    self.register_buffer(f"p{i}", p)

            def forward(self, *args):
                return fn(*args, *[getattr(self, f"p{i}") for i in range(len(params))])
        return _M()


def multi(*modules, residual_add=True):
    """One nn.Module applying each module to the same input and returning all results as a tuple.

    Many cases in one export keeps the conversion tests fast. With residual_add the first result is
    also added to itself (exercising `add`, the one op every family can rely on).
    """
    import torch

    class _Multi(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.mods = torch.nn.ModuleList(modules)

        def forward(self, x):
            outs = [m(x) for m in self.mods]
            if residual_add:
                outs[0] = outs[0] + outs[0]
            return tuple(outs)
    return _Multi()
