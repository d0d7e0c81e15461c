#include "plan/program.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "kernels/attention/attention.h"
#include "kernels/conv/conv.h"
#include "kernels/linear/linear.h"
#include "kernels/norm/norm.h"
#include "kernels/pool/pool.h"
#include "kernels/recurrent/recurrent.h"
#include "kernels/resize/resize.h"
#include "kernels/rotary/rotary.h"
#include "plan/indexing.h"
#include "plan/views.h"

namespace pocketml {
namespace plan {
namespace {

using Args = std::vector<Tensor>;

inline int64_t resolve(const Dim& d, const std::vector<int64_t>& syms) {
  if (d.sym < 0) return d.value;
  if (d.sym >= static_cast<int>(syms.size())) throw std::out_of_range("dimension table too short");
  return syms[d.sym];
}

// dims resolved into out (at most kMaxRank); returns their count
int resolve_all(const Dims& ds, const std::vector<int64_t>& syms, int64_t* out) {
  if (ds.size() > static_cast<size_t>(kMaxRank)) throw std::invalid_argument("too many dimensions");
  for (size_t i = 0; i < ds.size(); ++i) out[i] = resolve(ds[i], syms);
  return static_cast<int>(ds.size());
}

bool is_f32(const Tensor& t) { return t.present() && t.dtype == DType::F32; }

// element strides of a float tensor (byte strides divided by 4; 0 on size-1 axes)
void float_strides(const Tensor& t, int64_t* s) {
  for (int i = 0; i < t.rank; ++i) s[i] = t.shape[i] == 1 ? 0 : t.strides[i] / 4;
}

// A [D] float parameter (any shape of D elements whose last axis is D), contiguous; null where
// absent; false where it is not one.
bool param(const Tensor& p, int64_t D, int max_rank, const float** out) {
  *out = nullptr;
  if (!p.present()) return true;
  if (!is_f32(p) || p.rank > max_rank || p.rank < 1 || p.numel() != D || p.shape[p.rank - 1] != D ||
      !p.contiguous())
    return false;
  *out = p.as<const float>();
  return true;
}

Tensor like(BufferPool& pool, const Tensor& t, int64_t last) {
  int64_t shape[kMaxRank];
  for (int i = 0; i < t.rank; ++i) shape[i] = t.shape[i];
  if (t.rank) shape[t.rank - 1] = last;
  return pool.allocate(DType::F32, 4, t.rank, shape);
}

bool linear_step(const Step& s, Args& a, Args& outs, BufferPool& pool, int threads) {
  const WeightView& w = *s.weight;
  const Tensor& x0 = a[0];
  if (!is_f32(x0) || x0.rank < 1 || x0.shape[x0.rank - 1] != w.K) return false;
  const float* bias = nullptr;
  if (a.size() > 2 && a[2].present()) {
    const Tensor& b = a[2];
    if (!is_f32(b) || b.numel() != w.N || !b.contiguous()) return false;
    bias = b.as<const float>();
  }
  const Tensor x = contiguous(x0, pool);
  Tensor out = like(pool, x, w.N);
  const int64_t M = w.K ? x.numel() / w.K : 0;
  linear::Epilogue ep;
  Tensor r;
  if (s.residual) {  // the same shape as the output
    if (a.size() < 4 || !is_f32(a[3]) || a[3].rank != out.rank) return false;
    for (int i = 0; i < out.rank; ++i)
      if (a[3].shape[i] != out.shape[i]) return false;
    r = contiguous(a[3], pool);
    ep.residual = r.as<const float>();
  }
  ep.has_act = s.linear_act;
  ep.act = s.act;
  ep.act_exact = s.exact;
  const bool any = s.residual || s.linear_act;
  if (M > 0)
    linear::gemm(w, x.as<const float>(), M, bias, out.as<float>(), threads, s.exact, any ? &ep : nullptr);
  outs.push_back(std::move(out));
  return true;
}

bool linear_group_step(const Step& s, Args& a, Args& outs, BufferPool& pool, int threads) {
  const int n = static_cast<int>(s.weights.size());
  const Tensor& x0 = a[0];
  const int64_t K = s.weights[0]->K;
  if (n > linear::kMaxGroup || !is_f32(x0) || x0.rank < 1 || x0.shape[x0.rank - 1] != K) return false;
  const float* bias[linear::kMaxGroup];
  float* out[linear::kMaxGroup];
  for (int i = 0; i < n; ++i) {
    bias[i] = nullptr;
    if (static_cast<int>(a.size()) > 1 + i && a[1 + i].present()) {
      const Tensor& b = a[1 + i];
      if (!is_f32(b) || b.numel() != s.weights[i]->N || !b.contiguous()) return false;
      bias[i] = b.as<const float>();
    }
  }
  const Tensor x = contiguous(x0, pool);
  const int64_t M = K ? x.numel() / K : 0;
  for (int i = 0; i < n; ++i) {
    outs.push_back(like(pool, x, s.weights[i]->N));
    out[i] = outs.back().as<float>();
  }
  if (M > 0) linear::gemm_group(s.weights.data(), n, x.as<const float>(), M, bias, out, threads, s.exact);
  return true;
}

bool embedding_step(const Step& s, Args& a, Args& outs, BufferPool& pool, int threads) {
  const WeightView& w = *s.weight;
  if (a.size() < 2 || !a[1].present() || a[1].dtype != DType::I64 || a[1].rank >= kMaxRank)
    return false;
  const Tensor ids = contiguous(a[1], pool);
  const int64_t L = ids.numel();
  const int64_t* p = ids.as<const int64_t>();
  for (int64_t i = 0; i < L; ++i)
    if (p[i] < 0 || p[i] >= w.N) return false;  // the reference names the bad id
  int64_t shape[kMaxRank];
  for (int i = 0; i < ids.rank; ++i) shape[i] = ids.shape[i];
  shape[ids.rank] = w.K;
  Tensor out = pool.allocate(DType::F32, 4, ids.rank + 1, shape);
  if (L > 0) linear::gather_rows(w, p, L, out.as<float>(), threads);
  outs.push_back(std::move(out));
  return true;
}

// q, k or v: float32 rank 4, features contiguous (copied where they are not)
bool sdpa_operand(Tensor& t, BufferPool& pool, const float** p, int64_t* st) {
  if (!is_f32(t) || t.rank != 4) return false;
  if (t.shape[3] > 1 && t.strides[3] != 4) t = contiguous(t, pool);
  float_strides(t, st);
  st[3] = 1;
  *p = t.as<const float>();
  return true;
}

bool sdpa_step(const Step& s, Args& a, Args& outs, BufferPool& pool, int threads) {
  if (a.size() < 3) return false;
  attention::SdpaArgs g;
  if (!sdpa_operand(a[0], pool, &g.q, g.qs) || !sdpa_operand(a[1], pool, &g.k, g.ks) ||
      !sdpa_operand(a[2], pool, &g.v, g.vs))
    return false;
  const Tensor &q = a[0], &k = a[1], &v = a[2];
  g.B = q.shape[0], g.Hq = q.shape[1], g.L = q.shape[2], g.E = q.shape[3];
  g.Hk = k.shape[1], g.S = k.shape[2], g.Ev = v.shape[3];
  if (g.E == 0 || k.shape[3] != g.E || v.shape[1] != g.Hk || v.shape[2] != g.S || g.Hk < 1 ||
      g.Hq % g.Hk)
    return false;
  for (const Tensor* t : {&k, &v})
    if (t->shape[0] != g.B && t->shape[0] != 1) return false;
  if (a.size() > 3 && a[3].present()) {
    const Tensor& m = a[3];
    if (m.dtype == DType::Bool)
      g.mask_kind = attention::MaskKind::Bool;
    else if (m.dtype == DType::F32)
      g.mask_kind = attention::MaskKind::Float;
    else
      return false;
    if (m.rank < 1 || m.rank > 4) return false;
    const int64_t target[4] = {g.B, g.Hq, g.L, g.S};
    const int off = 4 - m.rank;
    for (int i = 0; i < m.rank; ++i) {
      const int64_t d = m.shape[i];
      if (d != target[off + i] && d != 1) return false;
      g.ms[off + i] = d == 1 ? 0 : m.strides[i] / m.itemsize;
    }
    g.mask = m.data;
  }
  const int64_t shape[4] = {g.B, g.Hq, g.L, g.Ev};
  Tensor out = pool.allocate(DType::F32, 4, 4, shape);
  g.out = out.as<float>();
  g.scale = static_cast<float>(s.scale != 0.0 ? s.scale : 1.0 / std::sqrt(static_cast<double>(g.E)));
  g.causal = s.causal;
  attention::sdpa(g, threads);
  outs.push_back(std::move(out));
  return true;
}

bool norm_step(const Step& s, Args& a, Args& outs, BufferPool& pool, int threads) {
  if (!is_f32(a[0]) || a[0].rank < 1) return false;
  const int64_t D = a[0].shape[a[0].rank - 1];
  const float *w = nullptr, *b = nullptr;
  if (a.size() > 1 && !param(a[1], D, a[0].rank, &w)) return false;
  if (a.size() > 2 && !param(a[2], D, a[0].rank, &b)) return false;
  const Tensor x = contiguous(a[0], pool);
  Tensor out = like(pool, x, D);
  const int64_t M = D ? x.numel() / D : 0;
  if (s.kind == Kind::RmsNorm)
    norm::rms_norm(x.as<const float>(), w, s.eps, out.as<float>(), M, D, threads);
  else
    norm::layer_norm(x.as<const float>(), w, b, s.eps, out.as<float>(), M, D, threads);
  outs.push_back(std::move(out));
  return true;
}

bool same_shape(const Tensor& x, const Tensor& y) {
  if (x.rank != y.rank) return false;
  for (int i = 0; i < x.rank; ++i)
    if (x.shape[i] != y.shape[i]) return false;
  return true;
}

bool activation_step(const Step& s, Args& a, Args& outs, BufferPool& pool, int threads) {
  if (!is_f32(a[0])) return false;
  const float* mul = nullptr;
  Tensor y;
  if (s.gated) {
    if (a.size() < 2 || !is_f32(a[1]) || !same_shape(a[0], a[1])) return false;
    y = contiguous(a[1], pool);
    mul = y.as<const float>();
  }
  const Tensor x = contiguous(a[0], pool);
  Tensor out = pool.allocate(DType::F32, 4, x.rank, x.shape);
  activation::apply(s.act, x.as<const float>(), out.as<float>(), x.numel(), threads, mul, s.exact);
  outs.push_back(std::move(out));
  return true;
}

bool rotary_step(const Step&, Args& a, Args& outs, BufferPool& pool, int threads) {
  if (a.size() < 3 || !is_f32(a[0]) || !is_f32(a[1]) || !is_f32(a[2])) return false;
  Tensor& x = a[0];
  const Tensor &c = a[1], &sn = a[2];
  if (x.rank != 4 || x.shape[3] % 2 || !same_shape(c, sn) || c.rank < 2) return false;
  const int64_t T = x.shape[2], D = x.shape[3];
  if (c.shape[c.rank - 2] != T || c.shape[c.rank - 1] != D) return false;
  for (int i = 0; i < c.rank - 2; ++i)
    if (c.shape[i] != 1) return false;
  if (x.shape[3] > 1 && x.strides[3] != 4) x = contiguous(x, pool);
  const Tensor cc = contiguous(c, pool), ss = contiguous(sn, pool);
  int64_t sx[4];
  float_strides(x, sx);
  sx[3] = 1;
  Tensor out = pool.allocate(DType::F32, 4, 4, x.shape);
  rotary::apply(x.as<const float>(), sx, cc.as<const float>(), ss.as<const float>(), out.as<float>(),
                x.shape[0], x.shape[1], T, D, threads);
  outs.push_back(std::move(out));
  return true;
}

// x and y broadcast to one shape (NumPy's rules) into shape/rank; false where they do not
bool broadcast2(Tensor& x, Tensor& y, int64_t* shape, int* out_rank) {
  const int rank = x.rank > y.rank ? x.rank : y.rank;
  for (int i = 0; i < rank; ++i) {
    const int ix = i - (rank - x.rank), iy = i - (rank - y.rank);
    const int64_t dx = ix >= 0 ? x.shape[ix] : 1, dy = iy >= 0 ? y.shape[iy] : 1;
    if (dx != dy && dx != 1 && dy != 1) return false;  // the reference raises NumPy's error
    shape[i] = dx == 1 ? dy : dx;
  }
  *out_rank = rank;
  return broadcast_to(x, rank, shape) && broadcast_to(y, rank, shape);
}

// int64 add/sub/mul (the references wrap around as NumPy does)
bool binary_i64_step(const Step& s, Args& a, Args& outs, BufferPool& pool) {
  using elementwise::BinaryOp;
  if (s.op != BinaryOp::Add && s.op != BinaryOp::Sub && s.op != BinaryOp::Mul) return false;
  Tensor x = a[0], y = a[1];
  int64_t shape[kMaxRank];
  int rank = 0;
  if (!broadcast2(x, y, shape, &rank)) return false;
  Tensor out = pool.allocate(DType::I64, 8, rank, shape);
  elementwise::binary_i64(s.op, x.as<const int64_t>(), x.strides, y.as<const int64_t>(), y.strides,
                          out.as<int64_t>(), shape, rank);
  outs.push_back(std::move(out));
  return true;
}

bool compare_step(const Step& s, Args& a, Args& outs, BufferPool& pool) {
  if (a.size() != 2 || !a[0].present() || !a[1].present() || a[0].dtype != a[1].dtype) return false;
  elementwise::Type t;
  if (a[0].dtype == DType::F32) t = elementwise::Type::F32;
  else if (a[0].dtype == DType::I64) t = elementwise::Type::I64;
  else if (a[0].dtype == DType::Bool) t = elementwise::Type::Bool;
  else return false;
  Tensor x = a[0], y = a[1];
  int64_t shape[kMaxRank];
  int rank = 0;
  if (!broadcast2(x, y, shape, &rank)) return false;
  Tensor out = pool.allocate(DType::Bool, 1, rank, shape);
  elementwise::compare(s.cmp, t, x.data, x.strides, y.data, y.strides, out.as<uint8_t>(), shape, rank);
  outs.push_back(std::move(out));
  return true;
}

bool logical_step(const Step& s, Args& a, Args& outs, BufferPool& pool) {
  if (a.size() != 2 || !a[0].present() || !a[1].present() || a[0].dtype != DType::Bool ||
      a[1].dtype != DType::Bool)
    return false;
  Tensor x = a[0], y = a[1];
  int64_t shape[kMaxRank];
  int rank = 0;
  if (!broadcast2(x, y, shape, &rank)) return false;
  Tensor out = pool.allocate(DType::Bool, 1, rank, shape);
  elementwise::logical(s.logic, x.as<const uint8_t>(), x.strides, y.as<const uint8_t>(), y.strides,
                       out.as<uint8_t>(), shape, rank);
  outs.push_back(std::move(out));
  return true;
}

bool where_step(Args& a, Args& outs, BufferPool& pool) {
  if (a.size() != 3 || !a[0].present() || !a[1].present() || !a[2].present() || a[0].dtype != DType::Bool ||
      a[1].dtype != a[2].dtype || a[1].dtype == DType::Other)
    return false;
  const int item = a[1].itemsize;
  if (item != 1 && item != 2 && item != 4 && item != 8) return false;
  Tensor c = a[0], x = a[1], y = a[2];
  int64_t shape[kMaxRank];
  int rank = 0;  // x with y, then the condition with them
  if (!broadcast2(x, y, shape, &rank) || !broadcast2(c, x, shape, &rank) || !broadcast_to(y, rank, shape))
    return false;
  Tensor out = pool.allocate(a[1].dtype, item, rank, shape);
  elementwise::where(c.as<const uint8_t>(), c.strides, x.data, x.strides, y.data, y.strides, item, out.data, shape,
                     rank);
  outs.push_back(std::move(out));
  return true;
}

bool binary_step(const Step& s, Args& a, Args& outs, BufferPool& pool, int threads) {
  if (a.size() == 2 && a[0].present() && a[1].present() && a[0].dtype == DType::I64 && a[1].dtype == DType::I64)
    return binary_i64_step(s, a, outs, pool);
  if (a.size() != 2 || !is_f32(a[0]) || !is_f32(a[1])) return false;
  Tensor x = a[0], y = a[1];
  const int rank = x.rank > y.rank ? x.rank : y.rank;
  int64_t shape[kMaxRank];
  for (int i = 0; i < rank; ++i) {  // NumPy broadcasting
    const int ix = i - (rank - x.rank), iy = i - (rank - y.rank);
    const int64_t dx = ix >= 0 ? x.shape[ix] : 1, dy = iy >= 0 ? y.shape[iy] : 1;
    if (dx != dy && dx != 1 && dy != 1) return false;  // the reference raises NumPy's error
    shape[i] = dx == 1 ? dy : dx;
  }
  if (!broadcast_to(x, rank, shape) || !broadcast_to(y, rank, shape)) return false;
  int64_t sx[kMaxRank], sy[kMaxRank];
  float_strides(x, sx);
  float_strides(y, sy);
  Tensor out = pool.allocate(DType::F32, 4, rank, shape);
  elementwise::binary(s.op, x.as<const float>(), sx, y.as<const float>(), sy, out.as<float>(),
                      shape, rank, threads);
  outs.push_back(std::move(out));
  return true;
}

// a dtype as the elementwise kernels name it; false for those they do not take
bool kernel_type(DType t, elementwise::Type* out) {
  using elementwise::Type;
  switch (t) {
    case DType::F32: *out = Type::F32; return true;
    case DType::F16: *out = Type::F16; return true;
    case DType::I64: *out = Type::I64; return true;
    case DType::I32: *out = Type::I32; return true;
    case DType::I16: *out = Type::I16; return true;
    case DType::I8: *out = Type::I8; return true;
    case DType::U8: *out = Type::U8; return true;
    case DType::Bool: *out = Type::Bool; return true;
    default: return false;
  }
}

// ir/ops/creation.py arange_length for integer bounds: false where the reference raises (step 0,
// bounds against the step's sign) or the numbers are beyond what it could allocate
bool arange_length(int64_t start, int64_t end, int64_t step, int64_t* n) {
  constexpr int64_t kBound = int64_t(1) << 61;  // no overflow below
  if (step == 0 || (step > 0 && end < start) || (step < 0 && end > start)) return false;
  for (int64_t v : {start, end, step})
    if (v > kBound || v < -kBound) return false;
  const int64_t span = end - start;  // step's sign, or 0
  *n = step > 0 ? (span + step - 1) / step : (span + step + 1) / step;  // ceil(span / step)
  return *n <= (int64_t(1) << 40);
}

bool arange_step(const Step& s, Args& outs, BufferPool& pool, const std::vector<int64_t>& syms) {
  elementwise::Type to;
  const int64_t start = resolve(s.begin[0], syms), step = resolve(s.step[0], syms);
  int64_t n;
  if (!kernel_type(s.dtype, &to) || !arange_length(start, resolve(s.end[0], syms), step, &n))
    return false;
  Tensor out = pool.allocate(s.dtype, itemsize_of(s.dtype), 1, &n);
  elementwise::arange(start, step, n, to, out.data);
  outs.push_back(std::move(out));
  return true;
}

bool cast_step(const Step& s, Args& a, Args& outs, BufferPool& pool) {
  elementwise::Type from, to;
  if (a.empty() || !a[0].present() || !kernel_type(a[0].dtype, &from) || !kernel_type(s.dtype, &to))
    return false;
  Tensor x = contiguous(a[0], pool);
  Tensor out = pool.allocate(s.dtype, itemsize_of(s.dtype), x.rank, x.shape);
  const bool done = elementwise::cast(from, x.data, to, out.data, x.numel());
  pool.release(x);
  if (!done) {  // a value whose conversion NumPy leaves to the platform
    pool.release(out);
    return false;
  }
  outs.push_back(std::move(out));
  return true;
}

// np.concatenate of one dtype: each input copied through its strides into its part of the output
bool concat_step(const Step& s, Args& a, Args& outs, BufferPool& pool) {
  if (a.empty() || !a[0].present() || a[0].dtype == DType::Other || a[0].rank == 0) return false;
  const Tensor& first = a[0];
  const int rank = first.rank;
  if (s.axis < -rank || s.axis >= rank) return false;  // the reference raises NumPy's error
  const int axis = s.axis < 0 ? s.axis + rank : s.axis;
  int64_t shape[kMaxRank];
  for (int i = 0; i < rank; ++i) shape[i] = first.shape[i];
  shape[axis] = 0;
  for (const Tensor& t : a) {
    if (!t.present() || t.dtype != first.dtype || t.rank != rank) return false;
    for (int i = 0; i < rank; ++i)
      if (i != axis && t.shape[i] != first.shape[i]) return false;
    shape[axis] += t.shape[axis];
  }
  Tensor out = pool.allocate(first.dtype, first.itemsize, rank, shape);
  Tensor part = out;
  for (const Tensor& t : a) {
    part.shape[axis] = t.shape[axis];
    copy(t, part);
    part.data = static_cast<char*>(part.data) + t.shape[axis] * out.strides[axis];
  }
  outs.push_back(std::move(out));
  return true;
}

bool unary_step(const Step& s, Args& a, Args& outs, BufferPool& pool) {
  if (a.empty() || !is_f32(a[0])) return false;
  Tensor x = contiguous(a[0], pool);
  Tensor out = pool.allocate(DType::F32, 4, x.rank, x.shape);
  elementwise::unary(s.unary, x.as<const float>(), out.as<float>(), x.numel(), s.unary_params);
  pool.release(x);
  outs.push_back(std::move(out));
  return true;
}

// np.sum in float64 over a run of consecutive axes (any order, negatives counted from the end),
// rounded to float32 (l2: the 2-norm, reduce_norm with ord 2); other axis sets run on the
// reference.
bool reduce_sum_step(const Step& s, Args& a, Args& outs, BufferPool& pool, int threads) {
  const bool truth = s.reduce == Reduce::Any || s.reduce == Reduce::All;
  if (a.empty() || !a[0].present()) return false;
  if (truth ? (a[0].dtype != DType::F32 && a[0].dtype != DType::I64 && a[0].dtype != DType::Bool) : !is_f32(a[0]))
    return false;
  const int rank = a[0].rank;
  int lo = 0, hi = rank;  // the axes [lo, hi)
  if (!s.reduce_axes.empty()) {
    bool seen[kMaxRank] = {};
    lo = rank, hi = -1;
    for (int ax : s.reduce_axes) {
      if (ax < -std::max(rank, 1) || ax >= std::max(rank, 1)) return false;  // the reference's error
      if (rank == 0) continue;
      ax = ax < 0 ? ax + rank : ax;
      seen[ax] = true;
      lo = std::min(lo, ax), hi = std::max(hi, ax + 1);
    }
    if (rank == 0) lo = 0, hi = 0;
    for (int i = lo; i < hi; ++i)
      if (!seen[i]) return false;
  }
  const Tensor x = contiguous(a[0], pool);
  int64_t outer = 1, R = 1, inner = 1, shape[kMaxRank];
  int out_rank = 0;
  for (int i = 0; i < rank; ++i) {
    (i < lo ? outer : i < hi ? R : inner) *= x.shape[i];
    if (i < lo || i >= hi) shape[out_rank++] = x.shape[i];
    else if (s.keepdims) shape[out_rank++] = 1;
  }
  if (s.reduce == Reduce::Sum) {
    Tensor out = pool.allocate(DType::F32, 4, out_rank, shape);
    elementwise::reduce_sum(x.as<const float>(), outer, R, inner, out.as<float>(), threads, s.l2, s.mean);
    outs.push_back(std::move(out));
    return true;
  }
  if (R == 0 && outer * inner > 0) return false;  // NumPy's error for an empty max / argmax (the others: its warning)
  if (truth) {
    const int64_t n = x.numel();
    std::vector<uint8_t> t(static_cast<size_t>(n));
    if (x.dtype == DType::F32)
      for (int64_t i = 0; i < n; ++i) t[i] = x.as<const float>()[i] != 0.0f;  // NaN: true
    else if (x.dtype == DType::I64)
      for (int64_t i = 0; i < n; ++i) t[i] = x.as<const int64_t>()[i] != 0;
    else
      for (int64_t i = 0; i < n; ++i) t[i] = x.as<const uint8_t>()[i] != 0;
    Tensor out = pool.allocate(DType::Bool, 1, out_rank, shape);
    elementwise::reduce_truth(s.reduce == Reduce::All, t.data(), outer, R, inner, out.as<uint8_t>());
    outs.push_back(std::move(out));
    return true;
  }
  if (s.reduce == Reduce::Prod || s.reduce == Reduce::Var || s.reduce == Reduce::LogSumExp) {
    using elementwise::Reduction;
    Tensor out = pool.allocate(DType::F32, 4, out_rank, shape);
    if (outer * inner > 0)
      elementwise::reduce_float(s.reduce == Reduce::Prod ? Reduction::Prod : s.reduce == Reduce::Var ? Reduction::Var
                                                                                                     : Reduction::LogSumExp,
                                x.as<const float>(), outer, R, inner, out.as<float>(), s.correction);
    outs.push_back(std::move(out));
    return true;
  }
  const bool max = s.reduce == Reduce::Max || s.reduce == Reduce::ArgMax;
  if (s.reduce == Reduce::Max || s.reduce == Reduce::Min) {
    Tensor out = pool.allocate(DType::F32, 4, out_rank, shape);
    if (outer * inner > 0) elementwise::reduce_extreme(x.as<const float>(), outer, R, inner, max, out.as<float>(), nullptr);
    outs.push_back(std::move(out));
    return true;
  }
  if (s.reduce_axes.empty()) {  // argmax over the flattened input: () or (1,) * rank
    out_rank = s.keepdims ? rank : 0;
    for (int i = 0; i < out_rank; ++i) shape[i] = 1;
  }
  Tensor out = pool.allocate(DType::I64, 8, out_rank, shape);
  if (rank == 0) *out.as<int64_t>() = 0;
  else if (outer * inner > 0) elementwise::reduce_extreme(x.as<const float>(), outer, R, inner, max, nullptr, out.as<int64_t>());
  outs.push_back(std::move(out));
  return true;
}

bool clip_step(const Step& s, Args& a, Args& outs, BufferPool& pool) {
  if (a.empty() || !is_f32(a[0])) return false;
  const Tensor x = contiguous(a[0], pool);
  Tensor out = pool.allocate(DType::F32, 4, x.rank, x.shape);
  elementwise::clip(x.as<const float>(), out.as<float>(), x.numel(), s.has_lo, s.lo, s.has_hi, s.hi);
  outs.push_back(std::move(out));
  return true;
}

// The decoded weights of packed convolutions: one buffer per position in a step (0, 1), reused by
// every layer and call.
float* conv_scratch(int slot, int64_t n) {
  thread_local std::vector<float> buf[2];
  if (static_cast<int64_t>(buf[slot].size()) < n) buf[slot].resize(static_cast<size_t>(n));
  return buf[slot].data();
}

// One convolution of a Conv step over input x: its shape, weight (decoded into `slot`'s buffer
// where packed) and bias from args w, b; false where the kernels do not take them.
bool conv_args(const ConvSpec& c, const Tensor& x, const Tensor& w, const Tensor& b, int slot, int threads,
               conv::Shape* sh, const float** wp, const float** bp, conv::Epilogue* ep) {
  const bool packed = c.weight != nullptr;
  if (!packed && (!is_f32(w) || !w.contiguous())) return false;
  const int rank = x.rank, spatial = rank - 2;
  if (spatial < 1 || spatial > 2 || (packed ? static_cast<int>(c.wshape.size()) : w.rank) != rank ||
      c.strides.size() != static_cast<size_t>(spatial) || c.dilations.size() != static_cast<size_t>(spatial) ||
      c.pads.size() != static_cast<size_t>(2 * spatial))
    return false;
  if (conv::make_shape(spatial, x.shape, packed ? c.wshape.data() : w.shape, c.strides.data(), c.pads.data(),
                       c.dilations.data(), c.groups, sh))
    return false;  // the reference says what is wrong
  if (!param(b, sh->Cout, 1, bp)) return false;
  *ep = conv::clip_to(c.has_lo, c.lo, c.has_hi, c.hi);
  if (packed) {
    float* dense = conv_scratch(slot, c.weight->N * c.weight->K);
    linear::decode_rows(*c.weight, dense, threads);
    *wp = dense;
  } else {
    *wp = w.as<const float>();
  }
  return true;
}

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
// to the output's order (plan: native_loop._einsum_spec); sizes that differ between the operands
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

// np.split along one axis: each piece copied out of the input (a view of it, read through strides)
bool split_step(const Step& s, Args& a, Args& outs, BufferPool& pool) {
  if (a.empty() || !a[0].present() || a[0].dtype == DType::Other || a[0].rank == 0) return false;
  const Tensor& x = a[0];
  if (s.axis < -x.rank || s.axis >= x.rank) return false;  // the reference's error
  const int ax = s.axis < 0 ? s.axis + x.rank : s.axis;
  int64_t total = 0;
  for (int64_t n : s.split_sizes) total += n;
  if (total != x.shape[ax]) return false;
  int64_t off = 0;
  for (int64_t n : s.split_sizes) {
    Tensor piece = x;
    piece.shape[ax] = n;
    if (n > 0) piece.data = static_cast<char*>(x.data) + off * x.strides[ax];
    Tensor c = pool.allocate(x.dtype, x.itemsize, x.rank, piece.shape);
    copy(piece, c);
    outs.push_back(std::move(c));
    off += n;
  }
  return true;
}

// isnan / isinf of float32, logical_not of float32, int64 or bool: -> bool
bool predicate_step(const Step& s, Args& a, Args& outs, BufferPool& pool) {
  if (a.empty() || !a[0].present()) return false;
  const DType t = a[0].dtype;
  if (!(t == DType::F32 || (s.predicate == Predicate::Not && (t == DType::I64 || t == DType::Bool)))) return false;
  Tensor x = contiguous(a[0], pool);
  Tensor out = pool.allocate(DType::Bool, 1, x.rank, x.shape);
  const int64_t n = x.numel();
  uint8_t* o = out.as<uint8_t>();
  if (t == DType::F32) {
    const float* v = x.as<const float>();
    for (int64_t i = 0; i < n; ++i)
      o[i] = s.predicate == Predicate::IsNan ? v[i] != v[i]
           : s.predicate == Predicate::IsInf ? std::isinf(v[i]) : v[i] == 0.0f;
  } else if (t == DType::I64) {
    const int64_t* v = x.as<const int64_t>();
    for (int64_t i = 0; i < n; ++i) o[i] = v[i] == 0;
  } else {
    const uint8_t* v = x.as<const uint8_t>();
    for (int64_t i = 0; i < n; ++i) o[i] = v[i] == 0;
  }
  pool.release(x);
  outs.push_back(std::move(out));
  return true;
}

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

bool conv_step(const Step& s, Args& a, Args& outs, BufferPool& pool, int threads) {
  const bool pair = s.convs.size() == 2;
  if (a.size() < (pair ? 5u : 2u) || !is_f32(a[0])) return false;
  const Tensor none;
  conv::Shape sh[2];
  const float *w[2] = {nullptr, nullptr}, *b[2] = {nullptr, nullptr};
  conv::Epilogue ep[2];
  if (!conv_args(s.convs[0], a[0], a[1], a.size() > 2 ? a[2] : none, 0, threads, &sh[0], &w[0], &b[0], &ep[0]))
    return false;
  const int rank = a[0].rank, spatial = rank - 2;
  if (pair) {
    Tensor mid;  // the pointwise output's shape only
    mid.rank = rank;
    for (int i = 0; i < rank; ++i) mid.shape[i] = a[0].shape[i];
    mid.shape[1] = sh[0].Cout;
    if (!conv_args(s.convs[1], mid, a[3], a[4], 1, threads, &sh[1], &w[1], &b[1], &ep[1]) ||
        !conv::fuses_with_depthwise(sh[0], sh[1]))
      return false;
  }
  const conv::Shape& last = sh[pair ? 1 : 0];
  Tensor x = contiguous(a[0], pool);
  int64_t shape[4];
  conv::output_dims(last, spatial, shape);
  Tensor out = pool.allocate(DType::F32, 4, rank, shape);
  if (pair)
    conv::pointwise_depthwise(sh[0], x.as<const float>(), w[0], b[0], ep[0], sh[1], w[1], b[1], ep[1],
                              out.as<float>(), threads);
  else
    conv::conv2d(sh[0], x.as<const float>(), w[0], b[0], ep[0], out.as<float>(), threads);
  pool.release(x);
  outs.push_back(std::move(out));
  return true;
}

bool pool_step(const PoolSpec& ps, Args& a, Args& outs, BufferPool& pool, int threads) {
  if (a.empty() || !is_f32(a[0]) || a[0].rank < ps.n) return false;
  const Tensor x = contiguous(a[0], pool);
  const int r = x.rank, two = ps.n == 2;
  pool::Shape sh;
  sh.planes = 1;
  for (int i = 0; i < r - ps.n; ++i) sh.planes *= x.shape[i];
  sh.H = two ? x.shape[r - 2] : 1;
  sh.W = x.shape[r - 1];
  sh.KH = two ? ps.kernel[0] : 1, sh.KW = ps.kernel[ps.n - 1];
  sh.sh = two ? ps.strides[0] : 1, sh.sw = ps.strides[ps.n - 1];
  sh.dh = two ? ps.dilations[0] : 1, sh.dw = ps.dilations[ps.n - 1];
  sh.ph = two ? ps.pads[0] : 0, sh.pe_h = two ? ps.pads[1] : 0;
  sh.pw = ps.pads[2 * ps.n - 2], sh.pe_w = ps.pads[2 * ps.n - 1];
  const int64_t span_h = ps.max ? sh.dh : 1, span_w = ps.max ? sh.dw : 1;
  sh.OH = two ? pool::out_len(sh.H, sh.KH, sh.sh, sh.ph, sh.pe_h, span_h, ps.ceil_mode) : 1;
  sh.OW = pool::out_len(sh.W, sh.KW, sh.sw, sh.pw, sh.pe_w, span_w, ps.ceil_mode);
  if (!ps.max) sh.dh = sh.dw = 1;
  if (sh.OH < 0 || sh.OW < 0) return false;  // the reference says what is wrong
  int64_t shape[kMaxRank];
  for (int i = 0; i < r; ++i) shape[i] = x.shape[i];
  if (two) shape[r - 2] = sh.OH;
  shape[r - 1] = sh.OW;
  Tensor out = pool.allocate(DType::F32, 4, r, shape);
  if (ps.max)
    pool::max_pool(sh, x.as<const float>(), out.as<float>(), threads);
  else
    pool::avg_pool(sh, x.as<const float>(), out.as<float>(), ps.count_include_pad, ps.divisor, threads);
  outs.push_back(std::move(out));
  return true;
}

bool overlaps(const Tensor& a, const Tensor& b) { return a.owner && a.owner == b.owner; }

bool update_state_step(const Step& s, Args& a, Args& outs, const Tensor& state,
                       const std::vector<int64_t>& syms) {
  if (a.empty() || !a[0].present() || a[0].dtype != state.dtype || a[0].dtype == DType::Other ||
      overlaps(a[0], state))
    return false;
  int64_t axes[kMaxRank], begin[kMaxRank], end[kMaxRank], step[kMaxRank];
  const int n = resolve_all(s.axes, syms, axes);
  if (resolve_all(s.begin, syms, begin) != n || resolve_all(s.end, syms, end) != n) return false;
  if (s.step.empty())
    for (int i = 0; i < n; ++i) step[i] = 1;
  else if (resolve_all(s.step, syms, step) != n)
    return false;
  Tensor region = state;
  slice(region, axes, begin, end, step, n);
  Tensor u = a[0];
  if (!broadcast_to(u, region.rank, region.shape)) return false;
  copy(u, region);
  outs.push_back(state);
  return true;
}

// full / full_like: a tensor of the given (or x's) shape, every element the given bytes
bool fill_step(const Step& s, Args& a, Args& outs, BufferPool& pool, const std::vector<int64_t>& syms) {
  int64_t shape[kMaxRank];
  int rank = 0;
  if (s.fill_like) {
    if (a.empty() || !a[0].present()) return false;
    rank = a[0].rank;
    for (int i = 0; i < rank; ++i) shape[i] = a[0].shape[i];
  } else {
    rank = resolve_all(s.axes, syms, shape);
    for (int i = 0; i < rank; ++i)
      if (shape[i] < 0) return false;  // the reference's error
  }
  const int item = static_cast<int>(s.fill.size());
  Tensor out = pool.allocate(s.dtype, item, rank, shape);
  char* p = static_cast<char*>(out.data);
  for (int64_t i = 0, n = out.numel(); i < n; ++i) std::memcpy(p + i * item, s.fill.data(), s.fill.size());
  outs.push_back(std::move(out));
  return true;
}

// slice_update: a copy of x with x[begin:end:step] (on axes) replaced by update, broadcast; the
// update of x's dtype (another: the reference's cast)
bool slice_update_step(const Step& s, Args& a, Args& outs, BufferPool& pool, const std::vector<int64_t>& syms) {
  if (a.size() != 2 || !a[0].present() || !a[1].present() || a[0].dtype != a[1].dtype || a[0].dtype == DType::Other)
    return false;
  int64_t axes[kMaxRank], begin[kMaxRank], end[kMaxRank], step[kMaxRank];
  const int n = resolve_all(s.axes, syms, axes);
  if (resolve_all(s.begin, syms, begin) != n || resolve_all(s.end, syms, end) != n) return false;
  if (s.step.empty())
    for (int i = 0; i < n; ++i) step[i] = 1;
  else if (resolve_all(s.step, syms, step) != n)
    return false;
  Tensor out = pool.allocate(a[0].dtype, a[0].itemsize, a[0].rank, a[0].shape);
  copy(a[0], out);
  Tensor region = out;
  slice(region, axes, begin, end, step, n);
  Tensor u = a[1];
  if (!broadcast_to(u, region.rank, region.shape)) {
    pool.release(out);
    return false;
  }
  copy(u, region);
  outs.push_back(std::move(out));
  return true;
}

}  // namespace

void Program::apply_view(const View& v, Tensor& t, const std::vector<int64_t>& syms) {
  int64_t a[kMaxRank], b[kMaxRank], c[kMaxRank], d[kMaxRank];
  const int n = resolve_all(v.a, syms, a);
  switch (v.kind) {
    case ViewKind::Reshape: reshape(t, a, n, pool_); break;
    case ViewKind::Transpose: transpose(t, a, n); break;
    case ViewKind::Squeeze: squeeze(t, a, n); break;
    case ViewKind::ExpandDims: expand_dims(t, a, n); break;
    case ViewKind::Expand: expand(t, a, n); break;
    case ViewKind::Slice: {
      resolve_all(v.b, syms, b);
      resolve_all(v.c, syms, c);
      if (v.d.empty())
        for (int i = 0; i < n; ++i) d[i] = 1;
      else
        resolve_all(v.d, syms, d);
      slice(t, a, b, c, d, n);
      break;
    }
  }
}

bool Program::execute(const Step& s, Args& a, Args& outs, const std::vector<Tensor>& states,
                      const std::vector<int64_t>& syms) {
  switch (s.kind) {
    case Kind::Fallback: return false;
    case Kind::Linear: return linear_step(s, a, outs, pool_, threads);
    case Kind::LinearGroup: return linear_group_step(s, a, outs, pool_, threads);
    case Kind::Embedding: return embedding_step(s, a, outs, pool_, threads);
    case Kind::Sdpa: return sdpa_step(s, a, outs, pool_, threads);
    case Kind::RmsNorm:
    case Kind::LayerNorm: return norm_step(s, a, outs, pool_, threads);
    case Kind::Activation: return activation_step(s, a, outs, pool_, threads);
    case Kind::Rotary: return rotary_step(s, a, outs, pool_, threads);
    case Kind::Binary: return binary_step(s, a, outs, pool_, threads);
    case Kind::ReadState: outs.push_back(states.at(s.state)); return true;
    case Kind::WriteState: {
      const Tensor& st = states.at(s.state);
      if (a.empty() || !a[0].present() || a[0].dtype != st.dtype || !same_shape(a[0], st) ||
          overlaps(a[0], st))
        return false;
      copy(a[0], st);
      return true;
    }
    case Kind::UpdateState: return update_state_step(s, a, outs, states.at(s.state), syms);
    case Kind::SliceUpdate: return slice_update_step(s, a, outs, pool_, syms);
    case Kind::Fill: return fill_step(s, a, outs, pool_, syms);
    case Kind::Arange: return arange_step(s, outs, pool_, syms);
    case Kind::Cast: return cast_step(s, a, outs, pool_);
    case Kind::Concat: return concat_step(s, a, outs, pool_);
    case Kind::Unary: return unary_step(s, a, outs, pool_);
    case Kind::ReduceSum: return reduce_sum_step(s, a, outs, pool_, threads);
    case Kind::Clip: return clip_step(s, a, outs, pool_);
    case Kind::Compare: return compare_step(s, a, outs, pool_);
    case Kind::Logical: return logical_step(s, a, outs, pool_);
    case Kind::Where: return where_step(a, outs, pool_);
    case Kind::Conv: return conv_step(s, a, outs, pool_, threads);
    case Kind::Take: return take_step(s.axis, s.negative, a, outs, pool_);
    case Kind::Gather: return gather_step(s.axis, a, outs, pool_);
    case Kind::Index: return index_step(s.index_axes, a, outs, pool_);
    case Kind::Cumsum: return cumsum_step(s.axis, s.product, a, outs, pool_);
    case Kind::Tile: return tile_step(s.pad_widths, a, outs, pool_);
    case Kind::Sort: return sort_step(s.axis, s.upper, s.tri_k, a, outs, pool_);
    case Kind::Scatter: return scatter_step(s.axis, static_cast<int>(s.tri_k), a, outs, pool_);
    case Kind::IndexPut: return index_put_step(s.index_axes, s.upper, a, outs, pool_);
    case Kind::Tri: return tri_step(s.tri_k, s.upper, a, outs, pool_);
    case Kind::Pool: return pool_step(s.pool, a, outs, pool_, threads);
    case Kind::Pad: return pad_step(s.pad_mode, s.pad_widths, s.pad_value, a, outs, pool_);
    case Kind::Recurrent: return recurrent_step(s.rnn, a, outs, pool_, threads);
    case Kind::Prelu: return prelu_step(a, outs, pool_, threads);
    case Kind::Split: return split_step(s, a, outs, pool_);
    case Kind::Resize: return resize_step(s, a, outs, pool_, syms);
    case Kind::ConvTranspose: return conv_transpose_step(s, a, outs, pool_, threads);
    case Kind::Matmul: return matmul_step(s, a, outs, pool_, threads);
    case Kind::Einsum: return einsum_step(s, a, outs, pool_, threads);
    case Kind::AdaptivePool: return adaptive_pool_step(s, a, outs, pool_);
    case Kind::ChannelNorm: return channel_norm_step(s, a, outs, pool_);
    case Kind::Predicate: return predicate_step(s, a, outs, pool_);
    case Kind::Softmax: return softmax_step(s.axis, s.log, a, outs, pool_);
    case Kind::Copy: {
      if (a.empty() || !a[0].present()) return false;
      Tensor c = pool_.allocate(a[0].dtype, a[0].itemsize, a[0].rank, a[0].shape);
      copy(a[0], c);
      outs.push_back(std::move(c));
      return true;
    }
  }
  return false;
}

std::vector<Tensor> Program::run(const std::vector<Tensor>& inputs, const std::vector<Tensor>& states,
                                 const std::vector<int64_t>& syms, const Fallback& fallback) {
  using Clock = std::chrono::steady_clock;
  if (inputs.size() != input_slots.size()) throw std::invalid_argument("wrong number of inputs");
  fallback_seconds = 0;
  fallback_calls = 0;
  pool_.begin_call();
  std::vector<Tensor> env(static_cast<size_t>(nslots));
  struct Cleanup {  // every value released, the pool trimmed, also when a step throws
    std::vector<Tensor>& env;
    BufferPool& pool;
    ~Cleanup() {
      for (Tensor& t : env) pool.release(t);
      pool.end_call();
    }
  } cleanup{env, pool_};
  for (const auto& c : constants) env[c.first] = c.second;
  for (size_t i = 0; i < inputs.size(); ++i) env[input_slots[i]] = inputs[i];
  Args args, outs;
  if (profiling) step_seconds.resize(steps.size(), 0.0);
  auto t_step = Clock::now();
  for (size_t i = 0; i < steps.size(); ++i) {
    const Step& s = steps[i];
    current_step = static_cast<int>(i);
    args.clear();
    outs.clear();
    for (int slot : s.inputs) args.push_back(slot < 0 ? Tensor() : env[slot]);
    for (const View& v : s.views) apply_view(v, args[v.pos], syms);
    if (!execute(s, args, outs, states, syms)) {
      outs.clear();
      const auto t0 = Clock::now();
      fallback(static_cast<int>(i), args, outs);
      fallback_seconds += std::chrono::duration<double>(Clock::now() - t0).count();
      ++fallback_calls;
      if (outs.size() != s.outputs.size())
        throw std::runtime_error("a fallback step gave the wrong number of outputs");
    }
    args.clear();
    for (size_t k = 0; k < s.outputs.size(); ++k) {
      pool_.release(env[s.outputs[k]]);
      env[s.outputs[k]] = std::move(outs[k]);
    }
    for (int r : s.release) pool_.release(env[r]);
    if (profiling) {
      const auto now = Clock::now();
      step_seconds[i] += std::chrono::duration<double>(now - t_step).count();
      t_step = now;
    }
  }
  current_step = -1;
  std::vector<Tensor> result;
  result.reserve(output_slots.size());
  for (int slot : output_slots) result.push_back(env[slot]);
  return result;
}

}  // namespace plan
}  // namespace pocketml
