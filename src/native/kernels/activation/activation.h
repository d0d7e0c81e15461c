// Elementwise activations in float32 whose references (ir/ops/activation.py) compute in float64:
// each value goes through the same formula in double and is rounded once, so results equal the
// references' to an ulp (erf/exp/tanh of the C library against NumPy's). The double-precision
// transcendental is the cost: SiLU and GELU have AVX2 paths (a vector exp in double; GELU's erf by
// one branch-free formula, x86_avx2.cpp), the rest is portable, spread over the thread pool for
// big tensors.
#pragma once

#include <cstdint>

namespace pocketml {
namespace activation {

// (gelu's tanh form stays on its reference: 1 + tanh(..) cancels for negative x, where the C
// library's tanh and NumPy's differ by an ulp of double that the cancellation magnifies.)
enum class Kind { GeluErf, Silu };

// x, out: n contiguous floats (out may be x). threads 0: default. mul: null, or n floats that
// each result (rounded to float) is multiplied by, in float: a gated unit (SwiGLU: silu(gate) * up)
// as one pass, equal to the activation op followed by the mul op. exact false: where the CPU
// has them, the float32 forms (within 6 ulp of the reference) instead of the double formulas.
void apply(Kind kind, const float* x, float* out, int64_t n, int threads, const float* mul = nullptr,
           bool exact = true);

// In place on rows [0, rows) x [0, cols) of a matrix with rows ld floats apart, on the calling
// thread: the same values as apply (a layer's epilogue, kernels/linear).
void apply_rows(Kind kind, float* x, int64_t ld, int64_t rows, int64_t cols, bool exact);

// x86_avx2.cpp: silu / gelu [* mul] of n values, vectorised (called after run-time detection)
void silu_avx2(const float* x, float* out, int64_t n, const float* mul);
void gelu_avx2(const float* x, float* out, int64_t n, const float* mul);
void silu_fast_avx2(const float* x, float* out, int64_t n, const float* mul);
void gelu_fast_avx2(const float* x, float* out, int64_t n, const float* mul);
// x86_avx512.cpp (only where POCKETML_HAVE_AVX512_KERNELS is defined; run where use_avx512vnni):
// the float32 forms 16 at a time, the same bits as the AVX2 ones
void silu_fast_avx512(const float* x, float* out, int64_t n, const float* mul);
void gelu_fast_avx512(const float* x, float* out, int64_t n, const float* mul);

}  // namespace activation
}  // namespace pocketml
