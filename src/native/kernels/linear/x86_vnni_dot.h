// The AVX-512 VNNI dot product of the int8-activation path (x86_int8.h's class Dot), shared by
// the files compiled with VNNI (x86_avx512vnni.cpp, x86_avx512vbmi.cpp). Include after
// x86_int8.h, only from a file compiled with AVX-512 F/BW/VL + VNNI.
#pragma once

#include <immintrin.h>

namespace pocketml {
namespace linear {
namespace {

struct VnniDot {
  // 8-bit weights go in unsigned: a signed one v as v + 128 (flipped by ^ 0x80), the 128 * sum(q)
  // it adds taken back with the block's sum of activations (FastQuant / FastLut4 kOffset)
  static constexpr bool kUnsignedBytes = true;
  static __m256i u4(__m256i u, __m256i q) {
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, q);
  }
  static __m256i u4x2(__m256i a, __m256i qa, __m256i b, __m256i qb) {
    return _mm256_dpbusd_epi32(u4(a, qa), b, qb);
  }
  // the same added to init (int32 lanes): the accumulator's start, free
  static __m256i u4i(__m256i init, __m256i u, __m256i q) { return _mm256_dpbusd_epi32(init, u, q); }
  static __m256i u4x2i(__m256i init, __m256i a, __m256i qa, __m256i b, __m256i qb) {
    return _mm256_dpbusd_epi32(_mm256_dpbusd_epi32(init, a, qa), b, qb);
  }
  static __m256i b8(__m256i v, __m256i q) { return u4(v, q); }
  static __m256i b8x2(__m256i a, __m256i qa, __m256i b, __m256i qb) { return u4x2(a, qa, b, qb); }
  // the blocked GEMM (x86_int8.h): unsigned activations, signed tile values of any width
  struct Gemm8 {
    static constexpr bool kUnsignedAct = true;
    static constexpr int kRows = 6;  // 12 int32 + 12 float accumulators of the 32 registers
    using Acc = __m256i;
    static Acc init(__m256i corr) { return corr; }
    static __m256i finish(Acc a, __m256i) { return a; }
    static __m256i prep(__m256i w) { return w; }
    static void step(Acc& a, __m256i x, __m256i w, __m256i) { a = _mm256_dpbusd_epi32(a, x, w); }
    static __m256i sum4(__m256i v) {
      return _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_set1_epi8(1), v);
    }
  };
  template <int kBits>
  using Gemm = Gemm8;
};

}  // namespace
}  // namespace linear
}  // namespace pocketml
