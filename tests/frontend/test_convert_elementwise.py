"""End-to-end conversion of elementwise torch code: lowerings, type promotion, casts, identities."""
import numpy as np
import pytest
import torch
from helpers import Fn, check_module

import pocketml as pm
from pocketml.errors import ConversionError

g = torch.Generator().manual_seed(0)


def randn(*shape, dtype=torch.float32):
    return torch.randn(*shape, generator=g).to(dtype)


def randint(*shape, lo=-9, hi=10, dtype=torch.int64):
    return torch.randint(lo, hi, shape, generator=g).to(dtype)


def nonzero_int(*shape, dtype=torch.int64):
    v = torch.randint(1, 6, shape, generator=g)
    return (v * torch.where(torch.rand(shape, generator=g) > 0.5, 1, -1)).to(dtype)


X = randn(2, 3, 4)
Y = randn(3, 4)
POS = randn(2, 3, 4).abs() + 0.1
I = randint(2, 3, 4)
J = nonzero_int(3, 4)
B = randn(2, 3, 4) > 0
C = randn(3, 4) > 0


NANINF = torch.tensor([1.0, float("nan"), float("inf"), -float("inf"), 0.0, -2.5])

# Each case is one conversion (conversion dominates the test time), covering several lowerings.
CASES = {
    "float_arith": (lambda x, y: (
        x + y, x + 2, 1.5 + x, torch.add(x, y, alpha=2), torch.sub(x, y, alpha=-0.5), x - 3, torch.add(x, 2, alpha=3),
        1 - x, 2.5 - x, torch.rsub(x, y, alpha=2),
        x * y, x * 3, x / y, x / 4, 2 / x, torch.div(x, y, rounding_mode="floor"),
        torch.div(x, y, rounding_mode="trunc"), x // 0.7,
        torch.maximum(x, y), torch.minimum(x, y), torch.max(x, y), torch.min(x, y),
        torch.fmod(x, 0.7), torch.remainder(x, y), x % 0.6, torch.fmod(x, y)), (X, Y)),
    "pow": (lambda x, p: (x ** 2, x ** 3, x ** 0.5, x ** -1, x ** -0.5, x ** -2, x ** 2.5, 2 ** x, x ** p.abs(),
                          torch.pow(x, 1), x.square()), (POS, Y)),
    "int_arith": (lambda i, j, x: (
        i + j, i - 2, i * j, i * 2.5, i + 0.5, i / j, i / 2, i // j, i // 3,
        torch.div(i, j, rounding_mode="trunc"), i % j, i % 4, torch.fmod(i, j), 7 % j,
        i ** 2, 2 ** j.abs(), torch.maximum(i, j), -i, i.abs(), i.sign(),
        i + x, i * x, x - i, i / x, torch.maximum(i, x), i < x, i == 2.0), (I, J, X)),
    "small_ints_and_bool": (lambda a, c8, u, b, c, i: (
        a + c8, a * 3, c8 + 1, c8 * 1.5, a / c8, u + 1, u * 2, u - 300 + 300, u / 2,
        b + c, b * c, b + 1, b * 2.5, i * b, b & c, b | c, b ^ c, ~b), (
        randint(3, 4, dtype=torch.int32), nonzero_int(4, dtype=torch.int8),
        randint(5, lo=0, hi=255, dtype=torch.uint8), B, C, I)),
    "float16_and_zero_dim": (lambda h, x, s, i: (
        h + 1, h * 2.5, h + x.half(), h * torch.tensor(2.0), torch.exp(h), h / 3, h > 0.5, (h + x.half()).float(),
        x + s, x * s, i + s, i * torch.tensor(3), s + 1, s * 2, h * s), (
        randn(3, 4, dtype=torch.float16), Y, randn(()), randint(3, 4))),
    "unary": (lambda x, p, i, n: (
        torch.exp(x), torch.exp2(x), torch.expm1(x), torch.log(p), torch.log2(p), torch.log10(p), torch.log1p(p),
        torch.sqrt(p), torch.rsqrt(p), torch.reciprocal(x),
        torch.sin(x), torch.cos(x), torch.tan(x), torch.atan(x), torch.tanh(x), torch.erf(x),
        torch.exp(i.clamp(max=5)), torch.sqrt(i.abs()), torch.erf(i), torch.tanh(i), torch.reciprocal(i + 100),
        torch.floor(x * 3), torch.ceil(x * 3), torch.round(x * 3), torch.trunc(x * 3), torch.frac(x * 3),
        torch.round(x * 100, decimals=1), torch.round(x * 100, decimals=-1), torch.sign(x), torch.sgn(x),
        torch.abs(x), -x, torch.floor(i), torch.ceil(i), torch.round(i), torch.trunc(i),
        torch.isnan(n), torch.isinf(n), torch.isfinite(n), torch.nan_to_num(n, 0.0, 9.0, -9.0), torch.sign(n)),
        (X, POS, I, NANINF)),
    "compare_logical": (lambda x, y, i, b: (
        x == y, x != y, x < y, x <= y, x > y, x >= y, x == 0.5, x < 1, i >= 2, i > 1.5,
        i != 0.0, torch.eq(i, 3), torch.gt(x, i), x <= i,
        torch.logical_and(b, x), torch.logical_or(x, i), torch.logical_xor(b, i),
        torch.logical_not(x), torch.logical_not(b), b & (x > 0)), (X, Y, I, B)),
    "where_clamp": (lambda c, x, y, i, j: (
        torch.where(c, x, y), torch.where(c, x, 0.0), torch.where(c, 1.0, x), torch.where(c, 1.0, 0.0),
        torch.where(c, 1, 0), torch.where(c, i, 2.5), torch.where(c, i, -1), x.masked_fill(c, -1e9),
        torch.clamp(x, -0.5, 0.5), torch.clamp(x, min=0.1), torch.clamp(x, max=0.2),
        x.clamp_min(0.0), x.clamp_max(0.3), torch.clamp(x, y - 1, y + 1),
        torch.clamp(x, min=y), torch.clamp(x, max=y), torch.clamp(i, -3, 4),
        torch.clamp(i, 0.5), torch.clamp(i, min=j), x.clamp(min=torch.tensor(0.25))), (B, X, Y, I, J)),
    "casts_identities": (lambda x, i, b: (
        x.to(torch.float16), x.half().float(), x.long(), x.int(), (x * 10).to(torch.int8),
        x.bool(), i.float(), i.to(torch.int32), i.to(torch.float16), b.float(), b.long(),
        i.type_as(x), x.to(i), x.to(torch.float64).sum().float(), x.to("cpu"),
        x.to("cpu", torch.float16), b.to(dtype=torch.int16),
        x.clone() + 1, x.detach() * 2, x.contiguous() - 1, x * torch.tensor([1.0, 2, 3, 4]), x.clone()), (X, I, B)),
}


@pytest.mark.parametrize("name", list(CASES))
def test_elementwise_module(name, tmp_path):
    fn, inputs = CASES[name]
    check_module(Fn(fn), inputs, tmp_path, atol=1e-5, rtol=1e-5)


def test_input_passed_through_is_an_output(tmp_path):
    check_module(Fn(lambda x: (x.clone(), x.detach(), x + 1)), (X,), tmp_path)


def test_add_lowering_keeps_one_op_per_torch_op():
    m = pm.convert(Fn(lambda x, y: torch.add(x, y, alpha=2) + 1), (X, Y))
    types = [op.type for op in m.program.main.ops if op.type != "const"]
    assert types == ["mul", "add", "add"]


def test_casts_only_where_needed():
    m = pm.convert(Fn(lambda i, x: (i * x, x * 2, i + 1)), (I, X))
    types = [op.type for op in m.program.main.ops if op.type != "const"]
    assert types.count("cast") == 1


def test_bitwise_on_integers_is_unsupported():
    with pytest.raises(ConversionError, match="bitwise"):
        pm.convert(Fn(lambda i: i & 3), (I,))


class Dynamic(torch.nn.Module):
    def forward(self, x, y):
        return torch.where(x > y, x * 2, y.clamp(-1, 1)), (x / 3).floor(), x.long() % 3


def test_symbolic_batch_dim():
    batch = torch.export.Dim("batch", min=2)
    model = Dynamic()
    ep = torch.export.export(model, (randn(4, 3), randn(4, 3)), dynamic_shapes=({0: batch}, {0: batch}))
    m = pm.convert(ep)
    assert isinstance(m.program.main.inputs[0].type.shape[0], str)
    for n in (2, 7):
        x, y = randn(n, 3), randn(n, 3)
        out = m.predict({"x": x.numpy(), "y": y.numpy()})
        for got, want in zip(out.values(), model(x, y)):
            assert got.dtype == want.numpy().dtype
            np.testing.assert_allclose(got, want.numpy(), rtol=1e-6, atol=1e-6)
