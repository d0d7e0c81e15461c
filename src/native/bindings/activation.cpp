// Bindings of kernels/activation: _native.activation(name, x, out). Checked here, before the
// kernel sees anything.
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>

#include <cstdint>
#include <optional>
#include <string>

#include "bindings/bindings.h"
#include "bindings/checks.h"
#include "kernels/activation/activation.h"

namespace pocketml::bindings {
namespace {

using namespace nb::literals;

void activation(const std::string& name, const Array& x, OutArray& out, int threads,
                const std::optional<Array>& mul, bool exact) {
  activation::Kind kind;
  if (name == "gelu") kind = activation::Kind::GeluErf;
  else if (name == "silu") kind = activation::Kind::Silu;
  else value_error("activation must be 'gelu' or 'silu', got '" + name + "'");
  if (!is(x.dtype(), Code::Float, 32) || !is(out.dtype(), Code::Float, 32))
    type_error("x and out must be float32");
  if (!c_contiguous(x) || !c_contiguous(out))
    value_error("x and out must be C-contiguous (use numpy.ascontiguousarray)");
  if (x.size() != out.size()) value_error("out must have as many values as x");
  const float* mp = nullptr;
  if (mul) {
    if (!is(mul->dtype(), Code::Float, 32)) type_error("mul must be float32");
    if (!c_contiguous(*mul)) value_error("mul must be C-contiguous (use numpy.ascontiguousarray)");
    if (mul->size() != x.size()) value_error("mul must have as many values as x");
    mp = static_cast<const float*>(mul->data());
  }
  if (threads < 0) value_error("threads must be >= 0");
  const float* xp = static_cast<const float*>(x.data());
  float* op = static_cast<float*>(out.data());
  const int64_t n = static_cast<int64_t>(x.size());
  nb::gil_scoped_release release;
  activation::apply(kind, xp, op, n, threads, mp, exact);
}

}  // namespace

void init_activation(nb::module_& m) {
  m.def("activation", &activation, "name"_a, "x"_a, "out"_a, "threads"_a = 0,
        "mul"_a = nb::none(), "exact"_a = true,
        "out = name(x) [* mul] elementwise, float32, computed in double like the references "
        "(ir/ops/activation.py) and rounded, then multiplied by mul in float32 (a gated unit: "
        "SwiGLU, GeGLU): 'gelu' (erf form), 'silu'. x, out, mul: C-contiguous, same size (out "
        "may be x). threads 0: default. exact False: float32 forms where the CPU has them (within 6 ulp "
        "of the references; gelu gives -0 below x = -13).");
}

}  // namespace pocketml::bindings
