// A 16 x 16 float transpose in zmm registers, shared by the AVX-512 files that include it
// (kernels/linear/x86_avx512.cpp: packing weight panels; kernels/conv/x86_avx512.cpp: depthwise
// channel blocks). Internal (anonymous namespace): each including file, compiled with AVX-512 F,
// gets its own copy, never shared by the linker with code built for another instruction set.
// Include only from a file compiled with AVX-512 F.
#pragma once

#include <immintrin.h>

namespace pocketml {
namespace {

// In place: r[i][j] -> r[j][i].
inline void transpose16(__m512 r[16]) {
  __m512 t[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 4; ++i) {  // r[4i + c], lane l: rows 4i..4i+3 of column 4l + c
    r[4 * i + 0] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
    r[4 * i + 1] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0xee);
    r[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
    r[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xee);
  }
  for (int c = 0; c < 4; ++c) {
    const __m512 a = _mm512_shuffle_f32x4(r[c], r[4 + c], 0x88);   // lanes 0, 2 of groups 0, 1
    const __m512 b = _mm512_shuffle_f32x4(r[c], r[4 + c], 0xdd);   // lanes 1, 3
    const __m512 d = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0x88);
    const __m512 e = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0xdd);
    t[c] = _mm512_shuffle_f32x4(a, d, 0x88);       // column c
    t[4 + c] = _mm512_shuffle_f32x4(b, e, 0x88);   // column 4 + c
    t[8 + c] = _mm512_shuffle_f32x4(a, d, 0xdd);   // column 8 + c
    t[12 + c] = _mm512_shuffle_f32x4(b, e, 0xdd);  // column 12 + c
  }
  for (int i = 0; i < 16; ++i) r[i] = t[i];
}

}  // namespace
}  // namespace pocketml
