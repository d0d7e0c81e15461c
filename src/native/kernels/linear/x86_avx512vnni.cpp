// AVX-512 VNNI kernels of the int8-activation path (exact = false), compiled with AVX2 + FMA +
// F16C + AVX-512 F/BW/VL/VNNI for this file only and called only when the CPU has them and the
// OS saves their registers (core/cpu.h, use_avx512vnni). The path itself is x86_int8.h, shared
// with x86_avx2.cpp: the same blocks of 32 columns, data layout and activations
// (avx2_quantize_row); only the dot product differs. vpdpbusd multiplies unsigned by signed bytes
// and adds each 4 products straight into an int32 lane: one instruction where AVX2 takes
// maddubs + madd (and two sign flips for signed weights), with no int16 saturation. Its 256-bit
// (EVEX VL) form keeps the AVX2 path's 32-column blocks and avoids 512-bit registers (4 blocks
// per 512-bit register measured no faster on Zen 4, which runs vpdpbusd zmm at half the rate).
#include <immintrin.h>

#include <cstdint>

#include "kernels/linear/linear.h"
#include "kernels/linear/x86_int8.h"
#include "kernels/linear/x86_vnni_dot.h"

namespace pocketml {
namespace linear {

const FastKernels* avx512vnni_fast_kernels(const WeightView& w) {
  return fast_kernels_of<VnniDot>(w);
}

}  // namespace linear
}  // namespace pocketml
