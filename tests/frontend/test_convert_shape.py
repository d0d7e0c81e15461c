"""End-to-end conversion of shape ops: torch module -> IR -> package -> NumPy runtime, vs torch."""
import torch
import torch.nn as nn
import torch.nn.functional as F

import pocketml as pm
from helpers import Fn, check_module, op_types


x4 = torch.randn(2, 3, 4, 5)


FNS_VIEWS_AND_PERMUTES = [
    lambda x: x.view(6, 20),
    lambda x: x.reshape(-1, 4),
    lambda x: x.flatten(),
    lambda x: x.flatten(1),
    lambda x: x.flatten(1, 2),
    lambda x: x.unflatten(-1, (5, 1)),
    lambda x: x.view(2, 3, 4, 5),                 # no-op view
    lambda x: x.permute(0, 2, 1, 3),
    lambda x: x.permute(-1, 0, 2, 1).contiguous(),
    lambda x: x.transpose(1, -1),
    lambda x: x[0, 0].t(),
    lambda x: x.mT,
    lambda x: x.movedim(1, -1),
    lambda x: x.swapaxes(0, 2),
]


def test_views_and_permutes(tmp_path):
    check_module(Fn(*FNS_VIEWS_AND_PERMUTES), (x4,), tmp_path)


FNS_EXPAND_SQUEEZE_UNSQUEEZE = [
    lambda x: x[:, :1].expand(2, 3, 4, 5),
    lambda x: x[:, :, :1].expand(-1, -1, 4, -1),
    lambda x: x[0, :1].expand(7, 3, 4, 5),        # new leading dims
    lambda x: x[:1, :1].expand_as(x),
    lambda x: torch.broadcast_to(x[:, :, :, :1], (2, 3, 4, 6)),
    lambda x: x[:, :1].squeeze(1),
    lambda x: x[:1, :, :1].squeeze(),
    lambda x: x[:1, :, :1].squeeze((0, 1, 2)),
    lambda x: x.unsqueeze(0).unsqueeze(-1).unsqueeze(3),
    lambda x: x[:, None, :, None],
]


def test_expand_squeeze_unsqueeze(tmp_path):
    check_module(Fn(*FNS_EXPAND_SQUEEZE_UNSQUEEZE), (x4,), tmp_path)


def test_expand_is_not_folded_into_a_big_constant(tmp_path):
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("row", torch.arange(64.0))

        def forward(self, x):
            return self.row.expand(x.shape[0], 64, 64), x.transpose(0, 1)
    m = check_module(M(), (torch.randn(3, 2),), tmp_path)
    assert "expand" in op_types(m)
    assert all(w.size <= 64 * 2 for w in m.program.weights.values())


FNS_CAT_AND_STACK = [
    lambda x: torch.cat([x, x[:, :1], x], 1),
    lambda x: torch.cat([x, x], -1),
    lambda x: torch.cat([x], 0),
    lambda x: torch.cat([x.flatten(), torch.zeros(0)]),
    lambda x: torch.cat([x, torch.zeros(0)], 2),      # legacy: (0,) tensors are skipped
    lambda x: torch.stack([x, x, x], 0),
    lambda x: torch.stack([x, x], -1),
    lambda x: torch.stack([x[0], x[1]], 2),
    lambda x: torch.hstack([x, x]),
]


def test_cat_and_stack(tmp_path):
    check_module(Fn(*FNS_CAT_AND_STACK), (x4,), tmp_path)


def test_cat_promotes_dtypes(tmp_path):
    check_module(Fn(lambda x, i: torch.cat([x, i], 1)), (torch.randn(2, 3), torch.arange(4).view(2, 2)), tmp_path)


FNS_SPLIT_CHUNK_UNBIND = [
    lambda x: x.split(2, dim=1),
    lambda x: x.split([1, 3, 1], dim=-1),
    lambda x: x.split(5, dim=-1),                 # one piece
    lambda x: x.chunk(2, dim=-1),
    lambda x: x.chunk(3, dim=1),
    lambda x: x.tensor_split(3, dim=2),
    lambda x: x.unbind(1),
    lambda x: x.unbind(-1)[2],
    lambda x: x[:1].unbind(0),
    lambda x: list(x.split(1, 0)),
]


def test_split_chunk_unbind(tmp_path):
    check_module(Fn(*FNS_SPLIT_CHUNK_UNBIND), (x4,), tmp_path)


FNS_SLICE_SELECT_NARROW = [
    lambda x: x[..., 1:, ::2, -3:-1],
    lambda x: x[:, 1:100],
    lambda x: x[:, -100:2],
    lambda x: x[:, 2:1],                          # empty
    lambda x: x[1:, :, 1::3],
    lambda x: x[:, -1],
    lambda x: x[-1, :, 0, -2],
    lambda x: x[1, 2, 3, 4],                      # 0-d
    lambda x: x.narrow(2, 1, 2),
    lambda x: x.narrow(-1, -3, 2),
    lambda x: x.select(3, -5),
]


def test_slice_select_narrow(tmp_path):
    check_module(Fn(*FNS_SLICE_SELECT_NARROW), (x4,), tmp_path)


FNS_REPEAT_FLIP_ROLL_UNFOLD = [
    lambda x: x.repeat(1, 2, 1, 3),
    lambda x: x.repeat(2, 1, 1, 1, 1),
    lambda x: x.repeat(1, 1, 1, 1),
    lambda x: x.tile((2,)),
    lambda x: x.repeat_interleave(2, dim=1),
    lambda x: x.flip(1, -1),
    lambda x: x.flip(0),
    lambda x: x.fliplr(),
    lambda x: x.roll(1, 2),
    lambda x: x.roll((2, -1), (1, 3)),
    lambda x: x.roll(7),
    lambda x: x.unfold(3, 2, 1),
    lambda x: x.unfold(1, 2, 2),
]


def test_repeat_flip_roll_unfold(tmp_path):
    check_module(Fn(*FNS_REPEAT_FLIP_ROLL_UNFOLD), (x4,), tmp_path)


PADS_4D = [
    ((1, 2), "constant", 0.0), ((1, 2, 0, 1), "constant", -1.5), ((1, 1, 1, 1, 1, 1), "constant", 0.0),
    ((-1, 2, 0, -2), "constant", 3.0), ((1, 2, 0, 1), "reflect", None), ((2, 1, 3, 0), "replicate", None),
    ((1, 2, 0, 1), "circular", None), ((0, 0), "constant", 0.0), ((1, 1, 1, 1, 0, 0, 1, 0), "constant", float("-inf")),
]


def _pad(pad, mode, value=None):
    return lambda x: F.pad(x, pad, mode=mode, **({} if value is None else {"value": value}))


def test_pad(tmp_path):
    m = check_module(Fn(*[_pad(*p) for p in PADS_4D]), (x4,), tmp_path)
    # reflect/replicate/circular stay whole instead of decomposing into index gathers
    assert sorted(set(op_types(m)) - {"identity"}) == ["pad"]
    assert op_types(m).count("pad") == len(PADS_4D) - 1


def test_pad_1d_3d_and_modules(tmp_path):
    modes = ["reflect", "replicate", "circular"]
    check_module(Fn(*[_pad((2, 1), mode) for mode in modes], _pad((1, 3), "constant", 2.0)),
                 (torch.randn(2, 3, 6),), tmp_path)
    check_module(Fn(*[_pad((1, 0, 0, 1, 1, 1), mode) for mode in modes]), (torch.randn(1, 2, 3, 4, 5),), tmp_path)
    m = nn.Sequential(nn.ZeroPad2d((1, 0, 2, 1)), nn.ReflectionPad2d(1), nn.ReplicationPad2d((0, 2, 1, 0)),
                      nn.ConstantPad2d(1, 3.5), nn.CircularPad2d(1))
    check_module(m, (x4,), tmp_path)


def test_pad_integer_tensor(tmp_path):
    check_module(Fn(lambda i: F.pad(i, (1, 1), value=-1)), (torch.arange(6).view(2, 3),), tmp_path)


def test_copy_into_slice_and_identity_ops(tmp_path):
    def fn(x):
        y = x.clone()
        y[:, 1] = x[:, 0]
        y[..., 1:3] = x[..., :2]
        return y.detach().contiguous()
    check_module(Fn(fn), (x4,), tmp_path)


def test_pixel_shuffle(tmp_path):
    check_module(nn.Sequential(nn.PixelShuffle(2), nn.PixelUnshuffle(2)), (torch.randn(1, 8, 3, 4),), tmp_path)


def _check_program(ep, mod, inputs):
    m = pm.convert(ep)
    got = m.predict(dict(zip(m.input_names, [t.numpy() for t in inputs])))
    want = mod(*inputs)
    for g, w in zip(got.values(), want if isinstance(want, tuple) else (want,)):
        assert g.shape == tuple(w.shape) and g.dtype == w.numpy().dtype
        assert (g == w.numpy()).all()
    return m


DECOMPOSABLE = [
    lambda x: F.pad(x, (1, 2, 0, 1), mode="reflect"),
    lambda x: F.pad(x[0], (1, 1), mode="replicate"),
    lambda x: F.pad(x, (1, 2, 0, 1), mode="circular"),
    lambda x: F.pad(x, (1, 2), value=0.5),
    lambda x: x.roll(1, 2),
    lambda x: x.repeat_interleave(2, dim=1),
    lambda x: torch.stack([x, x], 1),
    lambda x: x.unbind(1),
    lambda x: x[:1].squeeze(),
    lambda x: x.tile(2),
    lambda x: torch.empty_like(x).zero_(),
    lambda x: x.triu(1),
]


def test_already_decomposed_programs_convert():
    """Programs the user already decomposed to core ATen (nothing kept whole) still convert."""
    mod = Fn(*DECOMPOSABLE)
    ep = torch.export.export(mod, (x4,)).run_decompositions(torch.export.default_decompositions())
    targets = {str(n.target) for n in ep.graph.nodes if n.op == "call_function"}
    assert {"aten.constant_pad_nd.default", "aten.index.Tensor", "aten.empty_permuted.default"} <= targets
    _check_program(ep, mod, (x4,))


def test_pad_ops_of_a_custom_decomposition():
    """With aten.pad decomposed but the pad kernels kept, reflection/replication/circular ops remain."""
    mod = Fn(*DECOMPOSABLE[:3], lambda x: F.pad(x, (1, 1, 2, 0, 1, 1), mode="replicate"),
             lambda x: F.pad(x[0], (2, 1), mode="reflect"), lambda x: F.pad(x, (1, 1, 2, 0), mode="replicate"),
             lambda x: F.pad(x, (1, 1, 2, 0, 1, 1), mode="reflect"))
    table = torch.export.default_decompositions()
    for name in ("reflection_pad1d", "reflection_pad2d", "reflection_pad3d", "replication_pad1d",
                 "replication_pad2d", "replication_pad3d", "_pad_circular"):
        table.pop(getattr(torch.ops.aten, name).default, None)
    ep = torch.export.export(mod, (x4,)).run_decompositions(table)
    targets = {str(n.target) for n in ep.graph.nodes if n.op == "call_function"}
    assert {"aten.reflection_pad2d.default", "aten.replication_pad1d.default", "aten.reflection_pad1d.default",
            "aten._pad_circular.default", "aten.replication_pad3d.default", "aten.replication_pad2d.default",
            "aten.reflection_pad3d.default"} <= targets
    _check_program(ep, mod, (x4,))


def test_copy_variants_of_view_ops():
    """The *_copy forms of view ops (view-free pipelines) lower like the views themselves."""
    mod = Fn(lambda x: x.view(6, 20), lambda x: x.permute(0, 2, 1, 3), lambda x: x[:, 1:3],
             lambda x: x[:, 1], lambda x: x.split(2, 1), lambda x: x.unbind(0))
    ep = torch.export.export(mod, (x4,))
    copies = {"aten.view.default": torch.ops.aten.view_copy.default,
              "aten.permute.default": torch.ops.aten.permute_copy.default,
              "aten.slice.Tensor": torch.ops.aten.slice_copy.Tensor,
              "aten.select.int": torch.ops.aten.select_copy.int,
              "aten.split.Tensor": torch.ops.aten.split_copy.Tensor,
              "aten.unbind.int": torch.ops.aten.unbind_copy.int}
    for n in ep.graph.nodes:
        if n.op == "call_function" and str(n.target) in copies:
            n.target = copies[str(n.target)]
    ep.graph_module.recompile()
    targets = {str(n.target) for n in ep.graph.nodes if n.op == "call_function"}
    assert targets == {str(t) for t in copies.values()} | {"<built-in function getitem>"}
    _check_program(ep, mod, (x4,))


def test_symbolic_batch_passes_through_shape_ops():
    from pocketml.frontend.torch.builder import Builder, Var
    from pocketml.frontend.torch.lowerings import shape as S
    from pocketml.ir.types import DType, TensorType
    b = Builder({})
    x = Var("x", TensorType(DType.float32, ("b", "s", 8)))
    assert S.unsqueeze(b, x, 1).shape == ("b", 1, "s", 8)
    assert S.squeeze_axes(b, S.unsqueeze(b, x, -1), [-1]).shape == ("b", "s", 8)
    assert S.slice_axis(b, x, 1, 0, None) is x
    assert S.slice_axis(b, x, 2, 2, 6).shape == ("b", "s", 4)
    assert S.select(b, x, 1, -1).shape == ("b", 8)
    assert S.permute(b, x, [1, 0, 2]).shape == ("s", "b", 8)
    assert S.expand(b, S.unsqueeze(b, x, 1), [-1, 4, -1, -1]).shape == ("b", 4, "s", 8)
    assert S.cat(b, [x, x], -1).shape == ("b", "s", 16)
    assert S.pad(b, x, [1, 1], "constant").shape == ("b", "s", 10)
