// The aarch64 kernels of the linear layers (only where POCKETML_HAVE_NEON_KERNELS is defined):
// the same entry points as the x86 ones (linear.h), chosen at run time by linear.cpp.
// arm_neon.cpp: NEON (baseline on aarch64, no flags): the exact kernels, the tile microkernel,
// the activation quantizer and the int8-activation path with vmull_s8 / vpadalq_s16;
// arm_dotprod.cpp (compiled with +dotprod for that file only, called only where the CPU has it,
// core/cpu.h use_neon_dotprod): the int8-activation path with SDOT (vdotq_s32). Both int8 paths
// are one template over the dot product (arm_int8.h).
#pragma once

#include <cstdint>

#include "kernels/linear/linear.h"

namespace pocketml {
namespace linear {

// The NEON kernels of w's format, or null where it has no fast path (then: generic decoding,
// the NEON tile microkernel).
const RowKernels* neon_kernels(const WeightView& w);
void tile_gemm_neon(const float* x, int64_t ldx, int64_t M, const float* tile, int64_t ldt,
                    int64_t rows, int64_t kp, float* out, int64_t ldo, float* work);

// The int8-activation kernels of w's format (base NEON / SDOT), or null where it has none;
// quantize x [K] into blocks like avx2_quantize_row (the same values, the same column order).
const FastKernels* neon_fast_kernels(const WeightView& w);
const FastKernels* neon_dotprod_fast_kernels(const WeightView& w);
void neon_quantize_row(const float* x, int64_t blocks, bool permuted, int8_t* q, float* scale,
                       float* ssum, float* ssum_total);

}  // namespace linear
}  // namespace pocketml
