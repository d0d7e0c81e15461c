"""_native.PackedLinear (src/native/kernels/linear) against the NumPy definition of every packed
format (compress/numerics: pack_bits / unpack_bits, pack_quantized / unpack_quantized,
dequantize, depalettize): gemm on the SIMD and the portable kernels (the int8-activation path on
every instruction set the CPU has: AVX-512 VNNI, AVX2), 1 and 2 threads, awkward shapes; rows
exactly; bad inputs raise, never crash."""

import os
import subprocess
import sys
import threading

import numpy as np
import pytest

from pocketml import _native
from pocketml.compress import numerics as N

PackedLinear = _native.PackedLinear

# (N, K): tails of every length, odd K (4-bit rows starting mid-byte), K-blocks of the tile
# microkernel (K = 600), several row strips (N = 64), one row, one column.
SHAPES = [(1, 1), (3, 7), (17, 33), (64, 96), (5, 34), (16, 40), (40, 600), (3, 64)]
MS = [0, 1, 2, 5, 33]
QDTYPES = ["int8", "uint8", "int4", "uint4"]


@pytest.fixture(autouse=True)
def _simd_restored():
    yield
    _native.set_simd(True)


def divisor(n, prefer):
    """The first of `prefer` dividing n (1 if none)."""
    return next((d for d in prefer if n % d == 0), 1)


def grids(n, k):
    """Parameter grids [G0, G1] over an [n, k] weight: per tensor, per channel, per block,
    grouped rows and columns."""
    bs = divisor(k, [32, 16, 8, 11, 7, 4, 2, 1])
    rows = divisor(n, [16, 8, 4, 17, 3, 2, 1])
    cols = divisor(k, [48, 16, 33, 7, 2, 1])
    return {"tensor": (1, 1), "channel": (n, 1), "block": (n, k // bs),
            "grouped": (n // rows, k // cols)}


def check_gemm(p, W, rng, ms=MS):
    """p.gemm against x @ W.T + b for every M, both kernel sets, 1 and 2 threads."""
    n, k = W.shape
    assert p.shape == (n, k)
    W64 = W.astype(np.float64)
    for m in ms:
        x = rng.standard_normal((m, k)).astype(np.float32)
        b = rng.standard_normal(n).astype(np.float32) if m % 2 else None
        want = x.astype(np.float64) @ W64.T + (0 if b is None else b)
        mag = np.abs(x).astype(np.float64) @ np.abs(W64).T + (0 if b is None else np.abs(b))
        for simd in (True, False):
            _native.set_simd(simd)
            for threads in (1, 2):
                out = np.full((m, n), np.nan, np.float32)
                p.gemm(x, out, b, threads=threads)
                err = np.abs(out - want)
                assert np.all(err <= 1e-5 * mag + 1e-30), (
                    f"{p.format} {n}x{k} M={m} simd={simd} threads={threads}: "
                    f"max rel error {np.max(err / (mag + 1e-30))}")
    _native.set_simd(True)


def check_rows(p, W, rng):
    n, k = W.shape
    ids = rng.integers(0, n, 7)
    for simd in (True, False):
        _native.set_simd(simd)
        out = np.full((7, k), np.nan, np.float32)
        p.rows(ids, out)
        np.testing.assert_array_equal(out, W[ids])
    _native.set_simd(True)


# ---------------------------------------------------------------------------------------------
# formats

@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_dense(dtype):
    rng = np.random.default_rng(0)
    for n, k in SHAPES:
        w = rng.standard_normal((n, k)).astype(dtype)
        p = PackedLinear.dense(w)
        assert p.format == ("f32" if dtype == np.float32 else "f16")
        assert p.nbytes == w.nbytes
        check_gemm(p, w.astype(np.float32), rng)
        check_rows(p, w.astype(np.float32), rng)


def quantized(rng, n, k, dtype, grid, scale_dtype, zp_kind):
    nbits, signed = N.QUANT_DTYPES[dtype]
    lo, hi = (-(1 << (nbits - 1)), (1 << (nbits - 1)) - 1) if signed else (0, (1 << nbits) - 1)
    q = rng.integers(lo, hi + 1, (n, k)).astype(N.storage_dtype(dtype))
    scale = rng.uniform(0.01, 0.1, grid).astype(scale_dtype)
    zp = None
    if zp_kind == "int":
        zp = rng.integers(lo, hi + 1, grid).astype(N.storage_dtype(dtype))
    elif zp_kind == "float":
        zp = rng.uniform(lo, hi, grid).astype(np.float32)
    elif zp_kind == "float16":
        zp = rng.uniform(lo, hi, grid).astype(np.float16)
    packed = N.pack_quantized(q, dtype)
    # the definition, in float32 (the IR op rounds to float16 after, with a float16 scale)
    W = N.dequantize(N.unpack_quantized(packed, dtype, (n, k)), scale.astype(np.float32), zp)
    return PackedLinear.quantized(packed, scale, zp, dtype, n, k), W.astype(np.float32)


@pytest.mark.parametrize("dtype", QDTYPES)
@pytest.mark.parametrize("zp_kind", [None, "int", "float", "float16"])
def test_quantized(dtype, zp_kind):
    rng = np.random.default_rng(hash((dtype, zp_kind)) % 2**32)
    for i, (n, k) in enumerate(SHAPES):
        for j, (name, grid) in enumerate(grids(n, k).items()):
            scale_dtype = [np.float32, np.float16][(i + j) % 2]
            p, W = quantized(rng, n, k, dtype, grid, scale_dtype, zp_kind)
            check_gemm(p, W, rng, ms=MS if j % 2 == i % 2 else [1, 5])
            check_rows(p, W, rng)


def palettized(rng, n, k, nbits, grid, lut_dtype, row_scale):
    idx = rng.integers(0, 1 << nbits, (n, k))
    packed = N.pack_bits(idx, nbits)
    lut = rng.standard_normal(grid + (1 << nbits, 1)).astype(lut_dtype)
    rs = rng.uniform(0.5, 2, n).astype(np.float32) if row_scale else None
    W = N.depalettize(N.unpack_bits(packed, nbits, n * k).reshape(n, k), lut.astype(np.float32))
    if rs is not None:
        W = W * rs[:, None]
    return PackedLinear.lut(packed, lut, nbits, n, k, rs), W.astype(np.float32)


@pytest.mark.parametrize("nbits", range(1, 9))
def test_lut(nbits):
    rng = np.random.default_rng(nbits)
    for i, (n, k) in enumerate(SHAPES):
        for j, (name, grid) in enumerate(grids(n, k).items()):
            for lut_dtype in (np.float32, np.float16):
                row_scale = (i + j) % 3 == 0
                p, W = palettized(rng, n, k, nbits, grid, lut_dtype, row_scale)
                fast = nbits == 4 and lut_dtype == np.float32
                check_gemm(p, W, rng, ms=MS if fast or (i + j) % 2 else [1, 5])
                check_rows(p, W, rng)


def sparse_values(rng, nnz, kind):
    """A PackedLinear [1, nnz] of `kind` and its float32 values (the definition)."""
    if kind in ("f32", "f16"):
        v = rng.standard_normal((1, nnz)).astype(np.float32 if kind == "f32" else np.float16)
        return PackedLinear.dense(v), v.astype(np.float32)[0]
    if kind.startswith("lut"):
        p, V = palettized(rng, 1, nnz, int(kind[3:]), (1, 1), np.float16, False)
        return p, V[0]
    zp = "int" if kind.startswith("u") else None
    p, V = quantized(rng, 1, nnz, kind, (1, 1), np.float32, zp)
    return p, V[0]


@pytest.mark.parametrize("kind", ["f32", "f16", "int8", "uint8", "uint4", "lut3", "lut4", "lut8"])
def test_sparse(kind):
    """Pruned weights, alone and with their kept values quantized or palettized (the joint
    modes): densities from empty to full, masks starting mid-byte in odd rows (K odd)."""
    rng = np.random.default_rng(hash(("sparse", kind)) % 2**32)
    for i, (n, k) in enumerate(SHAPES):
        for density in (0.0, 0.1, 0.5, 1.0):
            mask = rng.random((n, k)) < density
            nnz = int(mask.sum())
            if nnz == 0 and kind != "f32":
                continue  # quantized / palettized values of no element: nothing to pack
            vp, vals = sparse_values(rng, max(nnz, 1), kind) if nnz else (
                PackedLinear.dense(np.zeros((1, 1), np.float32)), np.zeros(1, np.float32))
            if nnz == 0:  # a mask with no set bit and one value: refused below, then a real one
                with pytest.raises(ValueError, match="0 set bits but 1 values"):
                    PackedLinear.sparse(N.pack_bits(mask, 1), vp, n, k)
                continue
            W = np.zeros((n, k), np.float32)
            W[mask] = vals
            p = PackedLinear.sparse(N.pack_bits(mask, 1), vp, n, k)
            assert p.format == "sparse " + vp.format
            check_gemm(p, W, rng, ms=MS if (i + int(density * 10)) % 2 else [1, 5])
            check_rows(p, W, rng)


@pytest.mark.parametrize("kind", ["int8", "uint8"])
def test_fast_sparse_within_the_rounding_bound(kind):
    """exact=False on pruned rows of 8-bit codes with one scale (prune + int8 per tensor): the
    int8 path where the CPU has VBMI (pruned lanes as the code of a zero weight), else exactly;
    rows starting mid-byte (K not a multiple of 8) compute exactly."""
    rng = np.random.default_rng(hash(("fast sparse", kind)) % 2**32)
    for n, k in FAST_SHAPES:
        mask = rng.random((n, k)) < 0.4
        nnz = int(mask.sum())
        if nnz == 0:
            continue
        vp, vals = sparse_values(rng, nnz, kind)
        W = np.zeros((n, k), np.float32)
        W[mask] = vals
        check_fast(PackedLinear.sparse(N.pack_bits(mask, 1), vp, n, k), W, rng)


def test_sparse_bad_inputs_raise():
    rng = np.random.default_rng(0)
    mask = N.pack_bits(np.ones((4, 8), bool), 1)
    vp = PackedLinear.dense(np.ones((1, 32), np.float32))
    with pytest.raises(ValueError, match="mask has 4 bytes, 64 values of 1 bits need 8"):
        PackedLinear.sparse(mask, vp, 8, 8)
    with pytest.raises(ValueError, match="values must have shape \\[1, nnz\\]"):
        PackedLinear.sparse(mask, PackedLinear.dense(np.ones((2, 16), np.float32)), 4, 8)
    with pytest.raises(ValueError, match="32 set bits but 31 values"):
        PackedLinear.sparse(mask, PackedLinear.dense(np.ones((1, 31), np.float32)), 4, 8)
    p = PackedLinear.sparse(mask, vp, 4, 8)
    with pytest.raises(ValueError, match="values must not be sparse"):
        PackedLinear.sparse(N.pack_bits(np.ones((1, 32), bool), 1), p, 4, 8)
    x = rng.standard_normal((2, 8)).astype(np.float32)
    out = np.empty((2, 4), np.float32)
    p.gemm(x, out)
    np.testing.assert_allclose(out, np.repeat(x.sum(axis=1, keepdims=True), 4, axis=1), rtol=1e-6)


def test_simd_fast_paths_agree_with_the_portable_kernels_on_big_layers():
    """SmolLM2-like layers: both kernel sets against float64 NumPy, M = 1 and a prefill."""
    rng = np.random.default_rng(7)
    n, k = 96, 576
    layers = [quantized(rng, n, k, "int4", (n, k // 32), np.float16, None),
              quantized(rng, n, k, "uint4", (n, k // 32), np.float32, "int"),
              quantized(rng, n, k, "int8", (n, 1), np.float32, None),
              palettized(rng, n, k, 4, (1, 1), np.float32, False),
              palettized(rng, n, k, 4, (n // 16, 1), np.float16, True)]
    for p, W in layers:
        check_gemm(p, W, rng, ms=[1, 3, 64])


@pytest.mark.parametrize("level", ["avx512vnni", "avx2"])
def test_exact_gemm_register_tiles_and_panels(level):
    """The exact path's GEMM (x86_avx512.cpp where the CPU has AVX-512, else the AVX2 tile)
    against float64 NumPy: partial strips of 48 weight rows and register tiles of 8 activation
    rows, K in two panels (K > 1536), a quantized format through its decoder."""
    rng = np.random.default_rng(11)
    layers = []
    for n, k in [(47, 33), (49, 129), (97, 1600), (384, 384)]:
        w = rng.standard_normal((n, k)).astype(np.float32)
        layers.append((PackedLinear.dense(w), w))
    layers.append(quantized(rng, 50, 96, "int4", (50, 3), np.float32, "int"))
    for p, W in layers:
        n, k = W.shape
        W64 = W.astype(np.float64)
        for m in (2, 9, 67, 130):
            x = rng.standard_normal((m, k)).astype(np.float32)
            b = rng.standard_normal(n).astype(np.float32) if m % 2 else None
            want = x.astype(np.float64) @ W64.T + (0 if b is None else b)
            mag = np.abs(x).astype(np.float64) @ np.abs(W64).T + (0 if b is None else np.abs(b))
            for threads in (1, 2):
                _native.set_simd_level(level)
                out = np.full((m, n), np.nan, np.float32)
                p.gemm(x, out, b, threads=threads)
                assert np.all(np.abs(out - want) <= 1e-5 * mag + 1e-30), (level, n, k, m, threads)


@pytest.mark.parametrize("level", ["avx512vnni", "avx2"])
def test_a_residual_and_activation_after_the_gemm_equal_the_separate_ops_bit_for_bit(level):
    """gemm(residual=..., act=...) against gemm, + residual, then _native.activation, float32
    forms (exact=False) and the exact ones: the AVX-512 GEMM adds the residual and applies the
    float32 form to each register tile before storing it (partial strips and tiles, K in two
    panels), the rest after the GEMM."""
    rng = np.random.default_rng(12)
    for n, k, m in [(47, 33, 2), (97, 1600, 9), (130, 64, 67)]:
        w = (rng.standard_normal((n, k)) / np.sqrt(k) * 3).astype(np.float32)
        p = PackedLinear.dense(w)
        x = rng.standard_normal((m, k)).astype(np.float32)
        b = rng.standard_normal(n).astype(np.float32)
        r = rng.standard_normal((m, n)).astype(np.float32)
        for res, act in ((None, "gelu"), (None, "silu"), (r, None), (r, "gelu")):
            for exact in (False, True):
                _native.set_simd_level(level)
                plain, fused = np.empty((m, n), np.float32), np.empty((m, n), np.float32)
                p.gemm(x, plain, b, threads=2, exact=exact)
                if res is not None:
                    plain += res
                if act is not None:
                    _native.activation(act, plain, plain, 2, exact=exact)
                p.gemm(x, fused, b, threads=2, exact=exact, residual=res, act=act)
                what = f"{level} {n}x{k} m={m} residual={res is not None} {act} exact={exact}"
                np.testing.assert_array_equal(fused, plain, err_msg=what)


def test_simd_level():
    f = _native.cpu_features()
    assert set(f) == {"avx2", "fma", "f16c", "avx512vnni", "avx512vbmi", "neon",
                      "neon_dotprod"}
    assert _native.simd_level() in ("avx512vnni", "avx2", "neon", "generic")
    best = "avx512vnni" if f["avx512vnni"] else "avx2" if f["avx2"] else _native.simd_level()
    assert _native.simd_level() == best
    _native.set_simd_level("avx2")  # a cap: the AVX2 kernels on an AVX-512 CPU
    # (aarch64: base NEON, without the dot-product kernels)
    assert _native.simd_level() == ("avx2" if f["avx2"] else "neon" if "neon" in best else best)
    _native.set_simd_level("generic")
    assert _native.simd_level() == "generic"
    _native.set_simd_level("avx512vnni")
    assert _native.simd_level() == best
    _native.set_simd(False)
    assert _native.simd_level() == "generic"
    _native.set_simd(True)
    assert _native.simd_level() == best
    with pytest.raises(ValueError, match="level must be"):
        _native.set_simd_level("sse4")
    assert _native.simd_level() == best
    assert _native.default_threads() >= 1


@pytest.mark.parametrize("value", ["0", "generic", "avx2", "avx512vnni", "max"])
def test_simd_level_from_the_environment(value):
    """POCKETML_NATIVE_SIMD caps the instruction sets from the start ("0" as "generic"; a value
    that names none: no cap)."""
    f = _native.cpu_features()
    best = _native.simd_level()
    want = {"0": "generic", "generic": "generic",
            "avx2": "avx2" if f["avx2"] else "neon" if "neon" in best else best}
    code = "from pocketml import _native; print(_native.simd_level())"
    got = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True,
                         env={**os.environ, "POCKETML_NATIVE_SIMD": value}).stdout.strip()
    assert got == want.get(value, best)


def test_formats_and_sizes():
    rng = np.random.default_rng(1)
    p, _ = quantized(rng, 64, 96, "int4", (64, 3), np.float16, None)
    assert p.format == "int4 block32" and p.nbytes == 64 * 96 // 2 + 64 * 3 * 2
    p, _ = quantized(rng, 64, 96, "uint8", (64, 1), np.float32, "int")
    assert p.format == "uint8 channel zp" and p.nbytes == 64 * 96 + 64 * 4 + 64
    p, _ = palettized(rng, 64, 96, 4, (4, 1), np.float32, True)
    assert p.format == "lut4 g[4,1] rowscale" and p.nbytes == 64 * 96 // 2 + 4 * 16 * 4 + 64 * 4
    p, _ = palettized(rng, 3, 7, 3, (1, 1), np.float16, False)
    assert p.format == "lut3 g[1,1]" and p.nbytes == 8 + 16
    assert "PackedLinear(" in repr(p)


# ---------------------------------------------------------------------------------------------
# no copies: the weight is read from the caller's arrays, memory-mapped read-only ones too

def test_the_packed_arrays_are_referenced_not_copied(tmp_path):
    rng = np.random.default_rng(2)
    n, k = 8, 32
    idx = rng.integers(0, 16, (n, k))
    packed = N.pack_bits(idx, 4)
    lut = rng.standard_normal((1, 1, 16, 1)).astype(np.float32)
    p = PackedLinear.lut(packed, lut, 4, n, k)
    x = rng.standard_normal((1, k)).astype(np.float32)
    out = np.empty((1, n), np.float32)
    lut[:] = 0
    p.gemm(x, out)
    assert np.all(out == 0)
    del packed, lut  # the PackedLinear keeps them alive
    p.gemm(x, out)
    assert np.all(out == 0)

    path = tmp_path / "w.bin"
    w = rng.standard_normal((n, k)).astype(np.float16)
    w.tofile(path)
    mm = np.memmap(path, np.float16, "r", shape=(n, k))
    p = PackedLinear.dense(mm)
    p.gemm(x, out)
    np.testing.assert_allclose(out, x @ w.astype(np.float32).T, rtol=1e-5, atol=1e-5)


def test_concurrent_calls_from_python_threads():
    rng = np.random.default_rng(3)
    p, W = quantized(rng, 256, 128, "int4", (256, 4), np.float32, None)
    x = rng.standard_normal((9, 128)).astype(np.float32)
    want = x @ W.T
    errors = []

    def work():
        try:
            for m in (1, 9) * 20:
                out = np.empty((m, 256), np.float32)
                p.gemm(x[:m], out, threads=2)
                np.testing.assert_allclose(out, want[:m], rtol=1e-4, atol=1e-4)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    ts = [threading.Thread(target=work) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors, errors[0]


# ---------------------------------------------------------------------------------------------
# bad inputs

def test_bad_constructor_inputs_raise():
    f32 = np.zeros((4, 8), np.float32)
    with pytest.raises(TypeError, match="float32 or float16"):
        PackedLinear.dense(np.zeros((4, 8), np.int32))
    with pytest.raises(ValueError, match="rank 2"):
        PackedLinear.dense(np.zeros(8, np.float32))
    with pytest.raises(ValueError, match="C-contiguous"):
        PackedLinear.dense(np.zeros((4, 16), np.float32)[:, ::2])
    with pytest.raises(ValueError, match="C-contiguous"):
        PackedLinear.dense(np.asfortranarray(np.zeros((4, 8), np.float32)))
    with pytest.raises(ValueError, match="N must"):
        PackedLinear.dense(np.zeros((0, 8), np.float32))
    with pytest.raises(TypeError):
        PackedLinear.dense([[1.0, 2.0]])
    with pytest.raises(TypeError):
        PackedLinear()

    s = np.ones((4, 1), np.float32)
    q8 = np.zeros((4, 8), np.int8)
    q4 = np.zeros(16, np.uint8)
    with pytest.raises(ValueError, match="dtype must be one of"):
        PackedLinear.quantized(q8, s, None, "int3", 4, 8)
    with pytest.raises(TypeError, match="must be int8"):
        PackedLinear.quantized(q8.view(np.uint8), s, None, "int8", 4, 8)
    with pytest.raises(ValueError, match="shape"):
        PackedLinear.quantized(q8, s, None, "int8", 4, 9)
    with pytest.raises(ValueError, match="bytes"):
        PackedLinear.quantized(q4[:15], s, None, "int4", 4, 8)
    with pytest.raises(ValueError, match="rank 1"):
        PackedLinear.quantized(q4.reshape(4, 4), s, None, "int4", 4, 8)
    with pytest.raises(ValueError, match="divide"):
        PackedLinear.quantized(q4, np.ones((3, 1), np.float32), None, "int4", 4, 8)
    with pytest.raises(ValueError, match="divide"):
        PackedLinear.quantized(q4, np.ones((4, 3), np.float32), None, "int4", 4, 8)
    with pytest.raises(TypeError, match="scale must be"):
        PackedLinear.quantized(q4, s.astype(np.float64), None, "int4", 4, 8)
    with pytest.raises(ValueError, match="zero_point shape"):
        PackedLinear.quantized(q4, s, np.zeros((1, 1), np.int8), "int4", 4, 8)
    with pytest.raises(TypeError, match="zero_point must be"):
        PackedLinear.quantized(q4, s, np.zeros((4, 1), np.uint8), "int4", 4, 8)
    for bad in (0, -1, 2**31, 2**40):
        with pytest.raises((ValueError, TypeError, OverflowError)):
            PackedLinear.quantized(q4, s, None, "int4", bad, 8)
    with pytest.raises(ValueError, match="2\\*\\*40"):
        PackedLinear.quantized(q4, np.ones((1, 1), np.float32), None, "int4", 2**30, 2**30)

    idx = np.zeros(12, np.uint8)
    lut = np.zeros((1, 1, 8, 1), np.float32)
    with pytest.raises(ValueError, match="nbits"):
        PackedLinear.lut(idx, lut, 0, 4, 8)
    with pytest.raises(ValueError, match="nbits"):
        PackedLinear.lut(idx, lut, 9, 4, 8)
    with pytest.raises(ValueError, match="shape \\[G0, G1, 16, 1\\]"):
        PackedLinear.lut(np.zeros(16, np.uint8), lut, 4, 4, 8)
    with pytest.raises(ValueError, match="bytes"):
        PackedLinear.lut(idx[:11], lut, 3, 4, 8)
    with pytest.raises(ValueError, match="rank 4"):
        PackedLinear.lut(idx, lut[0], 3, 4, 8)
    with pytest.raises(ValueError, match="divide"):
        PackedLinear.lut(idx, np.zeros((3, 1, 8, 1), np.float32), 3, 4, 8)
    with pytest.raises(TypeError, match="uint8"):
        PackedLinear.lut(idx.view(np.int8), lut, 3, 4, 8)
    with pytest.raises(ValueError, match="row_scale"):
        PackedLinear.lut(idx, lut, 3, 4, 8, np.ones(3, np.float32))
    with pytest.raises(TypeError, match="row_scale"):
        PackedLinear.lut(idx, lut, 3, 4, 8, np.ones(4, np.float64))
    PackedLinear.lut(idx, lut, 3, 4, 8, np.ones((4, 1), np.float32))
    PackedLinear.dense(f32)


def test_bad_call_inputs_raise_and_write_nothing():
    rng = np.random.default_rng(4)
    p, W = quantized(rng, 4, 8, "int8", (4, 1), np.float32, None)
    x = np.ones((2, 8), np.float32)
    out = np.zeros((2, 4), np.float32)
    with pytest.raises(ValueError, match="x must have shape"):
        p.gemm(np.ones((2, 7), np.float32), out)
    with pytest.raises(TypeError, match="x must be float32"):
        p.gemm(x.astype(np.float64), out)
    with pytest.raises(ValueError, match="out must have shape"):
        p.gemm(x, np.zeros((3, 4), np.float32))
    with pytest.raises(TypeError, match="out must be float32"):
        p.gemm(x, np.zeros((2, 4), np.float64))
    with pytest.raises(ValueError, match="C-contiguous"):
        p.gemm(x, np.zeros((2, 8), np.float32)[:, ::2])
    with pytest.raises(ValueError, match="C-contiguous"):
        p.gemm(np.ones((2, 16), np.float32)[:, ::2], out)
    ro = np.zeros((2, 4), np.float32)
    ro.flags.writeable = False
    with pytest.raises(TypeError):
        p.gemm(x, ro)
    with pytest.raises(ValueError, match="bias must have shape"):
        p.gemm(x, out, np.ones(5, np.float32))
    with pytest.raises(TypeError, match="bias must be float32"):
        p.gemm(x, out, np.ones(4, np.float64))
    with pytest.raises(ValueError, match="threads"):
        p.gemm(x, out, threads=-1)
    buf = np.zeros(16, np.float32)
    with pytest.raises(ValueError, match="overlaps"):
        p.gemm(buf[:16].reshape(2, 8), buf[8:16].reshape(2, 4))
    assert np.all(out == 0)

    out = np.zeros((3, 8), np.float32)
    for ids in ([0, 1, 4], [0, -1, 2], [2**40, 0, 0]):
        with pytest.raises(ValueError, match=f"id {ids[1] if ids[1] < 0 else max(ids)}"):
            p.rows(np.array(ids, np.int64), out)
        assert np.all(out == 0)
    with pytest.raises(TypeError, match="ids must be int64"):
        p.rows(np.array([0, 1, 2], np.int32), out)
    with pytest.raises(ValueError, match="out must have shape"):
        p.rows(np.array([0, 1], np.int64), out)
    p.rows(np.zeros(0, np.int64), np.zeros((0, 8), np.float32))
    p.gemm(np.zeros((0, 8), np.float32), np.zeros((0, 4), np.float32))


# ---------------------------------------------------------------------------------------------
# exact=False: int8 activations (and int8 copies of 4-bit tables)

def fast_bound(W, x, lut_err=None):
    """A bound on |out - x @ W.T| of the int8-activation path, per output: each block of 32
    columns of x is rounded to int8 with step max|x_block| / 127, an error of at most half a step
    per element, which meets |W| (columns past the last whole block run exactly); lut_err [n]:
    the most any weight of row n moved when its table was rounded to int8 (half a step of the
    table's max |entry| / 127, times the row scale), which meets |x| (plus its rounding)."""
    n, k = W.shape
    body = k // 32 * 32
    xb = np.abs(x[:, :body]).reshape(x.shape[0], -1, 32).astype(np.float64)
    half = np.repeat(xb.max(axis=2) / 254, 32, axis=1)  # [M, body]
    bound = half @ np.abs(W[:, :body]).astype(np.float64).T
    if lut_err is not None:
        bound += (np.abs(x[:, :body]).astype(np.float64) + half).sum(axis=1, keepdims=True) * lut_err
    return bound


# The instruction sets of the int8-activation path on this CPU, best first; "generic" has none
# (exact=False computes exactly there).
FAST_LEVELS = (["avx512vnni"] if _native.cpu_features()["avx512vnni"] else []) + (
    ["avx2"] if _native.cpu_features()["avx2"] else []) + (
    ["neon-dotprod"] if _native.cpu_features()["neon_dotprod"] else []) + (
    ["neon"] if _native.cpu_features()["neon"] else []) + ["generic"]


# Activation rows: decode steps (the row-streaming kernels, up to kFAST_GEMV_MAX_M rows) and
# prefills (the blocked GEMM: register blocks of 3 (AVX2) and 6 (VNNI) rows, and what is left).
FAST_MS = (1, 3, 5, 17, 33, 128)
kFAST_GEMV_MAX_M = 3


def check_fast(p, W, rng, lut_err=None, ms=FAST_MS):
    """exact=False within the rounding bound on every instruction set and 1 and 2 threads; the
    int8 path of AVX-512 VNNI equal to AVX2's: 4-bit codes bit for bit (the same integer sums and
    float operations), 8-bit codes and tables up to float rounding (the decode-step kernels of
    VNNI take them as unsigned bytes, the offset back through the sums of the activations: float
    sums as large as |x| times the row's largest |W|; measured <= 7e-8 of that)."""
    n, k = W.shape
    W64 = W.astype(np.float64)
    for m in ms:
        x = rng.standard_normal((m, k)).astype(np.float32)
        x[:, ::7] *= 5  # outliers within blocks
        b = rng.standard_normal(n).astype(np.float32) if m % 2 else None
        want = x.astype(np.float64) @ W64.T + (0 if b is None else b)
        mag = np.abs(x).astype(np.float64) @ np.abs(W64).T + (0 if b is None else np.abs(b))
        bound = fast_bound(W, x, lut_err) + 1e-5 * mag + 1e-30
        same = 1e-6 * (np.abs(x).astype(np.float64).sum(axis=1, keepdims=True) *
                       np.abs(W64).max(axis=1) + mag) + 1e-30
        outs = {}
        for level in FAST_LEVELS:
            _native.set_simd_level(level)
            for threads in (1, 2):
                out = np.full((m, n), np.nan, np.float32)
                p.gemm(x, out, b, threads=threads, exact=False)
                err = np.abs(out - want)
                assert np.all(err <= bound), (
                    f"{p.format} {n}x{k} M={m} {level} threads={threads}: "
                    f"max error / bound {np.max(err / bound)}")
                outs.setdefault(level, out)
        if "avx512vnni" in outs and p.format.startswith(("int4", "uint4")):
            np.testing.assert_array_equal(outs["avx512vnni"], outs["avx2"],
                                          err_msg=f"{p.format} {n}x{k} M={m}")
        elif "avx512vnni" in outs and (p.format.startswith("lut4") or not p.format.startswith(("lut", "sparse"))):
            diff = np.abs(outs["avx512vnni"] - outs["avx2"])
            assert np.all(diff <= same), (
                f"{p.format} {n}x{k} M={m}: VNNI vs AVX2, max difference / bound "
                f"{np.max(diff / same)}")
    _native.set_simd(True)


# (N, K): one row, rows not a multiple of the 4 the decode kernels interleave nor of the 16 of a
# GEMM strip, blocks of 32 with tails (K = 40, 66, 70, 100), odd counts of blocks (K = 96, 160),
# a prefetching decode (N = 64, K = 576).
FAST_SHAPES = [(3, 7), (1, 40), (8, 40), (16, 70), (7, 100), (33, 96), (37, 96), (64, 576),
               (20, 1024), (19, 66), (50, 160)]


@pytest.mark.parametrize("dtype", QDTYPES)
@pytest.mark.parametrize("zp_kind", [None, "int", "float16"])
def test_fast_quantized_within_the_rounding_bound(dtype, zp_kind):
    rng = np.random.default_rng(hash(("fast", dtype, zp_kind)) % 2**32)
    for i, (n, k) in enumerate(FAST_SHAPES):
        if dtype.endswith("4") and k % 2:
            continue
        grids_ = {"channel": (n, 1), "tensor": (1, 1)}
        if k % 32 == 0:
            grids_["block32"] = (n, k // 32)
            if k % 64 == 0:
                grids_["block64"] = (n, k // 64)
        for j, grid in enumerate(grids_.values()):
            p, W = quantized(rng, n, k, dtype, grid, [np.float32, np.float16][(i + j) % 2], zp_kind)
            check_fast(p, W, rng)


@pytest.mark.parametrize("nbits", range(1, 9))
@pytest.mark.parametrize("lut_dtype", [np.float32, np.float16])
def test_fast_lut_within_the_rounding_bound(nbits, lut_dtype):
    """Tables of every width: 4 bits on every instruction set's int8 path, the others on
    AVX-512 VBMI's (elsewhere exactly); rows starting mid-byte (K * nbits not a multiple of 8)
    compute exactly."""
    rng = np.random.default_rng(11 + nbits)
    for i, (n, k) in enumerate(FAST_SHAPES):
        if nbits == 4 and k % 2:
            continue
        for grid in [(1, 1), (n // divisor(n, [16, 8, 4, 1]), 1), (n, 1)]:
            for row_scale in (False, True):
                idx = rng.integers(0, 1 << nbits, (n, k))
                lut = rng.standard_normal(grid + (1 << nbits, 1)).astype(lut_dtype)
                rs = rng.uniform(0.5, 2, n).astype(np.float32) if row_scale else np.ones(n)
                W = (N.depalettize(idx, lut.astype(np.float32)) * rs[:, None]).astype(np.float32)
                p = PackedLinear.lut(N.pack_bits(idx, nbits), lut, nbits, n, k,
                                     rs.astype(np.float32) if row_scale else None)
                # per row: half a step of its table's int8 copy, times the row scale
                tmax = np.repeat(np.abs(lut.astype(np.float64)).max(axis=(1, 2, 3)), n // grid[0])
                check_fast(p, W, rng, lut_err=tmax * rs / 254,
                           ms=FAST_MS if (i + row_scale) % 2 == 0 else (1, 33))


def test_fast_falls_back_to_exact_where_there_is_no_int8_path():
    rng = np.random.default_rng(3)
    n, k = 24, 64
    layers = [(PackedLinear.dense(rng.standard_normal((n, k)).astype(np.float32)), None),
              palettized(rng, n, k, 3, (1, 2), np.float32, False),  # tables along K
              palettized(rng, n, k, 4, (1, 2), np.float32, False),
              quantized(rng, n, k, "int4", (n, k // 16), np.float32, None)]  # blocks of 16
    for p, _ in layers:
        for m in (1, 3, kFAST_GEMV_MAX_M + 1, 40):
            x = rng.standard_normal((m, k)).astype(np.float32)
            a, b = np.empty((m, n), np.float32), np.empty((m, n), np.float32)
            p.gemm(x, a, exact=True)
            p.gemm(x, b, exact=False)
            np.testing.assert_array_equal(a, b)


def test_fast_prefill_takes_the_int8_path():
    """exact=False on many rows (a prefill) rounds activations too, unlike exact=True."""
    rng = np.random.default_rng(8)
    p, W = quantized(rng, 24, 64, "int4", (24, 2), np.float16, None)
    x = rng.standard_normal((100, 64)).astype(np.float32)
    a, b = np.empty((100, 24), np.float32), np.empty((100, 24), np.float32)
    p.gemm(x, a)
    p.gemm(x, b, exact=False)
    if _native.simd_level() in ("avx2", "avx512vnni"):
        assert not np.array_equal(a, b)
    np.testing.assert_allclose(b, a, atol=0.1 * np.abs(a).max())


def test_fast_relative_error_on_gaussian_data():
    """The int8 path's error on SmolLM2-like Gaussian layers: each output row within 1 % of its
    norm (measured ~0.3-0.6 %)."""
    rng = np.random.default_rng(5)
    n, k = 256, 576
    w = (rng.standard_normal((n, k)) * 0.05).astype(np.float32)
    q = N.quantize(w, "int4", granularity="per_block", block_size=32)
    layers = [PackedLinear.quantized(N.pack_quantized(q.data, "int4"), q.scale.astype(np.float16),
                                     None, "int4", n, k)]
    q = N.quantize(w, "int8", granularity="per_channel")
    layers.append(PackedLinear.quantized(q.data, q.scale, None, "int8", n, k))
    p, _ = palettized(rng, n, k, 4, (n // 16, 1), np.float16, True)
    layers.append(p)
    for m in (4, 64):  # decode steps, a prefill
        x = rng.standard_normal((m, k)).astype(np.float32)
        for p in layers:
            a, b = np.empty((m, n), np.float32), np.empty((m, n), np.float32)
            p.gemm(x, a)
            p.gemm(x, b, exact=False)
            rel = np.linalg.norm(b - a, axis=1) / np.linalg.norm(a, axis=1)
            assert np.all(rel < 1e-2), (p.format, m, rel)


@pytest.mark.parametrize("m", [1, 40])
def test_fast_same_for_every_thread_count(m):
    """A decode step (M = 1: the kernels prefetch rows ahead within each thread's chunk) and a
    prefill (strips of 16 rows over the threads, activations quantized over them) on layers of
    many rows (not a multiple of 4 nor 16, an odd count of blocks and a tail past them): the same
    bits on 1 to 3 threads, within the rounding bound."""
    rng = np.random.default_rng(17)
    for n, k in [(203, 576), (130, 1000)]:
        layers = [quantized(rng, n, k, "int4", (n, 1 if k % 32 else k // 32), np.float16, None),
                  quantized(rng, n, k, "uint4", (n, 1), np.float32, "int"),
                  quantized(rng, n, k, "int8", (n, 1), np.float32, None),
                  palettized(rng, n, k, 4, (n // divisor(n, [16, 29, 13]), 1), np.float16, True),
                  palettized(rng, n, k, 4, (1, 1), np.float32, False)]
        for p, W in layers:
            x = rng.standard_normal((m, k)).astype(np.float32)
            outs = []
            for threads in (1, 2, 3):
                out = np.full((m, n), np.nan, np.float32)
                p.gemm(x, out, None, threads=threads, exact=False)
                outs.append(out)
            for out in outs[1:]:
                np.testing.assert_array_equal(out, outs[0], err_msg=f"{p.format} {n}x{k}")
            W64 = W.astype(np.float64)
            want = x.astype(np.float64) @ W64.T
            err = np.abs(outs[0] - want)
            # loose: the tables' int8 rounding is covered by test_fast_lut4_within_the_rounding_bound
            assert np.all(err <= 2e-2 * (np.abs(x).astype(np.float64) @ np.abs(W64).T)), p.format


@pytest.mark.parametrize("simd", [True, False], ids=["simd", "portable"])
@pytest.mark.parametrize("exact", [True, False], ids=["exact", "fast"])
def test_residual_and_activation_epilogue_equal_the_separate_ops(simd, exact):
    """gemm(..., residual=r, act=a) on every path (decode rows, the int8 GEMM's strips, the exact
    tiles and the AVX-512 float GEMM; 1 and 2 threads): bit for bit the layer, then + r, then the
    activation as _native.activation computes it."""
    _native.set_simd(simd)
    try:
        rng = np.random.default_rng(21)
        n, k = 70, 96
        layers = [PackedLinear.dense(rng.standard_normal((n, k)).astype(np.float32)),
                  quantized(rng, n, k, "int8", (n, 1), np.float32, None)[0],
                  quantized(rng, n, k, "int4", (n, k // 32), np.float16, None)[0],
                  palettized(rng, n, k, 4, (1, 1), np.float32, False)[0]]
        bias = rng.standard_normal(n).astype(np.float32)
        for p in layers:
            for m in (1, 3, 5, 40):
                x = rng.standard_normal((m, k)).astype(np.float32)
                r = rng.standard_normal((m, n)).astype(np.float32)
                for threads in (1, 2):
                    base = np.empty((m, n), np.float32)
                    p.gemm(x, base, bias, threads, exact)
                    for act in (None, "gelu", "silu"):
                        for res in (None, r):
                            want = base + res if res is not None else base.copy()
                            if act:
                                _native.activation(act, want.copy(), want, 1, exact=exact)
                            got = np.empty((m, n), np.float32)
                            p.gemm(x, got, bias, threads, exact, residual=res, act=act)
                            np.testing.assert_array_equal(got, want, err_msg=f"{p.format} m={m} {act} {res is not None}")
    finally:
        _native.set_simd(True)


def test_bad_epilogue_arguments_raise():
    p = PackedLinear.dense(np.ones((4, 8), np.float32))
    x, out = np.ones((2, 8), np.float32), np.empty((2, 4), np.float32)
    with pytest.raises(ValueError, match="residual must have shape"):
        p.gemm(x, out, residual=np.ones((2, 5), np.float32))
    with pytest.raises(TypeError, match="residual"):
        p.gemm(x, out, residual=np.ones((2, 4), np.float64))
    with pytest.raises(ValueError, match="act must be"):
        p.gemm(x, out, act="relu")
    with pytest.raises(ValueError, match="residual"):
        p.gemm(x, out, residual=out)  # overlapping the output


@pytest.mark.parametrize("nbits", [5, 6, 8])
def test_int8_copies_per_row_keep_small_rows(nbits):
    """A table shared by rows of very different magnitudes (a BN-folded convolution's): its int8
    copy per row (int8_per_row=True), scaled to the entries that row uses, keeps each row's
    exact=False error near int8 activations' alone, where one copy for all rows rounds a small
    row's entries to a grid made for the largest."""
    rng = np.random.default_rng(nbits)
    n, k, entries = 48, 96, 1 << nbits
    table = np.sinh(np.linspace(-6, 6, entries)).astype(np.float32)  # fine near 0, wide tails
    # row r uses the entries within 10**(r / 16) of zero: magnitudes over three decades
    centre, span = entries // 2, [max(1, int(np.sum(np.abs(table) < 10 ** (r / 16)) // 2)) for r in range(n)]
    codes = np.stack([rng.integers(centre - s, centre + s, k) for s in span]).astype(np.uint8)
    W = table[codes]
    idx, lut = N.pack_bits(codes.reshape(-1), nbits), table.reshape(1, 1, entries, 1)
    shared, per_row = (PackedLinear.lut(idx, lut, nbits, n, k, None, r) for r in (False, True))
    assert (shared.int8_rows, per_row.int8_rows) == (n, 1)
    x = rng.standard_normal((9, k)).astype(np.float32)
    want = x.astype(np.float64) @ W.T.astype(np.float64)
    errs = []
    for p in (shared, per_row):
        out = np.empty((9, n), np.float32)
        p.gemm(x, out, None, 1, False)
        # each output's error against its row's scale (|x| |W_r|)
        errs.append(np.max(np.abs(out - want) / (np.linalg.norm(x, axis=1)[:, None] * np.linalg.norm(W, axis=1))))
        exact = np.empty((9, n), np.float32)
        p.gemm(x, exact, None, 1, True)
        np.testing.assert_allclose(exact, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
    if _native.simd_level() == "generic" or not per_row.int8_gemm:
        assert errs[0] == errs[1] < 1e-5  # no int8 path here: both exact
    else:
        assert errs[1] < 0.01 < errs[0], errs
