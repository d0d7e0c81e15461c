// The float32 forms of SiLU and GELU (exact = false, the runtime's default) with AVX-512 F, 16 at
// a time (x86_avx512_fast.h), compiled for this file only and called only where use_avx512vnni()
// (core/cpu.h).
#include <immintrin.h>

#include <cstdint>

#include "kernels/activation/activation.h"
#include "kernels/activation/x86_avx512_fast.h"

namespace pocketml {
namespace activation {
namespace {

template <__m512 (*F)(__m512)>
void fast16(const float* x, float* out, int64_t n, const float* mul) {
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - i)) - 1);
    __m512 g = F(_mm512_maskz_loadu_ps(m, x + i));
    if (mul) g = _mm512_mul_ps(g, _mm512_maskz_loadu_ps(m, mul + i));
    _mm512_mask_storeu_ps(out + i, m, g);
  }
}

}  // namespace

void silu_fast_avx512(const float* x, float* out, int64_t n, const float* mul) { fast16<silu16>(x, out, n, mul); }
void gelu_fast_avx512(const float* x, float* out, int64_t n, const float* mul) { fast16<gelu16>(x, out, n, mul); }

}  // namespace activation
}  // namespace pocketml
