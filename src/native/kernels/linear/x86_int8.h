// The int8-activation path (gemm with exact = false) of the x86 instruction sets, one template
// over the integer dot product: included by x86_avx2.cpp (maddubs + madd) and x86_avx512vnni.cpp
// (vpdpbusd), each compiled with its own flags. Everything here is internal (anonymous
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
  const uint8_t* p;  // set by row()
  void row(const WeightView& w, int64_t n) { p = w.data + n * (w.K * kBits / 8); }
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
  static void prefetch(const WeightView& w, int64_t n, int64_t rows) {
    prefetch_params(w, w.scale, w.scale_type, n, rows);
    if (kZero) prefetch_params(w, w.zero, w.zero_type, n, rows);
  }
  __m256i dot2(int64_t b, __m256i qlo, __m256i qhi) const {
    __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 16 * b));
    if (kSigned) v = _mm256_xor_si256(v, _mm256_set1_epi8(static_cast<char>(0x88)));
    const __m256i m = _mm256_set1_epi8(15);
    const __m256i lo = _mm256_and_si256(v, m), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m);
    return Dot::u4x2(lo, qlo, hi, qhi);
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

// 4-bit table, its int8 copy: pshufb looks the 32 nibbles up; one table per group of rows,
// its entries flipped once per row where Dot takes unsigned bytes.
template <class Dot>
struct FastLut4 {
  static constexpr int kOffset = Dot::kUnsignedBytes ? kByteOffset<Dot> : 0;
  static constexpr int64_t kBlockBytes = kQBlock / 2;
  const uint8_t* p;  // set by row() (no initializer: no stores to zero them first)
  __m256i table;
  void row(const WeightView& w, int64_t n) {
    p = w.data + n * (w.K / 2);
    table = _mm256_broadcastsi128_si256(
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(w.lut_i8 + (n / w.group_rows) * 16)));
    if (Dot::kUnsignedBytes)
      table = _mm256_xor_si256(table, _mm256_set1_epi8(static_cast<char>(0x80)));
  }
  __m256i dot(int64_t b, __m256i q) const {
    return Dot::b8(_mm256_shuffle_epi8(table, nibbles(p + 16 * b)), q);
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
    return Dot::b8x2(_mm256_shuffle_epi8(table, lo), qlo, _mm256_shuffle_epi8(table, hi), qhi);
  }
  static float finish(const WeightView& w, int64_t n, float v, const QuantRow& x) {
    if (kOffset != 0) v += kOffset * x.ssum_total;
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
  const __m256i pair = _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1);
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
            // [f(b) x 4, f(b + 1) x 4]: the pair broadcast, then picked within each lane
            const __m256 s = _mm256_permutevar_ps(
                _mm256_castsi256_ps(_mm256_broadcastq_epi64(
                    _mm_loadl_epi64(reinterpret_cast<const __m128i*>(f[r] + (b - b0))))),
                pair);
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

template <class Dot, int kBits, bool kSigned, bool kZero, bool kBlock>
constexpr FastKernels fast_quant() {
  return FastKernels{kBits == 4, fast_gemv<FastQuant<Dot, kBits, kSigned, kZero>, kBlock>};
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
  static constexpr FastKernels of = {true, fast_gemv<FastLut4<Dot>, false>};
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
