// AVX-512 F rows of the normalizations, compiled with AVX-512 for this file only and called only
// where use_avx512vnni() (core/cpu.h). The float64 statistics of norm.cpp, eight lanes a vector
// in four chains rather than four scalar chains: a 384-wide row in ~60 cycles, not ~800 (the
// scalar sums were the whole cost of Whisper's layer norms, not memory).
#include <immintrin.h>

#include "kernels/norm/norm.h"

namespace pocketml {
namespace norm {
namespace {

inline __mmask16 mask_of(int64_t n) {
  return n >= 16 ? __mmask16(0xffff) : __mmask16((1u << (n > 0 ? n : 0)) - 1);
}

// sum of x (kSquare: of x^2) in float64
template <bool kSquare>
double total(const float* x, int64_t D) {
  __m512d acc[4] = {_mm512_setzero_pd(), _mm512_setzero_pd(), _mm512_setzero_pd(), _mm512_setzero_pd()};
  int64_t i = 0;
  for (; i < D; i += 32) {
    for (int h = 0; h < 2; ++h) {
      const __m512 v = _mm512_maskz_loadu_ps(mask_of(D - i - 16 * h), x + i + 16 * h);
      const __m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(v));
      const __m512d hi = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
      if (kSquare) {
        acc[2 * h] = _mm512_fmadd_pd(lo, lo, acc[2 * h]);
        acc[2 * h + 1] = _mm512_fmadd_pd(hi, hi, acc[2 * h + 1]);
      } else {
        acc[2 * h] = _mm512_add_pd(acc[2 * h], lo);
        acc[2 * h + 1] = _mm512_add_pd(acc[2 * h + 1], hi);
      }
    }
  }
  return _mm512_reduce_add_pd(_mm512_add_pd(_mm512_add_pd(acc[0], acc[1]), _mm512_add_pd(acc[2], acc[3])));
}

// out = (d * rstd) [* weight] [+ bias]
inline void affine(const float* d, float rstd, const float* weight, const float* bias, float* out,
                   int64_t D) {
  const __m512 r = _mm512_set1_ps(rstd);
  for (int64_t i = 0; i < D; i += 16) {
    const __mmask16 m = mask_of(D - i);
    __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, d + i), r);
    if (weight) v = _mm512_mul_ps(v, _mm512_maskz_loadu_ps(m, weight + i));
    if (bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, bias + i));
    _mm512_mask_storeu_ps(out + i, m, v);
  }
}

}  // namespace

void layer_norm_row_avx512(const float* x, const float* weight, const float* bias, double eps, float* out,
                           int64_t D) {
  const __m512 mean = _mm512_set1_ps(static_cast<float>(total<false>(x, D) / double(D)));
  for (int64_t i = 0; i < D; i += 16) {  // out may be x: read before write
    const __mmask16 m = mask_of(D - i);
    _mm512_mask_storeu_ps(out + i, m, _mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), mean));
  }
  const float rstd = static_cast<float>(1.0 / __builtin_sqrt(total<true>(out, D) / double(D) + eps));
  affine(out, rstd, weight, bias, out, D);
}

void rms_norm_row_avx512(const float* x, const float* weight, double eps, float* out, int64_t D) {
  const float rstd = static_cast<float>(1.0 / __builtin_sqrt(total<true>(x, D) / double(D) + eps));
  affine(x, rstd, weight, nullptr, out, D);
}

}  // namespace norm
}  // namespace pocketml
