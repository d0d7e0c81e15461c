"""Validation: metrics against hand-computed values, aggregation, and validate() end to end."""
import math

import numpy as np
import pytest

import pocketml as pm
from pocketml.ir import Program
from pocketml.validation import Report, aggregate, compare_arrays, flatten_outputs

torch = pytest.importorskip("torch")


# -- metrics ------------------------------------------------------------------------------------
def test_identical_outputs():
    a = np.array([[1.0, -2.0, 3.0]], dtype=np.float32)
    m = compare_arrays(a, a.copy())
    assert m.max_abs_error == 0 and m.max_rel_error == 0
    assert m.cosine == pytest.approx(1.0, abs=1e-15)
    assert m.snr_db == math.inf
    assert m.problem is None
    assert (m.top1_agree, m.top1_total) == (1, 1)


def test_perturbed_outputs_hand_computed():
    ref = np.array([3.0, 4.0], dtype=np.float32)
    got = np.array([3.0, 4.5], dtype=np.float32)
    m = compare_arrays(got, ref)
    assert m.max_abs_error == pytest.approx(0.5)
    assert m.max_rel_error == pytest.approx(0.5 / 4.0)  # relative to max |ref|
    assert m.cosine == pytest.approx((9 + 18) / (5 * math.sqrt(9 + 20.25)), rel=1e-12)
    assert m.snr_db == pytest.approx(10 * math.log10(25 / 0.25))  # 20 dB
    assert (m.top1_agree, m.top1_total) == (1, 1)


def test_top1_agreement_over_all_positions():
    ref = np.array([[[1, 2, 3], [3, 2, 1]], [[0, 5, 0], [1, 0, 0]]], dtype=np.float32)
    got = ref.copy()
    got[0, 1] = [1, 2, 3]  # argmax 2 instead of 0
    m = compare_arrays(got, ref)
    assert (m.top1_agree, m.top1_total) == (3, 4)


def test_not_logits_like_outputs_have_no_top1():
    assert compare_arrays(np.ones((4, 1), np.float32), np.ones((4, 1), np.float32)).top1_total is None
    assert compare_arrays(np.arange(6), np.arange(6)).top1_total is None  # integer
    m = compare_arrays(np.arange(6), np.arange(6) + np.array([0, 0, 0, 0, 0, 2]))
    assert m.max_abs_error == 2 and m.max_rel_error == pytest.approx(2 / 7)


def test_zero_vectors():
    z = np.zeros(3, np.float32)
    m = compare_arrays(z, z)
    assert m.cosine == 1.0 and m.snr_db == math.inf and m.max_rel_error == 0
    m = compare_arrays(np.array([0.0, 1.0, 0.0]), z)
    assert m.cosine == 0.0 and m.max_rel_error == math.inf and m.snr_db == -math.inf


def test_nan_in_model_output_fails_and_says_where():
    ref = np.ones((2, 3), np.float32)
    got = ref.copy()
    got[1, 2] = np.nan
    m = compare_arrays(got, ref)
    assert "1 NaN" in m.problem and "(1, 2)" in m.problem
    assert m.max_abs_error == 0  # the finite positions agree
    out = aggregate("y", [m], ref.shape, "float32", atol=1e-4, min_cosine=0.9999)
    assert not out.passed and out.problems == [m.problem]


def test_inf_mismatch_and_matching_inf():
    ref = np.array([0.0, -np.inf, 1.0], np.float32)
    m = compare_arrays(ref.copy(), ref)  # the same -inf (an attention mask) is consistent
    assert m.problem is None and m.max_abs_error == 0
    got = np.array([np.inf, -np.inf, 1.0], np.float32)
    m = compare_arrays(got, ref)
    assert "Inf" in m.problem and "(0,)" in m.problem
    m = compare_arrays(np.array([0.0, 0.0, 1.0], np.float32), ref)
    assert "non-finite reference" in m.problem and "(1,)" in m.problem


def test_shape_mismatch_is_a_problem():
    m = compare_arrays(np.ones((2, 3)), np.ones((3, 2)))
    assert "shape mismatch" in m.problem
    assert not aggregate("y", [m], (3, 2), "float64", 1e-4, 0.9999).passed


def test_multi_sample_aggregation():
    ref1, got1 = np.array([3.0, 4.0]), np.array([3.0, 4.5])  # max_abs .5, cos c1, snr 20
    ref2, got2 = np.array([1.0, 0.0]), np.array([1.0, 0.0])  # identical
    ref3 = np.array([[1.0, 0.0], [0.0, 1.0]])
    samples = [compare_arrays(got1, ref1), compare_arrays(got2, ref2)]
    c1 = 27 / (5 * math.sqrt(29.25))
    out = aggregate("y", samples, (2,), "float64", atol=1.0, min_cosine=0.99)
    assert out.samples == 2
    assert out.max_abs_error == pytest.approx(0.5)
    assert out.max_rel_error == pytest.approx(0.125)
    assert out.cosine == pytest.approx(c1)
    assert out.mean_cosine == pytest.approx((c1 + 1.0) / 2)
    assert out.snr_db == pytest.approx(20.0)
    assert out.top1_agreement == 1.0
    assert out.passed
    assert not aggregate("y", samples, (2,), "float64", atol=0.4, min_cosine=0.99).passed
    assert not aggregate("y", samples, (2,), "float64", atol=1.0, min_cosine=0.999).passed
    # top-1 rate over all positions of all samples: 2/2 + 1/2 agree -> 3/4
    s3 = compare_arrays(np.array([[1.0, 0.0], [1.0, 0.0]]), ref3)
    out = aggregate("y", [samples[0], samples[1], s3], (2,), "float64", atol=1.0, min_cosine=-1)
    assert out.top1_agreement == pytest.approx(3 / 4)


def test_flatten_outputs():
    a, b, c = torch.ones(1), torch.zeros(2), torch.full((3,), 2.0)

    class Out:  # ModelOutput-like without being a dict
        def to_tuple(self):
            return (b, c)

    assert [t.shape for t in flatten_outputs({"x": a, "y": (b, [c]), "z": None})] == \
        [a.shape, b.shape, c.shape]
    assert [t.shape for t in flatten_outputs([a, Out()])] == [a.shape, b.shape, c.shape]
    with pytest.raises(pm.InputError):
        flatten_outputs((a, "text"))


# -- validate() end to end -------------------------------------------------------------------------
class AddW(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.linspace(-1, 1, 5))

    def forward(self, x, y):
        return x + y + self.w


class TwoOut(torch.nn.Module):
    def forward(self, x, y):
        return {"s": x + y, "d": x + x}


def _inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, 5, generator=g), torch.randn(2, 5, generator=g)


@pytest.fixture(scope="module")
def add_model():
    module = AddW().eval()
    return module, pm.convert(module, _inputs())


def test_validate_tiny_model_passes(add_model, tmp_path):
    module, model = add_model
    path = tmp_path / "m.pocket"
    model.save(path)
    for target in (model, path, str(path)):
        report = pm.validate(target, module, _inputs(1))
        assert isinstance(report, Report) and report.passed
        out = report.outputs["output"]
        assert out.max_abs_error <= 1e-6 and out.cosine >= 0.999999 and out.samples == 1
        assert out.top1_agreement == 1.0 and out.shape == (2, 5)
    text = report.to_text()
    assert "output" in text and "PASSED" in text and "ok" in text
    d = report.to_dict()
    assert d["passed"] and d["outputs"]["output"]["shape"] == [2, 5] and d["failures"] == []


def test_validate_fails_with_perturbed_package(add_model, tmp_path):
    module, model = add_model
    weights = {k: v + np.float32(0.01) for k, v in model.program.weights.items()}
    path = tmp_path / "perturbed.pocket"
    pm.Model(Program(model.program.functions, weights), model.metadata).save(path)
    report = pm.validate(path, module, _inputs())
    assert not report.passed
    out = report.outputs["output"]
    assert out.max_abs_error == pytest.approx(0.01, rel=1e-3)
    assert not out.passed
    assert "FAILED" in report.to_text() and "max_abs_error" in report.failures[0]
    assert pm.validate(path, module, _inputs(), atol=0.02, min_cosine=0.99).passed


def test_validate_nan_in_package_output(add_model, tmp_path):
    module, model = add_model
    w = np.array(model.program.weights["w"])
    w[3] = np.nan
    path = tmp_path / "nan.pocket"
    pm.Model(Program(model.program.functions, {"w": w}), model.metadata).save(path)
    report = pm.validate(path, module, _inputs())
    assert not report.passed
    assert "2 NaN" in report.failures[0] and "(0, 3)" in report.failures[0]


def test_validate_samples_and_multiple_outputs():
    module = TwoOut()
    model = pm.convert(module, _inputs())
    samples = [_inputs(i) for i in range(3)]
    report = pm.validate(model, module, samples)
    assert report.passed and report.samples == 3
    assert list(report.outputs) == ["s", "d"]
    assert all(m.samples == 3 for m in report.outputs.values())
    # numpy inputs work too
    report = pm.validate(model, module, [tuple(t.numpy() for t in s) for s in samples])
    assert report.passed


def test_validate_float16_precision(add_model):
    module, model = add_model
    report = pm.validate(model, module, _inputs(), compute_precision="float16")
    assert report.compute_precision == "float16"
    out = report.outputs["output"]
    assert 0 < out.max_abs_error < 1e-2
    assert model.compute_precision == "float32"  # the given model is left alone


def test_validate_errors(add_model):
    module, model = add_model
    x, y = _inputs()
    with pytest.raises(pm.InputError, match="takes 2"):
        pm.validate(model, module, (x,))
    with pytest.raises(pm.InputError, match="sample 1"):
        pm.validate(model, module, [(x, y), (x,)])
    with pytest.raises(pm.InputError, match="returned 2 tensor"):
        pm.validate(model, lambda a, b: (a + b, a), (x, y))
    with pytest.raises(pm.InputError):
        pm.validate(model, module, ())
    with pytest.raises(pm.ConfigError, match="atol"):
        pm.validate(model, module, (x, y), atol=-1)
    with pytest.raises(pm.ConfigError, match="min_cosine"):
        pm.validate(model, module, (x, y), min_cosine=2)
    with pytest.raises(pm.ConfigError, match="compute_precision"):
        pm.validate(model, module, (x, y), compute_precision="int8")
    with pytest.raises(pm.PackageError):
        pm.validate("/nonexistent.pocket", module, (x, y))
    with pytest.raises(pm.InputError, match="dtype"):
        pm.validate(model, module, (x.double(), y))


def test_validate_names_the_sample_that_does_not_fit(add_model):
    module, model = add_model
    x, y = _inputs()
    with pytest.raises(pm.InputError, match=r"sample 1: input 'x'.*float32\[2, 5\]"):
        pm.validate(model, module, [(x, y), (torch.ones(3, 5), torch.ones(3, 5))])
