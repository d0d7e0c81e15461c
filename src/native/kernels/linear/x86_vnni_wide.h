// The int8-activation path's 512-bit GEMM (gemm_wide; see x86_avx512vnni.cpp's header), a
// template over the strip decoder: shared by x86_avx512vnni.cpp (quantized codes, 4-bit tables)
// and x86_avx512vbmi.cpp (tables of other widths). Internal like x86_int8.h: include it only in
// files compiled with AVX-512 F/BW/VL/VNNI, after x86_int8.h and x86_vnni_dot.h.
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "kernels/linear/x86_int8.h"
#include "kernels/linear/x86_vnni_dot.h"

namespace pocketml {
namespace linear {
namespace {

constexpr int64_t kWideBlockBytes = kQBlock * kWideStripRows;  // 1024: [8 quads][32 rows][4]
constexpr int kWideRows = 6;  // activation rows per register block: 12 int32 + 12 float zmm

// out rows [m, m + RM) x the strip's `rows` columns (Strip as x86_int8.h's, 32 rows wide).
template <bool kBlock, bool kOff, int RM>
inline void wide_micro(const Strip& s, const QuantRows& x, int64_t m, const float* bias, float* out,
                       int64_t ldo, int64_t rows) {
  const int64_t blocks = s.blocks;
  __m512 acc[RM][2];
  const uint8_t* q[RM];
  for (int i = 0; i < RM; ++i) {
    acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    q[i] = x.q + (m + i) * x.ldq;
  }
  const float* xs = x.scale + m * blocks;
  const float* ss = x.ssum + m * blocks;
  for (int64_t b = 0; b < blocks; ++b) {
    const __m512i c0 = _mm512_load_si512(s.corr + b * 32), c1 = _mm512_load_si512(s.corr + b * 32 + 16);
    __m512i a[RM][2];
    for (int i = 0; i < RM; ++i) a[i][0] = c0, a[i][1] = c1;
    const uint8_t* t = s.tile + b * kWideBlockBytes;
#pragma GCC unroll 8
    for (int j = 0; j < 8; ++j) {
      const __m512i w0 = _mm512_load_si512(t + 128 * j), w1 = _mm512_load_si512(t + 128 * j + 64);
      for (int i = 0; i < RM; ++i) {
        int32_t quad;
        std::memcpy(&quad, q[i] + b * kQBlock + 4 * j, 4);
        const __m512i xb = _mm512_set1_epi32(quad);
        a[i][0] = _mm512_dpbusd_epi32(a[i][0], xb, w0);
        a[i][1] = _mm512_dpbusd_epi32(a[i][1], xb, w1);
      }
    }
    __m512 s0, s1;
    if (kBlock) {
      s0 = _mm512_load_ps(s.scale + b * 32);
      s1 = _mm512_load_ps(s.scale + b * 32 + 16);
    }
    for (int i = 0; i < RM; ++i) {
      const __m512 sx = _mm512_set1_ps(xs[i * blocks + b]);
      const __m512 f0 = kBlock ? _mm512_mul_ps(s0, sx) : sx, f1 = kBlock ? _mm512_mul_ps(s1, sx) : sx;
      acc[i][0] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(a[i][0]), f0, acc[i][0]);
      acc[i][1] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(a[i][1]), f1, acc[i][1]);
      if (kBlock && kOff) {
        const __m512 sb = _mm512_set1_ps(ss[i * blocks + b]);
        acc[i][0] = _mm512_fmadd_ps(_mm512_load_ps(s.off + b * 32), sb, acc[i][0]);
        acc[i][1] = _mm512_fmadd_ps(_mm512_load_ps(s.off + b * 32 + 16), sb, acc[i][1]);
      }
    }
  }
  const __mmask16 k0 = rows >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << rows) - 1);
  const __mmask16 k1 = rows >= 32 ? __mmask16(0xFFFF) : rows <= 16 ? __mmask16(0) : __mmask16((1u << (rows - 16)) - 1);
  for (int i = 0; i < RM; ++i) {
    __m512 v0 = acc[i][0], v1 = acc[i][1];
    if (!kBlock) {
      v0 = _mm512_mul_ps(v0, _mm512_load_ps(s.scale));
      v1 = _mm512_mul_ps(v1, _mm512_load_ps(s.scale + 16));
      if (kOff) {
        const __m512 st = _mm512_set1_ps(x.ssum_total[m + i]);
        v0 = _mm512_fmadd_ps(_mm512_load_ps(s.off), st, v0);
        v1 = _mm512_fmadd_ps(_mm512_load_ps(s.off + 16), st, v1);
      }
    }
    const float* xr = x.x + (m + i) * x.ldx + blocks * kQBlock;
    for (int64_t c = 0; c < s.tail_cols; ++c) {
      const __m512 xv = _mm512_set1_ps(xr[c]);
      v0 = _mm512_fmadd_ps(_mm512_load_ps(s.tail + c * 32), xv, v0);
      v1 = _mm512_fmadd_ps(_mm512_load_ps(s.tail + c * 32 + 16), xv, v1);
    }
    if (bias) {
      v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(k0, bias));
      v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(k1, bias + 16));
    }
    float* o = out + (m + i) * ldo;
    _mm512_mask_storeu_ps(o, k0, v0);
    _mm512_mask_storeu_ps(o + 16, k1, v1);
  }
}

template <bool kBlock, bool kOff, int R>
inline void wide_rest(const Strip& s, const QuantRows& x, int64_t m, int64_t left, const float* bias,
                      float* out, int64_t ldo, int64_t rows) {
  if constexpr (R > 0) {
    if (left == R)
      wide_micro<kBlock, kOff, R>(s, x, m, bias, out, ldo, rows);
    else
      wide_rest<kBlock, kOff, R - 1>(s, x, m, left, bias, out, ldo, rows);
  }
}

// FastKernels::gemm with 32-row strips: decode the strip [n0, n1) (x86_int8.h's decode_strip),
// then every activation row against it.
template <class T, bool kBlock>
void gemm_wide(const WeightView& w, const QuantRows& x, int64_t M, int64_t n0, int64_t n1,
               const float* bias, float* out, void* scratch) {
  const Strip s = decode_strip<VnniDot::Gemm8, T, kBlock, kWideStripRows>(w, n0, n1, scratch);
  // The next strip's codes, while this one computes: a strip's rows are short streams (K or K / 2
  // bytes each) that the hardware prefetchers pick up too late; its decode waited on memory for
  // ~10 % of MiniLM's int8 run.
  const int64_t row_bytes = w.K * w.nbits / 8;
  for (int64_t n = n1; n < min64(w.N, n1 + kWideStripRows); ++n)
    for (int64_t o = 0; o < row_bytes; o += 64)
      _mm_prefetch(reinterpret_cast<const char*>(w.data + n * row_bytes + o), _MM_HINT_T0);
  const float* bn = bias ? bias + n0 : nullptr;
  const int64_t rows = n1 - n0;
  int64_t m = 0;
  for (; m + kWideRows <= M; m += kWideRows)
    wide_micro<kBlock, T::kOff, kWideRows>(s, x, m, bn, out + n0, w.N, rows);
  wide_rest<kBlock, T::kOff, kWideRows - 1>(s, x, m, M - m, bn, out + n0, w.N, rows);
}

}  // namespace
}  // namespace linear
}  // namespace pocketml
