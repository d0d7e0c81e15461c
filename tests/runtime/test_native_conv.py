"""Convolutions on the native backend: converted CNN pieces (conv + batch norm + ReLU6, depthwise,
pointwise, 1-D, residual) run as "native:conv" / "native:conv+clip" steps, equal to torch and to
the reference backend, in the C++ loop and the Python one; a conv the kernel does not take (a
weight computed at run time, float16) stays on the reference."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import pocketml as pm
from helpers import every_weight
from pocketml.model import Model
from pocketml.runtime import native

pytestmark = pytest.mark.skipif(not native.available() or not hasattr(native._native, "conv"),
                                reason="native extension not built")
torch.manual_seed(0)


class Block(torch.nn.Module):
    """An EfficientNet-Lite block in miniature: expand, depthwise (TF "same" pad, stride 2),
    project, then a residual pair; a 1-D head."""

    def __init__(self):
        super().__init__()
        self.stem = torch.nn.Sequential(torch.nn.Conv2d(3, 12, 3, 2, bias=False), torch.nn.BatchNorm2d(12),
                                        torch.nn.ReLU6())
        self.dw = torch.nn.Sequential(torch.nn.Conv2d(12, 12, 5, 1, 2, groups=12, bias=False),
                                      torch.nn.BatchNorm2d(12), torch.nn.ReLU())
        self.pw = torch.nn.Sequential(torch.nn.Conv2d(12, 20, 1, bias=False), torch.nn.BatchNorm2d(20))
        self.pw2 = torch.nn.Conv2d(20, 20, 1)
        self.head = torch.nn.Conv1d(20, 6, 3, padding=1)
        for m in self.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                with torch.no_grad():
                    m.running_mean.uniform_(-0.5, 0.5)
                    m.running_var.uniform_(0.5, 2)

    def forward(self, x):
        y = self.stem(F.pad(x, (0, 1, 0, 1)))
        y = self.pw(self.dw(y))
        y = y + F.hardtanh(self.pw2(y), -1.0, 1.0)
        return self.head(y.flatten(2))


def _compressed(path, spec, tmp_path):
    """`spec` applied to every weight of the package at path (its lossy warnings silenced), saved."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        small = pm.compress(str(path), every_weight(spec))
    out = tmp_path / "small.pocket"
    small.save(out)
    return out


@pytest.fixture(scope="module")
def block_model(tmp_path_factory):
    x = torch.randn(2, 3, 21, 18)
    m = Block().eval()
    with torch.no_grad():
        want = m(x).numpy()
    path = tmp_path_factory.mktemp("conv") / "block.pocket"
    pm.convert(m, (x,)).save(path)
    return path, x.numpy(), want


@pytest.mark.parametrize("threads", [1, 2])
def test_block_runs_natively_and_matches(block_model, threads):
    path, x, want = block_model
    nat = pm.load(path, backend="native", threads=threads)
    kernels = [s.kernel for s in nat.plan_summary().steps if "conv" in s.kernel or s.op_type == "conv"]
    assert kernels.count("native:conv+clip") == 3 and kernels.count("native:conv") == 2, kernels
    ref = pm.load(path, backend="reference")
    got, base = nat.predict({"x": x})[nat.output_names[0]], ref.predict({"x": x})[ref.output_names[0]]
    assert nat._executor.loop.program.fallback_calls == sum(s.kernel == "numpy" for s in nat.plan_summary().steps)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(got, base, rtol=1e-5, atol=2e-5)


def test_python_loop_matches_the_native_loop(block_model):
    path, x, _ = block_model
    model = pm.load(path, backend="native")
    want = model.predict({"x": x})
    ex = model._executor
    loop, ex.loop = ex.loop, None  # the executor's Python loop, calling the same kernels
    try:
        got = model.predict({"x": x})
    finally:
        ex.loop = loop
    for k in want:
        np.testing.assert_array_equal(got[k], want[k])


def test_unsupported_convs_stay_on_the_reference():
    class M(torch.nn.Module):
        def forward(self, x, w):
            return F.relu(F.conv2d(x, w, padding=1))  # the weight is an input

    x, w = torch.randn(1, 4, 8, 8), torch.randn(6, 4, 3, 3)
    model = pm.convert(M(), (x, w))
    assert all(s.kernel == "numpy" for s in model.plan_summary().steps if s.op_type == "conv")
    np.testing.assert_allclose(model.predict({"x": x.numpy(), "w": w.numpy()})[model.output_names[0]],
                               F.relu(F.conv2d(x, w, padding=1)).numpy(), rtol=1e-5, atol=1e-5)
    half = pm.convert(torch.nn.Conv2d(4, 6, 3).half(), (x.half(),))
    assert not any(s.kernel.startswith("native:") for s in half.plan_summary().steps if s.op_type == "conv")


@pytest.mark.parametrize("config", ["int8", "int4-block", "lut4-grouped", "lut6", "prune"])
def test_compressed_weights_run_natively(block_model, tmp_path, config):
    """Each compressed format of the linear layers also serves convolutions, decoded per call
    (the step's kernel names it); in exact mode the result equals the reference backend's."""
    path, x, _ = block_model
    spec = {"int8": pm.Quantize("int8"), "int4-block": pm.Quantize("int4", granularity="per_block", block_size=4),
            "lut4-grouped": pm.Palettize(4, granularity="per_grouped_channel", group_size=4),
            "lut6": pm.Palettize(6), "prune": pm.Prune(0.5)}[config]
    out = _compressed(path, spec, tmp_path)
    nat = pm.load(out, exact=True)
    steps = nat.plan_summary().steps
    packed = [s.kernel for s in steps if s.kernel.startswith("native:conv") and len(s.kernel.split()) > 1]
    assert len(packed) >= 3, [s.kernel for s in steps]
    assert not [s for s in steps if s.op_type == "conv" and s.kernel == "numpy"]
    got = nat.predict({"x": x})[nat.output_names[0]]
    assert nat._executor.loop.program.fallback_calls == sum(s.kernel == "numpy" for s in steps)  # none ran in Python
    want = pm.load(out, backend="reference").predict({"x": x})[nat.output_names[0]]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=2e-5)


class InvertedResidual(torch.nn.Module):
    """MobileNetV2 / EfficientNet-Lite's block: expand 1x1 + ReLU6, depthwise 3x3 + ReLU6 (stride
    2 with TF "same" padding, then stride 1 with a residual), project 1x1."""

    def __init__(self):
        super().__init__()
        self.expand = torch.nn.Conv2d(8, 64, 1)
        self.dw = torch.nn.Conv2d(64, 64, 3, 2, groups=64)
        self.project = torch.nn.Conv2d(64, 12, 1)
        self.expand2 = torch.nn.Conv2d(12, 72, 1)
        self.dw2 = torch.nn.Conv2d(72, 72, 5, 1, 2, groups=72)
        self.project2 = torch.nn.Conv2d(72, 12, 1)

    def forward(self, x):
        y = self.project(F.relu6(self.dw(F.pad(F.relu6(self.expand(x)), (0, 1, 0, 1)))))
        return y + self.project2(F.relu6(self.dw2(F.relu6(self.expand2(y)))))


@pytest.mark.parametrize("threads", [1, 2])
def test_inverted_residual_pairs_expand_and_depthwise(tmp_path, threads):
    """Each expand 1x1 + ReLU6 whose output only the depthwise reads runs with it as one step
    (bands of rows, the expanded tensor never in memory), equal to torch and to the reference."""
    x = torch.randn(1, 8, 96, 80)
    m = InvertedResidual().eval()
    with torch.no_grad():
        want = m(x).numpy()
    path = tmp_path / "ir.pocket"
    pm.convert(m, (x,)).save(path)
    nat = pm.load(path, threads=threads)
    kernels = [s.kernel for s in nat.plan_summary().steps if s.kernel.startswith("native:conv")]
    assert kernels.count("native:conv1x1+dw") == 2, kernels
    got = nat.predict({"x": x.numpy()})[nat.output_names[0]]
    assert nat._executor.loop.program.fallback_calls == 0
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    ref = pm.load(path, backend="reference").predict({"x": x.numpy()})[nat.output_names[0]]
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=2e-5)
    ex = nat._executor
    loop, ex.loop = ex.loop, None  # the Python loop: the two convolutions, the same bits
    try:
        np.testing.assert_array_equal(nat.predict({"x": x.numpy()})[nat.output_names[0]], got)
    finally:
        ex.loop = loop


class Activated(torch.nn.Module):
    """Convolutions followed by GELU or SiLU in each of the kernel's paths: unfolded (3x3, 1-D
    stride 2), shifted 1-D, depthwise, pointwise, a map of few pixels."""

    def __init__(self):
        super().__init__()
        self.c3 = torch.nn.Conv2d(5, 12, 3, padding=1)
        self.dw = torch.nn.Conv2d(12, 12, 3, groups=12)
        self.pw = torch.nn.Conv2d(12, 20, 1)
        self.few = torch.nn.Conv2d(20, 16, 3, 6)
        self.c1 = torch.nn.Conv1d(20, 24, 3, padding=1)
        self.c1s = torch.nn.Conv1d(24, 24, 3, 2, padding=1)

    def forward(self, x):
        y = F.gelu(self.pw(F.silu(self.dw(F.gelu(self.c3(x))))))
        z = F.gelu(self.c1s(F.gelu(self.c1(y.flatten(2)))))
        return F.silu(self.few(y)), z


@pytest.mark.parametrize("exact", [False, True])
@pytest.mark.parametrize("threads", [1, 2])
def test_gelu_and_silu_run_in_the_convolution(tmp_path, exact, threads):
    """A GELU or SiLU that alone reads a convolution runs in its step ("native:conv+gelu"), in
    every path of the kernel, equal to torch and bit for bit to the separate ops (the Python
    loop, `exact` as FusedActivation's)."""
    x = torch.randn(2, 5, 17, 15)
    m = Activated().eval()
    with torch.no_grad():
        want = [t.numpy() for t in m(x)]
    path = tmp_path / "act.pocket"
    pm.convert(m, (x,)).save(path)
    nat = pm.load(path, threads=threads, exact=exact)
    kernels = [s.kernel for s in nat.plan_summary().steps if s.kernel.startswith("native:")]
    assert kernels.count("native:conv+gelu") == 4 and kernels.count("native:conv+silu") == 2, kernels
    assert not any(k in ("native:gelu", "native:silu") for k in kernels), kernels
    got = nat.predict({"x": x.numpy()})
    assert nat._executor.loop.program.fallback_calls == 0
    for name, w in zip(nat.output_names, want):
        np.testing.assert_allclose(got[name], w, rtol=1e-4, atol=1e-5)
    ex = nat._executor
    loop, ex.loop = ex.loop, None  # the Python loop: the convolution, then the activation op
    try:
        base = nat.predict({"x": x.numpy()})
    finally:
        ex.loop = loop
    for name in got:
        np.testing.assert_array_equal(got[name], base[name])


def test_a_small_cnn_runs_without_fallbacks(tmp_path):
    """conv + ReLU, max pooling (ceil mode, padded), average pooling, a 1-D max pool: all native
    steps, equal to torch."""
    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.c1, self.c2 = torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.Conv2d(8, 8, 3)

        def forward(self, x):
            y = F.max_pool2d(F.relu(self.c1(x)), 3, 2, 1, ceil_mode=True)
            y = F.avg_pool2d(F.relu(self.c2(y)), 2, count_include_pad=False)
            return F.max_pool1d(y.flatten(2), 2)

    x = torch.randn(2, 3, 23, 19)
    m = M().eval()
    with torch.no_grad():
        want = m(x).numpy()
    path = tmp_path / "cnn.pocket"
    pm.convert(m, (x,)).save(path)
    nat = pm.load(path)
    kernels = {s.op_type: s.kernel for s in nat.plan_summary().steps}
    assert kernels["max_pool"] == "native:max_pool" and kernels["avg_pool"] == "native:avg_pool", kernels
    got = nat.predict({"x": x.numpy()})[nat.output_names[0]]
    assert nat._executor.loop.program.fallback_calls == 0
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_global_average_pooling_runs_as_a_native_mean(tmp_path):
    """adaptive_avg_pool to 1 x 1 (ResNet's head) is the native mean over the map, within an ulp
    of the reference's float64 means (taken one axis after the other there); to other sizes, the
    native adaptive pooling."""
    class M(torch.nn.Module):
        def forward(self, x):
            return F.adaptive_avg_pool2d(x, 1), F.adaptive_avg_pool1d(x.flatten(2), 1), F.adaptive_avg_pool2d(x, (2, 3))

    x = torch.randn(2, 6, 7, 9)
    path = tmp_path / "gap.pocket"
    pm.convert(M().eval(), (x,)).save(path)
    nat, ref = pm.load(path), pm.load(path, backend="reference")
    kernels = [s.kernel for s in nat.plan_summary().steps if s.op_type == "adaptive_avg_pool"]
    assert kernels == ["native:adaptive_avg_pool"] * 3, kernels
    got, want = nat.predict({"x": x.numpy()}), ref.predict({"x": x.numpy()})
    for k in want:
        np.testing.assert_array_max_ulp(got[k], want[k], maxulp=1)


class WidePointwise(torch.nn.Module):
    """Pointwise convolutions wide enough for the int8-activation path (C Cout >= 64 (C + Cout)),
    channels not a multiple of the 32-channel blocks: one alone (+ ReLU6), one expanding into a
    depthwise (a pair), one projecting; then a narrow one, which stays on the float path."""

    def __init__(self):
        super().__init__()
        self.a = torch.nn.Conv2d(200, 168, 1)
        self.expand = torch.nn.Conv2d(168, 232, 1)
        self.dw = torch.nn.Conv2d(232, 232, 3, 1, 1, groups=232)
        self.project = torch.nn.Conv2d(232, 136, 1)
        self.narrow = torch.nn.Conv2d(136, 8, 1)

    def forward(self, x):
        y = F.relu6(self.a(x))
        return self.narrow(self.project(F.relu6(self.dw(F.relu6(self.expand(y))))))


@pytest.mark.parametrize("config", ["int8", "int4-block", "lut4", "lut6", "prune"])
def test_compressed_pointwise_convs_take_int8_activations(tmp_path, config):
    """With exact=False (the default) a compressed pointwise convolution whose format has an int8
    GEMM on this CPU runs on the linear layers' int8-activation path: within the path's error of
    the exact result (and then not equal to it), the Python loop giving the same bits; a format
    without one (pruning), or SIMD off, computes exactly."""
    x = torch.randn(2, 200, 5, 7)
    path = tmp_path / "wide.pocket"
    pm.convert(WidePointwise().eval(), (x,)).save(path)
    spec = {"int8": pm.Quantize("int8"), "int4-block": pm.Quantize("int4", granularity="per_block", block_size=32),
            "lut4": pm.Palettize(4), "lut6": pm.Palettize(6), "prune": pm.Prune(0.5)}[config]
    out = _compressed(path, spec, tmp_path)
    fast, exact = pm.load(out), pm.load(out, exact=True)
    name = fast.output_names[0]
    got, want = fast.predict({"x": x.numpy()})[name], exact.predict({"x": x.numpy()})[name]
    assert fast._executor.loop.program.fallback_calls == 0
    convs = [getattr(s.compute, "first", s.compute) for s in fast._executor.plan.steps
             if s.kernel.startswith("native:conv")]
    int8 = [c.int8 for c in convs if c.pointwise]
    takes = config != "prune" and convs[0].packed.int8_gemm
    assert int8 == ([True] * 3 + [False] if takes else [False] * 4), int8
    if takes:
        err = np.abs(got - want).max() / np.abs(want).max()
        assert 0 < err < 0.02, err
    else:
        np.testing.assert_array_equal(got, want)
    ex = fast._executor
    loop, ex.loop = ex.loop, None
    try:
        np.testing.assert_array_equal(fast.predict({"x": x.numpy()})[name], got)
    finally:
        ex.loop = loop


@pytest.mark.parametrize("config", ["int8", "lut3"])
def test_compressed_grouped_and_strided_convs_match_the_reference(tmp_path, config):
    """The GEMM's packed operand by blocks of output channels: grouped (each group's rows of the
    packed weight), strided and dilated (unfolded), 1-D (shifted rows), over a batch of 3; exact
    mode equals the reference backend."""
    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.g = torch.nn.Conv2d(12, 36, 3, 2, 1, groups=3)
            self.d = torch.nn.Conv2d(36, 20, 3, 1, 2, dilation=2)
            self.one = torch.nn.Conv1d(20, 44, 5, padding=2)

        def forward(self, x):
            return self.one(F.relu(self.d(F.relu(self.g(x)))).flatten(2))

    x = torch.randn(3, 12, 17, 13)
    path = tmp_path / "g.pocket"
    pm.convert(M().eval(), (x,)).save(path)
    spec = pm.Quantize("int8") if config == "int8" else pm.Palettize(3)
    out = _compressed(path, spec, tmp_path)
    nat = pm.load(out, exact=True)
    assert sum(" " in s.kernel and s.kernel.startswith("native:conv") for s in nat.plan_summary().steps) == 3
    got = nat.predict({"x": x.numpy()})[nat.output_names[0]]
    want = pm.load(out, backend="reference").predict({"x": x.numpy()})[nat.output_names[0]]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=2e-5)
