"""The int8 KV cache (`pm.compress(model, kv_cache="int8")`, compress/kv_cache.py) on a tiny random
Llama with its cache as states: the cache's states become int8 rows and their scales, the model's
outputs stay within the quantization's error of the float cache's on both backends, its greedy
tokens PyTorch's, joint with a weight config, saved and loaded, from the CLI; models without a
cache and unknown modes are refused."""
import numpy as np
import pytest
import torch

import pocketml as pm
from pocketml.cli.main import main as cli
from pocketml.errors import ConfigError
from pocketml.generation import Session, causal_mask
from helpers import CharTokenizer, tiny_llamas

@pytest.fixture(scope="module")
def models():
    base, cached = tiny_llamas()
    return base, cached, pm.compress(cached, kv_cache="int8")


def logits(model, ids, backend):
    """A prefill of ids[:-3], then one decode step per remaining token: every call's logits."""
    m = pm.Model(model.program, model.metadata, backend=backend)
    state, out, pos = m.make_state(), [], 0
    for chunk in [ids[:-3]] + [[t] for t in ids[-3:]]:
        x = np.array([chunk], np.int64)
        out.append(m.predict({"input_ids": x, "causal_mask": causal_mask(pos, len(chunk))}, state=state)["logits"])
        pos += len(chunk)
    return np.concatenate(out, axis=1)


def test_the_cache_states_become_int8_rows_and_scales(models):
    _, cached, q = models
    assert q.metadata["kv_cache"] == {"mode": "int8", "states": [f"main.{kv}_cache_{i}" for i in range(2)
                                                                 for kv in "kv"]}
    states = {s.name: s.type for s in q.program.main.states}
    assert len(states) == 8
    for s in cached.program.main.states:
        assert states[s.name].dtype.value == "int8" and states[s.name].shape == s.type.shape
        assert states[f"{s.name}_scale"].shape == (*s.type.shape[:-1], 1)
    float_bytes = sum(s.type.numel() * 4 for s in cached.program.main.states)
    int8_bytes = sum(t.numel() * t.dtype.itemsize for t in states.values())
    assert int8_bytes == float_bytes * (8 + 4) / (8 * 4)  # head_dim 8: 8 bytes + a scale a row
    ops = [op.type for op in q.program.main.ops]
    assert ops.count("quantize_rows") == 4 and ops.count("dequantize_rows") == 4
    assert q.program.weights is not cached.program.weights and cached.program.main.states[0].type.dtype.value == "float32"


@pytest.mark.parametrize("backend", ["reference", "native"])
def test_outputs_stay_within_the_quantization_error(models, backend):
    _, cached, q = models
    ids = [1, 5, 9, 2, 7, 3, 8, 4, 6, 11]
    want, got = logits(cached, ids, backend), logits(q, ids, backend)
    err = np.abs(got - want).max() / np.abs(want).max()
    assert 1e-6 < err < 0.02  # quantized (not the float cache), but close
    assert (got.argmax(-1) == want.argmax(-1)).all()
    if backend == "native":  # the native attention reads the int8 rows as the reference's floats
        np.testing.assert_allclose(got, logits(q, ids, "reference"), rtol=1e-4, atol=1e-5)
        assert "native:sdpa int8 kv" in pm.Model(q.program, q.metadata, backend="native").plan_summary().counts


def test_greedy_tokens_are_pytorch_s_and_the_package_round_trips(models, tmp_path):
    base, _, q = models
    ids = [1, 2, 3, 4, 5]
    want = []
    with torch.no_grad():
        for _ in range(8):
            want.append(int(base(torch.tensor([ids + want]))[0, -1].argmax()))
    path = tmp_path / "kv8.pocket"
    q.save(path)
    loaded = pm.load(path)
    assert [s.type.dtype.value for s in loaded.program.main.states].count("int8") == 4

    assert "".join(Session(loaded, CharTokenizer()).generate(ids, 8, ignore_eos=True)) == CharTokenizer().decode(want)


def test_joint_with_a_weight_config_and_from_the_cli(models, tmp_path, capsys):
    _, cached, q = models
    both = pm.compress(cached, pm.Quantize(dtype="int8"), kv_cache="int8")
    assert both.metadata["kv_cache"]["states"] == q.metadata["kv_cache"]["states"]
    assert any(r["mode"] != "dense" for r in pm.compression_report(both))
    src, out = tmp_path / "f.pocket", tmp_path / "q.pocket"
    cached.save(src)
    assert cli(["compress", str(src), str(out), "--kv-cache", "int8", "--quiet"]) == 0
    assert "KV cache: 4 states as int8" in capsys.readouterr().out
    assert pm.load(out).metadata["kv_cache"]["mode"] == "int8"


def test_models_without_a_cache_and_other_modes_are_refused(models, tmp_path):
    base, cached, q = models
    stateless = pm.convert(base, (torch.zeros(1, 3, dtype=torch.int64),), input_names=["input_ids"])
    with pytest.raises(ConfigError, match="no KV cache"):
        pm.compress(stateless, kv_cache="int8")
    with pytest.raises(ConfigError, match="kv_cache must be one of"):
        pm.compress(cached, kv_cache="int4")
    with pytest.raises(ConfigError, match="no KV cache"):  # already int8: nothing float left
        pm.compress(q, kv_cache="int8")
