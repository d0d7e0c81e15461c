"""The Fisher diagonal (`pocketml.training.fisher`) against per-sample gradients by hand, and
`pm.compress(..., sensitivity=)` weighing k-means and the searched scales by it."""
import numpy as np
import pytest
import torch

import pocketml as pm
from pocketml.errors import ConfigError
from pocketml.training import fisher, language_model_loss


class TinyLM(torch.nn.Module):
    def __init__(self, vocab=40, dim=64):
        super().__init__()
        self.embed = torch.nn.Embedding(vocab, dim)
        self.mix = torch.nn.Linear(dim, dim)
        self.head = torch.nn.Linear(dim, vocab, bias=False)

    def forward(self, ids):
        return self.head(torch.tanh(self.mix(self.embed(ids))))


def test_fisher_sums_each_samples_squared_gradient():
    torch.manual_seed(0)
    m = TinyLM()
    samples = [torch.randint(0, 40, (1, 6)) for _ in range(3)]
    before = [p.detach().clone() for p in m.parameters()]
    got = fisher(m, samples, progress=False)
    assert all(p.grad is None for p in m.parameters())  # cleared, values untouched
    assert all(torch.equal(a, p) for a, p in zip(before, m.parameters()))
    assert set(got) == {"embed.weight", "mix.weight", "head.weight"}  # the 2-D weights
    want = {n: np.zeros(tuple(p.shape)) for n, p in m.named_parameters() if p.dim() >= 2}
    for ids in samples:
        m.zero_grad()
        logits = m(ids)
        torch.nn.functional.cross_entropy(logits[0, :-1], ids[0, 1:]).backward()
        for n in want:
            want[n] += dict(m.named_parameters())[n].grad.double().numpy() ** 2
    for n in want:
        np.testing.assert_allclose(got[n], want[n], rtol=1e-5, atol=1e-12)


def test_fisher_takes_a_loss_and_checks_it():
    m = torch.nn.Linear(4, 3)
    xs = [torch.randn(2, 4) for _ in range(2)]
    got = fisher(m, xs, loss=lambda mod, x: mod(x).pow(2).sum(), names=["weight", "bias"], progress=False)
    assert got["weight"].shape == (3, 4) and got["bias"].shape == (3,) and got["weight"].min() >= 0
    with pytest.raises(ConfigError, match="scalar"):
        fisher(m, xs, loss=lambda mod, x: mod(x), progress=False)
    with pytest.raises(ConfigError, match="logits"):
        language_model_loss(m, torch.randn(2, 4))
    with pytest.raises(ConfigError, match="no parameters"):
        fisher(m, xs, names=["nope"], progress=False)


def test_sensitivity_weighs_the_compression():
    """The elements a sensitivity marks keep far less error than without it, for k-means and for
    the searched int4 scales; a sensitivity that does not fit the package is a ConfigError."""
    torch.manual_seed(0)
    lin = torch.nn.Linear(64, 32, bias=False)
    model = pm.convert(lin, (torch.randn(1, 64),))
    w = lin.weight.detach().numpy()
    marked = np.zeros(w.shape, bool)
    marked[:, :4] = True
    sens = {"weight": np.where(marked, 1e4, 1.0)}
    for spec in (pm.Palettize(2), pm.Quantize("int4", granularity="per_block", block_size=32)):
        plain = pm.decompress(pm.compress(model, spec, progress=False)).program.weights["weight"]
        weighted = pm.decompress(pm.compress(model, spec, progress=False, sensitivity=sens)).program.weights["weight"]
        err_plain = np.abs(plain - w)[marked].mean()
        err_weighted = np.abs(weighted - w)[marked].mean()
        assert err_weighted < 0.5 * err_plain, (spec, err_weighted, err_plain)
    with pytest.raises(ConfigError, match="does not have"):
        pm.compress(model, pm.Palettize(2), sensitivity={"bias": np.ones(32)})
    with pytest.raises(ConfigError, match="shape"):
        pm.compress(model, pm.Palettize(2), sensitivity={"weight": np.ones((64, 32))})
    with pytest.raises(ConfigError, match="non-negative"):
        pm.compress(model, pm.Palettize(2), sensitivity={"weight": -np.ones(w.shape)})
    with pytest.raises(ConfigError, match="target_size"):
        pm.compress(model, target_size="4KB", sensitivity=sens)


def test_fisher_of_a_module_feeds_its_converted_package():
    """fisher()'s keys are the converted package's weight names: the result goes straight to
    pm.compress, and the compressed package runs."""
    torch.manual_seed(0)
    m = TinyLM().eval()
    ids = torch.randint(0, 40, (1, 6))
    model = pm.convert(m, (ids,), input_names=["ids"])
    f = fisher(m, [torch.randint(0, 40, (1, 6)) for _ in range(4)], progress=False)
    small = pm.compress(model, pm.Palettize(4), progress=False, sensitivity={k: v for k, v in f.items()
                                                                               if k in model.program.weights})
    report = {r["weight"]: r for r in pm.compression_report(small)}
    assert report["mix.weight"]["mode"] == "palettize"
    out = small.predict({"ids": ids.numpy()})[small.output_names[0]]
    assert out.shape == (1, 6, 40) and np.isfinite(out).all()
