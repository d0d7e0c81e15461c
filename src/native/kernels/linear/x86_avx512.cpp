// The exact path's GEMM (gemm, M > 1) with AVX-512 F, compiled for this file only and called only
// where use_avx512vnni() (core/cpu.h: the CPU has AVX-512 F/BW/VL/VNNI, the OS saves ZMM state). 32 zmm registers hold a
// register tile of kMR activation rows x kNR weight rows (8 x 48: 24 accumulators, 3 weight
// vectors, a broadcast): per column of K, 3 loads and 8 broadcasts feed 24 FMAs (the AVX2 tile:
// 2 loads and 6 broadcasts for 12), half the instructions per multiply-add. Zen 4 runs a zmm FMA
// as two 256-bit halves: the same FLOP per cycle as AVX2, with fewer loads, broadcasts and loop
// overhead per FMA.
// Weights go in strips of kNR rows, over the threads (and blocks of activation rows where there
// are few strips); a strip's rows are read straight from W (float32) or decoded by the format's
// RowKernels into an fp32 tile, then packed (16 x 16 transposes) into a panel [kc][kNR] of up to
// kKC columns, which every register tile of activation rows then runs over.
// Measured on Zen 4 (2 threads, M = 128 to 4096, MiniLM and SmolLM2 shapes): 100-110 GMAC/s, the
// AVX2 tile 85-100.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <cstdint>
#include <vector>

#include "core/pool.h"
#include "kernels/activation/x86_avx512_fast.h"
#include "kernels/linear/linear.h"
#include "kernels/linear/x86_avx512_lut.h"
#include "kernels/linear/x86_int8.h"  // scalar_at (internal to this file too)
#include "kernels/x86_avx512_transpose.h"

namespace pocketml {
namespace linear {
namespace {

#if defined(__GNUC__)
#define POCKETML_UNROLL _Pragma("GCC unroll 8")
#else
#define POCKETML_UNROLL
#endif

constexpr int64_t kMR = 8;    // activation rows of the register tile
constexpr int64_t kNR = 48;   // weight rows of the register tile and of a strip (3 zmm)
// Columns per packed panel at most: one panel of K for the shapes of common encoders and small
// LLMs (K <= 1536: 288 KiB, in L2; from L2 as fast as kKC = 128 from L1, with a third of the
// stores and reloads of the register tile: 10-15% faster on Zen 4).
constexpr int64_t kKC = 1536;
// Activation rows per chunk at least, where strips are split into row blocks for the threads.
constexpr int64_t kMinRowsPerChunk = 64;

__mmask16 mask_of(int64_t n) {
  return n >= 16 ? __mmask16(0xffff) : __mmask16((1u << std::max<int64_t>(n, 0)) - 1);
}

// panel[k * kNR + r] = src[r * ld + k] for r < rows (zero for rows <= r < kNR), k < kc.
void pack_panel(const float* src, int64_t ld, int64_t rows, int64_t kc, float* panel) {
  for (int64_t rb = 0; rb < kNR; rb += 16) {
    for (int64_t k = 0; k < kc; k += 16) {
      const __mmask16 km = mask_of(kc - k);
      __m512 r[16];
      for (int64_t i = 0; i < 16; ++i)
        r[i] = rb + i < rows ? _mm512_maskz_loadu_ps(km, src + (rb + i) * ld + k)
                             : _mm512_setzero_ps();
      transpose16(r);
      const int64_t kn = std::min<int64_t>(16, kc - k);
      for (int64_t j = 0; j < kn; ++j) _mm512_store_ps(panel + (k + j) * kNR + rb, r[j]);
    }
  }
}

// out[r * ldo + j] (+)= x[r * ldx : + kc] . panel column j for r < MR, j < cols: the first panel
// of K adds bias (or nothing) rather than out; the last adds res (or nothing: null, rows ldo
// apart as out's), then applies act (Act::None: nothing).
template <int MR>
void micro(const float* x, int64_t ldx, const float* panel, int64_t kc, float* out, int64_t ldo,
           int64_t cols, bool first, const float* bias, const float* res, Act act, const float* next) {
  __m512 acc[MR][3];
  POCKETML_UNROLL for (int r = 0; r < MR; ++r)
    POCKETML_UNROLL for (int j = 0; j < 3; ++j) acc[r][j] = _mm512_setzero_ps();
  for (int64_t k = 0; k < kc; ++k) {
    if ((k & 15) == 0) {
      if (next)  // the next tile's rows, a line each per 16 columns
        POCKETML_UNROLL for (int r = 0; r < kMR; ++r) _mm_prefetch(reinterpret_cast<const char*>(next + r * ldx + k), _MM_HINT_T0);
      const int64_t r = k >> 4;  // row r's lines of out (and res) for the epilogue, early
      if (r < MR) {
        for (int j = 0; j < 3; ++j) _mm_prefetch(reinterpret_cast<const char*>(out + r * ldo + 16 * j), _MM_HINT_ET0);
        if (res)
          for (int j = 0; j < 3; ++j) _mm_prefetch(reinterpret_cast<const char*>(res + r * ldo + 16 * j), _MM_HINT_T0);
      }
    }
    const float* p = panel + k * kNR;
    const __m512 b0 = _mm512_load_ps(p), b1 = _mm512_load_ps(p + 16), b2 = _mm512_load_ps(p + 32);
    POCKETML_UNROLL for (int r = 0; r < MR; ++r) {
      const __m512 a = _mm512_set1_ps(x[r * ldx + k]);
      acc[r][0] = _mm512_fmadd_ps(a, b0, acc[r][0]);
      acc[r][1] = _mm512_fmadd_ps(a, b1, acc[r][1]);
      acc[r][2] = _mm512_fmadd_ps(a, b2, acc[r][2]);
    }
  }
  const __mmask16 m[3] = {mask_of(cols), mask_of(cols - 16), mask_of(cols - 32)};
  POCKETML_UNROLL for (int j = 0; j < 3; ++j) {  // an all-zero mask loads and stores nothing
    const __m512 b = first && bias ? _mm512_maskz_loadu_ps(m[j], bias + 16 * j) : _mm512_setzero_ps();
    POCKETML_UNROLL for (int r = 0; r < MR; ++r) {
      float* o = out + r * ldo + 16 * j;
      const __m512 c = first ? b : _mm512_maskz_loadu_ps(m[j], o);
      __m512 v = _mm512_add_ps(acc[r][j], c);
      if (res) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m[j], res + r * ldo + 16 * j));
      if (act == Act::Gelu) v = activation::gelu16(v);
      if (act == Act::Silu) v = activation::silu16(v);
      _mm512_mask_storeu_ps(o, m[j], v);
    }
  }
}

void micro_rows(int64_t rows, const float* x, int64_t ldx, const float* panel, int64_t kc,
                float* out, int64_t ldo, int64_t cols, bool first, const float* bias, const float* res,
                Act act, const float* next) {
  switch (rows) {
    case 8: micro<8>(x, ldx, panel, kc, out, ldo, cols, first, bias, res, act, next); break;
    case 7: micro<7>(x, ldx, panel, kc, out, ldo, cols, first, bias, res, act, next); break;
    case 6: micro<6>(x, ldx, panel, kc, out, ldo, cols, first, bias, res, act, next); break;
    case 5: micro<5>(x, ldx, panel, kc, out, ldo, cols, first, bias, res, act, next); break;
    case 4: micro<4>(x, ldx, panel, kc, out, ldo, cols, first, bias, res, act, next); break;
    case 3: micro<3>(x, ldx, panel, kc, out, ldo, cols, first, bias, res, act, next); break;
    case 2: micro<2>(x, ldx, panel, kc, out, ldo, cols, first, bias, res, act, next); break;
    case 1: micro<1>(x, ldx, panel, kc, out, ldo, cols, first, bias, res, act, next); break;
    default: break;
  }
}

// Per-thread scratch, 64-byte aligned, kept between calls.
float* scratch(int64_t n) {
  thread_local std::vector<float> buf;
  if (static_cast<int64_t>(buf.size()) < n + 16) buf.resize(static_cast<size_t>(n + 16));
  return reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(buf.data()) + 63) & ~uintptr_t(63));
}

// ---------------------------------------------------------------------------------------------
// Sparse rows: each 16 columns take the next popcount(mask) kept values, expanded into place by
// the 16 mask bits (vexpandps), zeros elsewhere. Float32 values are read straight from the
// stream; other kinds (joint modes) are decoded per row into a buffer first.

// the 16 mask bits of elements [e, e + 16) (reads no byte past them)
inline __mmask16 mask16(const uint8_t* p, int64_t e) {
  const uint8_t* b = p + (e >> 3);
  const int sh = static_cast<int>(e & 7);
  uint32_t v = b[0] | static_cast<uint32_t>(b[1]) << 8;
  if (sh) v = (v | static_cast<uint32_t>(b[2]) << 16) >> sh;
  return static_cast<__mmask16>(v);
}

// the next popcount(m) values at v spread over the lanes set in m (nothing read past them)
inline __m512 expand16(__mmask16 m, const float* v) { return _mm512_maskz_expandloadu_ps(m, v); }

// POPCNT comes with every AVX-512 CPU (this file is compiled with -mpopcnt)
inline int popcount16(__mmask16 m) { return _mm_popcnt_u32(m); }

// Row n's kept values as float32: the stream itself, or decoded into buf (K floats).
inline const float* sparse_values(const WeightView& w, int64_t n, std::vector<float>& buf) {
  const int64_t v0 = w.row_offset[n], v1 = w.row_offset[n + 1];
  const WeightView& v = *w.values;
  if (v.kind == WeightKind::F32) return reinterpret_cast<const float*>(v.data) + v0;
  if (static_cast<int64_t>(buf.size()) < v1 - v0 + 16) buf.resize(static_cast<size_t>(v1 - v0 + 16));
  if (v.kind == WeightKind::Quant && v.nbits == 8 && v.groups_n * v.groups_k == 1 &&
      v.scale_type == ScalarType::F32 && (!v.zero || v.zero_type == v.scale_type ||
                                          v.zero_type == (v.is_signed ? ScalarType::I8 : ScalarType::U8))) {
    // 8-bit codes with one scale (the joint mode's per-tensor quantization): (q - zero) * scale
    const float s = *static_cast<const float*>(v.scale);
    float z = 0.0f;
    if (v.zero)
      z = v.zero_type == ScalarType::F32 ? *static_cast<const float*>(v.zero)
          : v.is_signed                  ? *static_cast<const int8_t*>(v.zero)
                                         : *static_cast<const uint8_t*>(v.zero);
    const __m512 sv = _mm512_set1_ps(s), zv = _mm512_set1_ps(z);
    const uint8_t* q = v.data + v0;
    float* o = buf.data();
    int64_t i = 0;
    for (; i + 16 <= v1 - v0; i += 16) {
      const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q + i));
      const __m512i w = v.is_signed ? _mm512_cvtepi8_epi32(b) : _mm512_cvtepu8_epi32(b);
      _mm512_storeu_ps(o + i, _mm512_mul_ps(_mm512_sub_ps(_mm512_cvtepi32_ps(w), zv), sv));
    }
    if (i < v1 - v0) decode_row(v, 0, v0 + i, v1, o + i);
    return o;
  }
  if (v1 > v0) decode_row(v, 0, v0, v1, buf.data());
  return buf.data();
}

void sparse_gemv(const WeightView& w, const float* x, int64_t n0, int64_t n1, const float* bias,
                 float* out) {
  thread_local std::vector<float> buf;
  const int64_t K = w.K;
  for (int64_t n = n0; n < n1; ++n) {
    const float* v = sparse_values(w, n, buf);
    const int64_t e0 = n * K;
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    int64_t k = 0;
    for (; k + 32 <= K; k += 32) {
      const __mmask16 m0 = mask16(w.data, e0 + k), m1 = mask16(w.data, e0 + k + 16);
      const int c0 = popcount16(m0), c1 = popcount16(m1);
      acc0 = _mm512_fmadd_ps(expand16(m0, v), _mm512_loadu_ps(x + k), acc0);
      v += c0;
      acc1 = _mm512_fmadd_ps(expand16(m1, v), _mm512_loadu_ps(x + k + 16), acc1);
      v += c1;
    }
    float r = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
    for (; k < K; ++k) {
      const int64_t e = e0 + k;
      if ((w.data[e >> 3] >> (e & 7)) & 1) r += *v++ * x[k];
    }
    out[n] = bias ? r + bias[n] : r;
  }
}

void sparse_decode(const WeightView& w, int64_t n0, int64_t n1, float* tile, int64_t ldt) {
  thread_local std::vector<float> buf;
  const int64_t K = w.K;
  for (int64_t n = n0; n < n1; ++n) {
    const float* v = sparse_values(w, n, buf);
    const int64_t e0 = n * K;
    float* t = tile + (n - n0) * ldt;
    int64_t k = 0;
    for (; k + 16 <= K; k += 16) {
      const __mmask16 m = mask16(w.data, e0 + k);
      _mm512_storeu_ps(t + k, expand16(m, v));
      v += popcount16(m);
    }
    for (; k < K; ++k) {
      const int64_t e = e0 + k;
      t[k] = (w.data[e >> 3] >> (e & 7)) & 1 ? *v++ : 0.0f;
    }
    std::fill(t + K, t + ldt, 0.0f);
  }
}

const RowKernels kSparse = {false, sparse_gemv, sparse_decode};

// ---------------------------------------------------------------------------------------------
// Decoders to fp32 for the exact path's tiles and the convolutions (kernels/conv: a block of
// output channels at a time), 16 columns a step, a row's tail under a mask. The codes of a
// palettized weight (1-3, 5 and 6 bits; 4 bits has its AVX2 kernels) come 8 at a time from one
// unaligned 64-bit load at any bit offset, split by variable shifts, and are looked up in
// registers (vpermps: 16 entries; vpermt2ps: 32; two and a blend on bit 5: 64). The row scale is
// folded into the table (one rounding, as the definition's table value * row_scale). 8-bit
// linear quantization: (q - zero point) * scale in float32, as the definition.

// The 64 bits of the stream from byte p on (zeros past end).
inline uint64_t load64(const uint8_t* p, const uint8_t* end) {
  uint64_t v = 0;
  if (p < end) std::memcpy(&v, p, p + 8 <= end ? 8 : static_cast<size_t>(end - p));
  return v;
}

// Codes e .. e + 15 of a kBits-bit LSB-first stream (kBits <= 7: 8 codes and a bit offset fit in
// 64 bits), as 16 x 32-bit lanes.
template <int kBits>
inline __m512i codes16(const uint8_t* data, const uint8_t* end, int64_t e) {
  const __m512i shifts = _mm512_setr_epi64(0, kBits, 2 * kBits, 3 * kBits, 4 * kBits, 5 * kBits, 6 * kBits, 7 * kBits);
  const __m512i mask = _mm512_set1_epi64((int64_t(1) << kBits) - 1);
  const int64_t b0 = e * kBits, b1 = b0 + 8 * kBits;
  const uint64_t lo = load64(data + (b0 >> 3), end) >> (b0 & 7), hi = load64(data + (b1 >> 3), end) >> (b1 & 7);
  const __m512i l = _mm512_and_si512(_mm512_srlv_epi64(_mm512_set1_epi64(static_cast<int64_t>(lo)), shifts), mask);
  const __m512i h = _mm512_and_si512(_mm512_srlv_epi64(_mm512_set1_epi64(static_cast<int64_t>(hi)), shifts), mask);
  return _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtepi64_epi32(l)), _mm512_cvtepi64_epi32(h), 1);
}

template <int kBits>
void lut_decode(const WeightView& w, int64_t n0, int64_t n1, float* tile, int64_t ldt) {
  constexpr int kEntries = 1 << kBits;
  const int64_t K = w.K;
  const uint8_t* end = w.data + (w.N * K * kBits + 7) / 8;  // the stream's last byte + 1
  FloatTable<kEntries> table;  // the last table loaded (short rows: loaded once)
  int64_t loaded = -1;
  for (int64_t n = n0; n < n1; ++n) {
    float* o = tile + (n - n0) * ldt;
    const int64_t gbase = (n / w.group_rows) * w.groups_k, e0 = n * K;
    for (int64_t gk = 0; gk < w.groups_k; ++gk) {
      const int64_t k0 = gk * w.group_cols, k1 = std::min(K, k0 + w.group_cols), g = gbase + gk;
      if (g != loaded) table.load(w, g), loaded = g;
      const FloatTable<kEntries> t = w.row_scale ? table.scaled(w.row_scale[n]) : table;
      for (int64_t k = k0; k < k1; k += 16)
        _mm512_mask_storeu_ps(o + k, mask_of(k1 - k), t.lookup(codes16<kBits>(w.data, end, e0 + k)));
    }
    std::fill(o + K, o + ldt, 0.0f);
  }
}

template <bool kSigned, bool kZero>
void q8_decode(const WeightView& w, int64_t n0, int64_t n1, float* tile, int64_t ldt) {
  const int64_t K = w.K;
  for (int64_t n = n0; n < n1; ++n) {
    float* o = tile + (n - n0) * ldt;
    const uint8_t* p = w.data + n * K;
    const int64_t gbase = (n / w.group_rows) * w.groups_k;
    for (int64_t gk = 0; gk < w.groups_k; ++gk) {
      const int64_t k0 = gk * w.group_cols, k1 = std::min(K, k0 + w.group_cols);
      const __m512 scale = _mm512_set1_ps(scalar_at(w.scale, w.scale_type, gbase + gk));
      const __m512 zero = _mm512_set1_ps(kZero ? scalar_at(w.zero, w.zero_type, gbase + gk) : 0.0f);
      for (int64_t k = k0; k < k1; k += 16) {
        const __mmask16 m = mask_of(k1 - k);
        const __m128i q = _mm_maskz_loadu_epi8(m, p + k);
        __m512 f = _mm512_cvtepi32_ps(kSigned ? _mm512_cvtepi8_epi32(q) : _mm512_cvtepu8_epi32(q));
        if (kZero) f = _mm512_sub_ps(f, zero);
        _mm512_mask_storeu_ps(o + k, m, _mm512_mul_ps(f, scale));
      }
    }
    std::fill(o + K, o + ldt, 0.0f);
  }
}

RowKernels kLut[7] = {};  // by bits; gemv: the portable one
RowKernels kQ8[2][2][2] = {};  // [signed][zero point][AVX2 gemv takes its groups]

}  // namespace

const RowKernels* avx512_kernels(const WeightView& w) {
  if (w.kind == WeightKind::Sparse) return &kSparse;
  if (w.kind == WeightKind::Quant && w.nbits == 8) {
    static const bool ready = [] {
      void (*decoders[2][2])(const WeightView&, int64_t, int64_t, float*, int64_t) = {
          {q8_decode<false, false>, q8_decode<false, true>}, {q8_decode<true, false>, q8_decode<true, true>}};
      const float some_zero = 0.0f;
      for (int sg = 0; sg < 2; ++sg)
        for (int z = 0; z < 2; ++z)
          for (int whole = 0; whole < 2; ++whole) {
            WeightView v;  // a view of this kind, for the gemv the AVX2 kernels have for it
            v.kind = WeightKind::Quant;
            v.nbits = 8;
            v.is_signed = sg == 1;
            v.zero = z ? &some_zero : nullptr;
            v.groups_k = whole ? 1 : 2;
            v.group_cols = whole ? 0 : 1;
            const RowKernels* a = nullptr;
#if defined(POCKETML_HAVE_AVX2_KERNELS)
            a = avx2_kernels(v);
#endif
            kQ8[sg][z][whole] = {false, a != nullptr ? a->gemv : generic_kernels.gemv, decoders[sg][z]};
          }
      return true;
    }();
    (void)ready;
    const bool whole = w.groups_k == 1 || w.group_cols % 16 == 0;  // as avx2_kernels takes them
    return &kQ8[w.is_signed ? 1 : 0][w.zero != nullptr ? 1 : 0][whole ? 1 : 0];
  }
  if (w.kind == WeightKind::Lut && w.nbits <= 6 && w.nbits != 4 &&
      (w.lut_type == ScalarType::F32 || w.lut_type == ScalarType::F16)) {
    static const bool ready = [] {
      void (*decoders[7])(const WeightView&, int64_t, int64_t, float*, int64_t) = {
          nullptr, lut_decode<1>, lut_decode<2>, lut_decode<3>, nullptr, lut_decode<5>, lut_decode<6>};
      for (int b = 1; b <= 6; ++b) kLut[b] = {false, generic_kernels.gemv, decoders[b]};
      return true;
    }();
    (void)ready;
    return &kLut[w.nbits];
  }
  return nullptr;
}

void gemm_avx512(const RowKernels& kern, const WeightView& w, const float* x, int64_t ldx,
                 int64_t M, const float* bias, float* out, int threads, const float* residual, Act act) {
  const int64_t N = w.N, K = w.K;
  const bool direct = w.kind == WeightKind::F32;  // rows read straight from W
  const int64_t ldt = (K + kTileAlign - 1) / kTileAlign * kTileAlign;
  const int64_t strips = (N + kNR - 1) / kNR;
  const int64_t panels = (K + kKC - 1) / kKC, kc_max = ((K + panels - 1) / panels + 15) / 16 * 16;
  // Row blocks per strip: enough chunks for the threads, each of kMinRowsPerChunk rows or more.
  const int64_t want = std::max<int64_t>(1, (2 * std::max(threads, 1) + strips - 1) / strips);
  const int64_t parts = std::max<int64_t>(1, std::min(want, M / kMinRowsPerChunk));
  const int64_t rows_per = ((M + parts - 1) / parts + kMR - 1) / kMR * kMR;
  const int64_t blocks = (M + rows_per - 1) / rows_per;
  parallel_for(strips * blocks, 1, threads, [&](int64_t c0, int64_t c1) {
    float* panel = scratch(kc_max * kNR + (direct ? 0 : kNR * ldt));
    float* tile = panel + kc_max * kNR;
    for (int64_t c = c0; c < c1; ++c) {
      const int64_t s = c / blocks, b = c % blocks;
      const int64_t n0 = s * kNR, cols = std::min(kNR, N - n0);
      const int64_t m0 = b * rows_per, m1 = std::min(M, m0 + rows_per);
      const float* src = reinterpret_cast<const float*>(w.data) + n0 * K;
      int64_t ld = K;
      if (!direct) {
        kern.decode(w, n0, n0 + cols, tile, ldt);
        src = tile;
        ld = ldt;
      }
      const float* bn = bias ? bias + n0 : nullptr;
      for (int64_t k0 = 0; k0 < K; k0 += kc_max) {
        const int64_t kc = std::min(kc_max, K - k0);
        pack_panel(src + k0, ld, cols, kc, panel);
        const bool last = k0 + kc >= K;
        for (int64_t m = m0; m < m1; m += kMR)
          micro_rows(std::min(kMR, m1 - m), x + m * ldx + k0, ldx, panel, kc, out + m * N + n0, N,
                     cols, k0 == 0, bn, last && residual ? residual + m * N + n0 : nullptr,
                     last ? act : Act::None, m + 2 * kMR <= m1 ? x + (m + kMR) * ldx + k0 : nullptr);
      }
    }
  });
}

}  // namespace linear
}  // namespace pocketml
