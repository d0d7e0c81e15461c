"""The int8 KV cache's steps in the C++ loop: quantize_rows and dequantize_rows bit for bit their
NumPy references (ir/ops/rowquant.py) on awkward shapes, strided views, zero and non-finite rows;
arguments they do not take go to the fallback."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from pocketml.ir import get_op
from pocketml.runtime import native

pytestmark = pytest.mark.skipif(not native.available() or not hasattr(native._native, "Program"),
                                reason="native extension not built")


def reference(name, arrays):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return get_op(name).compute(list(arrays), {})


def run(kind, arrays, nout, views=()):
    """(outputs, fallback calls) of one step."""
    n = len(arrays)
    outs = list(range(n, n + nout))
    p = native._native.Program(n + nout, list(range(n)), outs, [], [(kind, list(range(n)), outs, [], list(views), {})],
                               0, 0, 1)
    calls = []

    def fallback(i, args):
        calls.append(i)
        return reference(kind, args)
    return p.run(list(arrays), [], [], fallback), len(calls)


def same(got, want):
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(np.ascontiguousarray(got).view(np.uint8), np.ascontiguousarray(want).view(np.uint8))


def rows(shape, seed=0):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * rng.choice([1e-30, 1e-3, 1, 300], (*shape[:-1], 1))).astype(np.float32)
    if x.size:
        flat = x.reshape(-1, shape[-1])
        flat[0] = 0  # an all-zero row: scale 0
        if len(flat) > 3:
            flat[1, 0], flat[2, -1] = np.nan, -np.inf
            if shape[-1] >= 4:  # halves: scale 1
                flat[3] = 0
                flat[3, :4] = [127, 0.5, 1.5, -2.5]
    return x


@pytest.mark.parametrize("shape", [(1, 3, 1, 64), (1, 3, 17, 64), (2, 5, 7), (4, 1), (3, 0), (6, 33)], ids=str)
def test_quantize_and_dequantize_rows_equal_the_references(shape):
    x = rows(shape)
    (q, s), calls = run("quantize_rows", [x], 2)
    want_q, want_s = reference("quantize_rows", [x])
    assert calls == 0
    same(q, want_q)
    same(s, want_s)
    (back,), calls = run("dequantize_rows", [want_q, want_s], 1)
    assert calls == 0
    same(back, reference("dequantize_rows", [want_q, want_s])[0])


def test_strided_views_are_read_where_they_lie():
    x = rows((2, 3, 40, 16))
    # a KV cache's [:, :, :25] (the plan's slice view, axis 2)
    view = (0, "slice", [2], [0], [25], None)
    (q, s), _ = run("quantize_rows", [x], 2, views=[view])
    want = reference("quantize_rows", [x[:, :, :25]])
    same(q, want[0])
    same(s, want[1])
    q8, sc = reference("quantize_rows", [x])
    (back,), calls = run("dequantize_rows", [q8, sc], 1, views=[view, (1, "slice", [2], [0], [25], None)])
    assert calls == 0
    same(back, reference("dequantize_rows", [q8[:, :, :25], sc[:, :, :25]])[0])


def test_what_the_kernels_do_not_take_falls_back():
    x = np.ones((2, 4), np.float64)
    (_, _), calls = run("quantize_rows", [x.astype(np.float16)], 2)
    assert calls == 1
    (_,), calls = run("dequantize_rows", [np.ones((2, 4), np.int16), np.ones((2, 1), np.float32)], 1)
    assert calls == 1
