"""The native backend: packed-weight linear/embedding fused into one native step, checked against
the reference backend on every compression mode.

Runs against the real `pocketml._native` where it is built with `PackedLinear`, else against the
NumPy stand-in `fake_native` (same interface), so the plan logic is always tested.
"""
import contextlib
import io
import warnings

import numpy as np
import pytest
import torch

import fake_native
import pocketml as pm
from helpers import every_weight
from pocketml.ir import DType, Function, Op, Program, TensorType, Value
from pocketml.runtime import native as native_backend

CHAIN_OPS = {"lut_to_dense", "dequantize", "sparse_to_dense", "cast", "mul"}
REAL = native_backend.available()


@pytest.fixture
def native(monkeypatch):
    """The native module in use: the real extension, or the stand-in patched in."""
    if REAL:
        return native_backend._native
    monkeypatch.setattr(native_backend, "_native", fake_native.module)
    return fake_native.module


class MLP(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = torch.nn.Linear(64, 128)
        self.fc2 = torch.nn.Linear(128, 96, bias=False)
        self.fc3 = torch.nn.Linear(96, 48)

    def forward(self, x):
        return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


class TiedLM(torch.nn.Module):
    """Embedding with the output head tied to it."""

    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(96, 64)
        self.mid = torch.nn.Linear(64, 64)
        self.head = torch.nn.Linear(64, 96, bias=False)
        self.head.weight = self.emb.weight

    def forward(self, ids):
        return self.head(torch.tanh(self.mid(self.emb(ids))))


@pytest.fixture(scope="module")
def mlp():
    torch.manual_seed(0)
    return pm.convert(MLP().eval(), (torch.randn(2, 3, 64),), input_names=["x"])


@pytest.fixture(scope="module")
def lm():
    torch.manual_seed(1)
    return pm.convert(TiedLM().eval(), (torch.zeros(1, 7, dtype=torch.long),), input_names=["ids"])


def compressed(model, spec):
    with warnings.catch_warnings():  # 2-4 bit modes warn of their error, which is not tested here
        warnings.simplefilter("ignore", pm.CompressionWarning)
        return pm.compress(model, every_weight(spec))


def run(model, inputs, state=None):
    """The model's (only) output."""
    return model.predict(inputs, state=state)[model.output_names[0]]


def both(model, **kw):
    """(native, reference) models of the same program; the native one exact (fp32 activations)."""
    nat = pm.Model(model.program, model.metadata, backend="native", exact=True, **kw)
    ref = pm.Model(model.program, model.metadata, backend="reference", **kw)
    return nat, ref


def assert_close(got, want, rtol=1e-5):
    scale = max(float(np.abs(want).max()), 1e-30)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * scale)


# spec, expected kernel of the MLP's fc1 (N=128, K=64)
FUSED = [
    (pm.Palettize(2), "native:lut2 g[1,1]"),
    (pm.Palettize(3), "native:lut3 g[1,1]"),
    (pm.Palettize(4), "native:lut4 g[1,1]"),
    (pm.Palettize(6), "native:lut6 g[1,1]"),
    (pm.Palettize(8), "native:lut8 g[1,1]"),
    (pm.Palettize(4, lut_dtype="float32"), "native:lut4 g[1,1]"),
    (pm.Palettize(4, per_channel_scale=True), "native:lut4 g[1,1] scaled"),
    (pm.Palettize(4, granularity="per_grouped_channel", group_size=16), "native:lut4 g[8,1]"),
    (pm.Palettize(3, granularity="per_grouped_channel", group_size=16, per_channel_scale=True),
     "native:lut3 g[8,1] scaled"),
    (pm.Palettize(6, granularity="per_grouped_channel", group_size=16, per_channel_scale=True),
     "native:lut6 g[8,1] scaled"),
    ([pm.Palettize(4), pm.Quantize("int8", granularity="per_tensor")], "native:lut4 g[1,1]"),
    (pm.Quantize("int8"), "native:int8 per_channel"),
    (pm.Quantize("int8", granularity="per_tensor"), "native:int8 per_tensor"),
    (pm.Quantize("uint8", symmetric=False), "native:uint8 per_channel zp"),
    (pm.Quantize("int8", symmetric=False), "native:int8 per_channel zp"),
    (pm.Quantize("int4", granularity="per_block", block_size=32), "native:int4 block32"),
    (pm.Quantize("int4", granularity="per_block", block_size=16, symmetric=False), "native:int4 block16 zp"),
    (pm.Quantize("uint4", granularity="per_block", block_size=32), "native:uint4 block32 zp"),  # zp 8
    (pm.Quantize("uint4", granularity="per_block", block_size=32, symmetric=False), "native:uint4 block32 zp"),
    (pm.Quantize("int4"), "native:int4 per_channel"),
    (pm.Quantize("float16"), "native:f16"),
    ([pm.Prune(0.5), pm.Quantize("float16")], "native:sparse f16"),
    (pm.Prune(0.5), "native:sparse f32"),
    (pm.Prune(n_m=(2, 4)), "native:sparse f32"),
    ([pm.Prune(0.5), pm.Palettize(4)], "native:sparse lut4 g[1,1]"),
    ([pm.Prune(0.75), pm.Palettize(3)], "native:sparse lut3 g[1,1]"),
    ([pm.Prune(0.5), pm.Quantize("int8", granularity="per_tensor")], "native:sparse int8 per_tensor"),
    ([pm.Prune(0.5), pm.Quantize("uint4", granularity="per_tensor", symmetric=False)],
     "native:sparse uint4 per_tensor zp"),
]
REFERENCE_ONLY = [
    pm.Palettize(4, cluster_dim=2),
]


def _id(spec):
    return repr(spec).replace(" ", "")


@pytest.mark.parametrize("spec, kernel", FUSED, ids=[_id(s) for s, _ in FUSED])
def test_mlp_fused_matches_reference(native, mlp, spec, kernel):
    c = compressed(mlp, spec)
    nat, ref = both(c)
    x = {"x": np.random.default_rng(0).standard_normal((2, 3, 64)).astype(np.float32)}
    assert_close(run(nat, x), run(ref, x))
    plan = nat.plan_summary()
    linears = [s for s in plan.steps if s.op_type == "linear"]
    assert len(linears) == 3 and all(s.native for s in linears), plan.counts
    assert linears[0].kernel == kernel
    assert linears[0].shape == [2, 3, 128]
    assert not CHAIN_OPS & {s.op_type for s in plan.steps}  # the dense weights are never computed
    assert plan.native == plan.total == len(plan.steps)  # the layers and their ReLUs
    assert plan.counts[kernel] >= 1 and sum(plan.counts.values()) == plan.total
    assert ref.plan_summary().native == 0


@pytest.mark.parametrize("spec", REFERENCE_ONLY, ids=[_id(s) for s in REFERENCE_ONLY])
def test_modes_without_a_native_kernel_stay_on_the_reference(native, mlp, spec):
    c = compressed(mlp, spec)
    nat, ref = both(c)
    x = {"x": np.random.default_rng(1).standard_normal((2, 3, 64)).astype(np.float32)}
    assert_close(run(nat, x), run(ref, x))
    plan = nat.plan_summary()
    # the chain on the references (a float16 table's cast runs natively), the linear natively on
    # the weight it decodes
    assert {s.kernel for s in plan.steps if s.op_type == "lut_to_dense"} == {"numpy"}
    assert {s.kernel for s in plan.steps if s.op_type == "linear"} == {"native:linear"}


@pytest.mark.parametrize("spec", [pm.Palettize(6), pm.Palettize(4, granularity="per_grouped_channel",
                                                                  group_size=16, per_channel_scale=True),
                                  pm.Quantize("int8"), pm.Quantize("uint4", granularity="per_block",
                                                                   block_size=32, symmetric=False)],
                         ids=_id)
def test_tied_embedding_and_head_share_one_packed_weight(native, lm, spec):
    c = compressed(lm, spec)
    nat, ref = both(c)
    ids = {"ids": np.array([[0, 5, 95, 17, 3, 3, 60]], np.int64)}
    assert_close(run(nat, ids), run(ref, ids))
    steps = nat._executor.steps
    emb = next(s for s in steps if s.op_type == "embedding")
    head = [s for s in steps if s.op_type == "linear"][-1]
    assert emb.kernel.startswith("native:") and head.kernel == emb.kernel
    assert emb.compute.packed is head.compute.packed  # one PackedLinear for the tied weight
    assert not CHAIN_OPS & {s.op_type for s in steps}


def test_bad_token_id_through_the_fused_embedding_names_the_input(native, lm):
    nat, ref = both(compressed(lm, pm.Palettize(4)))
    assert nat.plan_summary().steps[0].kernel.startswith("native:")
    bad = {"ids": np.array([[1, 2, 96, 0, 0, 0, 0]], np.int64)}
    with pytest.raises(pm.IndexRangeError, match="input 'ids'") as got:
        nat.predict(bad)
    with pytest.raises(pm.IndexRangeError) as want:
        ref.predict(bad)
    assert str(got.value) == str(want.value)
    assert got.value.input == "ids"
    with pytest.raises(pm.IndexRangeError, match="input 'ids'"):
        nat.predict({"ids": np.array([[-1, 2, 3, 0, 0, 0, 0]], np.int64)})


class StatefulHead(torch.nn.Module):
    """A running sum in a state, then a linear."""

    def __init__(self):
        super().__init__()
        self.register_buffer("acc", torch.zeros(1, 64))
        self.fc = torch.nn.Linear(64, 32)

    def forward(self, x):
        self.acc.add_(x)
        return self.fc(self.acc)


def test_stateful_models_run_fused(native):
    torch.manual_seed(2)
    m = pm.convert(StatefulHead().eval(), (torch.randn(1, 64),), input_names=["x"])
    nat, ref = both(compressed(m, pm.Palettize(6)))
    summary = nat.plan_summary()
    assert summary.counts.get("native:lut6 g[1,1]") == 1
    if nat._executor.loop is not None:  # the C++ loop reads and writes the state itself
        assert summary.native == summary.total
    s_nat, s_ref = nat.make_state(), ref.make_state()
    rng = np.random.default_rng(3)
    for _ in range(3):
        x = {"x": rng.standard_normal((1, 64)).astype(np.float32)}
        assert_close(run(nat, x, s_nat), run(ref, x, s_ref))


def _f16_weight_program():
    """linear(x, cast(const float16 W)) + bias: a dense float16 weight computed in float32."""
    w = np.random.default_rng(4).standard_normal((24, 16)).astype(np.float16)
    b = np.arange(24, dtype=np.float32)
    fn = Function("main", [Value("x", TensorType(DType.float32, ("n", 16)))], [
        Op("const", [], [Value("w16", TensorType(DType.float16, (24, 16)))], {"weight": "w"}),
        Op("const", [], [Value("b", TensorType(DType.float32, (24,)))], {"weight": "b"}),
        Op("cast", ["w16"], [Value("w32", TensorType(DType.float32, (24, 16)))], {"dtype": "float32"}),
        Op("linear", ["x", "w32", "b"], [Value("y", TensorType(DType.float32, ("n", 24)))]),
    ], ["y"])
    return Program({"main": fn}, {"w": w, "b": b})


def test_dense_float16_and_float32_weights_are_native(native, mlp):
    prog = _f16_weight_program()
    nat, ref = pm.Model(prog, backend="native"), pm.Model(prog, backend="reference")
    for n in (1, 5, 0):
        x = {"x": np.random.default_rng(n).standard_normal((n, 16)).astype(np.float32)}
        got, want = nat.predict(x)["y"], ref.predict(x)["y"]
        assert got.shape == want.shape == (n, 24)
        if n:
            assert_close(got, want)
    assert [s.kernel for s in nat.plan_summary().steps] == ["native:f16"]
    nat, ref = pm.Model(mlp.program, backend="native"), pm.Model(mlp.program, backend="reference")
    assert nat.plan_summary().counts["native:f32"] == 3
    x = {"x": np.random.default_rng(0).standard_normal((2, 3, 64)).astype(np.float32)}
    assert_close(run(nat, x), run(ref, x))


def test_fp16_emulation_keeps_the_reference_path(native, mlp):
    c = compressed(mlp, pm.Palettize(6))
    m = pm.Model(c.program, backend="native", compute_precision="float16")
    assert m.plan_summary().native == 0
    r = pm.Model(c.program, backend="reference", compute_precision="float16")
    x = {"x": np.ones((2, 3, 64), np.float32)}
    np.testing.assert_array_equal(run(m, x), run(r, x))


def test_load_picks_the_backend(native, mlp, tmp_path):
    path = tmp_path / "m.pocket"
    compressed(mlp, pm.Quantize("int8")).save(path)
    assert pm.load(path).backend == "native"  # the default where the kernels exist
    ref = pm.load(path, backend="reference")
    assert ref.backend == "reference" and ref.plan_summary().native == 0
    assert {s.kernel for s in ref.plan_summary().steps} == {"numpy"}
    nat = pm.load(path, backend="native", threads=2, exact=True)
    assert nat.plan_summary().native == 3 + 2  # the layers and their ReLUs
    x = {"x": np.random.default_rng(5).standard_normal((2, 3, 64)).astype(np.float32)}
    assert_close(run(nat, x), run(ref, x))  # packed data read from the (read-only) mapped file
    assert all(s.compute.threads == 2 for s in nat._executor.steps if s.op_type == "linear")
    with pytest.raises(pm.ConfigError, match="backend must be one of"):
        pm.load(path, backend="gpu")
    with pytest.raises(pm.ConfigError, match="threads"):
        pm.load(path, threads=0)


def test_a_variant_keeps_backend_threads_and_the_file_watch(native, mlp, tmp_path):
    path = tmp_path / "m.pocket"
    compressed(mlp, pm.Quantize("int8")).save(path)
    for backend in ("reference", "native"):
        m = pm.load(path, backend=backend, threads=1)
        v = m.variant(compute_precision="float16")
        assert (v.backend, v.threads, v.compute_precision, v._watch) == (backend, 1, "float16", m._watch)
        assert v.plan_summary().native == 0  # fp16 emulation runs the references
        assert m.variant().plan_summary().native == (3 + 2 if backend == "native" else 0)


def test_threads_default_from_the_environment(native, mlp, monkeypatch):
    monkeypatch.setenv("POCKETML_THREADS", "3")
    c = compressed(mlp, pm.Palettize(4))
    m = pm.Model(c.program, backend="native")
    assert {s.compute.threads for s in m._executor.steps if s.op_type == "linear"} == {3}
    monkeypatch.setenv("POCKETML_THREADS", "many")
    with pytest.raises(pm.ConfigError, match="POCKETML_THREADS"):
        pm.Model(c.program, backend="native")
    monkeypatch.delenv("POCKETML_THREADS")
    m = pm.Model(c.program, backend="native")
    assert {s.compute.threads for s in m._executor.steps if s.op_type == "linear"} == {0}  # all cores


def test_without_the_extension_native_is_an_error_and_the_default_is_reference(mlp, monkeypatch):
    monkeypatch.setattr(native_backend, "_native", None)
    assert pm.Model(mlp.program).backend == "reference"
    with pytest.raises(pm.ConfigError, match=r"scripts/setup\.sh"):
        pm.Model(mlp.program, backend="native")


def test_observers_see_fused_steps(native, lm):
    nat, ref = both(compressed(lm, pm.Quantize("int8")))
    ids = np.array([[4, 2, 9, 0, 1, 95, 7]], np.int64)
    seen = []
    nat._executor.run([ids], observe=lambda i, step, outs: seen.append((step.op_type, outs[0].shape)))
    assert seen[0] == ("embedding", (1, 7, 64)) and seen[-1] == ("linear", (1, 7, 96))
    from pocketml.validation import find_nonfinite
    report = find_nonfinite(nat, {"ids": ids})
    assert not report.origins and not report.outputs
    np.testing.assert_array_equal(report.prediction[nat.output_names[0]], run(nat, {"ids": ids}))


def test_inspect_plan_prints_the_kernels(native, mlp, tmp_path):
    from pocketml.cli.main import main
    path = tmp_path / "m.pocket"
    compressed(mlp, pm.Palettize(4, granularity="per_grouped_channel", group_size=16)).save(path)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["inspect", "--plan", str(path)]) == 0
    text = out.getvalue()
    assert "native:lut4 g[8,1]" in text and "native 5 of" in text
    assert "linear" in text and "native:relu" in text


@pytest.mark.parametrize("mmap", [True, False])
def test_loaded_packages_run_fused_from_the_mapped_weights(native, lm, tmp_path, mmap):
    path = tmp_path / "lm.pocket"
    compressed(lm, pm.Palettize(4, granularity="per_grouped_channel", group_size=16,
                                per_channel_scale=True)).save(path)
    nat, ref = pm.load(path, mmap=mmap, exact=True), pm.load(path, backend="reference", mmap=mmap)
    assert nat.plan_summary().native == 3 + 1  # the embedding, the layers and their tanh
    ids = {"ids": np.array([[3, 1, 4, 1, 5, 9, 2]], np.int64)}
    assert_close(run(nat, ids), run(ref, ids))


class TinyBlock(torch.nn.Module):
    """A Llama-like block: RMSNorm, grouped-query causal attention, LayerNorm, then one with a
    float mask input."""

    def __init__(self, d=48, hq=6, hk=2):
        super().__init__()
        self.hq, self.hk, self.e = hq, hk, d // hq
        self.norm = torch.nn.RMSNorm(d, eps=1e-6)
        self.q = torch.nn.Linear(d, d, bias=False)
        self.kv = torch.nn.Linear(d, 2 * hk * self.e, bias=False)
        self.o = torch.nn.Linear(d, d, bias=False)
        self.ln = torch.nn.LayerNorm(d)

    def forward(self, x, mask):
        b, n, d = x.shape
        h = self.norm(x)
        q = self.q(h).view(b, n, self.hq, self.e).transpose(1, 2)
        k, v = self.kv(h).view(b, n, 2, self.hk, self.e).unbind(2)
        k, v = k.transpose(1, 2), v.transpose(1, 2)
        a = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        x = x + self.o(a.transpose(1, 2).reshape(b, n, d))
        h = self.ln(x)
        q = self.q(h).view(b, n, self.hq, self.e).transpose(1, 2)
        a = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True)
        return x + self.o(a.transpose(1, 2).reshape(b, n, d))


@pytest.mark.skipif(not REAL or not hasattr(native_backend._native, "sdpa"),
                    reason="needs the built extension with its attention and norm kernels")
def test_attention_and_norms_run_native():
    torch.manual_seed(5)
    mask = torch.triu(torch.full((7, 7), float("-inf")), diagonal=1)[None, None]
    m = pm.convert(TinyBlock().eval(), (torch.randn(2, 7, 48), mask), input_names=["x", "mask"])
    nat, ref = both(m)
    counts = nat.plan_summary().counts
    assert counts.get("native:sdpa") == 2 and counts.get("native:rms_norm") == 1
    assert counts.get("native:layer_norm") == 1
    assert "native:sdpa" not in ref.plan_summary().counts
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 7, 48)).astype(np.float32)
    for msk in (mask.numpy(), np.zeros((1, 1, 7, 7), np.float32)):
        assert_close(run(nat, {"x": x, "mask": msk}), run(ref, {"x": x, "mask": msk}))
    # fp16 emulation stays on the references
    half = pm.Model(m.program, m.metadata, backend="native", compute_precision="float16")
    assert not any(k.startswith("native:") for k in half.plan_summary().counts)


@pytest.mark.skipif(not REAL or not hasattr(native_backend._native, "sdpa"),
                    reason="needs the built extension with its attention and norm kernels")
def test_native_attention_and_norm_steps_fall_back_to_the_reference():
    fused = native_backend.FusedSdpa(0)
    rng = np.random.default_rng(7)
    attrs = {"is_causal": False, "scale": None}
    from pocketml.ir import registry
    sdpa = registry.get("scaled_dot_product_attention").compute
    # rank 3, float16, a mask batch beyond q's: all the reference's results
    q, k, v = (rng.standard_normal((3, 5, 8)).astype(np.float32) for _ in range(3))
    np.testing.assert_array_equal(fused([q, k, v, None], attrs)[0], sdpa([q, k, v, None], attrs)[0])
    q64 = q.astype(np.float16)
    np.testing.assert_array_equal(fused([q64, q64, q64, None], attrs)[0], sdpa([q64, q64, q64, None], attrs)[0])
    q4, k4 = q[None], k[None]
    m = np.zeros((2, 1, 5, 5), np.float32)
    np.testing.assert_array_equal(fused([q4, k4, k4, m], attrs)[0], sdpa([q4, k4, k4, m], attrs)[0])
    # a weight of another shape than [D]; another axis
    norm = native_backend.FusedNorm("rms_norm", 0)
    ref = registry.get("rms_norm").compute
    x = rng.standard_normal((4, 6)).astype(np.float32)
    w = rng.standard_normal((4, 1)).astype(np.float32)
    a = {"axes": [-1], "eps": 1e-6}
    np.testing.assert_array_equal(norm([x, w], a)[0], ref([x, w], a)[0])
    a = {"axes": [0], "eps": 1e-6}
    np.testing.assert_array_equal(norm([x, None], a)[0], ref([x, None], a)[0])


@pytest.mark.parametrize("spec", [pm.Quantize("int8"), pm.Quantize("int4", granularity="per_block", block_size=32),
                                  pm.Palettize(4, granularity="per_grouped_channel", group_size=16)], ids=_id)
def test_default_fast_kernels_stay_close_to_exact(native, mlp, spec):
    """By default compressed layers may use int8 activations: close to exact (the compression's own
    error is ~10x larger), and the same plan."""
    c = compressed(mlp, spec)
    fast, exact = pm.Model(c.program, backend="native"), pm.Model(c.program, backend="native", exact=True)
    assert not fast.exact and exact.exact and fast.variant().exact is False
    assert fast.plan_summary().counts == exact.plan_summary().counts
    x = {"x": np.random.default_rng(7).standard_normal((2, 3, 64)).astype(np.float32)}
    got, want = run(fast, x), run(exact, x)
    assert np.linalg.norm(got - want) <= 0.03 * np.linalg.norm(want)


def test_gelu_and_silu_run_natively_and_equal_the_reference():
    if not REAL:
        pytest.skip("needs the built extension")  # the stand-in has no activations
    class Act(torch.nn.Module):
        def forward(self, x):
            return torch.nn.functional.gelu(x) + torch.nn.functional.silu(x) \
                + torch.nn.functional.gelu(x, approximate="tanh")

    m = pm.convert(Act(), (torch.randn(3, 40),))
    nat, ref = both(m)
    kernels = {s.op_type: s.kernel for s in nat.plan_summary().steps}
    assert kernels["silu"] == "native:silu" and "native:gelu" in {s.kernel for s in nat.plan_summary().steps}
    assert sum(s.kernel == "numpy" and s.op_type == "gelu" for s in nat.plan_summary().steps) == 1  # tanh form
    x = {"x": (np.random.default_rng(3).standard_normal((3, 40)) * 5).astype(np.float32)}
    np.testing.assert_array_max_ulp(run(nat, x), run(ref, x), maxulp=2)
    # by default (exact=False) they take the float32 forms: each within 6 ulp of the reference
    from pocketml import _native
    from pocketml.ir import registry
    fast = pm.Model(m.program, m.metadata, backend="native")
    xs = x["x"]
    parts = []
    for name in ("gelu", "silu"):
        out = np.empty_like(xs)
        _native.activation(name, xs, out, 0, exact=False)
        parts.append(out)
    tanh = registry.get("gelu").compute([xs], {"approximate": "tanh"})[0]
    np.testing.assert_array_equal(run(fast, x), (parts[0] + parts[1]) + tanh)


class RopeBlock(torch.nn.Module):
    """The Llama shapes: a projection split into heads, rotary embedding ("rotate half"), heads
    merged back, a SwiGLU MLP."""

    def __init__(self):
        super().__init__()
        self.q = torch.nn.Linear(32, 32)
        self.gate, self.up = torch.nn.Linear(32, 48), torch.nn.Linear(32, 48)
        self.down = torch.nn.Linear(48, 32)

    def forward(self, x, cos, sin):
        b, t, _ = x.shape
        q = self.q(x).reshape(b, t, 4, 8).transpose(1, 2)
        q = q * cos + torch.cat((-q[..., 4:], q[..., :4]), dim=-1) * sin
        y = q.transpose(1, 2).reshape(b, t, 32)
        return y + self.down(torch.nn.functional.silu(self.gate(y)) * self.up(y))


@pytest.fixture(scope="module")
def rope():
    torch.manual_seed(8)
    return pm.convert(RopeBlock().eval(), (torch.randn(2, 5, 32), torch.randn(5, 8), torch.randn(5, 8)),
                      input_names=["x", "cos", "sin"])


def _rope_inputs(t=5, seed=9):
    rng = np.random.default_rng(seed)
    return {"x": rng.standard_normal((2, t, 32)).astype(np.float32),
            "cos": rng.standard_normal((t, 8)).astype(np.float32),
            "sin": rng.standard_normal((t, 8)).astype(np.float32)}


def test_view_ops_are_folded_into_their_readers(native, rope):
    """reshape/transpose/slice stop being steps on the native backend; results are unchanged."""
    nat, ref = both(rope)
    ref_ops = {s.op_type for s in ref.plan_summary().steps}
    assert {"reshape", "transpose", "slice"} <= ref_ops
    assert not {"reshape", "transpose", "slice"} & {s.op_type for s in nat.plan_summary().steps}
    assert nat.plan_summary().total < ref.plan_summary().total
    x = _rope_inputs()
    assert_close(run(nat, x), run(ref, x))


@pytest.mark.skipif(not REAL or not hasattr(native_backend._native, "rotary"),
                    reason="needs the built extension with its rotary kernel")
def test_rotary_and_swiglu_run_as_one_native_step_each(rope):
    nat, ref = both(rope)
    counts = nat.plan_summary().counts
    assert counts.get("native:rotary") == 1 and counts.get("native:silu*") == 1
    assert not {"neg", "concat", "silu"} & {s.op_type for s in nat.plan_summary().steps}
    x = _rope_inputs()
    assert_close(run(nat, x), run(ref, x))
    # a cos/sin the kernel does not take (broadcast over batch): the same formula in NumPy
    fused = native_backend.FusedRotary(0)
    rng = np.random.default_rng(10)
    q = rng.standard_normal((2, 4, 5, 8)).astype(np.float32)
    cos, sin = (rng.standard_normal((2, 1, 5, 8)).astype(np.float32) for _ in range(2))
    want = q * cos + np.concatenate((-q[..., 4:], q[..., :4]), -1) * sin
    np.testing.assert_array_equal(fused([q, cos, sin], {})[0], want)
    gated = native_backend.FusedActivation("silu", 0, gated=True)
    y = rng.standard_normal((3, 4)).astype(np.float32)
    np.testing.assert_array_equal(gated([y, y[:1]], {})[0],
                                  registry_compute("silu", [y])[0] * y[:1])  # broadcast: NumPy


def registry_compute(name, args):
    from pocketml.ir import registry
    return registry.get(name).compute(args, registry.get(name).with_defaults({}))


def test_a_reshape_of_a_state_stays_a_step(native):
    """A reshape may copy, so it is not folded past a state write: it runs where the graph has it."""
    st = TensorType(DType.float32, (2, 3))
    fn = Function("main", [Value("x", TensorType(DType.float32, (6,)))], [
        Op("read_state", [], [Value("s", st)], {"state": "acc"}),
        Op("reshape", ["s"], [Value("flat", TensorType(DType.float32, (6,)))], {"shape": [6]}),
        Op("transpose", ["s"], [Value("t", TensorType(DType.float32, (3, 2)))], {"perm": [1, 0]}),
        Op("reshape", ["x"], [Value("x2", TensorType(DType.float32, (2, 3)))], {"shape": [2, 3]}),
        Op("write_state", ["x2"], [], {"state": "acc"}),
        Op("add", ["flat", "x"], [Value("y", TensorType(DType.float32, (6,)))]),
        Op("reshape", ["t"], [Value("z", TensorType(DType.float32, (6,)))], {"shape": [6]}),
    ], ["y", "z"], states=[pm.ir.program.State("acc", st)])
    prog = Program({"main": fn}, {})
    nat, ref = pm.Model(prog, backend="native"), pm.Model(prog, backend="reference")
    kinds = [s.op_type for s in nat.plan_summary().steps]
    assert kinds.count("reshape") == 2 and "transpose" not in kinds  # z's reshape is an output
    s_nat, s_ref = nat.make_state(), ref.make_state()
    for i in range(3):
        x = {"x": np.arange(6, dtype=np.float32) + i}
        got, want = nat.predict(x, s_nat), ref.predict(x, s_ref)
        for k in want:
            np.testing.assert_array_equal(got[k], want[k])


class SharedInput(torch.nn.Module):
    """Linears reading one activation: attention's q/k/v (three shapes), an MLP's gate/up."""

    def __init__(self):
        super().__init__()
        self.q, self.k, self.v = torch.nn.Linear(64, 32), torch.nn.Linear(64, 32, bias=False), torch.nn.Linear(64, 32)
        self.gate, self.up = torch.nn.Linear(64, 96), torch.nn.Linear(64, 96)
        self.down = torch.nn.Linear(96, 64)

    def forward(self, x):
        a = torch.cat((self.q(x), self.k(x) * self.v(x)), dim=-1)
        return a + self.down(torch.nn.functional.silu(self.gate(x)) * self.up(x))


@pytest.mark.skipif(not REAL, reason="needs the built extension (linear_group)")
@pytest.mark.parametrize("spec", [pm.Quantize("int4", granularity="per_block", block_size=32),
                                  pm.Quantize("int8"), pm.Palettize(4), pm.Palettize(6)], ids=_id)
def test_linears_sharing_an_input_run_as_one_step(spec):
    """The five linears reading x (here q/k/v and gate/up read the same x) become one step (one
    dispatch of the int8 decode path); a decode row's outputs equal the separate calls' (the
    Python loop over the same kernels) bit for bit, a prefill's too, and stay close to the
    reference."""
    torch.manual_seed(3)
    m = pm.convert(SharedInput().eval(), (torch.randn(1, 3, 64),), input_names=["x"],
                   dynamic_shapes={"x": {1: torch.export.Dim("seq", min=1, max=64)}})
    nat, ref = both(compressed(m, spec))
    fast = pm.Model(nat.program, nat.metadata, backend="native")  # the int8 path
    steps = nat.plan_summary().steps
    linears = [s.kernel for s in steps if s.op_type == "linear"]
    assert len(linears) == 1 and linears[0].endswith(" x5"), linears  # the group
    assert [s.kernel.endswith("+add") for s in steps if s.op_type == "add"] == [True]  # down, the residual
    for model in (nat, fast):
        for t in (1, 2, 5, 40):  # decode rows, prefills (register blocks of 6 rows and the rest)
            x = np.random.default_rng(t).standard_normal((1, t, 64)).astype(np.float32)
            got = run(model, {"x": x})
            separate = model._executor.run([x], observe=lambda *a: None)[0]  # the Python loop
            np.testing.assert_array_equal(got, separate)
            assert_close(got, run(ref, {"x": x}), rtol=3e-2)


class Epilogues(torch.nn.Module):
    """A BERT block's tail: a linear then gelu, a linear then a residual add; one linear read
    twice and one added to a broadcast value, which stay separate steps."""

    def __init__(self):
        super().__init__()
        self.up, self.down = torch.nn.Linear(32, 64), torch.nn.Linear(64, 32)
        self.gate, self.side = torch.nn.Linear(32, 32), torch.nn.Linear(32, 32)
        self.b = torch.nn.Parameter(torch.randn(32))

    def forward(self, x):
        h = self.down(torch.nn.functional.gelu(self.up(x))) + x
        g = torch.nn.functional.silu(self.gate(h))
        s = self.side(g)
        return s * s + (self.side(h) + self.b) + g


@pytest.mark.skipif(not REAL, reason="needs the built extension (epilogues)")
@pytest.mark.parametrize("spec", [None, pm.Quantize("int8")], ids=["float", "int8"])
def test_linear_epilogues_fuse_the_activation_or_residual_after_a_layer(spec):
    torch.manual_seed(5)
    m = pm.convert(Epilogues().eval(), (torch.randn(1, 3, 32),), input_names=["x"],
                   dynamic_shapes={"x": {1: torch.export.Dim("seq", min=1, max=64)}})
    if spec is not None:
        m = compressed(m, spec)
    nat, ref = both(m)
    fast = pm.Model(nat.program, nat.metadata, backend="native")
    kernels = [(s.op_type, s.kernel.split(":")[-1].split("+")[-1]) for s in nat.plan_summary().steps
               if s.kernel.startswith("native:") and ("+" in s.kernel or s.op_type == "linear")]
    # up+gelu, down+add, gate+silu; side (read twice) and side(h) (added to a broadcast bias) plain
    assert kernels.count(("gelu", "gelu")) == 1 and kernels.count(("add", "add")) == 1, kernels
    assert kernels.count(("silu", "silu")) == 1 and sum(k[0] == "linear" for k in kernels) == 2, kernels
    for model in (nat, fast):
        for t in (1, 3, 40):
            x = np.random.default_rng(t).standard_normal((1, t, 32)).astype(np.float32)
            got = run(model, {"x": x})
            np.testing.assert_array_equal(got, model._executor.run([x], observe=lambda *a: None)[0])
            assert_close(got, run(ref, {"x": x}), rtol=1e-5 if model is nat and spec is None else 3e-2)


class MatmulWeight(torch.nn.Module):
    """x @ W with W (in, out): a weight no fused kernel takes, so its compressed chain stays a step."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(3)
        self.w = torch.nn.Parameter(torch.randn(64, 96, generator=g) / 8)

    def forward(self, x):
        return torch.relu(x @ self.w)


@pytest.mark.parametrize("spec", [s for s, _ in FUSED], ids=[_id(s) for s, _ in FUSED])
def test_a_weight_no_kernel_fuses_is_decoded_natively(native, spec):
    model = pm.convert(MatmulWeight().eval(), (torch.randn(3, 64),))
    nat, ref = both(compressed(model, spec))
    x = {nat.input_names[0]: np.random.default_rng(2).standard_normal((3, 64)).astype(np.float32)}
    assert_close(run(nat, x), run(ref, x))
    decoders = [s for s in nat.plan_summary().steps if s.op_type in CHAIN_OPS - {"cast", "mul"}]
    if not isinstance(spec, list):  # one decompression op (float16: a cast): decoded by the packed kernels
        assert all(s.kernel == f"native:{s.op_type}" for s in decoders), decoders
        assert decoders or spec == pm.Quantize("float16")
