"""Sampler: greedy, top-k / top-p filtering against an exact distribution, seeds, validation."""
from __future__ import annotations

import numpy as np
import pytest

from pocketml.errors import ConfigError, InputError
from pocketml.text import Sampler

LOGITS = np.array([1.0, 3.0, 0.5, 3.0, -1.0, 2.0, -np.inf, 0.0, 2.5, 1.5], np.float32)


def filtered(logits, temperature, top_k, top_p):
    """The distribution a sampler must draw from, written out plainly."""
    z = np.asarray(logits, np.float64) / temperature
    order = sorted(range(len(z)), key=lambda i: (-z[i], i))
    if top_k:
        order = order[:top_k]
    p = np.exp(z[order] - z[order].max())
    p /= p.sum()
    keep, total = [], 0.0
    for i, pi in zip(order, p):
        keep.append(i)
        total += pi
        if total >= top_p:
            break
    out = np.zeros(len(z))
    out[keep] = np.exp(z[keep] - z[keep].max()) / np.exp(z[keep] - z[keep].max()).sum()
    return out


def test_greedy_takes_the_lowest_id_on_ties():
    assert Sampler().sample(LOGITS) == 1  # 1 and 3 tie
    assert Sampler().sample(LOGITS.astype(np.float16)) == 1
    assert Sampler(temperature=0, top_k=3, top_p=0.1).sample(LOGITS) == 1  # filters unused when greedy
    assert Sampler().probabilities(LOGITS).tolist() == [0, 1, 0, 0, 0, 0, 0, 0, 0, 0]


@pytest.mark.parametrize("seed", range(5))
def test_top_k_1_and_tiny_top_p_are_greedy(seed):
    logits = np.random.default_rng(seed).standard_normal(1000).astype(np.float32)
    logits[[17, 400]] = logits.max() + 1  # a tie at the top
    for sampler in (Sampler(temperature=1.5, top_k=1, seed=seed), Sampler(temperature=0.8, top_p=1e-9, seed=seed)):
        assert [sampler.sample(logits) for _ in range(20)] == [17] * 20


@pytest.mark.parametrize(
    "temperature, top_k, top_p",
    [(1.0, 0, 1.0), (0.7, 0, 1.0), (1.3, 4, 1.0), (1.0, 0, 0.8), (0.9, 6, 0.9), (2.0, 3, 0.5), (1.0, 10, 1.0)],
)
def test_draws_follow_the_filtered_distribution(temperature, top_k, top_p):
    want = filtered(LOGITS, temperature, top_k, top_p)
    sampler = Sampler(temperature, top_k, top_p, seed=1234)
    np.testing.assert_allclose(sampler.probabilities(LOGITS), want, rtol=1e-12, atol=1e-15)
    n = 8_000
    counts = np.bincount([sampler.sample(LOGITS) for _ in range(n)], minlength=len(LOGITS))
    assert counts[want == 0].sum() == 0  # nothing filtered out is ever drawn
    kept = want > 0
    chi2 = (((counts[kept] - n * want[kept]) ** 2) / (n * want[kept])).sum()
    assert chi2 < 30, (chi2, counts, n * want)  # df <= 8: p(chi2 > 30) < 0.001


def test_top_p_keeps_the_smallest_set_reaching_it():
    logits = np.log(np.array([0.5, 0.3, 0.2]))
    assert np.flatnonzero(Sampler(1.0, top_p=0.5).probabilities(logits)).tolist() == [0]
    assert np.flatnonzero(Sampler(1.0, top_p=0.51).probabilities(logits)).tolist() == [0, 1]
    assert np.flatnonzero(Sampler(1.0, top_p=0.99).probabilities(logits)).tolist() == [0, 1, 2]


def test_top_k_ties_go_to_the_lowest_ids():
    logits = np.array([0.0, 1.0, 1.0, 1.0, 1.0])
    assert np.flatnonzero(Sampler(1.0, top_k=2).probabilities(logits)).tolist() == [1, 2]


def test_seed_reproduces():
    rng = np.random.default_rng(0)
    logits = [rng.standard_normal(500).astype(np.float32) for _ in range(50)]

    def run(seed):
        sampler = Sampler(temperature=1.0, top_k=40, top_p=0.95, seed=seed)
        return [sampler.sample(x) for x in logits]

    assert run(7) == run(7)
    assert run(7) != run(8)


def test_tiny_temperature_does_not_overflow():
    logits = np.array([1e4, 1e4 - 1, -1e4], np.float32)
    assert Sampler(temperature=1e-30, seed=0).probabilities(logits).tolist() == [1, 0, 0]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"temperature": -0.1}, "temperature must be"),
        ({"temperature": float("nan")}, "temperature must be"),
        ({"temperature": "1"}, "temperature must be"),
        ({"top_k": -1}, "top_k must be"),
        ({"top_k": 2.5}, "top_k must be"),
        ({"top_k": True}, "top_k must be"),
        ({"top_p": 0}, "top_p must be"),
        ({"top_p": 1.1}, "top_p must be"),
        ({"seed": -1}, "seed must be"),
        ({"seed": 1.0}, "seed must be"),
    ],
)
def test_invalid_parameters(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        Sampler(**kwargs)


@pytest.mark.parametrize(
    "logits, message",
    [
        (np.zeros((1, 5)), "logits\\[0, -1\\]"),
        (np.zeros(0), "non-empty"),
        (np.array([1.0, np.nan]), "NaN"),
        (np.array([1.0, np.inf]), "NaN or \\+inf"),
        (np.full(3, -np.inf), "every logit is -inf"),
        (np.array(["a", "b"]), "real numbers"),
    ],
)
def test_invalid_logits(logits, message):
    with pytest.raises(InputError, match=message):
        Sampler(temperature=1.0).sample(logits)
