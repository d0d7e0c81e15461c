// AVX2 + FMA + F16C kernels, compiled with those flags for this file only and called only when
// the CPU has them (core/cpu.h). Everything here is internal (anonymous namespace) and uses no
// inline function of a shared header (but x86_int8.h, internal too) or of the standard library:
// an AVX2 copy of such a function could be picked by the linker for the portable code too.
#include <immintrin.h>

#include <cstdint>

#include "kernels/linear/linear.h"
#include "kernels/linear/x86_int8.h"

namespace pocketml {
namespace linear {
namespace {

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

// R rows at once (n + r * stride): R independent accumulator chains hide the FMA latency, and
// each x vector loaded serves R rows.
template <class D, int R>
inline void gemv_rows(const WeightView& w, const Layout& L, const float* x, int64_t n,
                      int64_t stride, const float* bias, float* out) {
  D d[R] = {};
  __m256 total[R];
  for (int r = 0; r < R; ++r) {
    d[r].init(w);
    d[r].row(n + r * stride);
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
                     ? _mm256_fmadd_ps(acc[r], _mm256_set1_ps(d[r].factor(n + r * stride, gk)), total[r])
                     : _mm256_add_ps(total[r], acc[r]);
  }
  for (int r = 0; r < R; ++r) {
    const int64_t nr = n + r * stride;
    float v = hsum(total[r]);
    if (!D::kSegmentScale) v *= d[r].factor(nr, 0);
    if (L.body < w.K) {  // fewer than 16 columns, unpermuted
      float tail[16];
      decode_row(w, nr, L.body, w.K, tail);
      for (int64_t k = L.body; k < w.K; ++k) v += tail[k - L.body] * x[k];
    }
    out[nr] = bias ? v + bias[nr] : v;
  }
}

// 4 streams of consecutive rows, each reading memory in order (as fast_gemv, x86_int8.h: short
// rows interleaved starve the hardware prefetchers).
template <class D>
void gemv(const WeightView& w, const float* x, int64_t n0, int64_t n1, const float* bias,
          float* out) {
  const Layout L = layout(w);
  const int64_t per = (n1 - n0) / 4;
  for (int64_t i = 0; i < per; ++i) gemv_rows<D, 4>(w, L, x, n0 + i, per, bias, out);
  for (int64_t n = n0 + 4 * per; n < n1; ++n) gemv_rows<D, 1>(w, L, x, n, 1, bias, out);
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
// The int8-activation path (exact = false, x86_int8.h): AVX2's dot products are maddubs
// (unsigned x signed bytes into int16 pairs) then madd against ones (into int32).

inline __m256i madd_ones(__m256i p16) { return _mm256_madd_epi16(p16, _mm256_set1_epi16(1)); }

// signed weight bytes w times signed activations q: |w| (unsigned) x sign(q, w)
inline __m256i dot_signed(__m256i w, __m256i q) {
  return madd_ones(_mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(q, w)));
}

// Keeps `a` one running sum: GCC otherwise reassociates a block's 8 additions into a tree whose
// temporaries spill from AVX2's 16 registers (measured 15-25% slower).
inline void running_sum(__m256i& a) {
#if defined(__GNUC__)
  __asm__("" : "+x"(a));
#else
  (void)a;
#endif
}

// The blocked GEMM (x86_int8.h). 4-bit values v in [-8, 7] against unsigned activations u
// (1 to 255): maddubs pairs stay within 2 * 255 * 8, and a block's 8 of them within int16
// (32640), so a block accumulates in int16 and widens once.
struct Avx2Gemm4 {
  static constexpr bool kUnsignedAct = true;
  static constexpr int kRows = 3;
  using Acc = __m256i;
  static Acc init(__m256i) { return _mm256_setzero_si256(); }
  static __m256i finish(Acc a, __m256i corr) { return _mm256_add_epi32(madd_ones(a), corr); }
  static __m256i prep(__m256i w) { return w; }
  static void step(Acc& a, __m256i x, __m256i w, __m256i) {
    a = _mm256_add_epi16(a, _mm256_maddubs_epi16(x, w));
    running_sum(a);
  }
  static __m256i sum4(__m256i v) {
    return madd_ones(_mm256_maddubs_epi16(_mm256_set1_epi8(1), v));
  }
};
// 8-bit values: signed activations, |v| against q with v's sign (dot_signed), widened per step.
struct Avx2Gemm8 {
  static constexpr bool kUnsignedAct = false;
  static constexpr int kRows = 3;
  using Acc = __m256i;
  static Acc init(__m256i) { return _mm256_setzero_si256(); }
  static __m256i finish(Acc a, __m256i) { return a; }
  static __m256i prep(__m256i w) { return _mm256_sign_epi8(w, w); }
  static void step(Acc& a, __m256i x, __m256i w, __m256i wabs) {
    a = _mm256_add_epi32(a, madd_ones(_mm256_maddubs_epi16(wabs, _mm256_sign_epi8(x, w))));
    running_sum(a);
  }
  static __m256i sum4(__m256i v) { return Avx2Gemm4::sum4(v); }
};
template <int kBits>
struct Avx2GemmOf {
  using type = Avx2Gemm8;
};
template <>
struct Avx2GemmOf<4> {
  using type = Avx2Gemm4;
};

struct Avx2Dot {
  template <int kBits>
  using Gemm = typename Avx2GemmOf<kBits>::type;
  // maddubs saturates its int16 sums of two products (2 * 255 * 127 would not fit): 8-bit
  // weights go in signed, as |w| against q with w's sign (dot_signed)
  static constexpr bool kUnsignedBytes = false;
  static __m256i u4(__m256i u, __m256i q) { return madd_ones(_mm256_maddubs_epi16(u, q)); }
  // two blocks' int16 sums still fit: 2 * 2 * 15 * 127
  static __m256i u4x2(__m256i a, __m256i qa, __m256i b, __m256i qb) {
    return madd_ones(_mm256_add_epi16(_mm256_maddubs_epi16(a, qa), _mm256_maddubs_epi16(b, qb)));
  }
  // the same added to init (int32 lanes)
  static __m256i u4i(__m256i init, __m256i u, __m256i q) { return _mm256_add_epi32(init, u4(u, q)); }
  static __m256i u4x2i(__m256i init, __m256i a, __m256i qa, __m256i b, __m256i qb) {
    return _mm256_add_epi32(init, u4x2(a, qa, b, qb));
  }
  static __m256i b8(__m256i v, __m256i q) { return dot_signed(v, q); }
  static __m256i b8x2(__m256i a, __m256i qa, __m256i b, __m256i qb) {
    return _mm256_add_epi32(dot_signed(a, qa), dot_signed(b, qb));
  }
};


}  // namespace

const FastKernels* avx2_fast_kernels(const WeightView& w) { return fast_kernels_of<Avx2Dot>(w); }

void avx2_quantize_row(const float* x, int64_t blocks, bool permuted, bool offset, int8_t* q,
                       float* scale, float* ssum, float* ssum_total, int32_t* isum) {
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
      if (offset) bytes = _mm256_xor_si256(bytes, _mm256_set1_epi8(static_cast<char>(0x80)));
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
    isum[b] = _mm_cvtsi128_si32(hs);
    ssum[b] = s * static_cast<float>(isum[b]);
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
