"""pm.merge / `pocketml merge`: several models as one multifunction package over one weight table
(every distinct array stored once, compressed ones too), each function equal to its model, with
its own states and metadata; clear errors."""
import numpy as np
import pytest
import torch

import pocketml as pm
from pocketml.cli.main import main as cli
from pocketml.errors import ConfigError
from pocketml.generation import Session

from helpers import CharTokenizer, tiny_llamas


class MLP(torch.nn.Module):
    def __init__(self, seed_head):
        super().__init__()
        torch.manual_seed(0)
        self.body = torch.nn.Linear(64, 256)
        torch.manual_seed(seed_head)
        self.head = torch.nn.Linear(256, 8)

    def forward(self, x):
        return self.head(torch.relu(self.body(x)))


@pytest.fixture(scope="module")
def pair():
    x = (torch.randn(2, 64),)
    return pm.convert(MLP(1).eval(), x), pm.convert(MLP(2).eval(), x)


def test_shared_weights_are_stored_once_and_each_function_is_its_model(pair, tmp_path):
    a, b = pair
    a.metadata["note"], b.metadata["note"] = "first", "second"
    merged = pm.merge({"a": a, "b": b}, default="b")
    path = tmp_path / "ab.pocket"
    merged.save(path)
    a.save(tmp_path / "a.pocket")
    body = 64 * 256 * 4 + 256 * 4
    head = 256 * 8 * 4 + 8 * 4
    assert sum(w.nbytes for w in merged.program.weights.values()) == body + 2 * head
    assert path.stat().st_size < (tmp_path / "a.pocket").stat().st_size + head + 4096
    x = {a.input_names[0]: np.random.default_rng(0).standard_normal((2, 64)).astype(np.float32)}
    loaded = pm.load(path)
    assert loaded.function.name == "b" and list(loaded.functions) == ["b", "a"]
    for name, src in (("a", a), ("b", b)):
        for m in (loaded.functions[name], pm.load(path, function=name)):
            np.testing.assert_array_equal(m.predict(x)[m.output_names[0]], src.predict(x)[src.output_names[0]])
            assert m.function_metadata["note"] == src.metadata["note"]
    assert loaded.metadata["note"] == "second"  # the default's, at the top


def test_compressed_packages_share_their_packed_data(pair):
    a, b = (pm.compress(m, pm.Quantize("int8"), progress=False) for m in pair)
    merged = pm.merge({"a": a, "b": b})
    stored = sum(w.nbytes for w in merged.program.weights.values())
    assert stored == sum(w.nbytes for w in a.program.weights.values()) + \
        sum(w.nbytes for k, w in b.program.weights.items() if k.startswith("head"))
    x = {a.input_names[0]: np.ones((2, 64), np.float32)}
    np.testing.assert_array_equal(merged.functions["b"].predict(x)[b.output_names[0]], b.predict(x)[b.output_names[0]])


def test_stateful_functions_keep_their_own_states():
    base, cached = tiny_llamas()
    merged = pm.merge({"float": cached, "kv8": pm.compress(cached, kv_cache="int8")})
    assert {s.type.dtype.value for s in merged.functions["kv8"].function.states} == {"int8", "float32"}
    ids = [1, 2, 3, 4, 5]
    texts = {n: "".join(Session(m, CharTokenizer()).generate(ids, 6, ignore_eos=True))
             for n, m in merged.functions.items()}
    assert texts["float"] == texts["kv8"] == "".join(Session(cached, CharTokenizer()).generate(ids, 6, ignore_eos=True))


def test_errors_name_the_problem(pair, tmp_path):
    a, b = pair
    with pytest.raises(ConfigError, match="mapping"):
        pm.merge([a, b])
    with pytest.raises(ConfigError, match="default 'c'"):
        pm.merge({"a": a, "b": b}, default="c")
    with pytest.raises(ConfigError, match="'main' must be the default"):
        pm.merge({"a": a, "main": b})
    two = pm.merge({"x": a, "y": b})
    with pytest.raises(ConfigError, match="two functions named 'm.x'"):
        pm.merge({"m": two, "m.x": a})
    with pytest.raises(ConfigError, match="no function 'z'"):
        two.variant("z")


def test_the_cli_merges_packages(pair, tmp_path, capsys):
    a, b = pair
    a.save(tmp_path / "a.pocket")
    b.save(tmp_path / "b.pocket")
    out = tmp_path / "ab.pocket"
    assert cli(["merge", str(tmp_path / "a.pocket"), str(tmp_path / "b.pocket"), "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "2 functions" in text and "a, b" in text
    assert list(pm.load(out).program.functions) == ["a", "b"]
    assert cli(["merge", str(tmp_path / "a.pocket"), str(tmp_path / "a.pocket"), "-o", str(out)]) == 2
    assert "two functions named 'a'" in capsys.readouterr().err
    assert cli(["merge", str(tmp_path / "a.pocket"), str(tmp_path / "b.pocket"), "-o", str(out),
                "--name", "x", "--name", "y", "--default", "y"]) == 0
    assert pm.load(out).function.name == "y"
    assert "functions" in capsys.readouterr().out
    assert cli(["inspect", str(out)]) == 0
    assert "shared" in capsys.readouterr().out
