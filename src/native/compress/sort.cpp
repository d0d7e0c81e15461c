// Stable LSD radix sort over the bits in which the keys differ. Large inputs are first split by
// their top bits (an MSD pass, in parallel, stable), then each bucket is sorted in cache.
#include "compress/sort.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <numeric>
#include <vector>

#include "compress/threads.h"
#include "core/buffer.h"

namespace pocketml {
namespace {

constexpr int64_t kSmall = 48;         // insertion sort below this
constexpr int64_t kLsdOnly = 1 << 16;  // one LSD sort up to this size, else an MSD split first
constexpr int kMsdBits = 11;           // keys differing in fewer bits: one LSD sort
constexpr int kFineBits = 16;          // MSD: a histogram of the top 16 bits of the key range
constexpr int64_t kBucket = 2048;      // MSD: keys per bucket (sorted in L1/L2)
constexpr int64_t kMaxBuckets = 512;   // MSD: few enough buckets to scatter into efficiently
constexpr int64_t kChunk = 1 << 16;    // a thread's share of a pass is at least this long

template <class K>
int bit_length(K v) {
  int b = 0;
  for (; v; v >>= 1) ++b;
  return b;
}

// Branch-free float_key (the same keys; vectorisable).
inline uint32_t key_bits(float v) {
  uint32_t b;
  v += 0.0f;
  std::memcpy(&b, &v, 4);
  return b ^ (static_cast<uint32_t>(static_cast<int32_t>(b) >> 31) | 0x80000000u);
}
inline uint64_t key_bits(double v) {
  uint64_t b;
  v += 0.0;
  std::memcpy(&b, &v, 8);
  return b ^ (static_cast<uint64_t>(static_cast<int64_t>(b) >> 63) | 0x8000000000000000ull);
}

// How an LSD sort of n keys splits `bits` bits into passes: equal digits of at most 11 bits
// (fewer for small n, so the counts stay small next to the keys).
struct Digits {
  int passes, width;
  int64_t buckets;
};
inline Digits digits(int64_t n, int bits) {
  int maxw = std::clamp(bit_length(static_cast<uint64_t>(n)) - 1, 4, 11);
  int passes = (bits + maxw - 1) / maxw;
  int width = (bits + passes - 1) / passes;
  return {passes, width, int64_t(1) << width};
}

// Counts -> the offset where each bucket starts.
inline void exclusive_scan(int64_t* c, int64_t n) {
  int64_t sum = 0;
  for (int64_t b = 0; b < n; ++b) {
    int64_t t = c[b];
    c[b] = sum;
    sum += t;
  }
}

template <class K>
void insertion_sort(K* keys, uint32_t* pay, int64_t n) {
  for (int64_t i = 1; i < n; ++i) {
    K k = keys[i];
    uint32_t p = pay ? pay[i] : 0;
    int64_t j = i;
    for (; j > 0 && keys[j - 1] > k; --j) {
      keys[j] = keys[j - 1];
      if (pay) pay[j] = pay[j - 1];
    }
    keys[j] = k;
    if (pay) pay[j] = p;
  }
}

// Sorts keys (and pay) by the low `bits` bits of key - base, stably; tk/tp: scratch of n.
template <class K>
void lsd(K* keys, uint32_t* pay, K* tk, uint32_t* tp, int64_t n, K base, int bits) {
  if (n < 2 || bits == 0) return;
  if (n < kSmall) {
    insertion_sort(keys, pay, n);
    return;
  }
  const auto [passes, width, nbk] = digits(n, bits);
  K mask = static_cast<K>(nbk - 1);
  thread_local std::vector<int64_t> count;  // reused: a big sort calls this per bucket
  count.assign(passes * nbk, 0);
  for (int64_t i = 0; i < n; ++i) {
    K v = keys[i] - base;
    for (int p = 0; p < passes; ++p) ++count[p * nbk + ((v >> (p * width)) & mask)];
  }
  K* sk = keys;
  uint32_t* sp = pay;
  K* dk = tk;
  uint32_t* dp = tp;
  for (int p = 0; p < passes; ++p) {
    int64_t* c = &count[p * nbk];
    int s = p * width;
    if (c[((sk[0] - base) >> s) & mask] == n) continue;  // every key has this digit
    exclusive_scan(c, nbk);
    if (pay) {
      for (int64_t i = 0; i < n; ++i) {
        int64_t o = c[((sk[i] - base) >> s) & mask]++;
        dk[o] = sk[i];
        dp[o] = sp[i];
      }
    } else {
      for (int64_t i = 0; i < n; ++i) dk[c[((sk[i] - base) >> s) & mask]++] = sk[i];
    }
    std::swap(sk, dk);
    std::swap(sp, dp);
  }
  if (sk != keys) {
    std::copy(sk, sk + n, keys);
    if (pay) std::copy(sp, sp + n, pay);
  }
}

// The sorted keys of x straight into keys/index: an LSD sort whose first pass reads x, with the
// buffers alternated so that the last pass writes keys.
template <class T>
void lsd_from(const T* x, int64_t n, key_of<T>* keys, uint32_t* index, key_of<T> base, int bits) {
  using K = key_of<T>;
  if (n < kSmall || bits == 0) {
    for (int64_t i = 0; i < n; ++i) keys[i] = key_bits(x[i]);
    if (index) std::iota(index, index + n, 0u);
    insertion_sort(keys, index, n);
    return;
  }
  const auto [passes, width, nbk] = digits(n, bits);
  K mask = static_cast<K>(nbk - 1);
  std::vector<int64_t> count(passes * nbk, 0);
  for (int64_t i = 0; i < n; ++i) {
    K v = key_bits(x[i]) - base;
    for (int p = 0; p < passes; ++p) ++count[p * nbk + ((v >> (p * width)) & mask)];
  }
  std::vector<int> active;  // the passes whose digit is not the same for every key
  K first = key_bits(x[0]) - base;
  for (int p = 0; p < passes; ++p)
    if (count[p * nbk + ((first >> (p * width)) & mask)] != n) active.push_back(p);
  for (int p : active) {
    int64_t* c = &count[p * nbk];
    exclusive_scan(c, nbk);
  }
  Buffer<K> tk = allocate<K>(n);
  Buffer<uint32_t> tp;
  if (index) tp = allocate<uint32_t>(n);
  bool odd = active.size() % 2 == 1;
  K* dk = odd ? keys : tk.get();
  uint32_t* dp = odd ? index : tp.get();
  int s = active[0] * width;
  int64_t* c = &count[active[0] * nbk];
  for (int64_t i = 0; i < n; ++i) {
    K k = key_bits(x[i]);
    int64_t o = c[((k - base) >> s) & mask]++;
    dk[o] = k;
    if (index) dp[o] = static_cast<uint32_t>(i);
  }
  K* sk = dk;
  uint32_t* sp = dp;
  dk = odd ? tk.get() : keys;
  dp = odd ? tp.get() : index;
  for (size_t a = 1; a < active.size(); ++a) {
    s = active[a] * width;
    c = &count[active[a] * nbk];
    for (int64_t i = 0; i < n; ++i) {
      int64_t o = c[((sk[i] - base) >> s) & mask]++;
      dk[o] = sk[i];
      if (index) dp[o] = sp[i];
    }
    std::swap(sk, dk);
    std::swap(sp, dp);
  }
}

template <class T>
bool sort_impl(const T* x, int64_t n, key_of<T>* keys, uint32_t* index, int threads) {
  using K = key_of<T>;
  if (n == 0) return true;
  int nt = static_cast<int>(std::clamp<int64_t>(n / kChunk, 1, std::max(threads, 1)));
  // key range; NaN and infinity have keys beyond the infinities'
  std::vector<K> los(nt), his(nt);
  parallel_for(nt, nt, [&](int64_t c) {
    K lo = std::numeric_limits<K>::max(), hi = 0;
    for (int64_t i = chunk_start(n, nt, c), e = chunk_start(n, nt, c + 1); i < e; ++i) {
      K k = key_bits(x[i]);
      lo = std::min(lo, k);
      hi = std::max(hi, k);
    }
    los[c] = lo;
    his[c] = hi;
  });
  K lo = *std::min_element(los.begin(), los.end());
  K hi = *std::max_element(his.begin(), his.end());
  const T inf = std::numeric_limits<T>::infinity();
  if (lo <= key_bits(-inf) || hi >= key_bits(inf)) return false;
  int bits = bit_length(static_cast<K>(hi - lo));
  if (n <= kLsdOnly || bits <= kMsdBits) {
    lsd_from(x, n, keys, index, lo, bits);
    return true;
  }
  // MSD: count the top 16 bits of key - lo, group consecutive cells into buckets of about
  // `target` keys (a bigger cell is a bucket of its own), scatter into the buckets (per-chunk
  // offsets, bucket-major: stable), then sort each bucket in cache
  int shift = std::max(bits - kFineBits, 0);
  int64_t nf = static_cast<int64_t>((hi - lo) >> shift) + 1;
  std::vector<uint32_t> fine(nt * nf, 0);
  parallel_for(nt, nt, [&](int64_t c) {
    uint32_t* f = &fine[c * nf];
    for (int64_t i = chunk_start(n, nt, c), e = chunk_start(n, nt, c + 1); i < e; ++i)
      ++f[(key_bits(x[i]) - lo) >> shift];
  });
  const int64_t target = std::max<int64_t>(kBucket, n / kMaxBuckets);
  std::vector<uint32_t> bucket_of(nf);
  std::vector<int64_t> first_cell{0};
  int64_t acc = 0;
  for (int64_t f = 0; f < nf; ++f) {
    int64_t cnt = 0;
    for (int c = 0; c < nt; ++c) cnt += fine[c * nf + f];
    if (acc > 0 && acc + cnt > target) {
      first_cell.push_back(f);
      acc = 0;
    }
    acc += cnt;
    bucket_of[f] = static_cast<uint32_t>(first_cell.size() - 1);
  }
  first_cell.push_back(nf);
  int64_t nb = static_cast<int64_t>(first_cell.size()) - 1;
  std::vector<int64_t> count(nt * nb, 0), bstart(nb + 1, 0);
  for (int c = 0; c < nt; ++c)
    for (int64_t f = 0; f < nf; ++f) count[c * nb + bucket_of[f]] += fine[c * nf + f];
  int64_t sum = 0;
  for (int64_t b = 0; b < nb; ++b) {
    bstart[b] = sum;
    for (int c = 0; c < nt; ++c) {
      int64_t t = count[c * nb + b];
      count[c * nb + b] = sum;
      sum += t;
    }
  }
  bstart[nb] = n;
  parallel_for(nt, nt, [&](int64_t c) {
    int64_t* cc = &count[c * nb];
    for (int64_t i = chunk_start(n, nt, c), e = chunk_start(n, nt, c + 1); i < e; ++i) {
      K k = key_bits(x[i]);
      int64_t o = cc[bucket_of[(k - lo) >> shift]]++;
      keys[o] = k;
      if (index) index[o] = static_cast<uint32_t>(i);
    }
  });
  parallel_for(nb, threads, [&](int64_t b) {
    int64_t a = bstart[b], m = bstart[b + 1] - a;
    if (m < 2) return;
    K base = lo + (static_cast<K>(first_cell[b]) << shift);
    K span = static_cast<K>(first_cell[b + 1] - first_cell[b]) << shift;
    thread_local std::vector<K> tk;
    thread_local std::vector<uint32_t> tp;
    if (static_cast<int64_t>(tk.size()) < m) tk.resize(m);
    if (index && static_cast<int64_t>(tp.size()) < m) tp.resize(m);
    lsd(keys + a, index ? index + a : nullptr, tk.data(), index ? tp.data() : nullptr, m, base,
        bit_length(static_cast<K>(span - 1)));
    if (tk.size() > (size_t(1) << 18)) {  // not kept by the calling thread if big
      tk = std::vector<K>();
      tp = std::vector<uint32_t>();
    }
  });
  return true;
}

}  // namespace

bool sort_float_keys(const float* x, int64_t n, uint32_t* keys, uint32_t* index, int threads) {
  return sort_impl(x, n, keys, index, threads);
}
bool sort_float_keys(const double* x, int64_t n, uint64_t* keys, uint32_t* index, int threads) {
  return sort_impl(x, n, keys, index, threads);
}

}  // namespace pocketml
