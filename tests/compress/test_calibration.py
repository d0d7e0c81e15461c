"""Calibration (pocketml.compress.calibration) and pm.compress(..., calibration=...)."""
import numpy as np
import pytest
import torch

import pocketml as pm
from pocketml.compress.api import _calibrate
from pocketml.compress.apply import resolve_config

pytestmark = pytest.mark.filterwarnings("ignore::pocketml.errors.CompressionWarning")


class Net(torch.nn.Module):
    """A linear, a grouped strided padded convolution and a matmul by a weight."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc = torch.nn.Linear(48, 64)
        self.conv = torch.nn.Conv2d(4, 8, 3, stride=2, padding=1, groups=2)
        self.proj = torch.nn.Parameter(torch.randn(64, 40) / 8)

    def forward(self, x):  # x (B, T, 48)
        h = torch.relu(self.fc(x))  # (B, T, 64)
        img = h.reshape(h.shape[0], 4, -1, 4)  # (B, 4, T*16/16.., 4): a feature map
        c = self.conv(img)
        return c, h @ self.proj


def inputs(rng, n):
    mix = np.random.default_rng(99).standard_normal((48, 48)) / 7 + np.eye(48)
    return [{"x": (rng.standard_normal((2, 16, 48)) @ mix).astype(np.float32)} for _ in range(n)]


@pytest.fixture(scope="module")
def net():
    module = Net().eval()
    return module, pm.convert(module, (torch.randn(2, 16, 48),))


def test_statistics_are_the_layers_input_second_moments(net):
    module, model = net
    data = inputs(np.random.default_rng(0), 3)
    cfg = pm.OptimizationConfig(pm.Quantize("int8", algorithm="gptq"), min_weight_size=0)
    cal = _calibrate(model, cfg, data, True, False)
    seen = {}
    hooks = [getattr(module, n).register_forward_pre_hook(lambda m, a, n=n: seen.setdefault(n, []).append(a[0]))
             for n in ("fc", "conv")]
    with torch.no_grad():
        for d in data:
            module(torch.from_numpy(d["x"]))
        for h in hooks:
            h.remove()
        hs = [torch.relu(module.fc(torch.from_numpy(d["x"]))) for d in data]
    x = np.concatenate([a.numpy().reshape(-1, 48) for a in seen["fc"]]).astype(np.float64)
    st = cal["fc.weight"].stats
    assert st.rows == 3 * 32 and st.gram.shape == (1, 48, 48)
    np.testing.assert_allclose(st.gram[0], x.T @ x, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(st.diag[0], (x * x).sum(0), rtol=1e-5)
    # the convolution: per group, torch's unfolded patches (C/g * kh * kw inputs per row)
    grams = np.zeros((2, 18, 18))
    for a in seen["conv"]:
        patches = torch.nn.functional.unfold(a, 3, padding=1, stride=2).numpy().astype(np.float64)  # (B, 36, L)
        for g in range(2):
            p = patches[:, g * 18:(g + 1) * 18].transpose(0, 2, 1).reshape(-1, 18)
            grams[g] += p.T @ p
    st = cal["conv.weight"].stats
    np.testing.assert_allclose(st.gram, grams, rtol=1e-5, atol=1e-4)
    # the matmul x @ proj: its x is h
    h = np.concatenate([a.numpy().reshape(-1, 64) for a in hs]).astype(np.float64)
    np.testing.assert_allclose(cal["proj"].stats.gram[0], h.T @ h, rtol=1e-5, atol=1e-4)
    imp = cal["conv.weight"].importance((8, 2, 3, 3))
    assert imp.shape == (8, 2, 3, 3)
    np.testing.assert_allclose(imp[5], cal["conv.weight"].stats.diag[1].reshape(2, 3, 3) / st.rows)


def output_error(model, ref, data):
    outs = [model.predict(d) for d in data]
    return sum(float(np.linalg.norm(o[k] - r[k])) for o, r in zip(outs, ref) for k in r)


def test_calibration_lowers_the_output_error_on_held_out_inputs(net):
    _, model = net
    rng = np.random.default_rng(1)
    cal, held = inputs(rng, 8), inputs(rng, 4)
    ref = [model.predict(d) for d in held]
    spec = dict(dtype="int4", granularity="per_block", block_size=16)
    cfg = lambda **kw: pm.OptimizationConfig(pm.Quantize(**spec, **kw), min_weight_size=0)  # noqa: E731
    free = output_error(pm.compress(model, cfg(), progress=False), ref, held)
    weighted = output_error(pm.compress(model, cfg(), progress=False, calibration=cal), ref, held)
    gptq = output_error(pm.compress(model, cfg(algorithm="gptq"), progress=False, calibration=cal), ref, held)
    assert gptq < weighted and gptq < 0.9 * free, (gptq, weighted, free)
    lut = pm.OptimizationConfig(pm.Palettize(3), min_weight_size=0)
    free = output_error(pm.compress(model, lut, progress=False), ref, held)
    skm = output_error(pm.compress(model, lut, progress=False, calibration=cal), ref, held)
    assert skm < free, (skm, free)
    lut = pm.OptimizationConfig(pm.Palettize(3, gptq=True), min_weight_size=0)
    assert output_error(pm.compress(model, lut, progress=False, calibration=cal), ref, held) < skm
    prune = lambda **kw: pm.OptimizationConfig(pm.Prune(n_m=(2, 4), **kw), min_weight_size=0)  # noqa: E731
    free = output_error(pm.compress(model, prune(), progress=False), ref, held)
    sgpt = output_error(pm.compress(model, prune(sparsegpt=True), progress=False, calibration=cal), ref, held)
    assert sgpt < 0.9 * free, (sgpt, free)
    m = pm.compress(model, cfg(algorithm="gptq"), progress=False, calibration=cal)
    assert all(r["mode"] == "quantize" for r in pm.compression_report(m))
    assert all(v.get("calibrated") for v in m.metadata["compression"].values())


def test_calibration_data_forms_and_errors(net, tmp_path):
    _, model = net
    data = inputs(np.random.default_rng(2), 3)
    path = tmp_path / "cal.npz"
    np.savez(path, x=np.stack([d["x"] for d in data]))  # (3 samples, 2, 16, 48)
    a = _calibrate(model, resolve_config(pm.Quantize("int8")), str(path), False, False)
    b = _calibrate(model, resolve_config(pm.Quantize("int8")), data, False, False)
    np.testing.assert_allclose(a["fc.weight"].stats.diag, b["fc.weight"].stats.diag, rtol=1e-5)
    assert a["fc.weight"].stats.gram is None and a["fc.weight"].stats.rows == 96
    np.savez(path, x=np.stack([d["x"][:1] for d in data]))  # samples of batch 1: the wrong shape
    with pytest.raises(pm.InputError, match=r"calibration sample: input 'x': expected shape \(2, 16, 48\)"):
        pm.compress(model, pm.Quantize("int8"), calibration=str(path))
    for spec in (pm.Quantize("int4", granularity="per_block", block_size=16, algorithm="gptq"),
                 pm.Palettize(4, gptq=True), pm.Prune(n_m=(2, 4), sparsegpt=True)):
        with pytest.raises(pm.ConfigError, match="need calibration data"):
            pm.compress(model, spec)
    with pytest.raises(pm.ConfigError, match="gptq=True takes mode 'kmeans' with cluster_dim 1"):
        pm.Palettize(4, cluster_dim=2, gptq=True)
    with pytest.raises(pm.InputError, match="calibration sample"):
        pm.compress(model, pm.Quantize("int8"), calibration=[{"y": data[0]["x"]}])
    with pytest.raises(pm.ConfigError, match="carries no tokenizer"):
        pm.compress(model, pm.Quantize("int8"), calibration=["some text"])
    with pytest.raises(pm.InputError, match="cannot read calibration data"):
        pm.compress(model, pm.Quantize("int8"), calibration=str(tmp_path / "missing.npz"))
    with pytest.raises(pm.ConfigError, match=r"\.txt \(text\) or \.npz"):
        pm.compress(model, pm.Quantize("int8"), calibration=str(tmp_path / "data.csv"))
    np.savez(tmp_path / "ragged.npz", x=np.zeros((2, 16, 48), np.float32), y=np.zeros((3, 1)))
    with pytest.raises(pm.InputError, match="first axes"):
        pm.compress(model, pm.Quantize("int8"), calibration=str(tmp_path / "ragged.npz"))
    with pytest.raises(pm.InputError, match="no samples"):
        pm.compress(model, pm.Quantize("int8"), calibration=[])
    one = pm.compress(model, pm.Quantize("int8"), calibration=data[0])  # one dict: one sample
    assert all(v.get("calibrated") for v in one.metadata["compression"].values())


def test_calibrated_weights_do_not_raise_the_weight_error_warning(net):
    import warnings
    _, model = net
    cfg = pm.OptimizationConfig(pm.Quantize("int4", granularity="per_block", block_size=16), min_weight_size=0)
    for calibration, n in ((None, 1), (inputs(np.random.default_rng(3), 2), 0)):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            pm.compress(model, cfg, progress=False, calibration=calibration)
        assert sum("relative error" in str(w.message) for w in caught) == n


def test_an_uncalibrated_weight_in_the_lossy_range_is_named_as_such():
    import warnings

    class Embed(torch.nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.emb = torch.nn.Embedding(64, 64)
            self.fc = torch.nn.Linear(64, 64)

        def forward(self, ids):
            return torch.relu(self.fc(self.emb(ids)))

    model = pm.convert(Embed().eval(), (torch.randint(0, 64, (1, 8)),))
    cal = [{"ids": np.random.default_rng(i).integers(0, 64, (1, 8))} for i in range(3)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pm.compress(model, pm.Quantize("int4"), progress=False, calibration=cal)
    msgs = [str(w.message) for w in caught if "relative error" in str(w.message)]
    assert len(msgs) == 1 and msgs[0].startswith("emb.weight has") and "does not reach it" in msgs[0]


class Head(torch.nn.Module):
    """Net's linear layer alone (the same weights: stored once when merged with Net)."""

    def __init__(self, fc):
        super().__init__()
        self.fc = fc

    def forward(self, x):
        return self.fc(x)


def test_each_function_calibrated_on_its_own_data(net):
    from pocketml.ir import Program

    module, model = net
    head = pm.convert(Head(module.fc).eval(), (torch.randn(5, 48),))
    both = pm.Model(Program.merge({"net": model.program, "head": head.program}))
    rng = np.random.default_rng(4)
    data_net, data_head = inputs(rng, 2), [{"x": rng.standard_normal((5, 48)).astype(np.float32)}]
    cfg = resolve_config(pm.Quantize("int8"))
    stats = _calibrate(both, cfg, {"net": data_net, "head": data_head}, True, False)
    fc = stats["fc.weight"].stats  # read by both functions: the rows of both
    alone = _calibrate(model, cfg, data_net, True, False)
    assert fc.rows == alone["fc.weight"].stats.rows + 5 == 69
    x = data_head[0]["x"].astype(np.float64)
    np.testing.assert_allclose(fc.gram[0], alone["fc.weight"].stats.gram[0] + x.T @ x, rtol=1e-5)
    assert set(stats) == set(alone) == {"fc.weight", "proj"}  # (the conv is below min_weight_size)
    np.testing.assert_array_equal(stats["proj"].stats.gram, alone["proj"].stats.gram)  # only in "net"
    # data not keyed by function is the main function's ("net": x of shape (2, 16, 48))
    with pytest.raises(pm.InputError, match="expected shape"):
        _calibrate(both, cfg, data_head, True, False)
    with pytest.raises(pm.ConfigError, match=r"functions \['other'\]: the package has \['net', 'head'\]"):
        _calibrate(both, cfg, {"head": data_head, "other": data_net}, False, False)
    with pytest.raises(pm.InputError, match="WAV files is for a speech-recognition package"):
        pm.compress(both, pm.Quantize("int8"), calibration="speech.wav")
