// What the 1-D k-means sources share (compress/kmeans.cpp, compress/kmeans_dp.cpp): the SIMD
// switch of their inner loops and NumPy's summation orders, which their results reproduce bit
// for bit (both files build without FMA contraction). Internal: everything here has internal
// linkage, one copy per source file.
#pragma once

#include <cstdint>
#include <limits>

#include "core/cpu.h"

// SIMD: the DP's inner loop in 4 double lanes (GCC vector extensions), built for AVX2 on x86-64
// and chosen at run time; the scalar loop everywhere else (and with POCKETML_NATIVE_SIMD=0 in
// the environment, or _native.set_simd(False); the tests use both to check both loops).
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define POCKETML_AVX2 1
typedef double f64x4 __attribute__((vector_size(32)));
typedef int64_t i64x4 __attribute__((vector_size(32)));
#define POCKETML_INLINE __attribute__((always_inline)) inline
#else
#define POCKETML_INLINE inline
#endif

namespace pocketml {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

bool use_simd() {
#ifdef POCKETML_AVX2
  return cpu_features().avx2 && simd_enabled();
#else
  return false;
#endif
}

// ------------------------------------------------------------------------------------------
// NumPy's summation orders

// numpy's pairwise_sum, for N series at once: sequential below 8 items, eight interleaved
// partial sums up to 128, halves (rounded to a multiple of 8) above. The series s gives item i
// (s.item(i, v): v[c] for c < N) and blocks of 8 (s.block(i, v): v[c][j] = item i + j).
template <int N, class S>
void pairwise(const S& s, int64_t i0, int64_t n, double* out) {
  if (n < 8) {
    s.item(i0, out);  // numpy starts from -0.0, and -0.0 + v == v
    double v[N];
    for (int64_t i = 1; i < n; ++i) {
      s.item(i0 + i, v);
      for (int c = 0; c < N; ++c) out[c] += v[c];
    }
    return;
  }
  if (n <= 128) {
    double r[N][8], v[N][8];
    s.block(i0, r);
    int64_t i = 8;
    for (; i < n - (n % 8); i += 8) {
      s.block(i0 + i, v);
      for (int c = 0; c < N; ++c)
        for (int j = 0; j < 8; ++j) r[c][j] += v[c][j];
    }
    for (int c = 0; c < N; ++c)
      out[c] = ((r[c][0] + r[c][1]) + (r[c][2] + r[c][3])) +
               ((r[c][4] + r[c][5]) + (r[c][6] + r[c][7]));
    double t[N];
    for (; i < n; ++i) {
      s.item(i0 + i, t);
      for (int c = 0; c < N; ++c) out[c] += t[c];
    }
    return;
  }
  int64_t n2 = n / 2;
  n2 -= n2 % 8;
  double hi[N];
  pairwise<N>(s, i0, n2, out);
  pairwise<N>(s, i0 + n2, n - n2, hi);
  for (int c = 0; c < N; ++c) out[c] += hi[c];
}

// np.add.reduceat over the segment [i0, i1): its first item plus the pairwise sum of the rest.
template <int N, class S>
void reduceat(const S& s, int64_t i0, int64_t i1, double* out) {
  s.item(i0, out);
  if (i1 - i0 > 1) {
    double rest[N];
    pairwise<N>(s, i0 + 1, i1 - i0 - 1, rest);
    for (int c = 0; c < N; ++c) out[c] += rest[c];
  }
}

// [0.0, cumsum(f)] as np.concatenate([[0.0], np.cumsum(a)]) computes it.
template <class F>
void prefix(const F& f, int64_t n, double* out) {
  out[0] = 0.0;
  if (n == 0) return;
  double s = f(0);
  out[1] = s;
  for (int64_t i = 1; i < n; ++i) out[i + 1] = s = s + f(i);
}

}  // namespace
}  // namespace pocketml
