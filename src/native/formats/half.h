// IEEE binary16 <-> float32 in portable C++, exact (float16 -> float32) and rounded to nearest,
// ties to even (float32 -> float16, as NumPy and F16C round). Internal linkage (an anonymous
// namespace), like x86_int8.h: each including file gets its own copy, so one compiled for an
// instruction set never lends its copy to portable code.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

namespace pocketml {
namespace {

inline float f32_from_bits(uint32_t b) {
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}

inline uint32_t f32_bits(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return b;
}

// exact: every float16 is a float32
inline float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  const uint32_t e = (h >> 10) & 0x1f, m = h & 0x3ff;
  if (e == 0) return f32_from_bits(sign | f32_bits(static_cast<float>(m) * 0x1p-24f));  // subnormal
  if (e == 31) return f32_from_bits(sign | 0x7f800000 | (m << 13));
  return f32_from_bits(sign | ((e + 112) << 23) | (m << 13));  // exponent rebiased 15 -> 127
}

// not for NaN
inline uint16_t float_to_half(float f) {
  const uint32_t x = f32_bits(f), a = x & 0x7fffffff;
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000);
  if (a >= 0x477ff000) return sign | 0x7c00;  // >= 65520 (half-way past 65504): infinity
  if (a < 0x38800000)  // below 2^-14: a subnormal half, |f| * 2^24 (exact) rounded to an integer
    return sign | static_cast<uint16_t>(std::nearbyint(f32_from_bits(a) * 0x1p24f));
  const uint32_t m = a - 0x38000000;  // exponent rebiased 127 -> 15; 13 bits to round off
  return sign | static_cast<uint16_t>((m + 0xfff + ((m >> 13) & 1)) >> 13);
}

}  // namespace
}  // namespace pocketml
