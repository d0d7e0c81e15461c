"""_native.sdpa (src/native/kernels/attention) against the NumPy reference
(ir/ops/attention.py): decode (L = 1) and prefill shapes, grouped-query heads, every kind of mask,
is_causal, rows with nothing to attend, strided k/v views of a KV cache; the kernel's blocks of
query rows (a group's heads times positions, up to six) with every remainder; SIMD on and off,
1 and 2 threads; bad inputs raise, never crash."""

import math

import numpy as np
import pytest

from pocketml import _native
from pocketml.ir.ops.attention import scaled_dot_product_attention as reference

# (B, Hq, Hk, L, S, E, Ev)
SHAPES = [
    (1, 9, 3, 1, 1, 64, 64),      # SmolLM2 decode, first token
    (1, 9, 3, 1, 7, 64, 64),
    (1, 9, 3, 1, 100, 64, 64),
    (1, 9, 3, 17, 17, 64, 64),    # prefill L = S
    (2, 4, 4, 5, 5, 19, 19),      # E not a multiple of 8
    (2, 6, 1, 3, 11, 13, 70),     # one kv head (multi-query), Ev != E, Ev > 64
    (1, 2, 2, 40, 40, 8, 8),      # enough work for several threads
]


@pytest.fixture(autouse=True)
def _simd_restored():
    yield
    _native.set_simd(True)


def native(q, k, v, mask=None, is_causal=False, scale=None, threads=0):
    out = np.empty((*q.shape[:3], v.shape[3]), np.float32)
    s = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    _native.sdpa(q, k, v, mask, out, s, is_causal, threads)
    return out


def ref(q, k, v, mask=None, is_causal=False, scale=None):
    return reference([q, k, v, mask], {"is_causal": is_causal, "scale": scale})


def operands(shape, seed=0, strided=True):
    B, Hq, Hk, L, S, E, Ev = shape
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((B, Hq, L, E), np.float32)
    if strided:  # views of a longer cache, as a KV-cache state's [:, :, :ctx]
        k = rng.standard_normal((B, Hk, S + 9, E), np.float32)[:, :, :S]
        v = rng.standard_normal((B, Hk, S + 3, Ev), np.float32)[:, :, :S]
    else:
        k = rng.standard_normal((B, Hk, S, E), np.float32)
        v = rng.standard_normal((B, Hk, S, Ev), np.float32)
    return q, k, v


def masks(shape, seed=1):
    B, Hq, Hk, L, S, E, Ev = shape
    rng = np.random.default_rng(seed)
    past = S - L
    additive = np.triu(np.full((L, S), -np.inf, np.float32), k=past + 1)  # the generation mask
    return {
        "none": None,
        "float[1,1,L,S]": additive[None, None],
        "float[L,S]": additive,
        "float[B,1,L,S] noise": rng.standard_normal((B, 1, L, S)).astype(np.float32),
        "float[B,Hq,L,S]": rng.standard_normal((B, Hq, L, S)).astype(np.float32),
        "bool[1,1,L,S]": (rng.random((1, 1, L, S)) > 0.3),
        "bool[B,1,L,S]": (rng.random((B, 1, L, S)) > 0.5),
        "bool[L,S]": (rng.random((L, S)) > 0.2),
        "bool[S]": (rng.random(S) > 0.2),
    }


def close(a, b):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=2e-6)


@pytest.mark.parametrize("simd", [True, False])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_matches_the_reference(shape, simd):
    _native.set_simd(simd)
    q, k, v = operands(shape)
    for name, mask in masks(shape).items():
        for causal in (False, True):
            for threads in (1, 2):
                close(native(q, k, v, mask, causal, threads=threads), ref(q, k, v, mask, causal))


@pytest.mark.parametrize("shape", SHAPES[:4], ids=str)
def test_contiguous_and_strided_agree(shape):
    q, k, v = operands(shape, strided=False)
    a = native(q, k, v)
    big_k = np.zeros((*k.shape[:2], k.shape[2] + 5, k.shape[3]), np.float32)
    big_k[:, :, :k.shape[2]] = k
    big_v = np.zeros((*v.shape[:2], v.shape[2] + 5, v.shape[3]), np.float32)
    big_v[:, :, :v.shape[2]] = v
    np.testing.assert_array_equal(native(q, big_k[:, :, :k.shape[2]], big_v[:, :, :v.shape[2]]), a)
    # q from a [B, L, H, E] projection, transposed: features still contiguous
    qt = np.ascontiguousarray(q.transpose(0, 2, 1, 3)).transpose(0, 2, 1, 3)
    np.testing.assert_array_equal(native(qt, k, v), a)
    # out written as [B, L, H, Ev] (the layout the output projection reads), a strided view
    out = np.full((q.shape[0], q.shape[2], q.shape[1], v.shape[3]), np.nan, np.float32)
    s = 1.0 / math.sqrt(q.shape[-1])
    _native.sdpa(q, k, v, None, out.transpose(0, 2, 1, 3), s, False, 0)
    np.testing.assert_array_equal(out.transpose(0, 2, 1, 3), a)
    # and with no keys: zeros in every row, nothing else touched
    out[...] = np.nan
    _native.sdpa(q, k[:, :, :0], v[:, :, :0], None, out.transpose(0, 2, 1, 3), s, False, 0)
    np.testing.assert_array_equal(out, 0)


def test_explicit_scale_and_large_scores():
    q, k, v = operands((1, 2, 2, 3, 9, 16, 16))
    close(native(q, k, v, scale=0.37), ref(q, k, v, scale=0.37))
    close(native(q * 30, k, v), ref(q * 30, k, v))  # scores in the hundreds: max subtracted
    # a scale near float32's top: scale * s finite, scale * log2(e) * s not (the exp2 form's
    # fallback), rows long enough for the vector paths
    q, k, v = operands((1, 2, 2, 20, 40, 16, 16))
    q, k = q * 0.1, k * 0.1
    close(native(q, k, v, scale=3e38), ref(q, k, v, scale=3e38))


def test_rows_with_nothing_to_attend_give_zero():
    shape = (2, 3, 3, 4, 6, 8, 8)
    q, k, v = operands(shape)
    mask = np.ones((2, 1, 4, 6), bool)
    mask[0, 0, 1] = False
    mask[1, 0, :] = False
    fmask = np.where(mask, np.float32(0), np.float32(-np.inf))
    for m in (mask, fmask):
        for simd in (True, False):
            _native.set_simd(simd)
            out = native(q, k, v, m)
            close(out, ref(q, k, v, m))
            assert not out[0, :, 1].any() and not out[1].any()
    # causal with no key at all
    out = native(q, k[:, :, :0], v[:, :, :0], None, True)
    assert out.shape == (2, 3, 4, 8) and not out.any()


def test_causal_is_top_left_aligned():
    q, k, v = operands((1, 2, 2, 3, 8, 8, 8))
    out = native(q, k, v, None, True)
    close(out, ref(q, k, v, None, True))
    close(out[:, :, 0], v[:, :, 0])  # query 0 sees key 0 only


def test_empty_shapes():
    q, k, v = operands((1, 2, 2, 0, 5, 8, 8))
    assert native(q, k, v).shape == (1, 2, 0, 8)
    q, k, v = operands((0, 2, 2, 3, 5, 8, 8))
    assert native(q, k, v).shape == (0, 2, 3, 8)


def test_nonfinite_scores_give_what_the_reference_gives():
    q, k, v = operands((1, 1, 1, 2, 4, 8, 8))
    q = q.copy()
    q[0, 0, 0, 0] = np.nan
    with np.errstate(invalid="ignore"):
        r = ref(q, k, v)
    out = native(q, k, v)
    assert not out[0, 0, 0].any()  # a NaN score: nothing attended, as the reference
    np.testing.assert_array_equal(out[0, 0, 0], r[0, 0, 0])
    close(out, r)


def test_bad_inputs_raise():
    q, k, v = operands((1, 4, 2, 3, 5, 8, 8), strided=False)
    out = np.empty((1, 4, 3, 8), np.float32)
    ok = dict(q=q, k=k, v=v, mask=None, out=out, scale=0.5, is_causal=False)

    def call(**kw):
        _native.sdpa(**{**ok, **kw})

    call()
    with pytest.raises(TypeError):
        call(q=q.astype(np.float64))
    with pytest.raises(TypeError):
        call(mask=np.zeros((3, 5), np.int32))
    with pytest.raises(ValueError):
        call(q=q[0])  # rank 3
    with pytest.raises(ValueError):
        call(k=operands((1, 4, 3, 3, 5, 8, 8))[1])  # 3 heads do not divide 4
    with pytest.raises(ValueError):
        call(k=k[..., :7])  # feature sizes differ
    with pytest.raises(ValueError):
        call(v=v[:, :, :4])  # keys differ
    with pytest.raises(ValueError):
        call(k=np.asfortranarray(k))  # features not contiguous
    with pytest.raises(ValueError):
        call(mask=np.zeros((2, 5), np.float32))  # does not broadcast
    with pytest.raises(ValueError):
        call(mask=np.zeros((2, 1, 3, 5), np.float32))  # a batch beyond q's
    with pytest.raises(ValueError):
        call(out=np.empty((1, 4, 3, 7), np.float32))
    with pytest.raises(ValueError):
        call(out=np.empty((1, 4, 8, 3), np.float32).transpose(0, 1, 3, 2))
    with pytest.raises(ValueError):  # rows overlapping each other
        call(out=np.lib.stride_tricks.as_strided(np.empty(64, np.float32), (1, 4, 3, 8), (0, 16, 4, 4)))
    with pytest.raises(TypeError):
        call(out=np.empty((1, 4, 3, 8), np.float64))
    ro = np.empty((1, 4, 3, 8), np.float32)
    ro.flags.writeable = False
    with pytest.raises(TypeError):
        call(out=ro)
    with pytest.raises(ValueError):
        call(scale=float("nan"))
    with pytest.raises(ValueError):
        call(threads=-1)


# (B, Hq, Hk, L, S, E, Ev): rows per k/v head (Hq / Hk * L) around the block of six, keys and
# features around the vectors of eight and the tiles of 16 / 32 outputs
BLOCKS = [
    (1, 1, 1, 1, 1, 8, 8),        # one row, one key
    (1, 2, 2, 5, 1, 16, 16),      # one key, several rows
    (1, 1, 1, 6, 9, 32, 32),      # one full block
    (1, 1, 1, 7, 7, 32, 32),      # a block and one row
    (2, 3, 3, 13, 13, 32, 24),    # two blocks and one row; Ev = 16 + 8
    (1, 6, 3, 5, 11, 64, 64),     # two heads per k/v head: 10 rows
    (1, 9, 3, 1, 300, 64, 64),    # decode: a group of 3 heads is the block
    (1, 8, 1, 3, 29, 24, 40),     # multi-query: 24 rows; Ev = 32 + 8
    (2, 12, 12, 52, 52, 32, 32),  # MiniLM
    (1, 4, 2, 33, 40, 7, 5),      # E and Ev below a vector
    (1, 2, 1, 4, 6, 9, 70),       # 8 rows, Ev = 64 + 6
    # 12 rows or more per k/v head: keys transposed once per chunk (8 x 8 blocks and the edges)
    (1, 2, 1, 20, 37, 13, 9),     # E, S not multiples of 8
    (1, 4, 4, 100, 100, 32, 32),  # chunks of rows over the threads
    (1, 9, 3, 67, 67, 64, 64),    # SmolLM2's prefill: 3 heads per k/v head
]


@pytest.mark.parametrize("simd", [True, False])
@pytest.mark.parametrize("shape", BLOCKS, ids=str)
def test_blocks_of_rows(shape, simd):
    _native.set_simd(simd)
    B, Hq, Hk, L, S, E, Ev = shape
    q, k, v = operands(shape, seed=2)
    rng = np.random.default_rng(3)
    pad = np.zeros((B, 1, 1, S), np.float32)  # padding keys at the end (a batch of sentences)
    pad[-1, ..., max(1, S - 3):] = -np.inf
    hole = rng.random((1, Hq, L, S)) > 0.6  # keys no row of a block attends, in the middle
    hole[..., 0] = True
    for mask in (None, pad, hole):
        for causal in (False, True):
            want = ref(q, k, v, mask, causal)
            one = native(q, k, v, mask, causal, threads=1)
            close(one, want)
            # the same blocks whichever thread runs them
            np.testing.assert_array_equal(native(q, k, v, mask, causal, threads=2), one)


def test_causal_with_fewer_queries_than_keys():
    """Top-left causal with L < S: row l attends keys 0..l, so rows of a block differ in length."""
    q, k, v = operands((1, 3, 1, 10, 40, 16, 16))
    close(native(q, k, v, None, True), ref(q, k, v, None, True))
    close(native(q[:, :, :1], k, v, None, True)[0, :, 0], v[0, 0, :1].repeat(3, 0))


@pytest.mark.parametrize("simd", [True, False])
def test_masks_strided_or_broadcast_along_the_keys(simd):
    _native.set_simd(simd)
    shape = (2, 4, 2, 7, 19, 16, 16)
    q, k, v = operands(shape)
    rng = np.random.default_rng(4)
    wide = rng.standard_normal((2, 4, 7, 38)).astype(np.float32)
    masks = [wide[..., ::2],                                   # a stride of 2 along the keys
             rng.standard_normal((2, 1, 7, 1)).astype(np.float32),  # one value for every key
             (rng.random((2, 4, 7, 38)) > 0.3)[..., ::2],
             np.ones((7, 1), bool)]
    for mask in masks:
        for causal in (False, True):
            close(native(q, k, v, mask, causal), ref(q, k, v, mask, causal))


def test_a_dead_row_among_live_ones_and_infinite_values():
    """A row that attends nothing gives 0 without touching its block's other rows."""
    shape = (1, 1, 1, 6, 12, 8, 8)
    q, k, v = operands(shape)
    mask = np.ones((6, 12), bool)
    mask[2] = False
    mask[4, 5:] = False
    for simd in (True, False):
        _native.set_simd(simd)
        out = native(q, k, v, mask)
        close(out, ref(q, k, v, mask))
        assert not out[0, 0, 2].any() and np.isfinite(out).all()
        fmask = np.where(mask, np.float32(0), np.float32(-np.inf))
        fmask[1, 3] = np.inf  # +inf score: a NaN softmax in the reference, 0 here too
        with np.errstate(invalid="ignore"):
            r = ref(q, k, v, fmask)
        out = native(q, k, v, fmask)
        assert not out[0, 0, 1].any() and not out[0, 0, 2].any()
        close(np.delete(out, [1, 2], axis=2), np.delete(r, [1, 2], axis=2))


@pytest.mark.parametrize("simd", [True, False])
def test_one_nan_score_anywhere_in_a_row(simd):
    """A NaN score at any key (a vector's any lane, the tail) makes its row 0, as the reference."""
    _native.set_simd(simd)
    q, k, v = operands((1, 1, 1, 20, 20, 8, 8))
    mask = np.zeros((20, 20), np.float32)
    for row in range(20):
        mask[row, row] = np.nan
    with np.errstate(invalid="ignore"):
        r = ref(q, k, v, mask)
    out = native(q, k, v, mask)
    assert not out.any()
    np.testing.assert_array_equal(out, r)


@pytest.mark.parametrize("simd", [True, False])
def test_an_encoders_long_rows_from_one_projection(simd):
    """No mask, rows of 150 keys (whole vectors and a tail), q/k/v heads read from one [L, 3 H E]
    projection (the values copied together for the blocks); a NaN or infinite score in one row
    makes that row 0 and leaves its block's other rows as the reference gives them."""
    _native.set_simd(simd)
    B, H, L, E = 1, 2, 150, 24
    x = np.random.default_rng(5).standard_normal((B, L, 3 * H * E), np.float32)
    q, k, v = (x[..., i * H * E:(i + 1) * H * E].reshape(B, L, H, E).transpose(0, 2, 1, 3) for i in range(3))
    for scale in (None, 0.3, -0.5):
        want = ref(q, k, v, scale=scale)
        one = native(q, k, v, scale=scale, threads=1)
        close(one, want)
        np.testing.assert_array_equal(native(q, k, v, scale=scale, threads=2), one)
    q = q.copy()
    q[0, 1, 3, 5] = np.nan
    q[0, 1, 8, 2] = np.inf  # scores of both signs' infinities
    with np.errstate(invalid="ignore"):
        want = ref(q, k, v)
    out = native(q, k, v)
    assert not out[0, 1, 3].any() and not out[0, 1, 8].any()
    close(np.delete(out[0, 1], [3, 8], axis=0), np.delete(want[0, 1], [3, 8], axis=0))
    close(out[0, 0], want[0, 0])


def int8_rows(x):
    from pocketml.ir import get_op
    q, s = get_op("quantize_rows").compute([np.ascontiguousarray(x)], {})
    return q, s, get_op("dequantize_rows").compute([q, s], {})[0]


@pytest.mark.parametrize("simd", [True, False])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_int8_cache_reads_as_its_dequantized_floats(shape, simd):
    # keys and values as an int8 cache's rows: the kernel dequantizes them as dequantize_rows does,
    # so it gives the float kernel's bits on the dequantized values, whatever the path
    _native.set_simd(simd)
    B, Hq, Hk, L, S, E, Ev = shape
    q, k, v = operands(shape, strided=False)
    k8, ks, kf = int8_rows(np.concatenate([k, k[:, :, :4]], axis=2))  # views of a longer cache
    v8, vs, vf = int8_rows(np.concatenate([v, v[:, :, :2]], axis=2))
    k8, ks, kf, v8, vs, vf = (a[:, :, :S] for a in (k8, ks, kf, v8, vs, vf))
    mask = masks(shape)["float[1,1,L,S]"]
    for causal in (False, True):
        for threads in (1, 2):
            want = native(q, kf, vf, mask, causal, threads=threads)
            for kk, vv, kscale, vscale in ((k8, v8, ks, vs), (k8, vf, ks, None), (kf, v8, None, vs)):
                out = np.empty_like(want)
                _native.sdpa(q, kk, vv, mask, out, 1.0 / math.sqrt(E), causal, threads, kscale, vscale)
                np.testing.assert_array_equal(out, want)
    close(want, ref(q, kf, vf, mask, True))


def test_int8_cache_arguments_are_checked():
    q, k, v = operands((1, 4, 2, 3, 5, 8, 8), strided=False)
    k8, ks, _ = int8_rows(k)
    out = np.empty((1, 4, 3, 8), np.float32)
    call = lambda kk, kscale: _native.sdpa(q, kk, v, None, out, 0.5, False, 0, kscale, None)  # noqa: E731
    call(k8, ks)
    with pytest.raises(TypeError):
        call(k, ks)  # float keys with a scale
    with pytest.raises(TypeError):
        call(k8, None)  # int8 keys without one
    with pytest.raises(TypeError):
        call(k8, ks[..., 0])  # not [B, H, S, 1]
    with pytest.raises(ValueError):
        call(k8, ks[:, :, :4])  # a scale short of a row
