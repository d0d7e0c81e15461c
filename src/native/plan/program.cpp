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
#include "kernels/rotary/rotary.h"
#include "plan/indexing.h"
#include "plan/elementwise.h"
#include "plan/layers.h"
#include "plan/views.h"

namespace pocketml {
namespace plan {
namespace {

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

// k or v of an int8 cache: int8 rank 4 with contiguous features (copied where not), its scales
// [.., .., .., 1] float32 of its first three dims
bool sdpa_int8_operand(Tensor& t, const Tensor& scale, BufferPool& pool, const int8_t** p, int64_t* st,
                       const float** sp, int64_t* sst) {
  if (!t.present() || t.dtype != DType::I8 || t.rank != 4 || !is_f32(scale) || scale.rank != 4 ||
      scale.shape[3] != 1)
    return false;
  for (int i = 0; i < 3; ++i)
    if (scale.shape[i] != t.shape[i]) return false;
  if (t.shape[3] > 1 && t.strides[3] != 1) t = contiguous(t, pool);
  for (int i = 0; i < 4; ++i) st[i] = t.shape[i] == 1 ? 0 : t.strides[i];
  st[3] = 1;
  for (int i = 0; i < 3; ++i) sst[i] = scale.shape[i] == 1 ? 0 : scale.strides[i] / 4;
  *p = t.as<const int8_t>();
  *sp = scale.as<const float>();
  return true;
}

bool sdpa_step(const Step& s, Args& a, Args& outs, BufferPool& pool, int threads) {
  if (a.size() < ((s.k8 || s.v8) ? 6 : 3)) return false;
  attention::SdpaArgs g;
  if (!sdpa_operand(a[0], pool, &g.q, g.qs) ||
      !(s.k8 ? sdpa_int8_operand(a[1], a[4], pool, &g.k8, g.ks, &g.ksc, g.kss) : sdpa_operand(a[1], pool, &g.k, g.ks)) ||
      !(s.v8 ? sdpa_int8_operand(a[2], a[5], pool, &g.v8, g.vs, &g.vsc, g.vss) : sdpa_operand(a[2], pool, &g.v, g.vs)))
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
  // [B, L, Hq, Ev] in memory, a [B, Hq, L, Ev] view: what a model's transpose(1, 2) and
  // reshape to [B, L, Hq * Ev] then read without a copy (the output projection's input)
  const int64_t shape[4] = {g.B, g.L, g.Hq, g.Ev};
  Tensor out = pool.allocate(DType::F32, 4, 4, shape);
  std::swap(out.shape[1], out.shape[2]);
  std::swap(out.strides[1], out.strides[2]);
  g.out = out.as<float>();
  g.os[0] = g.L * g.Hq * g.Ev, g.os[1] = g.Ev, g.os[2] = g.Hq * g.Ev;
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

// One convolution of a Conv step over input x: its shape, weight (float32, or packed) and bias
// from args w, b; false where the kernels do not take them.
bool conv_args(const ConvSpec& c, const Tensor& x, const Tensor& w, const Tensor& b, conv::Shape* sh,
               conv::Weight* wp, const float** bp, conv::Epilogue* ep) {
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
  ep->act = c.act, ep->kind = c.act_kind, ep->exact = c.act_exact;
  *wp = packed ? conv::Weight(c.weight) : conv::Weight(w.as<const float>());
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

bool conv_step(const Step& s, Args& a, Args& outs, BufferPool& pool, int threads) {
  const bool pair = s.convs.size() == 2;
  if (a.size() < (pair ? 5u : 2u) || !is_f32(a[0])) return false;
  const Tensor none;
  conv::Shape sh[2];
  conv::Weight w[2];
  const float* b[2] = {nullptr, nullptr};
  conv::Epilogue ep[2];
  if (!conv_args(s.convs[0], a[0], a[1], a.size() > 2 ? a[2] : none, &sh[0], &w[0], &b[0], &ep[0]))
    return false;
  const int rank = a[0].rank, spatial = rank - 2;
  if (pair) {
    Tensor mid;  // the pointwise output's shape only
    mid.rank = rank;
    for (int i = 0; i < rank; ++i) mid.shape[i] = a[0].shape[i];
    mid.shape[1] = sh[0].Cout;
    if (!conv_args(s.convs[1], mid, a[3], a[4], &sh[1], &w[1], &b[1], &ep[1]) ||
        !conv::fuses_with_depthwise(sh[0], sh[1]) || ep[0].act || ep[1].act)
      return false;
  }
  const conv::Shape& last = sh[pair ? 1 : 0];
  Tensor x = contiguous(a[0], pool);
  int64_t shape[4];
  conv::output_dims(last, spatial, shape);
  Tensor out = pool.allocate(DType::F32, 4, rank, shape);
  const ConvSpec& c0 = s.convs[0];
  const bool int8 = c0.weight && c0.int8 && conv::is_pointwise(sh[0]) &&
                    linear::int8_gemm(*c0.weight);
  if (int8 && pair) {  // the pointwise output in memory, then the depthwise over it
    int64_t mshape[4];
    conv::output_dims(sh[0], spatial, mshape);
    Tensor mid = pool.allocate(DType::F32, 4, rank, mshape);
    conv::pointwise_int8(sh[0], x.as<const float>(), *c0.weight, b[0], ep[0], mid.as<float>(), threads);
    conv::conv2d(sh[1], mid.as<const float>(), w[1], b[1], ep[1], out.as<float>(), threads);
    pool.release(mid);
  } else if (int8) {
    conv::pointwise_int8(sh[0], x.as<const float>(), *c0.weight, b[0], ep[0], out.as<float>(), threads);
  } else if (pair) {
    conv::pointwise_depthwise(sh[0], x.as<const float>(), w[0], b[0], ep[0], sh[1], w[1], b[1], ep[1],
                              out.as<float>(), threads);
  } else {
    conv::conv2d(sh[0], x.as<const float>(), w[0], b[0], ep[0], out.as<float>(), threads);
  }
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

// t narrowed to the step's slice (axes, begin, end, step resolved for this call: UpdateState,
// SliceUpdate); false where they do not resolve to one length each
bool slice_of(const Step& s, const std::vector<int64_t>& syms, Tensor& t) {
  int64_t axes[kMaxRank], begin[kMaxRank], end[kMaxRank], step[kMaxRank];
  const int n = resolve_all(s.axes, syms, axes);
  if (resolve_all(s.begin, syms, begin) != n || resolve_all(s.end, syms, end) != n) return false;
  if (s.step.empty())
    for (int i = 0; i < n; ++i) step[i] = 1;
  else if (resolve_all(s.step, syms, step) != n)
    return false;
  slice(t, axes, begin, end, step, n);
  return true;
}

bool update_state_step(const Step& s, Args& a, Args& outs, const Tensor& state,
                       const std::vector<int64_t>& syms) {
  if (a.empty() || !a[0].present() || a[0].dtype != state.dtype || a[0].dtype == DType::Other ||
      overlaps(a[0], state))
    return false;
  Tensor region = state;
  if (!slice_of(s, syms, region)) return false;
  Tensor u = a[0];
  if (!broadcast_to(u, region.rank, region.shape)) return false;
  copy(u, region);
  outs.push_back(state);
  return true;
}

// slice_update: a copy of x with x[begin:end:step] (on axes) replaced by update, broadcast; the
// update of x's dtype (another: the reference's cast)
bool slice_update_step(const Step& s, Args& a, Args& outs, BufferPool& pool, const std::vector<int64_t>& syms) {
  if (a.size() != 2 || !a[0].present() || !a[1].present() || a[0].dtype != a[1].dtype || a[0].dtype == DType::Other)
    return false;
  Tensor out = pool.allocate(a[0].dtype, a[0].itemsize, a[0].rank, a[0].shape);
  copy(a[0], out);
  Tensor region = out;
  if (!slice_of(s, syms, region)) {
    pool.release(out);
    return false;
  }
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
    case Kind::FakeQuantize: return fake_quantize_step(s, a, outs, pool_);
    case Kind::QuantizeRows: return quantize_rows_step(a, outs, pool_);
    case Kind::DequantizeRows: return dequantize_rows_step(a, outs, pool_);
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
    case Kind::Decode: {
      const WeightView& w = *s.weight;
      const int64_t shape[2] = {w.N, w.K};
      Tensor out = pool_.allocate(s.dtype, itemsize_of(s.dtype), 2, shape);
      if (s.dtype == DType::F32) {
        linear::decode_rows(w, out.as<float>(), threads);
      } else {  // a float16 table's values, exact in float16 again
        std::vector<float> dense(static_cast<size_t>(w.N * w.K));
        linear::decode_rows(w, dense.data(), threads);
        elementwise::cast(elementwise::Type::F32, dense.data(), elementwise::Type::F16, out.data, w.N * w.K);
      }
      outs.push_back(std::move(out));
      return true;
    }
    case Kind::Copy: {
      if (a.empty() || !a[0].present()) return false;
      Tensor c = pool_.allocate(a[0].dtype, a[0].itemsize, a[0].rank, a[0].shape);
      copy(a[0], c, threads);
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
