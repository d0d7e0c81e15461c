// The driver (rows over threads, masks, the safe softmax) and the portable primitives.
#include "kernels/attention/attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "core/cpu.h"
#include "core/pool.h"

namespace pocketml {
namespace attention {
namespace {

float dot(const float* a, const float* b, int64_t n) {
  float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    s0 += a[i] * b[i];
    s1 += a[i + 1] * b[i + 1];
    s2 += a[i + 2] * b[i + 2];
    s3 += a[i + 3] * b[i + 3];
  }
  for (; i < n; ++i) s0 += a[i] * b[i];
  return (s0 + s1) + (s2 + s3);
}

void dots_generic(const float* q, const float* k, int64_t ldk, int64_t n, int64_t E, float* out) {
  for (int64_t j = 0; j < n; ++j) out[j] = dot(q, k + j * ldk, E);
}

void wsum_generic(const float* p, const float* v, int64_t ldv, int64_t n, int64_t Ev, float* out) {
  std::memset(out, 0, sizeof(float) * Ev);
  for (int64_t j = 0; j < n; ++j) {
    if (p[j] == 0.0f) continue;
    const float a = p[j], *x = v + j * ldv;
    for (int64_t e = 0; e < Ev; ++e) out[e] += a * x[e];
  }
}

float exp_sum_generic(float* x, int64_t n, float m) {
  float s = 0;
  for (int64_t i = 0; i < n; ++i) s += (x[i] = std::exp(x[i] - m));
  return s;
}

void scale_generic(float* x, int64_t n, float a) {
  for (int64_t i = 0; i < n; ++i) x[i] *= a;
}

const Primitives& select() {
#if defined(POCKETML_HAVE_AVX2_KERNELS)
  if (use_avx2()) return avx2_primitives;
#endif
  return generic_primitives;
}

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
// multiply-adds below which one thread runs: a decode step's attention (one query row per head,
// a few hundred cached positions, ~10^5 multiply-adds) reads its keys and values from L3 or DRAM
// and gains from two threads' loads
constexpr int64_t kParallelWork = int64_t(1) << 15;
constexpr int64_t kChunkWork = int64_t(1) << 15;  // multiply-adds per chunk at least

// Rows [r0, r1) of the flattened [B, Hq, L] grid; sc: S floats of scratch.
void rows(const SdpaArgs& a, const Primitives& p, int64_t r0, int64_t r1, float* sc) {
  const int64_t group = a.Hq / a.Hk;
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t l = r % a.L, bh = r / a.L, h = bh % a.Hq, b = bh / a.Hq, hk = h / group;
    const float* q = a.q + b * a.qs[0] + h * a.qs[1] + l * a.qs[2];
    const float* k = a.k + b * a.ks[0] + hk * a.ks[1];
    const float* v = a.v + b * a.vs[0] + hk * a.vs[1];
    float* out = a.out + r * a.Ev;
    const int64_t n = a.causal ? std::min(a.S, l + 1) : a.S;
    const int64_t mrow = b * a.ms[0] + h * a.ms[1] + l * a.ms[2], mj = a.ms[3];
    p.dots(q, k, a.ks[2], n, a.E, sc);
    float m = kNegInf;
    bool nan = false;
    if (a.mask_kind == MaskKind::Float) {
      const float* mk = static_cast<const float*>(a.mask) + mrow;
      for (int64_t j = 0; j < n; ++j) sc[j] = sc[j] * a.scale + mk[j * mj];
    } else if (a.mask_kind == MaskKind::Bool) {
      const uint8_t* mk = static_cast<const uint8_t*>(a.mask) + mrow;
      for (int64_t j = 0; j < n; ++j) sc[j] = mk[j * mj] ? sc[j] * a.scale : kNegInf;
    } else {
      for (int64_t j = 0; j < n; ++j) sc[j] *= a.scale;
    }
    for (int64_t j = 0; j < n; ++j) {
      if (sc[j] > m) m = sc[j];
      nan = nan || sc[j] != sc[j];
    }
    if (nan || !std::isfinite(m)) {  // nothing to attend (or NaN scores): 0, as the reference
      std::memset(out, 0, sizeof(float) * a.Ev);
      continue;
    }
    const float sum = p.exp_sum(sc, n, m);
    p.wsum(sc, v, a.vs[2], n, a.Ev, out);
    if (sum > 0) p.scale(out, a.Ev, 1.0f / sum);
  }
}

}  // namespace

const Primitives generic_primitives = {dots_generic, wsum_generic, exp_sum_generic, scale_generic};

void sdpa(const SdpaArgs& a, int threads) {
  const int64_t R = a.B * a.Hq * a.L;
  if (R == 0 || a.Ev == 0) return;
  if (a.S == 0) {
    std::memset(a.out, 0, sizeof(float) * R * a.Ev);
    return;
  }
  const Primitives& p = select();
  const int64_t per_row = a.S * (a.E + a.Ev) + 1;
  const int64_t work = R * per_row;
  if (threads <= 0) threads = default_threads();
  if (threads <= 1 || work < kParallelWork) {
    thread_local std::vector<float> scratch;
    if (static_cast<int64_t>(scratch.size()) < a.S) scratch.resize(a.S);
    rows(a, p, 0, R, scratch.data());
    return;
  }
  int64_t grain = std::max<int64_t>(1, kChunkWork / per_row);
  grain = std::min(grain, (R + threads - 1) / threads);
  // one query row per head: the heads sharing a key/value head stay in one chunk (read once)
  const int64_t group = a.Hk > 0 && a.Hq % a.Hk == 0 ? a.Hq / a.Hk : 1;
  if (a.L == 1 && group > 1) grain = (grain + group - 1) / group * group;
  parallel_for(R, grain, threads, [&](int64_t r0, int64_t r1) {
    thread_local std::vector<float> scratch;
    if (static_cast<int64_t>(scratch.size()) < a.S) scratch.resize(a.S);
    rows(a, p, r0, r1, scratch.data());
  });
}

}  // namespace attention
}  // namespace pocketml
