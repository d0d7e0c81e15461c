"""SmolLM2 with its KV cache as states: generation from the package equals PyTorch's."""
import pytest
import torch

import pocketml as pm
from pocketml.generation import Session
from pocketml.zoo import smollm2

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def package(zoo_package):
    entry, module, path = zoo_package("smollm2")
    return module, pm.load(path)


def torch_greedy(module, ids: list[int], n: int) -> list[int]:
    """Greedy decoding with the PyTorch module's own KV cache (the reference)."""
    for name, b in module.named_buffers():  # empty the caches (not the rotary tables)
        if "_cache_" in name:
            b.zero_()
    out, past = [], 0
    new = ids
    with torch.no_grad():
        for _ in range(n):
            logits = module(torch.tensor([new]), torch.from_numpy(smollm2.causal_mask(past, len(new))))
            past += len(new)
            new = [int(logits[0, -1].argmax())]
            out.append(new[0])
    return out


def test_greedy_128_tokens_identical_to_pytorch(package):
    module, model = package
    session = Session(model)
    prompt = session.tokenizer.apply_chat_template(
        [{"role": "user", "content": "Write a short story about a robot who learns to paint."}])
    text = "".join(session.generate(prompt, 128, ignore_eos=True))
    ids = session.tokenizer.encode(prompt, add_special=False)
    assert ids == smollm2.encode(prompt)[0].tolist()
    want = torch_greedy(module, ids, 128)
    assert session.tokens[len(ids):] + [want[-1]] == want  # the last token is never run
    assert text == session.tokenizer.decode(want)
    assert session.stats.generated_tokens == 128 and session.stats.decode_steps == 127


def test_chat_turns_reuse_the_cache(package):
    _, model = package
    session = Session(model)
    tok = session.tokenizer
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    first = "".join(session.generate(tok.apply_chat_template(messages), 16))
    assert "Paris" in first
    messages += [{"role": "assistant", "content": first}, {"role": "user", "content": "And of Italy?"}]
    prompt = tok.apply_chat_template(messages)
    second = "".join(session.generate(prompt, 16))
    assert session.stats.prompt_tokens < 25  # only the new turn was run
    fresh = Session(model)
    assert "".join(fresh.generate(prompt, 16)) == second


def test_sampling_is_seeded_and_stops_at_stop_strings(package):
    _, model = package
    a = "".join(pm.generate(model, prompt="The weather today is", max_new_tokens=12, temperature=0.8,
                            top_p=0.9, seed=3))
    b = "".join(pm.generate(model, prompt="The weather today is", max_new_tokens=12, temperature=0.8,
                            top_p=0.9, seed=3))
    assert a == b
    greedy = "".join(pm.generate(model, prompt="1, 2, 3, 4,", max_new_tokens=12))
    assert greedy.startswith(" 5, 6")
    stopped = "".join(pm.generate(model, prompt="1, 2, 3, 4,", max_new_tokens=12, stop=[" 7"]))
    assert stopped == greedy[:greedy.index(" 7")]


def test_context_overflow_is_a_clear_error(package):
    _, model = package
    session = Session(model)
    with pytest.raises(pm.InputError, match="more than the model's context of 2048"):
        list(session.generate(list(range(100, 2150)), 1))


def test_cli_generate_prints_stats(package, tmp_path, capsys):
    from pocketml.cli.main import main

    _, model = package
    path = tmp_path / "m.pocket"
    model.save(path)
    code = main(["generate", str(path), "--prompt", "What is 2+2?", "--chat", "--max-new-tokens", "16",
                 "--stats"])
    out = capsys.readouterr()
    assert code == 0 and "4" in out.out
    assert "prompt:" in out.err and "tok/s" in out.err and "peak memory" in out.err


def test_float16_emulation_keeps_greedy_answer(package):
    _, model = package
    path_model = pm.Model(model.program, model.metadata, compute_precision="float16")
    prompt = smollm2.chat_prompt("What is the capital of France?")
    assert "".join(pm.generate(path_model, prompt=prompt, max_new_tokens=8)) == \
        "".join(pm.generate(model, prompt=prompt, max_new_tokens=8))


def test_int8_kv_cache_keeps_the_perplexity_in_a_quarter_of_the_memory(package):
    import numpy as np

    from pocketml.zoo import data

    _, model = package
    q = pm.compress(model, kv_cache="int8")
    ids = smollm2.encode(data.wikipedia_text()[:4000])[0][:512].astype(np.int64)

    def nll_top1(m):
        z = m.predict({"input_ids": ids[None], "causal_mask": smollm2.causal_mask(0, len(ids))},
                      state=m.make_state())["logits"][0, :-1].astype(np.float64)
        lz = z.max(1) + np.log(np.exp(z - z.max(1, keepdims=True)).sum(1))
        return (lz - z[np.arange(len(z)), ids[1:]]).mean(), z.argmax(1)
    (base, top), (got, top8) = nll_top1(model), nll_top1(q)
    assert abs(np.exp(got - base) - 1) < 0.005  # perplexity within 0.5 % (measured +0.1 %)
    assert (top8 == top).mean() > 0.97
    nbytes = lambda m: sum(s.type.numel() * s.type.dtype.itemsize for s in m.program.main.states)  # noqa: E731
    assert nbytes(q) / nbytes(model) == pytest.approx((64 + 4) / 256)
    assert "".join(pm.generate(q, prompt=smollm2.chat_prompt("What is the capital of France?"),
                               max_new_tokens=8)) == "".join(pm.generate(
        model, prompt=smollm2.chat_prompt("What is the capital of France?"), max_new_tokens=8))


def test_cli_chat_keeps_the_conversation(package, tmp_path, capsys, monkeypatch):
    import io

    from pocketml.cli.main import main

    _, model = package
    path = tmp_path / "m.pocket"
    model.save(path)
    monkeypatch.setattr("sys.stdin", io.StringIO("What is the capital of France?\n/reset\n\n/quit\nignored\n"))
    assert main(["chat", str(path), "--max-new-tokens", "12", "--stats"]) == 0
    out = capsys.readouterr()
    assert "Paris" in out.out and out.out.count("\n") == 1  # one answer; /reset, blank, /quit
    assert out.err.count("tok/s") == 2  # prefill and decode of the one answer
