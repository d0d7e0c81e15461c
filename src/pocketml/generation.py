"""Text generation with a converted language model: prefill, then one token per step.

A model qualifies when it takes `input_ids` (1, T) int64 and returns `logits` (1, T, vocab).
With a KV cache (states, and a `causal_mask` (1, 1, T, S) input whose last dim S counts the
tokens in the cache after the call: the zoo's `smollm2`), each step runs the new token only;
without one, every step re-runs the whole sequence. The tokenizer comes from the package's
metadata ("tokenizer", written by `pocketml.text.Tokenizer.to_json`) unless given. `model` may
be a Model or a package path.

    for piece in pm.generate("smollm2.pocket", prompt="Once upon a time", max_new_tokens=64):
        print(piece, end="", flush=True)
"""
from __future__ import annotations

import os
import resource
import sys
import time
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np

from .errors import ConfigError, InputError
from .model import Model, load


def causal_mask(past: int, new: int) -> np.ndarray:
    """The KV-cache models' mask for `new` tokens after `past` cached ones: (1, 1, new, past + new),
    0 where a token may attend (the cache and itself and earlier new tokens), -inf elsewhere. Its
    last dimension tells the model where in the cache the new tokens go."""
    if new == 1:  # a decode step attends to everything
        return np.zeros((1, 1, 1, past + 1), np.float32)
    return np.triu(np.full((new, past + new), -np.inf, np.float32), k=past + 1)[None, None]


def _last_logits(model: Model) -> Model:
    """`model` computing logits for the last position only (passes/last_position.py), or
    `model` itself where its graph does not allow it."""
    from .passes.last_position import last_position

    program = last_position(model.program, model.function.name)
    if program is None:
        return model
    variant = Model(program, model.metadata, model.function.name, model.compute_precision, model.backend,
                    model.threads, model.exact)
    variant._watch = model._watch  # the same mapped file
    return variant


def tokenizer_of(model: Model):
    """The tokenizer stored in a package's metadata."""
    from .text import Tokenizer

    text = model.function_metadata.get("tokenizer")
    if not isinstance(text, str):
        raise ConfigError("this package carries no tokenizer; pass tokenizer=pocketml.text.Tokenizer"
                          ".from_gguf(...) or convert with one in metadata['tokenizer']")
    return Tokenizer.from_json(text)


@dataclass
class Stats:
    prompt_tokens: int = 0
    prefill_seconds: float = 0.0
    generated_tokens: int = 0
    decode_steps: int = 0  # model calls after the prefill, one token each
    decode_seconds: float = 0.0
    peak_rss_mib: float = 0.0

    @property
    def prefill_tok_s(self) -> float:
        return self.prompt_tokens / self.prefill_seconds if self.prefill_seconds else float("nan")

    @property
    def decode_tok_s(self) -> float:
        return self.decode_steps / self.decode_seconds if self.decode_steps else float("nan")

    def __str__(self) -> str:
        return (f"prompt: {self.prompt_tokens} tokens, {self.prefill_tok_s:.1f} tok/s | "
                f"generated: {self.generated_tokens} tokens, {self.decode_tok_s:.1f} tok/s | "
                f"peak memory: {self.peak_rss_mib:.0f} MiB")


class Session:
    """One sequence (a conversation) with a language model: its state and the tokens it holds.

    `generate` continues from what the session already holds: tokens shared with the cached
    ones (e.g. the earlier turns of a chat rendered again) are not run again.
    """

    def __init__(self, model: Model | str | os.PathLike, tokenizer=None):
        if isinstance(model, (str, os.PathLike)):
            model = load(model)
        if "input_ids" not in model.input_names or "logits" not in model.output_names:
            raise ConfigError(f"generation needs a model with an 'input_ids' input and a 'logits' "
                              f"output; this one has inputs {model.input_names}, outputs "
                              f"{model.output_names}")
        self.tokenizer = tokenizer if tokenizer is not None else tokenizer_of(model)
        self.cached = bool(model.states)
        if self.cached:  # only the last position's logits are ever read: skip the others' head
            model = _last_logits(model)
        self.model = model  # what runs: the given model, or its last-position variant
        model.plan_summary()  # its plan built now, not in the first prompt's time
        if self.cached and "causal_mask" not in model.input_names:
            raise ConfigError("a stateful language model needs a 'causal_mask' (1, 1, T, S) input")
        self.state = model.make_state() if self.cached else None
        self.tokens: list[int] = []  # tokens whose keys/values the state holds
        self.context_length = self._context_length()
        self.min_tokens, hi = self._token_range()
        self._range = f"[{self.min_tokens}, {'unbounded' if hi is None else hi}]"
        if self.cached and self.min_tokens > 1:
            raise ConfigError(f"a stateful language model must take one token at a time to decode; "
                              f"this one's input_ids length is in {self._range}")
        self.stats = Stats()

    def _token_range(self) -> tuple[int, int | None]:
        """Bounds of input_ids' length: fixed, declared (dim_ranges), or unknown (a derived dim)."""
        dim = self.model.inputs["input_ids"].shape[-1]
        if isinstance(dim, int):
            return dim, dim
        lo, hi = self.model.function.dim_ranges.get(dim, [1, None])
        return max(int(lo), 1), hi

    def _context_length(self) -> int | None:
        fn = self.model.function
        name = "causal_mask" if self.cached else "input_ids"
        dim = self.model.inputs[name].shape[-1]
        if isinstance(dim, int):
            return dim
        return fn.dim_ranges.get(dim, [0, None])[1]

    def reset(self) -> None:
        self.tokens = []
        if self.state is not None:
            self.state.reset()

    def _run(self, new: list[int]) -> np.ndarray:
        """Feed `new` tokens after self.tokens; logits of the last one (vocab,)."""
        total = len(self.tokens) + len(new)
        if self.context_length is not None and total > self.context_length:
            raise InputError(f"the sequence would be {total} tokens, more than the model's context "
                             f"of {self.context_length}; start a new session (reset())")
        if self.cached:
            mask = causal_mask(len(self.tokens), len(new))
            out = self.model.predict({"input_ids": np.array([new], np.int64), "causal_mask": mask},
                                     state=self.state)
        else:
            out = self.model.predict({"input_ids": np.array([self.tokens + new], np.int64)})
        self.tokens.extend(new)
        return out["logits"][0, -1]

    def generate(self, prompt: str | Sequence[int], max_new_tokens: int = 128, *, temperature: float = 0.0,
                 top_k: int = 0, top_p: float = 1.0, seed: int | None = None,
                 stop: Sequence[str] = (), ignore_eos: bool = False) -> Iterator[str]:
        """Stream the text of up to `max_new_tokens` new tokens after `prompt` (a string, encoded
        without special tokens added, or token ids). Ends at EOS (unless ignore_eos) or at a
        `stop` string (not included). Greedy when temperature is 0."""
        from .text import Sampler

        if not isinstance(max_new_tokens, int) or max_new_tokens < 0:
            raise ConfigError(f"max_new_tokens must be an integer >= 0, got {max_new_tokens!r}")
        sampler = Sampler(temperature=temperature, top_k=top_k, top_p=top_p, seed=seed)
        ids = (self.tokenizer.encode(prompt, add_special=False) if isinstance(prompt, str)
               else [int(i) for i in prompt])
        if not ids:
            raise InputError("the prompt is empty")
        if not self.cached and len(ids) < self.min_tokens:  # each step runs the whole sequence
            raise InputError(f"the prompt must have at least {self.min_tokens} tokens for this model "
                             f"(its input_ids length is in {self._range}); it has {len(ids)}")
        # reuse the cached prefix; a cached model re-runs only from the first differing token
        keep = 0
        if self.cached:
            while keep < min(len(self.tokens), len(ids) - 1) and self.tokens[keep] == ids[keep]:
                keep += 1
        self.tokens = self.tokens[:keep]
        if not self.cached:
            self.tokens = []
        self.stats = Stats(prompt_tokens=len(ids) - keep)
        stops = [s for s in stop if s]
        return self._stream(ids[keep:], max_new_tokens, sampler, stops, ignore_eos)

    def _stream(self, new, max_new_tokens, sampler, stops, ignore_eos) -> Iterator[str]:
        stats = self.stats
        t0 = time.perf_counter()
        logits = self._run(new)
        stats.prefill_seconds = time.perf_counter() - t0
        stream = self.tokenizer.decode_stream()
        text, emitted = "", 0
        eos = self.tokenizer.eos_id
        t0 = time.perf_counter()
        try:
            for i in range(max_new_tokens):
                token = sampler.sample(logits)
                if token == eos and not ignore_eos:
                    break
                stats.generated_tokens += 1
                text += stream.feed(token)
                cut = min((text.find(s) for s in stops if s in text), default=-1)
                if cut >= 0:
                    if cut > emitted:
                        yield text[emitted:cut]
                    return
                # hold back a tail that could still become a stop string
                hold = max((len(s) - 1 for s in stops), default=0)
                safe = len(text) - hold
                if safe > emitted:
                    yield text[emitted:safe]
                    emitted = safe
                if i + 1 < max_new_tokens:  # the last token is not run: nothing needs its logits
                    logits = self._run([token])
                    stats.decode_steps += 1
            rest = text + stream.flush()
            if len(rest) > emitted:
                yield rest[emitted:]
        finally:
            stats.decode_seconds = time.perf_counter() - t0
            stats.peak_rss_mib = peak_rss_mib()


def peak_rss_mib() -> float:
    """Peak resident memory of this process. Linux: VmHWM (ru_maxrss survives exec, so a process
    started by a big parent would report the parent's peak)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / (1024 * 1024) if sys.platform == "darwin" else r / 1024


def generate(model: Model | str | os.PathLike, tokenizer=None, prompt: str | Sequence[int] = "",
             max_new_tokens: int = 128, *, temperature: float = 0.0, top_k: int = 0, top_p: float = 1.0,
             seed: int | None = None, stop: Sequence[str] = (), ignore_eos: bool = False,
             function: str | None = None) -> Iterator[str]:
    """Stream text generated after `prompt` in a new session (see `Session.generate`); `model` is
    a Model or a package path, `function` one of its functions (an adapter of a merged package:
    the same mapped weights whichever runs)."""
    if function is not None:
        model = (model if isinstance(model, Model) else load(model)).variant(function)
    return Session(model, tokenizer).generate(prompt, max_new_tokens, temperature=temperature, top_k=top_k,
                                              top_p=top_p, seed=seed, stop=stop, ignore_eos=ignore_eos)
