// Bindings of kernels/rotary: _native.rotary(x, cos, sin, out). Checked here, before the kernel
// sees anything: x is read through its strides, so every extent and stride is bounded first.
#include <cstdint>
#include <string>

#include "bindings/bindings.h"
#include "bindings/checks.h"
#include "kernels/rotary/rotary.h"

namespace pocketml::bindings {
namespace {

using namespace nb::literals;

void rotary(const Array& x, const Array& cos, const Array& sin, OutArray& out, int threads) {
  for (const auto* a : {&x, &cos, &sin})
    if (!is(a->dtype(), Code::Float, 32)) type_error("x, cos and sin must be float32");
  if (!is(out.dtype(), Code::Float, 32)) type_error("out must be float32");
  if (x.ndim() != 4) value_error("x must have rank 4 [B, H, T, D], got " + shape_of(x));
  const int64_t B = x.shape(0), H = x.shape(1), T = x.shape(2), D = x.shape(3);
  if (D % 2) value_error("the last dimension of x must be even, got " + shape_of(x));
  if (cos.ndim() != 2 || sin.ndim() != 2 || int64_t(cos.shape(0)) != T || int64_t(cos.shape(1)) != D ||
      int64_t(sin.shape(0)) != T || int64_t(sin.shape(1)) != D)
    value_error("cos and sin must have shape [T, D] = [" + std::to_string(T) + ", " +
                std::to_string(D) + "], got " + shape_of(cos) + " and " + shape_of(sin));
  if (!c_contiguous(cos) || !c_contiguous(sin) || !c_contiguous(out))
    value_error("cos, sin and out must be C-contiguous (use numpy.ascontiguousarray)");
  if (out.ndim() != 4) value_error("out must have x's shape " + shape_of(x));
  for (size_t i = 0; i < 4; ++i)
    if (out.shape(i) != x.shape(i)) value_error("out must have x's shape " + shape_of(x));
  if (threads < 0) value_error("threads must be >= 0");
  if (x.size() == 0) return;
  int64_t sx[4];
  for (size_t i = 0; i < 4; ++i) {
    sx[i] = x.shape(i) == 1 ? 0 : static_cast<int64_t>(x.stride(i));
    if (sx[i] < 0) value_error("x must not have negative strides");
  }
  if (D > 1 && sx[3] != 1) value_error("x's last axis must be contiguous (stride 1)");
  const float* xp = static_cast<const float*>(x.data());
  const float* cp = static_cast<const float*>(cos.data());
  const float* sp = static_cast<const float*>(sin.data());
  float* op = static_cast<float*>(out.data());
  nb::gil_scoped_release release;
  rotary::apply(xp, sx, cp, sp, op, B, H, T, D, threads);
}

}  // namespace

void init_rotary(nb::module_& m) {
  m.def("rotary", &rotary, "x"_a, "cos"_a, "sin"_a, "out"_a, "threads"_a = 0,
        "out = x * cos + concat(-x[..., D/2:], x[..., :D/2]) * sin (rotary embedding, 'rotate "
        "half' layout), float32, equal to the reference ops bit for bit. x: [B, H, T, D] with "
        "any non-negative strides whose last is 1 (a transposed view is read in place); cos, "
        "sin: C-contiguous [T, D]; out: C-contiguous [B, H, T, D]. threads 0: default.");
}

}  // namespace pocketml::bindings
