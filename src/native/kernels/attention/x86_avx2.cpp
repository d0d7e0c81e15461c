// AVX2 + FMA primitives of the attention kernel, compiled with those flags for this file only and
// called only when the CPU has them (core/cpu.h). Like kernels/linear/x86_avx2.cpp, nothing here
// uses an inline function of a shared header or of the standard library.
#include <immintrin.h>

#include <cstdint>

#include "kernels/activation/fast_coefficients.h"
#include "kernels/attention/attention.h"

namespace pocketml {
namespace attention {
namespace {

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// The four sums of a0..a3 (8 lanes each), in order: single-uop shuffles and adds (vhaddps is three
// uops on AMD's cores).
inline __m128 reduce4(__m256 a0, __m256 a1, __m256 a2, __m256 a3) {
  const __m256 s01 = _mm256_add_ps(_mm256_unpacklo_ps(a0, a1), _mm256_unpackhi_ps(a0, a1));
  const __m256 s23 = _mm256_add_ps(_mm256_unpacklo_ps(a2, a3), _mm256_unpackhi_ps(a2, a3));
  const __m256d d01 = _mm256_castps_pd(s01), d23 = _mm256_castps_pd(s23);
  const __m256 w = _mm256_add_ps(_mm256_castpd_ps(_mm256_unpacklo_pd(d01, d23)),
                                 _mm256_castpd_ps(_mm256_unpackhi_pd(d01, d23)));
  return _mm_add_ps(_mm256_castps256_ps128(w), _mm256_extractf128_ps(w, 1));
}

// Software prefetch of the rows kPrefetchKeys keys ahead: a KV cache's rows for one head are
// contiguous, but the hardware prefetchers stop at each 4 KiB page (16 rows of 64 floats), and in
// a decode step the cache comes from DRAM (the weights streamed since evicted it).
constexpr int64_t kPrefetchKeys = 12;
inline void prefetch_rows(const float* row, int rows, int64_t ld, int64_t E) {
  for (int i = 0; i < rows; ++i)
    for (int64_t e = 0; e < E; e += 16) _mm_prefetch(reinterpret_cast<const char*>(row + i * ld + e), _MM_HINT_T0);
}

// Rows of keys or values where they lie, float32 ...
struct F32Rows {
  const float* base;
  int64_t ld;
  struct Row {
    const float* p;
    __m256 load(int64_t e) const { return _mm256_loadu_ps(p + e); }
    float at(int64_t e) const { return p[e]; }
  };
  Row row(int64_t j) const { return {base + j * ld}; }
  void prefetch(int64_t j, int rows, int64_t E) const { prefetch_rows(base + j * ld, rows, ld, E); }
};

// ... or an int8 cache's, each row times its scale as it is loaded: the floats dequantize_rows
// gives, so the sums are the float path's on them, bit for bit
struct I8Rows {
  const int8_t* base;
  int64_t ld;
  const float* scale;
  int64_t lds;
  struct Row {
    const int8_t* p;
    __m256 s;
    float sc;
    __m256 load(int64_t e) const {
      const __m128i b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p + e));
      return _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(b)), s);
    }
    float at(int64_t e) const { return static_cast<float>(p[e]) * sc; }
  };
  Row row(int64_t j) const {
    const float sc = scale[j * lds];
    return {base + j * ld, _mm256_set1_ps(sc), sc};
  }
  void prefetch(int64_t j, int rows, int64_t E) const {
    for (int i = 0; i < rows; ++i)
      for (int64_t e = 0; e < E; e += 64) _mm_prefetch(reinterpret_cast<const char*>(base + (j + i) * ld + e), _MM_HINT_T0);
  }
};

// R query rows against the keys, four keys at a time: each loaded key vector serves the R rows,
// and the R x 4 accumulators are reduced four at a time.
template <int R, class K>
void dots_rows(const float* const* q, const K& k, int64_t n, int64_t E, float* out, int64_t ldo) {
  const int64_t E8 = E & ~int64_t(7);
  int64_t j = 0;
  for (; j + 4 <= n; j += 4) {
    if (j + kPrefetchKeys + 4 <= n) k.prefetch(j + kPrefetchKeys, 4, E);
    const typename K::Row kj[4] = {k.row(j), k.row(j + 1), k.row(j + 2), k.row(j + 3)};
    __m256 acc[R][4];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
      for (int c = 0; c < 4; ++c) acc[r][c] = _mm256_setzero_ps();
    for (int64_t e = 0; e < E8; e += 8) {
      __m256 qv[R];
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) qv[r] = _mm256_loadu_ps(q[r] + e);
#pragma GCC unroll 8
      for (int c = 0; c < 4; ++c) {
        const __m256 kv = kj[c].load(e);
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) acc[r][c] = _mm256_fmadd_ps(qv[r], kv, acc[r][c]);
      }
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      __m128 s = reduce4(acc[r][0], acc[r][1], acc[r][2], acc[r][3]);
      if (E8 < E) {
        alignas(16) float t[4];
        _mm_store_ps(t, s);
#pragma GCC unroll 8
        for (int c = 0; c < 4; ++c)
          for (int64_t e = E8; e < E; ++e) t[c] += q[r][e] * kj[c].at(e);
        s = _mm_load_ps(t);
      }
      _mm_storeu_ps(out + r * ldo + j, s);
    }
  }
  for (; j < n; ++j) {
    const typename K::Row kj = k.row(j);
    __m256 acc[R];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_ps();
    for (int64_t e = 0; e < E8; e += 8) {
      const __m256 kv = kj.load(e);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) acc[r] = _mm256_fmadd_ps(_mm256_loadu_ps(q[r] + e), kv, acc[r]);
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      float s = hsum(acc[r]);
      for (int64_t e = E8; e < E; ++e) s += q[r][e] * kj.at(e);
      out[r * ldo + j] = s;
    }
  }
}

// Three rows at a time (3 x 4 accumulators, 3 query vectors and a key vector: the 16 registers).
template <class K>
void dots_blocks(const float* const* q, int rows, const K& k, int64_t n, int64_t E, float* out, int64_t ldo) {
  for (int r = 0; r < rows; r += 3, out += 3 * ldo) {
    switch (rows - r) {
      case 1: dots_rows<1>(q + r, k, n, E, out, ldo); break;
      case 2: dots_rows<2>(q + r, k, n, E, out, ldo); break;
      default: dots_rows<3>(q + r, k, n, E, out, ldo); break;
    }
  }
}

void dots_avx2(const float* const* q, int rows, const float* k, int64_t ldk, int64_t n, int64_t E, float* out,
               int64_t ldo) {
  dots_blocks(q, rows, F32Rows{k, ldk}, n, E, out, ldo);
}

void dots8_avx2(const float* const* q, int rows, const int8_t* k, int64_t ldk, const float* ks, int64_t lds,
                int64_t n, int64_t E, float* out, int64_t ldo) {
  dots_blocks(q, rows, I8Rows{k, ldk, ks, lds}, n, E, out, ldo);
}

// R query rows against 16 (then 8) transposed keys at a time: per feature one broadcast of each
// row's q and two key vectors, R x 2 FMAs into as many accumulators, no horizontal sums (the
// dots above reduce every 4 keys' 8-lane sums: a third of their instructions at E = 32).
template <int R>
void dots_t_rows(const float* const* q, const float* kt, int64_t ldt, int64_t n, int64_t E, float* out,
                 int64_t ldo) {
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) {
    __m256 acc[R][2];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
    const float* kp = kt + j;
    for (int64_t e = 0; e < E; ++e, kp += ldt) {
      const __m256 k0 = _mm256_loadu_ps(kp), k1 = _mm256_loadu_ps(kp + 8);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        const __m256 a = _mm256_broadcast_ss(q[r] + e);
        acc[r][0] = _mm256_fmadd_ps(a, k0, acc[r][0]);
        acc[r][1] = _mm256_fmadd_ps(a, k1, acc[r][1]);
      }
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      _mm256_storeu_ps(out + r * ldo + j, acc[r][0]);
      _mm256_storeu_ps(out + r * ldo + j + 8, acc[r][1]);
    }
  }
  for (; j < n; j += 8) {  // kt's zero columns past n: whole vectors
    __m256 acc[R];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_ps();
    const float* kp = kt + j;
    for (int64_t e = 0; e < E; ++e, kp += ldt) {
      const __m256 k0 = _mm256_loadu_ps(kp);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) acc[r] = _mm256_fmadd_ps(_mm256_broadcast_ss(q[r] + e), k0, acc[r]);
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) _mm256_storeu_ps(out + r * ldo + j, acc[r]);
  }
}

void dots_t_avx2(const float* const* q, int rows, const float* kt, int64_t ldt, int64_t n, int64_t E,
                 float* out, int64_t ldo) {
  switch (rows) {
    case 1: return dots_t_rows<1>(q, kt, ldt, n, E, out, ldo);
    case 2: return dots_t_rows<2>(q, kt, ldt, n, E, out, ldo);
    case 3: return dots_t_rows<3>(q, kt, ldt, n, E, out, ldo);
    case 4: return dots_t_rows<4>(q, kt, ldt, n, E, out, ldo);
    case 5: return dots_t_rows<5>(q, kt, ldt, n, E, out, ldo);
    default: return dots_t_rows<6>(q, kt, ldt, n, E, out, ldo);
  }
}

// 8 x 8 blocks through registers (unpack, shuffle, 128-bit permutes), the edges one by one.
void transpose_avx2(const float* k, int64_t ldk, int64_t n, int64_t E, float* kt, int64_t ldt) {
  const int64_t n8 = n & ~int64_t(7), E8 = E & ~int64_t(7);
  for (int64_t j = 0; j < n8; j += 8) {
    for (int64_t e = 0; e < E8; e += 8) {
      __m256 r[8];
      for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(k + (j + i) * ldk + e);
      const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]),
                   t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]),
                   t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]),
                   t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
      const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE),
                   u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE),
                   u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE),
                   u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
      float* o = kt + e * ldt + j;
      _mm256_storeu_ps(o + 0 * ldt, _mm256_permute2f128_ps(u0, u4, 0x20));
      _mm256_storeu_ps(o + 1 * ldt, _mm256_permute2f128_ps(u1, u5, 0x20));
      _mm256_storeu_ps(o + 2 * ldt, _mm256_permute2f128_ps(u2, u6, 0x20));
      _mm256_storeu_ps(o + 3 * ldt, _mm256_permute2f128_ps(u3, u7, 0x20));
      _mm256_storeu_ps(o + 4 * ldt, _mm256_permute2f128_ps(u0, u4, 0x31));
      _mm256_storeu_ps(o + 5 * ldt, _mm256_permute2f128_ps(u1, u5, 0x31));
      _mm256_storeu_ps(o + 6 * ldt, _mm256_permute2f128_ps(u2, u6, 0x31));
      _mm256_storeu_ps(o + 7 * ldt, _mm256_permute2f128_ps(u3, u7, 0x31));
    }
    for (int64_t e = E8; e < E; ++e)
      for (int i = 0; i < 8; ++i) kt[e * ldt + j + i] = k[(j + i) * ldk + e];
  }
  for (int64_t e = 0; e < E; ++e) {
    for (int64_t j = n8; j < n; ++j) kt[e * ldt + j] = k[j * ldk + e];
    for (int64_t j = n; j < ldt; ++j) kt[e * ldt + j] = 0.0f;
  }
}

// out[r][c0 : c0 + 8 V] for R rows: R x V accumulators over the keys, each loaded v vector serving
// the R rows.
template <int R, int V, class X>
inline void wsum_tile(const float* p, int64_t ldp, const int32_t* keys, int64_t nk, const X& v, int64_t c0,
                      int64_t Ev, const float* mul, float* const* out, bool fetch) {
  __m256 acc[R][V];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
    for (int c = 0; c < V; ++c) acc[r][c] = _mm256_setzero_ps();
  for (int64_t t = 0; t < nk; ++t) {
    const int64_t j = keys[t];
    const typename X::Row x = v.row(j);
    // the first pass over the columns brings whole rows in for the later ones
    if (fetch && c0 == 0 && t + kPrefetchKeys < nk) v.prefetch(keys[t + kPrefetchKeys], 1, Ev);
    __m256 xv[V];
#pragma GCC unroll 8
    for (int c = 0; c < V; ++c) xv[c] = x.load(c0 + 8 * c);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const __m256 a = _mm256_broadcast_ss(p + r * ldp + j);
#pragma GCC unroll 8
      for (int c = 0; c < V; ++c) acc[r][c] = _mm256_fmadd_ps(a, xv[c], acc[r][c]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    const __m256 m = _mm256_set1_ps(mul[r]);
#pragma GCC unroll 8
    for (int c = 0; c < V; ++c) _mm256_storeu_ps(out[r] + c0 + 8 * c, _mm256_mul_ps(acc[r][c], m));
  }
}

// 16 outputs of R <= 6 rows at a time (12 accumulators), 32 of R <= 2 (8), then 8, then the rest.
template <int R, class X>
void wsum_rows(const float* p, int64_t ldp, const int32_t* keys, int64_t nk, const X& v, int64_t Ev,
               const float* mul, float* const* out, bool fetch) {
  constexpr int V = R <= 2 ? 4 : 2;
  int64_t c = 0;
  for (; c + 8 * V <= Ev; c += 8 * V) wsum_tile<R, V>(p, ldp, keys, nk, v, c, Ev, mul, out, fetch);
  for (; c + 8 <= Ev; c += 8) wsum_tile<R, 1>(p, ldp, keys, nk, v, c, Ev, mul, out, fetch);
  for (; c < Ev; ++c) {
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      float s = 0;
      for (int64_t t = 0; t < nk; ++t) s += p[r * ldp + keys[t]] * v.row(keys[t]).at(c);
      out[r][c] = s * mul[r];
    }
  }
}

template <class X>
void wsum_blocks(const float* p, int64_t ldp, int rows, const int32_t* keys, int64_t nk, const X& v, int64_t Ev,
                 const float* mul, float* const* out, bool fetch) {
  switch (rows) {
    case 1: return wsum_rows<1>(p, ldp, keys, nk, v, Ev, mul, out, fetch);
    case 2: return wsum_rows<2>(p, ldp, keys, nk, v, Ev, mul, out, fetch);
    case 3: return wsum_rows<3>(p, ldp, keys, nk, v, Ev, mul, out, fetch);
    case 4: return wsum_rows<4>(p, ldp, keys, nk, v, Ev, mul, out, fetch);
    case 5: return wsum_rows<5>(p, ldp, keys, nk, v, Ev, mul, out, fetch);
    default: return wsum_rows<6>(p, ldp, keys, nk, v, Ev, mul, out, fetch);
  }
}

void wsum_avx2(const float* p, int64_t ldp, int rows, const int32_t* keys, int64_t nk, const float* v,
               int64_t ldv, int64_t Ev, const float* mul, float* const* out, bool fetch) {
  wsum_blocks(p, ldp, rows, keys, nk, F32Rows{v, ldv}, Ev, mul, out, fetch);
}

void wsum8_avx2(const float* p, int64_t ldp, int rows, const int32_t* keys, int64_t nk, const int8_t* v,
                int64_t ldv, const float* vs, int64_t lds, int64_t Ev, const float* mul, float* const* out) {
  wsum_blocks(p, ldp, rows, keys, nk, I8Rows{v, ldv, vs, lds}, Ev, mul, out, true);
}

// exp(x) for x <= 0, not NaN (softmax's x - max), to about an ulp: x = n ln2 + r, |r| <= ln2 / 2
// (n from the 1.5 * 2^23 shifter, whose low mantissa bits then hold it), exp(r) by a degree-6
// minimax polynomial (relative error 2e-9), 2^n added to its exponent bits; 0 below -86.5, where
// 2^n would leave the normal range (exp(-inf) = 0).
inline __m256 exp_nonpositive(__m256 x) {
  const __m256 lo = _mm256_set1_ps(-86.5f), shifter = _mm256_set1_ps(12582912.0f);
  const __m256 under = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
  const __m256 xc = _mm256_max_ps(x, lo);
  const __m256 fx = _mm256_fmadd_ps(xc, _mm256_set1_ps(1.44269504088896341f), shifter);
  const __m256 n = _mm256_sub_ps(fx, shifter);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), xc);  // exact
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 y = _mm256_set1_ps(activation::kExpf[0]);
  for (int i = 1; i < 7; ++i) y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(activation::kExpf[i]));
  const __m256i e = _mm256_slli_epi32(_mm256_castps_si256(fx), 23);  // n << 23
  return _mm256_andnot_ps(under, _mm256_castsi256_ps(_mm256_add_epi32(_mm256_castps_si256(y), e)));
}

// The row's x (see Primitives::softmax) eight at a time, the lanes past n -inf; returns the
// running max and or-s NaN lanes into nan.
inline __m256 scores8(float* s, int64_t j, int64_t n, __m256 vs, MaskKind kind, const void* mask,
                      __m256 vmax, __m256& nan) {
  const __m256 ninf = _mm256_set1_ps(-__builtin_huge_valf());
  const int64_t left = n - j;
  __m256 x = _mm256_mul_ps(_mm256_loadu_ps(s + j), vs);
  __m256i lanes = _mm256_set1_epi32(-1);
  if (left < 8)
    lanes = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int32_t>(left)),
                               _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  if (kind == MaskKind::Float) {
    const float* mk = static_cast<const float*>(mask) + j;
    x = _mm256_add_ps(x, left < 8 ? _mm256_maskload_ps(mk, lanes) : _mm256_loadu_ps(mk));
  } else if (kind == MaskKind::Bool) {
    const uint8_t* mk = static_cast<const uint8_t*>(mask) + j;
    __m128i b8;
    if (left < 8) {
      int64_t t = 0;
      for (int64_t i = 0; i < left; ++i) t |= int64_t(mk[i]) << (8 * i);
      b8 = _mm_cvtsi64_si128(t);
    } else {
      b8 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(mk));
    }
    const __m256i b = _mm256_cvtepu8_epi32(b8);
    x = _mm256_blendv_ps(x, ninf, _mm256_castsi256_ps(_mm256_cmpeq_epi32(b, _mm256_setzero_si256())));
  }
  if (left < 8) x = _mm256_blendv_ps(ninf, x, _mm256_castsi256_ps(lanes));
  _mm256_storeu_ps(s + j, x);
  nan = _mm256_or_ps(nan, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
  return _mm256_max_ps(vmax, x);
}

// One row's x (see Primitives::softmax), the lanes past n -inf; returns max x in every lane, or NaN
// if some x is NaN.
__m256 scores_row(float* s, int64_t n, float scale, MaskKind kind, const void* mask, int64_t mj) {
  const float inf = __builtin_huge_valf();
  const int64_t n8 = (n + 7) & ~int64_t(7);
  __m256 vmax = _mm256_set1_ps(-inf), nan = _mm256_setzero_ps();
  const __m256 vs = _mm256_set1_ps(scale);
  if (kind == MaskKind::None || mj == 1) {
    for (int64_t j = 0; j < n; j += 8) vmax = scores8(s, j, n, vs, kind, mask, vmax, nan);
  } else {  // a mask broadcast or strided along the keys
    for (int64_t j = 0; j < n; ++j) {
      float x = s[j] * scale;
      if (kind == MaskKind::Float) x += static_cast<const float*>(mask)[j * mj];
      if (kind == MaskKind::Bool && !static_cast<const uint8_t*>(mask)[j * mj]) x = -inf;
      s[j] = x;
    }
    for (int64_t j = n; j < n8; ++j) s[j] = -inf;
    for (int64_t j = 0; j < n8; j += 8) {
      const __m256 x = _mm256_loadu_ps(s + j);
      nan = _mm256_or_ps(nan, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
      vmax = _mm256_max_ps(vmax, x);
    }
  }
  if (_mm256_movemask_ps(nan)) return _mm256_castsi256_ps(_mm256_set1_epi32(-1));  // (vmaxps drops NaN)
  vmax = _mm256_max_ps(vmax, _mm256_permute2f128_ps(vmax, vmax, 1));
  vmax = _mm256_max_ps(vmax, _mm256_shuffle_ps(vmax, vmax, 0x4E));
  return _mm256_max_ps(vmax, _mm256_shuffle_ps(vmax, vmax, 0xB1));
}

// The rows' x and maxima first, then their exps interleaved row by row: independent vectors for
// the out-of-order core, where one short row's exp chain would leave it waiting.
void softmax_avx2(float* s, int64_t lds, int rows, const int64_t* n, float scale, MaskKind kind,
                  const void* const* mask, int64_t mj, float* sum) {
  const float inf = __builtin_huge_valf();
  __m256 vmax[kBlockRows], acc[kBlockRows];
  int64_t n8[kBlockRows], most = 0;
  for (int r = 0; r < rows; ++r) {
    vmax[r] = scores_row(s + r * lds, n[r], scale, kind, mask[r], mj);
    acc[r] = _mm256_setzero_ps();
    const float m = _mm256_cvtss_f32(vmax[r]);
    n8[r] = m > -inf && m < inf ? (n[r] + 7) & ~int64_t(7) : 0;  // attends nothing: no exps
    most = n8[r] > most ? n8[r] : most;
  }
  for (int64_t j = 0; j < most; j += 8) {
    for (int r = 0; r < rows; ++r) {
      if (j >= n8[r]) continue;
      float* x = s + r * lds + j;
      const __m256 e = exp_nonpositive(_mm256_sub_ps(_mm256_loadu_ps(x), vmax[r]));
      _mm256_storeu_ps(x, e);
      acc[r] = _mm256_add_ps(acc[r], e);
    }
  }
  for (int r = 0; r < rows; ++r) sum[r] = n8[r] ? hsum(acc[r]) : -1.0f;
}

// Eight keys at a time: the rows' weights or-ed (all >= 0: zero iff every one is +0).
int64_t live_keys_avx2(const float* p, int64_t ldp, int rows, int64_t n, int32_t* keys) {
  const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  int64_t nk = 0, j = 0;
  for (; j + 8 <= n; j += 8) {
    __m256 any = _mm256_loadu_ps(p + j);
    for (int r = 1; r < rows; ++r) any = _mm256_or_ps(any, _mm256_loadu_ps(p + r * ldp + j));
    const unsigned bits =
        static_cast<unsigned>(_mm256_movemask_ps(_mm256_cmp_ps(any, _mm256_setzero_ps(), _CMP_NEQ_UQ)));
    if (bits == 0xFF) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(keys + nk),
                          _mm256_add_epi32(iota, _mm256_set1_epi32(static_cast<int32_t>(j))));
      nk += 8;
      continue;
    }
    for (int i = 0; i < 8; ++i) {
      keys[nk] = static_cast<int32_t>(j + i);
      nk += (bits >> i) & 1;
    }
  }
  for (; j < n; ++j) {
    bool any = false;
    for (int r = 0; r < rows; ++r) any = any || p[r * ldp + j] != 0.0f;
    keys[nk] = static_cast<int32_t>(j);
    nk += any;
  }
  return nk;
}

}  // namespace

static_assert(kBlockRows <= 6, "wsum_avx2 handles up to 6 rows");
const Primitives avx2_primitives = {dots_avx2,      transpose_avx2, dots_t_avx2, softmax_avx2,
                                     live_keys_avx2, wsum_avx2,      dots8_avx2,  wsum8_avx2};

}  // namespace attention
}  // namespace pocketml
