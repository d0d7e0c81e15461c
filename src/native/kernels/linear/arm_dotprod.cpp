// The int8-activation path (exact = false) with the dot-product extension, compiled with
// -march=armv8.2-a+dotprod for this file only and called only where the CPU has it (core/cpu.h,
// use_neon_dotprod: HWCAP_ASIMDDP). The path itself is arm_int8.h, shared with arm_neon.cpp: the
// same blocks, data layout and activations (neon_quantize_row); only the dot product differs.
// SDOT multiplies signed by signed bytes and adds each 4 products straight into an int32 lane:
// one instruction per 16 bytes where base NEON takes vmull + vmlal + vpadal.
#include <arm_neon.h>

#include <cstdint>

#include "kernels/linear/arm.h"
#include "kernels/linear/arm_int8.h"

namespace pocketml {
namespace linear {
namespace {

struct DotprodDot {
  static int32x4_t dot16(int32x4_t acc, int8x16_t w, int8x16_t q) { return vdotq_s32(acc, w, q); }
};

}  // namespace

const FastKernels* neon_dotprod_fast_kernels(const WeightView& w) {
  return fast_kernels_of<DotprodDot>(w);
}

}  // namespace linear
}  // namespace pocketml
