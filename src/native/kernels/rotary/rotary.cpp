#include "kernels/rotary/rotary.h"

#include <algorithm>

#include "core/pool.h"

namespace pocketml {
namespace rotary {
namespace {

constexpr int64_t kParallelWork = int64_t(1) << 15;  // elements below which one thread runs

// One row of D values: the reference's three roundings (two products, one sum), in this order.
inline void row(const float* x, const float* c, const float* s, float* o, int64_t h) {
  for (int64_t i = 0; i < h; ++i) {
    const float a = x[i] * c[i];
    const float b = -x[i + h] * s[i];
    o[i] = a + b;
  }
  for (int64_t i = h; i < 2 * h; ++i) {
    const float a = x[i] * c[i];
    const float b = x[i - h] * s[i];
    o[i] = a + b;
  }
}

}  // namespace

void apply(const float* x, const int64_t sx[4], const float* cos, const float* sin, float* out,
           int64_t B, int64_t H, int64_t T, int64_t D, int threads) {
  const int64_t rows = B * H * T, h = D / 2;
  auto body = [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t t = r % T, bh = r / T, hh = bh % H, b = bh / H;
      row(x + b * sx[0] + hh * sx[1] + t * sx[2], cos + t * D, sin + t * D, out + r * D, h);
    }
  };
  if (threads <= 0) threads = default_threads();
  if (threads <= 1 || rows * D < kParallelWork) return body(0, rows);
  parallel_for(rows, std::max<int64_t>(1, (rows + threads - 1) / threads), threads,
               [&](int64_t b, int64_t e) { body(b, e); });
}

}  // namespace rotary
}  // namespace pocketml
