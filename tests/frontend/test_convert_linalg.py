"""End-to-end conversion of matrix products: Linear, matmul/@, mm/bmm/addmm/baddbmm, einsum."""
import torch
import torch.nn as nn
from helpers import check_module

import pocketml as pm

g = torch.Generator().manual_seed(3)


def randn(*shape):
    return torch.randn(*shape, generator=g)


class Products(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 6)
        self.nobias = nn.Linear(4, 3, bias=False)
        self.w = nn.Parameter(randn(4, 5))

    def forward(self, x, y, v, m, n, bias):
        return (
            self.lin(x), self.nobias(x), self.lin(v), self.lin(m), x @ self.w, x @ y, x @ v, v @ y, v @ v, m @ y,
            torch.matmul(x, y[0]), torch.mm(m, n), torch.bmm(x, y), torch.addmm(bias, m, n),
            torch.addmm(bias, m, n, beta=0.5, alpha=2.0), torch.addmm(n[0], m, n, beta=0),
            torch.baddbmm(x @ y, x, y, alpha=0.5), torch.mv(m, v), torch.dot(v, v), torch.outer(v, bias),
            torch.einsum("bij,bjk->bik", x, y), torch.einsum("bij,kj->bik", x, m), torch.einsum("...j,j", x, v),
            torch.einsum("ii->i", n[:, :3] @ m), torch.nn.functional.linear(x, m, bias[:3]),
        )


def test_products(tmp_path):
    x, y, v = randn(2, 3, 4), randn(2, 4, 5), randn(4)
    m, n, bias = randn(3, 4), randn(4, 5), randn(5)
    check_module(Products(), (x, y, v, m, n, bias), tmp_path, atol=1e-5, rtol=1e-5)


class IntProducts(nn.Module):
    def forward(self, a, b, f):
        return a @ b, torch.bmm(a, b), a.float() @ f, torch.einsum("bij,bjk->bik", a, b)


def test_integer_and_promoted_products(tmp_path):
    a = torch.randint(-5, 5, (2, 3, 4), generator=g)
    b = torch.randint(-5, 5, (2, 4, 2), generator=g)
    check_module(IntProducts(), (a, b, randn(2, 4, 2)), tmp_path)


class Stack(nn.Module):
    def __init__(self):
        super().__init__()
        self.l1, self.l2 = nn.Linear(8, 16), nn.Linear(16, 4)

    def forward(self, x, q, k):
        return self.l2(torch.relu(self.l1(x))), q @ k.transpose(-1, -2), torch.einsum("bhqd,bhkd->bhqk", q, k)


def test_linear_and_matmul_stay_whole(tmp_path):
    m = check_module(Stack(), (randn(2, 5, 8), randn(2, 3, 5, 4), randn(2, 3, 6, 4)), tmp_path)
    types = [o.type for o in m.program.main.ops if o.type != "const"]
    assert types.count("linear") == 2 and "matmul" in types and "einsum" in types
    assert all(o.type not in ("reshape", "expand") for o in m.program.main.ops)


def test_decomposed_programs_lower_too(tmp_path):
    """An ExportedProgram already decomposed to core ATen (addmm with a permuted weight, bmm...)."""
    model = Stack().eval()
    inputs = (randn(2, 5, 8), randn(2, 3, 5, 4), randn(2, 3, 6, 4))
    ep = torch.export.export(model, inputs).run_decompositions()
    targets = {str(n.target) for n in ep.graph.nodes if n.op == "call_function"}
    assert "aten.addmm.default" in targets and "aten.bmm.default" in targets
    m = pm.convert(ep)
    out = m.predict({n: t.numpy() for n, t in zip(m.input_names, inputs)})
    for got, want in zip(out.values(), model(*inputs)):
        torch.testing.assert_close(torch.from_numpy(got), want.detach(), atol=1e-5, rtol=1e-5)
