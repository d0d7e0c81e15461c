// A palettized weight's float table of up to 64 entries held in four zmm registers and looked up
// by 16 codes at a time (vpermps: 16 entries; vpermt2ps: 32; two and a blend on bit 5: 64): the
// exact path's table decoders of x86_avx512.cpp and x86_avx512vbmi.cpp. Internal (anonymous
// namespace) like x86_int8.h: include it only in files compiled with AVX-512 F/BW/VL + F16C.
#pragma once

#include <immintrin.h>

#include <cstdint>

#include "formats/weights.h"

namespace pocketml {
namespace linear {
namespace {

template <int kEntries>
struct FloatTable {
  static_assert(kEntries <= 64, "four registers of 16 entries");
  __m512 t[4];

  // table g of w (float32 or float16 entries), zero past kEntries
  void load(const WeightView& w, int64_t g) {
    for (int i = 0; i < 4; ++i) {
      const int left = kEntries - 16 * i;
      const __mmask16 m = static_cast<__mmask16>(left >= 16 ? 0xFFFF : left > 0 ? (1u << left) - 1 : 0);
      t[i] = w.lut_type == ScalarType::F32
                 ? _mm512_maskz_loadu_ps(m, static_cast<const float*>(w.lut) + g * kEntries + 16 * i)
                 : _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, static_cast<const uint16_t*>(w.lut) + g * kEntries + 16 * i));
    }
  }
  // the entries times r (the definition's table value * row_scale: one rounding)
  FloatTable scaled(float r) const {
    FloatTable s;
    for (int i = 0; i < 4; ++i) s.t[i] = _mm512_mul_ps(t[i], _mm512_set1_ps(r));
    return s;
  }
  __m512 lookup(__m512i idx) const {
    if constexpr (kEntries <= 16) {
      return _mm512_permutexvar_ps(idx, t[0]);
    } else if constexpr (kEntries == 32) {
      return _mm512_permutex2var_ps(t[0], idx, t[1]);
    } else {
      return _mm512_mask_blend_ps(_mm512_test_epi32_mask(idx, _mm512_set1_epi32(32)),
                                  _mm512_permutex2var_ps(t[0], idx, t[1]), _mm512_permutex2var_ps(t[2], idx, t[3]));
    }
  }
};

}  // namespace
}  // namespace linear
}  // namespace pocketml
