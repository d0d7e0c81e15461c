// Bindings of kernels/conv: _native.conv, a 1-D or 2-D convolution over float32 NC(H)W maps.
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/vector.h>

#include <cmath>
#include <cstdint>
#include <optional>
#include <utility>
#include <string>
#include <vector>

#include "bindings/bindings.h"
#include "bindings/checks.h"
#include "kernels/conv/conv.h"

namespace pocketml::bindings {
namespace {

using namespace nb::literals;

template <class A>
void check_f32(const A& a, const char* what) {
  if (!is(a.dtype(), Code::Float, 32)) type_error(std::string(what) + " must be float32");
  if (!c_contiguous(a)) value_error(std::string(what) + " must be C-contiguous (use numpy.ascontiguousarray)");
}

conv::Epilogue epilogue(std::optional<float> lo, std::optional<float> hi) {
  if ((lo && std::isnan(*lo)) || (hi && std::isnan(*hi))) value_error("lo and hi must not be NaN");
  return conv::clip_to(lo.has_value(), lo.value_or(0.0f), hi.has_value(), hi.value_or(0.0f));
}

const float* bias_of(const std::optional<Array>& b, int64_t n) {
  if (!b) return nullptr;
  check_f32(*b, "bias");
  if (b->ndim() != 1 || static_cast<int64_t>(b->shape(0)) != n)
    value_error("bias must have shape [" + std::to_string(n) + "]");
  return static_cast<const float*>(b->data());
}

void conv(const Array& x, const Array& weight, const std::optional<Array>& bias, OutArray& out,
          const std::vector<int64_t>& strides, const std::vector<int64_t>& pads,
          const std::vector<int64_t>& dilations, int64_t groups, std::optional<float> lo,
          std::optional<float> hi, int threads) {
  check_f32(x, "x");
  check_f32(weight, "weight");
  check_f32(out, "out");
  const int rank = static_cast<int>(x.ndim()), spatial = rank - 2;
  if (spatial < 1 || spatial > 2) value_error("x must be [N, C, L] or [N, C, H, W], got " + shape_of(x));
  if (static_cast<int>(weight.ndim()) != rank) value_error("weight must have x's rank, got " + shape_of(weight));
  if (strides.size() != static_cast<size_t>(spatial) || dilations.size() != static_cast<size_t>(spatial) ||
      pads.size() != static_cast<size_t>(2 * spatial))
    value_error("strides and dilations need one entry per spatial dim, pads two");
  if (threads < 0) value_error("threads must be >= 0");
  const conv::Epilogue ep = epilogue(lo, hi);
  int64_t xs[4], ws[4];
  for (int i = 0; i < rank; ++i) {
    xs[i] = static_cast<int64_t>(x.shape(i));
    ws[i] = static_cast<int64_t>(weight.shape(i));
  }
  conv::Shape s;
  if (const char* err = conv::make_shape(spatial, xs, ws, strides.data(), pads.data(), dilations.data(), groups, &s))
    value_error(std::string("conv: ") + err + " (x " + shape_of(x) + ", weight " + shape_of(weight) + ")");
  int64_t want[4];
  conv::output_dims(s, spatial, want);
  if (static_cast<int>(out.ndim()) != rank) value_error("out has the wrong rank");
  for (int i = 0; i < rank; ++i)
    if (static_cast<int64_t>(out.shape(i)) != want[i]) value_error("out has the wrong shape " + shape_of(out));
  const float* b = bias_of(bias, s.Cout);
  const float* xp = static_cast<const float*>(x.data());
  const float* wp = static_cast<const float*>(weight.data());
  float* op = static_cast<float*>(out.data());
  nb::gil_scoped_release release;
  conv::conv2d(s, xp, wp, b, ep, op, threads);
}

void pointwise_depthwise(const Array& x, const Array& w1, const std::optional<Array>& b1, const Array& w2,
                         const std::optional<Array>& b2, OutArray& out, const std::vector<int64_t>& strides,
                         const std::vector<int64_t>& pads, const std::vector<int64_t>& dilations,
                         std::optional<float> lo1, std::optional<float> hi1, std::optional<float> lo2,
                         std::optional<float> hi2, int threads) {
  for (auto [a, what] : {std::pair<const Array*, const char*>{&x, "x"}, {&w1, "w1"}, {&w2, "w2"}}) check_f32(*a, what);
  check_f32(out, "out");
  const int rank = static_cast<int>(x.ndim()), spatial = rank - 2;
  if (spatial < 1 || spatial > 2 || static_cast<int>(w1.ndim()) != rank || static_cast<int>(w2.ndim()) != rank ||
      static_cast<int>(out.ndim()) != rank)
    value_error("x, w1, w2 and out must have one rank, 3 or 4");
  if (strides.size() != static_cast<size_t>(spatial) || dilations.size() != static_cast<size_t>(spatial) ||
      pads.size() != static_cast<size_t>(2 * spatial))
    value_error("strides and dilations need one entry per spatial dim, pads two");
  if (threads < 0) value_error("threads must be >= 0");
  int64_t xs[4], s1[4], s2[4], mid[4];
  for (int i = 0; i < rank; ++i) {
    xs[i] = static_cast<int64_t>(x.shape(i));
    s1[i] = static_cast<int64_t>(w1.shape(i));
    s2[i] = static_cast<int64_t>(w2.shape(i));
  }
  const int64_t ones[2] = {1, 1}, zeros[4] = {0, 0, 0, 0};
  conv::Shape pw, dw;
  if (const char* err = conv::make_shape(spatial, xs, s1, ones, zeros, ones, 1, &pw))
    value_error(std::string("conv: ") + err);
  mid[0] = pw.N;
  mid[1] = pw.Cout;
  for (int i = 2; i < rank; ++i) mid[i] = xs[i];
  if (const char* err = conv::make_shape(spatial, mid, s2, strides.data(), pads.data(), dilations.data(), pw.Cout, &dw))
    value_error(std::string("conv: ") + err);
  if (!conv::fuses_with_depthwise(pw, dw)) value_error("w1 must be a 1x1 convolution and w2 a depthwise one over its output");
  int64_t want[4];
  conv::output_dims(dw, spatial, want);
  for (int i = 0; i < rank; ++i)
    if (static_cast<int64_t>(out.shape(i)) != want[i]) value_error("out has the wrong shape " + shape_of(out));
  const float* bp1 = bias_of(b1, pw.Cout);
  const float* bp2 = bias_of(b2, dw.Cout);
  const conv::Epilogue e1 = epilogue(lo1, hi1), e2 = epilogue(lo2, hi2);
  const float* xp = static_cast<const float*>(x.data());
  const float* wp1 = static_cast<const float*>(w1.data());
  const float* wp2 = static_cast<const float*>(w2.data());
  float* op = static_cast<float*>(out.data());
  nb::gil_scoped_release release;
  conv::pointwise_depthwise(pw, xp, wp1, bp1, e1, dw, wp2, bp2, e2, op, threads);
}

}  // namespace

void init_conv(nb::module_& m) {
  m.def("conv", &conv, "x"_a, "weight"_a, "bias"_a.none(), "out"_a, "strides"_a, "pads"_a, "dilations"_a,
        "groups"_a, "lo"_a.none() = nb::none(), "hi"_a.none() = nb::none(), "threads"_a = 0,
        "out = clip(conv(x, weight) + bias, lo, hi): torch's conv1d/conv2d over float32 C-contiguous "
        "x [N, C, (H,) W], weight [Cout, C / groups, (KH,) KW], zero padding pads = [begin, end] per "
        "spatial dim (the reference: ir/ops/conv.py). out [N, Cout, (OH,) OW] must not overlap x. "
        "threads 0: default.");
  m.def("pointwise_depthwise", &pointwise_depthwise, "x"_a, "w1"_a, "b1"_a.none(), "w2"_a, "b2"_a.none(), "out"_a,
        "strides"_a, "pads"_a, "dilations"_a, "lo1"_a.none() = nb::none(), "hi1"_a.none() = nb::none(),
        "lo2"_a.none() = nb::none(), "hi2"_a.none() = nb::none(), "threads"_a = 0,
        "out = clip(depthwise(clip(conv1x1(x, w1) + b1, lo1, hi1), w2) + b2, lo2, hi2) (an inverted-residual "
        "block's expand and depthwise convolutions) without the expanded tensor in memory; w2 [C, 1, (KH,) KW] "
        "with strides, pads, dilations as in conv.");
}

}  // namespace pocketml::bindings
