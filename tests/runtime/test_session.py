"""generation.Session on a tiny random Llama: KV-cache and stateless packages generate the same
tokens as PyTorch; stop strings, EOS, prefix reuse and errors (fast; the real model is in
tests/real/test_generation.py)."""
import pytest
import torch

import pocketml as pm
from pocketml.generation import Session
from helpers import CharTokenizer, tiny_llamas

CONTEXT = 24
EOS = CharTokenizer.eos_id


@pytest.fixture(scope="module")
def models():
    base, cached = tiny_llamas(CONTEXT)
    stateless = pm.convert(base, (torch.zeros(1, 3, dtype=torch.int64),), input_names=["input_ids"],
                           output_names=["logits"],
                           dynamic_shapes=({1: torch.export.Dim("seq", min=2, max=CONTEXT)},))
    return base, cached, stateless


def torch_greedy(base, ids, n):
    out = []
    with torch.no_grad():
        for _ in range(n):
            out.append(int(base(torch.tensor([ids + out]))[0, -1].argmax()))
    return out


def test_cached_and_stateless_generate_torch_greedy_tokens(models):
    base, cached, stateless = models
    ids = [1, 2, 3, 4, 5]
    want = torch_greedy(base, ids, 8)
    assert len(set(want)) > 3  # a varied sequence, not one token repeated
    for model in (cached, stateless):
        s = Session(model, CharTokenizer())
        text = "".join(s.generate(ids, 8, ignore_eos=True))
        assert text == CharTokenizer().decode(want)
        assert s.stats.decode_steps == 7 and s.stats.generated_tokens == 8


def test_prefix_is_reused_and_equals_a_fresh_session(models):
    _, cached, _ = models
    s = Session(cached, CharTokenizer())
    first = "".join(s.generate([1, 2, 3], 4, ignore_eos=True))
    held = list(s.tokens)
    assert held[:3] == [1, 2, 3] and len(held) == 6  # prompt + 3 of the 4 new tokens were run
    follow = held + [7, 8]
    again = "".join(s.generate(follow, 4, ignore_eos=True))
    assert s.stats.prompt_tokens == 2  # only the new tokens ran
    assert again == "".join(Session(cached, CharTokenizer()).generate(follow, 4, ignore_eos=True))
    assert first


def test_stop_strings_are_cut_and_never_half_emitted(models):
    _, cached, _ = models
    full = "".join(Session(cached, CharTokenizer()).generate([1, 2], 10, ignore_eos=True))
    stop = full[4:6]
    pieces = list(Session(cached, CharTokenizer()).generate([1, 2], 10, ignore_eos=True, stop=[stop]))
    assert "".join(pieces) == full[:full.index(stop)]
    assert not any(stop in p for p in pieces)


def test_eos_ends_generation_unless_ignored(models):
    base, cached, _ = models

    class Eos(CharTokenizer):
        pass

    ids = [1, 2, 3]
    want = torch_greedy(base, ids, 6)
    Eos.eos_id = want[0]  # the first greedy token acts as end of sequence
    s = Session(cached, Eos())
    assert "".join(s.generate(ids, 6)) == "" and s.stats.generated_tokens == 0
    assert "".join(Session(cached, Eos()).generate(ids, 6, ignore_eos=True)) == CharTokenizer().decode(want)
    Eos.eos_id = next(i for i in range(40) if i not in want)  # never generated
    assert "".join(Session(cached, Eos()).generate(ids, 6)) == CharTokenizer().decode(want)


def test_errors(models):
    _, cached, _ = models
    s = Session(cached, CharTokenizer())
    with pytest.raises(pm.InputError, match="more than the model's context of 24"):
        list(s.generate(list(range(25)), 1))
    with pytest.raises(pm.InputError, match="empty"):
        s.generate([], 1)
    with pytest.raises(pm.ConfigError, match="max_new_tokens"):
        s.generate([1], -1)
    with pytest.raises(pm.ConfigError, match="carries no tokenizer"):
        Session(cached)
    relu = pm.convert(torch.nn.ReLU(), (torch.randn(2),))
    with pytest.raises(pm.ConfigError, match="'input_ids' input and a 'logits'"):
        Session(relu, CharTokenizer())


def test_short_prompt_names_the_minimum_length(models):
    _, _, stateless = models  # its input_ids length is declared in [2, CONTEXT]
    s = Session(stateless, CharTokenizer())
    with pytest.raises(pm.InputError, match=r"at least 2 tokens .*\[2, 24\]\); it has 1"):
        s.generate([5], 3)
    assert len("".join(s.generate([5, 6], 3, ignore_eos=True))) == 3


def test_a_path_is_loaded(models, tmp_path):
    _, cached, stateless = models
    for name, model in (("cached", cached), ("stateless", stateless)):
        path = tmp_path / f"{name}.pocket"
        model.save(path)
        want = "".join(Session(model, CharTokenizer()).generate([1, 2, 3], 4, ignore_eos=True))
        assert "".join(Session(path, CharTokenizer()).generate([1, 2, 3], 4, ignore_eos=True)) == want
        assert "".join(pm.generate(str(path), CharTokenizer(), [1, 2, 3], 4, ignore_eos=True)) == want
