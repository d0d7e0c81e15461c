// The int8-activation path (gemm with exact = false) of the x86 instruction sets, one template
// over the integer dot product: included by x86_avx2.cpp (maddubs + madd), x86_avx512vnni.cpp and
// x86_avx512vbmi.cpp (vpdpbusd; x86_avx512.cpp for scalar_at), each compiled with its own flags. Everything here is internal (anonymous
// namespace), so each of those files gets its own copy, never shared with the portable code nor
// with each other by the linker. Include only from a file compiled with at least AVX2 + FMA +
// F16C. Its first helpers (min64 to load8_u8_epi32) serve x86_avx2.cpp's exact kernels too.
//
// Per block of 32 columns, a weight decoder gives the 8 int32 partial sums of its codes with the
// block's int8 activations; those become floats and take one FMA with the block's factor. Codes
// are linear in the weight with an offset: W = (code + c - zero) * scale, so
// W . x = scale * (code . q + (c - zero) * sum(q)) * xscale per block; the sums of q come
// precomputed with the activations (QuantRow::ssum).
#pragma once

#include <immintrin.h>

#include <cstdint>

#include "kernels/linear/linear.h"

// inlined whatever the compiler's estimate: helpers whose arrays must stay in registers
#if !defined(POCKETML_FORCE_INLINE)
#if defined(_MSC_VER)
#define POCKETML_FORCE_INLINE __forceinline
#else
#define POCKETML_FORCE_INLINE __attribute__((always_inline)) inline
#endif
#endif

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

// n / group_rows: row n's group of parameters (without a division where there is one per row;
// a decode step asks once or twice per row)
inline int64_t row_group(const WeightView& w, int64_t n) {
  return w.group_rows == 1 ? n : n / w.group_rows;
}

inline __m256i load8_u8_epi32(const uint8_t* p) {
  return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
}

// 16 bytes of nibbles -> 32 unsigned bytes: the low nibbles (even columns), then the high ones.
inline __m256i nibbles(const uint8_t* p) {
  const __m256i v = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  return _mm256_and_si256(_mm256_blend_epi32(v, _mm256_srli_epi16(v, 4), 0xF0),
                          _mm256_set1_epi8(15));
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

// The dot products of an instruction set (class Dot), over 32 bytes against 32 signed int8
// activations q, into 8 int32 lanes (lane i: the products of bytes 4i to 4i + 3, summed):
//   kUnsignedBytes  how 8-bit weights (codes, table entries) enter: as unsigned bytes (a signed
//                   value v flipped by ^ 0x80 to v + 128) or as signed ones (an unsigned u
//                   flipped to u - 128); the offset returns through sum(q) (kOffset below)
//   u4(u, q)        u: unsigned bytes of at most 15 (4-bit codes)
//   u4x2(a, qa, b, qb) = u4(a, qa) + u4(b, qb)
//   b8(v, q), b8x2(a, qa, b, qb): the same for 8-bit weights as kUnsignedBytes says
template <class Dot>
constexpr int kByteOffset = Dot::kUnsignedBytes ? -128 : 128;  // value = flipped byte + this

// Linear quantization, 4- or 8-bit codes; kBlock: parameters change along a row (groups of
// columns, a multiple of 32), else one scale (and zero point) per row.
template <class Dot, int kBits, bool kSigned, bool kZero>
struct FastQuant {
  // 8-bit codes flipped by ^ 0x80 into the dot product's kind of byte
  static constexpr bool kFlip8 = kSigned == Dot::kUnsignedBytes;
  // W = (code + kOffset - zero) * scale, code as the dot product sees it: 4-bit, an unsigned
  // nibble (signed ones flipped by ^ 8); 8-bit, a byte of Dot's kind.
  static constexpr int kOffset = kBits == 4 ? (kSigned ? -8 : 0) : (kFlip8 ? kByteOffset<Dot> : 0);
  static constexpr int64_t kBlockBytes = kQBlock * kBits / 8;
  // Signed 4-bit codes with parameters per block: the offset's -8 * sum(q) of each block starts
  // its int32 accumulator (dot2i / doti, from QuantRow::isum, one vector per block pair for
  // every row), instead of a float term per block and row in factors().
  static constexpr bool kIntOffset = kBits == 4 && kSigned && !kZero;
  const uint8_t* p;  // set by row()
  void row(const WeightView& w, int64_t n) { p = w.data + n * (w.K * kBits / 8); }
  __m256i doti(int64_t b, __m256i q, __m256i init) const {
    return Dot::u4i(init, _mm256_xor_si256(nibbles(p + 16 * b), _mm256_set1_epi8(8)), q);
  }
  __m256i dot2i(int64_t b, __m256i qlo, __m256i qhi, __m256i init) const {
    const __m256i v = _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 16 * b)),
                                       _mm256_set1_epi8(static_cast<char>(0x88)));
    const __m256i m = _mm256_set1_epi8(15);
    return Dot::u4x2i(init, _mm256_and_si256(v, m), qlo, _mm256_and_si256(_mm256_srli_epi16(v, 4), m), qhi);
  }
  __m256i dot(int64_t b, __m256i q) const {
    if (kBits == 4) {
      __m256i u = nibbles(p + 16 * b);
      if (kSigned) u = _mm256_xor_si256(u, _mm256_set1_epi8(8));
      return Dot::u4(u, q);
    }
    __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 32 * b));
    if (kFlip8) v = _mm256_xor_si256(v, _mm256_set1_epi8(static_cast<char>(0x80)));
    return Dot::b8(v, q);
  }
  // 4-bit: blocks b and b + 1 at once against activations paired as [even columns of b, of
  // b + 1] and [odd columns of b, of b + 1]: int32 lanes 0-3 hold block b, 4-7 block b + 1.
  static constexpr bool kPairs = kBits == 4;
  __m256i dot2(int64_t b, __m256i qlo, __m256i qhi) const {
    __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 16 * b));
    if (kSigned) v = _mm256_xor_si256(v, _mm256_set1_epi8(static_cast<char>(0x88)));
    const __m256i m = _mm256_set1_epi8(15);
    const __m256i lo = _mm256_and_si256(v, m), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m);
    return Dot::u4x2(lo, qlo, hi, qhi);
  }
  // one parameter set per row: v = code . q summed with the block scales
  float finish(const WeightView& w, int64_t n, float v, const QuantRow& x) const {
    const int64_t g = row_group(w, n);
    const float z = kZero ? scalar_at(w.zero, w.zero_type, g) : 0.0f;
    return scalar_at(w.scale, w.scale_type, g) * (v + (kOffset - z) * x.ssum_total);
  }
  // parameters per group of columns: d[b - b0] = scale(b) * xscale(b) for b in [b0, b1), and
  // the offset terms added to acc
  static void factors(const WeightView& w, int64_t n, const QuantRow& x, int64_t b0, int64_t b1,
                      float* d, __m256& acc, float& acc1) {
    const int64_t gbase = row_group(w, n) * w.groups_k;
    const int64_t per = w.group_cols == kQBlock ? 1 : w.group_cols / kQBlock;  // blocks per group
    int64_t b = b0;
    if (per == 1) {
      for (; b + 8 <= b1; b += 8) {
        const __m256 s = load8f(w.scale, w.scale_type, gbase + b);
        _mm256_storeu_ps(d + (b - b0), _mm256_mul_ps(s, _mm256_loadu_ps(x.scale + b)));
        __m256 c = _mm256_set1_ps(static_cast<float>(kOffset));
        if (kZero) c = _mm256_sub_ps(c, load8f(w.zero, w.zero_type, gbase + b));
        if (kZero || (kOffset != 0 && !kIntOffset))
          acc = _mm256_fmadd_ps(_mm256_mul_ps(s, c), _mm256_loadu_ps(x.ssum + b), acc);
      }
      if (b < b1 && b1 - b0 >= 8) {
        // the last (< 8) blocks as the 8 ending at b1: those before b get the same factors
        // again, their offset terms masked (a scalar tail took ~20 % of SmolLM2's K = 576 rows)
        const int64_t e = b1 - 8;
        const __m256 s = load8f(w.scale, w.scale_type, gbase + e);
        _mm256_storeu_ps(d + (e - b0), _mm256_mul_ps(s, _mm256_loadu_ps(x.scale + e)));
        if (kZero || (kOffset != 0 && !kIntOffset)) {
          __m256 c = _mm256_set1_ps(static_cast<float>(kOffset));
          if (kZero) c = _mm256_sub_ps(c, load8f(w.zero, w.zero_type, gbase + e));
          const __m256 fresh = _mm256_castsi256_ps(_mm256_cmpgt_epi32(
              _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(static_cast<int>(b - e - 1))));
          acc = _mm256_fmadd_ps(_mm256_and_ps(fresh, _mm256_mul_ps(s, c)), _mm256_loadu_ps(x.ssum + e), acc);
        }
        b = b1;
      }
    }
    for (; b < b1; ++b) {
      const int64_t g = gbase + (per == 1 ? b : b / per);
      const float s = scalar_at(w.scale, w.scale_type, g);
      d[b - b0] = s * x.scale[b];
      const float c = kOffset - (kZero ? scalar_at(w.zero, w.zero_type, g) : 0.0f);
      if (!kIntOffset) acc1 += s * c * x.ssum[b];
    }
  }
};

// 4-bit table, its int8 copy: pshufb looks the 32 nibbles up; one table per group of rows,
// its entries flipped once per row where Dot takes unsigned bytes.
template <class Dot>
struct FastLut4 {
  static constexpr int kOffset = Dot::kUnsignedBytes ? kByteOffset<Dot> : 0;
  static constexpr int64_t kBlockBytes = kQBlock / 2;
  const uint8_t* p;  // set by row() (no initializer: no stores to zero them first)
  __m256i table;
  float scale;  // the table's int8 scale times the row's
  void row(const WeightView& w, int64_t n) {
    p = w.data + n * (w.K / 2);
    const int64_t g = n / w.lut_i8_rows;
    table = _mm256_broadcastsi128_si256(
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(w.lut_i8 + g * 16)));
    scale = w.row_scale ? w.lut_i8_scale[g] * w.row_scale[n] : w.lut_i8_scale[g];
    if (Dot::kUnsignedBytes)
      table = _mm256_xor_si256(table, _mm256_set1_epi8(static_cast<char>(0x80)));
  }
  __m256i dot(int64_t b, __m256i q) const {
    return Dot::b8(_mm256_shuffle_epi8(table, nibbles(p + 16 * b)), q);
  }
  static constexpr bool kPairs = true;  // as FastQuant::dot2
  __m256i dot2(int64_t b, __m256i qlo, __m256i qhi) const {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 16 * b));
    const __m256i m = _mm256_set1_epi8(15);
    const __m256i lo = _mm256_and_si256(v, m), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m);
    return Dot::b8x2(_mm256_shuffle_epi8(table, lo), qlo, _mm256_shuffle_epi8(table, hi), qhi);
  }
  float finish(const WeightView&, int64_t, float v, const QuantRow& x) const {
    if (kOffset != 0) v += kOffset * x.ssum_total;
    return v * scale;
  }
  static void factors(const WeightView&, int64_t, const QuantRow&, int64_t, int64_t, float*,
                      __m256&, float&) {}
};

constexpr int64_t kFactorChunk = 64;  // blocks whose factors are computed at once

// D::kIntOffset where D has it (FastQuant), else false
template <class D, class = void>
struct IntOffset { static constexpr bool value = false; };
template <class D>
struct IntOffset<D, decltype(void(D::kIntOffset))> { static constexpr bool value = D::kIntOffset; };

template <class D, bool kBlock, int R>
inline void fast_rows(const WeightView& w, const QuantRow& x, int64_t blocks, int64_t n,
                      int64_t stride, const float* bias, float* out) {
  D d[R];
  __m256 acc[R];
  float acc1[R];
  for (int r = 0; r < R; ++r) {
    d[r].row(w, n + r * stride);
    acc[r] = _mm256_setzero_ps();
    acc1[r] = 0.0f;
  }
  alignas(32) float f[kBlock ? R : 1][kBlock ? kFactorChunk : 1];
  const __m256i pair = _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1);
  for (int64_t b0 = 0; b0 < blocks; b0 += kFactorChunk) {
    const int64_t b1 = min64(blocks, b0 + kFactorChunk);
    if (kBlock)
      for (int r = 0; r < R; ++r) D::factors(w, n + r * stride, x, b0, b1, f[r], acc[r], acc1[r]);
    int64_t b = b0;
    if (D::kPairs)
      for (; b + 2 <= b1; b += 2) {
        const __m256i* qp = reinterpret_cast<const __m256i*>(x.q + b * kQBlock);
        const __m256i qlo = _mm256_loadu_si256(qp), qhi = _mm256_loadu_si256(qp + 1);
        if (kBlock) {
          __m256i init = _mm256_setzero_si256();
          if constexpr (IntOffset<D>::value)  // lanes 0 and 4: -8 * sum(q) of blocks b, b + 1
            init = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_cvtsi32_si128(-8 * x.isum[b])),
                                           _mm_cvtsi32_si128(-8 * x.isum[b + 1]), 1);
          for (int r = 0; r < R; ++r) {
            // [f(b) x 4, f(b + 1) x 4]: the pair broadcast, then picked within each lane
            const __m256 s = _mm256_permutevar_ps(
                _mm256_castsi256_ps(_mm256_broadcastq_epi64(
                    _mm_loadl_epi64(reinterpret_cast<const __m128i*>(f[r] + (b - b0))))),
                pair);
            __m256i dot;
            if constexpr (IntOffset<D>::value)
              dot = d[r].dot2i(b, qlo, qhi, init);
            else
              dot = d[r].dot2(b, qlo, qhi);
            acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), s, acc[r]);
          }
        } else {
          const __m256 s = _mm256_insertf128_ps(
              _mm256_castps128_ps256(_mm_broadcast_ss(x.scale + b)), _mm_broadcast_ss(x.scale + b + 1), 1);
          for (int r = 0; r < R; ++r)
            acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d[r].dot2(b, qlo, qhi)), s, acc[r]);
        }
      }
    for (; b < b1; ++b) {  // single blocks (4-bit: the last of an odd count)
      const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.q + b * kQBlock));
      if (kBlock) {
        for (int r = 0; r < R; ++r) {
          __m256i dot;
          if constexpr (IntOffset<D>::value)
            dot = d[r].doti(b, q, _mm256_castsi128_si256(_mm_cvtsi32_si128(-8 * x.isum[b])));
          else
            dot = d[r].dot(b, q);
          acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), _mm256_broadcast_ss(f[r] + (b - b0)), acc[r]);
        }
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
    const int64_t nr = n + r * stride;
    if (!kBlock) v = d[r].finish(w, nr, v, x);
    if (body < w.K) {  // fewer than 32 columns, exactly
      float tail[kQBlock];
      decode_row(w, nr, body, w.K, tail);
      for (int64_t k = body; k < w.K; ++k) v += tail[k - body] * x.x[k];
    }
    out[nr] = bias ? v + bias[nr] : v;
  }
}

// Rows [n0, n1) as 4 streams of consecutive rows, [n0 + r * per, + per) for r < 4, advanced one
// row each at a time (the rest one by one): each stream reads memory in order, which the
// hardware prefetchers follow. Four neighbouring rows interleaved block by block instead (K =
// 576: 4 short streams 576 bytes apart, new ones every 2304 bytes) ran at 8-11 GB/s from DRAM on
// Zen 4 (one thread), software prefetching or not; 4 long streams at 17-21 (SmolLM2's 210 layers
// of a decode step: int8 per channel 12.5 -> 5.1-6.5 ms, int4 per block 5.5 -> 4.3-4.5, 4-bit
// tables 4.6-5.0 -> 3.1-4.2), no software prefetching needed.
template <class D, bool kBlock>
void fast_gemv(const WeightView& w, const QuantRow* x, int64_t M, int64_t n0, int64_t n1,
               const float* bias, float* out) {
  const int64_t blocks = w.K / kQBlock, per = (n1 - n0) / 4;
  // each group of rows meets every activation row while it is in L1
  for (int64_t i = 0; i < per; ++i)
    for (int64_t m = 0; m < M; ++m)
      fast_rows<D, kBlock, 4>(w, x[m], blocks, n0 + i, per, bias, out + m * w.N);
  for (int64_t n = n0 + 4 * per; n < n1; ++n)
    for (int64_t m = 0; m < M; ++m)
      fast_rows<D, kBlock, 1>(w, x[m], blocks, n, 1, bias, out + m * w.N);
}

// ---------------------------------------------------------------------------------------------
// The blocked GEMM (FastKernels::gemm, many activation rows). A strip of kFastStripRows (16)
// weight rows is decoded once per call into an int8 tile of signed values v, W = scale * (v +
// off) per row and group (4-bit codes as v in [-8, 7]; 8-bit: the code, unsigned ones - 128;
// tables: their int8 copy), laid out per block of 32 columns as [column quad j][row][4 bytes]:
// one 32-byte vector holds 4 consecutive columns of 8 rows, so a broadcast of 4 activation bytes
// meets 8 rows in one dot product, whose int32 lanes each sum a row's whole block. Register
// blocks of 16 rows x RM activation rows: each tile vector serves RM rows, each activation quad
// 16 weight rows; once per block the int32 sums become floats with one FMA (scales per row: the
// activation block scale alone, the row's scale at the end; per block: times the block's scales
// of 8 rows). Activations as unsigned bytes u = q + 128 where the dot product takes them so
// (G::kUnsignedAct): sum(u v) = sum(q v) + 128 sum(v), the last term taken back through each
// accumulator's start (corr = -128 sum(v) per row and block).
//
// A GEMM policy G (one per instruction set and width of v) provides:
//   kUnsignedAct        activations as q + 128 (else signed q, and corr unused)
//   Acc init(corr)      a block's accumulator; finish(acc, corr): its int32 sums
//   prep(w)             per tile vector, shared by the activation rows
//   step(acc, x, w, p)  acc += x (4 activation bytes, broadcast) . w (p = prep(w))
//   sum4(v)             int32 lanes: the sum of each 4 signed bytes

constexpr int64_t kTileBlockBytes = kQBlock * kFastStripRows;  // 512

// 16 bytes of nibbles -> 32 unsigned bytes in column order (byte i -> 16-bit lane i: its low
// nibble, column 2i, in the low byte, the high one above)
inline __m256i nibbles_in_order(const uint8_t* p) {
  const __m256i x = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  return _mm256_or_si256(_mm256_and_si256(x, _mm256_set1_epi16(0x000F)),
                         _mm256_and_si256(_mm256_slli_epi16(x, 4), _mm256_set1_epi16(0x0F00)));
}

// Weight decoders of the tile: codes(w, n, gn, b), the 32 values v of row n (in group of rows
// gn = n / group_rows), block b, in column order; params(w, n, g, scale, off): row n's
// parameters of set g (weights.h: gn * groups_k + the column group).
template <int kBits, bool kSigned, bool kZero>
struct TileQuant {
  static constexpr bool kOff = !kSigned || kZero;  // off is nonzero
  static __m256i codes(const WeightView& w, int64_t n, int64_t, int64_t b) {
    if (kBits == 8) {
      const __m256i v = _mm256_loadu_si256(
          reinterpret_cast<const __m256i*>(w.data + n * w.K + b * kQBlock));
      return kSigned ? v : _mm256_xor_si256(v, _mm256_set1_epi8(static_cast<char>(0x80)));
    }
    __m256i u = nibbles_in_order(w.data + n * (w.K / 2) + b * 16);
    if (kSigned) u = _mm256_xor_si256(u, _mm256_set1_epi8(8));  // two's complement -> q + 8
    return _mm256_sub_epi8(u, _mm256_set1_epi8(8));
  }
  static void params(const WeightView& w, int64_t, int64_t g, float& scale, float& off) {
    scale = scalar_at(w.scale, w.scale_type, g);
    off = kSigned ? 0.0f : (kBits == 8 ? 128.0f : 8.0f);
    if (kZero) off -= scalar_at(w.zero, w.zero_type, g);
  }
};

// 4-bit table: its int8 copy (weights.h, lut_i8), looked up by pshufb
struct TileLut4 {
  static constexpr bool kOff = false;
  static __m256i codes(const WeightView& w, int64_t n, int64_t, int64_t b) {
    const __m256i u = nibbles_in_order(w.data + n * (w.K / 2) + b * 16);
    const __m256i table = _mm256_broadcastsi128_si256(
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(w.lut_i8 + n / w.lut_i8_rows * 16)));
    return _mm256_shuffle_epi8(table, u);
  }
  static void params(const WeightView& w, int64_t n, int64_t, float& scale, float& off) {
    scale = w.lut_i8_scale[n / w.lut_i8_rows] * (w.row_scale ? w.row_scale[n] : 1.0f);
    off = 0.0f;
  }
};

// 8 x 8 transpose of 32-bit lanes: c[j] lane r <- c[r] lane j
POCKETML_FORCE_INLINE void transpose8(__m256i* c) {
  const __m256i t0 = _mm256_unpacklo_epi32(c[0], c[1]), t1 = _mm256_unpackhi_epi32(c[0], c[1]),
                t2 = _mm256_unpacklo_epi32(c[2], c[3]), t3 = _mm256_unpackhi_epi32(c[2], c[3]),
                t4 = _mm256_unpacklo_epi32(c[4], c[5]), t5 = _mm256_unpackhi_epi32(c[4], c[5]),
                t6 = _mm256_unpacklo_epi32(c[6], c[7]), t7 = _mm256_unpackhi_epi32(c[6], c[7]);
  const __m256i u0 = _mm256_unpacklo_epi64(t0, t2), u1 = _mm256_unpackhi_epi64(t0, t2),
                u2 = _mm256_unpacklo_epi64(t1, t3), u3 = _mm256_unpackhi_epi64(t1, t3),
                u4 = _mm256_unpacklo_epi64(t4, t6), u5 = _mm256_unpackhi_epi64(t4, t6),
                u6 = _mm256_unpacklo_epi64(t5, t7), u7 = _mm256_unpackhi_epi64(t5, t7);
  c[0] = _mm256_permute2x128_si256(u0, u4, 0x20);
  c[1] = _mm256_permute2x128_si256(u1, u5, 0x20);
  c[2] = _mm256_permute2x128_si256(u2, u6, 0x20);
  c[3] = _mm256_permute2x128_si256(u3, u7, 0x20);
  c[4] = _mm256_permute2x128_si256(u0, u4, 0x31);
  c[5] = _mm256_permute2x128_si256(u1, u5, 0x31);
  c[6] = _mm256_permute2x128_si256(u2, u6, 0x31);
  c[7] = _mm256_permute2x128_si256(u3, u7, 0x31);
}

// A decoded strip (pointers into the call's scratch).
struct Strip {
  const uint8_t* tile;   // [blocks][8 quads][16 rows][4]
  const int32_t* corr;   // [blocks][16]
  const float* scale;    // [blocks][16] (per-block parameters) or [16]
  const float* off;      // scale * off, the same shape
  const float* tail;     // [K - body][16] the exact columns past the blocks, transposed
  int64_t blocks, tail_cols;
};

inline __m256i load_quad(const uint8_t* p) {
  return _mm256_broadcastd_epi32(_mm_loadu_si32(p));
}

// out rows [m, m + RM) x the strip's `rows` columns.
template <class G, bool kBlock, bool kOff, int RM>
inline void gemm_micro(const Strip& s, const QuantRows& x, int64_t m, const float* bias,
                       float* out, int64_t ldo, int64_t rows) {
  const int64_t blocks = s.blocks;
  __m256 acc[RM][2];
  const uint8_t* q[RM];
  for (int i = 0; i < RM; ++i) {
    acc[i][0] = acc[i][1] = _mm256_setzero_ps();
    q[i] = x.q + (m + i) * x.ldq;
  }
  const float* xs = x.scale + m * blocks;
  const float* ss = x.ssum + m * blocks;
  for (int64_t b = 0; b < blocks; ++b) {
    const __m256i c0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(s.corr + b * 16));
    const __m256i c1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(s.corr + b * 16 + 8));
    typename G::Acc a[RM][2];
    for (int i = 0; i < RM; ++i) {
      a[i][0] = G::init(c0);
      a[i][1] = G::init(c1);
    }
    const uint8_t* t = s.tile + b * kTileBlockBytes;
#pragma GCC unroll 8
    for (int j = 0; j < 8; ++j) {
      const __m256i w0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(t + 64 * j));
      const __m256i w1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(t + 64 * j + 32));
      const __m256i p0 = G::prep(w0), p1 = G::prep(w1);
      for (int i = 0; i < RM; ++i) {
        const __m256i xb = load_quad(q[i] + b * kQBlock + 4 * j);
        G::step(a[i][0], xb, w0, p0);
        G::step(a[i][1], xb, w1, p1);
      }
    }
    __m256 s0, s1;
    if (kBlock) {
      s0 = _mm256_load_ps(s.scale + b * 16);
      s1 = _mm256_load_ps(s.scale + b * 16 + 8);
    }
    for (int i = 0; i < RM; ++i) {
      const __m256 sx = _mm256_broadcast_ss(xs + i * blocks + b);
      const __m256 f0 = kBlock ? _mm256_mul_ps(s0, sx) : sx, f1 = kBlock ? _mm256_mul_ps(s1, sx) : sx;
      acc[i][0] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(G::finish(a[i][0], c0)), f0, acc[i][0]);
      acc[i][1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(G::finish(a[i][1], c1)), f1, acc[i][1]);
      if (kBlock && kOff) {
        const __m256 sb = _mm256_broadcast_ss(ss + i * blocks + b);
        acc[i][0] = _mm256_fmadd_ps(_mm256_load_ps(s.off + b * 16), sb, acc[i][0]);
        acc[i][1] = _mm256_fmadd_ps(_mm256_load_ps(s.off + b * 16 + 8), sb, acc[i][1]);
      }
    }
  }
  for (int i = 0; i < RM; ++i) {
    __m256 v0 = acc[i][0], v1 = acc[i][1];
    if (!kBlock) {
      v0 = _mm256_mul_ps(v0, _mm256_load_ps(s.scale));
      v1 = _mm256_mul_ps(v1, _mm256_load_ps(s.scale + 8));
      if (kOff) {
        const __m256 st = _mm256_broadcast_ss(x.ssum_total + m + i);
        v0 = _mm256_fmadd_ps(_mm256_load_ps(s.off), st, v0);
        v1 = _mm256_fmadd_ps(_mm256_load_ps(s.off + 8), st, v1);
      }
    }
    const float* xr = x.x + (m + i) * x.ldx + blocks * kQBlock;
    for (int64_t c = 0; c < s.tail_cols; ++c) {
      const __m256 xv = _mm256_broadcast_ss(xr + c);
      v0 = _mm256_fmadd_ps(_mm256_load_ps(s.tail + c * 16), xv, v0);
      v1 = _mm256_fmadd_ps(_mm256_load_ps(s.tail + c * 16 + 8), xv, v1);
    }
    float* o = out + (m + i) * ldo;
    if (rows == kFastStripRows) {
      if (bias) {
        v0 = _mm256_add_ps(v0, _mm256_loadu_ps(bias));
        v1 = _mm256_add_ps(v1, _mm256_loadu_ps(bias + 8));
      }
      _mm256_storeu_ps(o, v0);
      _mm256_storeu_ps(o + 8, v1);
    } else {
      alignas(32) float r[16];
      _mm256_store_ps(r, v0);
      _mm256_store_ps(r + 8, v1);
      for (int64_t n = 0; n < rows; ++n) o[n] = bias ? r[n] + bias[n] : r[n];
    }
  }
}

// the last M % G::kRows activation rows (left < R + 1)
template <class G, bool kBlock, bool kOff, int R>
inline void gemm_rest(const Strip& s, const QuantRows& x, int64_t m, int64_t left,
                      const float* bias, float* out, int64_t ldo, int64_t rows) {
  if constexpr (R > 0) {
    if (left == R)
      gemm_micro<G, kBlock, kOff, R>(s, x, m, bias, out, ldo, rows);
    else
      gemm_rest<G, kBlock, kOff, R - 1>(s, x, m, left, bias, out, ldo, rows);
  }
}

// Decodes the strip [n0, n1) of R (16 or 32) weight rows into scratch as a Strip whose tile
// holds, per block of 32 columns, [8 column quads][R rows][4 bytes] (one 32-byte vector per quad
// and 8 rows; 32 bytes * R per block), with the -128 * sum(v) correction per row and block where
// G takes unsigned activations, the parameters and the exact tail columns (x86_avx512vnni.cpp's
// 32-row GEMM decodes with it too).
template <class G, class T, bool kBlock, int R>
Strip decode_strip(const WeightView& w, int64_t n0, int64_t n1, void* scratch) {
  const int64_t blocks = w.K / kQBlock, body = blocks * kQBlock, tail = w.K - body;
  constexpr int64_t kBlockBytes = kQBlock * R;
  int64_t gn[R];  // rows' groups
  for (int r = 0; r < R; ++r) gn[r] = n0 + r < n1 ? row_group(w, n0 + r) : 0;
  uint8_t* tile = static_cast<uint8_t*>(scratch);
  int32_t* corr = reinterpret_cast<int32_t*>(tile + blocks * kBlockBytes);
  float* scale = reinterpret_cast<float*>(corr + blocks * R);
  const int64_t nparams = kBlock ? blocks * R : R;
  float* off = scale + nparams;
  float* tailt = off + nparams;
  for (int h = 0; h < R / 8; ++h)
    for (int64_t b = 0; b < blocks; ++b) {
      __m256i c[8];
      for (int r = 0; r < 8; ++r) {
        const int64_t n = n0 + 8 * h + r;
        c[r] = n < n1 ? T::codes(w, n, gn[8 * h + r], b) : _mm256_setzero_si256();
      }
      transpose8(c);
      __m256i sum = _mm256_setzero_si256();
      for (int j = 0; j < 8; ++j) {
        _mm256_store_si256(reinterpret_cast<__m256i*>(tile + b * kBlockBytes + 4 * R * j + 32 * h), c[j]);
        sum = _mm256_add_epi32(sum, G::sum4(c[j]));
      }
      // -128 * sum(v)
      _mm256_store_si256(reinterpret_cast<__m256i*>(corr + b * R + 8 * h),
                         G::kUnsignedAct ? _mm256_sub_epi32(_mm256_setzero_si256(),
                                                            _mm256_slli_epi32(sum, 7))
                                         : _mm256_setzero_si256());
    }
  // parameters (one group of columns per block, or a run of `per` blocks sharing one)
  const int64_t per = kBlock ? w.group_cols / kQBlock : 1;
  for (int r = 0; r < R; ++r) {
    const int64_t n = n0 + r, g0 = gn[r] * w.groups_k;
    if (!kBlock) {
      float sc = 0.0f, o = 0.0f;
      if (n < n1) T::params(w, n, g0, sc, o);
      scale[r] = sc;
      off[r] = sc * o;
      continue;
    }
    for (int64_t b = 0, gk = 0; b < blocks; b += per, ++gk) {
      float sc = 0.0f, o = 0.0f;
      if (n < n1) T::params(w, n, g0 + gk, sc, o);
      for (int64_t i = b; i < min64(b + per, blocks); ++i) {
        scale[i * R + r] = sc;
        off[i * R + r] = sc * o;
      }
    }
  }
  if (tail > 0) {
    float t[kQBlock];
    for (int r = 0; r < R; ++r) {
      const int64_t n = n0 + r;
      if (n < n1) decode_row(w, n, body, w.K, t);
      for (int64_t c = 0; c < tail; ++c) tailt[c * R + r] = n < n1 ? t[c] : 0.0f;
    }
  }
  return Strip{tile, corr, scale, off, tailt, blocks, tail};
}

// FastKernels::gemm: decode the strip [n0, n1), then every activation row against it.
template <class G, class T, bool kBlock>
void fast_gemm(const WeightView& w, const QuantRows& x, int64_t M, int64_t n0, int64_t n1,
               const float* bias, float* out, void* scratch) {
  const Strip s = decode_strip<G, T, kBlock, kFastStripRows>(w, n0, n1, scratch);
  const float* bn = bias ? bias + n0 : nullptr;
  const int64_t rows = n1 - n0;
  int64_t m = 0;
  for (; m + G::kRows <= M; m += G::kRows)
    gemm_micro<G, kBlock, T::kOff, G::kRows>(s, x, m, bn, out + n0, w.N, rows);
  gemm_rest<G, kBlock, T::kOff, G::kRows - 1>(s, x, m, M - m, bn, out + n0, w.N, rows);
}

template <class Dot, int kBits, bool kSigned, bool kZero, bool kBlock>
constexpr FastKernels fast_quant() {
  using G = typename Dot::template Gemm<kBits>;
  return FastKernels{kBits == 4, fast_gemv<FastQuant<Dot, kBits, kSigned, kZero>, kBlock>,
                     G::kUnsignedAct, fast_gemm<G, TileQuant<kBits, kSigned, kZero>, kBlock>};
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
  using G = typename Dot::template Gemm<8>;  // table entries: any int8
  static constexpr FastKernels of = {true, fast_gemv<FastLut4<Dot>, false>, G::kUnsignedAct,
                                     fast_gemm<G, TileLut4, false>};
};

// The int8-activation kernels of w's format, or null where it has none.
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
