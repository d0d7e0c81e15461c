#include "plan/elementwise.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/elementwise/elementwise.h"
#include "plan/views.h"

namespace pocketml {
namespace plan {

namespace {

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

}  // namespace

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

namespace {

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

}  // namespace

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

bool fake_quantize_step(const Step& s, Args& a, Args& outs, BufferPool& pool) {
  if (a.empty() || !is_f32(a[0])) return false;
  const Tensor x = contiguous(a[0], pool);
  Tensor out = pool.allocate(DType::F32, 4, x.rank, x.shape);
  elementwise::fake_quantize(x.as<const float>(), out.as<float>(), x.numel(), static_cast<float>(s.scale), s.zero_point);
  outs.push_back(std::move(out));
  return true;
}

// quantize_rows: float32 x of rank >= 1 -> int8 rows, float32 scales [..., 1]
bool quantize_rows_step(Args& a, Args& outs, BufferPool& pool) {
  if (a.empty() || !is_f32(a[0]) || a[0].rank < 1) return false;
  Tensor x = contiguous(a[0], pool);
  const int64_t E = x.shape[x.rank - 1], rows = E ? x.numel() / E : 0;
  int64_t shape[kMaxRank];
  for (int i = 0; i < x.rank; ++i) shape[i] = x.shape[i];
  Tensor q = pool.allocate(DType::I8, 1, x.rank, shape);
  shape[x.rank - 1] = 1;
  Tensor scale = pool.allocate(DType::F32, 4, x.rank, shape);
  if (E)
    elementwise::quantize_rows(x.as<const float>(), rows, E, q.as<int8_t>(), scale.as<float>());
  else
    std::fill(scale.as<float>(), scale.as<float>() + scale.numel(), 0.0f);
  pool.release(x);
  outs.push_back(std::move(q));
  outs.push_back(std::move(scale));
  return true;
}

// dequantize_rows: int8 q, float32 scales of q's shape but a last axis of 1 -> float32
bool dequantize_rows_step(Args& a, Args& outs, BufferPool& pool) {
  if (a.size() < 2 || !a[0].present() || a[0].dtype != DType::I8 || !is_f32(a[1]) || a[0].rank < 1 ||
      a[1].rank != a[0].rank || a[1].shape[a[1].rank - 1] != 1)
    return false;
  for (int i = 0; i + 1 < a[0].rank; ++i)
    if (a[1].shape[i] != a[0].shape[i]) return false;
  Tensor q = contiguous(a[0], pool), scale = contiguous(a[1], pool);
  const int64_t E = q.shape[q.rank - 1], rows = E ? q.numel() / E : 0;
  Tensor out = pool.allocate(DType::F32, 4, q.rank, q.shape);
  elementwise::dequantize_rows(q.as<const int8_t>(), scale.as<const float>(), rows, E, out.as<float>());
  pool.release(q);
  pool.release(scale);
  outs.push_back(std::move(out));
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

}  // namespace plan
}  // namespace pocketml
