// NEON kernels (aarch64, where Advanced SIMD is baseline: no flags), the counterparts of
// x86_avx2.cpp: per format a decoder of 16 columns into 4 vectors, a fused decode-and-dot per row
// (gemv, 4 rows at a time) and a decoder into the tile; the tile microkernel (4 activation rows
// x 16 weight rows, vfmaq_laneq); the activation quantizer and the int8-activation path with
// base NEON dot products (vmull_s8 / vpadalq_s16; arm_dotprod.cpp has the SDOT one).
#include <arm_neon.h>

#include <cstdint>

#include "kernels/linear/arm.h"
#include "kernels/linear/arm_int8.h"

namespace pocketml {
namespace linear {
namespace {

// Decoders: per row, per segment of columns sharing parameters, 16 columns at a time into four
// vectors of "raw" values, which the segment's factor() multiplies (Quant: the scale; Lut: the
// row scale, applied per row). Column order as x86_avx2.cpp's (RowKernels::permuted).

struct DecF32 {
  static constexpr bool kPermuted = false, kSegmentScale = false;
  const float* base = nullptr;
  int64_t K = 0;
  const float* p = nullptr;
  void init(const WeightView& w) {
    base = reinterpret_cast<const float*>(w.data);
    K = w.K;
  }
  void row(int64_t n) { p = base + n * K; }
  void segment(int64_t) {}
  float factor(int64_t, int64_t) const { return 1.0f; }
  void load16(int64_t k, float32x4_t* v) const {
    for (int i = 0; i < 4; ++i) v[i] = vld1q_f32(p + k + 4 * i);
  }
};

inline void halves_to_f32(uint16x8_t h, float32x4_t* v) {
  v[0] = vcvt_f32_f16(vreinterpret_f16_u16(vget_low_u16(h)));
  v[1] = vcvt_high_f32_f16(vreinterpretq_f16_u16(h));
}

struct DecF16 {
  static constexpr bool kPermuted = false, kSegmentScale = false;
  const uint16_t* base = nullptr;
  int64_t K = 0;
  const uint16_t* p = nullptr;
  void init(const WeightView& w) {
    base = reinterpret_cast<const uint16_t*>(w.data);
    K = w.K;
  }
  void row(int64_t n) { p = base + n * K; }
  void segment(int64_t) {}
  float factor(int64_t, int64_t) const { return 1.0f; }
  void load16(int64_t k, float32x4_t* v) const {
    halves_to_f32(vld1q_u16(p + k), v);
    halves_to_f32(vld1q_u16(p + k + 8), v + 2);
  }
};

// Linear quantization: raw = float(q) - zero_point (exact for integer zero points), times scale.
template <bool kZero>
struct QuantBase {
  static constexpr bool kSegmentScale = true;
  const WeightView* wv = nullptr;
  float32x4_t zero = vdupq_n_f32(0.0f);
  int64_t gbase = 0;
  void init(const WeightView& v) { wv = &v; }
  void set_group_row(int64_t n) { gbase = (n / wv->group_rows) * wv->groups_k; }
  void segment(int64_t gk) {
    if (kZero) zero = vdupq_n_f32(scalar_at(wv->zero, wv->zero_type, gbase + gk));
  }
  float factor(int64_t, int64_t gk) const {
    return scalar_at(wv->scale, wv->scale_type, gbase + gk);
  }
  float32x4_t finish(int32x4_t q) const {
    const float32x4_t f = vcvtq_f32_s32(q);
    return kZero ? vsubq_f32(f, zero) : f;
  }
  // 16 codes (signed bytes) into 4 vectors
  void widen(int8x16_t c, float32x4_t* v) const {
    const int16x8_t lo = vmovl_s8(vget_low_s8(c)), hi = vmovl_high_s8(c);
    v[0] = finish(vmovl_s16(vget_low_s16(lo)));
    v[1] = finish(vmovl_high_s16(lo));
    v[2] = finish(vmovl_s16(vget_low_s16(hi)));
    v[3] = finish(vmovl_high_s16(hi));
  }
  void widen(uint8x16_t c, float32x4_t* v) const {
    const uint16x8_t lo = vmovl_u8(vget_low_u8(c)), hi = vmovl_high_u8(c);
    v[0] = finish(vreinterpretq_s32_u32(vmovl_u16(vget_low_u16(lo))));
    v[1] = finish(vreinterpretq_s32_u32(vmovl_high_u16(lo)));
    v[2] = finish(vreinterpretq_s32_u32(vmovl_u16(vget_low_u16(hi))));
    v[3] = finish(vreinterpretq_s32_u32(vmovl_high_u16(hi)));
  }
};

template <bool kSigned, bool kZero>
struct DecQ8 : QuantBase<kZero> {
  static constexpr bool kPermuted = false;
  const uint8_t* p = nullptr;
  void row(int64_t n) {
    this->set_group_row(n);
    p = this->wv->data + n * this->wv->K;
  }
  void load16(int64_t k, float32x4_t* v) const {
    if (kSigned)
      this->widen(vld1q_s8(reinterpret_cast<const int8_t*>(p + k)), v);
    else
      this->widen(vld1q_u8(p + k), v);
  }
};

// 4-bit codes: 8 bytes give the 8 even columns (low nibbles) and the 8 odd ones (high nibbles);
// int4 sign-extended from the nibble by shifts.
template <bool kSigned, bool kZero>
struct DecQ4 : QuantBase<kZero> {
  static constexpr bool kPermuted = true;
  const uint8_t* p = nullptr;
  void row(int64_t n) {
    this->set_group_row(n);
    p = this->wv->data + n * this->wv->K / 2;
  }
  void load16(int64_t k, float32x4_t* v) const {
    const uint8x8_t b = vld1_u8(p + k / 2);
    if (kSigned) {
      const int8x8_t s = vreinterpret_s8_u8(b);
      this->widen(vcombine_s8(vshr_n_s8(vshl_n_s8(s, 4), 4), vshr_n_s8(s, 4)), v);
    } else {
      this->widen(vcombine_u8(vand_u8(b, vdup_n_u8(15)), vshr_n_u8(b, 4)), v);
    }
  }
};

// 4-bit table: its 16 floats as 4 byte planes (plane j: byte j of every entry, vld4q_u8), each
// looked up by vqtbl1q with the 16 codes, then interleaved back into floats by zips.
template <bool kHalfTable>
struct DecLut4 {
  static constexpr bool kPermuted = true, kSegmentScale = false;
  const WeightView* wv = nullptr;
  const uint8_t* p = nullptr;
  int64_t gbase = 0;
  uint8x16x4_t planes;
  void init(const WeightView& v) { wv = &v; }
  void row(int64_t n) {
    gbase = (n / wv->group_rows) * wv->groups_k;
    p = wv->data + n * wv->K / 2;
  }
  void segment(int64_t gk) {
    const int64_t off = (gbase + gk) * 16;
    float t[16];
    if (kHalfTable) {
      const uint16_t* h = static_cast<const uint16_t*>(wv->lut) + off;
      float32x4_t v[4];
      halves_to_f32(vld1q_u16(h), v);
      halves_to_f32(vld1q_u16(h + 8), v + 2);
      for (int i = 0; i < 4; ++i) vst1q_f32(t + 4 * i, v[i]);
      planes = vld4q_u8(reinterpret_cast<const uint8_t*>(t));
    } else {
      planes = vld4q_u8(reinterpret_cast<const uint8_t*>(static_cast<const float*>(wv->lut) + off));
    }
  }
  float factor(int64_t n, int64_t) const { return wv->row_scale ? wv->row_scale[n] : 1.0f; }
  void load16(int64_t k, float32x4_t* v) const {
    const uint8x8_t b = vld1_u8(p + k / 2);
    const uint8x16_t idx = vcombine_u8(vand_u8(b, vdup_n_u8(15)), vshr_n_u8(b, 4));
    const uint8x16_t b0 = vqtbl1q_u8(planes.val[0], idx), b1 = vqtbl1q_u8(planes.val[1], idx),
                     b2 = vqtbl1q_u8(planes.val[2], idx), b3 = vqtbl1q_u8(planes.val[3], idx);
    const uint16x8_t l01 = vreinterpretq_u16_u8(vzip1q_u8(b0, b1)),
                     h01 = vreinterpretq_u16_u8(vzip2q_u8(b0, b1)),
                     l23 = vreinterpretq_u16_u8(vzip1q_u8(b2, b3)),
                     h23 = vreinterpretq_u16_u8(vzip2q_u8(b2, b3));
    v[0] = vreinterpretq_f32_u16(vzip1q_u16(l01, l23));
    v[1] = vreinterpretq_f32_u16(vzip2q_u16(l01, l23));
    v[2] = vreinterpretq_f32_u16(vzip1q_u16(h01, h23));
    v[3] = vreinterpretq_f32_u16(vzip2q_u16(h01, h23));
  }
};

// Columns [0, body) run in segments of `seg` (a multiple of 16) columns; [body, K) is the tail,
// decoded by the portable decode_row.
struct Layout {
  int64_t body, seg;
};
inline Layout layout(const WeightView& w) {
  const int64_t body = w.groups_k > 1 ? w.K : w.K - w.K % 16;
  return {body, w.groups_k > 1 ? w.group_cols : (body > 0 ? body : 16)};
}

// R rows at once, two accumulators each: 2R independent FMA chains, and each x vector loaded
// serves R rows.
template <class D, int R>
inline void gemv_rows(const WeightView& w, const Layout& L, const float* x, int64_t n,
                      const float* bias, float* out) {
  D d[R];
  float32x4_t total[R];
  for (int r = 0; r < R; ++r) {
    d[r].init(w);
    d[r].row(n + r);
    total[r] = vdupq_n_f32(0.0f);
  }
  for (int64_t s0 = 0, gk = 0; s0 < L.body; s0 += L.seg, ++gk) {
    const int64_t s1 = min64(s0 + L.seg, L.body);
    float32x4_t a0[R], a1[R];
    for (int r = 0; r < R; ++r) {
      d[r].segment(gk);
      a0[r] = a1[r] = vdupq_n_f32(0.0f);
    }
    for (int64_t k = s0; k < s1; k += 16) {
      const float32x4_t x0 = vld1q_f32(x + k), x1 = vld1q_f32(x + k + 4),
                        x2 = vld1q_f32(x + k + 8), x3 = vld1q_f32(x + k + 12);
      for (int r = 0; r < R; ++r) {
        float32x4_t v[4];
        d[r].load16(k, v);
        a0[r] = vfmaq_f32(a0[r], v[0], x0);
        a1[r] = vfmaq_f32(a1[r], v[1], x1);
        a0[r] = vfmaq_f32(a0[r], v[2], x2);
        a1[r] = vfmaq_f32(a1[r], v[3], x3);
      }
    }
    for (int r = 0; r < R; ++r) {
      const float32x4_t a = vaddq_f32(a0[r], a1[r]);
      total[r] = D::kSegmentScale ? vfmaq_n_f32(total[r], a, d[r].factor(n + r, gk))
                                  : vaddq_f32(total[r], a);
    }
  }
  for (int r = 0; r < R; ++r) {
    float v = vaddvq_f32(total[r]);
    if (!D::kSegmentScale) v *= d[r].factor(n + r, 0);
    if (L.body < w.K) {  // fewer than 16 columns, unpermuted
      float tail[16];
      decode_row(w, n + r, L.body, w.K, tail);
      for (int64_t k = L.body; k < w.K; ++k) v += tail[k - L.body] * x[k];
    }
    out[n + r] = bias ? v + bias[n + r] : v;
  }
}

template <class D>
void gemv(const WeightView& w, const float* x, int64_t n0, int64_t n1, const float* bias,
          float* out) {
  const Layout L = layout(w);
  int64_t n = n0;
  for (; n + 4 <= n1; n += 4) gemv_rows<D, 4>(w, L, x, n, bias, out);
  for (; n < n1; ++n) gemv_rows<D, 1>(w, L, x, n, bias, out);
}

template <class D>
void decode(const WeightView& w, int64_t n0, int64_t n1, float* tile, int64_t ldt) {
  D d;
  d.init(w);
  const Layout L = layout(w);
  for (int64_t n = n0; n < n1; ++n) {
    float* t = tile + (n - n0) * ldt;
    d.row(n);
    for (int64_t s0 = 0, gk = 0; s0 < L.body; s0 += L.seg, ++gk) {
      const int64_t s1 = min64(s0 + L.seg, L.body);
      d.segment(gk);
      const float f = d.factor(n, gk);
      for (int64_t k = s0; k < s1; k += 16) {
        float32x4_t v[4];
        d.load16(k, v);
        for (int i = 0; i < 4; ++i)
          vst1q_f32(t + k + 4 * i, f != 1.0f ? vmulq_n_f32(v[i], f) : v[i]);
      }
    }
    if (L.body < w.K) decode_row(w, n, L.body, w.K, t + L.body);
    for (int64_t k = w.K; k < ldt; ++k) t[k] = 0.0f;
  }
}

template <class D>
constexpr RowKernels kernels_of() {
  return RowKernels{D::kPermuted, gemv<D>, decode<D>};
}

constexpr RowKernels kF32 = kernels_of<DecF32>(), kF16 = kernels_of<DecF16>();
constexpr RowKernels kQ8[2][2] = {
    {kernels_of<DecQ8<false, false>>(), kernels_of<DecQ8<false, true>>()},
    {kernels_of<DecQ8<true, false>>(), kernels_of<DecQ8<true, true>>()}};
constexpr RowKernels kQ4[2][2] = {
    {kernels_of<DecQ4<false, false>>(), kernels_of<DecQ4<false, true>>()},
    {kernels_of<DecQ4<true, false>>(), kernels_of<DecQ4<true, true>>()}};
constexpr RowKernels kLut4[2] = {kernels_of<DecLut4<false>>(), kernels_of<DecLut4<true>>()};

// packed[k * 16 + r] = tile[r * ldt + k] for r < 16 (zero for r >= rows), k < kp (a multiple of
// 4): 4 x 4 transposes in registers.
inline void pack_tile(const float* tile, int64_t ldt, int64_t rows, int64_t kp, float* packed) {
  for (int64_t rb = 0; rb < kStripRows; rb += 4) {
    if (rb + 4 <= rows) {
      for (int64_t k = 0; k < kp; k += 4) {
        const float* t = tile + rb * ldt + k;
        const float32x4_t a = vld1q_f32(t), b = vld1q_f32(t + ldt), c = vld1q_f32(t + 2 * ldt),
                          e = vld1q_f32(t + 3 * ldt);
        const float64x2_t t0 = vreinterpretq_f64_f32(vtrn1q_f32(a, b)),
                          t1 = vreinterpretq_f64_f32(vtrn2q_f32(a, b)),
                          t2 = vreinterpretq_f64_f32(vtrn1q_f32(c, e)),
                          t3 = vreinterpretq_f64_f32(vtrn2q_f32(c, e));
        float* d = packed + k * kStripRows + rb;
        vst1q_f32(d, vreinterpretq_f32_f64(vtrn1q_f64(t0, t2)));
        vst1q_f32(d + kStripRows, vreinterpretq_f32_f64(vtrn1q_f64(t1, t3)));
        vst1q_f32(d + 2 * kStripRows, vreinterpretq_f32_f64(vtrn2q_f64(t0, t2)));
        vst1q_f32(d + 3 * kStripRows, vreinterpretq_f32_f64(vtrn2q_f64(t1, t3)));
      }
    } else {
      for (int64_t k = 0; k < kp; ++k)
        for (int64_t r = rb; r < rb + 4; ++r)
          packed[k * kStripRows + r] = r < rows ? tile[r * ldt + k] : 0.0f;
    }
  }
}

// One column step of the microkernel: lane L of each activation vector times the packed column.
template <int MR, int L>
inline void micro_step(const float* w, const float32x4_t* xv, float32x4_t (*acc)[4]) {
  const float32x4_t w0 = vld1q_f32(w), w1 = vld1q_f32(w + 4), w2 = vld1q_f32(w + 8),
                    w3 = vld1q_f32(w + 12);
  for (int i = 0; i < MR; ++i) {
    acc[i][0] = vfmaq_laneq_f32(acc[i][0], w0, xv[i], L);
    acc[i][1] = vfmaq_laneq_f32(acc[i][1], w1, xv[i], L);
    acc[i][2] = vfmaq_laneq_f32(acc[i][2], w2, xv[i], L);
    acc[i][3] = vfmaq_laneq_f32(acc[i][3], w3, xv[i], L);
  }
}

// Microkernel: MR activation rows x the strip's 16 rows in 4 * MR accumulators; 4 columns of
// each activation row loaded at once, used by lane.
template <int MR>
inline void micro(const float* x, int64_t ldx, const float* packed, int64_t kp, int64_t rows,
                  float* out, int64_t ldo) {
  float32x4_t acc[MR][4];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < 4; ++j) acc[i][j] = vdupq_n_f32(0.0f);
  for (int64_t k = 0; k < kp; k += 4) {
    float32x4_t xv[MR];
    for (int i = 0; i < MR; ++i) xv[i] = vld1q_f32(x + i * ldx + k);
    const float* w = packed + k * kStripRows;
    micro_step<MR, 0>(w, xv, acc);
    micro_step<MR, 1>(w + kStripRows, xv, acc);
    micro_step<MR, 2>(w + 2 * kStripRows, xv, acc);
    micro_step<MR, 3>(w + 3 * kStripRows, xv, acc);
  }
  for (int i = 0; i < MR; ++i) {
    float* o = out + i * ldo;
    if (rows == kStripRows) {
      for (int j = 0; j < 4; ++j) vst1q_f32(o + 4 * j, vaddq_f32(vld1q_f32(o + 4 * j), acc[i][j]));
    } else {
      float c[16];
      for (int j = 0; j < 4; ++j) vst1q_f32(c + 4 * j, acc[i][j]);
      for (int64_t r = 0; r < rows; ++r) o[r] += c[r];
    }
  }
}

constexpr int64_t kMR = 4;

// ---------------------------------------------------------------------------------------------
// The int8-activation path (exact = false, arm_int8.h) with base NEON dot products: 8 products
// into int16 lanes (vmull_s8, then vmlal_high_s8: two products per lane, at most 2 * 128 * 127,
// which fits), pairwise added into the int32 lanes (vpadalq_s16).

struct NeonDot {
  static int32x4_t dot16(int32x4_t acc, int8x16_t w, int8x16_t q) {
    const int16x8_t p = vmlal_high_s8(vmull_s8(vget_low_s8(w), vget_low_s8(q)), w, q);
    return vpadalq_s16(acc, p);
  }
};

}  // namespace

const RowKernels* neon_kernels(const WeightView& w) {
  const bool groups_ok = w.groups_k == 1 || w.group_cols % 16 == 0;
  switch (w.kind) {
    case WeightKind::F32: return &kF32;
    case WeightKind::F16: return &kF16;
    case WeightKind::Quant:
      if (!groups_ok) return nullptr;
      if (w.nbits == 8) return &kQ8[w.is_signed][w.zero != nullptr];
      if (w.nbits == 4 && w.K % 2 == 0) return &kQ4[w.is_signed][w.zero != nullptr];
      return nullptr;
    case WeightKind::Lut:
      if (!groups_ok || w.nbits != 4 || w.K % 2 != 0) return nullptr;
      if (w.lut_type == ScalarType::F32) return &kLut4[0];
      if (w.lut_type == ScalarType::F16) return &kLut4[1];
      return nullptr;
  }
  return nullptr;
}

void tile_gemm_neon(const float* x, int64_t ldx, int64_t M, const float* tile, int64_t ldt,
                    int64_t rows, int64_t kp, float* out, int64_t ldo, float* work) {
  pack_tile(tile, ldt, rows, kp, work);
  int64_t m = 0;
  for (; m + kMR <= M; m += kMR) micro<kMR>(x + m * ldx, ldx, work, kp, rows, out + m * ldo, ldo);
  const float* xm = x + m * ldx;
  float* om = out + m * ldo;
  switch (M - m) {
    case 3: micro<3>(xm, ldx, work, kp, rows, om, ldo); break;
    case 2: micro<2>(xm, ldx, work, kp, rows, om, ldo); break;
    case 1: micro<1>(xm, ldx, work, kp, rows, om, ldo); break;
    default: break;
  }
}

const FastKernels* neon_fast_kernels(const WeightView& w) { return fast_kernels_of<NeonDot>(w); }

// avx2_quantize_row's values (round to nearest even of x * 127 / max |x|, saturated) and column
// order (FastKernels::permuted, see arm_int8.h block_q).
void neon_quantize_row(const float* x, int64_t blocks, bool permuted, int8_t* q, float* scale,
                       float* ssum, float* ssum_total) {
  float total = 0.0f;
  for (int64_t b = 0; b < blocks; ++b) {
    const float* p = x + b * kQBlock;
    float32x4_t v[8];
    for (int i = 0; i < 8; ++i) v[i] = vld1q_f32(p + 4 * i);
    float32x4_t m = vabsq_f32(v[0]);
    for (int i = 1; i < 8; ++i) m = vmaxq_f32(m, vabsq_f32(v[i]));
    const float amax = vmaxvq_f32(m);
    const float s = amax / 127.0f;
    const float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
    int32x4_t iv[8];
    int32x4_t sum = vdupq_n_s32(0);
    for (int i = 0; i < 8; ++i) {
      iv[i] = vcvtnq_s32_f32(vmulq_n_f32(v[i], inv));
      sum = vaddq_s32(sum, iv[i]);
    }
    int8x16_t bytes[2];
    for (int h = 0; h < 2; ++h) {
      const int16x8_t a = vcombine_s16(vqmovn_s32(iv[4 * h]), vqmovn_s32(iv[4 * h + 1]));
      const int16x8_t c = vcombine_s16(vqmovn_s32(iv[4 * h + 2]), vqmovn_s32(iv[4 * h + 3]));
      bytes[h] = vcombine_s8(vqmovn_s16(a), vqmovn_s16(c));
    }
    if (!permuted) {
      vst1q_s8(q + b * kQBlock, bytes[0]);
      vst1q_s8(q + b * kQBlock + 16, bytes[1]);
    } else {  // [evens, odds] of the block, the halves of a pair of blocks interleaved
      const bool lone = b % 2 == 0 && b + 1 == blocks;
      int8_t* a = lone ? q + b * kQBlock : q + kQBlock * (b - b % 2) + 16 * (b % 2);
      vst1q_s8(a, vuzp1q_s8(bytes[0], bytes[1]));
      vst1q_s8(a + (lone ? 16 : 32), vuzp2q_s8(bytes[0], bytes[1]));
    }
    scale[b] = s;
    ssum[b] = s * static_cast<float>(vaddvq_s32(sum));
    total += ssum[b];
  }
  *ssum_total = total;
}

}  // namespace linear
}  // namespace pocketml
