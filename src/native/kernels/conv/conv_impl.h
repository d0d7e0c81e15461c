// The convolution kernels of conv.h, written once over a vector type V and instantiated per
// instruction set (generic.cpp: scalar; x86_avx2.cpp: 8 lanes; x86_avx512.cpp: 16 lanes). V has
// kWidth lanes, a register tile of kRows x kVecs vectors, and load/store of the first n lanes.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "kernels/conv/conv.h"

namespace pocketml {
namespace conv {

template <class V>
struct Impl {
  using R = typename V::R;
  static constexpr int64_t W = V::kWidth;
  static constexpr int64_t NV = V::kVecs;
  static constexpr int64_t NR = NV * W;  // columns of a strip
  static constexpr int64_t MR = V::kRows;
  static constexpr int64_t KC = 1536;  // rows of B per packed panel (48 x 1536 floats: 288 KiB, in L2,
  // as the linear layers': one panel for Whisper's K = 1,152, 4 % faster than three of 512)

  static int64_t panel_floats(int64_t K) { return std::min(K, KC) * NR + 16; }

  static R finish(R c, const Epilogue& ep) {
    if (!ep.clip) return c;
    return V::min(V::set1(ep.hi), V::max(V::set1(ep.lo), c));  // NaN in c stays NaN
  }

  // lanes of vector j (of a run starting at column 0) inside the first `cols` columns
  static int64_t lanes(int64_t cols, int64_t j) { return std::clamp<int64_t>(cols - j * W, 0, W); }

  // panel[k * NR + j] = rows[k][off + j] for j < cols, zeros up to NR
  static void pack(const float* const* rows, int64_t off, int64_t cols, int64_t kc, float* panel) {
    for (int64_t k = 0; k < kc; ++k) {
      const float* b = rows[k] + off;
      float* p = panel + k * NR;
      for (int64_t j = 0; j < NV; ++j) {
        const int64_t n = lanes(cols, j);
        V::store(p + j * W, n == W ? V::loadu(b + j * W) : n > 0 ? V::load_n(b + j * W, n) : V::zero());
      }
    }
  }

  // C[r, :cols] (+)= A[r, :kc] . B for r < ROWS, over the first NVU vectors of the strip, B the
  // packed panel or (rows non-null) rows[k] + off where they lie; `first`: starts from bias (or
  // zero) rather than C; `last`: applies the epilogue.
  template <int ROWS, int NVU>
  static void micro(const float* A, int64_t lda, const float* panel, const float* const* rows, int64_t off,
                    int64_t kc, float* C,
                    int64_t ldc, int64_t cols, const float* bias, bool first, bool last,
                    const Epilogue& ep) {
    R acc[ROWS][NVU];
    for (int r = 0; r < ROWS; ++r)
      for (int j = 0; j < NVU; ++j) acc[r][j] = V::zero();
    for (int64_t k = 0; k < kc; ++k) {
      if ((k & 15) == 0)  // the next register tile's rows (A's rows are short runs: ~4 KiB; an
        // address, not a pointer: past A's end for the last tile, where a prefetch is harmless)
        for (int r = 0; r < ROWS; ++r)
          __builtin_prefetch(reinterpret_cast<const void*>(reinterpret_cast<uintptr_t>(A) +
                                                           sizeof(float) * ((ROWS + r) * lda + k)));
      const float* p = rows ? rows[k] + off : panel + k * NR;
      R b[NVU];
      for (int j = 0; j < NVU; ++j) b[j] = V::loadu(p + j * W);
      for (int r = 0; r < ROWS; ++r) {
        const R a = V::set1(A[r * lda + k]);
        for (int j = 0; j < NVU; ++j) acc[r][j] = V::fma(a, b[j], acc[r][j]);
      }
    }
    for (int r = 0; r < ROWS; ++r) {
      float* c = C + r * ldc;
      const R init = first ? V::set1(bias ? bias[r] : 0.0f) : V::zero();
      for (int j = 0; j < NVU; ++j) {
        const int64_t n = lanes(cols, j);
        if (n == 0) continue;
        R v = V::add(acc[r][j], first ? init : n == W ? V::loadu(c + j * W) : V::load_n(c + j * W, n));
        if (last) v = finish(v, ep);
        if (n == W) V::storeu(c + j * W, v);
        else V::store_n(c + j * W, v, n);
      }
    }
  }

  template <int ROWS>
  static void micro_cols(int64_t nvu, const float* A, int64_t lda, const float* panel, const float* const* rows,
                         int64_t off, int64_t kc,
                         float* C, int64_t ldc, int64_t cols, const float* bias, bool first,
                         bool last, const Epilogue& ep) {
    static_assert(NV <= 4, "micro_cols handles up to 4 vectors a strip");
    switch (nvu) {
      case 1: micro<ROWS, 1>(A, lda, panel, rows, off, kc, C, ldc, cols, bias, first, last, ep); break;
      case 2: micro<ROWS, (NV >= 2 ? 2 : 1)>(A, lda, panel, rows, off, kc, C, ldc, cols, bias, first, last, ep); break;
      case 3: micro<ROWS, (NV >= 3 ? 3 : 1)>(A, lda, panel, rows, off, kc, C, ldc, cols, bias, first, last, ep); break;
      default: micro<ROWS, NV>(A, lda, panel, rows, off, kc, C, ldc, cols, bias, first, last, ep); break;
    }
  }

  template <int ROWS>
  static void rows_step(int64_t nrows, int64_t nvu, const float* A, int64_t lda, const float* panel,
                        const float* const* rows, int64_t off, int64_t kc, float* C, int64_t ldc, int64_t cols,
                        const float* bias, bool first, bool last, const Epilogue& ep) {
    if constexpr (ROWS > 0) {
      if (nrows == ROWS)
        return micro_cols<ROWS>(nvu, A, lda, panel, rows, off, kc, C, ldc, cols, bias, first, last, ep);
      rows_step<ROWS - 1>(nrows, nvu, A, lda, panel, rows, off, kc, C, ldc, cols, bias, first, last, ep);
    }
  }

  static void gemm_tile(const float* A, int64_t lda, const float* const* B, int64_t K, int64_t m0,
                        int64_t m1, int64_t n0, int64_t n1, const float* bias, const Epilogue& ep, float* C,
                        int64_t ldc, float* panel) {
    const int64_t cols = n1 - n0;
    const int64_t nvu = (cols + W - 1) / W;
    // a few register tiles of rows read a full-width strip of B where it lies: packing it would
    // cost as much as they compute (a deep unfolded layer with few output channels)
    const bool direct = cols == NR && m1 - m0 <= 2 * MR;
    for (int64_t kb = 0; kb < K; kb += KC) {
      const int64_t kc = std::min(KC, K - kb);
      if (!direct) pack(B + kb, n0, cols, kc, panel);
      for (int64_t m = m0; m < m1; m += MR) {
        const int64_t nrows = std::min(MR, m1 - m);
        rows_step<MR>(nrows, nvu, A + m * lda + kb, lda, panel, direct ? B + kb : nullptr, n0, kc,
                      C + m * ldc + n0, ldc, cols, bias ? bias + m : nullptr, kb == 0, kb + kc >= K, ep);
      }
    }
  }

  // -- few columns ----------------------------------------------------------------------------
  // C[m, n0:n1] for a strip of at most kDotCols columns (a 7 x 7 map's 49th pixel, a 14 x 14
  // one's last 4): each output a dot product of A's row with B's column (the columns copied to
  // panel as [cols][K]), ROWS rows x COLS columns of accumulators a step of W along K, summed
  // across lanes at the end. A register tile spends a whole vector of columns on each: 1/3 of a
  // full strip's time for 1/48 of its outputs.
  static constexpr int64_t kDotCols = 4;

  template <int ROWS, int COLS>
  static void dots(const float* A, int64_t lda, const float* panel, int64_t K, int64_t m, const float* bias,
                   const Epilogue& ep, float* C, int64_t ldc) {
    R acc[ROWS][COLS];
    for (int r = 0; r < ROWS; ++r)
      for (int c = 0; c < COLS; ++c) acc[r][c] = V::zero();
    const int64_t kw = K / W * W;
    for (int64_t k = 0; k < kw; k += W) {
      R b[COLS];
      for (int c = 0; c < COLS; ++c) b[c] = V::loadu(panel + c * K + k);
      for (int r = 0; r < ROWS; ++r) {
        const R a = V::loadu(A + (m + r) * lda + k);
        for (int c = 0; c < COLS; ++c) acc[r][c] = V::fma(a, b[c], acc[r][c]);
      }
    }
    for (int r = 0; r < ROWS; ++r)
      for (int c = 0; c < COLS; ++c) {
        float v = V::hsum(acc[r][c]);
        for (int64_t k = kw; k < K; ++k) v += A[(m + r) * lda + k] * panel[c * K + k];
        v += bias ? bias[m + r] : 0.0f;
        if (ep.clip) v = v < ep.lo ? ep.lo : v > ep.hi ? ep.hi : v;  // NaN stays NaN
        C[(m + r) * ldc + c] = v;
      }
  }

  template <int COLS>
  static void dots_cols(const float* A, int64_t lda, const float* panel, int64_t K, int64_t m0, int64_t m1,
                        const float* bias, const Epilogue& ep, float* C, int64_t ldc) {
    int64_t m = m0;
    for (; m + 4 <= m1; m += 4) dots<4, COLS>(A, lda, panel, K, m, bias, ep, C, ldc);
    for (; m < m1; ++m) dots<1, COLS>(A, lda, panel, K, m, bias, ep, C, ldc);
  }

  // gemm_tile's contract for n1 - n0 <= kDotCols and K * kDotCols <= panel_floats(K)
  static void gemm_dots(const float* A, int64_t lda, const float* const* B, int64_t K, int64_t m0, int64_t m1,
                        int64_t n0, int64_t n1, const float* bias, const Epilogue& ep, float* C, int64_t ldc,
                        float* panel) {
    const int64_t cols = n1 - n0;
    for (int64_t k = 0; k < K; ++k)
      for (int64_t c = 0; c < cols; ++c) panel[c * K + k] = B[k][n0 + c];
    float* Cn = C + n0;
    switch (cols) {
      case 1: return dots_cols<1>(A, lda, panel, K, m0, m1, bias, ep, Cn, ldc);
      case 2: return dots_cols<2>(A, lda, panel, K, m0, m1, bias, ep, Cn, ldc);
      case 3: return dots_cols<3>(A, lda, panel, K, m0, m1, bias, ep, Cn, ldc);
      default: return dots_cols<4>(A, lda, panel, K, m0, m1, bias, ep, Cn, ldc);
    }
  }

  // -- depthwise ------------------------------------------------------------------------------
  // The plane is copied once into scratch, zero-padded and split by column phase (column
  // ox * sw + kx * dw of the padded plane is phase (kx * dw) % sw, index ox + (kx * dw) / sw), so
  // every tap reads a contiguous run of output pixels whatever the stride. A block of RY output
  // rows x RX vectors of pixels is accumulated at once (4 independent accumulators: a tap's
  // multiply-adds do not wait on each other; narrow planes block rows, wide ones columns).
  static constexpr int64_t kRun = 4;  // vectors of output pixels a row block spans at most

  static int64_t phase_len(const Shape& s) {
    const int64_t run = kRun * W;
    return (s.OW + run - 1) / run * run + (s.KW - 1) * s.dw / s.sw + 1;
  }
  static int64_t rows_needed(const Shape& s) { return s.OH ? (s.OH - 1) * s.sh + (s.KH - 1) * s.dh + 1 : 0; }
  static int64_t depthwise_floats(const Shape& s) { return s.sw * rows_needed(s) * phase_len(s) + 16; }

  // output rows [oy, oy + RY) (those below OH stored), vectors [ox, ox + RX W) of each
  template <int RY, int RX>
  static void dw_block(const Shape& s, const float* planes, int64_t L, int64_t rows, const float* w,
                       float bias, const Epilogue& ep, int64_t oy, int64_t ox, float* out) {
    R acc[RY][RX];
    for (int i = 0; i < RY; ++i)
      for (int j = 0; j < RX; ++j) acc[i][j] = V::set1(bias);
    const float* row0[RY];
    for (int i = 0; i < RY; ++i) row0[i] = planes + std::min(oy + i, s.OH - 1) * s.sh * L + ox;
    for (int64_t ky = 0; ky < s.KH; ++ky) {
      for (int64_t kx = 0; kx < s.KW; ++kx) {
        const int64_t off = kx * s.dw;
        const int64_t shift = ((off % s.sw) * rows + ky * s.dh) * L + off / s.sw;
        const R wv = V::set1(w[ky * s.KW + kx]);
        for (int i = 0; i < RY; ++i)
          for (int j = 0; j < RX; ++j) acc[i][j] = V::fma(wv, V::loadu(row0[i] + shift + j * W), acc[i][j]);
      }
    }
    for (int i = 0; i < RY && oy + i < s.OH; ++i) {
      float* o = out + (oy + i) * s.OW + ox;
      for (int j = 0; j < RX; ++j) {
        const int64_t n = std::clamp<int64_t>(s.OW - ox - j * W, 0, W);
        const R v = finish(acc[i][j], ep);
        if (n == W) V::storeu(o + j * W, v);
        else if (n > 0) V::store_n(o + j * W, v, n);
      }
    }
  }

  template <int RY, int RX>
  static void dw_rows(const Shape& s, const float* planes, int64_t L, int64_t rows, const float* w,
                      float bias, const Epilogue& ep, int64_t ox, float* out) {
    for (int64_t oy = 0; oy < s.OH; oy += RY) dw_block<RY, RX>(s, planes, L, rows, w, bias, ep, oy, ox, out);
  }

  static void depthwise(const Shape& s, const float* x, const float* w, float bias,
                        const Epilogue& ep, float* out, float* scratch) {
    const int64_t L = phase_len(s), rows = rows_needed(s);
    std::memset(scratch, 0, static_cast<size_t>(s.sw * rows * L) * sizeof(float));
    for (int64_t p = 0; p < s.sw; ++p) {
      // phase p's index j is input column j * sw + p - pw: the ones inside [0, W)
      const int64_t first = p - s.pw;
      const int64_t j0 = first >= 0 ? 0 : (-first + s.sw - 1) / s.sw;
      const int64_t j1 = std::min(L, s.W - first <= 0 ? int64_t(0) : (s.W - first - 1) / s.sw + 1);
      if (j1 <= j0) continue;
      for (int64_t y = 0; y < rows; ++y) {
        const int64_t iy = y - s.ph;
        if (iy < 0 || iy >= s.H) continue;
        const float* src = x + iy * s.W + first;
        float* dst = scratch + (p * rows + y) * L;
        if (s.sw == 1) {
          std::memcpy(dst + j0, src + j0, static_cast<size_t>(j1 - j0) * sizeof(float));
        } else {
          for (int64_t j = j0; j < j1; ++j) dst[j] = src[j * s.sw];
        }
      }
    }
    const int64_t nvec = (s.OW + W - 1) / W, full = nvec / kRun * kRun;
    for (int64_t v = 0; v < full; v += kRun) dw_rows<1, kRun>(s, scratch, L, rows, w, bias, ep, v * W, out);
    switch (nvec - full) {  // the last 1-3 vectors: rows blocked to keep 4 accumulators (3: 3)
      case 1: dw_rows<4, 1>(s, scratch, L, rows, w, bias, ep, full * W, out); break;
      case 2: dw_rows<2, 2>(s, scratch, L, rows, w, bias, ep, full * W, out); break;
      case 3: dw_rows<1, 3>(s, scratch, L, rows, w, bias, ep, full * W, out); break;
      default: break;
    }
  }

  // -- depthwise over blocks of W channels ----------------------------------------------------
  // (vector types with a W x W transpose.) The block's planes are transposed once into pixels of
  // W channels ([rows][cols][W], zero-padded), so every tap of every output pixel is one vector
  // load and one multiply-add whatever the stride or plane size (narrow planes waste no lanes),
  // and the outputs transposed back.
  static constexpr int64_t kPix = 8;  // output pixels accumulated at once

  static int64_t block_cols(const Shape& s) { return s.OW ? (s.OW - 1) * s.sw + (s.KW - 1) * s.dw + 1 : 0; }
  static int64_t depthwise_block_floats(const Shape& s) {
    return (rows_needed(s) * block_cols(s) + s.OH * s.OW + s.KH * s.KW) * W + 16;
  }

  // x: cb <= W planes [H, W] (H W apart) -> blk [rows][cols][W]
  static void pack_block(const Shape& s, const float* x, int64_t cb, float* blk) {
    const int64_t rows = rows_needed(s), cols = block_cols(s), HW = s.H * s.W;
    std::memset(blk, 0, static_cast<size_t>(rows * cols * W) * sizeof(float));
    const int64_t ix1 = std::min(s.W, cols - s.pw);  // input columns that land inside
    for (int64_t y = 0; y < rows; ++y) {
      const int64_t iy = y - s.ph;
      if (iy < 0 || iy >= s.H) continue;
      float* dst = blk + (y * cols + s.pw) * W;
      for (int64_t ix = 0; ix < ix1; ix += W) {
        const int64_t n = std::min<int64_t>(W, ix1 - ix);
        R r[W];
        for (int64_t c = 0; c < W; ++c) {
          const float* src = x + c * HW + iy * s.W + ix;
          r[c] = c >= cb ? V::zero() : n == W ? V::loadu(src) : V::load_n(src, n);
        }
        V::transpose(r);  // r[j]: column ix + j over the channels
        for (int64_t j = 0; j < n; ++j) V::storeu(dst + (ix + j) * W, r[j]);
      }
    }
  }

  // ob [OH OW][W] -> out: cb planes [OH OW]
  static void unpack_block(const Shape& s, const float* ob, int64_t cb, float* out) {
    const int64_t P = s.OH * s.OW;
    for (int64_t p = 0; p < P; p += W) {
      const int64_t n = std::min<int64_t>(W, P - p);
      R r[W];
      for (int64_t j = 0; j < W; ++j) r[j] = j < n ? V::loadu(ob + (p + j) * W) : V::zero();
      V::transpose(r);  // r[c]: pixels p.. of channel c
      for (int64_t c = 0; c < cb; ++c) {
        if (n == W) V::storeu(out + c * P + p, r[c]);
        else V::store_n(out + c * P + p, r[c], n);
      }
    }
  }

  template <int NP>
  static void block_run(const Shape& s, const float* blk, int64_t cols, const float* wt, R bias,
                        const Epilogue& ep, int64_t oy, int64_t ox, float* ob) {
    R acc[NP];
    for (int p = 0; p < NP; ++p) acc[p] = bias;
    const int64_t step = s.sw * W;
    for (int64_t ky = 0; ky < s.KH; ++ky) {
      const float* row = blk + ((oy * s.sh + ky * s.dh) * cols + ox * s.sw) * W;
      for (int64_t kx = 0; kx < s.KW; ++kx) {
        const R wv = V::loadu(wt + (ky * s.KW + kx) * W);
        const float* src = row + kx * s.dw * W;
        for (int p = 0; p < NP; ++p) acc[p] = V::fma(wv, V::loadu(src + p * step), acc[p]);
      }
    }
    for (int p = 0; p < NP; ++p) V::storeu(ob + (oy * s.OW + ox + p) * W, finish(acc[p], ep));
  }

  template <int NP>
  static void block_tail(int64_t left, const Shape& s, const float* blk, int64_t cols, const float* wt,
                         R bias, const Epilogue& ep, int64_t oy, int64_t ox, float* ob) {
    if constexpr (NP > 0) {
      if (left == NP) return block_run<NP>(s, blk, cols, wt, bias, ep, oy, ox, ob);
      block_tail<NP - 1>(left, s, blk, cols, wt, bias, ep, oy, ox, ob);
    }
  }

  // cb <= W channels: x their planes, w their [KH KW] kernels, bias theirs (or null), out theirs
  static void depthwise_block(const Shape& s, const float* x, int64_t cb, const float* w, const float* bias,
                              const Epilogue& ep, float* out, float* scratch) {
    const int64_t rows = rows_needed(s), cols = block_cols(s), taps = s.KH * s.KW;
    float* blk = scratch;
    float* ob = blk + rows * cols * W;
    float* wt = ob + s.OH * s.OW * W;
    pack_block(s, x, cb, blk);
    for (int64_t t = 0; t < taps; ++t)
      for (int64_t c = 0; c < W; ++c) wt[t * W + c] = c < cb ? w[c * taps + t] : 0.0f;
    const R b = bias ? V::load_n(bias, cb) : V::zero();
    for (int64_t oy = 0; oy < s.OH; ++oy) {
      int64_t ox = 0;
      for (; ox + kPix <= s.OW; ox += kPix) block_run<kPix>(s, blk, cols, wt, b, ep, oy, ox, ob);
      block_tail<kPix - 1>(s.OW - ox, s, blk, cols, wt, b, ep, oy, ox, ob);
    }
    unpack_block(s, ob, cb, out);
  }

  // dst[c * ldd + r] = src[r * lds + c] (clipped) for r < rows, c < cols, both <= kTile
  static constexpr int64_t kTile = V::kTranspose ? W : 16;
  static void transpose_tile(const float* src, int64_t lds, int64_t rows, int64_t cols, float* dst, int64_t ldd,
                             const Epilogue& ep) {
    if constexpr (V::kTranspose) {
      R r[W];
      for (int64_t i = 0; i < W; ++i)
        r[i] = i >= rows ? V::zero() : cols == W ? V::loadu(src + i * lds) : V::load_n(src + i * lds, cols);
      V::transpose(r);
      for (int64_t j = 0; j < cols; ++j) {
        const R v = finish(r[j], ep);
        if (rows == W) V::storeu(dst + j * ldd, v);
        else V::store_n(dst + j * ldd, v, rows);
      }
    } else {
      for (int64_t j = 0; j < cols; ++j)
        for (int64_t i = 0; i < rows; ++i) {
          float v = src[i * lds + j];
          if (ep.clip) v = v < ep.lo ? ep.lo : v > ep.hi ? ep.hi : v;  // NaN stays NaN
          dst[j * ldd + i] = v;
        }
    }
  }

  static const Kernels& kernels() {
    if constexpr (V::kTranspose) {
      static const Kernels k{NR, MR, gemm_tile, depthwise, panel_floats, depthwise_floats, W, depthwise_block,
                             depthwise_block_floats, kTile, transpose_tile, kDotCols, gemm_dots};
      return k;
    } else {
      static const Kernels k{NR, MR, gemm_tile, depthwise, panel_floats, depthwise_floats, 0, nullptr, nullptr,
                             kTile, transpose_tile, 0, nullptr};
      return k;
    }
  }
};

}  // namespace conv
}  // namespace pocketml
