"""Compressed-weight ops: inferred types against computed ones, results against the formats
they are defined by, and joint (chained) encodings run as programs through a saved package."""
import numpy as np
import pytest

import pocketml as pm
from helpers import infer, run
from pocketml import package
from pocketml.compress.palettize import palettize
from pocketml.compress.prune import prune_magnitude, prune_nm
from pocketml.compress.quantize import quantize
from pocketml.formats import densify, depalettize, dequantize, pack_bits, pack_quantized, sparsify
from pocketml.ir import DType, Function, Op, Program, TensorType, Value, get_op, verify
from pocketml.passes.const_fold import fold_constants


@pytest.mark.parametrize("nbits", [1, 2, 3, 4, 5, 6, 7, 8])
@pytest.mark.parametrize("config", [
    dict(),
    dict(granularity="per_grouped_channel", group_size=2),
    dict(cluster_dim=2),
    dict(cluster_dim=2, axis=1, granularity="per_grouped_channel", group_size=4),
])
def test_lut_to_dense_is_depalettize(nbits, config):
    w = np.random.default_rng(nbits).standard_normal((4, 8, 3)).astype(np.float32)
    p = palettize(w, nbits, **config)
    packed = pack_bits(p.indices, nbits)
    out = run("lut_to_dense", [packed, p.lut], nbits=nbits, shape=list(w.shape), vector_axis=p.vector_axis)
    np.testing.assert_array_equal(out, depalettize(p.indices, p.lut, None, p.vector_axis))
    half = run("lut_to_dense", [packed, p.lut.astype(np.float16)], nbits=nbits, shape=list(w.shape),
               vector_axis=p.vector_axis)
    assert half.dtype == np.float16


@pytest.mark.parametrize("types, attrs", [
    ([("uint8", [3]), ("float32", [1, 4, 1])], dict(nbits=2, shape=[3, 4])),  # lut rank
    ([("uint8", [3]), ("float32", [1, 1, 1, 8, 1])], dict(nbits=2, shape=[3, 4])),  # 8 != 2**2
    ([("uint8", [4]), ("float32", [1, 1, 4, 1])], dict(nbits=2, shape=[3, 4])),  # 4 bytes, 3 needed
    ([("int8", [3]), ("float32", [1, 1, 4, 1])], dict(nbits=2, shape=[3, 4])),
    ([("uint8", [3]), ("float32", [2, 1, 4, 1])], dict(nbits=2, shape=[3, 4])),  # 2 groups in 3
    ([("uint8", [1]), ("float32", [1, 1, 4, 3])], dict(nbits=2, shape=[4, 3])),  # cluster_dim 3 in 4
    ([("uint8", [3]), ("int8", [1, 1, 4, 1])], dict(nbits=2, shape=[3, 4])),
    ([("uint8", [3]), ("float32", [1, 1, 4, 1])], dict(nbits=9, shape=[3, 4])),
    ([("uint8", [3]), ("float32", [1, 1, 4, 1])], dict(nbits=2, shape=[3, 4], vector_axis=2)),
])
def test_lut_to_dense_infer_rejects(types, attrs):
    with pytest.raises(ValueError):
        infer("lut_to_dense", types, **attrs)


def test_lut_to_dense_infer():
    assert infer("lut_to_dense", [("uint8", [2]), ("float16", [2, 1, 4, 2])], nbits=2, shape=[4, 3]) == \
        [TensorType(DType.float16, (4, 3))]
    assert not get_op("lut_to_dense").const_foldable


@pytest.mark.parametrize("dtype", ["int8", "uint8", "int4", "uint4"])
@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("granularity", ["per_tensor", "per_channel", "per_block"])
def test_dequantize_op_is_dequantize(dtype, symmetric, granularity):
    w = np.random.default_rng(3).standard_normal((6, 8, 2)).astype(np.float32)
    q = quantize(w, dtype, symmetric, granularity, block_size=4)
    data = pack_quantized(q.data, dtype)
    inputs = [data, q.scale, q.zero_point]
    out = run("dequantize", inputs, dtype=dtype, shape=list(w.shape))
    np.testing.assert_array_equal(out, dequantize(q.data, q.scale, q.zero_point))
    half = run("dequantize", [data, q.scale.astype(np.float16), q.zero_point], dtype=dtype, shape=list(w.shape))
    assert half.dtype == np.float16
    if q.zero_point is not None:  # a float zero point is accepted too
        f = run("dequantize", [data, q.scale, q.zero_point.astype(np.float32)], dtype=dtype, shape=list(w.shape))
        np.testing.assert_array_equal(f, out)


@pytest.mark.parametrize("types, attrs", [
    ([("int8", [4, 6]), ("float32", [4, 1])], dict(dtype="uint8", shape=[4, 6])),  # wrong storage
    ([("int8", [4, 5]), ("float32", [4, 1])], dict(dtype="int8", shape=[4, 6])),
    ([("int8", [4, 6]), ("float32", [3, 1])], dict(dtype="int8", shape=[4, 6])),  # 3 does not divide 4
    ([("int8", [4, 6]), ("float32", [4])], dict(dtype="int8", shape=[4, 6])),  # rank
    ([("int8", [4, 6]), ("int32", [4, 1])], dict(dtype="int8", shape=[4, 6])),
    ([("int8", [24]), ("float32", [4, 1])], dict(dtype="int4", shape=[4, 6])),  # 4-bit data is packed
    ([("uint8", [13]), ("float32", [4, 1])], dict(dtype="int4", shape=[4, 6])),  # 12 bytes needed
    ([("int8", [4, 6]), ("float32", [4, 1])], dict(dtype="int2", shape=[4, 6])),
    ([("int8", [4, 6]), ("float32", [4, 1]), ("uint8", [4, 1])], dict(dtype="int8", shape=[4, 6])),
    ([("int8", [4, 6]), ("float32", [4, 1]), ("int8", [1, 1])], dict(dtype="int8", shape=[4, 6])),
])
def test_dequantize_infer_rejects(types, attrs):
    with pytest.raises(ValueError):
        infer("dequantize", types, **attrs)


def test_dequantize_zero_point_may_be_left_out():
    q = quantize(np.arange(-6, 6, dtype=np.float32).reshape(3, 4), "int8")
    out = run("dequantize", [q.data, q.scale], dtype="int8", shape=[3, 4])
    np.testing.assert_array_equal(out, dequantize(q.data, q.scale))
    assert not any(get_op(n).const_foldable for n in ("lut_to_dense", "dequantize", "sparse_to_dense"))


def test_dequantize_infer_packed_4bit():
    assert infer("dequantize", [("uint8", [12]), ("float16", [4, 2])], dtype="uint4", shape=[4, 6]) == \
        [TensorType(DType.float16, (4, 6))]


def test_sparse_to_dense_is_densify():
    w = np.random.default_rng(4).standard_normal((5, 9)).astype(np.float32)
    s = sparsify(w, prune_nm(w, 1, 3))
    out = run("sparse_to_dense", [s.mask_packed, s.values], shape=[5, 9])
    np.testing.assert_array_equal(out, densify(s.mask_packed, s.values, s.shape))
    assert run("sparse_to_dense", [s.mask_packed, s.values.astype(np.float16)], shape=[5, 9]).dtype == np.float16
    with pytest.raises(ValueError):
        infer("sparse_to_dense", [("uint8", [5]), ("float32", [30])], shape=[5, 9])  # 6 bytes needed
    with pytest.raises(ValueError):
        infer("sparse_to_dense", [("uint8", [6]), ("float32", [30, 1])], shape=[5, 9])
    with pytest.raises(ValueError):
        run("sparse_to_dense", [s.mask_packed, s.values[:-1]], shape=[5, 9])  # nnz mismatch at run time


# ---------------------------------------------------------------------------------------------
# joint encodings as programs


def const(name, a):
    return Op("const", [], [Value(name, TensorType.of(a))], {"weight": name})


def linear_program(weight_ops, weights, w_value, out_features, in_features):
    x = Value("x", TensorType(DType.float32, (2, in_features)))
    ops = [*(const(k, v) for k, v in weights.items()), *weight_ops,
           Op("linear", ["x", w_value, None], [Value("y", TensorType(DType.float32, (2, out_features)))])]
    return Program({"main": Function("main", [x], ops, ["y"])}, dict(weights))


def check_program(program, dense_weight, tmp_path):
    verify(program)
    x = np.random.default_rng(0).standard_normal((2, dense_weight.shape[1])).astype(np.float32)
    want = x @ dense_weight.T
    got = pm.Model(program).predict({"x": x})["y"]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    path = tmp_path / "joint.pocket"
    package.write(path, program, {})
    loaded, _ = package.read(path)
    np.testing.assert_array_equal(pm.Model(loaded).predict({"x": x})["y"], got)
    kept = fold_constants(loaded)  # compressed ops survive constant folding
    assert {op.type for op in kept.main.ops} & {"lut_to_dense", "dequantize", "sparse_to_dense"}
    return got


def test_sparse_values_from_a_palettized_stream(tmp_path):
    rng = np.random.default_rng(5)
    w = rng.standard_normal((8, 16)).astype(np.float32)
    mask = prune_nm(w, 2, 4)
    s = sparsify(w, mask)
    nnz = s.values.size
    p = palettize(s.values, 3)
    weights = {"mask": s.mask_packed, "idx": pack_bits(p.indices, 3), "lut": p.lut}
    ops = [Op("lut_to_dense", ["idx", "lut"], [Value("vals", TensorType(DType.float32, (nnz,)))],
              {"nbits": 3, "shape": [nnz]}),
           Op("sparse_to_dense", ["mask", "vals"], [Value("w", TensorType(DType.float32, (8, 16)))],
              {"shape": [8, 16]})]
    dense = densify(s.mask_packed, depalettize(p.indices, p.lut), s.shape)
    assert np.all(dense[~mask] == 0)
    check_program(linear_program(ops, weights, "w", 8, 16), dense, tmp_path)


def test_sparse_values_from_quantized_int4(tmp_path):
    rng = np.random.default_rng(6)
    w = rng.standard_normal((8, 16)).astype(np.float32)
    s = sparsify(w, prune_magnitude(w, 0.5))
    nnz = s.values.size
    q = quantize(s.values, "int4", symmetric=False, granularity="per_tensor")
    weights = {"mask": s.mask_packed, "q": pack_quantized(q.data, "int4"), "qs": q.scale,
               "qz": q.zero_point}
    ops = [Op("dequantize", ["q", "qs", "qz"], [Value("vals", TensorType(DType.float32, (nnz,)))],
              {"dtype": "int4", "shape": [nnz]}),
           Op("sparse_to_dense", ["mask", "vals"], [Value("w", TensorType(DType.float32, (8, 16)))],
              {"shape": [8, 16]})]
    dense = densify(s.mask_packed, dequantize(q.data, q.scale, q.zero_point), s.shape)
    check_program(linear_program(ops, weights, "w", 8, 16), dense, tmp_path)


def test_palettized_weight_with_an_int8_lut(tmp_path):
    rng = np.random.default_rng(7)
    w = rng.standard_normal((8, 12)).astype(np.float32)
    p = palettize(w, 4, granularity="per_grouped_channel", group_size=4)
    lq = quantize(p.lut, "int8", symmetric=True, granularity="per_channel", axis=0)
    weights = {"idx": pack_bits(p.indices, 4), "lq": lq.data, "ls": lq.scale}
    ops = [Op("dequantize", ["lq", "ls", None], [Value("lut", TensorType(DType.float32, p.lut.shape))],
              {"dtype": "int8", "shape": list(p.lut.shape)}),
           Op("lut_to_dense", ["idx", "lut"], [Value("w", TensorType(DType.float32, (8, 12)))],
              {"nbits": 4, "shape": [8, 12]})]
    lut = dequantize(lq.data, lq.scale)
    dense = depalettize(p.indices, lut)
    assert np.abs(dense - depalettize(p.indices, p.lut)).max() <= np.abs(p.lut).max() / 254 * 1.001
    check_program(linear_program(ops, weights, "w", 8, 12), dense, tmp_path)


def test_vector_palettized_weight_with_per_channel_scale(tmp_path):
    rng = np.random.default_rng(8)
    w = (rng.standard_normal((8, 6)) * rng.random((8, 1)) * 10).astype(np.float32)
    p = palettize(w, 2, cluster_dim=2, per_channel_scale=True)
    weights = {"idx": pack_bits(p.indices, 2), "lut": p.lut, "scale": p.scale}
    ops = [Op("lut_to_dense", ["idx", "lut"], [Value("wn", TensorType(DType.float32, (8, 6)))],
              {"nbits": 2, "shape": [8, 6], "vector_axis": 0}),
           Op("mul", ["wn", "scale"], [Value("w", TensorType(DType.float32, (8, 6)))])]
    check_program(linear_program(ops, weights, "w", 8, 6), depalettize(p.indices, p.lut, p.scale), tmp_path)


def test_fake_quantize_is_8_bit_rounding():
    x = np.array([-2.0, -0.26, -0.25, -0.05, 0.0, 0.05, 0.15, 0.25, 31.75, 40.0, np.nan], np.float32)
    out = run("fake_quantize", [x], scale=0.25)  # int8: [-127, 127] steps of 0.25, half to even
    np.testing.assert_array_equal(out[:-1], [-2.0, -0.25, -0.25, -0.0, 0.0, 0.0, 0.25, 0.25, 31.75, 31.75])
    assert np.isnan(out[-1]) and out.dtype == np.float32
    out = run("fake_quantize", [x[:-1]], scale=0.25, zero_point=8)  # uint8: [-8, 247] steps
    np.testing.assert_array_equal(out, [-2.0, -0.25, -0.25, -0.0, 0.0, 0.0, 0.25, 0.25, 31.75, 40.0])
    np.testing.assert_array_equal(run("fake_quantize", [np.float32([-5.0, 70.0])], scale=0.25, zero_point=8),
                                  [-2.0, 61.75])
    half = run("fake_quantize", [x[:4].astype(np.float16)], scale=0.25)
    assert half.dtype == np.float16 and half.tolist() == [-2.0, -0.25, -0.25, -0.0]
    for attrs in (dict(scale=0), dict(scale=-1.0), dict(scale=float("inf")), dict(scale=True),
                  dict(scale=0.1, zero_point=256), dict(scale=0.1, zero_point=1.5)):
        with pytest.raises(ValueError):
            infer("fake_quantize", [("float32", [3])], **attrs)
    with pytest.raises(ValueError):
        infer("fake_quantize", [("int32", [3])], scale=0.1)
