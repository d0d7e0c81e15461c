#include "kernels/activation/activation.h"

#include <algorithm>
#include <cmath>

#include "core/cpu.h"
#include "core/pool.h"

namespace pocketml {
namespace activation {
namespace {

constexpr int64_t kParallelWork = int64_t(1) << 14;  // elements below which one thread runs
constexpr int64_t kChunk = int64_t(1) << 13;         // elements per chunk

// The references' formulas (ir/ops/activation.py), in double.
inline double gelu_erf(double x) { return 0.5 * x * (1.0 + std::erf(x * 0.70710678118654752440)); }
inline double silu(double x) {
  const double e = std::exp(-std::fabs(x));  // never overflows
  return x * (x >= 0 ? 1.0 / (1.0 + e) : e / (1.0 + e));
}

template <double (*F)(double)>
void run(const float* x, float* out, int64_t n, int threads, const float* mul, bool exact) {
  auto body = [&](int64_t b, int64_t e) {
#if defined(POCKETML_HAVE_AVX512_KERNELS)
    if (!exact && use_avx512vnni()) {
      const float* m = mul ? mul + b : nullptr;
      if (F == silu) return silu_fast_avx512(x + b, out + b, e - b, m);
      if (F == gelu_erf) return gelu_fast_avx512(x + b, out + b, e - b, m);
    }
#endif
#if defined(POCKETML_HAVE_AVX2_KERNELS)
    if (use_avx2()) {
      const float* m = mul ? mul + b : nullptr;
      if (F == silu) return (exact ? silu_avx2 : silu_fast_avx2)(x + b, out + b, e - b, m);
      if (F == gelu_erf) return (exact ? gelu_avx2 : gelu_fast_avx2)(x + b, out + b, e - b, m);
    }
#endif
    if (mul == nullptr) {
      for (int64_t i = b; i < e; ++i) out[i] = static_cast<float>(F(static_cast<double>(x[i])));
    } else {
      for (int64_t i = b; i < e; ++i) out[i] = static_cast<float>(F(static_cast<double>(x[i]))) * mul[i];
    }
  };
  if (threads <= 0) threads = default_threads();
  if (threads <= 1 || n < kParallelWork) return body(0, n);
  parallel_for(n, std::min(kChunk, (n + threads - 1) / threads), threads,
               [&](int64_t b, int64_t e) { body(b, e); });
}

using RowFn = void (*)(const float* x, float* out, int64_t n, const float* mul);

template <double (*F)(double)>
void portable(const float* x, float* out, int64_t n, const float*) {
  for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(F(static_cast<double>(x[i])));
}

RowFn row_fn(Kind kind, bool exact) {
#if defined(POCKETML_HAVE_AVX512_KERNELS)
  if (!exact && use_avx512vnni()) return kind == Kind::Silu ? silu_fast_avx512 : gelu_fast_avx512;
#endif
#if defined(POCKETML_HAVE_AVX2_KERNELS)
  if (use_avx2()) {
    if (kind == Kind::Silu) return exact ? silu_avx2 : silu_fast_avx2;
    return exact ? gelu_avx2 : gelu_fast_avx2;
  }
#endif
  (void)exact;
  return kind == Kind::Silu ? portable<silu> : portable<gelu_erf>;
}

}  // namespace

void apply_rows(Kind kind, float* x, int64_t ld, int64_t rows, int64_t cols, bool exact) {
  const RowFn f = row_fn(kind, exact);
  for (int64_t r = 0; r < rows; ++r) f(x + r * ld, x + r * ld, cols, nullptr);
}

void apply(Kind kind, const float* x, float* out, int64_t n, int threads, const float* mul, bool exact) {
  switch (kind) {
    case Kind::GeluErf: return run<gelu_erf>(x, out, n, threads, mul, exact);
    case Kind::Silu: return run<silu>(x, out, n, threads, mul, exact);
  }
}

}  // namespace activation
}  // namespace pocketml
