#include "plan/layers.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "formats/weights.h"
#include "kernels/conv/conv.h"
#include "kernels/elementwise/elementwise.h"
#include "kernels/linear/linear.h"
#include "kernels/recurrent/recurrent.h"
#include "kernels/resize/resize.h"
#include "plan/views.h"

namespace pocketml {
namespace plan {
namespace {

// a float32 [N, K] tensor as a dense weight (the linear kernels' view of it), if it is one
bool dense_weight(const Tensor& t, int64_t N, int64_t K, WeightView* w) {
  if (!is_f32(t) || t.rank != 2 || t.shape[0] != N || t.shape[1] != K || !t.contiguous()) return false;
  w->kind = WeightKind::F32;
  w->N = N;
  w->K = K;
  w->nbits = 32;
  w->data = static_cast<const uint8_t*>(t.data);
  return true;
}

bool vector_of(const Tensor& t, int64_t n) { return is_f32(t) && t.rank == 1 && t.shape[0] == n && t.contiguous(); }

}  // namespace

// prelu (ir/ops/activation.py): x if x > 0 else weight * x, weight (C,) along axis 1 or (1,); the
// reference's double product rounded once is the float product, so this is bit for bit
bool prelu_step(Args& a, Args& outs, BufferPool& pool, int threads) {
  if (a.size() < 2 || !is_f32(a[0]) || !is_f32(a[1]) || a[1].rank != 1) return false;
  const int64_t C = a[1].shape[0];
  if (C != 1 && (a[0].rank < 2 || a[0].shape[1] != C)) return false;
  Tensor x = contiguous(a[0], pool), w = contiguous(a[1], pool);
  Tensor out = pool.allocate(DType::F32, 4, x.rank, x.shape);
  const int64_t n = x.numel(), planes = x.rank >= 2 ? x.shape[0] * x.shape[1] : 1;
  if (n > 0) elementwise::prelu(x.as<const float>(), w.as<const float>(), C, planes, n / planes, out.as<float>(), threads);
  pool.release(x);
  pool.release(w);
  outs.push_back(std::move(out));
  return true;
}

// softmax / log_softmax along one axis (ir/ops/softmax.py): the max subtracted in float32, exp of
// each value in double rounded to float32 (as NumPy's float32 exp, to an ulp), the sum in double;
// a row whose max is not finite is not shifted (NaN out, as the reference)
bool softmax_step(int axis, bool log, Args& a, Args& outs, BufferPool& pool) {
  if (a.empty() || !is_f32(a[0])) return false;
  const int rank = a[0].rank;
  if (rank == 0 || axis < -rank || axis >= rank) return false;  // the reference's handling / error
  const int ax = axis < 0 ? axis + rank : axis;
  Tensor x = contiguous(a[0], pool);
  Tensor out = pool.allocate(DType::F32, 4, x.rank, x.shape);
  int64_t outer = 1, inner = 1;
  for (int i = 0; i < ax; ++i) outer *= x.shape[i];
  for (int i = ax + 1; i < rank; ++i) inner *= x.shape[i];
  const int64_t R = x.shape[ax];
  if (R == 0 && outer * inner > 0) {  // np.max of an empty row: the reference's error
    pool.release(x);
    pool.release(out);
    return false;
  }
  const float* xp = x.as<const float>();
  float* op = out.as<float>();
  std::vector<float> e(static_cast<size_t>(R));
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t j = 0; j < inner; ++j) {
      const float* row = xp + o * R * inner + j;
      float* dst = op + o * R * inner + j;
      float m = -INFINITY;
      bool nan = false;
      for (int64_t r = 0; r < R; ++r) {
        const float v = row[r * inner];
        if (v != v) nan = true;
        else if (v > m) m = v;
      }
      if (nan || !std::isfinite(m)) m = 0.0f;  // np.max's NaN or an infinite max: no shift
      double sum = 0.0;
      for (int64_t r = 0; r < R; ++r) {
        const float z = row[r * inner] - m;
        e[static_cast<size_t>(r)] = log ? z : static_cast<float>(std::exp(static_cast<double>(z)));
        sum += log ? static_cast<double>(static_cast<float>(std::exp(static_cast<double>(z)))) : e[static_cast<size_t>(r)];
      }
      const double ls = log ? std::log(sum) : 0.0;
      for (int64_t r = 0; r < R; ++r)
        dst[r * inner] = log ? static_cast<float>(e[static_cast<size_t>(r)] - ls) : static_cast<float>(e[static_cast<size_t>(r)] / sum);
    }
  pool.release(x);
  outs.push_back(std::move(out));
  return true;
}

// einsum of two operands as one batched matrix product: A's axes permuted to (batch, left,
// contracted), B's to (batch, contracted, right), the product's (batch, left, right) axes permuted
// to the output's order (plan: native_loop._einsum_layout); sizes that differ between the operands
// (einsum's broadcasting) go to the reference
bool einsum_step(const Step& s, Args& a, Args& outs, BufferPool& pool, int threads) {
  const std::vector<int64_t>& e = s.pad_widths;  // nb, nl, nk, nr, permA..., permB..., out perm...
  if (a.size() != 2 || !is_f32(a[0]) || !is_f32(a[1]) || e.size() < 4) return false;
  const int nb = static_cast<int>(e[0]), nl = static_cast<int>(e[1]), nk = static_cast<int>(e[2]),
            nr = static_cast<int>(e[3]);
  const int ra = nb + nl + nk, rb = nb + nk + nr, ro = nb + nl + nr;
  if (a[0].rank != ra || a[1].rank != rb || static_cast<int>(e.size()) != 4 + ra + rb + ro) return false;
  Tensor A = a[0], B = a[1];
  transpose(A, e.data() + 4, ra);
  transpose(B, e.data() + 4 + ra, rb);
  int64_t Bt = 1, M = 1, K = 1, N = 1, shape[kMaxRank];
  for (int i = 0; i < nb; ++i) {
    if (A.shape[i] != B.shape[i]) return false;
    Bt *= (shape[i] = A.shape[i]);
  }
  for (int i = 0; i < nl; ++i) M *= (shape[nb + i] = A.shape[nb + i]);
  for (int i = 0; i < nk; ++i) {
    if (A.shape[nb + nl + i] != B.shape[nb + i]) return false;
    K *= A.shape[nb + nl + i];
  }
  for (int i = 0; i < nr; ++i) N *= (shape[nb + nl + i] = B.shape[nb + nk + i]);
  if (ro > kMaxRank) return false;
  Tensor Ac = contiguous(A, pool), Bc = contiguous(B, pool);
  Tensor prod = pool.allocate(DType::F32, 4, ro, shape);
  if (M * N > 0) {
    std::vector<const float*> rows(static_cast<size_t>(K));
    for (int64_t b = 0; b < Bt; ++b) {
      const float* bb = Bc.as<const float>() + b * K * N;
      for (int64_t k = 0; k < K; ++k) rows[static_cast<size_t>(k)] = bb + k * N;
      conv::matmul(Ac.as<const float>() + b * M * K, K, rows.data(), M, N, K, prod.as<float>() + b * M * N, N, threads);
    }
  }
  pool.release(Ac);
  pool.release(Bc);
  const int64_t* perm = e.data() + 4 + ra + rb;
  bool identity = true;
  for (int i = 0; i < ro; ++i) identity &= perm[i] == i;
  if (identity) {
    outs.push_back(std::move(prod));
    return true;
  }
  Tensor view = prod;
  transpose(view, perm, ro);
  Tensor out = pool.allocate(DType::F32, 4, ro, view.shape);
  copy(view, out);
  pool.release(prod);
  outs.push_back(std::move(out));
  return true;
}

// group_norm (x (N, C, ...), statistics per image and group of C / groups channels in double,
// (x - mean) and the scaling in float32 as the reference) and batch_norm (with running statistics:
// a per-channel x * alpha + beta, alpha and beta in double rounded once, bit for bit the
// reference; without them: statistics per channel over N and the spatial dims)
bool channel_norm_step(const Step& s, Args& a, Args& outs, BufferPool& pool) {
  if (a.empty() || !is_f32(a[0]) || a[0].rank < 2) return false;
  const int64_t N = a[0].shape[0], C = a[0].shape[1];
  const bool batch = s.norm_groups == 0;
  const size_t first = 1, count = a.size() - 1;  // group_norm: weight?, bias?; batch_norm: mean?, var?, weight?, bias?
  if (count > (batch ? 4u : 2u)) return false;  // trailing absent parameters may be left out
  for (size_t i = first; i < a.size(); ++i)
    if (a[i].present() && (!is_f32(a[i]) || a[i].rank != 1 || a[i].shape[0] != C)) return false;
  if (!batch && (s.norm_groups < 1 || C % s.norm_groups != 0)) return false;
  Tensor x = contiguous(a[0], pool);
  Tensor params[4];
  for (size_t i = 0; i < count; ++i)
    if (a[first + i].present()) params[i] = contiguous(a[first + i], pool);
  const float* w = params[batch ? 2 : 0].present() ? params[batch ? 2 : 0].as<const float>() : nullptr;
  const float* b = params[batch ? 3 : 1].present() ? params[batch ? 3 : 1].as<const float>() : nullptr;
  const int64_t inner = C > 0 && N > 0 ? x.numel() / (N * C) : 0;
  Tensor out = pool.allocate(DType::F32, 4, x.rank, x.shape);
  const float* xp = x.as<const float>();
  float* op = out.as<float>();
  const double eps = s.eps;
  const auto normalize = [&](int64_t c, const float* src, float* dst, float mean, float rstd) {
    for (int64_t i = 0; i < inner; ++i) {
      float y = (src[i] - mean) * rstd;
      if (w != nullptr) y = y * w[c];
      if (b != nullptr) y = y + b[c];
      dst[i] = y;
    }
  };
  bool ok = true;
  if (batch && params[0].present() != params[1].present()) ok = false;  // the reference's error
  else if (batch && params[0].present()) {
    const float* mean = params[0].as<const float>();
    const float* var = params[1].as<const float>();
    for (int64_t c = 0; c < C; ++c) {
      double alpha = 1.0 / std::sqrt(static_cast<double>(var[c]) + eps);
      if (w != nullptr) alpha = alpha * static_cast<double>(w[c]);
      double beta = -static_cast<double>(mean[c]) * alpha;
      if (b != nullptr) beta = beta + static_cast<double>(b[c]);
      const float af = static_cast<float>(alpha), bf = static_cast<float>(beta);
      for (int64_t n = 0; n < N; ++n) {
        const float* src = xp + (n * C + c) * inner;
        float* dst = op + (n * C + c) * inner;
        for (int64_t i = 0; i < inner; ++i) dst[i] = src[i] * af + bf;
      }
    }
  } else {
    // the statistics' sets: per (image, group) for group_norm, per channel over images for batch_norm
    const int64_t sets = batch ? C : N * s.norm_groups, per = batch ? 1 : C / s.norm_groups;
    for (int64_t t = 0; t < sets; ++t) {
      double sum = 0.0, count_d = 0.0;
      const auto each = [&](auto&& fn) {  // (channel, plane) of the set
        if (batch) {
          for (int64_t n = 0; n < N; ++n) fn(t, (n * C + t) * inner);
        } else {
          const int64_t n = t / s.norm_groups, g = t % s.norm_groups;
          for (int64_t c = g * per; c < (g + 1) * per; ++c) fn(c, (n * C + c) * inner);
        }
      };
      each([&](int64_t, int64_t off) {
        for (int64_t i = 0; i < inner; ++i) sum += xp[off + i];
        count_d += static_cast<double>(inner);
      });
      const float mean = static_cast<float>(sum / count_d);
      double sq = 0.0;
      each([&](int64_t, int64_t off) {
        for (int64_t i = 0; i < inner; ++i) {
          const double d = static_cast<double>(xp[off + i] - mean);
          sq += d * d;
        }
      });
      const float rstd = static_cast<float>(1.0 / std::sqrt(sq / count_d + eps));
      each([&](int64_t c, int64_t off) { normalize(c, xp + off, op + off, mean, rstd); });
    }
  }
  pool.release(x);
  for (Tensor& p : params)
    if (p.present()) pool.release(p);
  if (!ok) {
    pool.release(out);
    return false;
  }
  outs.push_back(std::move(out));
  return true;
}

// matmul (NumPy's semantics: 1-D operands as vectors, leading dims broadcast) of float32
// activations on the convolutions' GEMM, one matrix product per batch entry; linear (x @ w^T +
// bias) with a weight that is not a packed constant on the linear kernels
bool matmul_step(const Step& s, Args& a, Args& outs, BufferPool& pool, int threads) {
  if (a.size() < 2 || !is_f32(a[0]) || !is_f32(a[1]) || a[0].rank == 0 || a[1].rank == 0) return false;
  if (s.linear_weight) {
    const Tensor& w0 = a[1];
    const int64_t K = a[0].shape[a[0].rank - 1];
    if (w0.rank != 2 || w0.shape[1] != K || K == 0) return false;  // K = 0: the reference's reshape error
    const int64_t N = w0.shape[0];
    const bool has_bias = a.size() > 2 && a[2].present();
    if (has_bias && (!is_f32(a[2]) || a[2].rank != 1 || a[2].shape[0] != N)) return false;
    Tensor x = contiguous(a[0], pool), w = contiguous(a[1], pool);
    Tensor b = has_bias ? contiguous(a[2], pool) : Tensor();
    int64_t shape[kMaxRank];
    for (int i = 0; i + 1 < x.rank; ++i) shape[i] = x.shape[i];
    shape[x.rank - 1] = N;
    Tensor out = pool.allocate(DType::F32, 4, x.rank, shape);
    const int64_t M = x.numel() / K;
    if (M > 0 && N > 0) {
      WeightView wv;
      wv.kind = WeightKind::F32;
      wv.N = N, wv.K = K, wv.nbits = 32;
      wv.data = static_cast<const uint8_t*>(w.data);
      linear::gemm(wv, x.as<const float>(), M, has_bias ? b.as<const float>() : nullptr, out.as<float>(), threads);
    }
    pool.release(x);
    pool.release(w);
    if (has_bias) pool.release(b);
    outs.push_back(std::move(out));
    return true;
  }
  const Tensor &x0 = a[0], &y0 = a[1];
  // as matrices: a 1-D x is (1, K), a 1-D y is (K, 1)
  const int64_t M = x0.rank > 1 ? x0.shape[x0.rank - 2] : 1, K = x0.shape[x0.rank - 1];
  const int64_t K2 = y0.rank > 1 ? y0.shape[y0.rank - 2] : y0.shape[0], N = y0.rank > 1 ? y0.shape[y0.rank - 1] : 1;
  if (K != K2) return false;  // the reference's error
  const int bx = std::max(x0.rank - 2, 0), by = std::max(y0.rank - 2, 0), nb = std::max(bx, by);
  int64_t batch[kMaxRank], sxb[kMaxRank], syb[kMaxRank];  // batch shape, element strides of each matrix
  int64_t total = 1;
  for (int i = 0; i < nb; ++i) {
    const int ix = i - (nb - bx), iy = i - (nb - by);
    const int64_t dx = ix >= 0 ? x0.shape[ix] : 1, dy = iy >= 0 ? y0.shape[iy] : 1;
    if (dx != dy && dx != 1 && dy != 1) return false;
    batch[i] = dx == 1 ? dy : dx;
    total *= batch[i];
  }
  int64_t x_stride = M * K, y_stride = K * N;
  for (int i = nb - 1; i >= 0; --i) {
    const int ix = i - (nb - bx), iy = i - (nb - by);
    const int64_t dx = ix >= 0 ? x0.shape[ix] : 1, dy = iy >= 0 ? y0.shape[iy] : 1;
    sxb[i] = dx == 1 ? 0 : x_stride;
    syb[i] = dy == 1 ? 0 : y_stride;
    x_stride *= dx;
    y_stride *= dy;
  }
  int64_t shape[kMaxRank];
  int rank = 0;
  for (int i = 0; i < nb; ++i) shape[rank++] = batch[i];
  if (x0.rank > 1) shape[rank++] = M;
  if (y0.rank > 1) shape[rank++] = N;
  Tensor x = contiguous(a[0], pool), y = contiguous(a[1], pool);
  Tensor out = pool.allocate(DType::F32, 4, rank, shape);
  float* o = out.as<float>();
  if (M * N > 0) {
    std::vector<const float*> rows(static_cast<size_t>(K));
    for (int64_t t = 0; t < total; ++t) {
      int64_t rest = t, ox = 0, oy = 0;
      for (int i = nb - 1; i >= 0; --i) {
        const int64_t k = rest % batch[i];
        rest /= batch[i];
        ox += k * sxb[i];
        oy += k * syb[i];
      }
      const float* yb = y.as<const float>() + oy;
      for (int64_t k = 0; k < K; ++k) rows[static_cast<size_t>(k)] = yb + k * N;
      conv::matmul(x.as<const float>() + ox, K, rows.data(), M, N, K, o + t * M * N, N, threads);
    }
  }
  pool.release(x);
  pool.release(y);
  outs.push_back(std::move(out));
  return true;
}

// adaptive average / max pooling of the trailing len(output_size) dims, torch's windows
// [floor(i L / O), ceil((i + 1) L / O)): axis by axis in double like the reference (average: each
// value times 1 / (window length), summed), rounded to float32 at the end
bool adaptive_pool_step(const Step& s, Args& a, Args& outs, BufferPool& pool) {
  const int n = static_cast<int>(s.pad_widths.size());
  if (a.empty() || !is_f32(a[0]) || n < 1 || n > a[0].rank) return false;
  Tensor x = contiguous(a[0], pool);
  const int rank = x.rank;
  int64_t shape[kMaxRank];
  for (int i = 0; i < rank; ++i) shape[i] = x.shape[i];
  std::vector<double> cur(static_cast<size_t>(x.numel()));
  for (int64_t i = 0; i < x.numel(); ++i) cur[static_cast<size_t>(i)] = x.as<const float>()[i];
  pool.release(x);
  for (int i = 0; i < n; ++i) {
    const int ax = rank - n + i;
    const int64_t L = shape[ax], O = s.pad_widths[i] < 0 ? L : s.pad_widths[i];
    if (O == L) continue;
    if (O < 1 || L < 1) return false;  // the reference's error
    int64_t outer = 1, inner = 1;
    for (int k = 0; k < ax; ++k) outer *= shape[k];
    for (int k = ax + 1; k < rank; ++k) inner *= shape[k];
    std::vector<double> next(static_cast<size_t>(outer * O * inner));
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t j = 0; j < O; ++j) {
        const int64_t b = j * L / O, e = ((j + 1) * L + O - 1) / O;
        const double w = 1.0 / static_cast<double>(e - b);
        double* dst = next.data() + (o * O + j) * inner;
        for (int64_t q = 0; q < inner; ++q) {
          double v = s.max ? -INFINITY : 0.0;
          for (int64_t k = b; k < e; ++k) {
            const double y = cur[static_cast<size_t>((o * L + k) * inner + q)];
            if (s.max) v = (v != v || y != y) ? (v != v ? v : y) : (y > v ? y : v);
            else v += y * w;
          }
          dst[q] = v;
        }
      }
    cur.swap(next);
    shape[ax] = O;
  }
  Tensor out = pool.allocate(DType::F32, 4, rank, shape);
  for (size_t i = 0; i < cur.size(); ++i) out.as<float>()[i] = static_cast<float>(cur[i]);
  outs.push_back(std::move(out));
  return true;
}

// conv_transpose over 1 or 2 spatial dims, float32, weight and bias as tensors (kernels/conv)
bool conv_transpose_step(const Step& s, Args& a, Args& outs, BufferPool& pool, int threads) {
  if (a.size() < 2 || !is_f32(a[0]) || !is_f32(a[1])) return false;
  const Tensor& x0 = a[0];
  const Tensor& w0 = a[1];
  const int spatial = x0.rank - 2;
  if ((spatial != 1 && spatial != 2) || w0.rank != x0.rank) return false;
  const ConvSpec& c = s.convs.at(0);
  if (static_cast<int>(c.strides.size()) != spatial || static_cast<int>(c.dilations.size()) != spatial ||
      static_cast<int>(c.pads.size()) != 2 * spatial || static_cast<int>(s.pad_widths.size()) != spatial ||
      c.groups < 1 || x0.shape[1] != w0.shape[0] || x0.shape[1] % c.groups != 0)
    return false;
  const bool has_bias = a.size() > 2 && a[2].present();
  const int64_t Cout = w0.shape[1] * c.groups;
  if (has_bias && (!is_f32(a[2]) || a[2].rank != 1 || a[2].shape[0] != Cout)) return false;
  conv::Shape sh{};
  sh.N = x0.shape[0], sh.C = x0.shape[1], sh.Cout = Cout, sh.groups = c.groups;
  sh.H = spatial == 2 ? x0.shape[2] : 1, sh.W = x0.shape[x0.rank - 1];
  sh.KH = spatial == 2 ? w0.shape[2] : 1, sh.KW = w0.shape[w0.rank - 1];
  sh.sh = spatial == 2 ? c.strides[0] : 1, sh.sw = c.strides[spatial - 1];
  sh.dh = spatial == 2 ? c.dilations[0] : 1, sh.dw = c.dilations[spatial - 1];
  sh.ph = spatial == 2 ? c.pads[0] : 0, sh.pw = c.pads[2 * (spatial - 1)];
  const auto len = [](int64_t L, int64_t k, int64_t st, int64_t pb, int64_t pe, int64_t d, int64_t op) {
    return (L - 1) * st + d * (k - 1) + 1 + op - pb - pe;
  };
  sh.OH = spatial == 2 ? len(sh.H, sh.KH, sh.sh, c.pads[0], c.pads[1], sh.dh, s.pad_widths[0]) : 1;
  sh.OW = len(sh.W, sh.KW, sh.sw, c.pads[2 * (spatial - 1)], c.pads[2 * spatial - 1], sh.dw, s.pad_widths[spatial - 1]);
  if (sh.OH < 1 || sh.OW < 1 || sh.H < 1 || sh.W < 1 || sh.sh < 1 || sh.sw < 1 || sh.dh < 1 || sh.dw < 1)
    return false;  // the reference's error
  Tensor x = contiguous(a[0], pool), w = contiguous(a[1], pool);
  int64_t shape[4] = {sh.N, sh.Cout, spatial == 2 ? sh.OH : sh.OW, sh.OW};
  Tensor out = pool.allocate(DType::F32, 4, x0.rank, shape);
  if (sh.N * sh.Cout > 0)
    conv::conv_transpose2d(sh, x.as<const float>(), w.as<const float>(), has_bias ? a[2].as<const float>() : nullptr,
                           out.as<float>(), threads);
  pool.release(x);
  pool.release(w);
  outs.push_back(std::move(out));
  return true;
}

// resize (nearest, nearest exact, linear) of the trailing dims, innermost first like the
// reference, one axis at a time through kernels/resize
bool resize_step(const Step& s, Args& a, Args& outs, BufferPool& pool, const std::vector<int64_t>& syms) {
  const int n = static_cast<int>(s.resize_scales.empty() ? s.resize_sizes.size() : s.resize_scales.size());
  if (a.empty() || !is_f32(a[0]) || n == 0 || n > a[0].rank) return false;
  Tensor cur = contiguous(a[0], pool);
  for (int i = n - 1; i >= 0; --i) {
    const int ax = cur.rank - n + i;
    const int64_t L = cur.shape[ax];
    const double scale = s.resize_scales.empty() ? 0.0 : s.resize_scales[i];
    const int64_t O = !s.resize_sizes.empty() ? resolve(s.resize_sizes[i], syms)
                                              : static_cast<int64_t>(std::floor(static_cast<double>(L) * scale));
    if (O < 1 || L < 1) {
      pool.release(cur);
      return false;  // the reference's error
    }
    int64_t outer = 1, inner = 1, shape[kMaxRank];
    for (int k = 0; k < cur.rank; ++k) {
      shape[k] = k == ax ? O : cur.shape[k];
      if (k < ax) outer *= cur.shape[k];
      if (k > ax) inner *= cur.shape[k];
    }
    Tensor next = pool.allocate(DType::F32, 4, cur.rank, shape);
    if (outer * inner > 0)
      resize::axis(s.resize_mode, cur.as<const float>(), outer, L, inner, O, scale, s.align_corners, next.as<float>());
    pool.release(cur);
    cur = std::move(next);
  }
  outs.push_back(std::move(cur));
  return true;
}

// An LSTM / GRU / RNN cell or sequence: the input projections of all steps in one gemm per layer
// and direction, then recurrent::run. Arguments the reference would refuse (shapes, dtypes) go
// to it, so its error is the one raised.
bool recurrent_step(const RnnSpec& r, Args& a, Args& outs, BufferPool& pool, int threads) {
  using recurrent::Cell;
  const bool lstm = r.cell == Cell::Lstm;
  const int nstate = lstm ? 2 : 1;
  const int64_t G = recurrent::gate_count(r.cell);
  if (a.size() < static_cast<size_t>(1 + nstate + 2) || !is_f32(a[0])) return false;
  for (size_t i = 1; i < a.size(); ++i)
    if (a[i].present() && !is_f32(a[i])) return false;
  const int L = r.sequence ? r.layers : 1, D = r.sequence && r.bidirectional ? 2 : 1;
  const int per = 2 + (r.biases || !r.sequence ? 2 : 0) + (r.proj > 0 ? 1 : 0);
  const size_t nweights = a.size() - 1 - nstate;
  if (r.sequence ? nweights != static_cast<size_t>(L * D * per) : nweights != 4) return false;
  Tensor x = contiguous(a[0], pool);
  const bool unbatched = x.rank == (r.sequence ? 2 : 1);
  if (!unbatched && x.rank != (r.sequence ? 3 : 2)) return (pool.release(x), false);
  const int64_t I = x.shape[x.rank - 1];
  int64_t T = 1, B = 1;
  if (r.sequence) {
    T = unbatched || !r.batch_first ? x.shape[0] : x.shape[1];
    B = unbatched ? 1 : (r.batch_first ? x.shape[0] : x.shape[1]);
  } else if (!unbatched) {
    B = x.shape[0];
  }
  const Tensor& w_hh0 = a[1 + nstate + 1];
  if (!is_f32(w_hh0) || w_hh0.rank != 2 || w_hh0.shape[0] % G != 0) return (pool.release(x), false);
  const int64_t H = w_hh0.shape[0] / G, Hout = r.proj > 0 ? r.proj : H;
  // weights: checked and viewed for each layer and direction
  std::vector<WeightView> w_ih(L * D), w_hh(L * D), w_hr(L * D);
  std::vector<const float*> b_ih(L * D, nullptr), b_hh(L * D, nullptr);
  for (int l = 0; l < L; ++l)
    for (int d = 0; d < D; ++d) {
      const int ld = l * D + d;
      const size_t k = 1 + nstate + static_cast<size_t>(ld) * per;
      const int64_t In = l == 0 ? I : D * Hout;
      bool ok = dense_weight(a[k], G * H, In, &w_ih[ld]) && dense_weight(a[k + 1], G * H, Hout, &w_hh[ld]);
      if (per >= 4) {
        for (int j = 0; j < 2; ++j) {
          const Tensor& bias = a[k + 2 + j];
          if (!bias.present()) {
            ok &= !r.sequence;  // a cell's biases are optional; a sequence's are all there or none
            continue;
          }
          ok &= vector_of(bias, G * H);
          (j == 0 ? b_ih : b_hh)[ld] = bias.as<const float>();
        }
      }
      if (r.proj > 0) ok &= dense_weight(a[k + per - 1], Hout, H, &w_hr[ld]);
      if (!ok) return (pool.release(x), false);
    }
  // the state: h [L*D, B, Hout] and c [L*D, B, H] (no B axis unbatched), zeros where absent
  const int64_t lead = r.sequence ? 1 : 0;  // a sequence's states have the L*D axis
  int64_t hshape[3], cshape[3];
  int srank = 0;
  if (lead) hshape[srank] = cshape[srank] = L * D, ++srank;
  if (!unbatched) hshape[srank] = cshape[srank] = B, ++srank;
  hshape[srank] = Hout;
  cshape[srank] = H;
  ++srank;
  Tensor states[2];
  for (int j = 0; j < nstate; ++j) {
    const Tensor& given = a[1 + j];
    const int64_t* shape = j == 0 ? hshape : cshape;
    Tensor st = pool.allocate(DType::F32, 4, srank, shape);
    if (given.present()) {
      bool same = given.rank == srank;
      for (int i = 0; same && i < srank; ++i) same = given.shape[i] == shape[i];
      if (!same) {
        pool.release(st);
        for (int q = 0; q < j; ++q) pool.release(states[q]);
        pool.release(x);
        return false;
      }
      copy(given, st);
    } else {
      std::fill_n(st.as<float>(), st.numel(), 0.0f);
    }
    states[j] = std::move(st);
  }
  // layers: x rows in memory order ((t, b), or (b, t) batch first), each layer's output the next's input
  const int64_t rows = T * B;
  const bool bf = r.sequence && r.batch_first && !unbatched;
  const int64_t gx_t = bf ? 1 : B, gx_b = bf ? T : 1;
  std::vector<float> gx(static_cast<size_t>(rows * G * H));
  Tensor out;
  if (r.sequence) {
    int64_t oshape[3];
    for (int i = 0; i < x.rank; ++i) oshape[i] = x.shape[i];
    oshape[x.rank - 1] = D * Hout;
    out = pool.allocate(DType::F32, 4, x.rank, oshape);
  }
  std::vector<float> mid[2];  // the layers between: each reads the other's output
  for (int l = 0; l + 1 < L && l < 2; ++l) mid[l].resize(static_cast<size_t>(rows * D * Hout));
  for (int l = 0; l < L; ++l) {
    const float* in = l == 0 ? x.as<const float>() : mid[(l - 1) % 2].data();
    float* dst = !r.sequence ? nullptr : (l == L - 1 ? out.as<float>() : mid[l % 2].data());
    for (int d = 0; d < D; ++d) {
      const int ld = l * D + d;
      linear::gemm(w_ih[ld], in, rows, b_ih[ld], gx.data(), threads);
      recurrent::Layer layer;
      layer.cell = r.cell;
      layer.B = B;
      layer.H = H;
      layer.Hout = Hout;
      layer.w_hh = &w_hh[ld];
      layer.b_hh = b_hh[ld];
      layer.w_hr = r.proj > 0 ? &w_hr[ld] : nullptr;
      float* h = states[0].as<float>() + ld * B * Hout;
      float* c = lstm ? states[1].as<float>() + ld * B * H : nullptr;
      const int64_t row = D * Hout;
      recurrent::run(layer, gx.data(), T, gx_t, gx_b, h, c, dst == nullptr ? nullptr : dst + d * Hout,
                     (bf ? 1 : B) * row, (bf ? T : 1) * row, d == 1, threads);
    }
  }
  pool.release(x);
  if (r.sequence) outs.push_back(std::move(out));
  for (int j = 0; j < nstate; ++j) outs.push_back(std::move(states[j]));
  return true;
}

}  // namespace plan
}  // namespace pocketml
