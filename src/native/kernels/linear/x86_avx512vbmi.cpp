// AVX-512 VBMI kernels of the int8-activation path (exact = false) for tables of every width but
// 4 (x86_int8.h's pshufb kernels take those) and for pruned rows of 8-bit codes (FastSparse8,
// below): compiled with AVX2 + FMA + F16C + AVX-512 F/BW/VL/VNNI/VBMI/VBMI2 for this file only,
// called only where the CPU has them (core/cpu.h, use_avx512vbmi).
//
// A block of 32 codes of B bits is 4 * B bytes of the LSB-first stream (weights.h), whatever B:
// vpermb copies bytes [j * B, j * B + 8) into 64-bit lane j (codes 8j to 8j + 7), vpmultishiftqb
// pulls byte i of each lane from bit offset i * B, an AND keeps B bits: 32 codes in column order,
// 4 instructions for any width. The table's int8 copy (weights.h, lut_i8) is then looked up in
// registers: vpermb for up to 32 entries, vpermi2b for 64, two or four of them and byte blends on
// the code's high bits for 128 and 256. The 32 bytes meet the block's int8 activations in one
// vpdpbusd, as the 4-bit tables do; a prefill's strips of 32 rows go through the 512-bit GEMM of
// the quantized codes (x86_vnni_wide.h).
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "kernels/linear/linear.h"
#include "kernels/linear/x86_int8.h"
#include "kernels/linear/x86_vnni_dot.h"
#include "kernels/linear/x86_avx512_lut.h"
#include "kernels/linear/x86_vnni_wide.h"

namespace pocketml {
namespace linear {
namespace {

// vpermb / vpmultishiftqb controls of B-bit codes (see above)
template <int kBits>
struct CodeControls {
  alignas(32) uint8_t spread[32];
  alignas(32) uint8_t shift[32];
  constexpr CodeControls() : spread(), shift() {
    for (int j = 0; j < 4; ++j)
      for (int i = 0; i < 8; ++i) {
        const int s = j * kBits + i;
        spread[8 * j + i] = static_cast<uint8_t>(s < 32 ? s : 31);  // bytes past 4B: not used
        shift[8 * j + i] = static_cast<uint8_t>(i * kBits);
      }
  }
};
template <int kBits>
inline constexpr CodeControls<kBits> kControls{};

// The 32 codes of the block at p (4 * kBits bytes, nothing read past them), in column order.
template <int kBits>
POCKETML_FORCE_INLINE __m256i unpack_codes(const uint8_t* p) {
  if constexpr (kBits == 8) {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  } else {
    const __m256i raw = _mm256_maskz_loadu_epi8(static_cast<__mmask32>((uint64_t(1) << (4 * kBits)) - 1), p);
    const __m256i spread = _mm256_permutexvar_epi8(
        _mm256_load_si256(reinterpret_cast<const __m256i*>(kControls<kBits>.spread)), raw);
    const __m256i codes = _mm256_multishift_epi64_epi8(
        _mm256_load_si256(reinterpret_cast<const __m256i*>(kControls<kBits>.shift)), spread);
    return _mm256_and_si256(codes, _mm256_set1_epi8(static_cast<char>((1 << kBits) - 1)));
  }
}

// One table's int8 copy in registers, looked up by 32 codes at once.
template <int kBits>
struct Table {
  static constexpr int kEntries = 1 << kBits;
  static constexpr int kRegs = kBits <= 5 ? 1 : kEntries / 32;
  __m256i t[kRegs];
  // entries flipped by ^ 0x80 where `flip` (unsigned bytes for vpdpbusd)
  POCKETML_FORCE_INLINE void load(const int8_t* p, bool flip) {
    for (int r = 0; r < kRegs; ++r) {
      t[r] = kEntries < 32
                 ? _mm256_maskz_loadu_epi8(static_cast<__mmask32>((uint64_t(1) << kEntries) - 1), p)
                 : _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 32 * r));
      if (flip) t[r] = _mm256_xor_si256(t[r], _mm256_set1_epi8(static_cast<char>(0x80)));
    }
  }
  POCKETML_FORCE_INLINE __m256i lookup(__m256i c) const {
    if constexpr (kRegs == 1) {
      return _mm256_permutexvar_epi8(c, t[0]);
    } else if constexpr (kRegs == 2) {
      return _mm256_permutex2var_epi8(t[0], c, t[1]);
    } else {
      const __mmask32 b6 = _mm256_test_epi8_mask(c, _mm256_set1_epi8(0x40));
      const __m256i v = _mm256_mask_blend_epi8(b6, _mm256_permutex2var_epi8(t[0], c, t[1]),
                                               _mm256_permutex2var_epi8(t[2], c, t[3]));
      if constexpr (kRegs == 4) {
        return v;
      } else {
        const __m256i u = _mm256_mask_blend_epi8(b6, _mm256_permutex2var_epi8(t[4], c, t[5]),
                                                 _mm256_permutex2var_epi8(t[6], c, t[7]));
        return _mm256_mask_blend_epi8(_mm256_movepi8_mask(c), v, u);
      }
    }
  }
};

// The decode-step decoder (x86_int8.h's fast_rows): one table per group of rows.
template <int kBits>
struct FastLutN {
  static constexpr int kOffset = kByteOffset<VnniDot>;  // entries go in as unsigned bytes
  const uint8_t* p;
  Table<kBits> table;
  float scale;  // the table's int8 scale times the row's
  POCKETML_FORCE_INLINE void row(const WeightView& w, int64_t n) {
    p = w.data + n * (w.K * kBits / 8);
    const int64_t g = n / w.lut_i8_rows;
    table.load(w.lut_i8 + g * Table<kBits>::kEntries, true);
    scale = w.row_scale ? w.lut_i8_scale[g] * w.row_scale[n] : w.lut_i8_scale[g];
  }
  POCKETML_FORCE_INLINE __m256i dot(int64_t b, __m256i q) const {
    return VnniDot::b8(table.lookup(unpack_codes<kBits>(p + 4 * kBits * b)), q);
  }
  static constexpr bool kPairs = false;
  __m256i dot2(int64_t, __m256i, __m256i) const { return _mm256_setzero_si256(); }
  float finish(const WeightView&, int64_t, float v, const QuantRow& x) const {
    return (v + kOffset * x.ssum_total) * scale;
  }
  static void factors(const WeightView&, int64_t, const QuantRow&, int64_t, int64_t, float*,
                      __m256&, float&) {}
};

// The GEMM's tile decoder (x86_int8.h's fast_gemm): signed table entries.
template <int kBits>
struct TileLutN {
  static constexpr bool kOff = false;
  static __m256i codes(const WeightView& w, int64_t n, int64_t, int64_t b) {
    Table<kBits> t;
    t.load(w.lut_i8 + n / w.lut_i8_rows * Table<kBits>::kEntries, false);
    return t.lookup(unpack_codes<kBits>(w.data + n * (w.K * kBits / 8) + 4 * kBits * b));
  }
  static void params(const WeightView& w, int64_t n, int64_t, float& scale, float& off) {
    scale = w.lut_i8_scale[n / w.lut_i8_rows] * (w.row_scale ? w.row_scale[n] : 1.0f);
    off = 0.0f;
  }
};

// Pruned rows whose kept values are 8-bit codes with one scale (the joint mode prune + int8 /
// uint8 per tensor): each block's 32 mask bits expand the next popcount(mask) codes into place
// (vpexpandb), pruned lanes taking the code of a zero weight (0, or the zero point), so the block
// goes through the same dot product and offset terms as a dense row of codes. Rows are read in
// order (dot is called for blocks 0, 1, 2, ...: fast_rows), the codes pointer advancing.
template <bool kSigned, bool kZero>
struct FastSparse8 {
  static constexpr int kOffset = kSigned ? kByteOffset<VnniDot> : 0;  // signed codes flipped
  const uint8_t* mask;
  const uint8_t* p;
  __m256i fill;
  POCKETML_FORCE_INLINE void row(const WeightView& w, int64_t n) {
    mask = w.data + n * (w.K / 8);
    p = w.values->data + w.row_offset[n];
    fill = _mm256_set1_epi8(kZero ? static_cast<char>(*static_cast<const uint8_t*>(w.values->zero)) : 0);
  }
  POCKETML_FORCE_INLINE __m256i dot(int64_t b, __m256i q) {
    uint32_t m;
    std::memcpy(&m, mask + 4 * b, 4);
    __m256i v = _mm256_mask_expandloadu_epi8(fill, m, p);
    p += _mm_popcnt_u32(m);
    if (kSigned) v = _mm256_xor_si256(v, _mm256_set1_epi8(static_cast<char>(0x80)));
    return VnniDot::b8(v, q);
  }
  static constexpr bool kPairs = false;
  __m256i dot2(int64_t, __m256i, __m256i) const { return _mm256_setzero_si256(); }
  float finish(const WeightView& w, int64_t, float v, const QuantRow& x) const {
    const WeightView& c = *w.values;
    const float z = kZero ? scalar_at(c.zero, c.zero_type, 0) : 0.0f;
    return scalar_at(c.scale, c.scale_type, 0) * (v + (kOffset - z) * x.ssum_total);
  }
  static void factors(const WeightView&, int64_t, const QuantRow&, int64_t, int64_t, float*,
                      __m256&, float&) {}
};

template <bool kSigned, bool kZero>
constexpr FastKernels sparse8_kernels() {  // decode rows only (no GEMM: prefills run exactly)
  return FastKernels{false, fast_gemv<FastSparse8<kSigned, kZero>, false>, false, nullptr};
}
constexpr FastKernels kSparse8[2][2] = {{sparse8_kernels<false, false>(), sparse8_kernels<false, true>()},
                                        {sparse8_kernels<true, false>(), sparse8_kernels<true, true>()}};

template <int kBits>
constexpr FastKernels lut_kernels() {  // prefills: the 512-bit GEMM (x86_vnni_wide.h)
  return FastKernels{false, fast_gemv<FastLutN<kBits>, false>, true, gemm_wide<TileLutN<kBits>, false>,
                     kWideStripRows};
}

// by width; 4 bits: x86_int8.h's kernels
constexpr FastKernels kLut[9] = {{}, lut_kernels<1>(), lut_kernels<2>(), lut_kernels<3>(), {},
                                 lut_kernels<5>(), lut_kernels<6>(), lut_kernels<7>(),
                                 lut_kernels<8>()};

// The exact path's decoder of tables of up to 64 entries (1-3, 5 and 6 bits; x86_avx512.cpp's
// decodes rows starting mid-byte and the rows' last codes): 32 codes unpacked at once as above,
// widened to two vectors of 16 lanes and looked up in the float table (x86_avx512_lut.h), the
// row scale folded into the table.
template <int kBits>
void lut_decode_rows(const WeightView& w, int64_t n0, int64_t n1, float* tile, int64_t ldt) {
  constexpr int kEntries = 1 << kBits;
  const RowKernels& rest = *avx512_kernels(w);  // rows not starting on a byte, and row tails
  const int64_t K = w.K;
  FloatTable<kEntries> table;
  int64_t loaded = -1;
  for (int64_t n = n0; n < n1; ++n) {
    float* o = tile + (n - n0) * ldt;
    const int64_t e0 = n * K;
    if ((e0 * kBits) % 8 != 0 || w.groups_k != 1) {
      rest.decode(w, n, n + 1, o, ldt);
      continue;
    }
    const int64_t g = (n / w.group_rows);
    if (g != loaded) table.load(w, g), loaded = g;
    const FloatTable<kEntries> t = w.row_scale ? table.scaled(w.row_scale[n]) : table;
    const uint8_t* p = w.data + e0 * kBits / 8;
    int64_t k = 0;
    for (; k + 32 <= K; k += 32) {
      const __m256i c = unpack_codes<kBits>(p + k / 8 * kBits);
      _mm512_storeu_ps(o + k, t.lookup(_mm512_cvtepu8_epi32(_mm256_castsi256_si128(c))));
      _mm512_storeu_ps(o + k + 16, t.lookup(_mm512_cvtepu8_epi32(_mm256_extracti128_si256(c, 1))));
    }
    if (k < K) {  // the last K % 32 codes: the portable-width decoder of this row's tail
      alignas(64) float t[32 + 16];
      WeightView v = w;  // row n's codes from column k on, as a one-row weight
      v.N = 1;
      v.K = K - k;
      v.data = p + k / 8 * kBits;
      v.group_rows = 1;
      v.lut = static_cast<const uint8_t*>(w.lut) + g * kEntries * (w.lut_type == ScalarType::F32 ? 4 : 2);
      v.row_scale = w.row_scale ? w.row_scale + n : nullptr;
      rest.decode(v, 0, 1, t, 48);
      std::memcpy(o + k, t, static_cast<size_t>(K - k) * sizeof(float));
    }
    for (int64_t c = K; c < ldt; ++c) o[c] = 0.0f;
  }
}

}  // namespace

const RowKernels* avx512vbmi_kernels(const WeightView& w) {
  const RowKernels* base = avx512_kernels(w);
  if (base == nullptr || w.kind != WeightKind::Lut || w.nbits > 6 || w.nbits == 4) return base;
  static const RowKernels* rows = [] {  // gemv: the portable one, as x86_avx512.cpp's
    static RowKernels k[7] = {{}, {false, generic_kernels.gemv, lut_decode_rows<1>},
                              {false, generic_kernels.gemv, lut_decode_rows<2>},
                              {false, generic_kernels.gemv, lut_decode_rows<3>}, {},
                              {false, generic_kernels.gemv, lut_decode_rows<5>},
                              {false, generic_kernels.gemv, lut_decode_rows<6>}};
    return k;
  }();
  return &rows[w.nbits];
}

const FastKernels* avx512vbmi_fast_kernels(const WeightView& w) {
  if (w.kind == WeightKind::Sparse && w.K % 8 == 0) {
    const WeightView& v = *w.values;
    const ScalarType code = v.is_signed ? ScalarType::I8 : ScalarType::U8;
    if (v.kind == WeightKind::Quant && v.nbits == 8 && v.groups_n * v.groups_k == 1 &&
        (v.zero == nullptr || v.zero_type == code))
      return &kSparse8[v.is_signed][v.zero != nullptr];
    return nullptr;
  }
  // one table per group of rows (none along K), rows starting on a byte
  if (w.kind == WeightKind::Lut && w.nbits != 4 && w.nbits >= 1 && w.nbits <= 8 &&
      w.groups_k == 1 && w.lut_i8 && (w.K * w.nbits) % 8 == 0)
    return &kLut[w.nbits];
  return nullptr;
}

}  // namespace linear
}  // namespace pocketml
