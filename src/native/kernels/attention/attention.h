// Scaled dot-product attention in float32 (the reference: ir/ops/attention.py):
// out = softmax(q @ k^T * scale + mask) @ v per (batch, query head, query row), with grouped-query
// heads (each k/v head serves Hq / Hk consecutive query heads, never repeated in memory), a bool
// or additive float mask broadcast by strides, top-left causal masking, and rows with no key to
// attend giving 0. The query rows that share a k/v head (a group's heads times L positions) go in
// blocks of up to kBlockRows: the block's scores (each loaded key row serving every row of the
// block, several keys' dot products reduced together) into a scratch block that stays in L1, the
// safe softmax there, then the weighted sum over v (each loaded v row serving every row of the
// block, keys that no row attends skipped). A decode step (L = 1) is the same with a group's heads
// as the block. Blocks are spread over the pool when the work is big enough. attention.cpp holds
// the driver and the portable primitives, x86_avx2.cpp the AVX2/FMA ones (compiled for that file
// only, chosen at run time).
#pragma once

#include <cstdint>

namespace pocketml {
namespace attention {

enum class MaskKind { None, Bool, Float };

// Strides are in elements, for the dims [B, H, rows, features]; a broadcast dim has stride 0.
// q, k and v must have a unit stride on their feature dim (or one feature).
struct SdpaArgs {
  const float* q = nullptr;
  int64_t qs[4] = {0, 0, 0, 0};
  const float* k = nullptr;
  int64_t ks[4] = {0, 0, 0, 0};
  const float* v = nullptr;
  int64_t vs[4] = {0, 0, 0, 0};
  MaskKind mask_kind = MaskKind::None;
  const void* mask = nullptr;  // float32 or bool (one byte) over [B, Hq, L, S]
  int64_t ms[4] = {0, 0, 0, 0};
  // [B, Hq, L, Ev] with contiguous features: row (b, h, l) at b * os[0] + h * os[1] + l * os[2]
  // (all 0: C-contiguous); rows apart from each other and from the inputs
  float* out = nullptr;
  int64_t os[3] = {0, 0, 0};
  // An int8 KV cache: k8 (v8) non-null in place of k (v), int8 rows of ks's (vs's) strides, each
  // row read as the floats q8 * scale (dequantize_rows), its scale at b * kss[0] + h * kss[1] +
  // j * kss[2] of ksc (vsc)
  const int8_t* k8 = nullptr;
  const float* ksc = nullptr;
  int64_t kss[3] = {0, 0, 0};
  const int8_t* v8 = nullptr;
  const float* vsc = nullptr;
  int64_t vss[3] = {0, 0, 0};
  int64_t B = 0, Hq = 0, Hk = 0, L = 0, S = 0, E = 0, Ev = 0;
  float scale = 1.0f;
  bool causal = false;
};

// Query rows per block: the AVX2 weighted sum keeps 6 rows x 16 outputs in registers.
constexpr int kBlockRows = 6;

// The vector primitives of one instruction set, over a block of rows <= kBlockRows.
struct Primitives {
  // out[r * ldo + j] = q[r] . k[j * ldk : + E] for r < rows, j < n
  void (*dots)(const float* const* q, int rows, const float* k, int64_t ldk, int64_t n, int64_t E,
               float* out, int64_t ldo);
  // The same against keys transposed once for many blocks (prefill): kt[e * ldt + j] = k[j][e]
  // (transpose), zero for n <= j < ldt (a multiple of 8), or a layout of the pair's own within
  // (ldt + 8) * E floats (AVX-512: blocks of 16 keys); dots_t writes out up to n rounded up to 8.
  // Null where the instruction set has none (then dots serves every block).
  void (*transpose)(const float* k, int64_t ldk, int64_t n, int64_t E, float* kt, int64_t ldt);
  void (*dots_t)(const float* const* q, int rows, const float* kt, int64_t ldt, int64_t n, int64_t E,
                 float* out, int64_t ldo);
  // A block's scores (row r: s[r * lds + j], j < n[r]) into softmax numerators in place:
  // x = s * scale + mask[r][j * mj] (a float mask; a bool one: x = mask ? s * scale : -inf; none:
  // s * scale), then exp(x - max x); the row has room for n[r] rounded up to 8, and those past n[r]
  // become 0. sum[r] = their sum, or -1 when the row attends nothing (every x -inf, or NaN: the
  // reference gives 0), its numerators then left undefined.
  void (*softmax)(float* s, int64_t lds, int rows, const int64_t* n, float scale, MaskKind kind,
                  const void* const* mask, int64_t mj, float* sum);
  // the keys j < n with p[r * ldp + j] != 0 for some r < rows (all p >= 0), ascending, into keys;
  // returns how many
  int64_t (*live_keys)(const float* p, int64_t ldp, int rows, int64_t n, int32_t* keys);
  // out[r][e] = (sum_t p[r * ldp + j_t] * v[j_t * ldv + e]) * mul[r] for r < rows, e < Ev,
  // j_t = keys[t], t < nk (the sum rounded, then multiplied: softmax's 1 / sum, applied as the
  // sums are stored); fetch: v's rows likely come from memory (a decode step's cache), worth
  // prefetching
  void (*wsum)(const float* p, int64_t ldp, int rows, const int32_t* keys, int64_t nk, const float* v,
               int64_t ldv, int64_t Ev, const float* mul, float* const* out, bool fetch);
  // dots and wsum (a decode step's, fetching) over an int8 cache's rows where they lie, row j read
  // as k[j * ldk + e] * ks[j * lds] (dequantize_rows' floats: the float primitives' sums on them,
  // bit for bit). Null where the instruction set has none: the rows are dequantized first.
  void (*dots8)(const float* const* q, int rows, const int8_t* k, int64_t ldk, const float* ks, int64_t lds,
                int64_t n, int64_t E, float* out, int64_t ldo);
  void (*wsum8)(const float* p, int64_t ldp, int rows, const int32_t* keys, int64_t nk, const int8_t* v,
                int64_t ldv, const float* vs, int64_t lds, int64_t Ev, const float* mul, float* const* out);
};

extern const Primitives generic_primitives;
// x86_avx2.cpp (only where POCKETML_HAVE_AVX2_KERNELS is defined)
extern const Primitives avx2_primitives;
// x86_avx512.cpp (only where POCKETML_HAVE_AVX512_KERNELS is defined): AVX2's with 512-bit transpose, dots_t
// and wsum (prefills)
const Primitives& avx512_primitives();

// Shapes and strides are trusted: the bindings validate them. threads 0: default.
void sdpa(const SdpaArgs& a, int threads);

}  // namespace attention
}  // namespace pocketml
