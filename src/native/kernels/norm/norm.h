// Normalizations over the last axis in float32 (the references: ir/ops/norm.py), row by row:
// statistics accumulated in float64 and rounded once, as the references do, so results match them
// to an ulp or so. Portable code, and AVX-512 rows (x86_avx512.cpp) where the CPU has it: the
// float64 sums of a row, not memory, are the cost.
#pragma once

#include <cstdint>

namespace pocketml {
namespace norm {

// x, out: C-contiguous [M, D] (out may be x); weight, bias: [D] or null. threads 0: default.
// rms_norm: y = x * float(1 / sqrt(mean(x^2) + eps)) [* weight]
void rms_norm(const float* x, const float* weight, double eps, float* out, int64_t M, int64_t D,
              int threads);
// layer_norm: d = x - float(mean(x)); y = d * float(1 / sqrt(mean(d^2) + eps)) [* weight] [+ bias]
void layer_norm(const float* x, const float* weight, const float* bias, double eps, float* out,
                int64_t M, int64_t D, int threads);

#if defined(POCKETML_HAVE_AVX512_KERNELS)
// one row of each (x86_avx512.cpp)
void layer_norm_row_avx512(const float* x, const float* weight, const float* bias, double eps, float* out,
                           int64_t D);
void rms_norm_row_avx512(const float* x, const float* weight, double eps, float* out, int64_t D);
#endif

}  // namespace norm
}  // namespace pocketml
