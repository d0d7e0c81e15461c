// conv2d: picks the kernels for the CPU (core/cpu.h), splits the work over the pool and unfolds
// the input where a convolution is not depthwise or pointwise (see conv.h).
#include "kernels/conv/conv.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "core/cpu.h"
#include "core/pool.h"

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

// C [M, N] = A [M, K] . B [K, N] + bias, clipped: the column strips and blocks of rows of C over
// the threads (at least ~4 tasks a thread where the shape allows).
void gemm(const Kernels& k, const float* A, int64_t lda, const float* B, int64_t ldb, int64_t M,
          int64_t N, int64_t K, const float* bias, const Epilogue& ep, float* C, int64_t ldc,
          int threads) {
  if (M <= 0 || N <= 0) return;
  if (K == 0) {
    for (int64_t m = 0; m < M; ++m)
      std::fill(C + m * ldc, C + m * ldc + N, clipped(bias ? bias[m] : 0.0f, ep));
    return;
  }
  const int64_t strips = (N + k.strip - 1) / k.strip;
  const int64_t want = 4 * std::max(threads, 1);
  int64_t mblocks = std::min((want + strips - 1) / strips, (M + k.mr - 1) / k.mr);
  const int64_t mb = ((M + mblocks - 1) / mblocks + k.mr - 1) / k.mr * k.mr;
  mblocks = (M + mb - 1) / mb;
  // ~64 K multiply-adds a task at least: a small layer runs on one thread
  const int64_t grain = std::max<int64_t>(1, (1 << 16) / std::max<int64_t>(1, mb * k.strip * K));
  const int64_t panel = k.panel_floats(K);
  parallel_for(strips * mblocks, grain, threads, [&](int64_t t0, int64_t t1) {
    float* p = scratch<0>(panel);
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t s = t / mblocks, b = t % mblocks;
      const int64_t n0 = s * k.strip, m0 = b * mb;
      k.gemm_tile(A, lda, B, ldb, K, m0, std::min(M, m0 + mb), n0, std::min(N, n0 + k.strip), bias,
                  ep, C, ldc, p);
    }
  });
}

// cols [cg KH KW, OH OW] of one image and group: row (c, ky, kx) holds input channel c at the
// tap's position for each output pixel (zero in the padding).
void im2col(const Shape& s, const float* x, int64_t cg, float* cols, int threads) {
  const int64_t rows = cg * s.KH * s.KW, P = s.OH * s.OW;
  parallel_for(rows, std::max<int64_t>(1, 4096 / std::max<int64_t>(P, 1)), threads, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t c = r / (s.KH * s.KW), ky = r / s.KW % s.KH, kx = r % s.KW;
      const float* plane = x + c * s.H * s.W;
      float* dst = cols + r * P;
      // output columns whose input column ox * sw + kx * dw - pw lies inside [0, W)
      const int64_t off = kx * s.dw - s.pw;
      const int64_t lo = off >= 0 ? 0 : (-off + s.sw - 1) / s.sw;
      const int64_t hi = s.W - off <= 0 ? 0 : std::min(s.OW, (s.W - off - 1) / s.sw + 1);
      for (int64_t oy = 0; oy < s.OH; ++oy) {
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

}  // namespace

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
  *s = Shape{x[0], x[1], xs[0], xl, w[0], ws[0], wl, 0, 0, st[0], sl, di[0], dl, pd[0], pl0, groups};
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
  return nullptr;
}

void conv2d(const Shape& s, const float* x, const float* w, const float* bias, const Epilogue& ep,
            float* out, int threads) {
  const Kernels& k = pick();
  const int64_t P = s.OH * s.OW, HW = s.H * s.W;
  if (s.N == 0 || s.Cout == 0 || P == 0) return;
  const bool depthwise = s.groups == s.C && s.Cout == s.C;
  // wide rows at stride 1 stream plane by plane (full vectors, no transposes); the rest (narrow
  // planes, strides) in blocks of channels (measured on EfficientNet-Lite0's layers, Zen 4)
  if (depthwise && k.block > 0 && !(s.sw == 1 && s.OW >= 3 * k.block)) {
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
  const int64_t cg = s.C / s.groups, og = s.Cout / s.groups, K = cg * s.KH * s.KW;
  const bool pointwise = s.KH == 1 && s.KW == 1 && s.sh == 1 && s.sw == 1 && s.ph == 0 && s.pw == 0 &&
                         s.OH == s.H && s.OW == s.W;
  float* cols = pointwise ? nullptr : scratch<2>(K * P);  // the calling thread's
  for (int64_t n = 0; n < s.N; ++n) {
    for (int64_t g = 0; g < s.groups; ++g) {
      const float* xg = x + (n * s.C + g * cg) * HW;
      const float* B = xg;
      if (!pointwise) {
        im2col(s, xg, cg, cols, threads);
        B = cols;
      }
      gemm(k, w + g * og * K, K, B, P, og, P, K, bias ? bias + g * og : nullptr, ep,
           out + (n * s.Cout + g * og) * P, P, threads);
    }
  }
}

}  // namespace conv
}  // namespace pocketml
