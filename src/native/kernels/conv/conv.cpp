// conv2d: picks the kernels for the CPU (core/cpu.h), splits the work over the pool and unfolds
// the input where a convolution is not depthwise or pointwise (see conv.h).
#include "kernels/conv/conv.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <utility>
#include <vector>

#include "core/cpu.h"
#include "core/pool.h"
#include "formats/weights.h"
#include "kernels/linear/linear.h"

namespace pocketml {
namespace conv {
namespace {

const Kernels& pick() {
#if defined(POCKETML_HAVE_AVX512_KERNELS)
  if (use_avx512vnni()) return avx512_kernels();
#endif
#if defined(POCKETML_HAVE_AVX2_KERNELS)
  if (use_avx2()) return avx2_kernels();
#endif
  return generic_kernels();
}

// Per-thread scratch, 64-byte aligned, kept between calls (one per use, so they never alias).
template <int kSlot>
float* scratch(int64_t n) {
  thread_local std::vector<float> buf;
  if (static_cast<int64_t>(buf.size()) < n + 16) buf.resize(static_cast<size_t>(n + 16));
  return reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(buf.data()) + 63) & ~uintptr_t(63));
}

float clipped(float v, const Epilogue& ep) {
  if (!ep.clip) return v;
  v = v < ep.lo ? ep.lo : v;
  return v > ep.hi ? ep.hi : v;
}

// A GEMM's left operand: rows of a float32 matrix, lda apart, or rows [row0, row0 + M) of a
// packed weight (a group's output channels).
struct Rows {
  const float* dense = nullptr;
  int64_t lda = 0;
  const WeightView* packed = nullptr;
  int64_t row0 = 0;
};

Rows group_rows(const Weight& w, int64_t g, int64_t og, int64_t K) {
  Rows r;
  if (w.packed) {
    r.packed = w.packed;
    r.row0 = g * og;
  } else {
    r.dense = w.dense + g * og * K;
    r.lda = K;
  }
  return r;
}

// C_i [M, N] = A [M, K] . B_i [K, N] + bias, clipped, for each of `images` pairs (B_i's rows at
// B[i K ...], C_i at C + i cstride): the images' column strips and blocks of rows of C over the
// threads (at least ~4 tasks a thread where the shape allows). A packed A: a task is a block of
// rows, decoded into this thread's cache once, times a run of the images' strips.
void gemm(const Kernels& k, const Rows& A, const float* const* B, int64_t images, int64_t cstride, int64_t M,
          int64_t N, int64_t K, const float* bias, const Epilogue& ep, float* C, int64_t ldc, int threads) {
  if (M <= 0 || N <= 0 || images <= 0) return;
  if (K == 0) {
    for (int64_t i = 0; i < images; ++i) {
      for (int64_t m = 0; m < M; ++m)
        std::fill(C + i * cstride + m * ldc, C + i * cstride + m * ldc + N, clipped(bias ? bias[m] : 0.0f, ep));
      if (ep.act) activation::apply_rows(ep.kind, C + i * cstride, ldc, M, N, ep.exact);
    }
    return;
  }
  const int64_t nt = threads > 0 ? threads : default_threads();
  const int64_t strips = (N + k.strip - 1) / k.strip, units = images * strips;  // (image, strip) pairs
  int64_t mblocks = std::min((4 * nt + units - 1) / units, (M + k.mr - 1) / k.mr);
  int64_t mb = ((M + mblocks - 1) / mblocks + k.mr - 1) / k.mr * k.mr;
  if (A.packed)  // blocks of rows decoded once each: ~2 a thread at least, each at most ~256 KiB
    mb = std::min(std::max<int64_t>(1, (int64_t(1) << 16) / K / k.mr) * k.mr,
                  ((M + 2 * nt - 1) / (2 * nt) + k.mr - 1) / k.mr * k.mr);
  mblocks = (M + mb - 1) / mb;
  // ~64 K multiply-adds a task at least: a small layer runs on one thread
  const int64_t grain = std::max<int64_t>(1, (1 << 16) / std::max<int64_t>(1, mb * k.strip * K));
  const int64_t panel = k.panel_floats(K);
  const bool dots = k.dot_cols > 0 && K * k.dot_cols <= panel;  // narrow strips as dot products
  // rows [m0, m1) of C_i's strip of unit u, A's row m0 at a
  const auto tile = [&](const float* a, int64_t lda, int64_t m0, int64_t m1, int64_t u, float* p) {
    const int64_t i = u / strips, n0 = u % strips * k.strip, n1 = std::min(N, n0 + k.strip);
    float* c = C + i * cstride + m0 * ldc;
    (dots && n1 - n0 <= k.dot_cols ? k.gemm_dots : k.gemm_tile)(a, lda, B + i * K, K, 0, m1 - m0, n0, n1,
                                                                 bias ? bias + m0 : nullptr, ep, c, ldc, p);
    if (ep.act) activation::apply_rows(ep.kind, c + n0, ldc, m1 - m0, n1 - n0, ep.exact);
  };
  if (!A.packed) {
    parallel_for(units * mblocks, grain, threads, [&](int64_t t0, int64_t t1) {
      float* p = scratch<0>(panel);
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t m0 = t % mblocks * mb;
        tile(A.dense + m0 * A.lda, A.lda, m0, std::min(M, m0 + mb), t / mblocks, p);
      }
    });
    return;
  }
  // runs of units per block: more than one only where there are too few blocks for the threads
  const int64_t runs = std::max<int64_t>(1, std::min(units, (2 * nt + mblocks - 1) / mblocks));
  const int64_t per = (units + runs - 1) / runs;
  parallel_for(mblocks * runs, std::max<int64_t>(1, grain / per), threads, [&](int64_t t0, int64_t t1) {
    float* p = scratch<0>(panel);
    float* a = scratch<5>(mb * K);
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t m0 = t / runs * mb, m1 = std::min(M, m0 + mb), r = t % runs;
      linear::decode_block(*A.packed, A.row0 + m0, A.row0 + m1, a);
      for (int64_t u = r * per; u < std::min(units, (r + 1) * per); ++u) tile(a, K, m0, m1, u, p);
    }
  });
}

// The whole weight in float32: w's own, or decoded into the calling thread's scratch (a
// depthwise kernel's few taps a channel).
const float* dense_of(const Weight& w, int threads) {
  if (!w.packed) return w.dense;
  float* d = scratch<6>(w.packed->N * w.packed->K);
  linear::decode_rows(*w.packed, d, threads);
  return d;
}

// cols [cg KH KW, (oy1 - oy0) OW] of one image and group for output rows [oy0, oy1): row
// (c, ky, kx) holds input channel c at the tap's position for each output pixel (zero in the
// padding).
void im2col(const Shape& s, const float* x, int64_t cg, int64_t oy0, int64_t oy1, float* cols, int threads) {
  const int64_t rows = cg * s.KH * s.KW, P = (oy1 - oy0) * s.OW;
  parallel_for(rows, std::max<int64_t>(1, 4096 / std::max<int64_t>(P, 1)), threads, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t c = r / (s.KH * s.KW), ky = r / s.KW % s.KH, kx = r % s.KW;
      const float* plane = x + c * s.H * s.W;
      float* dst = cols + r * P - oy0 * s.OW;
      // output columns whose input column ox * sw + kx * dw - pw lies inside [0, W)
      const int64_t off = kx * s.dw - s.pw;
      const int64_t lo = off >= 0 ? 0 : (-off + s.sw - 1) / s.sw;
      const int64_t hi = s.W - off <= 0 ? 0 : std::min(s.OW, (s.W - off - 1) / s.sw + 1);
      for (int64_t oy = oy0; oy < oy1; ++oy) {
        float* d = dst + oy * s.OW;
        const int64_t iy = oy * s.sh + ky * s.dh - s.ph;
        if (iy < 0 || iy >= s.H || hi <= lo) {
          std::fill(d, d + s.OW, 0.0f);
          continue;
        }
        const float* src = plane + iy * s.W + off;
        std::fill(d, d + lo, 0.0f);
        if (s.sw == 1) {
          std::memcpy(d + lo, src + lo, static_cast<size_t>(hi - lo) * sizeof(float));
        } else {
          for (int64_t ox = lo; ox < hi; ++ox) d[ox] = src[ox * s.sw];
        }
        std::fill(d + hi, d + s.OW, 0.0f);
      }
    }
  });
}

// The zero-padded rows (Wp columns) of a 1-D convolution's cg channels, each split into s.sw
// phases of Wq columns (phase f of channel c at rows + (c sw + f) Wq: padded columns f, f + sw, ...,
// zeros past Wp).
void phases(const Shape& s, const float* x, int64_t cg, int64_t Wp, int64_t Wq, float* rows, int threads) {
  const int64_t lo = std::min(s.pw, Wp), hi = std::min(Wp, s.pw + s.W);  // where x lies in the padded row
  parallel_for(cg, std::max<int64_t>(1, 8192 / std::max<int64_t>(Wp, 1)), threads, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      const float* xc = x + c * s.W;  // padded column i at xc[i - pw] for lo <= i < hi
      float* row = rows + c * s.sw * Wq;
      if (s.sw == 1) {
        std::fill(row, row + lo, 0.0f);
        if (hi > lo) std::memcpy(row + lo, xc + (lo - s.pw), static_cast<size_t>(hi - lo) * sizeof(float));
        std::fill(row + std::max(lo, hi), row + Wq, 0.0f);
        continue;
      }
      for (int64_t f = 0; f < s.sw; ++f) {
        float* ph = row + f * Wq;
        // phase column t is padded column t sw + f: inside x for t0 <= t < t1
        const int64_t t0 = std::min(Wq, std::max<int64_t>(0, (lo - f + s.sw - 1) / s.sw));
        const int64_t t1 = std::max(t0, std::min(Wq, std::max<int64_t>(0, (hi - f + s.sw - 1) / s.sw)));
        std::fill(ph, ph + t0, 0.0f);
        for (int64_t t = t0; t < t1; ++t) ph[t] = xc[t * s.sw + f - s.pw];
        std::fill(ph + t1, ph + Wq, 0.0f);
      }
    }
  });
}

bool use_blocks(const Kernels& k, const Shape& s) {
  // wide rows at stride 1 stream plane by plane (full vectors, no transposes); the rest (narrow
  // planes, strides) in blocks of channels (measured on EfficientNet-Lite0's layers)
  return k.block > 0 && !(s.sw == 1 && s.OW >= 3 * k.block);
}

// Depthwise s over one image's C planes (x, out: [C][plane]), on this thread.
void depthwise_image(const Kernels& k, const Shape& s, const float* x, const float* w, const float* bias,
                     const Epilogue& ep, float* out, float* buf) {
  const int64_t taps = s.KH * s.KW, HW = s.H * s.W, P = s.OH * s.OW;
  if (use_blocks(k, s)) {
    for (int64_t c0 = 0; c0 < s.C; c0 += k.block)
      k.depthwise_block(s, x + c0 * HW, std::min(k.block, s.C - c0), w + c0 * taps, bias ? bias + c0 : nullptr,
                        ep, out + c0 * P, buf);
  } else {
    for (int64_t c = 0; c < s.C; ++c)
      k.depthwise(s, x + c * HW, w + c * taps, bias ? bias[c] : 0.0f, ep, out + c * P, buf);
  }
}

}  // namespace

bool fuses_with_depthwise(const Shape& pw, const Shape& dw) {
  return pw.KH == 1 && pw.KW == 1 && pw.sh == 1 && pw.sw == 1 && pw.ph == 0 && pw.pw == 0 && pw.groups == 1 &&
         pw.OH == pw.H && pw.OW == pw.W && dw.groups == dw.C && dw.Cout == dw.C && dw.C == pw.Cout &&
         dw.N == pw.N && dw.H == pw.OH && dw.W == pw.OW && dw.OH > 0 && dw.OW > 0;
}

void pointwise_depthwise(const Shape& pw, const float* x, Weight w1, const float* b1, const Epilogue& e1,
                         const Shape& dw, Weight w2, const float* b2, const Epilogue& e2, float* out, int threads) {
  const Kernels& k = pick();
  const int64_t HW = pw.H * pw.W, P = dw.OH * dw.OW, C = dw.C, W = dw.W;
  if (pw.N == 0 || C == 0 || P == 0) return;
  // under 1 MiB the pointwise output stays in cache anyway (bands would only add halo rows); too
  // few rows to share out: the two convolutions one after the other
  if (C * HW < (int64_t(1) << 18) || dw.OH < 4 * std::max(threads <= 0 ? default_threads() : threads, 1)) {
    float* mid = scratch<3>(pw.N * C * HW);
    conv2d(pw, x, w1, b1, e1, mid, threads);
    conv2d(dw, mid, w2, b2, e2, out, threads);
    return;
  }
  // output rows per band: the band's pointwise rows (C x rows_in x W floats) in ~1 MiB
  const auto rows_in = [&](int64_t r) { return (r - 1) * dw.sh + (dw.KH - 1) * dw.dh + 1; };
  int64_t R = 1;
  while (R < dw.OH && C * rows_in(R + 1) * W <= (int64_t(1) << 18)) ++R;
  const int64_t nt = threads <= 0 ? default_threads() : threads;
  R = std::min(R, std::max<int64_t>(1, (dw.OH + 2 * nt - 1) / (2 * nt)));
  const int64_t bands = (dw.OH + R - 1) / R;
  const float* dense2 = dense_of(w2, threads);
  // a packed pointwise weight: decoded once per call by each thread that runs a band
  static std::atomic<uint64_t> calls{0};
  const uint64_t call = w1.packed ? ++calls : 0;
  parallel_for(pw.N * bands, 1, threads, [&](int64_t t0, int64_t t1) {
    const float* dense1 = w1.dense;
    if (w1.packed) {
      thread_local uint64_t decoded = 0;
      float* d = scratch<7>(C * pw.C);
      if (decoded != call) linear::decode_block(*w1.packed, 0, C, d);
      decoded = call;
      dense1 = d;
    }
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t n = t / bands, oy0 = t % bands * R, oy1 = std::min(dw.OH, oy0 + R);
      const int64_t lo = oy0 * dw.sh - dw.ph, hi = (oy1 - 1) * dw.sh - dw.ph + (dw.KH - 1) * dw.dh + 1;
      const int64_t iy0 = std::max<int64_t>(0, lo), iy1 = std::min(dw.H, hi), rows = std::max<int64_t>(0, iy1 - iy0);
      Shape bs = dw;  // the band: its input rows [iy0, iy1), output rows [oy0, oy1)
      bs.N = 1;
      bs.H = rows;
      bs.OH = oy1 - oy0;
      bs.ph = iy0 - lo;
      float* mid = scratch<3>(C * rows * W);
      float* panel = scratch<0>(k.panel_floats(pw.C));
      const float* xb = x + n * pw.C * HW + iy0 * W;
      thread_local std::vector<const float*> brows;
      brows.resize(static_cast<size_t>(pw.C));
      for (int64_t c = 0; c < pw.C; ++c) brows[static_cast<size_t>(c)] = xb + c * HW;
      for (int64_t n0 = 0; n0 < rows * W; n0 += k.strip)
        k.gemm_tile(dense1, pw.C, brows.data(), pw.C, 0, C, n0, std::min(rows * W, n0 + k.strip), b1, e1, mid,
                    rows * W, panel);
      float* band = scratch<4>(C * bs.OH * dw.OW);
      depthwise_image(k, bs, mid, dense2, b2, e2, band,
                      scratch<1>(use_blocks(k, bs) ? k.depthwise_block_floats(bs) : k.depthwise_floats(bs)));
      for (int64_t c = 0; c < C; ++c)
        std::memcpy(out + (n * C + c) * P + oy0 * dw.OW, band + c * bs.OH * dw.OW,
                    static_cast<size_t>(bs.OH * dw.OW) * sizeof(float));
    }
  });
}

const char* make_shape(int spatial, const int64_t* x, const int64_t* w, const int64_t* strides,
                       const int64_t* pads, const int64_t* dilations, int64_t groups, Shape* s) {
  if (spatial != 1 && spatial != 2) return "only 1-D and 2-D convolutions";
  const int64_t one[2] = {1, 1}, zero[4] = {0, 0, 0, 0};
  // 1-D: H = 1 with a kernel of height 1
  const int64_t* xs = spatial == 2 ? x + 2 : one;
  const int64_t* ws = spatial == 2 ? w + 2 : one;
  const int64_t* st = spatial == 2 ? strides : one;
  const int64_t* di = spatial == 2 ? dilations : one;
  const int64_t* pd = spatial == 2 ? pads : zero;
  const int64_t xl = x[spatial + 1], wl = w[spatial + 1];
  const int64_t sl = strides[spatial - 1], dl = dilations[spatial - 1];
  const int64_t pl0 = pads[2 * spatial - 2], pl1 = pads[2 * spatial - 1];
  *s = Shape{x[0], x[1], xs[0], xl, w[0], ws[0], wl, 0, 0, st[0], sl, di[0], dl, pd[0], pl0, groups, false};
  for (int64_t v : {s->N, s->C, s->H, s->W, s->Cout, s->KH, s->KW, w[1]})
    if (v < 0) return "negative size";
  if (s->KH < 1 || s->KW < 1) return "empty kernel";
  if (s->sh < 1 || s->sw < 1 || s->dh < 1 || s->dw < 1) return "strides and dilations must be >= 1";
  if (s->ph < 0 || s->pw < 0 || pd[1] < 0 || pl1 < 0) return "negative padding";
  if (groups < 1 || s->C % groups || s->Cout % groups || w[1] != s->C / groups)
    return "channels do not match the weight and groups";
  const int64_t span_h = s->dh * (s->KH - 1) + 1, span_w = s->dw * (s->KW - 1) + 1;
  const int64_t th = s->H + s->ph + pd[1] - span_h, tw = s->W + s->pw + pl1 - span_w;
  if (th < 0 || tw < 0) return "kernel larger than the padded input";
  s->OH = th / s->sh + 1;
  s->OW = tw / s->sw + 1;
  if (s->W == 1 && s->KW == 1 && s->OW == 1 && s->pw == 0 && s->H > 1) {
    // a (k, 1) kernel over (H, 1) maps (CREPE's): the same memory as a 1-D convolution along H,
    // which unfolds rows of OH pixels rather than OH rows of one
    std::swap(s->H, s->W), std::swap(s->KH, s->KW), std::swap(s->OH, s->OW);
    std::swap(s->sh, s->sw), std::swap(s->dh, s->dw), std::swap(s->ph, s->pw);
    s->swapped = true;
  }
  return nullptr;
}

// A convolution with few output pixels an image (a 1-D model's strided tail, Silero VAD's 4, 2
// and 1): the linear kernels over the patches, one a row (all images' at once), where a GEMM tile
// of output pixels would stay mostly empty.
constexpr int64_t kFewPixels = 8;

void few_pixels(const Shape& s, const float* x, const Weight& w, const float* bias, const Epilogue& ep,
                float* out, int threads) {
  const int64_t cg = s.C / s.groups, og = s.Cout / s.groups, K = cg * s.KH * s.KW, P = s.OH * s.OW;
  const int64_t M = s.N * P;
  std::vector<float> patches(static_cast<size_t>(M * K)), res(static_cast<size_t>(M * og));
  const float* dense = s.groups == 1 && w.packed ? nullptr : dense_of(w, threads);
  for (int64_t g = 0; g < s.groups; ++g) {
    for (int64_t n = 0; n < s.N; ++n)
      for (int64_t oy = 0; oy < s.OH; ++oy)
        for (int64_t ox = 0; ox < s.OW; ++ox) {
          float* row = patches.data() + ((n * s.OH + oy) * s.OW + ox) * K;
          for (int64_t c = 0; c < cg; ++c) {
            const float* plane = x + (n * s.C + g * cg + c) * s.H * s.W;
            for (int64_t ky = 0; ky < s.KH; ++ky) {
              const int64_t iy = oy * s.sh + ky * s.dh - s.ph;
              for (int64_t kx = 0; kx < s.KW; ++kx) {
                const int64_t ix = ox * s.sw + kx * s.dw - s.pw;
                *row++ = iy >= 0 && iy < s.H && ix >= 0 && ix < s.W ? plane[iy * s.W + ix] : 0.0f;
              }
            }
          }
        }
    WeightView wv;
    wv.kind = WeightKind::F32;
    wv.N = og;
    wv.K = K;
    wv.nbits = 32;
    wv.data = reinterpret_cast<const uint8_t*>(dense + g * og * K);
    // one group: the linear kernels on the packed weight itself
    linear::gemm(s.groups == 1 && w.packed ? *w.packed : wv, patches.data(), M, bias ? bias + g * og : nullptr,
                 res.data(), threads);
    for (int64_t n = 0; n < s.N; ++n)
      for (int64_t c = 0; c < og; ++c) {
        float* o = out + (n * s.Cout + g * og + c) * P;
        for (int64_t p = 0; p < P; ++p) o[p] = clipped(res[(n * P + p) * og + c], ep);
      }
  }
}

void conv2d(const Shape& s, const float* x, Weight wt, const float* bias, const Epilogue& ep, float* out,
            int threads) {
  const Kernels& k = pick();
  const int64_t P = s.OH * s.OW, HW = s.H * s.W;
  if (s.N == 0 || s.Cout == 0 || P == 0) return;
  const bool depthwise = s.groups == s.C && s.Cout == s.C;
  if (ep.act && (depthwise || (P <= kFewPixels && s.Cout / s.groups >= 8))) {  // no GEMM tiles: after
    Epilogue clip = ep;
    clip.act = false;
    conv2d(s, x, wt, bias, clip, out, threads);
    activation::apply(ep.kind, out, out, s.N * s.Cout * P, threads, nullptr, ep.exact);
    return;
  }
  const float* w = depthwise ? dense_of(wt, threads) : nullptr;
  if (depthwise && use_blocks(k, s)) {
    const int64_t taps = s.KH * s.KW, floats = k.depthwise_block_floats(s), blocks = (s.C + k.block - 1) / k.block;
    const int64_t grain = std::max<int64_t>(1, (1 << 15) / std::max<int64_t>(1, P * taps * k.block));
    parallel_for(s.N * blocks, grain, threads, [&](int64_t t0, int64_t t1) {
      float* buf = scratch<1>(floats);
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t n = t / blocks, c0 = t % blocks * k.block, cb = std::min(k.block, s.C - c0);
        k.depthwise_block(s, x + (n * s.C + c0) * HW, cb, w + c0 * taps, bias ? bias + c0 : nullptr, ep,
                          out + (n * s.C + c0) * P, buf);
      }
    });
    return;
  }
  if (depthwise) {  // plane by plane
    const int64_t taps = s.KH * s.KW, floats = k.depthwise_floats(s);
    const int64_t grain = std::max<int64_t>(1, (1 << 15) / std::max<int64_t>(1, P * taps));
    parallel_for(s.N * s.C, grain, threads, [&](int64_t p0, int64_t p1) {
      float* buf = scratch<1>(floats);
      for (int64_t p = p0; p < p1; ++p) {
        const int64_t c = p % s.C;
        k.depthwise(s, x + p * HW, w + c * taps, bias ? bias[c] : 0.0f, ep, out + p * P, buf);
      }
    });
    return;
  }
  if (P <= kFewPixels && s.Cout / s.groups >= 8) return few_pixels(s, x, wt, bias, ep, out, threads);
  const int64_t cg = s.C / s.groups, og = s.Cout / s.groups, K = cg * s.KH * s.KW;
  const bool pointwise = s.KH == 1 && s.KW == 1 && s.sh == 1 && s.sw == 1 && s.ph == 0 && s.pw == 0 &&
                         s.OH == s.H && s.OW == s.W;
  // a 1-D convolution reads each tap as its input row shifted: B's row (c, kx) is the zero-padded
  // row c from kx * dw on, nothing unfolded (CREPE's 64-tap layers, Whisper's first); at stride
  // sw the padded row split into sw phases (phase f: columns f, f + sw, ...), tap kx reading phase
  // kx * dw % sw from kx * dw / sw on (Whisper's second: a third of the copying of an unfolding)
  const bool shifted = !pointwise && s.H == 1 && s.KH == 1;
  const int64_t Wp = (s.OW - 1) * s.sw + (s.KW - 1) * s.dw + 1;  // the padded row a shifted conv reads
  const int64_t Wq = (Wp + s.sw - 1) / s.sw;                      // a phase of it
  // an unfolded input at most ~16 MiB: bands of output rows where it would be more
  const int64_t band = std::max<int64_t>(1, std::min(s.OH, (int64_t(1) << 22) / std::max<int64_t>(1, K * s.OW)));
  float* cols = pointwise ? nullptr : scratch<2>(shifted ? cg * s.sw * Wq : K * band * s.OW);  // the calling thread's
  if (pointwise) {  // every image's map at once: a packed weight decoded once per call
    std::vector<const float*> brows(static_cast<size_t>(s.N * K));
    for (int64_t g = 0; g < s.groups; ++g) {
      for (int64_t n = 0; n < s.N; ++n)
        for (int64_t r = 0; r < K; ++r) brows[static_cast<size_t>(n * K + r)] = x + (n * s.C + g * cg + r) * HW;
      gemm(k, group_rows(wt, g, og, K), brows.data(), s.N, s.Cout * P, og, P, K, bias ? bias + g * og : nullptr, ep,
           out + g * og * P, P, threads);
    }
    return;
  }
  std::vector<const float*> brows(static_cast<size_t>(K));
  for (int64_t n = 0; n < s.N; ++n) {
    for (int64_t g = 0; g < s.groups; ++g) {
      const float* xg = x + (n * s.C + g * cg) * HW;
      float* og_out = out + (n * s.Cout + g * og) * P;
      if (shifted) {
        phases(s, xg, cg, Wp, Wq, cols, threads);
        for (int64_t c = 0; c < cg; ++c)
          for (int64_t kx = 0; kx < s.KW; ++kx)
            brows[static_cast<size_t>(c * s.KW + kx)] = cols + (c * s.sw + kx * s.dw % s.sw) * Wq + kx * s.dw / s.sw;
        gemm(k, group_rows(wt, g, og, K), brows.data(), 1, 0, og, P, K, bias ? bias + g * og : nullptr, ep, og_out,
             P, threads);
        continue;
      }
      for (int64_t oy0 = 0; oy0 < s.OH; oy0 += band) {
        const int64_t oy1 = std::min(s.OH, oy0 + band), Pb = (oy1 - oy0) * s.OW;
        im2col(s, xg, cg, oy0, oy1, cols, threads);
        for (int64_t r = 0; r < K; ++r) brows[static_cast<size_t>(r)] = cols + r * Pb;
        gemm(k, group_rows(wt, g, og, K), brows.data(), 1, 0, og, Pb, K, bias ? bias + g * og : nullptr, ep,
             og_out + oy0 * s.OW, P, threads);
      }
    }
  }
}

// dst [cols, rows] = src [rows, cols] transposed (clipped where ep says), in the kernels' tiles
// (bands of 4 tiles a task) over the threads.
void transpose(const Kernels& k, const float* src, int64_t rows, int64_t cols, float* dst, const Epilogue& ep,
               int threads) {
  const int64_t T = k.tile, rt = (rows + T - 1) / T, ct = (cols + T - 1) / T;
  parallel_for(rt * ct, std::max<int64_t>(1, 4096 / (T * T)), threads, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t r0 = t / ct * T, c0 = t % ct * T;
      k.transpose_tile(src + r0 * cols + c0, cols, std::min(T, rows - r0), std::min(T, cols - c0), dst + c0 * rows + r0,
                       rows, ep);
    }
  });
}

void pointwise_int8(const Shape& s, const float* x, const WeightView& w, const float* bias, const Epilogue& ep,
                    float* out, int threads) {
  const int64_t P = s.OH * s.OW, M = s.N * P;
  if (M == 0 || s.Cout == 0) return;
  float* xt = scratch<8>(M * s.C);
  float* yt = scratch<9>(M * s.Cout);
  const Kernels& k = pick();
  const Epilogue none;
  for (int64_t n = 0; n < s.N; ++n) transpose(k, x + n * s.C * P, s.C, P, xt + n * P * s.C, none, threads);
  linear::gemm(w, xt, M, bias, yt, threads, /*exact=*/false);
  for (int64_t n = 0; n < s.N; ++n) transpose(k, yt + n * P * s.Cout, P, s.Cout, out + n * s.Cout * P, ep, threads);
  if (ep.act) activation::apply(ep.kind, out, out, M * s.Cout, threads, nullptr, ep.exact);
}

void matmul(const float* A, int64_t lda, const float* const* B, int64_t M, int64_t N, int64_t K, float* C,
            int64_t ldc, int threads) {
  Rows a;
  a.dense = A;
  a.lda = lda;
  gemm(pick(), a, B, 1, 0, M, N, K, nullptr, Epilogue(), C, ldc, threads);
}

void conv_transpose2d(const Shape& s, const float* x, const float* w, const float* bias, float* out, int threads) {
  const Kernels& k = pick();
  const int64_t cg = s.C / s.groups, og = s.Cout / s.groups, taps = s.KH * s.KW, M = og * taps;
  const int64_t HW = s.H * s.W, P = s.OH * s.OW;
  std::vector<float> wt(static_cast<size_t>(M * cg));  // one group's weight as [og KH KW, cg]
  std::vector<float> cols(static_cast<size_t>(M * HW));
  std::vector<const float*> brows(static_cast<size_t>(cg));
  const Epilogue none;
  for (int64_t n = 0; n < s.N; ++n)
    for (int64_t g = 0; g < s.groups; ++g) {
      const float* wg = w + g * cg * M;
      for (int64_t c = 0; c < cg; ++c)
        for (int64_t m = 0; m < M; ++m) wt[static_cast<size_t>(m * cg + c)] = wg[c * M + m];
      for (int64_t c = 0; c < cg; ++c) brows[static_cast<size_t>(c)] = x + (n * s.C + g * cg + c) * HW;
      if (cg > 0) {
        Rows a;
        a.dense = wt.data();
        a.lda = cg;
        gemm(k, a, brows.data(), 1, 0, M, HW, cg, nullptr, none, cols.data(), HW, threads);
      } else {
        std::fill(cols.begin(), cols.end(), 0.0f);
      }
      // col2im: output plane by plane over the threads (each plane written by one)
      const float* cp = cols.data();
      parallel_for(og, std::max<int64_t>(1, (int64_t(1) << 15) / std::max<int64_t>(1, taps * HW)), threads,
                   [&](int64_t c0, int64_t c1) {
                     for (int64_t co = c0; co < c1; ++co) {
                       float* __restrict o = out + (n * s.Cout + g * og + co) * P;
                       std::fill(o, o + P, bias != nullptr ? bias[g * og + co] : 0.0f);
                       for (int64_t ky = 0; ky < s.KH; ++ky)
                         for (int64_t kx = 0; kx < s.KW; ++kx) {
                           const float* __restrict col = cp + ((co * s.KH + ky) * s.KW + kx) * HW;
                           const int64_t offx = kx * s.dw - s.pw, sw = s.sw, W = s.W, OW = s.OW;
                           // input columns ix with ox = ix * sw + offx inside [0, OW)
                           const int64_t lo = offx >= 0 ? 0 : (-offx + sw - 1) / sw;
                           const int64_t hi = std::min(W, OW - offx > 0 ? (OW - offx + sw - 1) / sw : 0);
                           for (int64_t iy = 0; iy < s.H; ++iy) {
                             const int64_t oy = iy * s.sh + ky * s.dh - s.ph;
                             if (oy < 0 || oy >= s.OH) continue;
                             float* __restrict orow = o + oy * OW + offx;
                             const float* __restrict crow = col + iy * W;
                             for (int64_t ix = lo; ix < hi; ++ix) orow[ix * sw] += crow[ix];
                           }
                         }
                     }
                   });
    }
}

}  // namespace conv
}  // namespace pocketml
