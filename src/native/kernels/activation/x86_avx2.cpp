// SiLU (optionally gated) with AVX2/FMA: four doubles at a time through the reference's formula
// (ir/ops/activation.py: x * 1 / (1 + e) or x * e / (1 + e), e = exp(-|x|)) with a vector exp
// accurate to about an ulp of double, so the float32 results equal the scalar path's but for
// a rare last-ulp tie. Lanes the vector exp does not cover (|x| > 150, where the float result no
// longer depends on e, and NaN) take the scalar path.
#include <immintrin.h>

#include <cmath>
#include <cstdint>

#include "kernels/activation/activation.h"

namespace pocketml {
namespace activation {
namespace {

// exp(v) for v in [-150, 0]: v = n ln2 + r, |r| <= ln2 / 2, exp(r) by its Taylor series to
// degree 13 (truncation below 1e-17), times 2^n built in the exponent bits (n >= -217: normal).
inline __m256d exp_neg(__m256d v) {
  const __m256d n = _mm256_round_pd(_mm256_mul_pd(v, _mm256_set1_pd(1.4426950408889634)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256d r = _mm256_fnmadd_pd(n, _mm256_set1_pd(6.93147180369123816490e-01), v);
  r = _mm256_fnmadd_pd(n, _mm256_set1_pd(1.90821492927058770002e-10), r);
  static const double c[] = {1.0 / 6227020800.0, 1.0 / 479001600.0, 1.0 / 39916800.0,
                             1.0 / 3628800.0,    1.0 / 362880.0,    1.0 / 40320.0,
                             1.0 / 5040.0,       1.0 / 720.0,       1.0 / 120.0,
                             1.0 / 24.0,         1.0 / 6.0,         0.5,
                             1.0,                1.0};
  __m256d p = _mm256_set1_pd(c[0]);
  for (int i = 1; i < 14; ++i) p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(c[i]));
  const __m128i ni = _mm256_cvtpd_epi32(n);
  const __m256i bits = _mm256_slli_epi64(_mm256_add_epi64(_mm256_cvtepi32_epi64(ni), _mm256_set1_epi64x(1023)), 52);
  return _mm256_mul_pd(p, _mm256_castsi256_pd(bits));
}

inline double silu_scalar(double x) {
  const double e = std::exp(-std::fabs(x));
  return x * (x >= 0 ? 1.0 / (1.0 + e) : e / (1.0 + e));
}

}  // namespace

void silu_avx2(const float* x, float* out, int64_t n, const float* mul) {
  const __m256d one = _mm256_set1_pd(1.0), zero = _mm256_setzero_pd();
  const __m256d limit = _mm256_set1_pd(150.0);
  const __m256d abs_mask = _mm256_castsi256_pd(_mm256_set1_epi64x(0x7FFFFFFFFFFFFFFFLL));
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const __m256d v = _mm256_cvtps_pd(_mm_loadu_ps(x + i));
    const __m256d a = _mm256_and_pd(v, abs_mask);
    if (_mm256_movemask_pd(_mm256_cmp_pd(a, limit, _CMP_LE_OQ)) != 0xF) {  // NaN or |x| > 150
      for (int j = 0; j < 4; ++j) {
        const float s = static_cast<float>(silu_scalar(static_cast<double>(x[i + j])));
        out[i + j] = mul ? s * mul[i + j] : s;
      }
      continue;
    }
    const __m256d e = exp_neg(_mm256_sub_pd(zero, a));
    const __m256d d = _mm256_add_pd(one, e);
    const __m256d num = _mm256_blendv_pd(e, one, _mm256_cmp_pd(v, zero, _CMP_GE_OQ));
    __m128 s = _mm256_cvtpd_ps(_mm256_mul_pd(v, _mm256_div_pd(num, d)));
    if (mul) s = _mm_mul_ps(s, _mm_loadu_ps(mul + i));
    _mm_storeu_ps(out + i, s);
  }
  for (; i < n; ++i) {
    const float s = static_cast<float>(silu_scalar(static_cast<double>(x[i])));
    out[i] = mul ? s * mul[i] : s;
  }
}

}  // namespace activation
}  // namespace pocketml
