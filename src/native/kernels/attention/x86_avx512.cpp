// AVX-512 F primitives of the attention kernel for prefills and encoders (the two GEMM-like
// loops and the softmax; the rest is AVX2's): compiled with AVX-512 for this file only and called only where
// use_avx512vnni() (core/cpu.h: AVX-512 F/BW/VL with the OS saving ZMM state). Where the CPU has
// two 512-bit FMA units (Intel server cores) they double the AVX2 loops' multiply-adds per cycle;
// where it splits a zmm FMA in two (Zen 4) they halve the loads and broadcasts per multiply-add.
// Like x86_avx2.cpp, nothing here uses an inline function of a shared header.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>

#include "kernels/activation/fast_coefficients.h"
#include "kernels/attention/attention.h"
#include "kernels/x86_avx512_transpose.h"

namespace pocketml {
namespace attention {
namespace {

inline __mmask16 mask_of(int64_t n) {
  return n >= 16 ? __mmask16(0xffff) : __mmask16((1u << (n > 0 ? n : 0)) - 1);
}

// k's rows j < n transposed into blocks of 16 keys, each [E][16] and contiguous: kt[(j / 16) 16 E +
// e 16 + j % 16] = k[j][e], zero for n <= j < n rounded up to 16 (ldt unused). A tile of keys
// then reads 1-3 sequential runs of 4 KiB (E = 64), where rows of ldt floats put each feature's
// keys 6 KB apart (Whisper's 1,500), a stride the prefetchers follow less well.
void transpose_blocked(const float* k, int64_t ldk, int64_t n, int64_t E, float* kt, int64_t) {
  for (int64_t j = 0; j < n; j += 16) {
    const int64_t rows = std::min<int64_t>(16, n - j);
    float* blk = kt + j * E;
    for (int64_t e = 0; e < E; e += 16) {
      const __mmask16 m = mask_of(E - e);
      __m512 r[16];
      for (int i = 0; i < 16; ++i) r[i] = i < rows ? _mm512_maskz_loadu_ps(m, k + (j + i) * ldk + e) : _mm512_setzero_ps();
      transpose16(r);  // r[c]: feature e + c of the 16 keys
      for (int64_t c = 0; c < 16 && e + c < E; ++c) _mm512_storeu_ps(blk + (e + c) * 16, r[c]);
    }
  }
}

// R query rows against V x 16 keys of the blocked kt at a time (out has room for n rounded up to
// 8): per feature V key vectors and R broadcasts feed R x V FMAs, no horizontal sums; the stores
// masked to `width`.
template <int R, int V>
inline void dots_t_tile(const float* const* q, const float* kt, int64_t j, int64_t width, int64_t E, float* out,
                        int64_t ldo) {
  __mmask16 m[V];
  for (int c = 0; c < V; ++c) m[c] = mask_of(width - 16 * c);
  __m512 acc[R][V];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int c = 0; c < V; ++c) acc[r][c] = _mm512_setzero_ps();
  const float* kp = kt + j * E;
  const int64_t block = 16 * E;
  for (int64_t e = 0; e < E; ++e, kp += 16) {
    __m512 k[V];
#pragma GCC unroll 4
    for (int c = 0; c < V; ++c) k[c] = _mm512_loadu_ps(kp + c * block);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const __m512 a = _mm512_set1_ps(q[r][e]);
#pragma GCC unroll 4
      for (int c = 0; c < V; ++c) acc[r][c] = _mm512_fmadd_ps(a, k[c], acc[r][c]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int c = 0; c < V; ++c) _mm512_mask_storeu_ps(out + r * ldo + j + 16 * c, m[c], acc[r][c]);
}

template <int R>
void dots_t_rows(const float* const* q, const float* kt, int64_t n, int64_t E, float* out, int64_t ldo) {
  const int64_t n8 = (n + 7) / 8 * 8;  // whole columns written up to here
  int64_t j = 0;
  for (; j + 48 <= n8; j += 48) dots_t_tile<R, 3>(q, kt, j, 48, E, out, ldo);
  for (; j < n8; j += 16) dots_t_tile<R, 1>(q, kt, j, n8 - j, E, out, ldo);
}

void dots_t_avx512(const float* const* q, int rows, const float* kt, int64_t, int64_t n, int64_t E,
                   float* out, int64_t ldo) {
  switch (rows) {
    case 1: return dots_t_rows<1>(q, kt, n, E, out, ldo);
    case 2: return dots_t_rows<2>(q, kt, n, E, out, ldo);
    case 3: return dots_t_rows<3>(q, kt, n, E, out, ldo);
    case 4: return dots_t_rows<4>(q, kt, n, E, out, ldo);
    case 5: return dots_t_rows<5>(q, kt, n, E, out, ldo);
    default: return dots_t_rows<6>(q, kt, n, E, out, ldo);
  }
}

// out[r][c0 : c0 + 16 V] for R rows: R x V accumulators over the live keys, each loaded row of v
// serving the R rows (the last vector masked to Ev).
template <int R, int V>
inline void wsum_tile(const float* p, int64_t ldp, const int32_t* keys, int64_t nk, const float* v,
                      int64_t ldv, int64_t c0, int64_t Ev, const float* mul, float* const* out) {
  __mmask16 m[V];
  for (int c = 0; c < V; ++c) m[c] = mask_of(Ev - c0 - 16 * c);
  __m512 acc[R][V];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int c = 0; c < V; ++c) acc[r][c] = _mm512_setzero_ps();
  for (int64_t t = 0; t < nk; ++t) {
    const int64_t j = keys[t];
    const float* x = v + j * ldv + c0;
    __m512 xv[V];
#pragma GCC unroll 4
    for (int c = 0; c < V; ++c) xv[c] = _mm512_maskz_loadu_ps(m[c], x + 16 * c);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const __m512 a = _mm512_set1_ps(p[r * ldp + j]);
#pragma GCC unroll 4
      for (int c = 0; c < V; ++c) acc[r][c] = _mm512_fmadd_ps(a, xv[c], acc[r][c]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    const __m512 f = _mm512_set1_ps(mul[r]);
#pragma GCC unroll 4
    for (int c = 0; c < V; ++c) _mm512_mask_storeu_ps(out[r] + c0 + 16 * c, m[c], _mm512_mul_ps(acc[r][c], f));
  }
}

// 64 outputs a pass (a head of 64 in one pass over the keys: 24 accumulators for 6 rows), then 32,
// then 16 at a time, the last masked.
template <int R>
void wsum_rows(const float* p, int64_t ldp, const int32_t* keys, int64_t nk, const float* v, int64_t ldv,
               int64_t Ev, const float* mul, float* const* out) {
  int64_t c = 0;
  for (; c + 64 <= Ev; c += 64) wsum_tile<R, 4>(p, ldp, keys, nk, v, ldv, c, Ev, mul, out);
  for (; c + 32 <= Ev; c += 32) wsum_tile<R, 2>(p, ldp, keys, nk, v, ldv, c, Ev, mul, out);
  for (; c < Ev; c += 16) wsum_tile<R, 1>(p, ldp, keys, nk, v, ldv, c, Ev, mul, out);
}

void wsum_avx512(const float* p, int64_t ldp, int rows, const int32_t* keys, int64_t nk, const float* v,
                 int64_t ldv, int64_t Ev, const float* mul, float* const* out, bool fetch) {
  if (fetch)  // a decode step's cache from memory: AVX2's loop, which prefetches
    return avx2_primitives.wsum(p, ldp, rows, keys, nk, v, ldv, Ev, mul, out, fetch);
  switch (rows) {
    case 1: return wsum_rows<1>(p, ldp, keys, nk, v, ldv, Ev, mul, out);
    case 2: return wsum_rows<2>(p, ldp, keys, nk, v, ldv, Ev, mul, out);
    case 3: return wsum_rows<3>(p, ldp, keys, nk, v, ldv, Ev, mul, out);
    case 4: return wsum_rows<4>(p, ldp, keys, nk, v, ldv, Ev, mul, out);
    case 5: return wsum_rows<5>(p, ldp, keys, nk, v, ldv, Ev, mul, out);
    default: return wsum_rows<6>(p, ldp, keys, nk, v, ldv, Ev, mul, out);
  }
}

// exp(x) for x <= 0, not NaN (softmax's x - max): AVX2's exp_nonpositive (its polynomial, 0 below
// -86.5) with 2^n applied by vscalefps, n by vrndscaleps: 12 operations a vector, not 15.
inline __m512 exp_nonpositive(__m512 x) {
  const __mmask16 live = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-86.5f), _CMP_GE_OQ);
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);  // exact
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 y = _mm512_set1_ps(activation::kExpf[0]);
  for (int i = 1; i < 7; ++i) y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(activation::kExpf[i]));
  return _mm512_maskz_scalef_ps(live, y, n);
}

// 2^f on |f| <= 1/2, highest degree first: a degree-5 fit of the relative error (2.4e-7 in
// float32 Horner steps)
constexpr float kExp2f[] = {0.001327647129073739f, 0.009675541892647743f, 0.05550713092088699f,
                            0.24022120237350464f, 0.6931469440460205f, 1.0000001192092896f};

// 2^t for t <= 0 (not NaN; 0 below -150): 2^round(t) by vscalefps, 2^f of the exact rest f by
// kExp2f: 6 multiply-adds where exp_nonpositive has 10
inline __m512 exp2_nonpositive(__m512 t) {
  const __mmask16 live = _mm512_cmp_ps_mask(t, _mm512_set1_ps(-150.0f), _CMP_GE_OQ);
  const __m512 n = _mm512_roundscale_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512 f = _mm512_sub_ps(t, n);
  __m512 y = _mm512_set1_ps(kExp2f[0]);
  for (int i = 1; i < 6; ++i) y = _mm512_fmadd_ps(y, f, _mm512_set1_ps(kExp2f[i]));
  return _mm512_maskz_scalef_ps(live, y, n);
}

// Primitives::softmax without a mask and with a positive scale (an encoder's): the first pass
// only finds max s (four chains of maxima); the second computes exp(scale * s - max) as
// 2^(c s - c max s), c = scale * log2(e), t = c s - c max s in one rounding on the fly (an error
// of ~1e-6 relative where scale * s is ~20 or more, as the reference's own rounding of
// scale * s), whole vectors interleaved row by row (independent exps for the out-of-order core),
// each row's tail under a mask.
void softmax_plain(float* s, int64_t lds, int rows, const int64_t* n, float scale, float* sum) {
  const float inf = __builtin_huge_valf();
  const float c = scale * 1.44269504088896341f;
  const __m512 ninf = _mm512_set1_ps(-inf), vs = _mm512_set1_ps(c);
  __m512 vmax[kBlockRows], acc[kBlockRows];
  int64_t whole = INT64_MAX;  // vectors every live row has in full
  bool live[kBlockRows];
  for (int r = 0; r < rows; ++r) {
    const float* x = s + r * lds;
    const int64_t nr = n[r];
    __m512 m[4] = {ninf, ninf, ninf, ninf};
    __mmask16 nan = 0;
    int64_t j = 0;
    for (; j + 64 <= nr; j += 64) {
#pragma GCC unroll 4
      for (int c = 0; c < 4; ++c) {
        const __m512 v = _mm512_loadu_ps(x + j + 16 * c);
        nan |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
        m[c] = _mm512_max_ps(m[c], v);
      }
    }
    for (; j < nr; j += 16) {
      const __m512 v = _mm512_mask_loadu_ps(ninf, mask_of(nr - j), x + j);
      nan |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
      m[0] = _mm512_max_ps(m[0], v);
    }
    // (vmaxps drops NaN)
    const float ms = nan ? __builtin_nanf("") : _mm512_reduce_max_ps(_mm512_max_ps(_mm512_max_ps(m[0], m[1]), _mm512_max_ps(m[2], m[3])));
    const float mx = ms * scale, mt = ms * c;
    vmax[r] = _mm512_set1_ps(mt);
    acc[r] = _mm512_setzero_ps();
    live[r] = mx > -inf && mx < inf;  // else it attends nothing: no exps
    if (live[r] && !(mt > -inf && mt < inf)) {  // c max s overflows where scale max s does not
      const void* none[kBlockRows] = {};
      return avx2_primitives.softmax(s, lds, rows, n, scale, MaskKind::None, none, 0, sum);
    }
    if (live[r]) whole = std::min(whole, nr / 16);
  }
  for (int64_t j = 0; j < whole * 16; j += 16) {
    for (int r = 0; r < rows; ++r) {
      if (!live[r]) continue;
      float* x = s + r * lds + j;
      const __m512 e = exp2_nonpositive(_mm512_fmsub_ps(_mm512_loadu_ps(x), vs, vmax[r]));
      _mm512_storeu_ps(x, e);
      acc[r] = _mm512_add_ps(acc[r], e);
    }
  }
  for (int r = 0; r < rows; ++r) {
    if (!live[r]) {
      sum[r] = -1.0f;
      continue;
    }
    const int64_t room = (n[r] + 7) & ~int64_t(7);
    for (int64_t j = whole * 16; j < room; j += 16) {  // the row's tail, zero from n[r] to room
      float* x = s + r * lds + j;
      const __mmask16 valid = mask_of(n[r] - j);
      const __m512 e = _mm512_maskz_mov_ps(valid, exp2_nonpositive(_mm512_fmsub_ps(_mm512_maskz_loadu_ps(valid, x), vs, vmax[r])));
      _mm512_mask_storeu_ps(x, mask_of(room - j), e);
      acc[r] = _mm512_add_ps(acc[r], e);
    }
    sum[r] = _mm512_reduce_add_ps(acc[r]);
  }
}

// Primitives::softmax 16 keys at a time; masks strided along the keys go to AVX2's.
void softmax_avx512(float* s, int64_t lds, int rows, const int64_t* n, float scale, MaskKind kind,
                    const void* const* mask, int64_t mj, float* sum) {
  if (kind == MaskKind::None && scale > 0) return softmax_plain(s, lds, rows, n, scale, sum);
  if (kind != MaskKind::None && mj != 1) return avx2_primitives.softmax(s, lds, rows, n, scale, kind, mask, mj, sum);
  const float inf = __builtin_huge_valf();
  const __m512 ninf = _mm512_set1_ps(-inf), vs = _mm512_set1_ps(scale);
  __m512 vmax[kBlockRows], acc[kBlockRows];
  int64_t n8[kBlockRows], most = 0;
  for (int r = 0; r < rows; ++r) {
    float* x = s + r * lds;
    const int64_t nr = n[r], room = (nr + 7) & ~int64_t(7);
    __m512 m = ninf;
    __mmask16 nan = 0;
    for (int64_t j = 0; j < room; j += 16) {
      const __mmask16 valid = mask_of(nr - j), store = mask_of(room - j);
      __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(valid, x + j), vs);
      if (kind == MaskKind::Float) {
        v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(valid, static_cast<const float*>(mask[r]) + j));
      } else if (kind == MaskKind::Bool) {
        const __m128i b = _mm_maskz_loadu_epi8(valid, static_cast<const uint8_t*>(mask[r]) + j);
        v = _mm512_mask_mov_ps(v, _mm512_cmpeq_epi32_mask(_mm512_cvtepu8_epi32(b), _mm512_setzero_si512()), ninf);
      }
      v = _mm512_mask_mov_ps(ninf, valid, v);
      _mm512_mask_storeu_ps(x + j, store, v);
      nan |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
      m = _mm512_max_ps(m, v);
    }
    const float mx = nan ? __builtin_nanf("") : _mm512_reduce_max_ps(m);  // (vmaxps drops NaN)
    vmax[r] = _mm512_set1_ps(mx);
    acc[r] = _mm512_setzero_ps();
    n8[r] = mx > -inf && mx < inf ? room : 0;  // attends nothing: no exps
    most = n8[r] > most ? n8[r] : most;
  }
  // the exps interleaved row by row: independent vectors for the out-of-order core
  for (int64_t j = 0; j < most; j += 16) {
    for (int r = 0; r < rows; ++r) {
      if (j >= n8[r]) continue;
      const __mmask16 store = mask_of(n8[r] - j);
      float* x = s + r * lds + j;
      const __m512 e = _mm512_maskz_mov_ps(store, exp_nonpositive(_mm512_sub_ps(_mm512_maskz_loadu_ps(store, x), vmax[r])));
      _mm512_mask_storeu_ps(x, store, e);
      acc[r] = _mm512_add_ps(acc[r], e);
    }
  }
  for (int r = 0; r < rows; ++r) sum[r] = n8[r] ? _mm512_reduce_add_ps(acc[r]) : -1.0f;
}

}  // namespace

static_assert(kBlockRows <= 6, "the tiles hold up to 6 rows");

const Primitives& avx512_primitives() {
  static const Primitives p = {avx2_primitives.dots,  transpose_blocked,         dots_t_avx512,
                               softmax_avx512,        avx2_primitives.live_keys, wsum_avx512,
                               avx2_primitives.dots8, avx2_primitives.wsum8};
  return p;
}

}  // namespace attention
}  // namespace pocketml
