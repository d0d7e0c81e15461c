// The packed forms of a linear layer's weight W[N, K] (out_features x in_features, row-major),
// as pocketml stores them (pocketml/formats/ and the IR ops `dequantize` / `lut_to_dense` are
// the definition). Plain data only: the kernels of every instruction set include this header.
#pragma once

#include <cstdint>

namespace pocketml {

enum class WeightKind : uint8_t {
  F32,    // float32 W: 32 bits per weight
  F16,    // float16 W (IEEE binary16): 16 bits per weight
  Quant,  // linear quantization: W = (q - zero_point) * scale per group
  Lut,    // palettization: W = lut[group][index] (* row_scale[n])
  Sparse, // pruning: W[n, k] = the next value of a stream where mask bit n * K + k is set, else 0
};

enum class ScalarType : uint8_t { None, F32, F16, F64, I8, U8 };

// Storage units of the packed streams. Codes of `nbits` < 8 bits are packed LSB-first over the
// row-major flattened [N, K] tensor: element e occupies bits [e * nbits, (e + 1) * nbits) of the
// little-endian stream, so a code may straddle two bytes for 3, 5, 6 and 7 bits.
struct Half {  // f16 weights, scales and tables: 16 bits per weight
  uint16_t bits;
};
struct Code8 {  // int8 / uint8 quantized codes, 8-bit LUT indices: 8 bits per weight
  uint8_t bits;
};
struct NibblePair {  // int4 / uint4 codes (two's complement for int4), 4-bit LUT indices:
  uint8_t bits;      // element 2i in the low nibble, 2i + 1 in the high one: 4 bits per weight
};
static_assert(sizeof(Half) == 2, "f16 is 2 bytes");
static_assert(sizeof(Code8) == 1, "8-bit codes are 1 byte");
static_assert(sizeof(NibblePair) == 1, "two 4-bit codes per byte");

// Side data per weight (scales, zero points, tables), for reference:
//   int4 block-32, f16 scale: 4 + 16/32 = 4.5 bits per weight (5.0 with an f32 scale, +0.25 with
//   an int8 zero point); int8 per-channel: 8 + 32/K; lutB with one f32 table per G rows:
//   B + 32 * 2**B / (G * K) (4-bit, 16 rows, K = 576: 4.06).

// A borrowed view of a packed weight; the arrays belong to the caller (possibly memory-mapped).
struct WeightView {
  WeightKind kind = WeightKind::F32;
  int64_t N = 0, K = 0;
  const uint8_t* data = nullptr;  // values (F32/F16) or codes (Quant/Lut)
  int nbits = 32;                 // bits per element of `data`: 32, 16, 8, 4, 1..8 (Lut), 1 (Sparse)
  bool is_signed = false;         // Quant: int8/int4 codes

  // Parameters (Quant: scale, zero point; Lut: one table) per group of group_rows x group_cols
  // elements: element (n, k) uses set (n / group_rows) * groups_k + k / group_cols.
  int64_t groups_n = 1, groups_k = 1, group_rows = 0, group_cols = 0;
  const void* scale = nullptr;  // Quant: groups_n * groups_k scales
  ScalarType scale_type = ScalarType::None;
  const void* zero = nullptr;   // Quant: zero points like the scales, or none
  ScalarType zero_type = ScalarType::None;
  const void* lut = nullptr;    // Lut: groups_n * groups_k tables of 2**nbits entries
  ScalarType lut_type = ScalarType::None;
  const float* row_scale = nullptr;  // Lut: optional factor per output row (Core ML's scale)

  // Lut with one group of columns: int8 copies of its tables, row n's copy t = n / lut_i8_rows,
  // lut ~= lut_i8[t * 2**nbits + i] * lut_i8_scale[t], for the int8-activation kernels
  // (exact=False); built once at load (linear::build_lut_i8), owned by whoever built it; null
  // where there is none.
  const int8_t* lut_i8 = nullptr;
  const float* lut_i8_scale = nullptr;
  // Rows per int8 copy (row n's copy: n / lut_i8_rows): group_rows, or fewer (1 for a compressed
  // pointwise convolution's table of 5-8 bits, whose shared int8 copy would round its finely
  // spaced entries to one grid for rows of very different magnitudes: each row's copy is scaled
  // to the entries it uses).
  int64_t lut_i8_rows = 0;

  // Sparse: data = the mask, 1 bit per element (LSB-first, like the codes); the kept values in
  // row-major order are `values`, a weight of shape [1, nnz] of any other kind (float, or itself
  // quantized or palettized: the joint modes); row n's first value is values[row_offset[n]]
  // (N + 1 offsets, the last nnz), built at load from the mask.
  const int64_t* row_offset = nullptr;
  const WeightView* values = nullptr;
};

}  // namespace pocketml
