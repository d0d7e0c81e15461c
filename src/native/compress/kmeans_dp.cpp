#include "compress/kmeans_dp.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "compress/kmeans_common.h"
#include "core/buffer.h"

namespace pocketml {
namespace {

// Leftmost argmin over j in [jl, jh] of E[j] - (p1i - P1[j])^2 / (pwi - PW[j]).
struct ScalarArgmin {
  static void run(const double* E, const double* P1, const double* PW, double p1i, double pwi,
                  int64_t jl, int64_t jh, double& best, int64_t& bj) {
    best = kInf;
    bj = jl;
    for (int64_t j = jl; j <= jh; ++j) {
      double d = p1i - P1[j];
      double v = E[j] - d * d / (pwi - PW[j]);
      if (v < best) {
        best = v;
        bj = j;
      }
    }
  }
};

#ifdef POCKETML_AVX2
// The same in 4 lanes, without branches: each lane keeps its leftmost minimum (strictly
// smaller replaces), then the lanes agree on the minimum and its smallest offset. The arrays
// must be readable up to jh + 3 (lanes past jh are ignored).
struct VectorArgmin {
  POCKETML_INLINE static void run(const double* E, const double* P1, const double* PW,
                                  double p1i, double pwi, int64_t jl, int64_t jh, double& best,
                                  int64_t& bj) {
    const f64x4 vp1 = {p1i, p1i, p1i, p1i}, vpw = {pwi, pwi, pwi, pwi};
    const f64x4 inf = {kInf, kInf, kInf, kInf};
    const double last = static_cast<double>(jh - jl);
    const f64x4 vlast = {last, last, last, last};
    f64x4 bv = inf, bi = inf, idx = {0, 1, 2, 3};
    for (int64_t j = jl; j <= jh; j += 4) {
      f64x4 e, p1, pw;
      std::memcpy(&e, E + j, sizeof e);
      std::memcpy(&p1, P1 + j, sizeof p1);
      std::memcpy(&pw, PW + j, sizeof pw);
      f64x4 d = vp1 - p1;
      f64x4 v = e - d * d / (vpw - pw);
      auto lt = (v < bv) & (idx <= vlast);
      bv = lt ? v : bv;
      bi = lt ? idx : bi;
      idx += 4;
    }
    const i64x4 pairs = {1, 0, 3, 2}, halves = {2, 3, 0, 1};
    f64x4 t = __builtin_shuffle(bv, pairs), m = bv < t ? bv : t;
    t = __builtin_shuffle(m, halves);
    m = m < t ? m : t;
    f64x4 o = bv == m ? bi : inf;
    t = __builtin_shuffle(o, pairs);
    o = o < t ? o : t;
    t = __builtin_shuffle(o, halves);
    o = o < t ? o : t;
    best = m[0];
    bj = o[0] == kInf ? jl : jl + static_cast<int64_t>(o[0]);
  }
};
#endif

// The DP's arrays, kept by each thread between its DPs (a batch runs many), unless large.
struct DPWork {
  std::vector<double> PW, P1, P2, D, E, Dn;
  std::vector<int32_t> opts;
  void reserve(int64_t m, int64_t k) {
    for (auto* v : {&PW, &P1, &P2, &D, &E, &Dn})
      if (static_cast<int64_t>(v->size()) < m + 4) v->resize(m + 4);  // + the 4-lane padding
    if (static_cast<int64_t>(opts.size()) < (k - 1) * (m + 1)) opts.resize((k - 1) * (m + 1));
  }
  void release_if_big() {
    if (opts.size() + 6 * 2 * PW.size() > (size_t(1) << 22)) *this = DPWork();
  }
};

DPWork& dp_work() {
  thread_local DPWork w;
  return w;
}

// Exact k-segment DP over m > k >= 2 points with weights a, sums b (w*x) and c (w*x^2); writes
// the k+1 boundaries into the points to B. Row r: D[r][i] = P2[i] + min_j E[j] - (P1[i] -
// P1[j])^2 / (PW[i] - PW[j]), E = D[r-1] - P2, by divide and conquer over the monotone
// (leftmost) argmin, which also lies at or after the previous row's.
template <class Argmin>
POCKETML_INLINE void dp_exact_impl(const double* a, const double* b, const double* c, int64_t m,
                                   int64_t k, int64_t* B) {
  DPWork& w = dp_work();
  w.reserve(m, k);
  double *PW = w.PW.data(), *P1 = w.P1.data(), *P2 = w.P2.data(), *D = w.D.data(),
         *E = w.E.data(), *Dn = w.Dn.data();
  int32_t* opts = w.opts.data();
  prefix([&](int64_t i) { return a[i]; }, m, PW);
  prefix([&](int64_t i) { return b[i]; }, m, P1);
  prefix([&](int64_t i) { return c[i]; }, m, P2);
  D[0] = kInf;
  for (int64_t i = 1; i <= m; ++i) D[i] = P2[i] - P1[i] * P1[i] / PW[i];
  struct Node {
    int64_t alo, ahi, jlo, jhi;
  };
  Node stack[130];  // depth first, the left child next: at most 2 log2(m) + 2 pending
  for (int64_t r = 2; r <= k; ++r) {
    const int32_t* prev = r == 2 ? nullptr : opts + (r - 3) * (m + 1);
    int32_t* opt = opts + (r - 2) * (m + 1);
    for (int64_t i = 0; i <= m; ++i) E[i] = D[i] - P2[i];
    std::fill(Dn, Dn + m + 1, kInf);
    int top = 0;
    stack[top++] = {r, m - k + r, r - 1, m - k + r - 1};
    while (top) {
      Node nd = stack[--top];
      int64_t mid = (nd.alo + nd.ahi) >> 1;
      int64_t jh = std::min(nd.jhi, mid - 1);
      // opt[r-1][i] <= opt[r][i]: the last cluster starts no earlier with more clusters
      int64_t jl = std::min(std::max<int64_t>(nd.jlo, prev ? prev[mid] : 0), jh);
      double best;
      int64_t bj;
      Argmin::run(E, P1, PW, P1[mid], PW[mid], jl, jh, best, bj);
      Dn[mid] = best + P2[mid];
      opt[mid] = static_cast<int32_t>(bj);
      if (mid + 1 <= nd.ahi) stack[top++] = {mid + 1, nd.ahi, bj, nd.jhi};
      if (nd.alo <= mid - 1) stack[top++] = {nd.alo, mid - 1, nd.jlo, bj};
    }
    if (r < k) opt[m - k + r + 1] = 0;  // the next row reads it: no bound (as never computed)
    std::swap(D, Dn);
  }
  B[0] = 0;
  B[k] = m;
  for (int64_t r = k; r > 1; --r) B[r - 1] = opts[(r - 2) * (m + 1) + B[r]];
  w.release_if_big();
}

void dp_exact_scalar(const double* a, const double* b, const double* c, int64_t m, int64_t k,
                     int64_t* B) {
  dp_exact_impl<ScalarArgmin>(a, b, c, m, k, B);
}

#ifdef POCKETML_AVX2
__attribute__((target("avx2"))) void dp_exact_avx2(const double* a, const double* b,
                                                   const double* c, int64_t m, int64_t k,
                                                   int64_t* B) {
  dp_exact_impl<VectorArgmin>(a, b, c, m, k, B);
}
#endif

}  // namespace

void dp_exact(const double* a, const double* b, const double* c, int64_t m, int64_t k,
              int64_t* B) {
  const bool simd = use_simd();
#ifdef POCKETML_AVX2
  if (simd) return dp_exact_avx2(a, b, c, m, k, B);
#endif
  (void)simd;
  dp_exact_scalar(a, b, c, m, k, B);
}

void dp_on_bins(const std::vector<Sum3>& agg, const std::vector<int64_t>& edges, int64_t k,
                int64_t* B) {
  int64_t nb = static_cast<int64_t>(agg.size());
  std::vector<double> a(nb), b(nb), c(nb);
  for (int64_t i = 0; i < nb; ++i) {
    a[i] = agg[i].v[0];
    b[i] = agg[i].v[1];
    c[i] = agg[i].v[2];
  }
  dp_exact(a.data(), b.data(), c.data(), nb, k, B);
  for (int64_t r = 0; r <= k; ++r) B[r] = edges[B[r]];
}

}  // namespace pocketml
