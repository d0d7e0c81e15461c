// Rotary position embedding in the "rotate half" layout, as the graph spells it
// (x * cos + concat(-x[..., h:], x[..., :h]) * sin, each product and the sum rounded to float32):
// one pass instead of seven ops. Portable scalar code compiled without contraction
// (-ffp-contract=off), so results equal the references' bit for bit on every CPU; the head
// dimension is small (64-128) and the pass is memory-bound.
#pragma once

#include <cstdint>

namespace pocketml {
namespace rotary {

// x: [B, H, T, D] read through element strides sx (the last one 1: a reshaped/transposed
// projection is read where it lies); cos, sin: C-contiguous [T, D]; out: C-contiguous
// [B, H, T, D]. D even. threads 0: default.
void apply(const float* x, const int64_t sx[4], const float* cos, const float* sin, float* out,
           int64_t B, int64_t H, int64_t T, int64_t D, int threads);

}  // namespace rotary
}  // namespace pocketml
