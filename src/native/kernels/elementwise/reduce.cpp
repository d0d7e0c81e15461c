#include <algorithm>
#include <cmath>
#include <vector>

#include "core/pool.h"
#include "kernels/elementwise/elementwise.h"

namespace pocketml {
namespace elementwise {
namespace {

constexpr int64_t kParallelWork = int64_t(1) << 16;  // elements below which one thread runs
constexpr int64_t kInnerChunk = 512;                 // doubles of one run of accumulators

inline double term(float v, bool l2) { return l2 ? double(v) * double(v) : double(v); }
// l2: the square root; else divided by div (a mean's count, in double like np.mean's float64:
// 0 / 0 is NaN; 1 for a sum, exact)
inline float result(double s, bool l2, double div) { return static_cast<float>(l2 ? std::sqrt(s) : s / div); }

// outputs [o, i0) .. [o, i1) of one outer index: rows of x added into a run of double accumulators
void sum_run(const float* x, int64_t R, int64_t inner, int64_t i0, int64_t i1, float* out, bool l2, double div) {
  double acc[kInnerChunk];
  for (int64_t c0 = i0; c0 < i1; c0 += kInnerChunk) {
    const int64_t n = std::min(kInnerChunk, i1 - c0);
    std::fill(acc, acc + n, 0.0);
    for (int64_t r = 0; r < R; ++r) {
      const float* row = x + r * inner + c0;
      for (int64_t i = 0; i < n; ++i) acc[i] += term(row[i], l2);
    }
    for (int64_t i = 0; i < n; ++i) out[c0 + i] = result(acc[i], l2, div);
  }
}

}  // namespace

void reduce_sum(const float* x, int64_t outer, int64_t R, int64_t inner, float* out, int threads, bool l2,
                bool mean) {
  const double div = mean ? static_cast<double>(R) : 1.0;
  if (outer <= 0 || inner <= 0) return;
  if (threads <= 0) threads = default_threads();
  if (inner == 1) {  // the last axes: one sum per outer index
    auto body = [&](int64_t o0, int64_t o1) {
      for (int64_t o = o0; o < o1; ++o) {
        double acc = 0.0;
        const float* row = x + o * R;
        for (int64_t r = 0; r < R; ++r) acc += term(row[r], l2);
        out[o] = result(acc, l2, div);
      }
    };
    if (threads <= 1 || outer * R < kParallelWork) return body(0, outer);
    return parallel_for(outer, std::max<int64_t>(1, kParallelWork / std::max<int64_t>(R, 1)), threads,
                        [&](int64_t o0, int64_t o1) { body(o0, o1); });
  }
  // runs of kInnerChunk outputs of one outer index, over the threads
  const int64_t runs = (inner + kInnerChunk - 1) / kInnerChunk;
  auto body = [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t o = t / runs, i0 = t % runs * kInnerChunk;
      sum_run(x + o * R * inner, R, inner, i0, std::min(inner, i0 + kInnerChunk), out + o * inner, l2, div);
    }
  };
  if (threads <= 1 || outer * R * inner < kParallelWork) return body(0, outer * runs);
  parallel_for(outer * runs, 1, threads, [&](int64_t t0, int64_t t1) { body(t0, t1); });
}

void reduce_extreme(const float* x, int64_t outer, int64_t R, int64_t inner, bool max, float* out,
                    int64_t* index) {
  std::vector<float> best(static_cast<size_t>(inner));
  for (int64_t o = 0; o < outer; ++o) {
    const float* xo = x + o * R * inner;
    float* b = out != nullptr ? out + o * inner : best.data();
    int64_t* at = index != nullptr ? index + o * inner : nullptr;
    for (int64_t i = 0; i < inner; ++i) b[i] = xo[i];
    if (at != nullptr) std::fill(at, at + inner, int64_t(0));
    for (int64_t r = 1; r < R; ++r) {
      const float* row = xo + r * inner;
      for (int64_t i = 0; i < inner; ++i) {
        const float v = b[i], y = row[i];
        if (v != v) continue;  // a NaN stays (and its first position)
        if (y != y || (max ? y > v : y < v)) {
          b[i] = y;
          if (at != nullptr) at[i] = r;
        }
      }
    }
  }
}

void reduce_float(Reduction kind, const float* x, int64_t outer, int64_t R, int64_t inner, float* out,
                  double correction) {
  std::vector<double> acc(static_cast<size_t>(inner)), mid(static_cast<size_t>(inner));
  for (int64_t o = 0; o < outer; ++o) {
    const float* xo = x + o * R * inner;
    if (kind == Reduction::Prod) {
      std::fill(acc.begin(), acc.end(), 1.0);
      for (int64_t r = 0; r < R; ++r)
        for (int64_t i = 0; i < inner; ++i) acc[i] *= xo[r * inner + i];
    } else if (kind == Reduction::Var) {
      std::fill(mid.begin(), mid.end(), 0.0);
      for (int64_t r = 0; r < R; ++r)
        for (int64_t i = 0; i < inner; ++i) mid[i] += xo[r * inner + i];
      for (int64_t i = 0; i < inner; ++i) mid[i] /= static_cast<double>(R);
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int64_t r = 0; r < R; ++r)
        for (int64_t i = 0; i < inner; ++i) {
          const double d = xo[r * inner + i] - mid[i];
          acc[i] += d * d;
        }
      const double den = std::max(0.0, static_cast<double>(R) - correction);
      for (int64_t i = 0; i < inner; ++i) acc[i] /= den;
    } else {
      std::fill(mid.begin(), mid.end(), -INFINITY);  // a NaN makes the sum NaN whatever the shift
      for (int64_t r = 0; r < R; ++r)
        for (int64_t i = 0; i < inner; ++i) mid[i] = std::max(mid[i], static_cast<double>(xo[r * inner + i]));
      for (int64_t i = 0; i < inner; ++i)
        if (std::isinf(mid[i])) mid[i] = 0.0;
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int64_t r = 0; r < R; ++r)
        for (int64_t i = 0; i < inner; ++i) acc[i] += std::exp(static_cast<double>(xo[r * inner + i]) - mid[i]);
      for (int64_t i = 0; i < inner; ++i) acc[i] = std::log(acc[i]) + mid[i];
    }
    for (int64_t i = 0; i < inner; ++i) out[o * inner + i] = static_cast<float>(acc[i]);
  }
}

void reduce_truth(bool all, const uint8_t* truth, int64_t outer, int64_t R, int64_t inner, uint8_t* out) {
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      uint8_t v = all ? 1 : 0;
      for (int64_t r = 0; r < R; ++r) {
        const uint8_t t = truth[(o * R + r) * inner + i];
        v = all ? (v & t) : (v | t);
      }
      out[o * inner + i] = v;
    }
}

}  // namespace elementwise
}  // namespace pocketml
