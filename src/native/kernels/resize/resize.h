// Resampling of one axis (ir/ops/resize.py, torch's upsample_* CPU kernels): nearest, nearest
// exact, linear and cubic, with torch's float32 index arithmetic, so results equal the reference bit for
// bit (compiled without contraction: a fused multiply-add would change the last bit).
#pragma once

#include <cstdint>

namespace pocketml {
namespace resize {

enum class Mode { Nearest, NearestExact, Linear, Cubic };  // cubic: torch's bicubic, A = -0.75

// x [outer, L, inner] -> out [outer, O, inner] along the middle axis. scale: the torch scale
// factor of this axis, or <= 0 where none was given (then L / O defines the mapping).
void axis(Mode mode, const float* x, int64_t outer, int64_t L, int64_t inner, int64_t O, double scale,
          bool align_corners, float* out);

}  // namespace resize
}  // namespace pocketml
