#include "kernels/pool/pool.h"

#include <algorithm>
#include <cmath>

#include "core/pool.h"

namespace pocketml {
namespace pool {
namespace {

// NumPy's maximum(a, b): NaN from either, else a where a >= b (the earlier tap wins ties)
inline float np_max(float a, float b) { return a != a ? a : b != b ? b : a >= b ? a : b; }

template <class F>
void over_planes(const Shape& s, int threads, F&& fn) {
  const int64_t work = s.OH * s.OW * s.KH * s.KW;
  parallel_for(s.planes, std::max<int64_t>(1, (int64_t(1) << 15) / std::max<int64_t>(1, work)), threads,
               [&](int64_t p0, int64_t p1) {
                 for (int64_t p = p0; p < p1; ++p) fn(p);
               });
}

// torch's count of one dim's window at output o
inline int64_t count(int64_t o, int64_t L, int64_t k, int64_t st, int64_t pb, int64_t pe, bool include_pad) {
  const int64_t start = o * st - pb, end = std::min(start + k, L + pe);
  return include_pad ? end - start : std::min(end, L) - std::max<int64_t>(start, 0);
}

}  // namespace

int64_t out_len(int64_t L, int64_t k, int64_t s, int64_t pb, int64_t pe, int64_t d, bool ceil_mode) {
  const int64_t num = L + pb + pe - (d * (k - 1) + 1);
  if (num < 0 || s < 1) return -1;
  if (!ceil_mode) return num / s + 1;
  int64_t out = (num + s - 1) / s + 1;
  if ((out - 1) * s >= L + pb) --out;  // the last window must start inside the input or left padding
  return out;
}

namespace {

// Both poolings fold their taps into a row of outputs, tap by tap (ky, then kx: the references'
// order), each tap over the output columns whose input column lies inside the map: the inner
// loop is contiguous in the output and strided in the input, which the compiler vectorises; a
// tap in the padding is skipped (max: -inf never wins; average: adds 0).
template <class Fold>
void fold_rows(const Shape& s, const float* xp, float* op, float init, Fold&& fold) {
  for (int64_t oy = 0; oy < s.OH; ++oy) {
    float* __restrict o = op + oy * s.OW;
    std::fill(o, o + s.OW, init);
    for (int64_t ky = 0; ky < s.KH; ++ky) {
      const int64_t iy = oy * s.sh + ky * s.dh - s.ph;
      if (iy < 0 || iy >= s.H) continue;
      const float* __restrict row = xp + iy * s.W;
      for (int64_t kx = 0; kx < s.KW; ++kx) {
        const int64_t off = kx * s.dw - s.pw;  // ix = ox * sw + off
        const int64_t lo = off >= 0 ? 0 : (-off + s.sw - 1) / s.sw;
        const int64_t hi = std::min(s.OW, s.W - off > 0 ? (s.W - off + s.sw - 1) / s.sw : 0);
        const float* __restrict r = row + off;
        for (int64_t ox = lo; ox < hi; ++ox) o[ox] = fold(o[ox], r[ox * s.sw]);
      }
    }
  }
}

}  // namespace

void max_pool(const Shape& s, const float* x, float* out, int threads) {
  over_planes(s, threads, [&](int64_t p) {
    fold_rows(s, x + p * s.H * s.W, out + p * s.OH * s.OW, -INFINITY, np_max);
  });
}

void avg_pool(const Shape& s, const float* x, float* out, bool count_include_pad, int64_t divisor, int threads) {
  over_planes(s, threads, [&](int64_t p) {
    float* op = out + p * s.OH * s.OW;
    // dilation is 1 for average pooling (the reference has none)
    fold_rows(s, x + p * s.H * s.W, op, 0.0f, [](float a, float b) { return a + b; });
    for (int64_t oy = 0; oy < s.OH; ++oy) {
      const int64_t cy = count(oy, s.H, s.KH, s.sh, s.ph, s.pe_h, count_include_pad);
      for (int64_t ox = 0; ox < s.OW; ++ox) {
        // the reference: float64 counts multiplied per dim, rounded to float32, then acc / div
        const double div = divisor > 0 ? static_cast<double>(divisor)
                                       : static_cast<double>(cy) *
                                             static_cast<double>(count(ox, s.W, s.KW, s.sw, s.pw, s.pe_w, count_include_pad));
        op[oy * s.OW + ox] /= static_cast<float>(div);
      }
    }
  });
}

}  // namespace pool
}  // namespace pocketml
