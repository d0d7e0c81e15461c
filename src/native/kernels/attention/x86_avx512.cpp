// AVX-512 F primitives of the attention kernel for prefills and encoders (the two GEMM-like
// loops; the rest is AVX2's): compiled with AVX-512 for this file only and called only where
// use_avx512vnni() (core/cpu.h: AVX-512 F/BW/VL with the OS saving ZMM state). Where the CPU has
// two 512-bit FMA units (Intel server cores) they double the AVX2 loops' multiply-adds per cycle;
// where it splits a zmm FMA in two (Zen 4) they halve the loads and broadcasts per multiply-add.
// Like x86_avx2.cpp, nothing here uses an inline function of a shared header.
#include <immintrin.h>

#include <cstdint>

#include "kernels/attention/attention.h"

namespace pocketml {
namespace attention {
namespace {

inline __mmask16 mask_of(int64_t n) {
  return n >= 16 ? __mmask16(0xffff) : __mmask16((1u << (n > 0 ? n : 0)) - 1);
}

// R query rows against V x 16 transposed keys at a time (kt: E rows of ldt floats, zero past n;
// out has room for n rounded up to 8): per feature V key vectors and R broadcasts feed R x V
// FMAs, no horizontal sums; the last vectors masked to n rounded up to 8.
template <int R, int V>
inline void dots_t_tile(const float* const* q, const float* kt, int64_t ldt, int64_t j, int64_t width,
                        int64_t E, float* out, int64_t ldo) {
  __mmask16 m[V];
  for (int c = 0; c < V; ++c) m[c] = mask_of(width - 16 * c);
  __m512 acc[R][V];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int c = 0; c < V; ++c) acc[r][c] = _mm512_setzero_ps();
  const float* kp = kt + j;
  for (int64_t e = 0; e < E; ++e, kp += ldt) {
    __m512 k[V];
#pragma GCC unroll 4
    for (int c = 0; c < V; ++c) k[c] = _mm512_maskz_loadu_ps(m[c], kp + 16 * c);
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
void dots_t_rows(const float* const* q, const float* kt, int64_t ldt, int64_t n, int64_t E, float* out,
                 int64_t ldo) {
  const int64_t n8 = (n + 7) / 8 * 8;  // kt's zero columns up to here: whole columns computed
  int64_t j = 0;
  for (; j + 48 <= n8; j += 48) dots_t_tile<R, 3>(q, kt, ldt, j, 48, E, out, ldo);
  for (; j < n8; j += 16) dots_t_tile<R, 1>(q, kt, ldt, j, n8 - j, E, out, ldo);
}

void dots_t_avx512(const float* const* q, int rows, const float* kt, int64_t ldt, int64_t n, int64_t E,
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

// out[r][c0 : c0 + 16 V] for R rows: R x V accumulators over the live keys, each loaded row of v
// serving the R rows (the last vector masked to Ev).
template <int R, int V>
inline void wsum_tile(const float* p, int64_t ldp, const int32_t* keys, int64_t nk, const float* v,
                      int64_t ldv, int64_t c0, int64_t Ev, float* const* out) {
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
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int c = 0; c < V; ++c) _mm512_mask_storeu_ps(out[r] + c0 + 16 * c, m[c], acc[r][c]);
}

// 64 outputs a pass (a head of 64 in one pass over the keys: 24 accumulators for 6 rows), then 32,
// then 16 at a time, the last masked.
template <int R>
void wsum_rows(const float* p, int64_t ldp, const int32_t* keys, int64_t nk, const float* v, int64_t ldv,
               int64_t Ev, float* const* out) {
  int64_t c = 0;
  for (; c + 64 <= Ev; c += 64) wsum_tile<R, 4>(p, ldp, keys, nk, v, ldv, c, Ev, out);
  for (; c + 32 <= Ev; c += 32) wsum_tile<R, 2>(p, ldp, keys, nk, v, ldv, c, Ev, out);
  for (; c < Ev; c += 16) wsum_tile<R, 1>(p, ldp, keys, nk, v, ldv, c, Ev, out);
}

void wsum_avx512(const float* p, int64_t ldp, int rows, const int32_t* keys, int64_t nk, const float* v,
                 int64_t ldv, int64_t Ev, float* const* out, bool fetch) {
  if (fetch)  // a decode step's cache from memory: AVX2's loop, which prefetches
    return avx2_primitives.wsum(p, ldp, rows, keys, nk, v, ldv, Ev, out, fetch);
  switch (rows) {
    case 1: return wsum_rows<1>(p, ldp, keys, nk, v, ldv, Ev, out);
    case 2: return wsum_rows<2>(p, ldp, keys, nk, v, ldv, Ev, out);
    case 3: return wsum_rows<3>(p, ldp, keys, nk, v, ldv, Ev, out);
    case 4: return wsum_rows<4>(p, ldp, keys, nk, v, ldv, Ev, out);
    case 5: return wsum_rows<5>(p, ldp, keys, nk, v, ldv, Ev, out);
    default: return wsum_rows<6>(p, ldp, keys, nk, v, ldv, Ev, out);
  }
}

}  // namespace

static_assert(kBlockRows <= 6, "the tiles hold up to 6 rows");

const Primitives& avx512_primitives() {
  static const Primitives p = {avx2_primitives.dots,     avx2_primitives.transpose, dots_t_avx512,
                               avx2_primitives.softmax,  avx2_primitives.live_keys, wsum_avx512,
                               avx2_primitives.scale};
  return p;
}

}  // namespace attention
}  // namespace pocketml
