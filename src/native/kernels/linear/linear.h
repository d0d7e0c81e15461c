// Linear layers computed directly on packed weights (formats/weights.h): out = x @ W.T + bias,
// never materialising W. Each instruction set provides, per packed format, a fused decode-and-dot
// for one activation row (gemv: the packed data streamed once, decoded in registers) and a
// decoder of a strip of rows into a small fp32 tile; the tile is then multiplied with every
// activation row by that instruction set's register-blocked microkernel (gemm, M > 1).
// linear.cpp holds the drivers (threads, dispatch); generic.cpp the portable kernels of every
// format; x86_avx2.cpp the AVX2/FMA/F16C ones (compiled for that file only, chosen at run time).
// The int8-activation path (exact = false, decode steps and prefills alike) is x86_int8.h, a
// template over the dot product, instantiated by x86_avx2.cpp and x86_avx512vnni.cpp (AVX-512
// VNNI, preferred where present) and, for tables of other widths than 4, x86_avx512vbmi.cpp.
// x86_avx512.cpp: the exact path's AVX-512 GEMM and the sparse rows. arm_neon.cpp /
// arm_dotprod.cpp: the aarch64 kernels (arm.h).
#pragma once

#include <cstdint>

#include "formats/weights.h"
#include "kernels/activation/activation.h"

namespace pocketml {
namespace linear {

// What a layer's outputs go through before anything else reads them, applied to each block of
// outputs as soon as it is computed, while it is in cache (a graph's `add` of a residual and its
// `gelu`/`silu` after the layer, as one step): out += residual (float32 [M, N], C-contiguous,
// not overlapping out), then the activation (kernels/activation, `act_exact` as there). Equal bit
// for bit to the separate ops.
struct Epilogue {
  const float* residual = nullptr;
  bool has_act = false;
  activation::Kind act = activation::Kind::GeluErf;
  bool act_exact = true;
};
// ep over the block [m0, m1) x [n0, n1) of out [M, N]
void finish(const Epilogue* ep, float* out, int64_t N, int64_t m0, int64_t m1, int64_t n0, int64_t n1);

constexpr int64_t kStripRows = 16;  // weight rows decoded into a tile at once (gemm)
constexpr int64_t kTileAlign = 8;   // tile rows and prepared activations padded to this

struct RowKernels {
  // Activations are reordered within each 16-column chunk of [0, K - K % 16): the chunk's even
  // columns first, then its odd ones (how 4-bit codes unpack from bytes); the tail is unchanged.
  bool permuted;
  // out[n] = W[n] . x (+ bias[n]) for n in [n0, n1); x prepared (see prepare_x).
  void (*gemv)(const WeightView& w, const float* x, int64_t n0, int64_t n1, const float* bias,
               float* out);
  // tile[(n - n0) * ldt + j] = W[n, column j] for n in [n0, n1) (columns in x's prepared order),
  // zero from K to ldt.
  void (*decode)(const WeightView& w, int64_t n0, int64_t n1, float* tile, int64_t ldt);
};

// out[m * ldo + r] += x[m * ldx : + kp] . tile[r * ldt : + kp] for m < M, r < rows <= kStripRows;
// kp is a multiple of kTileAlign, both operands zero-padded to it; work: kStripRows * kp floats
// of scratch.
using TileGemm = void (*)(const float* x, int64_t ldx, int64_t M, const float* tile, int64_t ldt,
                          int64_t rows, int64_t kp, float* out, int64_t ldo, float* work);

// generic.cpp
// out[j] = W[n, k0 + j] for k0 + j < k1, in fp32 (the definition: (q - zp) * scale computed in
// float32; table value * row_scale).
void decode_row(const WeightView& w, int64_t n, int64_t k0, int64_t k1, float* out);
// The set bits of an LSB-first bit stream p in [b0, b1); popcount64: of one word.
int64_t count_bits(const uint8_t* p, int64_t b0, int64_t b1);
int popcount64(uint64_t v);
extern const RowKernels generic_kernels;
void tile_gemm_generic(const float* x, int64_t ldx, int64_t M, const float* tile, int64_t ldt,
                       int64_t rows, int64_t kp, float* out, int64_t ldo, float* work);

// x86_avx2.cpp (only where POCKETML_HAVE_AVX2_KERNELS is defined)
// The AVX2 kernels of w's format, or null where it has no fast path (then: generic decoding, the
// AVX2 tile microkernel).
const RowKernels* avx2_kernels(const WeightView& w);
void tile_gemm_avx2(const float* x, int64_t ldx, int64_t M, const float* tile, int64_t ldt,
                    int64_t rows, int64_t kp, float* out, int64_t ldo, float* work);

// The int8-activation path (gemm with exact = false): each activation row is quantized once per
// call to int8 blocks of kQBlock columns with one float scale per block (x ~= q * scale), and
// weights meet it in integer dot products (AVX2: maddubs / madd; AVX-512 VNNI: vpdpbusd), one
// FMA per block with the scales. Up to kFastGemvMaxM rows (decode steps) stream the packed rows
// once, decoding each block in registers for every activation row (FastKernels::gemv); more rows
// (a prefill) take the blocked GEMM (FastKernels::gemm): strips of kFastStripRows weight rows
// decoded once per call into an int8 tile, multiplied with register blocks of activation rows.
constexpr int64_t kQBlock = 32;
// Measured on SmolLM2's layers (Zen 4, AVX2 and VNNI): the GEMM is as fast from 3 rows, faster
// from 4 (its tile decoded once per call, then reused by every row).
constexpr int64_t kFastGemvMaxM = 3;
// Kernels without a GEMM (FastKernels::gemm null) take up to this many rows on gemv, more on the
// exact path.
constexpr int64_t kFastMaxM = 16;
constexpr int64_t kFastStripRows = 16;
constexpr int64_t kWideStripRows = 32;
// Scratch bytes of one FastKernels::gemm call: the tile (kQBlock * kFastStripRows bytes per
// block), its per-block sums and parameters (3 * kFastStripRows words per block), fixed parts.
constexpr int64_t kFastStripBytesPerBlock = kQBlock * kFastStripRows + 3 * 4 * kFastStripRows;
constexpr int64_t kFastStripBytesFixed = 4 * (2 + kQBlock) * kFastStripRows + 64;

struct QuantRow {
  const int8_t* q;      // [blocks * kQBlock] (in the kernel's column order, see FastKernels)
  const float* scale;   // [blocks] per-block scale
  const float* ssum;    // [blocks] scale * sum of the block's q (offset / zero-point terms)
  float ssum_total;     // sum of ssum
  const float* x;       // the float32 row, unpermuted (columns past the blocks run exactly)
  const int32_t* isum;  // [blocks] the sum of the block's q (x86; signed 4-bit codes per block)
};

// All activation rows of a call, quantized for FastKernels::gemm: row m's bytes at q + m * ldq
// in column order, as signed q or, where the kernels ask for it (gemm_unsigned), as q + 128;
// scale, ssum [M, blocks] and ssum_total [M] as in QuantRow; row m of the float32 rows at
// x + m * ldx.
struct QuantRows {
  const uint8_t* q;
  int64_t ldq;
  const float* scale;
  const float* ssum;
  const float* ssum_total;
  const float* x;
  int64_t ldx;
};

struct FastKernels {
  // Within each block of kQBlock columns, the even columns first, then the odd ones (how 4-bit
  // codes unpack from 16 bytes); blocks 2i and 2i + 1 then as [evens of 2i, evens of 2i + 1],
  // [odds of 2i, odds of 2i + 1] (a last block of an odd count alone).
  bool permuted;
  // out[m * N + n] = W[n] . x[m] (+ bias[n]) for m < M, n in [n0, n1): blocks = K / kQBlock,
  // columns [blocks * kQBlock, K) computed exactly.
  void (*gemv)(const WeightView& w, const QuantRow* x, int64_t M, int64_t n0, int64_t n1,
               const float* bias, float* out);
  // gemm's activations: q + 128 (unsigned bytes) rather than q; columns in their natural order.
  bool gemm_unsigned;
  // The same for rows [n0, n1), n1 - n0 <= strip_rows, any M (null where there is none);
  // scratch: at least (kFastStripBytesPerBlock * blocks + kFastStripBytesFixed) * strip_rows /
  // kFastStripRows bytes, 64-byte aligned.
  void (*gemm)(const WeightView& w, const QuantRows& x, int64_t M, int64_t n0, int64_t n1,
               const float* bias, float* out, void* scratch);
  // rows per gemm call (a strip): kFastStripRows, or kWideStripRows (512-bit tiles; scratch
  // then kWideStripRows / kFastStripRows times as large)
  int64_t strip_rows = kFastStripRows;
};

// generic.cpp: the int8 copies of a Lut's tables (weights.h, lut_i8; one group of columns), one
// per w.lut_i8_rows rows (dividing group_rows, or any with one table): t8 [copies * 2**nbits],
// scale [copies], copies = ceil(N / lut_i8_rows); each scaled to max |entry| = 127 over the
// entries its rows use (all of the table's where it serves the table's rows).
void build_lut_i8(const WeightView& w, int8_t* t8, float* scale);

// x86_avx2.cpp: the int8-activation kernels of w's format, or null where it has none (then
// exact = false computes exactly); quantize x [K] into blocks (the tail past K / kQBlock blocks
// is left out), stored as q + 128 where offset.
const FastKernels* avx2_fast_kernels(const WeightView& w);
void avx2_quantize_row(const float* x, int64_t blocks, bool permuted, bool offset, int8_t* q,
                       float* scale, float* ssum, float* ssum_total, int32_t* isum);
// x86_avx512vnni.cpp (only where POCKETML_HAVE_AVX512_KERNELS is defined): the same kernels
// with AVX-512 VNNI dot products (vpdpbusd), on the same quantized activations.
const FastKernels* avx512vnni_fast_kernels(const WeightView& w);
// x86_avx512vbmi.cpp (same condition, run where use_avx512vbmi): tables of 1-3 and 5-8 bits on
// the same path (VBMI byte permutes decode any width).
const FastKernels* avx512vbmi_fast_kernels(const WeightView& w);
// x86_avx512.cpp (same condition, run where use_avx512vnni): the exact path from
// kAvx512GemmMinM rows, any format (kern's decoder; float32 read directly): out = x @ W.T
// (+ bias), x prepared for kern (see prepare_x) with rows ldx floats apart; then + residual
// (null or [M, N]) and act, the float32 form of GELU or SiLU (activation::apply with exact false:
// the same bits), on each register tile before it is stored: Epilogue's steps without a pass over
// the output (Whisper's encoder: 0.4 ms a layer for the 9 MB of an MLP's GELU).
constexpr int64_t kAvx512GemmMinM = 2;
enum class Act { None, Gelu, Silu };
void gemm_avx512(const RowKernels& kern, const WeightView& w, const float* x, int64_t ldx,
                 int64_t M, const float* bias, float* out, int threads, const float* residual, Act act);
// The AVX-512 exact kernels of w's format where it has them (Sparse: each row's kept values
// expanded into place by the mask, vexpandps), else null.
const RowKernels* avx512_kernels(const WeightView& w);
// x86_avx512vbmi.cpp (run where use_avx512vbmi): avx512_kernels', tables of 1-3, 5 and 6 bits
// decoded 32 codes at a time (VBMI byte permutes), the rest as there.
const RowKernels* avx512vbmi_kernels(const WeightView& w);

// linear.cpp: the entry points. x [M, K], out [M, N] (C-contiguous, not overlapping), bias [N]
// or null; threads 0: default. Shapes are trusted: the bindings validate them.
// exact = false: the int8-activation path where the format and instruction set have one
// (activations rounded to int8 per block of 32: approximate), else exact. ep: null or applied to
// every output.
void gemm(const WeightView& w, const float* x, int64_t M, const float* bias, float* out,
          int threads, bool exact = true, const Epilogue* ep = nullptr);
// Whether gemm(exact = false) takes w's rows on this CPU's int8 GEMM (a prefill's path).
bool int8_gemm(const WeightView& w);
// Weights of the same K on one x (q/k/v, gate/up): out[i] = x @ ws[i].T (+ bias[i]), each [M,
// N_i]. On the int8 path (exact = false, count <= kMaxGroup, every weight with such kernels in
// the same column order, or for a prefill with a GEMM taking the same activations) x is quantized
// once and all the weights' rows (a decode step) or strips (a prefill) are split together over
// the threads, one dispatch instead of `count`: small layers stream below the memory bandwidth
// (SmolLM2's 192 x 576 k/v at ~40 %), and small GEMMs scale poorly over threads (MiniLM's 384 x
// 384 q/k/v: 1.4x on 2); otherwise one gemm each. The results equal `count` gemm calls bit for
// bit.
constexpr int kMaxGroup = 8;
void gemm_group(const WeightView* const* ws, int count, const float* x, int64_t M,
                const float* const* bias, float* const* out, int threads, bool exact);
// out[i] = W[ids[i]] for i < L, every id already checked to lie in [0, N).
void gather_rows(const WeightView& w, const int64_t* ids, int64_t L, float* out, int threads);
// out [N, K] = the whole weight in fp32 (a decode step's), over the threads.
void decode_rows(const WeightView& w, float* out, int threads);
// out [n1 - n0, K] = rows [n0, n1) of the weight in fp32, on this thread (a compressed
// convolution's, a block of rows at a time as its GEMM reaches them).
void decode_block(const WeightView& w, int64_t n0, int64_t n1, float* out);

}  // namespace linear
}  // namespace pocketml
