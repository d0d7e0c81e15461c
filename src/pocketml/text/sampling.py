"""Choosing the next token from a logits vector: greedy, or temperature + top-k + top-p sampling.

Filters apply in the order transformers and llama.cpp use: temperature, then top-k, then top-p on
the distribution top-k left. Ties in ranking go to the lowest id, so every choice is reproducible.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from pocketml.errors import ConfigError, InputError


class Sampler:
    """Picks a token id from logits.

    temperature 0 is greedy (argmax, lowest id on ties; top_k and top_p are then ignored).
    Otherwise tokens are drawn from softmax(logits / temperature), kept to the top_k most likely
    (0 = all), then to the smallest most-likely set whose probability reaches top_p (1 = all),
    renormalised. Draws come from numpy's PCG64 seeded with `seed`: the same seed and the same
    logits give the same ids.
    """

    def __init__(self, temperature: float = 0.0, top_k: int = 0, top_p: float = 1.0, seed: int | None = None):
        if not _real(temperature) or not math.isfinite(temperature) or temperature < 0:
            raise ConfigError(f"temperature must be a finite number >= 0 (0 = greedy), got {temperature!r}")
        if not _integer(top_k) or top_k < 0:
            raise ConfigError(f"top_k must be an int >= 0 (0 = no limit), got {top_k!r}")
        if not _real(top_p) or not 0 < top_p <= 1:
            raise ConfigError(f"top_p must be a number in (0, 1] (1 = no nucleus filtering), got {top_p!r}")
        if seed is not None and (not _integer(seed) or seed < 0):
            raise ConfigError(f"seed must be None or an int >= 0, got {seed!r}")
        self.temperature, self.top_k, self.top_p, self.seed = float(temperature), int(top_k), float(top_p), seed
        self._rng = np.random.Generator(np.random.PCG64(seed))

    def __repr__(self) -> str:
        return f"Sampler(temperature={self.temperature}, top_k={self.top_k}, top_p={self.top_p}, seed={self.seed})"

    def sample(self, logits) -> int:
        """The next token id."""
        ids, probs = self._candidates(logits)
        if len(ids) == 1:
            return int(ids[0])
        cdf = np.cumsum(probs)
        # the first id whose cumulative probability passes u: never one of probability 0
        return int(ids[min(int(np.searchsorted(cdf, self._rng.random() * cdf[-1], side="right")), len(ids) - 1)])

    def probabilities(self, logits) -> np.ndarray:
        """The distribution `sample` draws from, over the whole vocabulary (float64, zeros where filtered)."""
        x = _check_logits(logits)
        ids, probs = self._candidates(x)
        out = np.zeros(x.size)
        out[ids] = probs
        return out

    def _candidates(self, logits) -> tuple[np.ndarray, np.ndarray]:
        """Ids that may be drawn and their probabilities (ranked most likely first when filtered)."""
        if self.temperature == 0:  # one pass: argmax is the first NaN where there is one
            x = _as_logits(logits)
            i = int(np.argmax(x))
            _check_top(float(x[i]))
            return np.array([i]), np.ones(1)
        x = _check_logits(logits).astype(np.float64)
        z = (x - x.max()) / self.temperature  # shift first: x / T alone overflows for tiny T
        k, p = self.top_k, self.top_p
        if (k == 0 or k >= z.size) and p == 1:
            return np.arange(z.size), _softmax(z)
        if 0 < k < z.size:  # the k-th largest value; every tie with it stays a candidate for now
            ids = np.flatnonzero(z >= np.partition(z, z.size - k)[z.size - k])
        else:
            ids = np.arange(z.size)
        ids = ids[np.lexsort((ids, -z[ids]))][: k or None]  # by value, descending, then by id
        probs = _softmax(z[ids])
        if p < 1:
            n = int(np.searchsorted(np.cumsum(probs), p, side="left")) + 1
            ids, probs = ids[:n], probs[:n] / probs[:n].sum()
        return ids, probs


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max())
    return e / e.sum()


def _check_logits(logits) -> np.ndarray:
    x = _as_logits(logits)
    _check_top(float(x.max()))  # one pass: NaN if any logit is NaN
    return x


def _as_logits(logits) -> np.ndarray:
    x = np.asarray(logits)
    if x.ndim != 1 or x.size == 0:
        raise InputError(f"logits must be one non-empty vector (vocab,), got shape {x.shape}; for a model's "
                         "(1, seq, vocab) output pass logits[0, -1]")
    if x.dtype.kind not in "fiu":
        raise InputError(f"logits must be real numbers, got {x.dtype}")
    return x


def _check_top(top: float) -> None:
    """The largest logit (NaN where any is) must be finite."""
    if math.isnan(top) or top == math.inf:
        raise InputError("logits contain NaN or +inf; the model output is broken")
    if top == -math.inf:
        raise InputError("every logit is -inf: no token can be chosen")


def _real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _integer(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))
