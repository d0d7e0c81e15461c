"""LoRA adapters as functions of one package: a base model and two `peft` adapters converted and
merged store the base's weights once and each adapter's A/B beside them; each function generates
its PyTorch model's greedy tokens, from Python and the CLI (--function); compressing the merged
package compresses each shared weight once (adapters left small stay float)."""
import copy

import numpy as np
import pytest
import torch

import pocketml as pm
from pocketml.cli.main import main as cli
from pocketml.generation import Session, causal_mask
from pocketml.inspect import summary
from pocketml.zoo._llama import CachedLlama

from helpers import CharTokenizer, tiny_llamas

peft = pytest.importorskip("peft")
CONTEXT = 24
IDS = [1, 2, 3, 4, 5]


def convert(module):
    seq, ctx = torch.export.Dim("seq", min=1, max=CONTEXT), torch.export.Dim("context", min=1, max=CONTEXT)
    return pm.convert(CachedLlama(module, CONTEXT).eval(),
                      (torch.zeros(1, 3, dtype=torch.int64), torch.from_numpy(causal_mask(0, 3))),
                      input_names=["input_ids", "causal_mask"], output_names=["logits"],
                      dynamic_shapes=({1: seq}, {2: seq, 3: ctx}))


def greedy(module, n=8):
    out = []
    with torch.no_grad():
        for _ in range(n):
            out.append(int(module(torch.tensor([IDS + out]))[0, -1].argmax()))
    return out


@pytest.fixture(scope="module")
def adapters():
    base, base_pkg = tiny_llamas(CONTEXT)
    tuned = {}
    for name, seed in (("a", 1), ("b", 2)):
        torch.manual_seed(seed)
        m = peft.get_peft_model(copy.deepcopy(base), peft.LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0,
                                                                       target_modules=["q_proj", "v_proj"]))
        with torch.no_grad():  # as after training: B no longer zero
            for n, p in m.named_parameters():
                if "lora_B" in n:
                    p.normal_(0, 0.3)
        tuned[name] = m.eval().base_model.model
    merged = pm.merge({"base": base_pkg, **{n: convert(m) for n, m in tuned.items()}})
    return base, base_pkg, tuned, merged


def test_each_adapter_costs_its_own_a_and_b_and_generates_its_model_s_tokens(adapters):
    base, base_pkg, tuned, merged = adapters
    lora = sum(p.numel() * 4 for n, p in tuned["a"].named_parameters() if "lora_" in n)
    nbytes = lambda m: sum(w.nbytes for w in m.program.weights.values())  # noqa: E731
    extra = nbytes(merged) - nbytes(pm.merge({"base": base_pkg}))  # (merge also finds the base's own repeats)
    assert 2 * lora <= extra <= 2 * lora + 16  # (and peft's scaling, a scalar)
    want = {"base": greedy(base), **{n: greedy(m) for n, m in tuned.items()}}
    assert len({tuple(t) for t in want.values()}) == 3  # the adapters change the answer
    for name, fn in merged.functions.items():
        got = Session(fn, CharTokenizer()).generate(IDS, 8, ignore_eos=True)
        assert "".join(got) == CharTokenizer().decode(want[name]), name
    bytes_ = summary(merged)["function_bytes"]
    assert bytes_["a"]["own"] == bytes_["b"]["own"] == lora and bytes_["base"]["own"] == 0


def test_compressing_the_merged_package_compresses_shared_weights_once(adapters, tmp_path, capsys):
    _, _, tuned, merged = adapters
    small = pm.compress(merged, pm.Quantize("int8"), progress=False)  # A/B below min_weight_size stay float
    report = pm.compression_report(small)
    assert {r["mode"] for r in report if "lora" in r["weight"]} == {"dense"}
    alone = pm.compress(convert(tuned["a"]), pm.Quantize("int8"), progress=False)
    assert sum(w.nbytes for w in small.program.weights.values()) < \
        sum(w.nbytes for w in alone.program.weights.values()) + 4096  # base once, not three times
    x = {"input_ids": np.array([IDS], np.int64), "causal_mask": causal_mask(0, len(IDS))}
    np.testing.assert_array_equal(small.functions["a"].predict(x, state=small.functions["a"].make_state())["logits"],
                                  alone.predict(x, state=alone.make_state())["logits"])
    path = tmp_path / "lora.pocket"
    merged.save(path)
    assert cli(["generate", str(path), "--prompt-ids", ",".join(map(str, IDS)), "--function", "b",
                "--max-new-tokens", "8", "--ignore-eos"]) == 0
    assert capsys.readouterr().out.split() == [str(t) for t in greedy(tuned["b"])]
