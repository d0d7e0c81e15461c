// The float32 forms of GELU and SiLU on one AVX-512 vector (exact = false): x86_avx2.cpp's
// gelu8 / silu8, the same operations lane by lane (the same bits). For AVX-512 files only
// (activation/x86_avx512.cpp, and linear/x86_avx512.cpp, which applies them to its register
// tiles); everything here has internal linkage, so each file keeps its own copy, compiled with
// its own flags.
#pragma once

#include <immintrin.h>

#include "kernels/activation/fast_coefficients.h"

namespace pocketml {
namespace activation {
namespace {

// x86_avx2.cpp's exp_neg_f: exp(-(uh + ul)) for 0 <= uh <= 87
inline __m512 exp_neg_f(__m512 uh, __m512 ul) {
  const __m512 shifter = _mm512_set1_ps(12582912.0f);
  const __m512 fk = _mm512_fnmadd_ps(uh, _mm512_set1_ps(1.44269504088896341f), shifter);
  const __m512 k = _mm512_sub_ps(fk, shifter);
  __m512 r = _mm512_fnmsub_ps(k, _mm512_set1_ps(0.693359375f), uh);  // -uh - k ln2_hi, exact
  r = _mm512_fnmadd_ps(k, _mm512_set1_ps(-2.12194440e-4f), r);
  r = _mm512_sub_ps(r, ul);
  __m512 y = _mm512_set1_ps(kExpf[0]);
  for (int i = 1; i < 7; ++i) y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(kExpf[i]));
  const __m512i e = _mm512_slli_epi32(_mm512_castps_si512(fk), 23);  // k << 23
  return _mm512_castsi512_ps(_mm512_add_epi32(_mm512_castps_si512(y), e));
}

template <int N>
inline __m512 polyf(const float (&c)[N], __m512 z) {
  __m512 r = _mm512_set1_ps(c[N - 1]);
  for (int i = N - 2; i >= 0; --i) r = _mm512_fmadd_ps(r, z, _mm512_set1_ps(c[i]));
  return r;
}

inline __m512 gelu16(__m512 x) {
  const __m512 a = _mm512_abs_ps(x);
  const __mmask16 inside = _mm512_cmp_ps_mask(a, _mm512_set1_ps(13.0f), _CMP_LT_OQ);  // false for NaN
  const __m512 ac = _mm512_min_ps(a, _mm512_set1_ps(13.0f));
  const __m512 hx = _mm512_mul_ps(_mm512_set1_ps(0.5f), ac);
  const __m512 uh = _mm512_mul_ps(hx, ac);
  const __m512 ul = _mm512_fmsub_ps(hx, ac, uh);
  const __m512 h = _mm512_div_ps(polyf(kHPf, ac), polyf(kHQf, ac));
  const __m512 t = _mm512_maskz_mov_ps(inside, _mm512_mul_ps(exp_neg_f(uh, ul), h));
  const __m512 pos = _mm512_mul_ps(x, _mm512_sub_ps(_mm512_set1_ps(1.0f), t));
  return _mm512_mask_mov_ps(pos, _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LT_OQ), _mm512_mul_ps(x, t));
}

inline __m512 silu16(__m512 x) {
  const __m512 a = _mm512_abs_ps(x);
  const __mmask16 inside = _mm512_cmp_ps_mask(a, _mm512_set1_ps(87.0f), _CMP_LE_OQ);
  const __m512 e = _mm512_maskz_mov_ps(inside, exp_neg_f(_mm512_min_ps(a, _mm512_set1_ps(87.0f)), _mm512_setzero_ps()));
  const __m512 one = _mm512_set1_ps(1.0f);
  const __m512 num = _mm512_mask_mov_ps(one, _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LT_OQ), e);
  return _mm512_div_ps(_mm512_mul_ps(x, num), _mm512_add_ps(one, e));
}

}  // namespace
}  // namespace activation
}  // namespace pocketml
