// The int8-activation path (gemm with exact = false) on aarch64, one template over the integer
// dot product: included by arm_neon.cpp (vmull_s8 + vpadalq_s16) and arm_dotprod.cpp (SDOT,
// compiled with +dotprod). Everything here is internal (anonymous namespace), so each of those
// files gets its own copy, never shared by the linker with code that may run on a CPU without
// the extension; for the same reason it calls no inline function of the standard library. Its
// first helpers (min64 to load4f) serve arm_neon.cpp's exact kernels too.
//
// The activations and their column order are x86_int8.h's (avx2_quantize_row's values,
// FastKernels::permuted); a block of 32 columns meets its weights as two halves of 16 bytes
// (8-bit codes: columns 0-15 and 16-31; 4-bit codes and tables: the low nibbles, the even
// columns, and the high ones, the odd columns), each half one dot product of 16 signed bytes into
// 4 int32 lanes. Both dot products take signed x signed bytes, so int8 codes, int4 codes (sign
// extended from their nibble) and table entries enter as they are; uint8 codes as u - 128
// (flipped by ^ 0x80), the 128 * sum(q) taken back with the precomputed sums of the activations
// (QuantRow::ssum), as in x86_int8.h: W = (code + kOffset - zero) * scale.
#pragma once

#include <arm_neon.h>

#include <cstdint>

#include "kernels/linear/linear.h"

namespace pocketml {
namespace linear {
namespace {

inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

inline float half_to_float(uint16_t h) {
  return vgetq_lane_f32(vcvt_f32_f16(vreinterpret_f16_u16(vdup_n_u16(h))), 0);
}

inline float scalar_at(const void* p, ScalarType t, int64_t i) {
  switch (t) {
    case ScalarType::F32: return static_cast<const float*>(p)[i];
    case ScalarType::F16: return half_to_float(static_cast<const uint16_t*>(p)[i]);
    case ScalarType::F64: return static_cast<float>(static_cast<const double*>(p)[i]);
    case ScalarType::I8: return static_cast<const int8_t*>(p)[i];
    case ScalarType::U8: return static_cast<const uint8_t*>(p)[i];
    default: return 0.0f;
  }
}

// 4 parameters from p[i..i + 4) as floats
inline float32x4_t load4f(const void* p, ScalarType t, int64_t i) {
  switch (t) {
    case ScalarType::F32: return vld1q_f32(static_cast<const float*>(p) + i);
    case ScalarType::F16:
      return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(static_cast<const uint16_t*>(p) + i)));
    default: {
      float v[4];
      for (int j = 0; j < 4; ++j) v[j] = scalar_at(p, t, i + j);
      return vld1q_f32(v);
    }
  }
}

// The dot products of an instruction set (class Dot): dot16(acc, w, q) adds to acc's 4 int32
// lanes the 16 products w[i] * q[i] (which lane takes which product is the instruction's
// business: the kernels only ever sum all four lanes' floats).

// Linear quantization, 4- or 8-bit codes; kBlock: parameters change along a row (groups of
// columns, a multiple of 32), else one scale (and zero point) per row.
template <class Dot, int kBits, bool kSigned, bool kZero>
struct FastQuant {
  static constexpr int kOffset = kBits == 8 && !kSigned ? 128 : 0;
  const uint8_t* p;  // set by row()
  void row(const WeightView& w, int64_t n) { p = w.data + n * (w.K * kBits / 8); }
  // block b's weights as signed bytes, the halves that meet qa and qb
  int32x4_t dot(int64_t b, int8x16_t qa, int8x16_t qb) const {
    int8x16_t a, c;
    if (kBits == 8) {
      if (kSigned) {
        a = vld1q_s8(reinterpret_cast<const int8_t*>(p + 32 * b));
        c = vld1q_s8(reinterpret_cast<const int8_t*>(p + 32 * b + 16));
      } else {
        const uint8x16_t flip = vdupq_n_u8(0x80);
        a = vreinterpretq_s8_u8(veorq_u8(vld1q_u8(p + 32 * b), flip));
        c = vreinterpretq_s8_u8(veorq_u8(vld1q_u8(p + 32 * b + 16), flip));
      }
    } else if (kSigned) {
      const int8x16_t v = vld1q_s8(reinterpret_cast<const int8_t*>(p + 16 * b));
      a = vshrq_n_s8(vshlq_n_s8(v, 4), 4);
      c = vshrq_n_s8(v, 4);
    } else {
      const uint8x16_t v = vld1q_u8(p + 16 * b);
      a = vreinterpretq_s8_u8(vandq_u8(v, vdupq_n_u8(15)));
      c = vreinterpretq_s8_u8(vshrq_n_u8(v, 4));
    }
    return Dot::dot16(Dot::dot16(vdupq_n_s32(0), a, qa), c, qb);
  }
  // one parameter set per row: v = code . q summed with the block scales
  static float finish(const WeightView& w, int64_t n, float v, const QuantRow& x) {
    const int64_t g = n / w.group_rows;
    const float z = kZero ? scalar_at(w.zero, w.zero_type, g) : 0.0f;
    return scalar_at(w.scale, w.scale_type, g) * (v + (kOffset - z) * x.ssum_total);
  }
  // parameters per group of columns: d[b - b0] = scale(b) * xscale(b) for b in [b0, b1), and
  // the offset terms added to acc
  static void factors(const WeightView& w, int64_t n, const QuantRow& x, int64_t b0, int64_t b1,
                      float* d, float32x4_t& acc, float& acc1) {
    const int64_t gbase = (n / w.group_rows) * w.groups_k;
    const int64_t per = w.group_cols / kQBlock;  // blocks per group
    int64_t b = b0;
    if (per == 1) {
      for (; b + 4 <= b1; b += 4) {
        const float32x4_t s = load4f(w.scale, w.scale_type, gbase + b);
        vst1q_f32(d + (b - b0), vmulq_f32(s, vld1q_f32(x.scale + b)));
        float32x4_t c = vdupq_n_f32(static_cast<float>(kOffset));
        if (kZero) c = vsubq_f32(c, load4f(w.zero, w.zero_type, gbase + b));
        if (kZero || kOffset != 0) acc = vfmaq_f32(acc, vmulq_f32(s, c), vld1q_f32(x.ssum + b));
      }
    }
    for (; b < b1; ++b) {
      const int64_t g = gbase + b / per;
      const float s = scalar_at(w.scale, w.scale_type, g);
      d[b - b0] = s * x.scale[b];
      const float c = kOffset - (kZero ? scalar_at(w.zero, w.zero_type, g) : 0.0f);
      acc1 += s * c * x.ssum[b];
    }
  }
};

// 4-bit table, its int8 copy (one table per group of rows): vqtbl1q looks the nibbles up.
template <class Dot>
struct FastLut4 {
  const uint8_t* p;  // set by row()
  int8x16_t table;
  void row(const WeightView& w, int64_t n) {
    p = w.data + n * (w.K / 2);
    table = vld1q_s8(w.lut_i8 + (n / w.lut_i8_rows) * 16);
  }
  int32x4_t dot(int64_t b, int8x16_t qa, int8x16_t qb) const {
    const uint8x16_t v = vld1q_u8(p + 16 * b);
    const int8x16_t a = vqtbl1q_s8(table, vandq_u8(v, vdupq_n_u8(15)));
    const int8x16_t c = vqtbl1q_s8(table, vshrq_n_u8(v, 4));
    return Dot::dot16(Dot::dot16(vdupq_n_s32(0), a, qa), c, qb);
  }
  static float finish(const WeightView& w, int64_t n, float v, const QuantRow&) {
    v *= w.lut_i8_scale[n / w.lut_i8_rows];
    return w.row_scale ? v * w.row_scale[n] : v;
  }
  static void factors(const WeightView&, int64_t, const QuantRow&, int64_t, int64_t, float*,
                      float32x4_t&, float&) {}
};

constexpr int64_t kFactorChunk = 64;  // blocks whose factors are computed at once

// Where block b's two halves of activations lie (FastKernels::permuted: pairs of blocks as
// [evens of 2i, evens of 2i + 1, odds of 2i, odds of 2i + 1], a last block of an odd count as
// [evens, odds]; unpermuted: the 32 columns in order).
inline void block_q(const QuantRow& x, int64_t blocks, bool permuted, int64_t b, int8x16_t& qa,
                    int8x16_t& qb) {
  const int8_t* a = x.q + 32 * b;
  int64_t step = 16;
  if (permuted && !(b % 2 == 0 && b + 1 == blocks)) {
    a = x.q + 32 * (b - b % 2) + 16 * (b % 2);
    step = 32;
  }
  qa = vld1q_s8(a);
  qb = vld1q_s8(a + step);
}

template <class D, bool kBlock, bool kPermuted, int R>
inline void fast_rows(const WeightView& w, const QuantRow& x, int64_t blocks, int64_t n,
                      const float* bias, float* out) {
  D d[R];
  float32x4_t acc[R];
  float acc1[R];
  for (int r = 0; r < R; ++r) {
    d[r].row(w, n + r);
    acc[r] = vdupq_n_f32(0.0f);
    acc1[r] = 0.0f;
  }
  alignas(16) float f[kBlock ? R : 1][kBlock ? kFactorChunk : 1];
  for (int64_t b0 = 0; b0 < blocks; b0 += kFactorChunk) {
    const int64_t b1 = min64(blocks, b0 + kFactorChunk);
    if (kBlock)
      for (int r = 0; r < R; ++r) D::factors(w, n + r, x, b0, b1, f[r], acc[r], acc1[r]);
    for (int64_t b = b0; b < b1; ++b) {
      int8x16_t qa, qb;
      block_q(x, blocks, kPermuted, b, qa, qb);
      if constexpr (kBlock) {
        for (int r = 0; r < R; ++r)
          acc[r] = vfmaq_n_f32(acc[r], vcvtq_f32_s32(d[r].dot(b, qa, qb)), f[r][b - b0]);
      } else {
        const float xs = x.scale[b];
        for (int r = 0; r < R; ++r)
          acc[r] = vfmaq_n_f32(acc[r], vcvtq_f32_s32(d[r].dot(b, qa, qb)), xs);
      }
    }
  }
  const int64_t body = blocks * kQBlock;
  for (int r = 0; r < R; ++r) {
    float v = vaddvq_f32(acc[r]) + acc1[r];
    if (!kBlock) v = D::finish(w, n + r, v, x);
    if (body < w.K) {  // fewer than 32 columns, exactly
      float tail[kQBlock];
      decode_row(w, n + r, body, w.K, tail);
      for (int64_t k = body; k < w.K; ++k) v += tail[k - body] * x.x[k];
    }
    out[n + r] = bias ? v + bias[n + r] : v;
  }
}

template <class D, bool kBlock, bool kPermuted>
void fast_gemv(const WeightView& w, const QuantRow* x, int64_t M, int64_t n0, int64_t n1,
               const float* bias, float* out) {
  const int64_t blocks = w.K / kQBlock;
  int64_t n = n0;
  // each group of 4 rows meets every activation row while it is in L1
  for (; n + 4 <= n1; n += 4)
    for (int64_t m = 0; m < M; ++m)
      fast_rows<D, kBlock, kPermuted, 4>(w, x[m], blocks, n, bias, out + m * w.N);
  for (; n < n1; ++n)
    for (int64_t m = 0; m < M; ++m)
      fast_rows<D, kBlock, kPermuted, 1>(w, x[m], blocks, n, bias, out + m * w.N);
}

template <class Dot, int kBits, bool kSigned, bool kZero, bool kBlock>
constexpr FastKernels fast_quant() {
  // no int8 GEMM for prefills (FastKernels::gemm) yet: more than kFastMaxM rows run exactly
  return FastKernels{kBits == 4,
                     fast_gemv<FastQuant<Dot, kBits, kSigned, kZero>, kBlock, kBits == 4>, false,
                     nullptr};
}
template <class Dot, int B>
struct FastQuantKernels {
  // [signed][zero point][parameters along the row]
  static constexpr FastKernels of[2][2][2] = {
      {{fast_quant<Dot, B, false, false, false>(), fast_quant<Dot, B, false, false, true>()},
       {fast_quant<Dot, B, false, true, false>(), fast_quant<Dot, B, false, true, true>()}},
      {{fast_quant<Dot, B, true, false, false>(), fast_quant<Dot, B, true, false, true>()},
       {fast_quant<Dot, B, true, true, false>(), fast_quant<Dot, B, true, true, true>()}}};
};
template <class Dot>
struct FastLut4Kernels {
  static constexpr FastKernels of = {true, fast_gemv<FastLut4<Dot>, false, true>, false, nullptr};
};

// The int8-activation kernels of w's format, or null where it has none (x86_int8.h's formats).
template <class Dot>
const FastKernels* fast_kernels_of(const WeightView& w) {
  const bool row_params = w.groups_k == 1;
  const bool block_params = w.groups_k > 1 && w.group_cols % kQBlock == 0;
  if (w.kind == WeightKind::Quant) {
    if (!row_params && !block_params) return nullptr;
    const bool zero = w.zero != nullptr;
    if (w.nbits == 8) return &FastQuantKernels<Dot, 8>::of[w.is_signed][zero][block_params];
    if (w.nbits == 4 && w.K % 2 == 0)
      return &FastQuantKernels<Dot, 4>::of[w.is_signed][zero][block_params];
    return nullptr;
  }
  if (w.kind == WeightKind::Lut && w.nbits == 4 && w.K % 2 == 0 && row_params && w.lut_i8)
    return &FastLut4Kernels<Dot>::of;
  return nullptr;
}

}  // namespace
}  // namespace linear
}  // namespace pocketml
