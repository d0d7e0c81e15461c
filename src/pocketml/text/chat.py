"""Chat templates: the Jinja2 template a model ships (GGUF `tokenizer.chat_template`) turning a list
of messages into its prompt text, rendered the way transformers' `apply_chat_template` does.

Templates are untrusted code, so they run in Jinja2's immutable sandbox and see only plain data
(str, int, float, bool, None, lists and dicts of them).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime

from pocketml.errors import ConfigError, InputError


class ChatTemplate:
    """A compiled chat template. `special_tokens` ({"bos_token": "<s>", ...}) are template variables."""

    def __init__(self, source: str, special_tokens: Mapping[str, str] | None = None):
        import jinja2

        if not isinstance(source, str) or not source.strip():
            raise ConfigError("a chat template must be a non-empty Jinja2 string")
        self.source = source
        self.special_tokens = dict(special_tokens or {})
        try:
            self._template = _environment().from_string(source)
        except jinja2.TemplateSyntaxError as e:
            raise ConfigError(f"the chat template is not valid Jinja2 (line {e.lineno}): {e.message}") from e

    def render(self, messages, add_generation_prompt: bool = True, **variables) -> str:
        """The prompt for `messages`, a list of {"role": str, "content": str, ...} dicts.

        `add_generation_prompt` appends the header that opens the assistant's reply; `variables` are
        further template variables (e.g. `tools`). Keys whose value is None are dropped, as
        transformers does, so a template tests for them with `is defined`.
        """
        import jinja2

        context = {**self.special_tokens, **_plain(variables, "template variables")}
        context.update(messages=_check_messages(messages), add_generation_prompt=bool(add_generation_prompt))
        try:
            return self._template.render(**context)
        except jinja2.exceptions.SecurityError as e:
            raise ConfigError(f"the chat template tried something the sandbox forbids: {e}") from e
        except jinja2.TemplateError as e:  # raise_exception(...) in the template, or an undefined value
            raise InputError(f"the chat template rejected the messages: {e}") from e
        except (TypeError, ValueError, KeyError, IndexError) as e:
            raise InputError(f"the chat template failed on these messages: {type(e).__name__}: {e}") from e


def _check_messages(messages) -> list[dict]:
    if isinstance(messages, (str, bytes, Mapping)) or not isinstance(messages, (list, tuple)):
        raise InputError(
            f"messages must be a list of dicts like {{'role': 'user', 'content': 'Hi'}}, got {type(messages).__name__}"
        )
    if not messages:
        raise InputError("no messages: give at least one, e.g. [{'role': 'user', 'content': 'Hi'}]")
    out = []
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise InputError(f"message {i} must be a dict with 'role' and 'content', got {type(message).__name__}")
        role, content = message.get("role"), message.get("content")
        if not isinstance(role, str) or not role:
            raise InputError(f"message {i} needs a 'role' string ('system', 'user', 'assistant', ...), got {role!r}")
        if not isinstance(content, str):
            raise InputError(f"message {i} ({role}) needs a 'content' string, got {type(content).__name__}")
        out.append({k: v for k, v in _plain(dict(message), f"message {i}").items() if v is not None})
    return out


def _plain(value, where: str):
    """`value` rebuilt from plain JSON types, so the sandbox sees no object with methods of its own."""
    if value is None or type(value) in (str, int, float, bool):
        return value
    if isinstance(value, Mapping):
        if not all(isinstance(k, str) for k in value):
            raise InputError(f"{where}: dict keys must be strings")
        return {str(k): _plain(v, where) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, where) for v in value]
    for kind in (str, bool, int, float):  # subclasses (enums, numpy scalars) back to the base type
        if isinstance(value, kind):
            return kind(value)
    if hasattr(value, "item") and callable(value.item) and getattr(value, "shape", None) == ():
        return _plain(value.item(), where)
    raise InputError(f"{where}: {type(value).__name__} is not plain data (str, number, bool, None, list, dict)")


def _environment():
    import jinja2
    import jinja2.ext
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class Generation(jinja2.ext.Extension):
        """`{% generation %}...{% endgeneration %}` marks the assistant's text for training masks; here
        it renders its body unchanged."""

        tags = {"generation"}

        def parse(self, parser):
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            return jinja2.nodes.CallBlock(self.call_method("_body"), [], [], body).set_lineno(lineno)

        def _body(self, caller):
            return caller()

    class Namespace(jinja2.utils.Namespace):
        """`namespace(...)` that refuses underscore names, which could reach CPython internals."""

        def __init__(*args, **kwargs):
            self, attrs = args[0], dict(*args[1:], **kwargs)
            for name in attrs:
                Namespace._check(name)
            jinja2.utils.Namespace.__init__(self, attrs)

        def __setitem__(self, name, value):
            Namespace._check(name)
            jinja2.utils.Namespace.__setitem__(self, name, value)

        @staticmethod
        def _check(name):
            if isinstance(name, str) and name.startswith("_"):
                raise jinja2.exceptions.SecurityError(f"a namespace attribute may not start with '_': {name!r}")

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        # Jinja's own tojson escapes HTML characters, which a prompt must not
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[Generation, jinja2.ext.loopcontrols]
    )
    env.filters["tojson"] = tojson
    env.globals.update(
        raise_exception=raise_exception,
        strftime_now=lambda fmt: datetime.now().strftime(fmt),
        dict=lambda *args, **kwargs: dict(*args, **kwargs),
        namespace=Namespace,
    )
    return env
