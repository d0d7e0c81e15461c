// AVX2 + FMA + F16C kernels, compiled with those flags for this file only and called only when
// the CPU has them (core/cpu.h). Everything here is internal (anonymous namespace) and uses no
// inline function of a shared header or of the standard library: an AVX2 copy of such a function
// could be picked by the linker for the portable code too.
#include <immintrin.h>

#include <cstdint>

#include "kernels/linear/linear.h"

namespace pocketml {
namespace linear {
namespace {

inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline float scalar_at(const void* p, ScalarType t, int64_t i) {
  switch (t) {
    case ScalarType::F32: return static_cast<const float*>(p)[i];
    case ScalarType::F16: return _cvtsh_ss(static_cast<const uint16_t*>(p)[i]);
    case ScalarType::F64: return static_cast<float>(static_cast<const double*>(p)[i]);
    case ScalarType::I8: return static_cast<const int8_t*>(p)[i];
    case ScalarType::U8: return static_cast<const uint8_t*>(p)[i];
    default: return 0.0f;
  }
}

inline __m256i load8_u8_epi32(const uint8_t* p) {
  return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
}

// Decoders: per row, per segment of columns sharing parameters, 16 columns at a time into two
// vectors of "raw" values, which the segment's factor() multiplies (Quant: the scale; Lut: the
// row scale, applied per row).

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
  void load16(int64_t k, __m256& a, __m256& b) const {
    a = _mm256_loadu_ps(p + k);
    b = _mm256_loadu_ps(p + k + 8);
  }
};

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
  void load16(int64_t k, __m256& a, __m256& b) const {
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + k));
    a = _mm256_cvtph_ps(_mm256_castsi256_si128(h));
    b = _mm256_cvtph_ps(_mm256_extracti128_si256(h, 1));
  }
};

// Linear quantization: raw = float(q) - zero_point (exact for integer zero points), times scale.
template <bool kSigned, bool kZero>
struct QuantBase {
  static constexpr bool kSegmentScale = true;
  const WeightView* wv = nullptr;
  __m256 zero = _mm256_setzero_ps();
  int64_t gbase = 0;
  void init(const WeightView& v) { wv = &v; }
  void set_group_row(int64_t n) { gbase = (n / wv->group_rows) * wv->groups_k; }
  void segment(int64_t gk) {
    if (kZero) zero = _mm256_set1_ps(scalar_at(wv->zero, wv->zero_type, gbase + gk));
  }
  float factor(int64_t, int64_t gk) const {
    return scalar_at(wv->scale, wv->scale_type, gbase + gk);
  }
  __m256 finish(__m256i q) const {
    const __m256 f = _mm256_cvtepi32_ps(q);
    return kZero ? _mm256_sub_ps(f, zero) : f;
  }
  // float(q + offset) - offset - zero_point: exact for integer zero points (the values are
  // small integers); for a float one, offset is added to the zero point first.
  __m256 finish(__m256i q, __m256 offset) const {
    const __m256 f = _mm256_cvtepi32_ps(q);
    if (kZero) return _mm256_sub_ps(_mm256_sub_ps(f, offset), zero);
    return kSigned ? _mm256_sub_ps(f, offset) : f;
  }
};

template <bool kSigned, bool kZero>
struct DecQ8 : QuantBase<kSigned, kZero> {
  static constexpr bool kPermuted = false;
  const uint8_t* p = nullptr;
  void row(int64_t n) {
    this->set_group_row(n);
    p = this->wv->data + n * this->wv->K;
  }
  void load16(int64_t k, __m256& a, __m256& b) const {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + k));
    const __m128i hi = _mm_unpackhi_epi64(v, v);
    a = this->finish(kSigned ? _mm256_cvtepi8_epi32(v) : _mm256_cvtepu8_epi32(v));
    b = this->finish(kSigned ? _mm256_cvtepi8_epi32(hi) : _mm256_cvtepu8_epi32(hi));
  }
};

// 4-bit codes: 8 bytes give the 8 even columns (low nibbles) and the 8 odd ones (high nibbles).
template <bool kSigned, bool kZero>
struct DecQ4 : QuantBase<kSigned, kZero> {
  static constexpr bool kPermuted = true;
  const uint8_t* p = nullptr;
  void row(int64_t n) {
    this->set_group_row(n);
    p = this->wv->data + n * this->wv->K / 2;
  }
  void load16(int64_t k, __m256& a, __m256& b) const {
    __m128i bytes = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p + k / 2));
    if (kSigned) bytes = _mm_xor_si128(bytes, _mm_set1_epi8(static_cast<char>(0x88)));
    const __m256i v = _mm256_cvtepu8_epi32(bytes);
    // signed: the codes are now q + 8 in [0, 15]; q = (q + 8) - 8 exactly, in float
    const __m256 bias = kSigned ? _mm256_set1_ps(8.0f) : _mm256_setzero_ps();
    a = this->finish(_mm256_and_si256(v, _mm256_set1_epi32(15)), bias);
    b = this->finish(_mm256_srli_epi32(v, 4), bias);
  }
};

// 4-bit table: 16 floats in two registers; vpermps picks with an index's low 3 bits from both
// halves, its bit 3 (moved to the sign bit) chooses between them.
template <bool kHalfTable>
struct DecLut4 {
  static constexpr bool kPermuted = true, kSegmentScale = false;
  const WeightView* wv = nullptr;
  const uint8_t* p = nullptr;
  int64_t gbase = 0;
  __m256 t0 = _mm256_setzero_ps(), t1 = _mm256_setzero_ps();
  void init(const WeightView& v) { wv = &v; }
  void row(int64_t n) {
    gbase = (n / wv->group_rows) * wv->groups_k;
    p = wv->data + n * wv->K / 2;
  }
  void segment(int64_t gk) {
    const int64_t off = (gbase + gk) * 16;
    if (kHalfTable) {
      const __m256i h = _mm256_loadu_si256(
          reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(wv->lut) + off));
      t0 = _mm256_cvtph_ps(_mm256_castsi256_si128(h));
      t1 = _mm256_cvtph_ps(_mm256_extracti128_si256(h, 1));
    } else {
      const float* t = static_cast<const float*>(wv->lut) + off;
      t0 = _mm256_loadu_ps(t);
      t1 = _mm256_loadu_ps(t + 8);
    }
  }
  float factor(int64_t n, int64_t) const { return wv->row_scale ? wv->row_scale[n] : 1.0f; }
  void load16(int64_t k, __m256& a, __m256& b) const {
    const __m256i v = load8_u8_epi32(p + k / 2);
    const __m256i hi = _mm256_srli_epi32(v, 4);
    a = _mm256_blendv_ps(_mm256_permutevar8x32_ps(t0, v), _mm256_permutevar8x32_ps(t1, v),
                         _mm256_castsi256_ps(_mm256_slli_epi32(v, 28)));
    b = _mm256_blendv_ps(_mm256_permutevar8x32_ps(t0, hi), _mm256_permutevar8x32_ps(t1, hi),
                         _mm256_castsi256_ps(_mm256_slli_epi32(v, 24)));
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

// R rows at once: R independent accumulator chains hide the FMA latency, and each x vector
// loaded serves R rows.
template <class D, int R>
inline void gemv_rows(const WeightView& w, const Layout& L, const float* x, int64_t n,
                      const float* bias, float* out) {
  D d[R] = {};
  __m256 total[R];
  for (int r = 0; r < R; ++r) {
    d[r].init(w);
    d[r].row(n + r);
    total[r] = _mm256_setzero_ps();
  }
  for (int64_t s0 = 0, gk = 0; s0 < L.body; s0 += L.seg, ++gk) {
    const int64_t s1 = min64(s0 + L.seg, L.body);
    __m256 acc[R];
    for (int r = 0; r < R; ++r) {
      d[r].segment(gk);
      acc[r] = _mm256_setzero_ps();
    }
    for (int64_t k = s0; k < s1; k += 16) {
      const __m256 xa = _mm256_loadu_ps(x + k), xb = _mm256_loadu_ps(x + k + 8);
      for (int r = 0; r < R; ++r) {
        __m256 va, vb;
        d[r].load16(k, va, vb);
        acc[r] = _mm256_fmadd_ps(va, xa, acc[r]);
        acc[r] = _mm256_fmadd_ps(vb, xb, acc[r]);
      }
    }
    for (int r = 0; r < R; ++r)
      total[r] = D::kSegmentScale
                     ? _mm256_fmadd_ps(acc[r], _mm256_set1_ps(d[r].factor(n + r, gk)), total[r])
                     : _mm256_add_ps(total[r], acc[r]);
  }
  for (int r = 0; r < R; ++r) {
    float v = hsum(total[r]);
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
      const __m256 fv = _mm256_set1_ps(f);
      for (int64_t k = s0; k < s1; k += 16) {
        __m256 va, vb;
        d.load16(k, va, vb);
        if (f != 1.0f) {
          va = _mm256_mul_ps(va, fv);
          vb = _mm256_mul_ps(vb, fv);
        }
        _mm256_storeu_ps(t + k, va);
        _mm256_storeu_ps(t + k + 8, vb);
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

// packed[k * 16 + r] = tile[r * ldt + k] for r < 16 (zero for r >= rows), k < kp.
inline void pack_tile(const float* tile, int64_t ldt, int64_t rows, int64_t kp, float* packed) {
  for (int64_t rb = 0; rb < kStripRows; rb += 8) {
    if (rb + 8 <= rows) {
      for (int64_t k = 0; k < kp; k += 8) {  // 8 x 8 transpose in registers
        const float* t = tile + rb * ldt + k;
        __m256 r0 = _mm256_loadu_ps(t), r1 = _mm256_loadu_ps(t + ldt),
               r2 = _mm256_loadu_ps(t + 2 * ldt), r3 = _mm256_loadu_ps(t + 3 * ldt),
               r4 = _mm256_loadu_ps(t + 4 * ldt), r5 = _mm256_loadu_ps(t + 5 * ldt),
               r6 = _mm256_loadu_ps(t + 6 * ldt), r7 = _mm256_loadu_ps(t + 7 * ldt);
        const __m256 u0 = _mm256_unpacklo_ps(r0, r1), u1 = _mm256_unpackhi_ps(r0, r1),
                     u2 = _mm256_unpacklo_ps(r2, r3), u3 = _mm256_unpackhi_ps(r2, r3),
                     u4 = _mm256_unpacklo_ps(r4, r5), u5 = _mm256_unpackhi_ps(r4, r5),
                     u6 = _mm256_unpacklo_ps(r6, r7), u7 = _mm256_unpackhi_ps(r6, r7);
        const __m256 v0 = _mm256_shuffle_ps(u0, u2, 0x44), v1 = _mm256_shuffle_ps(u0, u2, 0xee),
                     v2 = _mm256_shuffle_ps(u1, u3, 0x44), v3 = _mm256_shuffle_ps(u1, u3, 0xee),
                     v4 = _mm256_shuffle_ps(u4, u6, 0x44), v5 = _mm256_shuffle_ps(u4, u6, 0xee),
                     v6 = _mm256_shuffle_ps(u5, u7, 0x44), v7 = _mm256_shuffle_ps(u5, u7, 0xee);
        float* d = packed + k * kStripRows + rb;
        _mm256_storeu_ps(d + 0 * kStripRows, _mm256_permute2f128_ps(v0, v4, 0x20));
        _mm256_storeu_ps(d + 1 * kStripRows, _mm256_permute2f128_ps(v1, v5, 0x20));
        _mm256_storeu_ps(d + 2 * kStripRows, _mm256_permute2f128_ps(v2, v6, 0x20));
        _mm256_storeu_ps(d + 3 * kStripRows, _mm256_permute2f128_ps(v3, v7, 0x20));
        _mm256_storeu_ps(d + 4 * kStripRows, _mm256_permute2f128_ps(v0, v4, 0x31));
        _mm256_storeu_ps(d + 5 * kStripRows, _mm256_permute2f128_ps(v1, v5, 0x31));
        _mm256_storeu_ps(d + 6 * kStripRows, _mm256_permute2f128_ps(v2, v6, 0x31));
        _mm256_storeu_ps(d + 7 * kStripRows, _mm256_permute2f128_ps(v3, v7, 0x31));
      }
    } else {
      for (int64_t k = 0; k < kp; ++k)
        for (int64_t r = rb; r < rb + 8; ++r)
          packed[k * kStripRows + r] = r < rows ? tile[r * ldt + k] : 0.0f;
    }
  }
}

// Microkernel: MR activation rows x the strip's 16 rows in 2 * MR accumulators, one broadcast
// activation and two packed weight vectors per column.
template <int MR>
inline void micro(const float* x, int64_t ldx, const float* packed, int64_t kp, int64_t rows,
                  float* out, int64_t ldo) {
  __m256 acc[MR][2];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
  for (int64_t k = 0; k < kp; ++k) {
    const __m256 w0 = _mm256_loadu_ps(packed + k * 16), w1 = _mm256_loadu_ps(packed + k * 16 + 8);
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const __m256 xb = _mm256_broadcast_ss(x + i * ldx + k);
      acc[i][0] = _mm256_fmadd_ps(xb, w0, acc[i][0]);
      acc[i][1] = _mm256_fmadd_ps(xb, w1, acc[i][1]);
    }
  }
  if (rows == 16) {
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      float* o = out + i * ldo;
      _mm256_storeu_ps(o, _mm256_add_ps(_mm256_loadu_ps(o), acc[i][0]));
      _mm256_storeu_ps(o + 8, _mm256_add_ps(_mm256_loadu_ps(o + 8), acc[i][1]));
    }
    return;
  }
  float c[MR][16];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) {
    _mm256_storeu_ps(c[i], acc[i][0]);
    _mm256_storeu_ps(c[i] + 8, acc[i][1]);
  }
  for (int i = 0; i < MR; ++i)
    for (int64_t r = 0; r < rows; ++r) out[i * ldo + r] += c[i][r];
}

constexpr int64_t kMR = 6;

// ---------------------------------------------------------------------------------------------
// The int8-activation path (exact = false). Per block of 32 columns, a weight decoder gives the
// 8 int32 partial sums of its codes with the block's int8 activations (maddubs pairs: unsigned x
// signed bytes, then madd against ones); those become floats and take one FMA with the block's
// factor. Codes are linear in the weight with an offset: W = (code + c - zero) * scale, so
// W . x = scale * (code . q + (c - zero) * sum(q)) * xscale per block; the sums of q come
// precomputed with the activations (QuantRow::ssum).

inline __m256i madd_ones(__m256i p16) { return _mm256_madd_epi16(p16, _mm256_set1_epi16(1)); }

// 16 bytes of nibbles -> 32 unsigned bytes: the low nibbles (even columns), then the high ones.
inline __m256i nibbles(const uint8_t* p) {
  const __m256i v = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  return _mm256_and_si256(_mm256_blend_epi32(v, _mm256_srli_epi16(v, 4), 0xF0),
                          _mm256_set1_epi8(15));
}

// signed weight bytes w times signed activations q: |w| (unsigned) x sign(q, w)
inline __m256i dot_signed(__m256i w, __m256i q) {
  return madd_ones(_mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(q, w)));
}

// 8 parameters from p[i..i + 8) as floats
inline __m256 load8f(const void* p, ScalarType t, int64_t i) {
  switch (t) {
    case ScalarType::F32: return _mm256_loadu_ps(static_cast<const float*>(p) + i);
    case ScalarType::F16:
      return _mm256_cvtph_ps(
          _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(p) + i)));
    case ScalarType::I8:
      return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(
          _mm_loadl_epi64(reinterpret_cast<const __m128i*>(static_cast<const int8_t*>(p) + i))));
    case ScalarType::U8: return _mm256_cvtepi32_ps(load8_u8_epi32(static_cast<const uint8_t*>(p) + i));
    default: {
      float v[8];
      for (int j = 0; j < 8; ++j) v[j] = scalar_at(p, t, i + j);
      return _mm256_loadu_ps(v);
    }
  }
}

// Software prefetch: a decode step streams each weight from memory once, in 4 interleaved row
// streams that the hardware prefetcher alone did not keep ahead of (4-bit formats from DRAM ran
// at half the int8 rate); fast_rows requests each row's lines `pf` bytes ahead (rows of a chunk
// lie back to back, so that is a later group of rows at the same column).
inline void prefetch_range(const void* p, int64_t bytes) {
  const char* c = static_cast<const char*>(p);
  for (int64_t i = 0; i < bytes; i += 64) _mm_prefetch(c + i, _MM_HINT_T0);
}
inline int64_t scalar_size(ScalarType t) {
  switch (t) {
    case ScalarType::F32: return 4;
    case ScalarType::F16: return 2;
    case ScalarType::F64: return 8;
    case ScalarType::I8:
    case ScalarType::U8: return 1;
    default: return 0;
  }
}
// the parameters (p, per group of rows: groups_k of type t) of rows [n, n + rows)
inline void prefetch_params(const WeightView& w, const void* p, ScalarType t, int64_t n,
                            int64_t rows) {
  if (!p || n >= w.N) return;
  const int64_t sz = scalar_size(t), g0 = n / w.group_rows;
  const int64_t g1 = (min64(n + rows, w.N) - 1) / w.group_rows + 1;
  prefetch_range(static_cast<const char*>(p) + g0 * w.groups_k * sz, (g1 - g0) * w.groups_k * sz);
}

// Linear quantization, 4- or 8-bit codes; kBlock: parameters change along a row (groups of
// columns, a multiple of 32), else one scale (and zero point) per row.
template <int kBits, bool kSigned, bool kZero>
struct FastQuant {
  // W = (code + kOffset - zero) * scale, code as the dot product sees it: 4-bit, an unsigned
  // nibble (signed ones flipped by ^ 8); 8-bit, a signed byte (unsigned ones flipped by ^ 0x80).
  static constexpr int kOffset = kBits == 4 ? (kSigned ? -8 : 0) : (kSigned ? 0 : 128);
  static constexpr int64_t kBlockBytes = kQBlock * kBits / 8;
  const uint8_t* p = nullptr;
  void row(const WeightView& w, int64_t n) { p = w.data + n * (w.K * kBits / 8); }
  __m256i dot(int64_t b, __m256i q) const {
    if (kBits == 4) {
      __m256i u = nibbles(p + 16 * b);
      if (kSigned) u = _mm256_xor_si256(u, _mm256_set1_epi8(8));
      return madd_ones(_mm256_maddubs_epi16(u, q));
    }
    __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 32 * b));
    if (!kSigned) v = _mm256_xor_si256(v, _mm256_set1_epi8(static_cast<char>(0x80)));
    return dot_signed(v, q);
  }
  // 4-bit: blocks b and b + 1 at once against activations paired as [even columns of b, of
  // b + 1] and [odd columns of b, of b + 1]: int32 lanes 0-3 hold block b, 4-7 block b + 1 (two
  // blocks' maddubs sums fit in int16: 2 * 2 * 15 * 127).
  static constexpr bool kPairs = kBits == 4;
  static void prefetch(const WeightView& w, int64_t n, int64_t rows) {
    prefetch_params(w, w.scale, w.scale_type, n, rows);
    if (kZero) prefetch_params(w, w.zero, w.zero_type, n, rows);
  }
  __m256i dot2(int64_t b, __m256i qlo, __m256i qhi) const {
    __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 16 * b));
    if (kSigned) v = _mm256_xor_si256(v, _mm256_set1_epi8(static_cast<char>(0x88)));
    const __m256i m = _mm256_set1_epi8(15);
    const __m256i lo = _mm256_and_si256(v, m), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m);
    return madd_ones(_mm256_add_epi16(_mm256_maddubs_epi16(lo, qlo), _mm256_maddubs_epi16(hi, qhi)));
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
                      float* d, __m256& acc, float& acc1) {
    const int64_t gbase = (n / w.group_rows) * w.groups_k;
    const int64_t per = w.group_cols / kQBlock;  // blocks per group
    int64_t b = b0;
    if (per == 1) {
      for (; b + 8 <= b1; b += 8) {
        const __m256 s = load8f(w.scale, w.scale_type, gbase + b);
        _mm256_storeu_ps(d + (b - b0), _mm256_mul_ps(s, _mm256_loadu_ps(x.scale + b)));
        __m256 c = _mm256_set1_ps(static_cast<float>(kOffset));
        if (kZero) c = _mm256_sub_ps(c, load8f(w.zero, w.zero_type, gbase + b));
        if (kZero || kOffset != 0)
          acc = _mm256_fmadd_ps(_mm256_mul_ps(s, c), _mm256_loadu_ps(x.ssum + b), acc);
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

// 4-bit table, its int8 copy: pshufb looks the 32 nibbles up; one table per group of rows.
struct FastLut4 {
  static constexpr int kOffset = 0;
  static constexpr int64_t kBlockBytes = kQBlock / 2;
  const uint8_t* p = nullptr;
  __m256i table = _mm256_setzero_si256();
  void row(const WeightView& w, int64_t n) {
    p = w.data + n * (w.K / 2);
    table = _mm256_broadcastsi128_si256(
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(w.lut_i8 + (n / w.group_rows) * 16)));
  }
  __m256i dot(int64_t b, __m256i q) const {
    return dot_signed(_mm256_shuffle_epi8(table, nibbles(p + 16 * b)), q);
  }
  static constexpr bool kPairs = true;  // as FastQuant::dot2
  static void prefetch(const WeightView& w, int64_t n, int64_t rows) {
    if (n >= w.N) return;
    if (w.row_scale) prefetch_range(w.row_scale + n, 4 * min64(rows, w.N - n));
  }
  __m256i dot2(int64_t b, __m256i qlo, __m256i qhi) const {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 16 * b));
    const __m256i m = _mm256_set1_epi8(15);
    const __m256i lo = _mm256_and_si256(v, m), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m);
    return _mm256_add_epi32(dot_signed(_mm256_shuffle_epi8(table, lo), qlo),
                            dot_signed(_mm256_shuffle_epi8(table, hi), qhi));
  }
  static float finish(const WeightView& w, int64_t n, float v, const QuantRow&) {
    v *= w.lut_i8_scale[n / w.group_rows];
    return w.row_scale ? v * w.row_scale[n] : v;
  }
  static void factors(const WeightView&, int64_t, const QuantRow&, int64_t, int64_t, float*,
                      __m256&, float&) {}
};

constexpr int64_t kFactorChunk = 64;  // blocks whose factors are computed at once

// How far ahead fast_gemv prefetches the weights (rounded up to whole groups of 4 rows): 1 to 4
// KiB measured alike (2 threads, weights from DRAM: 4-bit formats 10-13 -> 20-27 GB/s).
constexpr int64_t kPrefetchBytes = 2048;

template <class D, bool kBlock, int R>
inline void fast_rows(const WeightView& w, const QuantRow& x, int64_t blocks, int64_t n,
                      const float* bias, float* out, int64_t pf) {
  D d[R];
  __m256 acc[R];
  float acc1[R];
  for (int r = 0; r < R; ++r) {
    d[r].row(w, n + r);
    acc[r] = _mm256_setzero_ps();
    acc1[r] = 0.0f;
  }
  alignas(32) float f[kBlock ? R : 1][kBlock ? kFactorChunk : 1];
  for (int64_t b0 = 0; b0 < blocks; b0 += kFactorChunk) {
    const int64_t b1 = min64(blocks, b0 + kFactorChunk);
    if (kBlock)
      for (int r = 0; r < R; ++r) D::factors(w, n + r, x, b0, b1, f[r], acc[r], acc1[r]);
    int64_t b = b0;
    if (D::kPairs)
      for (; b + 2 <= b1; b += 2) {
        if (pf && ((b * D::kBlockBytes) & 63) == 0)
          for (int r = 0; r < R; ++r) _mm_prefetch(d[r].p + b * D::kBlockBytes + pf, _MM_HINT_T0);
        const __m256i* qp = reinterpret_cast<const __m256i*>(x.q + b * kQBlock);
        const __m256i qlo = _mm256_loadu_si256(qp), qhi = _mm256_loadu_si256(qp + 1);
        if (kBlock) {
          for (int r = 0; r < R; ++r) {
            const float* fr = f[r] + (b - b0);
            const __m256 s = _mm256_insertf128_ps(
                _mm256_castps128_ps256(_mm_broadcast_ss(fr)), _mm_broadcast_ss(fr + 1), 1);
            acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d[r].dot2(b, qlo, qhi)), s, acc[r]);
          }
        } else {
          const __m256 s = _mm256_insertf128_ps(
              _mm256_castps128_ps256(_mm_broadcast_ss(x.scale + b)), _mm_broadcast_ss(x.scale + b + 1), 1);
          for (int r = 0; r < R; ++r)
            acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d[r].dot2(b, qlo, qhi)), s, acc[r]);
        }
      }
    for (; b < b1; ++b) {  // single blocks (4-bit: the last of an odd count)
      if (pf && ((b * D::kBlockBytes) & 63) == 0)
        for (int r = 0; r < R; ++r) _mm_prefetch(d[r].p + b * D::kBlockBytes + pf, _MM_HINT_T0);
      const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.q + b * kQBlock));
      if (kBlock) {
        for (int r = 0; r < R; ++r)
          acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d[r].dot(b, q)),
                                   _mm256_broadcast_ss(f[r] + (b - b0)), acc[r]);
      } else {
        const __m256 s = _mm256_broadcast_ss(x.scale + b);
        for (int r = 0; r < R; ++r)
          acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d[r].dot(b, q)), s, acc[r]);
      }
    }
  }
  const int64_t body = blocks * kQBlock;
  for (int r = 0; r < R; ++r) {
    float v = hsum(acc[r]) + acc1[r];
    if (!kBlock) v = D::finish(w, n + r, v, x);
    if (body < w.K) {  // fewer than 32 columns, exactly
      float tail[kQBlock];
      decode_row(w, n + r, body, w.K, tail);
      for (int64_t k = body; k < w.K; ++k) v += tail[k - body] * x.x[k];
    }
    out[n + r] = bias ? v + bias[n + r] : v;
  }
}

template <class D, bool kBlock>
void fast_gemv(const WeightView& w, const QuantRow* x, int64_t M, int64_t n0, int64_t n1,
               const float* bias, float* out) {
  const int64_t blocks = w.K / kQBlock;
  // prefetch whole groups of 4 rows ahead (at least kPrefetchBytes), within [n0, n1) only
  const int64_t group = 4 * blocks * D::kBlockBytes;
  const int64_t ahead = group > 0 ? (kPrefetchBytes + group - 1) / group : 0;
  const int64_t pf = ahead * group, pf_rows = 4 * ahead;
  int64_t n = n0;
  // each group of rows meets every activation row while it is in L1
  for (; n + 4 <= n1; n += 4) {
    if (pf && n + pf_rows < n1) D::prefetch(w, n + pf_rows, min64(4, n1 - n - pf_rows));
    for (int64_t m = 0; m < M; ++m)
      fast_rows<D, kBlock, 4>(w, x[m], blocks, n, bias, out + m * w.N,
                              m == 0 && n + pf_rows < n1 ? pf : 0);
  }
  for (; n < n1; ++n)
    for (int64_t m = 0; m < M; ++m)
      fast_rows<D, kBlock, 1>(w, x[m], blocks, n, bias, out + m * w.N, 0);
}

template <int kBits, bool kSigned, bool kZero, bool kBlock>
constexpr FastKernels fast_quant() {
  return FastKernels{kBits == 4, fast_gemv<FastQuant<kBits, kSigned, kZero>, kBlock>};
}
// [signed][zero point][parameters along the row]
constexpr FastKernels kFastQ4[2][2][2] = {
    {{fast_quant<4, false, false, false>(), fast_quant<4, false, false, true>()},
     {fast_quant<4, false, true, false>(), fast_quant<4, false, true, true>()}},
    {{fast_quant<4, true, false, false>(), fast_quant<4, true, false, true>()},
     {fast_quant<4, true, true, false>(), fast_quant<4, true, true, true>()}}};
constexpr FastKernels kFastQ8[2][2][2] = {
    {{fast_quant<8, false, false, false>(), fast_quant<8, false, false, true>()},
     {fast_quant<8, false, true, false>(), fast_quant<8, false, true, true>()}},
    {{fast_quant<8, true, false, false>(), fast_quant<8, true, false, true>()},
     {fast_quant<8, true, true, false>(), fast_quant<8, true, true, true>()}}};
constexpr FastKernels kFastLut4 = {true, fast_gemv<FastLut4, false>};

}  // namespace

const FastKernels* avx2_fast_kernels(const WeightView& w) {
  const bool row_params = w.groups_k == 1;
  const bool block_params = w.groups_k > 1 && w.group_cols % kQBlock == 0;
  if (w.kind == WeightKind::Quant) {
    if (!row_params && !block_params) return nullptr;
    if (w.nbits == 8) return &kFastQ8[w.is_signed][w.zero != nullptr][block_params];
    if (w.nbits == 4 && w.K % 2 == 0) return &kFastQ4[w.is_signed][w.zero != nullptr][block_params];
    return nullptr;
  }
  if (w.kind == WeightKind::Lut && w.nbits == 4 && w.K % 2 == 0 && row_params && w.lut_i8)
    return &kFastLut4;
  return nullptr;
}

void avx2_quantize_row(const float* x, int64_t blocks, bool permuted, int8_t* q, float* scale,
                       float* ssum, float* ssum_total) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  // packs leave 4-column groups in the order 0 2 4 6 1 3 5 7 (of 8): undo it
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  // even columns then odd ones within each 16-byte lane, then lanes' halves regrouped
  const __m256i evens_odds = _mm256_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15,
                                              0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
  __m256i prev = _mm256_setzero_si256();
  float total1 = 0.0f;
  for (int64_t b = 0; b < blocks; ++b) {
    const float* p = x + b * kQBlock;
    const __m256 v0 = _mm256_loadu_ps(p), v1 = _mm256_loadu_ps(p + 8),
                 v2 = _mm256_loadu_ps(p + 16), v3 = _mm256_loadu_ps(p + 24);
    __m256 m = _mm256_max_ps(_mm256_max_ps(_mm256_and_ps(v0, abs_mask), _mm256_and_ps(v1, abs_mask)),
                             _mm256_max_ps(_mm256_and_ps(v2, abs_mask), _mm256_and_ps(v3, abs_mask)));
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_movehdup_ps(h));
    const float amax = _mm_cvtss_f32(h);
    const float s = amax / 127.0f;
    const __m256 inv = _mm256_set1_ps(amax > 0.0f ? 127.0f / amax : 0.0f);
    const __m256i i0 = _mm256_cvtps_epi32(_mm256_mul_ps(v0, inv)),
                  i1 = _mm256_cvtps_epi32(_mm256_mul_ps(v1, inv)),
                  i2 = _mm256_cvtps_epi32(_mm256_mul_ps(v2, inv)),
                  i3 = _mm256_cvtps_epi32(_mm256_mul_ps(v3, inv));
    const __m256i sum = _mm256_add_epi32(_mm256_add_epi32(i0, i1), _mm256_add_epi32(i2, i3));
    __m128i hs = _mm_add_epi32(_mm256_castsi256_si128(sum), _mm256_extracti128_si256(sum, 1));
    hs = _mm_add_epi32(hs, _mm_shuffle_epi32(hs, 0x4e));
    hs = _mm_add_epi32(hs, _mm_shuffle_epi32(hs, 0xb1));
    __m256i bytes = _mm256_permutevar8x32_epi32(
        _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3)), order);
    __m256i* out = reinterpret_cast<__m256i*>(q + b * kQBlock);
    if (!permuted) {
      _mm256_storeu_si256(out, bytes);
    } else {  // [even columns, odd ones]; pairs of blocks as [evens, evens], [odds, odds]
      bytes = _mm256_permute4x64_epi64(_mm256_shuffle_epi8(bytes, evens_odds), 0xd8);
      if (b % 2 == 1) {
        _mm256_storeu_si256(out - 1, _mm256_permute2x128_si256(prev, bytes, 0x20));
        _mm256_storeu_si256(out, _mm256_permute2x128_si256(prev, bytes, 0x31));
      } else if (b + 1 == blocks) {
        _mm256_storeu_si256(out, bytes);
      } else {
        prev = bytes;
      }
    }
    scale[b] = s;
    ssum[b] = s * static_cast<float>(_mm_cvtsi128_si32(hs));
    total1 += ssum[b];
  }
  *ssum_total = total1;
}

const RowKernels* avx2_kernels(const WeightView& w) {
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

void tile_gemm_avx2(const float* x, int64_t ldx, int64_t M, const float* tile, int64_t ldt,
                    int64_t rows, int64_t kp, float* out, int64_t ldo, float* work) {
  pack_tile(tile, ldt, rows, kp, work);
  int64_t m = 0;
  for (; m + kMR <= M; m += kMR) micro<kMR>(x + m * ldx, ldx, work, kp, rows, out + m * ldo, ldo);
  const float* xm = x + m * ldx;
  float* om = out + m * ldo;
  switch (M - m) {
    case 5: micro<5>(xm, ldx, work, kp, rows, om, ldo); break;
    case 4: micro<4>(xm, ldx, work, kp, rows, om, ldo); break;
    case 3: micro<3>(xm, ldx, work, kp, rows, om, ldo); break;
    case 2: micro<2>(xm, ldx, work, kp, rows, om, ldo); break;
    case 1: micro<1>(xm, ldx, work, kp, rows, om, ldo); break;
    default: break;
  }
}

}  // namespace linear
}  // namespace pocketml
