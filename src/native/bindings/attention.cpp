// Bindings of kernels/attention: _native.sdpa. Every array and number from Python is checked
// here, before the kernel sees it; k and v may be strided views (a KV cache's [:, :, :ctx]).
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>

#include "bindings/bindings.h"
#include "bindings/checks.h"
#include "kernels/attention/attention.h"

namespace pocketml::bindings {
namespace {

using namespace nb::literals;

template <class A>
void check_f32_rank4(const A& a, const char* what) {
  if (!is(a.dtype(), Code::Float, 32)) type_error(std::string(what) + " must be float32");
  if (a.ndim() != 4) value_error(std::string(what) + " must have rank 4, got shape " + shape_of(a));
}

// The element strides of a [B, H, rows, features] operand; its features must be contiguous.
void strides_of(const Array& a, const char* what, int64_t* s) {
  for (int i = 0; i < 4; ++i) s[i] = a.shape(i) == 1 ? 0 : static_cast<int64_t>(a.stride(i));
  if (a.size() && a.shape(3) > 1 && s[3] != 1)
    value_error(std::string(what) + " must have contiguous features (a unit stride on its last axis)");
}

// k or v as int8 rows with their float32 scales [B|1, Hk, S, 1] (an int8 KV cache), else float32
void operand(const Array& x, const std::optional<Array>& scale, const char* what, const int8_t** q,
             const float** sc, int64_t* ss) {
  if (!scale) return check_f32_rank4(x, what);
  const std::string w(what);
  if (!is(x.dtype(), Code::Int, 8) || x.ndim() != 4) type_error(w + " with a scale must be int8 of rank 4");
  const Array& s = *scale;
  if (!is(s.dtype(), Code::Float, 32) || s.ndim() != 4 || s.shape(3) != 1)
    type_error(w + "_scale must be float32 [B, H, S, 1]");
  for (int i = 0; i < 3; ++i)
    if (s.shape(i) != x.shape(i)) value_error(w + "_scale " + shape_of(s) + " must have one scale per row of " + w + " " + shape_of(x));
  for (int i = 0; i < 3; ++i) ss[i] = s.shape(i) == 1 ? 0 : static_cast<int64_t>(s.stride(i));
  *q = static_cast<const int8_t*>(x.data());
  *sc = static_cast<const float*>(s.data());
}

void sdpa(const Array& q, const Array& k, const Array& v, const std::optional<Array>& mask,
          OutArray& out, double scale, bool is_causal, int threads, const std::optional<Array>& k_scale,
          const std::optional<Array>& v_scale) {
  check_f32_rank4(q, "q");
  check_f32_rank4(out, "out");
  attention::SdpaArgs a;
  operand(k, k_scale, "k", &a.k8, &a.ksc, a.kss);
  operand(v, v_scale, "v", &a.v8, &a.vsc, a.vss);
  a.B = q.shape(0), a.Hq = q.shape(1), a.L = q.shape(2), a.E = q.shape(3);
  a.Hk = k.shape(1), a.S = k.shape(2), a.Ev = v.shape(3);
  if (k.shape(3) != static_cast<size_t>(a.E))
    value_error("k's feature size " + std::to_string(k.shape(3)) + " != q's " + std::to_string(a.E));
  if (v.shape(1) != k.shape(1) || v.shape(2) != k.shape(2))
    value_error("v " + shape_of(v) + " must have k's heads and keys, k is " + shape_of(k));
  if (a.Hk < 1 || a.Hq % a.Hk)
    value_error("k's " + std::to_string(a.Hk) + " heads must divide q's " + std::to_string(a.Hq));
  for (const Array* t : {&k, &v})
    if (t->shape(0) != static_cast<size_t>(a.B) && t->shape(0) != 1)
      value_error("k and v must have q's batch " + std::to_string(a.B) + " or 1, got " +
                  shape_of(*t));
  const size_t want[4] = {static_cast<size_t>(a.B), static_cast<size_t>(a.Hq),
                          static_cast<size_t>(a.L), static_cast<size_t>(a.Ev)};
  for (int i = 0; i < 4; ++i)
    if (out.shape(i) != want[i])
      value_error("out must have shape [" + std::to_string(a.B) + ", " + std::to_string(a.Hq) +
                  ", " + std::to_string(a.L) + ", " + std::to_string(a.Ev) + "], got " +
                  shape_of(out));
  // out: contiguous features, rows that do not overlap (strides of a permuted C-contiguous array)
  if (out.size()) {
    if (out.shape(3) > 1 && out.stride(3) != 1) value_error("out must have contiguous features");
    int order[3] = {0, 1, 2};
    std::sort(order, order + 3, [&](int x, int y) { return out.stride(x) < out.stride(y); });
    int64_t reach = a.Ev;  // elements the dims so far span
    for (int i : order) {
      if (out.shape(i) == 1) continue;
      if (out.stride(i) < reach) value_error("out's rows must not overlap (a permutation of a C-contiguous array)");
      reach = out.stride(i) * static_cast<int64_t>(out.shape(i));
    }
    for (int i = 0; i < 3; ++i) a.os[i] = out.shape(i) == 1 ? 0 : static_cast<int64_t>(out.stride(i));
    if (a.os[0] == 0 && a.os[1] == 0 && a.os[2] == 0) a.os[2] = a.Ev;  // one row: any nonzero stride
  }
  strides_of(q, "q", a.qs);
  strides_of(k, "k", a.ks);
  strides_of(v, "v", a.vs);
  if (mask) {
    const Array& m = *mask;
    if (is(m.dtype(), Code::Bool, 8))
      a.mask_kind = attention::MaskKind::Bool;
    else if (is(m.dtype(), Code::Float, 32))
      a.mask_kind = attention::MaskKind::Float;
    else
      type_error("mask must be bool or float32");
    if (m.ndim() < 1 || m.ndim() > 4)
      value_error("mask must have rank 1 to 4, got shape " + shape_of(m));
    const int64_t target[4] = {a.B, a.Hq, a.L, a.S};
    const size_t off = 4 - m.ndim();
    for (size_t i = 0; i < m.ndim(); ++i) {
      const int64_t d = static_cast<int64_t>(m.shape(i)), t = target[off + i];
      if (d != t && d != 1)
        value_error("mask " + shape_of(m) + " does not broadcast to [" + std::to_string(a.B) + ", " +
                    std::to_string(a.Hq) + ", " + std::to_string(a.L) + ", " +
                    std::to_string(a.S) + "]");
      a.ms[off + i] = d == 1 ? 0 : static_cast<int64_t>(m.stride(i));
    }
    a.mask = m.data();
  }
  if (!(scale == scale)) value_error("scale must not be NaN");
  if (threads < 0) value_error("threads must be >= 0");
  a.q = static_cast<const float*>(q.data());
  a.k = a.k8 ? nullptr : static_cast<const float*>(k.data());
  a.v = a.v8 ? nullptr : static_cast<const float*>(v.data());
  a.out = static_cast<float*>(out.data());
  a.scale = static_cast<float>(scale);
  a.causal = is_causal;
  nb::gil_scoped_release release;
  attention::sdpa(a, threads);
}

}  // namespace

void init_attention(nb::module_& m) {
  m.def("sdpa", &sdpa, "q"_a, "k"_a, "v"_a, "mask"_a.none(), "out"_a, "scale"_a, "is_causal"_a,
        "threads"_a = 0, "k_scale"_a.none() = nb::none(), "v_scale"_a.none() = nb::none(),
        "Scaled dot-product attention in float32 into out (the reference: ir/ops/attention.py).\n"
        "q [B, Hq, L, E], k [B|1, Hk, S, E], v [B|1, Hk, S, Ev] (Hk divides Hq: grouped-query), "
        "each with contiguous features but any other strides (a KV cache's [:, :, :ctx] view "
        "works); mask None, bool (True = attend) or float32 (added), broadcastable to "
        "[B, Hq, L, S]; is_causal: query i attends keys j <= i; out: C-contiguous "
        "[B, Hq, L, Ev] float32, not overlapping the inputs. Rows with nothing to attend give 0. "
        "threads 0: default. k_scale (v_scale): k (v) is int8 rows read as k * k_scale, "
        "k_scale float32 [B|1, Hk, S, 1] (an int8 KV cache: dequantize_rows).");
}

}  // namespace pocketml::bindings
