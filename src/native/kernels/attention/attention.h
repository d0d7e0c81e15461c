// Scaled dot-product attention in float32 (the reference: ir/ops/attention.py):
// out = softmax(q @ k^T * scale + mask) @ v per (batch, query head, query row), with grouped-query
// heads (each k/v head serves Hq / Hk consecutive query heads, never repeated in memory), a bool
// or additive float mask broadcast by strides, top-left causal masking, and rows with no key to
// attend giving 0. One row is computed at a time: its S scores into a scratch row, the max
// subtracted before exp, then the weighted sum of v rows; rows are spread over the pool when the
// work is big enough. attention.cpp holds the driver and the portable primitives, x86_avx2.cpp
// the AVX2/FMA ones (compiled for that file only, chosen at run time).
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
  float* out = nullptr;  // C-contiguous [B, Hq, L, Ev], not overlapping the inputs
  int64_t B = 0, Hq = 0, Hk = 0, L = 0, S = 0, E = 0, Ev = 0;
  float scale = 1.0f;
  bool causal = false;
};

// The vector primitives of one instruction set.
struct Primitives {
  // out[j] = q . k[j * ldk : + E] for j < n
  void (*dots)(const float* q, const float* k, int64_t ldk, int64_t n, int64_t E, float* out);
  // out[e] = sum_j p[j] * v[j * ldv + e] for e < Ev (p[j] = 0 rows skipped)
  void (*wsum)(const float* p, const float* v, int64_t ldv, int64_t n, int64_t Ev, float* out);
  // x[i] = exp(x[i] - m) (exp(-inf) = 0); returns the sum of the new x[i]
  float (*exp_sum)(float* x, int64_t n, float m);
  // x[i] *= a
  void (*scale)(float* x, int64_t n, float a);
};

extern const Primitives generic_primitives;
// x86_avx2.cpp (only where POCKETML_HAVE_AVX2_KERNELS is defined)
extern const Primitives avx2_primitives;

// Shapes and strides are trusted: the bindings validate them. threads 0: default.
void sdpa(const SdpaArgs& a, int threads);

}  // namespace attention
}  // namespace pocketml
