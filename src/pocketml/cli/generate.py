"""`pocketml generate` and `pocketml chat`: text from a language-model package (no torch).

A package without a tokenizer still generates from `--prompt-ids`; it then prints token ids.
On a terminal, control characters in the generated text are shown escaped (a model's output
could otherwise drive the terminal); piped output is the text as generated.
"""
from __future__ import annotations

import argparse
import contextlib
import sys

from ..errors import ConfigError
from ..inspect import printable


def add_parsers(sub, common, positive_int) -> None:
    p = sub.add_parser("generate", parents=[common], help="generate text with a language model package",
                       description="Continue PROMPT with MODEL (a package with input_ids/logits, e.g. "
                                   "from `pocketml zoo convert smollm2`), streaming to stdout.")
    p.add_argument("model", metavar="MODEL.pocket")
    _sampling_flags(p, positive_int)
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--prompt", help="the text to continue")
    g.add_argument("--prompt-ids", type=_token_ids, metavar="ID,ID,...",
                   help="the prompt as token ids (for packages without a tokenizer, whose output "
                        "is then token ids too)")
    p.add_argument("--chat", action="store_true",
                   help="wrap the prompt as a user message with the model's chat template")
    p.add_argument("--max-new-tokens", type=positive_int, default=128)
    p.add_argument("--ignore-eos", action="store_true", help="generate exactly --max-new-tokens tokens")
    p.add_argument("--stop", action="append", default=[], metavar="TEXT", help="stop at this text (repeatable)")
    p.add_argument("--stats", action="store_true",
                   help="print prompt tokens, prefill and decode tok/s and peak memory to stderr")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("chat", parents=[common], help="chat with an instruct model package",
                       description="An interactive chat with MODEL, using the chat template from its "
                                   "metadata. Earlier turns stay in the KV cache. /reset starts over, "
                                   "/quit (or end of input) leaves.")
    p.add_argument("model", metavar="MODEL.pocket")
    _sampling_flags(p, positive_int)
    p.add_argument("--system", help="a system message")
    p.add_argument("--max-new-tokens", type=positive_int, default=512)
    p.add_argument("--stats", action="store_true", help="print speed after each answer (stderr)")
    p.set_defaults(func=cmd_chat)


def _sampling_flags(p, positive_int) -> None:
    p.add_argument("--function", metavar="NAME",
                   help="the package's function to run (an adapter of a merged package; default: its default)")
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    p.add_argument("--top-k", type=int, default=0, help="sample from the K most likely tokens (0 = all)")
    p.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling threshold")
    p.add_argument("--seed", type=int, default=None, help="random seed, for reproducible sampling")


def _token_ids(s: str) -> list[int]:
    try:
        ids = [int(x) for x in s.replace(",", " ").split()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected token ids like 1,2,3; got {s!r}") from None
    if not ids or min(ids) < 0:
        raise argparse.ArgumentTypeError(f"expected token ids >= 0 like 1,2,3; got {s!r}")
    return ids


class _IdTokenizer:
    """Stands in for a missing tokenizer: generated tokens print as their ids."""
    eos_id = None

    def decode_stream(self):
        class Stream:
            def feed(self, token: int) -> str:
                return f"{token} "

            def flush(self) -> str:
                return ""
        return Stream()


def _session(args, need_text: bool):
    import pocketml as pm
    from ..generation import Session

    model = pm.load(args.model, function=args.function)
    if isinstance(model.function_metadata.get("tokenizer"), str):
        return Session(model)
    session = Session(model, _IdTokenizer())  # first: is it a language model at all?
    if need_text:
        raise ConfigError(f"{args.model!r} has no tokenizer (metadata['tokenizer']); "
                          + ("chat needs one" if args.command == "chat" else
                             "give the prompt as token ids with --prompt-ids 1,2,3 (without --chat)"))
    return session


def _writer():
    """sys.stdout.write, escaping control characters other than newlines and tabs on a terminal."""
    if sys.stdout.isatty():
        return lambda text: sys.stdout.write(printable(text, keep="\n\t"))
    return sys.stdout.write


def _sampling(args) -> dict:
    return dict(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, seed=args.seed)


def cmd_generate(args) -> int:
    session = _session(args, need_text=args.prompt is not None or args.chat)
    prompt = args.prompt if args.prompt is not None else args.prompt_ids
    if args.chat:
        if args.prompt is None:
            raise ConfigError("--chat takes the message as text: use --prompt, not --prompt-ids")
        prompt = session.tokenizer.apply_chat_template([{"role": "user", "content": prompt}])
    write = _writer()
    for piece in session.generate(prompt, args.max_new_tokens, stop=args.stop, ignore_eos=args.ignore_eos,
                                  **_sampling(args)):
        write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")
    if args.stats:
        print(session.stats, file=sys.stderr)
    return 0


def cmd_chat(args) -> int:
    session = _session(args, need_text=True)
    with contextlib.suppress(AttributeError, ValueError, OSError):
        sys.stdin.reconfigure(errors="replace")  # bytes that are not UTF-8 must not end the chat
    write = _writer()
    system = [{"role": "system", "content": args.system}] if args.system else []
    messages = list(system)
    tty = sys.stdin.isatty()
    while True:
        if tty:
            sys.stderr.write("> ")
            sys.stderr.flush()
        line = sys.stdin.readline()
        if not line:
            break
        text = line.strip()
        if text in ("/quit", "/exit"):
            break
        if text == "/reset":
            messages = list(system)
            session.reset()
            continue
        if not text:
            continue
        messages.append({"role": "user", "content": text})
        prompt = session.tokenizer.apply_chat_template(messages)
        answer = []
        for piece in session.generate(prompt, args.max_new_tokens, **_sampling(args)):
            answer.append(piece)
            write(piece)
            sys.stdout.flush()
        sys.stdout.write("\n")
        sys.stdout.flush()
        messages.append({"role": "assistant", "content": "".join(answer)})
        if args.stats:
            print(session.stats, file=sys.stderr)
    return 0
