"""Chat templates: SmolLM2's and richer ones rendered like transformers' apply_chat_template; errors."""
from __future__ import annotations

import numpy as np
import pytest
import text_refs as refs

from pocketml.errors import ConfigError, InputError
from pocketml.text import ChatTemplate, Tokenizer

HI = [{"role": "user", "content": "Hi"}]
CONVERSATIONS = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [{"role": "system", "content": "You answer in one word."}, {"role": "user", "content": "Capital of Peru?"}],
    [
        {"role": "user", "content": "Hi!"},
        {"role": "assistant", "content": "Hello. How can I help?"},
        {"role": "user", "content": "Translate «naïve café» to 日本語 😀\n\nThanks."},
    ],
    [{"role": "user", "content": ""}],
]

# Exercises what transformers' environment adds: loopcontrols, namespace, tojson without HTML
# escaping, raise_exception, {% generation %}, special tokens and extra variables.
RICH_TEMPLATE = """{{ bos_token }}{% set ns = namespace(turns=0) %}
{% for m in messages %}
{% if m.role not in ['system', 'user', 'assistant'] %}{{ raise_exception('unknown role ' + m.role) }}{% endif %}
{% if m.role == 'system' and not loop.first %}{% continue %}{% endif %}
{% set ns.turns = ns.turns + 1 %}
[{{ m.role }}] {% if m.role == 'assistant' %}{% generation %}{{ m.content }}{% endgeneration %}{% else %}{{ m.content }}{% endif %}{{ eos_token }}
{% if m.meta is defined %}meta={{ m.meta | tojson }}
{% endif %}
{% endfor %}
turns={{ ns.turns }}{% if tools is defined %} tools={{ tools | tojson(indent=1) }}{% endif %}
{% if add_generation_prompt %}[assistant] {% endif %}"""


@pytest.mark.slow  # transformers takes ~10 s to read the GGUF's tokenizer
@pytest.mark.parametrize("add_generation_prompt", [True, False])
def test_smollm2_template_matches_transformers(add_generation_prompt):
    hf, tok = refs.hf_tokenizer(), refs.tokenizer()
    for messages in CONVERSATIONS:
        want = hf.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)
        assert tok.apply_chat_template(messages, add_generation_prompt=add_generation_prompt) == want


@pytest.mark.slow
def test_rich_template_matches_transformers():
    hf, tok = refs.hf_tokenizer(), refs.tokenizer()
    template = ChatTemplate(RICH_TEMPLATE, {"bos_token": tok.token(tok.bos_id), "eos_token": tok.token(tok.eos_id)})
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "<b>Hi</b> & bye", "meta": {"lang": "fr", "tags": ["é", 1, None, True]}},
        {"role": "system", "content": "skipped by {% continue %}"},
        {"role": "assistant", "content": "Salut", "tool_calls": None},
    ]
    tools = [{"name": "get_time", "parameters": {"tz": "Europe/Paris"}}]
    for add in (True, False):
        want = hf.apply_chat_template(messages, chat_template=RICH_TEMPLATE, tools=tools, tokenize=False,
                                      add_generation_prompt=add)
        assert template.render(messages, add_generation_prompt=add, tools=tools) == want
    assert "&" in want and "<b>" in want and '"é"' in want  # tojson escapes neither HTML nor non-ASCII


def test_smollm2_template():
    tok = refs.tokenizer()
    prompt = tok.apply_chat_template([{"role": "user", "content": "Hi"}])
    assert prompt == (
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    )
    from pocketml.zoo import smollm2

    assert prompt == smollm2.chat_prompt("Hi")


def test_plain_data_only():
    template = ChatTemplate("{% for m in messages %}{{ m.content }}|{{ m.n }}|{{ m.ok }};{% endfor %}")
    messages = [{"role": "user", "content": "a", "n": np.int64(3), "ok": np.bool_(False)}]
    assert template.render(messages) == "a|3|False;"
    with pytest.raises(InputError, match="not plain data"):
        template.render([{"role": "user", "content": "a", "n": object()}])


@pytest.mark.parametrize(
    "messages, message",
    [
        ("Hi", "must be a list of dicts"),
        ([], "no messages"),
        ({"role": "user", "content": "Hi"}, "must be a list of dicts"),
        (["Hi"], "message 0 must be a dict"),
        ([{"content": "Hi"}], "needs a 'role' string"),
        ([{"role": "user"}], "needs a 'content' string"),
        ([{"role": "user", "content": ["Hi"]}], "needs a 'content' string"),
        ([{"role": "user", "content": "Hi", 1: "x"}], "keys must be strings"),
    ],
)
def test_bad_messages(messages, message):
    with pytest.raises(InputError, match=message):
        refs.tokenizer().apply_chat_template(messages)


def test_template_errors():
    with pytest.raises(InputError, match="rejected the messages: unknown role tool"):
        ChatTemplate(RICH_TEMPLATE).render([{"role": "tool", "content": "x"}])
    with pytest.raises(ConfigError, match="not valid Jinja2"):
        ChatTemplate("{% for m in messages %}")
    with pytest.raises(ConfigError, match="sandbox"):  # the sandbox keeps the caller's data immutable
        ChatTemplate("{{ messages.append(1) }}").render(HI)
    with pytest.raises(ConfigError, match="sandbox"):
        ChatTemplate("{% set ns = namespace(_x=1) %}").render(HI)
    with pytest.raises(ConfigError, match="non-empty"):
        ChatTemplate("  ")


def test_no_template():
    metadata = {k: v for k, v in refs.metadata().items() if k != "tokenizer.chat_template"}
    tok = Tokenizer.from_gguf_metadata(metadata)
    assert tok.chat_template is None
    with pytest.raises(ConfigError, match="no chat template"):
        tok.apply_chat_template([{"role": "user", "content": "Hi"}])
