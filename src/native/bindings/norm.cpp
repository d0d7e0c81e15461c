// Bindings of kernels/norm: _native.rms_norm and _native.layer_norm over the last axis.
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>

#include <cmath>
#include <cstdint>
#include <optional>
#include <string>

#include "bindings/bindings.h"
#include "bindings/checks.h"
#include "kernels/norm/norm.h"

namespace pocketml::bindings {
namespace {

using namespace nb::literals;

template <class A>
void check_f32_contiguous(const A& a, const std::string& what) {
  if (!is(a.dtype(), Code::Float, 32)) type_error(what + " must be float32");
  int64_t expected = 1;
  for (size_t i = a.ndim(); i-- > 0;) {
    if (a.shape(i) != 1 && a.stride(i) != expected)
      value_error(what + " must be C-contiguous (use numpy.ascontiguousarray)");
    expected *= static_cast<int64_t>(a.shape(i));
  }
}

struct Rows {
  int64_t M, D;
};

Rows check(const Array& x, const OutArray& out, double eps, int threads) {
  check_f32_contiguous(x, "x");
  check_f32_contiguous(out, "out");
  if (x.ndim() < 1) value_error("x must have rank >= 1");
  if (out.ndim() != x.ndim()) value_error("out must have x's shape");
  for (size_t i = 0; i < x.ndim(); ++i)
    if (out.shape(i) != x.shape(i)) value_error("out must have x's shape");
  if (!(eps >= 0) || !std::isfinite(eps)) value_error("eps must be finite and >= 0");
  if (threads < 0) value_error("threads must be >= 0");
  const int64_t D = static_cast<int64_t>(x.shape(x.ndim() - 1));
  return {D ? static_cast<int64_t>(x.size()) / D : 0, D};
}

const float* param(const std::optional<Array>& p, int64_t D, const char* what) {
  if (!p) return nullptr;
  check_f32_contiguous(*p, what);
  if (p->ndim() != 1 || static_cast<int64_t>(p->shape(0)) != D)
    value_error(std::string(what) + " must have shape [" + std::to_string(D) + "]");
  return static_cast<const float*>(p->data());
}

void rms_norm(const Array& x, const std::optional<Array>& weight, double eps, OutArray& out,
              int threads) {
  const Rows r = check(x, out, eps, threads);
  const float* w = param(weight, r.D, "weight");
  const float* xp = static_cast<const float*>(x.data());
  float* op = static_cast<float*>(out.data());
  nb::gil_scoped_release release;
  norm::rms_norm(xp, w, eps, op, r.M, r.D, threads);
}

void layer_norm(const Array& x, const std::optional<Array>& weight,
                const std::optional<Array>& bias, double eps, OutArray& out, int threads) {
  const Rows r = check(x, out, eps, threads);
  const float* w = param(weight, r.D, "weight");
  const float* b = param(bias, r.D, "bias");
  const float* xp = static_cast<const float*>(x.data());
  float* op = static_cast<float*>(out.data());
  nb::gil_scoped_release release;
  norm::layer_norm(xp, w, b, eps, op, r.M, r.D, threads);
}

}  // namespace

void init_norm(nb::module_& m) {
  m.def("rms_norm", &rms_norm, "x"_a, "weight"_a.none(), "eps"_a, "out"_a, "threads"_a = 0,
        "out = x / sqrt(mean(x^2) + eps) [* weight] over the last axis, float32 (the reference: "
        "ir/ops/norm.py; statistics in float64). x, out: C-contiguous, same shape (out may be "
        "x); weight None or [D]. threads 0: default.");
  m.def("layer_norm", &layer_norm, "x"_a, "weight"_a.none(), "bias"_a.none(), "eps"_a, "out"_a,
        "threads"_a = 0,
        "out = (x - mean) / sqrt(var + eps) [* weight] [+ bias] over the last axis, float32 "
        "(the reference: ir/ops/norm.py; statistics in float64, biased variance). x, out: "
        "C-contiguous, same shape (out may be x); weight, bias None or [D]. threads 0: default.");
}

}  // namespace pocketml::bindings
