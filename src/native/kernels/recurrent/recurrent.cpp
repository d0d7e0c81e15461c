#include "kernels/recurrent/recurrent.h"

#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/linear/linear.h"

namespace pocketml {
namespace recurrent {
namespace {

// float32 forms (within a few ulp of the reference's float32 NumPy ones, whose sigmoid is
// 0.5 * (tanh(x / 2) + 1)): the state update is a tolerance match, and the double forms made the
// gates cost more than the two matrix products of a 128-wide cell
inline float tanh_f(float x) { return std::tanh(x); }

inline float sigmoid_f(float x) { return 1.0f / (1.0f + std::exp(-x)); }

}  // namespace

void run(const Layer& L, float* gx, int64_t T, int64_t gx_t, int64_t gx_b, float* h, float* c,
         float* out, int64_t out_t, int64_t out_b, bool reverse, int threads) {
  const int64_t B = L.B, H = L.H, Hout = L.Hout, G = gate_count(L.cell);
  std::vector<float> gh(static_cast<size_t>(B * G * H));
  std::vector<float> full(L.w_hr != nullptr ? static_cast<size_t>(B * H) : 0);
  for (int64_t s = 0; s < T; ++s) {
    const int64_t t = reverse ? T - 1 - s : s;
    linear::gemm(*L.w_hh, h, B, L.b_hh, gh.data(), threads);  // h @ w_hh^T + b_hh
    for (int64_t b = 0; b < B; ++b) {
      float* x = gx + (t * gx_t + b * gx_b) * G * H;
      const float* r = gh.data() + b * G * H;
      float* hb = h + b * Hout;
      switch (L.cell) {
        case Cell::Lstm: {
          float* cb = c + b * H;
          float* hf = L.w_hr != nullptr ? full.data() + b * H : hb;
          for (int64_t j = 0; j < H; ++j) {
            const float i = sigmoid_f(x[j] + r[j]), f = sigmoid_f(x[H + j] + r[H + j]);
            const float g = tanh_f(x[2 * H + j] + r[2 * H + j]), o = sigmoid_f(x[3 * H + j] + r[3 * H + j]);
            cb[j] = f * cb[j] + i * g;
            hf[j] = o * tanh_f(cb[j]);
          }
          break;
        }
        case Cell::Gru:
          for (int64_t j = 0; j < H; ++j) {
            const float rr = sigmoid_f(x[j] + r[j]), z = sigmoid_f(x[H + j] + r[H + j]);
            const float n = tanh_f(x[2 * H + j] + rr * r[2 * H + j]);
            hb[j] = (1.0f - z) * n + z * hb[j];
          }
          break;
        case Cell::RnnTanh:
          for (int64_t j = 0; j < H; ++j) hb[j] = tanh_f(x[j] + r[j]);
          break;
        case Cell::RnnRelu:
          for (int64_t j = 0; j < H; ++j) {
            const float v = x[j] + r[j];
            hb[j] = v != v || v > 0.0f ? v : 0.0f;
          }
          break;
      }
    }
    if (L.w_hr != nullptr) linear::gemm(*L.w_hr, full.data(), B, nullptr, h, threads);
    if (out != nullptr)
      for (int64_t b = 0; b < B; ++b)
        std::memcpy(out + t * out_t + b * out_b, h + b * Hout, static_cast<size_t>(Hout) * sizeof(float));
  }
}

}  // namespace recurrent
}  // namespace pocketml
