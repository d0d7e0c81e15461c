// fit_symmetric (compress/search.h): one row at a time, rows over the threads.
#include "compress/search.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "compress/kmeans_common.h"
#include "core/pool.h"

namespace pocketml {
namespace {

// The two float64 series whose pairwise sums refit a scale: sum(h q q) and sum(h q w)
// (kmeans_common.h's `pairwise`, NumPy's order).
struct Products {
  const double *a, *b;
  void item(int64_t i, double* v) const { v[0] = a[i], v[1] = b[i]; }
  void block(int64_t i, double (*v)[8]) const {
    for (int j = 0; j < 8; ++j) v[0][j] = a[i + j], v[1][j] = b[i + j];
  }
};

struct Series {
  const double* a;
  void item(int64_t i, double* v) const { v[0] = a[i]; }
  void block(int64_t i, double (*v)[8]) const {
    for (int j = 0; j < 8; ++j) v[0][j] = a[i + j];
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
  pairwise<1>(Series{a}, 0, L, &total);
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
    pairwise<2>(Products{a, b}, 0, L, sums);
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

}  // namespace

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
