// AVX2 + FMA primitives of the attention kernel, compiled with those flags for this file only and
// called only when the CPU has them (core/cpu.h). Like kernels/linear/x86_avx2.cpp, nothing here
// uses an inline function of a shared header or of the standard library.
#include <immintrin.h>

#include <cstdint>

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

// exp(x) to ~1 ulp (Cephes' expf: x = n ln2 + r, |r| <= ln2/2, a degree-6 polynomial in r, then
// * 2^n); 0 below -87.3 (exp(-inf) = 0), +inf above 88 (softmax only feeds x <= 0), NaN stays NaN.
inline __m256 exp256(__m256 x) {
  const __m256 hi = _mm256_set1_ps(88.0f), lo = _mm256_set1_ps(-87.3365447505531f);
  const __m256 under = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
  const __m256 over = _mm256_cmp_ps(x, hi, _CMP_GT_OQ);
  __m256 xc = _mm256_min_ps(_mm256_max_ps(x, lo), hi);
  const __m256 fx = _mm256_round_ps(_mm256_mul_ps(xc, _mm256_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  xc = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), xc);
  xc = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), xc);
  __m256 y = _mm256_set1_ps(1.9875691500E-4f);
  y = _mm256_fmadd_ps(y, xc, _mm256_set1_ps(1.3981999507E-3f));
  y = _mm256_fmadd_ps(y, xc, _mm256_set1_ps(8.3334519073E-3f));
  y = _mm256_fmadd_ps(y, xc, _mm256_set1_ps(4.1665795894E-2f));
  y = _mm256_fmadd_ps(y, xc, _mm256_set1_ps(1.6666665459E-1f));
  y = _mm256_fmadd_ps(y, xc, _mm256_set1_ps(5.0000001201E-1f));
  const __m256 x2 = _mm256_mul_ps(xc, xc);
  y = _mm256_fmadd_ps(y, x2, _mm256_add_ps(xc, _mm256_set1_ps(1.0f)));
  // 2^n: n in [-126, 127] after the clamp
  const __m256i n = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(fx), _mm256_set1_epi32(127)), 23);
  y = _mm256_mul_ps(y, _mm256_castsi256_ps(n));
  y = _mm256_andnot_ps(under, y);
  y = _mm256_blendv_ps(y, _mm256_set1_ps(__builtin_huge_valf()), over);
  const __m256 isnan = _mm256_cmp_ps(x, x, _CMP_UNORD_Q);
  return _mm256_blendv_ps(y, x, isnan);
}

inline float dot1(const float* a, const float* b, int64_t n) {
  __m256 s0 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
  float s = hsum(s0);
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

// Four keys at a time: four independent accumulators, reduced together.
void dots_avx2(const float* q, const float* k, int64_t ldk, int64_t n, int64_t E, float* out) {
  const int64_t E8 = E & ~int64_t(7);
  int64_t j = 0;
  for (; j + 4 <= n; j += 4) {
    const float *k0 = k + j * ldk, *k1 = k0 + ldk, *k2 = k1 + ldk, *k3 = k2 + ldk;
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(),
           a3 = _mm256_setzero_ps();
    for (int64_t e = 0; e < E8; e += 8) {
      const __m256 x = _mm256_loadu_ps(q + e);
      a0 = _mm256_fmadd_ps(x, _mm256_loadu_ps(k0 + e), a0);
      a1 = _mm256_fmadd_ps(x, _mm256_loadu_ps(k1 + e), a1);
      a2 = _mm256_fmadd_ps(x, _mm256_loadu_ps(k2 + e), a2);
      a3 = _mm256_fmadd_ps(x, _mm256_loadu_ps(k3 + e), a3);
    }
    // [a0 a1 a2 a3] -> their four sums
    const __m256 h01 = _mm256_hadd_ps(a0, a1), h23 = _mm256_hadd_ps(a2, a3);
    const __m256 h = _mm256_hadd_ps(h01, h23);
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    alignas(16) float t[4];
    _mm_store_ps(t, s);
    for (int64_t e = E8; e < E; ++e) {
      t[0] += q[e] * k0[e];
      t[1] += q[e] * k1[e];
      t[2] += q[e] * k2[e];
      t[3] += q[e] * k3[e];
    }
    out[j] = t[0], out[j + 1] = t[1], out[j + 2] = t[2], out[j + 3] = t[3];
  }
  for (; j < n; ++j) out[j] = dot1(q, k + j * ldk, E);
}

// out[e] = sum_j p[j] v[j, e]: up to 64 outputs held in registers over all keys.
void wsum_avx2(const float* p, const float* v, int64_t ldv, int64_t n, int64_t Ev, float* out) {
  int64_t e0 = 0;
  for (; e0 + 64 <= Ev; e0 += 64) {
    __m256 c[8];
    for (int r = 0; r < 8; ++r) c[r] = _mm256_setzero_ps();
    for (int64_t j = 0; j < n; ++j) {
      if (p[j] == 0.0f) continue;
      const __m256 a = _mm256_set1_ps(p[j]);
      const float* x = v + j * ldv + e0;
      for (int r = 0; r < 8; ++r) c[r] = _mm256_fmadd_ps(a, _mm256_loadu_ps(x + 8 * r), c[r]);
    }
    for (int r = 0; r < 8; ++r) _mm256_storeu_ps(out + e0 + 8 * r, c[r]);
  }
  for (; e0 + 8 <= Ev; e0 += 8) {
    __m256 c = _mm256_setzero_ps();
    for (int64_t j = 0; j < n; ++j)
      if (p[j] != 0.0f) c = _mm256_fmadd_ps(_mm256_set1_ps(p[j]), _mm256_loadu_ps(v + j * ldv + e0), c);
    _mm256_storeu_ps(out + e0, c);
  }
  for (; e0 < Ev; ++e0) {
    float c = 0;
    for (int64_t j = 0; j < n; ++j)
      if (p[j] != 0.0f) c += p[j] * v[j * ldv + e0];
    out[e0] = c;
  }
}

float exp_sum_avx2(float* x, int64_t n, float m) {
  const __m256 vm = _mm256_set1_ps(m);
  __m256 s = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 e = exp256(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm));
    _mm256_storeu_ps(x + i, e);
    s = _mm256_add_ps(s, e);
  }
  if (i < n) {  // the tail through a padded register (lanes past n: -inf -> 0)
    alignas(32) float t[8];
    for (int j = 0; j < 8; ++j) t[j] = i + j < n ? x[i + j] : -__builtin_huge_valf();
    const __m256 e = exp256(_mm256_sub_ps(_mm256_load_ps(t), vm));
    _mm256_store_ps(t, e);
    s = _mm256_add_ps(s, e);
    for (int j = 0; i + j < n; ++j) x[i + j] = t[j];
  }
  return hsum(s);
}

void scale_avx2(float* x, int64_t n, float a) {
  const __m256 va = _mm256_set1_ps(a);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(va, _mm256_loadu_ps(x + i)));
  for (; i < n; ++i) x[i] *= a;
}

}  // namespace

const Primitives avx2_primitives = {dots_avx2, wsum_avx2, exp_sum_avx2, scale_avx2};

}  // namespace attention
}  // namespace pocketml
