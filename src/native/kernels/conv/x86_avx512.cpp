// The convolution kernels with AVX-512 F (conv_impl.h over 16 lanes: a register tile of 8 rows x
// 48 columns, 24 accumulators, as the linear layers' GEMM), called only where use_avx512vnni()
// (core/cpu.h: AVX-512 F/BW/VL with the OS saving ZMM state). Zen 4 runs a zmm FMA as two
// 256-bit halves: the AVX2 rate with half the loads and broadcasts per multiply-add.
#include <immintrin.h>

#include "kernels/conv/conv_impl.h"
#include "kernels/x86_avx512_transpose.h"

namespace pocketml {
namespace conv {
namespace {

struct Avx512 {
  using R = __m512;
  static constexpr int64_t kWidth = 16, kRows = 8, kVecs = 3;
  static constexpr bool kTranspose = true;
  static __mmask16 mask(int64_t n) { return static_cast<__mmask16>((1u << n) - 1); }  // n <= 16
  static R zero() { return _mm512_setzero_ps(); }
  static R set1(float v) { return _mm512_set1_ps(v); }
  static R load(const float* p) { return _mm512_load_ps(p); }
  static R loadu(const float* p) { return _mm512_loadu_ps(p); }
  static R load_n(const float* p, int64_t n) { return _mm512_maskz_loadu_ps(mask(n), p); }
  static void store(float* p, R v) { _mm512_store_ps(p, v); }
  static void storeu(float* p, R v) { _mm512_storeu_ps(p, v); }
  static void store_n(float* p, R v, int64_t n) { _mm512_mask_storeu_ps(p, mask(n), v); }
  static R add(R a, R b) { return _mm512_add_ps(a, b); }
  static float hsum(R v) { return _mm512_reduce_add_ps(v); }
  static R fma(R a, R b, R c) { return _mm512_fmadd_ps(a, b, c); }
  static R max(R a, R b) { return _mm512_max_ps(a, b); }
  static R min(R a, R b) { return _mm512_min_ps(a, b); }
  static void transpose(R r[16]) { transpose16(r); }  // in place: r[i] lane j -> r[j] lane i
};

}  // namespace

const Kernels& avx512_kernels() { return Impl<Avx512>::kernels(); }

}  // namespace conv
}  // namespace pocketml
