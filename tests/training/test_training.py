"""pocketml.training: batch norms folded as the package stores them, each weight trained for the spec
`pm.compress` gives it, training that beats the data-free compression it starts from, and an
exported package whose weights are exactly the trained ones."""
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import pocketml as pm  # noqa: E402
from pocketml.training import fold_batch_norms, prepare  # noqa: E402


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = torch.nn.Conv2d(8, 32, 3, padding=1, bias=False)
        self.b1 = torch.nn.BatchNorm2d(32)
        self.c2 = torch.nn.Conv2d(32, 64, 3, padding=1)
        self.fc = torch.nn.Linear(64, 128)
        self.out = torch.nn.Linear(128, 10)

    def forward(self, x):
        x = torch.relu(self.b1(self.c1(x)))
        x = torch.relu(self.c2(x))
        return self.out(torch.relu(self.fc(x.mean((2, 3)))))


def net(seed=0):
    torch.manual_seed(seed)
    n = Net()
    n.b1.running_mean.uniform_(-1, 1)
    n.b1.running_var.uniform_(0.5, 2)
    n.b1.weight.data.uniform_(0.5, 1.5)
    return n.eval()


X = torch.randn(32, 8, 12, 12, generator=torch.Generator().manual_seed(1))


def config(spec):
    return pm.OptimizationConfig(global_config=spec, min_weight_size=256)


def test_batch_norms_fold_into_their_convolutions():
    n = net()
    want = n(X)
    assert fold_batch_norms(n, (X,)) == 1
    assert isinstance(n.b1, torch.nn.Identity) and n.c1.bias is not None
    torch.testing.assert_close(n(X), want, rtol=1e-5, atol=1e-5)
    # the converted model's weights are the module's own parameters, by name
    assert set(pm.convert(n, (X,)).program.weights) == {k for k, _ in n.named_parameters()}


def test_a_convolution_read_twice_is_not_folded():
    class Twice(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.c = torch.nn.Conv2d(3, 4, 1)
            self.b = torch.nn.BatchNorm2d(4).eval()

        def forward(self, x):
            y = self.c(x)
            return self.b(y) + y

    m = Twice().eval()
    assert fold_batch_norms(m, (torch.randn(1, 3, 4, 4),)) == 0
    assert isinstance(m.b, torch.nn.BatchNorm2d)


def test_each_weight_trains_for_the_spec_compress_gives_it():
    n = net()
    c = prepare(n, config(pm.Palettize(4, granularity="per_grouped_channel", group_size=64)), (X,))
    kinds = {k: (type(v[0][0]).__name__, getattr(v[0][0], "group_size", None)) for k, v in c.plan.items()}
    # c1: 32 channels, which 64 does not divide: the largest group that does; the output head: int8
    assert kinds == {"c1.weight": ("Palettize", 32), "c2.weight": ("Palettize", 64),
                     "fc.weight": ("Palettize", 64), "out.weight": ("Quantize", None)}
    assert c.plan["out.weight"][0][0].dtype == "int8"


def distill(spec, steps=120, seed=0):
    """(data-free error, trained error, package vs module) on held-out inputs, the teacher being
    the float model."""
    teacher = net(seed)
    fold_batch_norms(teacher, (X,))
    with torch.no_grad():
        want = teacher(X).numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pm.CompressionWarning)
        base = pm.compress(pm.convert(teacher, (X,)), config(spec), progress=False)
    before = np.mean((base.predict({"x": X.numpy()})["output"] - want) ** 2)
    student = net(seed)
    c = prepare(student, config(spec), (X,), steps=steps // 2)
    opt = torch.optim.Adam(student.parameters(), lr=1e-3)
    student.train()
    g = torch.Generator().manual_seed(2)
    for _ in range(steps):
        x = torch.randn(32, 8, 12, 12, generator=g)
        with torch.no_grad():
            t = teacher(x)
        loss = ((student(x) - t) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        c.step()
    model = c.export((X,))
    exact = pm.Model(model.program, model.metadata, exact=True)
    got = exact.predict({"x": X.numpy()})["output"]
    with torch.no_grad():
        mine = student(X).numpy()
    return before, np.mean((got - want) ** 2), np.abs(got - mine).max(), c, model


@pytest.mark.parametrize("spec, gain", [
    (pm.Palettize(4, granularity="per_grouped_channel", group_size=16), 3),
    (pm.Quantize("int4", granularity="per_block", block_size=32), 2),
    (pm.Quantize("uint4", symmetric=False, granularity="per_channel"), 2),
    (pm.Prune(0.5), 20),
    (pm.Prune(n_m=(2, 4)), 20),
], ids=["pal4-g16", "int4-b32", "uint4-affine", "prune50", "prune2:4"])
def test_training_beats_data_free_and_the_package_holds_the_trained_weights(spec, gain):
    before, after, gap, c, model = distill(spec)
    assert after * gain < before, (before, after)
    assert gap < 1e-6  # the package computes what the trained module computes
    modes = {r["weight"]: r["mode"] for r in pm.compression_report(model)}
    assert {k: modes[k] for k in c.plan} == {k: type(v[0][0]).__name__.lower() for k, v in c.plan.items()}


def test_palettized_weights_hold_one_table_a_group():
    *_, c, _ = distill(pm.Palettize(4, granularity="per_grouped_channel", group_size=16), steps=20)
    w = c.module.c2.weight.detach().numpy()  # [64, 32, 3, 3]: 4 groups of 16 output channels
    for g in range(4):
        assert len(np.unique(w[16 * g:16 * (g + 1)])) <= 16


def test_pruning_ramps_to_its_sparsity():
    n = net()
    c = prepare(n, config(pm.Prune(0.6)), (X,), steps=10)
    mask = n.fc.parametrizations.weight[0].mask
    assert mask.all()  # step 0: nothing pruned yet
    sparsity = []
    for _ in range(10):
        c.step()
        sparsity.append(1 - mask.float().mean().item())
    assert sparsity == sorted(sparsity) and 0 < sparsity[0] < 0.3 and sparsity[-1] == pytest.approx(0.6, abs=1e-3)
    w = c.finalize().fc.weight.detach().numpy()
    assert np.mean(w == 0) == pytest.approx(0.6, abs=1e-3)


@pytest.mark.parametrize("spec, match", [
    ([pm.Prune(0.5), pm.Palettize(4)], "one spec a weight"),
    (pm.Palettize(4, per_channel_scale=True), "without per-channel scales"),
    (pm.Quantize("int4", algorithm="gptq"), "only with calibration="),
    (pm.Quantize("int8", activations="int8"), "no activation quantization"),
])
def test_what_training_does_not_take_is_a_config_error(spec, match):
    with pytest.raises(pm.ConfigError, match=match):
        prepare(net(), config(spec), (X,))


@pytest.mark.filterwarnings("ignore::pocketml.CompressionWarning")
def test_with_calibration_training_starts_from_the_calibrated_compression():
    # (the output head left in float: under a global config it gets int8 on the searched grid,
    # which training's min/max grid then moves)
    spec = pm.OptimizationConfig(global_config=pm.Palettize(4, granularity="per_grouped_channel", group_size=16,
                                                            gptq=True),
                                 op_name_configs={"out.weight": None}, min_weight_size=256)
    teacher = net()
    fold_batch_norms(teacher, (X,))
    g = torch.Generator().manual_seed(5)
    cal = [{"x": torch.randn(32, 8, 12, 12, generator=g).numpy()} for _ in range(2)]
    want = pm.compress(pm.convert(teacher, (X,)), spec, progress=False, calibration=cal)
    want = pm.Model(want.program, want.metadata, exact=True).predict({"x": X.numpy()})["output"]
    student = net()
    c = prepare(student, spec, (X,), calibration=cal)
    student.eval()
    with torch.no_grad():
        got = student(X).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert not any(v[0][0].gptq for v in c.plan.values() if isinstance(v[0][0], pm.Palettize))


@pytest.mark.filterwarnings("ignore::pocketml.CompressionWarning")
def test_a_quantized_start_from_gptq_keeps_its_values_on_the_min_max_grid():
    """GPTQ's grid is not the min/max one training keeps: the start is GPTQ's weights on that
    grid, still closer to the float model than the data-free min/max compression."""
    spec = pm.Quantize("int4", granularity="per_block", block_size=32, algorithm="gptq")
    teacher = net()
    fold_batch_norms(teacher, (X,))
    with torch.no_grad():
        want = teacher(X).numpy()
    g = torch.Generator().manual_seed(5)
    cal = [{"x": torch.randn(32, 8, 12, 12, generator=g).numpy()} for _ in range(4)]
    plain = pm.compress(pm.convert(teacher, (X,)), config(pm.Quantize("int4", granularity="per_block", algorithm="minmax")),
                        progress=False)
    plain = np.mean((pm.Model(plain.program, exact=True).predict({"x": X.numpy()})["output"] - want) ** 2)
    student = net()
    c = prepare(student, config(spec), (X,), calibration=cal)
    student.eval()
    with torch.no_grad():
        start = np.mean((student(X).numpy() - want) ** 2)
    assert start < plain
    assert all(v[0][0].algorithm == "minmax" for v in c.plan.values())
