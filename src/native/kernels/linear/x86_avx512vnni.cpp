// AVX-512 VNNI kernels of the int8-activation path (exact = false), compiled with AVX2 + FMA +
// F16C + AVX-512 F/BW/VL/VNNI for this file only and called only when the CPU has them and the
// OS saves their registers (core/cpu.h, use_avx512vnni). The path itself is x86_int8.h, shared
// with x86_avx2.cpp: the same blocks of 32 columns, data layout and activations
// (avx2_quantize_row); only the dot product differs. vpdpbusd multiplies unsigned by signed bytes
// and adds each 4 products straight into an int32 lane: one instruction where AVX2 takes
// maddubs + madd (and two sign flips for signed weights), with no int16 saturation. Its 256-bit
// (EVEX VL) form keeps the AVX2 path's 32-column blocks for decode steps (4 blocks per 512-bit
// register measured no faster on Zen 4, which runs vpdpbusd zmm at half the rate).
//
// The prefill GEMM here is 512-bit (gemm_wide): strips of 32 weight rows, one zmm holding a
// column quad of 16 rows, so each broadcast activation quad meets 32 rows in two dot products and
// each block's int32 sums of a row become floats in two conversions and two FMAs. The 256-bit
// GEMM of x86_int8.h spends as many instructions on broadcasts, moves and its per-block float
// step as on dot products and stays front-end bound at ~65 % of the dot product's rate on Zen 4;
// this one halves them (MiniLM's layers, M = 128: 150 -> 190 GMAC/s per core).
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "kernels/linear/linear.h"
#include "kernels/linear/x86_int8.h"
#include "kernels/linear/x86_vnni_dot.h"
#include "kernels/linear/x86_vnni_wide.h"

namespace pocketml {
namespace linear {
namespace {

// The 256-bit kernels' decode steps with the wide GEMM.
template <int kBits, bool kSigned, bool kZero, bool kBlock>
constexpr FastKernels wide_quant() {
  return FastKernels{kBits == 4, fast_gemv<FastQuant<VnniDot, kBits, kSigned, kZero>, kBlock>, true,
                     gemm_wide<TileQuant<kBits, kSigned, kZero>, kBlock>, kWideStripRows};
}
template <int B>
struct WideQuantKernels {
  // [signed][zero point][parameters along the row]
  static constexpr FastKernels of[2][2][2] = {
      {{wide_quant<B, false, false, false>(), wide_quant<B, false, false, true>()},
       {wide_quant<B, false, true, false>(), wide_quant<B, false, true, true>()}},
      {{wide_quant<B, true, false, false>(), wide_quant<B, true, false, true>()},
       {wide_quant<B, true, true, false>(), wide_quant<B, true, true, true>()}}};
};
constexpr FastKernels kWideLut4 = {true, fast_gemv<FastLut4<VnniDot>, false>, true,
                                   gemm_wide<TileLut4, false>, kWideStripRows};

}  // namespace

// fast_kernels_of's formats (x86_int8.h), each with the wide GEMM
const FastKernels* avx512vnni_fast_kernels(const WeightView& w) {
  const FastKernels* f = fast_kernels_of<VnniDot>(w);
  if (f == nullptr) return nullptr;
  const bool block_params = w.groups_k > 1;
  if (w.kind == WeightKind::Quant) {
    const bool zero = w.zero != nullptr;
    if (w.nbits == 8) return &WideQuantKernels<8>::of[w.is_signed][zero][block_params];
    return &WideQuantKernels<4>::of[w.is_signed][zero][block_params];
  }
  return &kWideLut4;
}

}  // namespace linear
}  // namespace pocketml
