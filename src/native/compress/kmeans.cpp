// Optimal 1-D k-means, step for step the algorithm of compress/kmeans.py _kmeans_1d_many_reference (read
// its docstring first). Every floating-point result is computed with the same operations in the
// same order as NumPy computes it (np.cumsum is sequential; np.add.reduceat adds the first
// element to numpy's pairwise sum of the rest) and the build disables FMA contraction, so the
// centers and labels are bit-identical to the reference's. What differs is speed: a radix sort,
// a vectorised DP, few passes over the data, threads across problems or inside a big one.
#include "compress/kmeans.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <numeric>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>

#include "compress/kmeans_common.h"
#include "compress/kmeans_dp.h"
#include "compress/sort.h"
#include "compress/threads.h"
#include "core/buffer.h"
#include "core/cpu.h"

namespace pocketml {
namespace {

constexpr int64_t kBins = 4096;            // kmeans._NBINS
constexpr int kLloydIters = 200;           // kmeans._LLOYD_1D_ITERS
constexpr int64_t kRefineBins = 2;         // kmeans._REFINE_BINS
constexpr int kRefineRounds = 3;           // kmeans._REFINE_ROUNDS
constexpr int64_t kParallelMin = 1 << 16;  // passes over fewer values stay on one thread
constexpr int64_t kCheckpoint = 64;        // Lloyd: prefix sums stored every this many values

int threads_for(int64_t n, int threads) {
  return static_cast<int>(std::clamp<int64_t>(n / kParallelMin, 1, std::max(threads, 1)));
}

// ------------------------------------------------------------------------------------------
// sorted distinct values (kmeans._unique_weighted)

// Values stored as the input's floats (exact), counts as int32 when they fit: half the memory
// traffic of float64 for the passes over millions of values.
template <class U, class W>
struct Distinct {
  Buffer<U> u;   // sorted distinct values (+0.0 for zeros) of positive weight
  Buffer<W> ws;  // their summed weights, or their counts
  int64_t m = 0;
  bool counts = true;   // ws are counts (no weights, or no positive weight)
  double median = 0.0;  // with counts: the value at which the cumulative count reaches n / 2
  double value(int64_t i) const { return static_cast<double>(u[i]); }
  double weight(int64_t i) const { return static_cast<double>(ws[i]); }
};

// Calls fn(i, end) for the run [i, end) of equal keys starting at each i in [a, b).
template <class K, class F>
void for_runs(const K* keys, int64_t n, int64_t a, int64_t b, F&& fn) {
  for (int64_t i = a; i < b; ++i) {
    if (i != 0 && keys[i] == keys[i - 1]) continue;
    int64_t end = i + 1;
    while (end < n && keys[end] == keys[i]) ++end;
    fn(i, end);
  }
}

struct Gathered {  // w[idx[q]]: the weights in sorted order, as a series
  const double* w;
  const uint32_t* idx;
  void item(int64_t q, double* v) const { v[0] = w[idx[q]]; }
  void block(int64_t q, double (*v)[8]) const {
    for (int j = 0; j < 8; ++j) v[0][j] = w[idx[q + j]];
  }
};

// The distinct values of the sorted keys ks and their counts, chunk c of nt filling from
// first[c]. One branch-light pass records each run's value and start (in ws), a second turns
// the starts into counts: cheaper than finding each run's end when most values are distinct.
template <class K, class T, class W>
void fill_counts(const K* ks, int64_t n, const std::vector<int64_t>& first, int nt, T* u,
                 W* ws) {
  parallel_for(nt, nt, [&](int64_t c) {
    int64_t j = first[c];
    for (int64_t i = chunk_start(n, nt, c), e = chunk_start(n, nt, c + 1); i < e; ++i)
      if (i == 0 || ks[i] != ks[i - 1]) {
        u[j] = key_float(ks[i]);
        ws[j++] = static_cast<W>(i);
      }
  });
  int64_t m = first[nt];
  std::vector<W> next(nt);  // the start after each chunk's last run, read before it is rewritten
  for (int c = 0; c < nt; ++c) next[c] = static_cast<W>(first[c + 1] < m ? ws[first[c + 1]] : n);
  parallel_for(nt, nt, [&](int64_t c) {
    int64_t a = first[c], e = first[c + 1];
    if (a == e) return;
    for (int64_t j = a; j + 1 < e; ++j) ws[j] = ws[j + 1] - ws[j];
    ws[e - 1] = next[c] - ws[e - 1];
  });
}

template <class T, class W>
void distinct_values(const T* x, const double* w, int64_t n, int threads, Distinct<T, W>& d) {
  using K = key_of<T>;
  int nt = threads_for(n, threads);
  if (w) {
    bool finite = true, nonneg = true;
    for (int64_t i = 0; i < n; ++i) {
      finite &= std::isfinite(w[i]);
      nonneg &= !(w[i] < 0);
    }
    if (n > int64_t(std::numeric_limits<uint32_t>::max()))
      throw std::invalid_argument("kmeans_1d: at most 2**32 - 1 weighted values");
    if (!finite || !nonneg) {  // x is checked first, as the reference does
      for (int64_t i = 0; i < n; ++i)
        if (!std::isfinite(x[i])) throw std::invalid_argument("x contains NaN or infinity");
      throw std::invalid_argument(finite ? "weights must be non-negative"
                                         : "weights contains NaN or infinity");
    }
  }
  auto keys = allocate<K>(n);
  Buffer<uint32_t> idx;
  if (w) idx = allocate<uint32_t>(n);
  if (!sort_float_keys(x, n, keys.get(), idx.get(), threads))
    throw std::invalid_argument("x contains NaN or infinity");
  const K* ks = keys.get();

  // runs counted per chunk, then filled in order
  std::vector<int64_t> first(nt + 1, 0);
  parallel_for(nt, nt, [&](int64_t c) {
    int64_t a = chunk_start(n, nt, c), e = chunk_start(n, nt, c + 1);
    int64_t cnt = a == 0;  // i = 0 starts a run; the loop below vectorises
    for (int64_t i = std::max<int64_t>(a, 1); i < e; ++i) cnt += ks[i] != ks[i - 1];
    first[c + 1] = cnt;
  });
  for (int c = 0; c < nt; ++c) first[c + 1] += first[c];
  int64_t m = first[nt];
  d.u = allocate<T>(m);
  d.ws = allocate<W>(m);
  T* u = d.u.get();
  W* ws = d.ws.get();
  if (!w) {  // counts: the hot path of a plain palettize
    fill_counts(ks, n, first, nt, u, ws);
    d.m = m;
    d.median = static_cast<double>(key_float(ks[(n + 1) / 2 - 1]));
    return;
  }
  Gathered g{w, idx.get()};
  std::vector<char> positive(nt, 0);
  parallel_for(nt, nt, [&](int64_t c) {
    int64_t j = first[c];
    bool p = false;
    for_runs(ks, n, chunk_start(n, nt, c), chunk_start(n, nt, c + 1), [&](int64_t i, int64_t e) {
      u[j] = key_float(ks[i]);
      if (w) {
        double s;
        reduceat<1>(g, i, e, &s);
        ws[j] = static_cast<W>(s);
        p |= s > 0;
      } else {
        ws[j] = static_cast<W>(e - i);
      }
      ++j;
    });
    positive[c] = p;
  });
  bool any_positive = std::find(positive.begin(), positive.end(), 1) != positive.end();
  d.counts = !w || !any_positive;
  if (w && any_positive) {  // drop the values of zero weight
    int64_t o = 0;
    for (int64_t j = 0; j < m; ++j)
      if (ws[j] > 0) {
        u[o] = u[j];
        ws[o++] = ws[j];
      }
    m = o;
  } else if (w) {  // no positive weight: the counts stand in
    int64_t j = 0;
    for_runs(ks, n, 0, n, [&](int64_t i, int64_t e) { ws[j++] = static_cast<W>(e - i); });
  }
  d.m = m;
  // with counts, the first run whose cumulative count reaches n / 2 holds sorted position
  // ceil(n / 2) - 1
  d.median = static_cast<double>(key_float(ks[(n + 1) / 2 - 1]));
}

// ------------------------------------------------------------------------------------------
// binned DP for many distinct values (kmeans._solve_dp, _bin_edges, _lloyd_1d_polish)

// A bin starts at each of the `half` widest gaps (ties: lowest index first) and wherever the
// rank crosses a multiple of n / half.
template <class U>
std::vector<int64_t> bin_edges(const U* u, int64_t n, int64_t nbins, int threads) {
  int64_t half = std::max<int64_t>(nbins / 2, 1);
  int64_t ngaps = n - 1;
  std::vector<int64_t> edges;
  if (half >= ngaps) {
    edges.resize(n + 1);
    std::iota(edges.begin(), edges.end(), int64_t(0));
    return edges;
  }
  edges.reserve(2 * half + 2);
  for (int64_t j = 0; j < half; ++j) edges.push_back((j * n + half - 1) / half);
  // candidates: the gaps >= v, v from a strided sample so that (almost surely) at least `half`
  // gaps pass; the selection below is exact whatever v is
  auto gap = [u](int64_t i) { return static_cast<double>(u[i + 1]) - static_cast<double>(u[i]); };
  double v = -kInf;
  if (ngaps >= 8 * half) {
    const int64_t stride = std::max<int64_t>(4, ngaps / 16384), sample = ngaps / stride;
    std::vector<double> s(sample);
    for (int64_t q = 0; q < sample; ++q) s[q] = gap(q * stride);
    int64_t r = std::min<int64_t>(sample - 1, 4 * half / stride + 16);  // descending rank
    std::nth_element(s.begin(), s.begin() + (sample - 1 - r), s.end());
    v = s[sample - 1 - r];
  }
  int nt = threads_for(ngaps, threads);
  std::vector<std::vector<int64_t>> parts(nt);
  std::vector<int64_t> cand;
  auto collect = [&](double lim) {
    parallel_for(nt, nt, [&](int64_t c) {
      auto& p = parts[c];
      p.clear();
      for (int64_t i = chunk_start(ngaps, nt, c), e = chunk_start(ngaps, nt, c + 1); i < e; ++i)
        if (gap(i) >= lim) p.push_back(i);
    });
    cand.clear();
    for (auto& p : parts) cand.insert(cand.end(), p.begin(), p.end());
  };
  collect(v);
  if (static_cast<int64_t>(cand.size()) < half) collect(-kInf);  // an unlucky sample
  int64_t nc = static_cast<int64_t>(cand.size());
  std::vector<double> g(nc);
  for (int64_t q = 0; q < nc; ++q) g[q] = gap(cand[q]);
  std::vector<double> sel(g);
  std::nth_element(sel.begin(), sel.begin() + (nc - half), sel.end());
  double t = sel[nc - half];  // the half-th widest gap
  int64_t ties = half;
  for (int64_t q = 0; q < nc; ++q) ties -= g[q] > t;
  std::vector<int64_t> wide;  // ascending, like the rank starts: merge the two
  wide.reserve(half);
  for (int64_t q = 0; q < nc; ++q)
    if (g[q] > t || (g[q] == t && ties-- > 0)) wide.push_back(cand[q] + 1);
  std::vector<int64_t> out(edges.size() + wide.size());
  out.erase(std::set_union(edges.begin(), edges.end(), wide.begin(), wide.end(), out.begin()),
            out.end());
  out.push_back(n);
  return out;
}

// The distinct values shifted by `shift`, with their weights: weight, w*x, w*x^2 per item.
template <class D>
struct Shifted {
  const D* d;
  double shift;
  double uc(int64_t i) const { return d->value(i) - shift; }
  void item(int64_t i, double* v) const {
    double x = uc(i), w = d->weight(i), b = w * x;
    v[0] = w;
    v[1] = b;
    v[2] = b * x;
  }
  void block(int64_t i, double (*v)[8]) const {
    for (int j = 0; j < 8; ++j) {
      double x = static_cast<double>(d->u[i + j]) - shift, w = static_cast<double>(d->ws[i + j]);
      double b = w * x;
      v[0][j] = w;
      v[1][j] = b;
      v[2][j] = b * x;
    }
  }
  Sum3 point(int64_t i) const {
    Sum3 p;
    item(i, p.v);
    return p;
  }
};

template <class D>
std::vector<Sum3> bin_sums(const Shifted<D>& s, const std::vector<int64_t>& edges, int threads) {
  int64_t nb = static_cast<int64_t>(edges.size()) - 1;
  std::vector<Sum3> agg(nb);
  int nt = threads_for(edges.back(), threads);
  int64_t chunks = nt == 1 ? 1 : std::min<int64_t>(nb, 32 * nt);
  parallel_for(chunks, nt, [&](int64_t c) {
    for (int64_t q = chunk_start(nb, chunks, c), e = chunk_start(nb, chunks, c + 1); q < e; ++q)
      reduceat<3>(s, edges[q], edges[q + 1], agg[q].v);
  });
  return agg;
}

// cumsum(ws) and cumsum(ws * uc) (the reference's PW and P1) stored every kCheckpoint values;
// at(b) continues the same sequential sums from the checkpoint below b, so it is exact.
template <class D>
struct Prefix2 {
  const Shifted<D>* s = nullptr;
  std::vector<double> pw, p1;
  void build(const Shifted<D>& sh, int64_t m) {
    s = &sh;
    pw.resize(m / kCheckpoint + 1);
    p1.resize(m / kCheckpoint + 1);
    pw[0] = p1[0] = 0.0;
    const D& d = *sh.d;
    double a = d.weight(0), b = d.weight(0) * sh.uc(0);  // cumsum starts from the first value
    for (int64_t i = 1, q = 1; q < static_cast<int64_t>(pw.size()); ++q) {
      for (int64_t e = q * kCheckpoint; i < e; ++i) {
        double w = d.weight(i);
        a = a + w;
        b = b + w * sh.uc(i);
      }
      pw[q] = a;
      p1[q] = b;
    }
  }
  void at(int64_t idx, double& a, double& b) const {
    const D& d = *s->d;
    int64_t q = idx / kCheckpoint, i = q * kCheckpoint;
    a = pw[q];
    b = p1[q];
    if (i == 0 && idx > 0) {
      a = d.weight(0);
      b = d.weight(0) * s->uc(0);
      i = 1;
    }
    for (; i < idx; ++i) {
      double w = d.weight(i);
      a = a + w;
      b = b + w * s->uc(i);
    }
  }
};

// Lloyd iterations moving the boundaries to the midpoints of the cluster means.
template <class D>
void lloyd_polish(const Shifted<D>& s, const Prefix2<D>& pre, int64_t m, int64_t k, int64_t* B) {
  std::vector<int64_t> nb(k + 1);
  std::vector<double> c(k), PWb(k + 1), P1b(k + 1);
  for (int64_t j = 0; j <= k; ++j) pre.at(B[j], PWb[j], P1b[j]);
  for (int it = 0; it < kLloydIters; ++it) {
    for (int64_t j = 0; j < k; ++j) c[j] = (P1b[j + 1] - P1b[j]) / (PWb[j + 1] - PWb[j]);
    nb[0] = B[0];
    nb[k] = B[k];
    for (int64_t j = 0; j + 1 < k; ++j) {
      double t = (c[j] + c[j + 1]) / 2;
      int64_t lo = 0, hi = m;  // the number of shifted values <= t
      while (lo < hi) {
        int64_t mid = (lo + hi) >> 1;
        if (s.uc(mid) <= t)
          lo = mid + 1;
        else
          hi = mid;
      }
      nb[j + 1] = lo;
    }
    bool moved = false, ordered = true;
    for (int64_t j = 0; j <= k; ++j) moved |= nb[j] != B[j];
    for (int64_t j = 0; j < k; ++j) ordered &= nb[j + 1] > nb[j];
    if (!(moved && ordered)) break;
    for (int64_t j = 0; j <= k; ++j)
      if (nb[j] != B[j]) {
        B[j] = nb[j];
        pre.at(B[j], PWb[j], P1b[j]);
      }
  }
}

// k+1 boundaries into the distinct values, m > k >= 2.
template <class D>
void solve_dp(const D& d, int64_t k, int64_t max_exact, int threads, int64_t* B) {
  int64_t m = d.m;
  // centring on the weighted median keeps the prefix sums of squares well conditioned
  double shift = d.median;
  if (!d.counts) {  // the first value whose cumulative weight reaches half the total
    std::vector<double> cw(m + 1);
    prefix([&](int64_t i) { return d.weight(i); }, m, cw.data());
    shift = d.value(std::lower_bound(cw.begin() + 1, cw.end(), cw[m] / 2) - (cw.begin() + 1));
  }
  Shifted<D> s{&d, shift};
  int64_t nbins = std::max(std::min(max_exact, kBins), 2 * k + 2);
  if (m <= std::max(max_exact, nbins)) {
    std::vector<double> a(m), b(m), c(m);
    for (int64_t i = 0; i < m; ++i) {
      double v[3];
      s.item(i, v);
      a[i] = v[0];
      b[i] = v[1];
      c[i] = v[2];
    }
    dp_exact(a.data(), b.data(), c.data(), m, k, B);
    return;
  }
  // the passes over the values that bin them use every thread; then the Lloyd prefix sums (one
  // long sequential pass) run on another thread while this one solves the DPs (serial too)
  std::vector<int64_t> e = bin_edges(d.u.get(), m, nbins, threads);
  std::vector<Sum3> agg = bin_sums(s, e, threads);
  Prefix2<D> pre;
  std::thread side;
  if (threads > 1)
    side = std::thread([&] { pre.build(s, m); });
  else
    pre.build(s, m);
  try {
    dp_on_bins(agg, e, k, B);
    for (int round = 0; round < kRefineRounds; ++round) {
      // re-solve with the bins around each boundary split: into their values where that is
      // cheap, else into sub-bins of `step` consecutive values, which the next round splits
      int64_t nb = static_cast<int64_t>(e.size()) - 1;
      std::vector<int64_t> win;
      for (int64_t j = 1; j < k; ++j) {
        int64_t cb = std::upper_bound(e.begin(), e.end(), B[j]) - e.begin() - 1;
        for (int64_t o = -kRefineBins; o < kRefineBins; ++o)
          win.push_back(std::clamp<int64_t>(cb + o, 0, nb - 1));
      }
      std::sort(win.begin(), win.end());
      win.erase(std::unique(win.begin(), win.end()), win.end());
      int64_t extra = 0, longest = 0;
      for (int64_t q : win) {
        extra += e[q + 1] - e[q];
        longest = std::max(longest, e[q + 1] - e[q]);
      }
      if (longest == 1) break;  // already split into values
      int64_t cap = std::max<int64_t>(nb, 2048), step = (extra + cap - 1) / cap;
      std::vector<int64_t> e2;
      std::vector<Sum3> agg2;
      size_t wi = 0;
      for (int64_t q = 0; q < nb; ++q) {
        if (wi < win.size() && win[wi] == q) {
          ++wi;
          for (int64_t i = e[q]; i < e[q + 1]; i += step) {
            e2.push_back(i);
            agg2.emplace_back();
            reduceat<3>(s, i, std::min(i + step, e[q + 1]), agg2.back().v);
          }
        } else {
          e2.push_back(e[q]);
          agg2.push_back(agg[q]);
        }
      }
      e2.push_back(m);
      dp_on_bins(agg2, e2, k, B);
      e.swap(e2);
      agg.swap(agg2);
    }
  } catch (...) {
    if (side.joinable()) side.join();
    throw;
  }
  if (side.joinable()) side.join();
  lloyd_polish(s, pre, m, k, B);
}

// ------------------------------------------------------------------------------------------
// labels

// out[i] = the number of thresholds (ascending) below x[i]: np.searchsorted(thr, x, "left").
template <class T, class L>
POCKETML_INLINE void count_below_impl(const T* x, int64_t n, const std::vector<T>& thr, L* out) {
  int64_t nt = static_cast<int64_t>(thr.size());
  if (nt <= 32) {
    constexpr int64_t block = 512;
    int32_t cnt[block];
    for (int64_t s = 0; s < n; s += block) {
      int64_t len = std::min(block, n - s);
      const T* xs = x + s;
      for (int64_t i = 0; i < len; ++i) cnt[i] = 0;
      for (int64_t j = 0; j < nt; ++j) {
        const T t = thr[j];
        for (int64_t i = 0; i < len; ++i) cnt[i] += xs[i] > t;
      }
      for (int64_t i = 0; i < len; ++i) out[s + i] = static_cast<L>(cnt[i]);
    }
    return;
  }
  int64_t p = 1;
  while (p < nt + 1) p <<= 1;
  std::vector<T> pad(p, std::numeric_limits<T>::infinity());
  std::copy(thr.begin(), thr.end(), pad.begin());
  for (int64_t i = 0; i < n; ++i) {
    int64_t pos = 0;
    for (int64_t step = p >> 1; step > 0; step >>= 1)
      pos += (pad[pos + step - 1] < x[i]) ? step : 0;
    out[i] = static_cast<L>(pos);
  }
}

// The labelling pass is a plain loop of comparisons: in 8 lanes with AVX2 where the CPU has it.
template <class T, class L>
void count_below_scalar(const T* x, int64_t n, const std::vector<T>& thr, L* out) {
  count_below_impl(x, n, thr, out);
}

#ifdef POCKETML_AVX2
template <class T, class L>
__attribute__((target("avx2"))) void count_below_avx2(const T* x, int64_t n,
                                                      const std::vector<T>& thr, L* out) {
  count_below_impl(x, n, thr, out);
}
#endif

template <class T, class L>
void count_below(const T* x, int64_t n, const std::vector<T>& thr, L* out) {
  const bool simd = use_simd();
#ifdef POCKETML_AVX2
  if (simd) return count_below_avx2(x, n, thr, out);
#endif
  (void)simd;
  count_below_scalar(x, n, thr, out);
}

// For values of type T: x > t exactly when x > below(t).
template <class T>
T below(double t) {
  if constexpr (std::is_same_v<T, double>) {
    return t;
  } else {
    float f = static_cast<float>(t);
    if (static_cast<double>(f) > t) f = std::nextafter(f, -std::numeric_limits<float>::infinity());
    return f;
  }
}

template <class T, class D, class L>
void assign_labels(const T* x, const double* w, int64_t n, const D& d,
                   const std::vector<int64_t>& B, const std::vector<double>& centers, int threads,
                   L* labels) {
  int64_t nc = static_cast<int64_t>(centers.size());
  // the partition's own labels: a value belongs to the cluster whose range holds it (the upper
  // ends are values of x, so exact in T)
  std::vector<T> thr(nc - 1);
  for (int64_t j = 0; j + 1 < nc; ++j) thr[j] = d.u[B[j + 1] - 1];
  int nt = threads_for(n, threads);
  int64_t chunks = nt == 1 ? 1 : 16 * nt;
  parallel_for(chunks, nt, [&](int64_t c) {
    int64_t a = chunk_start(n, chunks, c), b = chunk_start(n, chunks, c + 1);
    count_below(x + a, b - a, thr, labels + a);
  });
  if (w) {  // points of weight zero follow the nearest center (ties: the lower one)
    std::vector<T> mid(nc - 1);
    for (int64_t j = 0; j + 1 < nc; ++j) mid[j] = below<T>((centers[j] + centers[j + 1]) / 2);
    for (int64_t i = 0; i < n; ++i)
      if (w[i] == 0) count_below(x + i, 1, mid, labels + i);
  }
}

template <class D>
struct CenterSums {  // w*u and w per item
  const D* d;
  void item(int64_t i, double* v) const {
    double w = d->weight(i);
    v[0] = w * d->value(i);
    v[1] = w;
  }
  void block(int64_t i, double (*v)[8]) const {
    for (int j = 0; j < 8; ++j) {
      double w = static_cast<double>(d->ws[i + j]);
      v[0][j] = w * static_cast<double>(d->u[i + j]);
      v[1][j] = w;
    }
  }
};

template <class T, class W>
void solve_problem(const T* x, const double* w, int64_t n, int64_t k, int64_t max_exact,
                   int threads, KMeans1DResult& res) {
  Distinct<T, W> d;
  distinct_values(x, w, n, threads, d);
  int64_t m = d.m;
  std::vector<int64_t> B;
  if (m <= k) {
    B.resize(m + 1);
    std::iota(B.begin(), B.end(), int64_t(0));
  } else if (k == 1) {
    B = {0, m};
  } else {
    B.resize(k + 1);
    solve_dp(d, k, max_exact, threads, B.data());
  }
  int64_t nc = static_cast<int64_t>(B.size()) - 1;
  res.centers.resize(nc);
  CenterSums<Distinct<T, W>> cs{&d};
  parallel_for(nc, threads_for(m, threads), [&](int64_t j) {
    double s[2];
    reduceat<2>(cs, B[j], B[j + 1], s);
    res.centers[j] = s[0] / s[1];
  });
  if (res.labels8)
    assign_labels(x, w, n, d, B, res.centers, threads, res.labels8);
  else
    assign_labels(x, w, n, d, B, res.centers, threads, res.labels);
}

template <class T>
void solve_any(const T* x, const double* w, int64_t n, int64_t k, int64_t max_exact, int threads,
               KMeans1DResult& res) {
  if (n == 0) throw std::invalid_argument("kmeans_1d needs at least one value");
  if (!w && n <= std::numeric_limits<int32_t>::max())
    solve_problem<T, int32_t>(x, w, n, k, max_exact, threads, res);
  else
    solve_problem<T, double>(x, w, n, k, max_exact, threads, res);
}

}  // namespace

void kmeans_1d_many(const std::vector<KMeans1DProblem>& problems, int64_t k, int64_t max_exact,
                    int threads, std::vector<KMeans1DResult>& results) {
  if (k < 1) throw std::invalid_argument("k must be >= 1, got " + std::to_string(k));
  if (max_exact < 2)
    throw std::invalid_argument("max_exact must be >= 2, got " + std::to_string(max_exact));
  int64_t np = static_cast<int64_t>(problems.size());
  if (static_cast<int64_t>(results.size()) != np)
    throw std::invalid_argument("kmeans_1d_many: one result per problem");
  for (const KMeans1DResult& r : results)
    if (r.labels8 && k > 256) throw std::invalid_argument("uint8 labels need k <= 256");
  threads = std::max(threads, 1);
  // the biggest problems first, so that a slow one does not start last
  std::vector<int64_t> order(np);
  std::iota(order.begin(), order.end(), int64_t(0));
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return problems[a].n > problems[b].n; });
  int outer = np >= threads ? threads : 1;  // few problems: the threads work inside each
  int inner = outer == 1 ? threads : 1;
  parallel_for(np, outer, [&](int64_t q) {
    const KMeans1DProblem& p = problems[order[q]];
    KMeans1DResult& r = results[order[q]];
    if (p.x32)
      solve_any(p.x32, p.weights, p.n, k, max_exact, inner, r);
    else
      solve_any(p.x64, p.weights, p.n, k, max_exact, inner, r);
  });
}

}  // namespace pocketml
