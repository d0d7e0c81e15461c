// fit_symmetric and fit_affine (compress/search.h): one row at a time, rows over the threads.
#include "compress/search.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "compress/kmeans_common.h"
#include "core/pool.h"

namespace pocketml {
namespace {

// N float64 series side by side, summed at once by kmeans_common.h's `pairwise` (NumPy's order).
template <int N>
struct Columns {
  const double* p[N];
  void item(int64_t i, double* v) const {
    for (int c = 0; c < N; ++c) v[c] = p[c][i];
  }
  void block(int64_t i, double (*v)[8]) const {
    for (int c = 0; c < N; ++c)
      for (int j = 0; j < 8; ++j) v[c][j] = p[c][i + j];
  }
};

// np.rint (round half to even) of a value about to be clipped to |q| <= 2^22, without a library
// call: for |x| < 2^23, (|x| + 2^23) - 2^23 in float rounds to the nearest integer, ties to even
// (the default rounding mode); a larger |x| stays beyond the clip, its sign kept (inf too).
inline float rint_even(float x) { return std::copysign((std::fabs(x) + 8388608.0f) - 8388608.0f, x); }

void fit_row(const float* w, const float* hw, int64_t L, int qmin, int qmax, const double* factors, int nf,
             int refine, float* scale, float* best_q, std::vector<double>& buf, std::vector<float>& q) {
  const int half = std::min(-qmin, qmax);
  float amax_f = 0.0f;
  for (int64_t j = 0; j < L; ++j) amax_f = std::max(amax_f, std::fabs(w[j]));
  const double amax = amax_f;
  double* a = buf.data();
  double* b = a + L;
  for (int64_t j = 0; j < L; ++j) a[j] = static_cast<float>(static_cast<float>(hw[j] * w[j]) * w[j]);
  double total;
  pairwise<1>(Columns<1>{{a}}, 0, L, &total);
  double best_err = std::numeric_limits<double>::infinity();
  double best_s = amax > 0 ? amax / half : 1.0;
  std::fill(best_q, best_q + L, 0.0f);
  for (int k = 0; k < nf + refine; ++k) {
    const double s0 = k < nf ? (amax > 0 ? amax * factors[k] / half : 1.0) : best_s;
    const float sf = static_cast<float>(s0), fmin = static_cast<float>(qmin), fmax = static_cast<float>(qmax);
    for (int64_t j = 0; j < L; ++j) {
      float c = rint_even(w[j] / sf);
      c = c < fmin ? fmin : c;  // np.clip
      c = c > fmax ? fmax : c;
      q[j] = c;
      const float hq = hw[j] * q[j];
      a[j] = static_cast<float>(hq * q[j]);
      b[j] = static_cast<float>(hq * w[j]);
    }
    double sums[2];
    pairwise<2>(Columns<2>{{a, b}}, 0, L, sums);  // sum(h q q), sum(h q w)
    const double sqq = sums[0], swq = sums[1];
    const bool ok = sqq > 0;
    double s = ok ? swq / sqq : s0;
    s = s > 0 ? s : s0;
    const double err = std::max(ok ? total - swq * swq / sqq : total, 0.0);
    if (err < best_err) {
      best_err = err;
      best_s = s;
      std::copy(q.begin(), q.end(), best_q);
    }
  }
  *scale = static_cast<float>(best_s);
}

void affine_row(const float* w, const float* hw, int64_t L, int levels, const double* spans, int ns,
                float* scale, float* offset, float* best_q, std::vector<double>& buf, std::vector<float>& q) {
  float lo_f = std::numeric_limits<float>::infinity(), hi_f = -lo_f;
  for (int64_t j = 0; j < L; ++j) lo_f = std::min(lo_f, w[j]), hi_f = std::max(hi_f, w[j]);
  const double lo = lo_f, hi = hi_f, rng = hi - lo;
  const bool flat = !(rng > 0);
  double* a = buf.data();
  double* b = a + L;
  double* c = b + L;
  for (int64_t j = 0; j < L; ++j) a[j] = hw[j], b[j] = static_cast<float>(hw[j] * w[j]);
  double base[2];  // sum(h), sum(h w)
  pairwise<2>(Columns<2>{{a, b}}, 0, L, base);
  const double sh = base[0], shw = base[1];
  double best_s = flat ? 1.0 : rng / levels, best_m = lo;
  double best_err = flat ? 0.0 : std::numeric_limits<double>::infinity();
  std::fill(best_q, best_q + L, 0.0f);
  const float lo32 = static_cast<float>(lo), flevels = static_cast<float>(levels);
  for (int k = 0; k < ns; ++k) {
    const float iscale = static_cast<float>(flat ? 0.0 : (levels + spans[k]) / rng);
    for (int64_t j = 0; j < L; ++j) {
      float v = rint_even((w[j] - lo32) * iscale);
      v = v < 0.0f ? 0.0f : v;  // np.clip
      v = v > flevels ? flevels : v;
      q[j] = v;
      const float hq = hw[j] * v;
      a[j] = hq, b[j] = static_cast<float>(hq * v), c[j] = static_cast<float>(hq * w[j]);
    }
    double sums[3];
    pairwise<3>(Columns<3>{{a, b, c}}, 0, L, sums);  // sum(h q), sum(h q q), sum(h q w)
    const double sq = sums[0], sqq = sums[1], sqw = sums[2];
    const double det = sh * sqq - sq * sq;
    const bool ok = det > 0 && !flat;
    const double det1 = ok ? det : 1.0;
    const double s = ok ? (sh * sqw - sq * shw) / det1 : best_s;
    const double m = ok ? (sqq * shw - sq * sqw) / det1 : best_m;
    if (!(ok && s > 0)) continue;  // its error inf: never better
    const float s32 = static_cast<float>(s), m32 = static_cast<float>(m);
    for (int64_t j = 0; j < L; ++j) {
      const float r = w[j] - (q[j] * s32 + m32);
      a[j] = static_cast<float>(static_cast<float>(hw[j] * r) * r);
    }
    double err;
    pairwise<1>(Columns<1>{{a}}, 0, L, &err);
    if (err < best_err) {
      best_err = err, best_s = s, best_m = m;
      std::copy(q.begin(), q.end(), best_q);
    }
  }
  *scale = static_cast<float>(best_s);
  *offset = static_cast<float>(best_m);
}

}  // namespace

void fit_affine(const float* w, const float* hw, int64_t rows, int64_t L, int levels, const double* spans,
                int nspans, float* scale, float* offset, float* codes, int threads) {
  parallel_for(rows, std::max<int64_t>(1, 4096 / std::max<int64_t>(L, 1)), threads, [&](int64_t r0, int64_t r1) {
    std::vector<double> buf(static_cast<size_t>(3 * L));
    std::vector<float> q(static_cast<size_t>(L));
    for (int64_t r = r0; r < r1; ++r)
      affine_row(w + r * L, hw + r * L, L, levels, spans, nspans, scale + r, offset + r, codes + r * L, buf, q);
  });
}

void fit_symmetric(const float* w, const float* hw, int64_t rows, int64_t L, int qmin, int qmax,
                   const double* factors, int nfactors, int refine, float* scale, float* codes, int threads) {
  // (the persistent pool: GPTQ calls this once per group of columns, thousands of times)
  parallel_for(rows, std::max<int64_t>(1, 4096 / std::max<int64_t>(L, 1)), threads, [&](int64_t r0, int64_t r1) {
    std::vector<double> buf(static_cast<size_t>(2 * L));
    std::vector<float> q(static_cast<size_t>(L));
    for (int64_t r = r0; r < r1; ++r)
      fit_row(w + r * L, hw + r * L, L, qmin, qmax, factors, nfactors, refine, scale + r, codes + r * L, buf, q);
  });
}

}  // namespace pocketml
