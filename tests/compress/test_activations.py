"""W8A8: Quantize(activations="int8") quantizes each layer's input to 8 bits per tensor, with
scales (and SmoothQuant's per-column migration to the weight) calibrated on the user's data."""
import numpy as np
import pytest
import torch

import pocketml as pm

pytestmark = pytest.mark.filterwarnings("ignore::pocketml.errors.CompressionWarning")

OUTLIER = 7  # an input column 40x the others, as the LayerNorm outputs of BERT-like models have


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc1, self.fc2 = torch.nn.Linear(64, 128), torch.nn.Linear(128, 64)
        self.conv = torch.nn.Conv1d(64, 32, 3, padding=1)
        with torch.no_grad():  # the outlier column's weights small: it does not drown the others' error
            self.fc1.weight[:, OUTLIER] /= 40

    def forward(self, x):  # (B, T, 64)
        h = self.fc2(torch.nn.functional.gelu(self.fc1(x)))
        return h, self.conv(torch.relu(h).transpose(1, 2))


def batch(rng, n=8):
    x = rng.standard_normal((n, 16, 64)).astype(np.float32)
    x[..., OUTLIER] *= 40
    return {"x": x}


@pytest.fixture(scope="module")
def block():
    return pm.convert(Block().eval(), (torch.randn(8, 16, 64),))


def test_w8a8_layers_read_8_bit_inputs(block, tmp_path):
    rng = np.random.default_rng(1)
    cal, held = [batch(rng) for _ in range(6)], batch(rng)
    m = pm.compress(block, pm.Quantize("int8", activations="int8"), calibration=cal, progress=False)
    fqs = [op for op in m.function.ops if op.type == "fake_quantize"]
    assert len(fqs) == 3  # fc1, fc2, conv
    record = m.metadata["compression"]
    for key in ("fc1.weight", "fc2.weight", "conv.weight"):
        act = record[key]["activations"]
        assert act["scale"] > 0 and act["dtype"] in ("int8", "uint8")
        assert (act["zero_point"] is None) == (act["dtype"] == "int8")
    assert record["fc1.weight"]["activations"]["smoothed"]  # the outlier column moved into the weight
    users = {op.inputs[0] for op in m.function.ops if op.type in ("linear", "conv")}
    assert users <= {op.outputs[0].name for op in fqs}  # every layer reads a quantized input
    kernels = {s.op_type: s.kernel for s in m.plan_summary().steps}
    assert kernels["fake_quantize"] == "native:fake_quantize"  # no step left to the references
    # saved and loaded: the same numbers, native and reference backends alike
    m.save(tmp_path / "w8a8.pocket")
    back = pm.load(tmp_path / "w8a8.pocket")
    exact = pm.load(tmp_path / "w8a8.pocket", exact=True).predict(held)
    reference = pm.load(tmp_path / "w8a8.pocket", backend="reference").predict(held)
    out = back.predict(held)  # (its int8 layers also round their 8-bit inputs per block of 32)
    for name in out:  # (an input an ulp away from a rounding point may take the next 8-bit step)
        top = np.abs(reference[name]).max()
        assert np.mean(np.abs(exact[name] - reference[name]) > 1e-5 * top) < 0.05
        np.testing.assert_allclose(exact[name], reference[name], rtol=0, atol=0.01 * top)
        np.testing.assert_allclose(out[name], reference[name], rtol=0, atol=0.02 * top)
    # against float, and against fc1 with its input at int8 per tensor over the raw range
    want = block.predict(held)
    err = np.linalg.norm(out[block.output_names[0]] - want[block.output_names[0]]) / \
        np.linalg.norm(want[block.output_names[0]])
    assert err < 0.04, err  # (measured 0.016)
    x = held["x"].reshape(-1, 64)
    w = block.program.weights["fc1.weight"]
    step = np.abs(np.concatenate([c["x"] for c in cal])).max() / 127
    naive = np.linalg.norm(np.clip(np.round(x / step), -127, 127) * step @ w.T - x @ w.T)
    smoothed = np.linalg.norm(_fc1_output(back, held) - x @ w.T)
    assert smoothed < 0.5 * naive, (smoothed, naive)


def _fc1_output(model, inputs):
    """fc1's output less its bias in the compressed model (its own ops, on the reference)."""
    import copy

    from pocketml.ir import Program

    fn = copy.deepcopy(model.function)
    fc1 = next(op for op in fn.ops if op.type == "linear" and op.inputs[1] == "fc1_weight")
    fn.outputs = [fc1.outputs[0].name]
    probe = pm.Model(Program({fn.name: fn}, model.program.weights), backend="reference")
    bias = model.program.weights["fc1.bias"]
    return probe.predict(inputs)[fc1.outputs[0].name].reshape(-1, bias.size) - bias


def test_w8a8_needs_calibration_and_says_so(block, capsys, tmp_path):
    with pytest.raises(pm.ConfigError, match="activation quantization .* needs calibration data"):
        pm.compress(block, pm.Quantize("int8", activations="int8"))
    with pytest.raises(pm.ConfigError, match="activations must be None or 'int8'"):
        pm.Quantize("int8", activations="int4")
    from pocketml.cli.main import main
    block.save(tmp_path / "in.pocket")
    argv = ["compress", str(tmp_path / "in.pocket"), str(tmp_path / "out.pocket")]
    assert main(argv + ["--palettize", "4", "--activations", "int8"]) == 2
    assert "--activations int8 goes with --quantize" in capsys.readouterr().err
    assert main(argv + ["--quantize", "int8", "--activations", "int8"]) == 2
    assert "needs calibration data" in capsys.readouterr().err
