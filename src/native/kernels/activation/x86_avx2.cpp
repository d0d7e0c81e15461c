// SiLU and GELU (erf form), optionally gated, with AVX2/FMA: four doubles at a time through
// formulas accurate to about an ulp of double, so the float32 results equal the scalar path's
// (and the references', ir/ops/activation.py) but for a rare last-ulp tie.
// SiLU: the reference's x * 1 / (1 + e) or x * e / (1 + e), e = exp(-|x|) by a vector exp; lanes it
// does not cover (|x| > 150, where the float result no longer depends on e, and NaN) go scalar.
// GELU: the reference computes 0.5 x (1 + erf(z)), z = x / sqrt 2, with erf64 (fdlibm's erf: three
// regions, two of them a rational function with a division, the third two exps as well); in
// vectors of four, lanes in different regions would pay for all three. Here one formula covers
// every x, branch-free: 1 - erf(|z|) = 2 T with T = Phi(-|x|) = exp(-x^2 / 2) H(|x|), where
// H(a) = erfcx(a / sqrt 2) / 2 is smooth and slowly varying on [0, 6 sqrt 2], so a rational
// function of degree 6/7 matches it (a linearised least-squares fit with Lawson weights, checked
// against mpmath); x^2 / 2 is exact in double, so exp(-x^2 / 2) needs no hi/lo split. Then
// erf(z) = copysign(1 - 2T, z), and +-1 for |z| >= 6, as erf64, and 0.5 x (1 + erf) as the
// reference: even the cancelling tail (x < -5, where 1 + erf = 1 - (1 - 2T) keeps only an
// absolute 1e-16) rounds as the reference's does but for rare ties.
// The fast forms (silu_fast_avx2, gelu_fast_avx2: the runtime's default, exact = false) compute
// in float32, eight at a time, within 6 ulp (see their comments): GELU in 40 % of the time.
#include <immintrin.h>

#include <cmath>
#include <cstdint>

#include "kernels/activation/activation.h"
#include "kernels/activation/fast_coefficients.h"

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

// H(a) = P(a) / Q(a), lowest degree first; all positive: no cancellation in Horner's scheme.
// H(0) = 1/2 exactly, so that 1 + erf is exactly 1 for tiny x, as the reference's. The fit weighs
// the error of T = exp(-a^2/2) H: relative below 7.2e-15, and absolute below 7.2e-21 where T is
// tiny (a > 5), far under the 1.1e-16 steps of 1 - 2T, so the tail rounds as the reference's.
constexpr double kHP[] = {0.5, 0.52517824817689159521, 0.27545073356244608488, 0.086562521490329870485,
                          0.016960872769114030602, 0.0019568538619832795777, 0.00010458792787386164572};
constexpr double kHQ[] = {1.0, 1.8482410571574082882, 1.5255844712480024522, 0.73220633075959352261,
                          0.22190663631198755545, 0.042775364247443474077, 0.0049051639630137114751,
                          0.00026216187253063872812};
// exp(r) for |r| <= ln2 / 8, relative error 7.3e-16 (a minimax fit)
constexpr double kExp[] = {1.0, 1.0000000000000032619, 0.5000000000019458799, 0.16666666666292829596,
                           0.041666665098888550065, 0.0083333342657568167373, 0.0013892478802796705615,
                           0.00019836624116231879134};

template <int N>
inline __m256d poly(const double (&c)[N], __m256d z) {
  __m256d r = _mm256_set1_pd(c[N - 1]);
  for (int i = N - 2; i >= 0; --i) r = _mm256_fmadd_pd(r, z, _mm256_set1_pd(c[i]));
  return r;
}

// exp(-u) for u = x^2 / 2 (exact) of a float x with |x| < 6 sqrt 2 (other lanes: anything):
// -u = (4 m + j) ln2 / 4 + r, |r| <= ln2 / 8, exp(-u) = 2^m 2^(j/4) exp(r), 2^(j/4) from a table of
// four in two registers (vpermilpd picks within 128-bit lanes), 2^m added to its exponent bits.
inline __m256d exp_neg_square(__m256d u) {
  const __m256d shifter = _mm256_set1_pd(6755399441055744.0);  // 1.5 * 2^52: k in the low bits
  const __m256d kd = _mm256_fnmadd_pd(u, _mm256_set1_pd(5.7707801635558535980), shifter);  // 4 / ln2
  const __m256d k = _mm256_sub_pd(kd, shifter);
  __m256d r = _mm256_fnmsub_pd(k, _mm256_set1_pd(6.93147180369123816490e-01 / 4), u);  // exact
  r = _mm256_fnmadd_pd(k, _mm256_set1_pd(1.90821492927058770002e-10 / 4), r);
  const __m256i ki = _mm256_castpd_si256(kd);
  const __m256d t01 = _mm256_setr_pd(1.0, 1.1892071150027210667, 1.0, 1.1892071150027210667);
  const __m256d t23 = _mm256_setr_pd(1.4142135623730950488, 1.6817928305074290861,
                                     1.4142135623730950488, 1.6817928305074290861);
  const __m256i idx = _mm256_slli_epi64(ki, 1);  // vpermilpd reads bit 1: j's bit 0
  const __m256d t = _mm256_blendv_pd(_mm256_permutevar_pd(t01, idx), _mm256_permutevar_pd(t23, idx),
                                     _mm256_castsi256_pd(_mm256_slli_epi64(ki, 62)));  // j's bit 1
  // (k & ~3) << 50 = m << 52: m (two's complement) into the exponent field
  const __m256i m = _mm256_slli_epi64(_mm256_andnot_si256(_mm256_set1_epi64x(3), ki), 50);
  const __m256d scale = _mm256_castsi256_pd(_mm256_add_epi64(_mm256_castpd_si256(t), m));
  return _mm256_mul_pd(poly(kExp, r), scale);
}

// gelu of four doubles (converted floats): 0.5 x (1 + erf(x / sqrt 2)), see the top of the file
inline __m256d gelu4(__m256d x) {
  const __m256d sign = _mm256_set1_pd(-0.0), one = _mm256_set1_pd(1.0);
  const __m256d a = _mm256_andnot_pd(sign, x);
  // |z| < 6 for z = x / sqrt 2 rounded as the reference's, false for NaN: the float |x| below
  // 8.48528194427490234375 (6 sqrt 2 rounded up to float) all have |z| < 6, and it has |z| >= 6
  const __m256d inside = _mm256_cmp_pd(a, _mm256_set1_pd(8.48528194427490234375), _CMP_LT_OQ);
  const __m256d hx = _mm256_mul_pd(_mm256_set1_pd(0.5), x);
  const __m256d e = exp_neg_square(_mm256_mul_pd(hx, x));
  const __m256d t = _mm256_and_pd(inside, _mm256_mul_pd(e, _mm256_div_pd(poly(kHP, a), poly(kHQ, a))));
  const __m256d erf = _mm256_or_pd(_mm256_fnmadd_pd(_mm256_set1_pd(2.0), t, one), _mm256_and_pd(sign, x));
  return _mm256_mul_pd(hx, _mm256_add_pd(one, erf));
}

// ---- float32 forms (exact = false) ----

// exp(-u) for u = uh + ul (ul below half an ulp of uh), 0 <= uh <= 87: -u = k ln2 + r, |r| <=
// ln2 / 2 (k from the 1.5 * 2^23 shifter, whose low mantissa bits then hold it), r less ul,
// exp(r) by a degree-6 minimax polynomial (relative error 2e-9), 2^k added to its exponent bits
// (k >= -126 with uh <= 87 keeps the result normal).
inline __m256 exp_neg_f(__m256 uh, __m256 ul) {
  const __m256 shifter = _mm256_set1_ps(12582912.0f);
  const __m256 fk = _mm256_fnmadd_ps(uh, _mm256_set1_ps(1.44269504088896341f), shifter);
  const __m256 k = _mm256_sub_ps(fk, shifter);
  __m256 r = _mm256_fnmsub_ps(k, _mm256_set1_ps(0.693359375f), uh);  // -uh - k ln2_hi, exact
  r = _mm256_fnmadd_ps(k, _mm256_set1_ps(-2.12194440e-4f), r);
  r = _mm256_sub_ps(r, ul);
  __m256 y = _mm256_set1_ps(kExpf[0]);
  for (int i = 1; i < 7; ++i) y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(kExpf[i]));
  const __m256i e = _mm256_slli_epi32(_mm256_castps_si256(fk), 23);  // k << 23
  return _mm256_castsi256_ps(_mm256_add_epi32(_mm256_castps_si256(y), e));
}

// gelu in float: T = Phi(-|x|) = exp(-x^2 / 2) H(|x|) as in gelu4, H by a rational function of
// degree 4/5 (all coefficients positive; relative error 5.2e-9 on [0, 13.5], a Loeb/Lawson fit
// against scipy's erfcx), x^2 / 2 split exactly into uh + ul by an FMA. Then x (1 - T) for x >= 0,
// x T below (no cancellation). Measured within 5 ulp of the reference for x >= -5 (below, the
// reference's own 1 + erf cancels; this form is closer to the true value); below x = -13
// (|result| < 1e-37) it gives -0.

template <int N>
inline __m256 polyf(const float (&c)[N], __m256 z) {
  __m256 r = _mm256_set1_ps(c[N - 1]);
  for (int i = N - 2; i >= 0; --i) r = _mm256_fmadd_ps(r, z, _mm256_set1_ps(c[i]));
  return r;
}

inline __m256 gelu8(__m256 x) {
  const __m256 a = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x);
  const __m256 inside = _mm256_cmp_ps(a, _mm256_set1_ps(13.0f), _CMP_LT_OQ);  // false for NaN
  const __m256 ac = _mm256_min_ps(a, _mm256_set1_ps(13.0f));
  const __m256 hx = _mm256_mul_ps(_mm256_set1_ps(0.5f), ac);
  const __m256 uh = _mm256_mul_ps(hx, ac);
  const __m256 ul = _mm256_fmsub_ps(hx, ac, uh);
  const __m256 h = _mm256_div_ps(polyf(kHPf, ac), polyf(kHQf, ac));
  const __m256 t = _mm256_and_ps(inside, _mm256_mul_ps(exp_neg_f(uh, ul), h));
  const __m256 pos = _mm256_mul_ps(x, _mm256_sub_ps(_mm256_set1_ps(1.0f), t));
  return _mm256_blendv_ps(pos, _mm256_mul_ps(x, t), _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_LT_OQ));
}

// silu in float: e = exp(-|x|), x / (1 + e) for x >= 0, x e / (1 + e) below; |x| > 87: e = 0
// (x itself, or -0 where the reference gives a value below 1.5e-36). Within 2 ulp.
inline __m256 silu8(__m256 x) {
  const __m256 a = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x);
  const __m256 inside = _mm256_cmp_ps(a, _mm256_set1_ps(87.0f), _CMP_LE_OQ);
  const __m256 e = _mm256_and_ps(inside, exp_neg_f(_mm256_min_ps(a, _mm256_set1_ps(87.0f)), _mm256_setzero_ps()));
  const __m256 one = _mm256_set1_ps(1.0f);
  const __m256 num = _mm256_blendv_ps(one, e, _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_LT_OQ));
  return _mm256_div_ps(_mm256_mul_ps(x, num), _mm256_add_ps(one, e));
}

template <__m256 (*F)(__m256)>
void fast8(const float* x, float* out, int64_t n, const float* mul) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 g = F(_mm256_loadu_ps(x + i));
    if (mul) g = _mm256_mul_ps(g, _mm256_loadu_ps(mul + i));
    _mm256_storeu_ps(out + i, g);
  }
  if (i < n) {  // the last values through a padded register
    alignas(32) float t[8] = {0, 0, 0, 0, 0, 0, 0, 0}, m[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int64_t j = 0; i + j < n; ++j) t[j] = x[i + j], m[j] = mul ? mul[i + j] : 0.0f;
    __m256 g = F(_mm256_load_ps(t));
    if (mul) g = _mm256_mul_ps(g, _mm256_load_ps(m));
    _mm256_store_ps(t, g);
    for (int64_t j = 0; i + j < n; ++j) out[i + j] = t[j];
  }
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

void gelu_avx2(const float* x, float* out, int64_t n, const float* mul) {
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    __m128 g = _mm256_cvtpd_ps(gelu4(_mm256_cvtps_pd(_mm_loadu_ps(x + i))));
    if (mul) g = _mm_mul_ps(g, _mm_loadu_ps(mul + i));
    _mm_storeu_ps(out + i, g);
  }
  if (i < n) {  // the last values through a padded register
    alignas(16) float t[4] = {0, 0, 0, 0}, m[4] = {0, 0, 0, 0};
    for (int64_t j = 0; i + j < n; ++j) t[j] = x[i + j], m[j] = mul ? mul[i + j] : 0.0f;
    __m128 g = _mm256_cvtpd_ps(gelu4(_mm256_cvtps_pd(_mm_load_ps(t))));
    if (mul) g = _mm_mul_ps(g, _mm_load_ps(m));
    _mm_store_ps(t, g);
    for (int64_t j = 0; i + j < n; ++j) out[i + j] = t[j];
  }
}

void silu_fast_avx2(const float* x, float* out, int64_t n, const float* mul) { fast8<silu8>(x, out, n, mul); }
void gelu_fast_avx2(const float* x, float* out, int64_t n, const float* mul) { fast8<gelu8>(x, out, n, mul); }

}  // namespace activation
}  // namespace pocketml
