// The driver (blocks of query rows over threads, masks, the safe softmax) and the portable
// primitives.
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

void dots_generic(const float* const* q, int rows, const float* k, int64_t ldk, int64_t n, int64_t E,
                  float* out, int64_t ldo) {
  for (int r = 0; r < rows; ++r)
    for (int64_t j = 0; j < n; ++j) out[r * ldo + j] = dot(q[r], k + j * ldk, E);
}

void wsum_generic(const float* p, int64_t ldp, int rows, const int32_t* keys, int64_t nk, const float* v,
                  int64_t ldv, int64_t Ev, const float* mul, float* const* out, bool) {
  for (int r = 0; r < rows; ++r) {
    float* o = out[r];
    std::memset(o, 0, sizeof(float) * Ev);
    for (int64_t t = 0; t < nk; ++t) {
      const float a = p[r * ldp + keys[t]];
      if (a == 0.0f) continue;
      const float* x = v + keys[t] * ldv;
      for (int64_t e = 0; e < Ev; ++e) o[e] += a * x[e];
    }
    for (int64_t e = 0; e < Ev; ++e) o[e] *= mul[r];
  }
}

float softmax_row(float* s, int64_t n, float scale, MaskKind kind, const void* mask, int64_t mj) {
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  if (kind == MaskKind::Float) {
    const float* mk = static_cast<const float*>(mask);
    for (int64_t j = 0; j < n; ++j) s[j] = s[j] * scale + mk[j * mj];
  } else if (kind == MaskKind::Bool) {
    const uint8_t* mk = static_cast<const uint8_t*>(mask);
    for (int64_t j = 0; j < n; ++j) s[j] = mk[j * mj] ? s[j] * scale : kNegInf;
  } else {
    for (int64_t j = 0; j < n; ++j) s[j] *= scale;
  }
  float m = kNegInf;
  bool nan = false;
  for (int64_t j = 0; j < n; ++j) {
    m = s[j] > m ? s[j] : m;
    nan |= s[j] != s[j];
  }
  if (nan || !std::isfinite(m)) return -1.0f;
  float sum = 0;
  for (int64_t j = 0; j < n; ++j) sum += (s[j] = std::exp(s[j] - m));
  std::fill(s + n, s + ((n + 7) & ~int64_t(7)), 0.0f);
  return sum;
}

void softmax_generic(float* s, int64_t lds, int rows, const int64_t* n, float scale, MaskKind kind,
                     const void* const* mask, int64_t mj, float* sum) {
  for (int r = 0; r < rows; ++r) sum[r] = softmax_row(s + r * lds, n[r], scale, kind, mask[r], mj);
}

int64_t live_keys_generic(const float* p, int64_t ldp, int rows, int64_t n, int32_t* keys) {
  int64_t nk = 0;
  for (int64_t j = 0; j < n; ++j) {
    bool any = false;
    for (int r = 0; r < rows; ++r) any |= p[r * ldp + j] != 0.0f;
    keys[nk] = static_cast<int32_t>(j);
    nk += any;
  }
  return nk;
}

const Primitives& select() {
#if defined(POCKETML_HAVE_AVX512_KERNELS) && defined(POCKETML_HAVE_AVX2_KERNELS)
  if (use_avx512vnni()) return avx512_primitives();
#endif
#if defined(POCKETML_HAVE_AVX2_KERNELS)
  if (use_avx2()) return avx2_primitives;
#endif
  return generic_primitives;
}

// multiply-adds below which one thread runs: a decode step's attention (one query row per head,
// a few hundred cached positions, ~10^5 multiply-adds) reads its keys and values from L3 or DRAM
// and gains from two threads' loads
constexpr int64_t kParallelWork = int64_t(1) << 15;
constexpr int64_t kChunkWork = int64_t(1) << 17;  // multiply-adds per chunk at least
constexpr int64_t kTransposeRows = 2 * kBlockRows;  // rows sharing keys from which they are transposed

// Floats per row of a block's scores: softmax writes whole vectors of eight.
int64_t scores_stride(int64_t S) { return (S + 7) & ~int64_t(7); }

// out[j * E + e] = q[j * ld + e] * scale[j * lds] for j < n, e < E (dequantize_rows' floats)
void dequantize(const int8_t* q, int64_t ld, const float* scale, int64_t lds, int64_t n, int64_t E, float* out) {
  for (int64_t j = 0; j < n; ++j) {
    const int8_t* r = q + j * ld;
    const float s = scale[j * lds];
    float* o = out + j * E;
    for (int64_t e = 0; e < E; ++e) o[e] = static_cast<float>(r[e]) * s;
  }
}

// Rows [t0, t1) of k/v head hk of batch b; its row t is query position t / group of query head
// hk * group + t % group, so a block holds neighbouring positions (similar causal lengths) and a
// decode step's block the heads of one group. sc: kBlockRows rows of S rounded up to 8 floats,
// keys: S ints, iota: 0 .. S - 1, kt: (S rounded up to 8, plus 8) x E floats of scratch, vc: S
// rows of Ev floats, kc: S rows of E (an int8 cache's keys, dequantized where a prefill reads
// them). Where a k/v head serves kTransposeRows rows or more, its keys are transposed once
// per chunk for the blocks (p.dots_t), and its values, where their rows are apart (the heads of a
// [L, H * Ev] projection), copied next to each other: the blocks then read 384 KiB of v rather
// than 256 B of every 4.5 KiB of a 7 MB projection (20 % of Whisper's encoder attention).
void head_rows(const SdpaArgs& a, const Primitives& p, int64_t b, int64_t hk, int64_t t0, int64_t t1,
               float* sc, int32_t* keys, const int32_t* iota, float* kt, float* vc, float* kc) {
  const int64_t group = a.Hq / a.Hk, ld = scores_stride(a.S);
  const int64_t nt = a.causal ? std::min(a.S, (t1 - 1) / group + 1) : a.S;  // keys attended at most
  // (decided per head, not per chunk: the sums, so the results, whatever the thread count)
  const bool transposed = p.dots_t != nullptr && group * a.L >= kTransposeRows;
  const int64_t ko = b * a.ks[0] + hk * a.ks[1], vo = b * a.vs[0] + hk * a.vs[1];
  // an int8 cache's rows read where they lie (a decode step's), else as floats dequantized once
  // for the chunk's blocks
  const int8_t* k8 = a.k8 && !transposed && p.dots8 ? a.k8 + ko : nullptr;
  const int8_t* v8 = a.v8 && !transposed && p.wsum8 ? a.v8 + vo : nullptr;
  const float* ksc = a.k8 ? a.ksc + b * a.kss[0] + hk * a.kss[1] : nullptr;
  const float* vsc = a.v8 ? a.vsc + b * a.vss[0] + hk * a.vss[1] : nullptr;
  const float* k = a.k8 ? kc : a.k + ko;
  const float* v = a.v8 ? vc : a.v + vo;
  const int64_t ldk = a.k8 ? a.E : a.ks[2];
  int64_t ldv = a.v8 ? a.Ev : a.vs[2];
  if (a.k8 && !k8) dequantize(a.k8 + ko, a.ks[2], ksc, a.kss[2], nt, a.E, kc);
  if (a.v8 && !v8) dequantize(a.v8 + vo, a.vs[2], vsc, a.vss[2], nt, a.Ev, vc);
  const int64_t ldt = scores_stride(nt);
  if (transposed) {
    p.transpose(k, ldk, nt, a.E, kt, ldt);
    if (ldv != a.Ev) {
      for (int64_t j = 0; j < nt; ++j) std::memcpy(vc + j * a.Ev, v + j * ldv, sizeof(float) * a.Ev);
      v = vc;
      ldv = a.Ev;
    }
  }
  // without a mask every key is live (a row that attends nothing gives 0 whatever its weights)
  const bool every = a.mask_kind == MaskKind::None && !a.causal;
  const float* q[kBlockRows];
  float* out[kBlockRows];
  float sum[kBlockRows];
  int64_t nr[kBlockRows];
  const void* mask[kBlockRows] = {};
  for (int64_t t = t0; t < t1; t += kBlockRows) {
    const int rows = static_cast<int>(std::min<int64_t>(kBlockRows, t1 - t));
    int64_t n = 0;
    for (int i = 0; i < rows; ++i) {
      const int64_t l = (t + i) / group, h = hk * group + (t + i) % group;
      q[i] = a.q + b * a.qs[0] + h * a.qs[1] + l * a.qs[2];
      out[i] = a.out + b * a.os[0] + h * a.os[1] + l * a.os[2];
      nr[i] = a.causal ? std::min(a.S, l + 1) : a.S;
      const int64_t mrow = b * a.ms[0] + h * a.ms[1] + l * a.ms[2];
      if (a.mask_kind == MaskKind::Float) mask[i] = static_cast<const float*>(a.mask) + mrow;
      if (a.mask_kind == MaskKind::Bool) mask[i] = static_cast<const uint8_t*>(a.mask) + mrow;
      n = std::max(n, nr[i]);
    }
    if (transposed)
      p.dots_t(q, rows, kt, ldt, n, a.E, sc, ld);
    else if (k8)
      p.dots8(q, rows, k8, a.ks[2], ksc, a.kss[2], n, a.E, sc, ld);
    else
      p.dots(q, rows, k, ldk, n, a.E, sc, ld);
    p.softmax(sc, ld, rows, nr, a.scale, a.mask_kind, mask, a.ms[3], sum);
    // keys past the row's causal end, and every key of a row that attends nothing: weight 0
    for (int i = 0; i < rows; ++i) {
      float* s = sc + i * ld;
      std::fill(s + (sum[i] < 0 ? 0 : nr[i]), s + n, 0.0f);
    }
    // the keys some row of the block attends (masked, padding, past the causal end: skipped)
    const int64_t nk = every ? n : p.live_keys(sc, ld, rows, n, keys);
    float mul[kBlockRows];
    for (int i = 0; i < rows; ++i) mul[i] = sum[i] > 0 ? 1.0f / sum[i] : 1.0f;
    if (v8)
      p.wsum8(sc, ld, rows, every ? iota : keys, nk, v8, a.vs[2], vsc, a.vss[2], a.Ev, mul, out);
    else
      p.wsum(sc, ld, rows, every ? iota : keys, nk, v, ldv, a.Ev, mul, out, !transposed && !a.v8);
    for (int i = 0; i < rows; ++i)
      if (sum[i] < 0) std::memset(out[i], 0, sizeof(float) * a.Ev);
  }
}

// Per-thread scratch for head_rows(): a block's scores, the keys it attends, 0 .. S - 1, the keys
// transposed, the values copied (or dequantized), the keys dequantized.
struct Scratch {
  std::vector<float> scores, kt, vc, kc;
  std::vector<int32_t> keys, iota;
  // E, Ev: 0 where no keys are transposed and no int8 rows dequantized; Ek: E with int8 keys
  void fit(int64_t S, int64_t E, int64_t Ev, int64_t Ek) {
    if (static_cast<int64_t>(keys.size()) < S) {
      scores.resize(static_cast<size_t>(scores_stride(S)) * kBlockRows);
      keys.resize(S);
      iota.resize(S);
      for (int64_t j = 0; j < S; ++j) iota[j] = static_cast<int32_t>(j);
    }
    // (rows of S rounded up to 8, or blocks of 16 keys: Primitives::transpose)
    if (static_cast<int64_t>(kt.size()) < (scores_stride(S) + 8) * E) kt.resize((scores_stride(S) + 8) * E);
    if (static_cast<int64_t>(vc.size()) < S * Ev) vc.resize(S * Ev);
    if (static_cast<int64_t>(kc.size()) < S * Ek) kc.resize(S * Ek);
  }
};

}  // namespace

const Primitives generic_primitives = {dots_generic,      nullptr,      nullptr, softmax_generic,
                                       live_keys_generic, wsum_generic, nullptr, nullptr};

void sdpa(const SdpaArgs& args, int threads) {
  SdpaArgs a = args;
  const int64_t R = a.B * a.Hq * a.L;
  if (R == 0 || a.Ev == 0) return;
  if (a.os[0] == 0 && a.os[1] == 0 && a.os[2] == 0) {
    a.os[2] = a.Ev;
    a.os[1] = a.L * a.Ev;
    a.os[0] = a.Hq * a.L * a.Ev;
  }
  if (a.S == 0) {
    for (int64_t b = 0; b < a.B; ++b)
      for (int64_t h = 0; h < a.Hq; ++h)
        for (int64_t l = 0; l < a.L; ++l)
          std::memset(a.out + b * a.os[0] + h * a.os[1] + l * a.os[2], 0, sizeof(float) * a.Ev);
    return;
  }
  const Primitives& p = select();
  const bool transposes = p.dots_t != nullptr && a.Hq / a.Hk * a.L >= kTransposeRows;  // as head_rows
  const int64_t heads = a.B * a.Hk;            // k/v heads
  const int64_t per_head = a.Hq / a.Hk * a.L;  // query rows per k/v head
  const int64_t per_row = a.S * (a.E + a.Ev) + 1;
  if (threads <= 0) threads = default_threads();
  if (threads <= 1 || R * per_row < kParallelWork) {
    thread_local Scratch scratch;
    scratch.fit(a.S, transposes ? a.E : 0, transposes || a.v8 ? a.Ev : 0, a.k8 ? a.E : 0);
    for (int64_t hh = 0; hh < heads; ++hh)
      head_rows(a, p, hh / a.Hk, hh % a.Hk, 0, per_head, scratch.scores.data(), scratch.keys.data(),
                scratch.iota.data(), scratch.kt.data(), scratch.vc.data(), scratch.kc.data());
    return;
  }
  // chunks of whole blocks of one k/v head, kChunkWork multiply-adds at least, and no more rows
  // than an even share: the pool's counter balances the rest (causal rows differ in work)
  // (or a quarter of an even share, whichever is more: each chunk transposes its keys once)
  int64_t chunk = std::max<int64_t>(1, kChunkWork / per_row);
  chunk = std::max(chunk, R / (4 * threads));
  chunk = std::min(chunk, (R + threads - 1) / threads);
  // a head's rows shared evenly by its chunks (Whisper's 1,500 rows: 2 x 750, not 1,128 + 372)
  const int64_t even = (per_head + std::min(chunk, per_head) - 1) / std::min(chunk, per_head);
  chunk = std::min(((per_head + even - 1) / even + kBlockRows - 1) / kBlockRows * kBlockRows, per_head);
  const int64_t chunks = (per_head + chunk - 1) / chunk;
  parallel_for(heads * chunks, 1, threads, [&](int64_t c0, int64_t c1) {
    thread_local Scratch scratch;
    scratch.fit(a.S, transposes ? a.E : 0, transposes || a.v8 ? a.Ev : 0, a.k8 ? a.E : 0);
    for (int64_t c = c0; c < c1; ++c) {
      const int64_t hh = c / chunks, t0 = c % chunks * chunk;
      head_rows(a, p, hh / a.Hk, hh % a.Hk, t0, std::min(per_head, t0 + chunk), scratch.scores.data(),
                scratch.keys.data(), scratch.iota.data(), scratch.kt.data(), scratch.vc.data(),
                scratch.kc.data());
    }
  });
}

}  // namespace attention
}  // namespace pocketml
