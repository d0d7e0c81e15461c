// The drivers: dispatch by instruction set and format, activation preparation, threads.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "core/buffer.h"
#include "core/cpu.h"
#include "core/pool.h"
#include "kernels/linear/linear.h"
#if defined(__aarch64__) && defined(POCKETML_HAVE_NEON_KERNELS)
#include "kernels/linear/arm.h"
#endif

namespace pocketml {
namespace linear {
namespace {

struct Kernels {
  const RowKernels* rows;
  TileGemm tile;
};

Kernels select(const WeightView& w) {
#if defined(POCKETML_HAVE_AVX512_KERNELS)
  if (use_avx512vbmi())
    if (const RowKernels* k = avx512vbmi_kernels(w)) return {k, tile_gemm_avx2};
  if (use_avx512vnni())
    if (const RowKernels* k = avx512_kernels(w)) return {k, tile_gemm_avx2};
#endif
#if defined(POCKETML_HAVE_AVX2_KERNELS)
  if (use_avx2()) {
    const RowKernels* k = avx2_kernels(w);
    return {k ? k : &generic_kernels, tile_gemm_avx2};
  }
#endif
#if defined(__aarch64__) && defined(POCKETML_HAVE_NEON_KERNELS)
  if (use_neon()) {
    const RowKernels* k = neon_kernels(w);
    return {k ? k : &generic_kernels, tile_gemm_neon};
  }
#endif
  (void)w;
  return {&generic_kernels, tile_gemm_generic};
}

int64_t round_up(int64_t v, int64_t a) { return (v + a - 1) / a * a; }

// x row into the kernels' order (see RowKernels::permuted), zero-padded to kp columns.
void prepare_x(const float* x, int64_t K, bool permuted, float* xp, int64_t kp) {
  int64_t k = 0;
  if (permuted)
    for (; k + 16 <= K; k += 16)
      for (int j = 0; j < 8; ++j) {
        xp[k + j] = x[k + 2 * j];
        xp[k + 8 + j] = x[k + 2 * j + 1];
      }
  std::memcpy(xp + k, x + k, sizeof(float) * (K - k));
  std::fill(xp + K, xp + kp, 0.0f);
}

// Chunks per thread: enough to even out threads that start late or run slower.
constexpr int64_t kChunksPerThread = 4;
// Below this many multiply-adds a call runs on one thread: waking the others costs more.
constexpr int64_t kMinParallelWork = int64_t(1) << 16;

int threads_for(int threads, int64_t work) {
  if (threads <= 0) threads = default_threads();
  return work < kMinParallelWork ? 1 : threads;
}

}  // namespace

void finish(const Epilogue* ep, float* out, int64_t N, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  if (ep == nullptr || n0 >= n1) return;
  for (int64_t m = m0; m < m1; ++m) {
    float* o = out + m * N + n0;
    if (ep->residual) {
      const float* r = ep->residual + m * N + n0;
      for (int64_t n = 0; n < n1 - n0; ++n) o[n] += r[n];
    }
  }
  if (ep->has_act) activation::apply_rows(ep->act, out + m0 * N + n0, N, m1 - m0, n1 - n0, ep->act_exact);
}

namespace {

// ep over every row of out [M, N], rows over the threads.
void finish_rows(const Epilogue* ep, float* out, int64_t M, int64_t N, int threads) {
  if (ep == nullptr) return;
  parallel_for(M, std::max<int64_t>(1, (M + 2 * threads - 1) / (2 * std::max(threads, 1))), threads,
               [&](int64_t m0, int64_t m1) { finish(ep, out, N, m0, m1, 0, N); });
}

// Per-thread scratch (the decoded tile), kept between calls.
float* scratch(int64_t n) {
  thread_local std::vector<float> buf;
  if (static_cast<int64_t>(buf.size()) < n) buf.resize(static_cast<size_t>(n));
  return buf.data();
}

const FastKernels* select_fast(const WeightView& w) {
#if defined(POCKETML_HAVE_AVX512_KERNELS)
  if (use_avx512vbmi())
    if (const FastKernels* f = avx512vbmi_fast_kernels(w)) return f;
  if (use_avx512vnni())
    if (const FastKernels* f = avx512vnni_fast_kernels(w)) return f;
#endif
#if defined(POCKETML_HAVE_AVX2_KERNELS)
  if (use_avx2()) return avx2_fast_kernels(w);
#endif
#if defined(__aarch64__) && defined(POCKETML_HAVE_NEON_KERNELS)
  if (use_neon_dotprod())
    if (const FastKernels* f = neon_dotprod_fast_kernels(w)) return f;
  if (use_neon()) return neon_fast_kernels(w);
#endif
  (void)w;
  return nullptr;
}

// Chunks per thread of the int8 gemv: fewer, longer runs of consecutive rows than elsewhere, as
// its kernels prefetch within a chunk only (2 threads, weights from DRAM: 1 and 2 measured alike,
// 4 up to 25% slower on small layers).
constexpr int64_t kFastChunksPerThread = 2;

// Rows of weights per chunk of the int8 gemv: a multiple of the 4 rows its kernels interleave.
int64_t fast_grain(int64_t N, int threads) {
  const int64_t g = (N + kFastChunksPerThread * threads - 1) / (kFastChunksPerThread * threads);
  return std::max<int64_t>(16, round_up(g, 4));
}

// Below this many activation bytes the rows are quantized on the calling thread alone.
constexpr int64_t kMinParallelQuantize = int64_t(1) << 15;

// x's rows quantized to int8 blocks (see QuantRow) into the calling thread's buffer, which
// stays valid until its next call; over the threads for a prefill.
struct QuantizedX {
  uint8_t* q;
  float *scale, *ssum, *total;
  int64_t blocks;
  int32_t* isum;
};

QuantizedX quantize_x(const float* x, int64_t M, int64_t K, bool permuted, bool offset, int threads) {
  const int64_t blocks = K / kQBlock;
  // per row: q (blocks * 32 bytes), scale, ssum, isum [blocks], ssum_total
  thread_local std::vector<float> buf;
  const int64_t per_row = blocks * (kQBlock / 4 + 3) + 1;
  if (static_cast<int64_t>(buf.size()) < M * per_row)
    buf.resize(static_cast<size_t>(M * per_row));
  float* qbase = buf.data();
  QuantizedX r{reinterpret_cast<uint8_t*>(qbase), nullptr, nullptr, nullptr, blocks, nullptr};
  r.scale = qbase + M * blocks * (kQBlock / 4);
  r.ssum = r.scale + M * blocks;
  r.isum = reinterpret_cast<int32_t*>(r.ssum + M * blocks);
  r.total = reinterpret_cast<float*>(r.isum + M * blocks);
  auto quantize = [&](int64_t m0, int64_t m1) {
    for (int64_t m = m0; m < m1; ++m) {
      int8_t* qm = reinterpret_cast<int8_t*>(r.q + m * blocks * kQBlock);
#if defined(POCKETML_HAVE_AVX2_KERNELS)
      avx2_quantize_row(x + m * K, blocks, permuted, offset, qm, r.scale + m * blocks,
                        r.ssum + m * blocks, r.total + m, r.isum + m * blocks);
#endif
#if defined(__aarch64__) && defined(POCKETML_HAVE_NEON_KERNELS)
      neon_quantize_row(x + m * K, blocks, permuted, qm, r.scale + m * blocks, r.ssum + m * blocks,
                        r.total + m);  // never offset: no NEON GEMM (FastKernels::gemm) yet
#endif
      (void)qm;
    }
  };
  (void)offset;  // no int8 kernels for this CPU: quantize draws on neither
  (void)permuted;
  if (M * K < kMinParallelQuantize || threads <= 1)
    quantize(0, M);
  else
    parallel_for(M, (M + 2 * threads - 1) / (2 * threads), threads,
                 [&](int64_t m0, int64_t m1) { quantize(m0, m1); });
  return r;
}

// The decode rows of x (M <= kFastMaxM) as the gemv kernels take them.
void quant_rows(const QuantizedX& qx, const float* x, int64_t M, int64_t K, QuantRow* rows) {
  for (int64_t m = 0; m < M; ++m)
    rows[m] = QuantRow{reinterpret_cast<const int8_t*>(qx.q + m * qx.blocks * kQBlock),
                       qx.scale + m * qx.blocks, qx.ssum + m * qx.blocks, qx.total[m], x + m * K,
                       qx.isum + m * qx.blocks};
}

// The GEMM of the int8 path for `count` weights of the same K (a group reading one activation:
// q/k/v), their strips one after the other in one dispatch over the threads.
void gemm_strips(const FastKernels* const* f, const WeightView* const* w, int count, const QuantRows& rows,
                 int64_t M, const float* const* bias, float* const* out, int threads) {
  int64_t total = 0, bytes = 0;
  for (int i = 0; i < count; ++i) {
    const int64_t sr = f[i]->strip_rows;
    total += (w[i]->N + sr - 1) / sr;
    bytes = std::max(bytes, (kFastStripBytesPerBlock * (w[i]->K / kQBlock) + kFastStripBytesFixed) *
                                (sr / kFastStripRows));
  }
  parallel_for(total, 1, threads, [&](int64_t s0, int64_t s1) {
    // 64-byte aligned scratch
    float* raw = scratch(bytes / 4 + 16);
    void* aligned = reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(raw) + 63) & ~uintptr_t(63));
    int64_t base = 0;  // strips of the weights before i
    for (int i = 0; i < count && base < s1; ++i) {
      const int64_t sr = f[i]->strip_rows, n = (w[i]->N + sr - 1) / sr;
      for (int64_t s = std::max(s0, base); s < std::min(s1, base + n); ++s) {
        const int64_t n0 = (s - base) * sr;
        const int64_t n1 = std::min(w[i]->N, n0 + sr);
        f[i]->gemm(*w[i], rows, M, n0, n1, bias[i], out[i], aligned);
      }
      base += n;
    }
  });
}

// The int8-activation path: x quantized once (K floats per row; over the threads for a
// prefill), then the rows of W in chunks over the threads.
void gemm_fast(const FastKernels& f, const WeightView& w, const float* x, int64_t M,
               const float* bias, float* out, int threads, const Epilogue* ep) {
  const int64_t K = w.K;
  const bool tiled = M > kFastGemvMaxM && f.gemm;
  const bool permuted = tiled ? false : f.permuted, offset = tiled && f.gemm_unsigned;
  const QuantizedX qx = quantize_x(x, M, K, permuted, offset, threads);
  const int64_t blocks = qx.blocks;
  uint8_t* q = qx.q;
  float *scale = qx.scale, *ssum = qx.ssum, *total = qx.total;
  if (!tiled) {
    QuantRow rows[kFastMaxM];
    quant_rows(qx, x, M, K, rows);
    parallel_for(w.N, fast_grain(w.N, threads), threads, [&](int64_t n0, int64_t n1) {
      f.gemv(w, rows, M, n0, n1, bias, out);
      finish(ep, out, w.N, 0, M, n0, n1);
    });
    return;
  }
  const FastKernels* fs[1] = {&f};
  const WeightView* ws[1] = {&w};
  gemm_strips(fs, ws, 1, QuantRows{q, blocks * kQBlock, scale, ssum, total, x, K}, M, &bias, &out, threads);
}

}  // namespace

bool int8_gemm(const WeightView& w) {
  const FastKernels* f = select_fast(w);
  return f != nullptr && f->gemm != nullptr;
}

void gemm(const WeightView& w, const float* x, int64_t M, const float* bias, float* out,
          int threads, bool exact, const Epilogue* ep) {
  const int64_t N = w.N, K = w.K;
  if (M <= 0 || N <= 0) return;
  // The epilogue: decode rows finish each chunk of the weight's rows as it is computed; the
  // AVX-512 GEMM each register tile before storing it (the float32 activations; Whisper's
  // encoder: 10 % off its MLP's first layer); other prefills' outputs in one pass after, rows
  // over the threads (finishing each strip's block after it was stored measured slower: a
  // strip's columns are read 128 bytes per row).
  if (!exact) {
    const FastKernels* f = select_fast(w);
    if (f && (f->gemm || M <= kFastMaxM)) {
      const bool tiled = M > kFastGemvMaxM && f->gemm;
      threads = threads_for(threads, M * N * K);
      gemm_fast(*f, w, x, M, bias, out, threads, tiled ? nullptr : ep);
      if (tiled) finish_rows(ep, out, M, N, threads);
      return;
    }
  }
  const Kernels kern = select(w);
  const int64_t kp = round_up(K, kTileAlign);
  const bool permuted = kern.rows->permuted;
  threads = threads_for(threads, M * N * K);

  // Activations in the kernels' order and padded, unless they already are.
  Buffer<float> xbuf;
  const float* xp = x;
  if (permuted || kp != K) {
    xbuf = allocate<float>(M * kp);
    for (int64_t m = 0; m < M; ++m) prepare_x(x + m * K, K, permuted, xbuf.get() + m * kp, kp);
    xp = xbuf.get();
  }

  if (M == 1) {  // decode step: each weight row streamed once, decoded in registers
    const int64_t grain = std::max<int64_t>(8, (N + kChunksPerThread * threads - 1) /
                                                   (kChunksPerThread * threads));
    parallel_for(N, grain, threads, [&](int64_t n0, int64_t n1) {
      kern.rows->gemv(w, xp, n0, n1, bias, out);
      finish(ep, out, N, 0, 1, n0, n1);
    });
    return;
  }
#if defined(POCKETML_HAVE_AVX512_KERNELS)
  if (use_avx512vnni() && M >= kAvx512GemmMinM) {
    // the residual, and an activation in its float32 form, applied to the register tiles as they
    // are stored
    const bool fused = ep && (!ep->has_act || !ep->act_exact);
    const Act act = !fused || !ep->has_act ? Act::None : ep->act == activation::Kind::Silu ? Act::Silu : Act::Gelu;
    gemm_avx512(*kern.rows, w, xp, kp, M, bias, out, threads, fused ? ep->residual : nullptr, act);
    if (!fused) finish_rows(ep, out, M, N, threads);
    return;
  }
#endif
  // Strips of rows decoded into a per-thread tile (L2-sized), multiplied with every x row.
  const int64_t strips = (N + kStripRows - 1) / kStripRows;
  parallel_for(strips, 1, threads, [&](int64_t s0, int64_t s1) {
    float* tile = scratch(2 * kStripRows * kp);
    float* work = tile + kStripRows * kp;
    for (int64_t s = s0; s < s1; ++s) {
      const int64_t n0 = s * kStripRows, n1 = std::min(N, n0 + kStripRows), rows = n1 - n0;
      kern.rows->decode(w, n0, n1, tile, kp);
      for (int64_t m = 0; m < M; ++m) {
        float* o = out + m * N + n0;
        if (bias)
          std::memcpy(o, bias + n0, sizeof(float) * rows);
        else
          std::fill(o, o + rows, 0.0f);
      }
      kern.tile(xp, kp, M, tile, kp, rows, kp, out + n0, N, work);
    }
  });
  finish_rows(ep, out, M, N, threads);
}

void gemm_group(const WeightView* const* ws, int count, const float* x, int64_t M,
                const float* const* bias, float* const* out, int threads, bool exact) {
  if (M <= 0 || count <= 0) return;
  const int64_t K = ws[0]->K;
  const FastKernels* f[kMaxGroup];
  const bool tiled = M > kFastGemvMaxM;
  bool together = !exact && count <= kMaxGroup;
  int64_t rows = 0;
  for (int i = 0; together && i < count; ++i) {
    f[i] = select_fast(*ws[i]);
    together = f[i] && ws[i]->K == K &&
               (tiled ? f[i]->gemm && f[i]->gemm_unsigned == f[0]->gemm_unsigned
                      : f[i]->permuted == f[0]->permuted);
    rows += ws[i]->N;
  }
  if (!together) {
    for (int i = 0; i < count; ++i) gemm(*ws[i], x, M, bias[i], out[i], threads, exact);
    return;
  }
  threads = threads_for(threads, M * rows * K);
  if (tiled) {  // a prefill: the activations quantized once, every weight's strips in one dispatch
    const QuantizedX qx = quantize_x(x, M, K, false, f[0]->gemm_unsigned, threads);
    gemm_strips(f, ws, count, QuantRows{qx.q, qx.blocks * kQBlock, qx.scale, qx.ssum, qx.total, x, K}, M, bias,
                out, threads);
    return;
  }
  const QuantizedX qx = quantize_x(x, M, K, f[0]->permuted, false, threads);
  QuantRow qr[kFastMaxM];
  quant_rows(qx, x, M, K, qr);
  // the weights' rows one after the other, in chunks over the threads
  parallel_for(rows, fast_grain(rows, threads), threads, [&](int64_t r0, int64_t r1) {
    int64_t base = 0;
    for (int i = 0; i < count && base < r1; base += ws[i]->N, ++i) {
      const int64_t n0 = std::max<int64_t>(r0 - base, 0), n1 = std::min(r1 - base, ws[i]->N);
      if (n0 < n1) f[i]->gemv(*ws[i], qr, M, n0, n1, bias[i], out[i]);
    }
  });
}

void gather_rows(const WeightView& w, const int64_t* ids, int64_t L, float* out, int threads) {
  const int64_t K = w.K;
  threads = threads_for(threads, L * K);
  parallel_for(L, std::max<int64_t>(1, L / (kChunksPerThread * std::max(threads, 1))), threads,
               [&](int64_t i0, int64_t i1) {
                 for (int64_t i = i0; i < i1; ++i) decode_row(w, ids[i], 0, K, out + i * K);
               });
}

void decode_block(const WeightView& w, int64_t n0, int64_t n1, float* out) {
  // the instruction set's strip decoder: straight into out where its columns are in order and
  // rows need no padding, else into a tile, the columns put back in order where the kernels keep
  // them permuted (each 16-column chunk: even columns, then odd)
  const RowKernels& kern = *select(w).rows;
  const int64_t K = w.K, ldt = round_up(K, kTileAlign), body = K - K % 16;
  if (!kern.permuted && ldt == K) {
    kern.decode(w, n0, n1, out, K);
    return;
  }
  thread_local std::vector<float> tile;
  if (static_cast<int64_t>(tile.size()) < kStripRows * ldt) tile.resize(static_cast<size_t>(kStripRows * ldt));
  for (int64_t s0 = n0; s0 < n1; s0 += kStripRows) {
    const int64_t s1 = std::min(n1, s0 + kStripRows);
    kern.decode(w, s0, s1, tile.data(), ldt);
    for (int64_t n = s0; n < s1; ++n) {
      const float* t = tile.data() + (n - s0) * ldt;
      float* o = out + (n - n0) * K;
      if (!kern.permuted) {
        std::copy(t, t + K, o);
        continue;
      }
      for (int64_t c = 0; c < body; c += 16)
        for (int64_t j = 0; j < 8; ++j) {
          o[c + 2 * j] = t[c + j];
          o[c + 2 * j + 1] = t[c + 8 + j];
        }
      std::copy(t + body, t + K, o + body);
    }
  }
}

void decode_rows(const WeightView& w, float* out, int threads) {
  const int64_t N = w.N;
  threads = threads_for(threads, N * w.K);
  const int64_t strips = (N + kStripRows - 1) / kStripRows;
  parallel_for(strips, std::max<int64_t>(1, strips / (kChunksPerThread * std::max(threads, 1))), threads,
               [&](int64_t s0, int64_t s1) {
                 const int64_t n0 = s0 * kStripRows, n1 = std::min(N, s1 * kStripRows);
                 decode_block(w, n0, n1, out + n0 * w.K);
               });
}

}  // namespace linear
}  // namespace pocketml
