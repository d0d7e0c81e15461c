"""States: buffers a module updates in place convert to states the runtime updates in place."""
import numpy as np
import pytest
import torch

import pocketml as pm
from pocketml.ir import verify
from pocketml.ir.printer import to_text

CACHE = 16


class Cache(torch.nn.Module):
    """A tiny KV-cache attention: new keys/values written at positions S-T..S-1."""

    def __init__(self):
        super().__init__()
        self.register_buffer("k", torch.zeros(1, 2, CACHE + 1, 4))
        self.register_buffer("v", torch.zeros(1, 2, CACHE + 1, 4))
        self.register_buffer("steps", torch.zeros(1))
        self.register_buffer("bias", torch.full((4,), 0.5))  # read only: stays a weight

    def forward(self, x, mask):
        t, s = x.shape[2], mask.shape[-1]
        self.k[:, :, s - t:s] = x * 2
        self.v[:, :, s - t:s] = x + 1
        self.steps.add_(1)
        out = torch.nn.functional.scaled_dot_product_attention(x, self.k[:, :, :s], self.v[:, :, :s],
                                                               attn_mask=mask)
        return out + self.bias + self.steps


def mask(past, new):
    return np.triu(np.full((new, past + new), -np.inf, np.float32), k=past + 1)[None, None]


@pytest.fixture(scope="module")
def model():
    T = torch.export.Dim("T", min=1, max=CACHE)
    S = torch.export.Dim("S", min=1, max=CACHE)
    return pm.convert(Cache(), (torch.randn(1, 2, 3, 4), torch.from_numpy(mask(0, 3))),
                      input_names=["x", "mask"], dynamic_shapes=({2: T}, {2: T, 3: S}))


def _steps(lengths, seed=0):
    rng = np.random.default_rng(seed)
    past = 0
    for n in lengths:
        yield rng.standard_normal((1, 2, n, 4)).astype(np.float32), mask(past, n)
        past += n


def test_declares_states_and_updates_slices_in_place(model):
    fn = model.program.main
    assert {s.name: s.type.shape for s in fn.states} == {"k": (1, 2, 17, 4), "v": (1, 2, 17, 4),
                                                          "steps": (1,)}
    types = [op.type for op in fn.ops]
    assert types.count("update_state_slice") == 2 and "slice_update" not in types
    assert not any(op.type == "read_state" and op.attrs["state"] in "kv" for op in fn.ops)
    assert types.count("write_state") == 1  # the counter: a whole-value write
    assert "bias" in model.program.weights
    assert fn.dim_ranges == {"T": [1, CACHE], "S": [1, CACHE]}
    assert "state k: float32[1, 2, 17, 4]" in to_text(model.program)


def test_sequence_matches_torch_step_by_step(model):
    ref = Cache()
    state = model.make_state()
    for x, m in _steps([5, 1, 1, 3, 1]):
        got = model.predict({"x": x, "mask": m}, state=state)["output"]
        want = ref(torch.from_numpy(x), torch.from_numpy(m)).detach().numpy()
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(state.read("k"), ref.k.numpy())
    np.testing.assert_array_equal(state.read("steps"), [5.0])


def test_two_states_are_independent_and_reset_restarts(model):
    a, b = model.make_state(), model.make_state()
    (x1, m1), (x2, m2) = _steps([4, 2])
    first = model.predict({"x": x1, "mask": m1}, state=a)["output"]
    model.predict({"x": x2, "mask": m2}, state=a)
    assert not b.read("k").any() and b.read("steps")[0] == 0
    np.testing.assert_array_equal(model.predict({"x": x1, "mask": m1}, state=b)["output"], first)
    a.reset()
    assert not a.read("k").any() and a.read("steps")[0] == 0
    np.testing.assert_array_equal(model.predict({"x": x1, "mask": m1}, state=a)["output"], first)


def test_write_then_read_and_outputs_are_not_aliased(model):
    state = model.make_state()
    k = np.random.default_rng(1).standard_normal((1, 2, 17, 4)).astype(np.float32)
    state.write("k", k)
    np.testing.assert_array_equal(state.read("k"), k)
    r = state.read("k")
    r[:] = 0  # a copy: the state is unchanged
    np.testing.assert_array_equal(state.read("k"), k)
    x, m = next(_steps([1]))
    out = model.predict({"x": x, "mask": m}, state=state)["output"]
    before = out.copy()
    model.predict({"x": x, "mask": m}, state=state)
    np.testing.assert_array_equal(out, before)


def test_state_survives_save_and_load(model, tmp_path):
    model.save(tmp_path / "m.pocket")
    loaded = pm.load(tmp_path / "m.pocket")
    assert loaded.states == model.states
    s1, s2 = model.make_state(), loaded.make_state()
    for x, m in _steps([3, 1]):
        np.testing.assert_array_equal(model.predict({"x": x, "mask": m}, state=s1)["output"],
                                      loaded.predict({"x": x, "mask": m}, state=s2)["output"])


def test_errors_name_the_problem(model):
    x, m = next(_steps([2]))
    with pytest.raises(pm.InputError, match="stateful.*make_state"):
        model.predict({"x": x, "mask": m})
    state = model.make_state()
    with pytest.raises(pm.InputError, match=r"state 'k' is float32\[1, 2, 17, 4\]"):
        state.write("k", np.zeros((1, 2, 16, 4), np.float32))
    with pytest.raises(pm.InputError, match="astype"):
        state.write("k", np.zeros((1, 2, 17, 4), np.float64))
    with pytest.raises(pm.InputError, match="no state 'q'.*'k'"):
        state.read("q")
    with pytest.raises(pm.InputError, match="dimension 'S'.*17.*\\[1, 16\\]"):
        model.predict({"x": np.zeros((1, 2, 1, 4), np.float32), "mask": mask(16, 1)}, state=state)
    stateless = pm.convert(torch.nn.ReLU(), (torch.randn(2),))
    with pytest.raises(pm.ConfigError, match="no states"):
        stateless.make_state()
    with pytest.raises(pm.InputError, match="no states"):
        stateless.predict({"input": np.zeros(2, np.float32)}, state=state)


def test_nonzero_initial_value_is_stored_and_restored():
    class Counter(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("total", torch.tensor([10.0, 20.0]))

        def forward(self, x):
            self.total.copy_(self.total + x)
            return self.total * 1

    model = pm.convert(Counter(), (torch.ones(2),))
    state = model.make_state()
    np.testing.assert_array_equal(state.read("total"), [10, 20])
    model.predict({"x": np.ones(2, np.float32)}, state=state)
    np.testing.assert_array_equal(model.predict({"x": np.ones(2, np.float32)}, state=state)["output"], [12, 22])
    state.reset()
    np.testing.assert_array_equal(state.read("total"), [10, 20])


def test_mutating_a_parameter_is_refused():
    class Bad(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(2), requires_grad=False)

        def forward(self, x):
            self.w.add_(x)
            return self.w * 2

    with pytest.raises(pm.ConversionError, match="only buffers"):
        pm.convert(Bad(), (torch.ones(2),))


def test_verifier_checks_state_ops(model):
    import copy

    bad = copy.deepcopy(model.program)
    op = next(o for o in bad.main.ops if o.type == "update_state_slice")
    op.attrs = {**op.attrs, "state": "nope"}
    with pytest.raises(pm.VerificationError, match="no state 'nope'"):
        verify(bad)


def test_compressed_stateful_model_keeps_its_states():
    class Proj(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(64, 64)
            self.register_buffer("acc", torch.zeros(64))

        def forward(self, x):
            self.acc.copy_(self.acc + self.lin(x).sum(0))
            return self.acc * 1

    torch.manual_seed(0)
    model = pm.convert(Proj(), (torch.randn(3, 64),))
    small = pm.compress(model, pm.Quantize("int8"))
    dense = pm.decompress(small)
    small = pm.Model(small.program, small.metadata, exact=True)  # fp32 activations: equal within fp32
    assert "dequantize" in [op.type for op in small.program.main.ops]
    x = np.random.default_rng(0).standard_normal((3, 64)).astype(np.float32)
    outs = []
    for m in (small, dense):
        state = m.make_state()
        m.predict({"x": x}, state=state)
        outs.append(m.predict({"x": x}, state=state)["output"])
    np.testing.assert_allclose(outs[0], outs[1], rtol=1e-5, atol=1e-6)


def test_an_output_viewing_a_state_is_a_copy():
    class Window(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("buf", torch.zeros(8))

        def forward(self, x):
            self.buf[2:4] = x
            return self.buf[:4]

    model = pm.convert(Window(), (torch.ones(2),))
    state = model.make_state()
    first = model.predict({"x": np.ones(2, np.float32)}, state=state)["output"]
    model.predict({"x": np.full(2, 5, np.float32)}, state=state)
    np.testing.assert_array_equal(first, [0, 0, 1, 1])
