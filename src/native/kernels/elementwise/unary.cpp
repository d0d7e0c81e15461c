#include <cmath>
#include <cstdint>

#include "kernels/elementwise/elementwise.h"

#include <algorithm>
#include <cstring>

#include "core/pool.h"

namespace pocketml {
namespace elementwise {
namespace {

// the references compute in float64 and round once (ir/ops/elementwise.py, activation.py): so do
// these, which leaves them within an ulp of the reference where libm and NumPy differ in the last
// double bit (exactly where the double result is exact: sqrt, rsqrt, reciprocal, the roundings)
inline double sigmoid64(double d) {  // the reference's form: exp of a non-positive argument
  const double e = std::exp(-std::fabs(d));
  return d >= 0 ? 1.0 / (1.0 + e) : e / (1.0 + e);
}

inline double softplus64(double x, double beta, double threshold) {
  const double bx = x * beta;
  const double sp = (bx > 0.0 ? bx : 0.0) + std::log1p(std::exp(-std::fabs(bx)));
  return bx > threshold ? x : sp / beta;
}

inline double min0(double d) { return d < 0.0 || d != d ? d : 0.0; }  // np.minimum(d, 0): NaN kept

inline double relu6_plus_3(double x) {  // np.clip(x + 3, 0, 6): NaN stays NaN
  const double v = x + 3.0;
  return v < 0.0 ? 0.0 : (v > 6.0 ? 6.0 : v);
}

template <UnaryOp kOp>
inline float apply(float x, const double* p) {
  switch (kOp) {
    case UnaryOp::Neg: return -x;
    case UnaryOp::Relu: return x != x || x > 0.0f ? x : 0.0f;  // np.maximum(x, 0): NaN kept, -0 -> 0
    case UnaryOp::Abs: return std::fabs(x);
    case UnaryOp::Sign: return static_cast<float>((x > 0.0f) - (x < 0.0f));  // NaN -> 0
    case UnaryOp::Floor: return std::floor(x);
    case UnaryOp::Ceil: return std::ceil(x);
    case UnaryOp::Round: return std::nearbyint(x);  // half to even, as np.round
    case UnaryOp::Trunc: return std::trunc(x);
    default: break;
  }
  const double d = x;
  double r = 0.0;
  switch (kOp) {
    case UnaryOp::Exp: r = std::exp(d); break;
    case UnaryOp::Sin: r = std::sin(d); break;
    case UnaryOp::Cos: r = std::cos(d); break;
    case UnaryOp::Tanh: r = std::tanh(d); break;
    case UnaryOp::Log: r = std::log(d); break;
    case UnaryOp::Sigmoid: r = sigmoid64(d); break;
    case UnaryOp::Sqrt: r = std::sqrt(d); break;
    case UnaryOp::Rsqrt: r = 1.0 / std::sqrt(d); break;
    case UnaryOp::Reciprocal: r = 1.0 / d; break;
    case UnaryOp::Exp2: r = std::exp2(d); break;
    case UnaryOp::Expm1: r = std::expm1(d); break;
    case UnaryOp::Log2: r = std::log2(d); break;
    case UnaryOp::Log10: r = std::log10(d); break;
    case UnaryOp::Log1p: r = std::log1p(d); break;
    case UnaryOp::Tan: r = std::tan(d); break;
    case UnaryOp::Atan: r = std::atan(d); break;
    case UnaryOp::Erf: r = std::erf(d); break;
    case UnaryOp::HardSigmoid: r = relu6_plus_3(d) / 6.0; break;
    case UnaryOp::HardSwish: r = d * relu6_plus_3(d) / 6.0; break;
    case UnaryOp::Mish: r = d * std::tanh(softplus64(d, 1.0, 20.0)); break;
    case UnaryOp::LogSigmoid: r = min0(d) - std::log1p(std::exp(-std::fabs(d))); break;
    case UnaryOp::GeluTanh: {
      const double inner = std::sqrt(2.0 / M_PI) * (d + 0.044715 * d * d * d);
      r = 0.5 * d * (1.0 + std::tanh(inner));
      break;
    }
    case UnaryOp::LeakyRelu: r = d > 0.0 ? d : d * p[0]; break;
    case UnaryOp::Elu: r = p[1] * (d > 0.0 ? d : p[0] * std::expm1(min0(d) * p[2])); break;
    case UnaryOp::Softplus: r = softplus64(d, p[0], p[1]); break;
    default: break;
  }
  return static_cast<float>(r);
}

template <UnaryOp kOp>
void run(const float* x, float* out, int64_t n, const double* p) {
  for (int64_t i = 0; i < n; ++i) out[i] = apply<kOp>(x[i], p);
}

}  // namespace

void unary(UnaryOp op, const float* x, float* out, int64_t n, const double* p) {
  static const double kNone[kUnaryParams] = {0.0, 0.0, 0.0};
  if (p == nullptr) p = kNone;
  switch (op) {
#define POCKETML_UNARY(name) \
  case UnaryOp::name: return run<UnaryOp::name>(x, out, n, p);
    POCKETML_UNARY(Neg) POCKETML_UNARY(Exp) POCKETML_UNARY(Sin) POCKETML_UNARY(Cos)
    POCKETML_UNARY(Tanh) POCKETML_UNARY(Log) POCKETML_UNARY(Sigmoid) POCKETML_UNARY(Relu)
    POCKETML_UNARY(Abs) POCKETML_UNARY(Sign) POCKETML_UNARY(Floor) POCKETML_UNARY(Ceil)
    POCKETML_UNARY(Round) POCKETML_UNARY(Trunc) POCKETML_UNARY(Sqrt) POCKETML_UNARY(Rsqrt)
    POCKETML_UNARY(Reciprocal) POCKETML_UNARY(Exp2) POCKETML_UNARY(Expm1) POCKETML_UNARY(Log2)
    POCKETML_UNARY(Log10) POCKETML_UNARY(Log1p) POCKETML_UNARY(Tan) POCKETML_UNARY(Atan)
    POCKETML_UNARY(Erf) POCKETML_UNARY(HardSigmoid) POCKETML_UNARY(HardSwish) POCKETML_UNARY(Mish)
    POCKETML_UNARY(LogSigmoid) POCKETML_UNARY(GeluTanh) POCKETML_UNARY(LeakyRelu)
    POCKETML_UNARY(Elu) POCKETML_UNARY(Softplus)
#undef POCKETML_UNARY
  }
}

namespace {

void prelu_plane(const float* __restrict x, float a, int64_t n, float* __restrict o) {
  // the product unconditional and the choice a bit mask: vectorised (a ?: on floats stays a
  // branch under -ftrapping-math, mispredicted half the time on real maps)
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i], m = a * v;
    uint32_t vb, mb;
    std::memcpy(&vb, &v, 4);
    std::memcpy(&mb, &m, 4);
    const uint32_t keep = 0u - static_cast<uint32_t>(v > 0.0f), r = (vb & keep) | (mb & ~keep);
    std::memcpy(o + i, &r, 4);
  }
}

}  // namespace

void prelu(const float* x, const float* alpha, int64_t C, int64_t planes, int64_t inner, float* out, int threads) {
  parallel_for(planes, std::max<int64_t>(1, (int64_t(1) << 16) / std::max<int64_t>(1, inner)), threads,
               [&](int64_t p0, int64_t p1) {
                 for (int64_t p = p0; p < p1; ++p) prelu_plane(x + p * inner, alpha[C == 1 ? 0 : p % C], inner, out + p * inner);
               });
}

void clip(const float* x, float* out, int64_t n, bool has_lo, float lo, bool has_hi, float hi) {
  for (int64_t i = 0; i < n; ++i) {
    float v = x[i];
    if (has_lo) v = (v > lo || v != v) ? v : lo;
    if (has_hi) v = (v < hi || v != v) ? v : hi;
    out[i] = v;
  }
}

void fake_quantize(const float* x, float* out, int64_t n, float scale, int zero_point) {
  const float lo = zero_point < 0 ? -127.0f : 0.0f, hi = zero_point < 0 ? 127.0f : 255.0f;
  const float z = zero_point < 0 ? 0.0f : static_cast<float>(zero_point);
  const bool shifted = zero_point >= 0;  // (int8: no + 0, which would turn -0 into +0)
  for (int64_t i = 0; i < n; ++i) {
    float q = std::nearbyint(x[i] / scale);  // half to even (the default rounding), as np.round
    if (shifted) q += z;
    q = q < lo ? lo : q;  // NaN stays NaN
    q = q > hi ? hi : q;
    out[i] = (shifted ? q - z : q) * scale;
  }
}

void quantize_rows(const float* x, int64_t rows, int64_t E, int8_t* q, float* scale) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* v = x + r * E;
    float m = 0.0f;
    for (int64_t e = 0; e < E; ++e) {
      const float a = std::fabs(v[e]);
      m = (a > m || a != a) && m == m ? a : m;  // NaN stays
    }
    const float s = m / 127.0f;
    scale[r] = s;
    int8_t* o = q + r * E;
    for (int64_t e = 0; e < E; ++e) {
      const float t = std::nearbyint(v[e] / s);  // half to even, as np.round
      o[e] = !std::isfinite(t) ? 0 : static_cast<int8_t>(t < -127.0f ? -127.0f : t > 127.0f ? 127.0f : t);
    }
  }
}

void dequantize_rows(const int8_t* q, const float* scale, int64_t rows, int64_t E, float* out) {
  for (int64_t r = 0; r < rows; ++r) {
    const float s = scale[r];
    for (int64_t e = 0; e < E; ++e) out[r * E + e] = static_cast<float>(q[r * E + e]) * s;
  }
}

}  // namespace elementwise
}  // namespace pocketml
