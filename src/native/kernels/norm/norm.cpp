#include "kernels/norm/norm.h"

#include <algorithm>
#include <cmath>

#include "core/cpu.h"
#include "core/pool.h"

namespace pocketml {
namespace norm {
namespace {

constexpr int64_t kParallelWork = int64_t(1) << 15;  // elements below which one thread runs
constexpr int64_t kChunkWork = int64_t(1) << 13;     // elements per chunk at least

template <class F>
void over_rows(int64_t M, int64_t D, int threads, F&& row) {
  if (threads <= 0) threads = default_threads();
  if (threads <= 1 || M * D < kParallelWork) {
    for (int64_t m = 0; m < M; ++m) row(m);
    return;
  }
  int64_t grain = std::max<int64_t>(1, kChunkWork / std::max<int64_t>(D, 1));
  grain = std::min(grain, (M + threads - 1) / threads);
  parallel_for(M, grain, threads, [&](int64_t m0, int64_t m1) {
    for (int64_t m = m0; m < m1; ++m) row(m);
  });
}

// Four double accumulators (the reference sums pairwise in float64: both far below an ulp of
// the float32 result).
double sum_sq(const float* x, int64_t D) {
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  int64_t i = 0;
  for (; i + 4 <= D; i += 4) {
    s0 += double(x[i]) * x[i];
    s1 += double(x[i + 1]) * x[i + 1];
    s2 += double(x[i + 2]) * x[i + 2];
    s3 += double(x[i + 3]) * x[i + 3];
  }
  for (; i < D; ++i) s0 += double(x[i]) * x[i];
  return (s0 + s1) + (s2 + s3);
}

double sum(const float* x, int64_t D) {
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  int64_t i = 0;
  for (; i + 4 <= D; i += 4) {
    s0 += x[i];
    s1 += x[i + 1];
    s2 += x[i + 2];
    s3 += x[i + 3];
  }
  for (; i < D; ++i) s0 += x[i];
  return (s0 + s1) + (s2 + s3);
}

}  // namespace

void rms_norm(const float* x, const float* weight, double eps, float* out, int64_t M, int64_t D,
              int threads) {
  if (M <= 0 || D <= 0) return;
#if defined(POCKETML_HAVE_AVX512_KERNELS)
  if (use_avx512vnni())
    return over_rows(M, D, threads, [&](int64_t m) { rms_norm_row_avx512(x + m * D, weight, eps, out + m * D, D); });
#endif
  over_rows(M, D, threads, [&](int64_t m) {
    const float* xr = x + m * D;
    float* o = out + m * D;
    const float rstd = static_cast<float>(1.0 / std::sqrt(sum_sq(xr, D) / double(D) + eps));
    if (weight)
      for (int64_t i = 0; i < D; ++i) o[i] = (xr[i] * rstd) * weight[i];
    else
      for (int64_t i = 0; i < D; ++i) o[i] = xr[i] * rstd;
  });
}

void layer_norm(const float* x, const float* weight, const float* bias, double eps, float* out,
                int64_t M, int64_t D, int threads) {
  if (M <= 0 || D <= 0) return;
#if defined(POCKETML_HAVE_AVX512_KERNELS)
  if (use_avx512vnni())
    return over_rows(M, D, threads, [&](int64_t m) {
      layer_norm_row_avx512(x + m * D, weight, bias, eps, out + m * D, D);
    });
#endif
  over_rows(M, D, threads, [&](int64_t m) {
    const float* xr = x + m * D;
    float* o = out + m * D;
    const float mean = static_cast<float>(sum(xr, D) / double(D));
    for (int64_t i = 0; i < D; ++i) o[i] = xr[i] - mean;  // out may be x: read before write
    const float rstd = static_cast<float>(1.0 / std::sqrt(sum_sq(o, D) / double(D) + eps));
    if (weight && bias)
      for (int64_t i = 0; i < D; ++i) o[i] = (o[i] * rstd) * weight[i] + bias[i];
    else if (weight)
      for (int64_t i = 0; i < D; ++i) o[i] = (o[i] * rstd) * weight[i];
    else if (bias)
      for (int64_t i = 0; i < D; ++i) o[i] = o[i] * rstd + bias[i];
    else
      for (int64_t i = 0; i < D; ++i) o[i] = o[i] * rstd;
  });
}

}  // namespace norm
}  // namespace pocketml
