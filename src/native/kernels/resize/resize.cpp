#include "kernels/resize/resize.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

namespace pocketml {
namespace resize {
namespace {

// torch's area_pixel_compute_scale, as the reference computes it (float32)
float linear_scale(int64_t L, int64_t O, double scale, bool align_corners) {
  if (align_corners) return O > 1 ? static_cast<float>(static_cast<double>(L - 1) / static_cast<double>(O - 1)) : 0.0f;
  if (scale > 0) return static_cast<float>(1.0 / scale);
  return static_cast<float>(L) / static_cast<float>(O);
}

}  // namespace

void axis(Mode mode, const float* x, int64_t outer, int64_t L, int64_t inner, int64_t O, double scale,
          bool align_corners, float* out) {
  std::vector<int64_t> i0(static_cast<size_t>(O)), i1;
  std::vector<float> lam0, lam1;
  if (mode == Mode::Cubic) {  // four taps i0 - 1 .. i0 + 2 (clamped), the reference's float32 coefficients
    std::vector<int64_t> taps(static_cast<size_t>(4 * O));
    std::vector<float> coef(static_cast<size_t>(4 * O));
    const float s = linear_scale(L, O, scale, align_corners), A = -0.75f, one = 1.0f;
    const auto c1 = [A](float v) { return ((A + 2.0f) * v - (A + 3.0f)) * v * v + 1.0f; };
    const auto c2 = [A](float v) { return ((A * v - 5.0f * A) * v + 8.0f * A) * v - 4.0f * A; };
    for (int64_t j = 0; j < O; ++j) {
      const float d = static_cast<float>(j);
      const float real = align_corners ? s * d : s * (d + 0.5f) - 0.5f;
      const int64_t a = std::min(static_cast<int64_t>(std::floor(real)), L - 1);
      const float t = std::min(std::max(real - static_cast<float>(a), 0.0f), 1.0f);
      const float c[4] = {c2(t + one), c1(t), c1(one - t), c2(one - t + one)};
      for (int k = 0; k < 4; ++k) {
        taps[static_cast<size_t>(4 * j + k)] = std::min(std::max<int64_t>(a - 1 + k, 0), L - 1);
        coef[static_cast<size_t>(4 * j + k)] = c[k];
      }
    }
    for (int64_t o = 0; o < outer; ++o) {
      const float* xo = x + o * L * inner;
      float* oo = out + o * O * inner;
      for (int64_t j = 0; j < O; ++j) {
        float* dst = oo + j * inner;
        const int64_t* tp = taps.data() + 4 * j;
        const float* cf = coef.data() + 4 * j;
        for (int64_t i = 0; i < inner; ++i) {
          float v = xo[tp[0] * inner + i] * cf[0];  // the terms added in order, as the reference
          v = v + xo[tp[1] * inner + i] * cf[1];
          v = v + xo[tp[2] * inner + i] * cf[2];
          dst[i] = v + xo[tp[3] * inner + i] * cf[3];
        }
      }
    }
    return;
  }
  if (mode == Mode::Linear) {
    i1.resize(static_cast<size_t>(O));
    lam0.resize(static_cast<size_t>(O));
    lam1.resize(static_cast<size_t>(O));
    const float s = linear_scale(L, O, scale, align_corners);
    for (int64_t j = 0; j < O; ++j) {
      const float d = static_cast<float>(j);
      float real = align_corners ? s * d : s * (d + 0.5f) - 0.5f;
      if (!align_corners) real = std::max(real, 0.0f);
      const int64_t a = std::min(static_cast<int64_t>(std::floor(real)), L - 1);
      const float l1 = std::min(std::max(real - static_cast<float>(a), 0.0f), 1.0f);
      i0[j] = a;
      i1[j] = a + (a < L - 1 ? 1 : 0);
      lam1[j] = l1;
      lam0[j] = 1.0f - l1;
    }
  } else {
    const bool exact = mode == Mode::NearestExact;
    const float s = scale > 0 ? static_cast<float>(1.0 / scale) : static_cast<float>(L) / static_cast<float>(O);
    for (int64_t j = 0; j < O; ++j) {
      if (!exact && O == L) {
        i0[j] = j;
      } else if (!exact && O == 2 * L) {  // torch special-cases x2 (whatever the scale)
        i0[j] = j >> 1;
      } else {
        const float d = static_cast<float>(j) + (exact ? 0.5f : 0.0f);
        i0[j] = std::min(static_cast<int64_t>(std::floor(d * s)), L - 1);
      }
    }
  }
  for (int64_t o = 0; o < outer; ++o) {
    const float* xo = x + o * L * inner;
    float* oo = out + o * O * inner;
    for (int64_t j = 0; j < O; ++j) {
      float* dst = oo + j * inner;
      const float* a = xo + i0[j] * inner;
      if (mode != Mode::Linear) {
        std::memcpy(dst, a, static_cast<size_t>(inner) * sizeof(float));
        continue;
      }
      const float* b = xo + i1[j] * inner;
      const float w0 = lam0[j], w1 = lam1[j];
      for (int64_t i = 0; i < inner; ++i) dst[i] = a[i] * w0 + b[i] * w1;
    }
  }
}

}  // namespace resize
}  // namespace pocketml
