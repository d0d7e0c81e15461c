#include <cmath>
#include <cstdint>

#include "kernels/elementwise/elementwise.h"

namespace pocketml {
namespace elementwise {
namespace {

// the references compute in float64 and round once (ir/ops/elementwise.py): so do these, which
// leaves them within an ulp of the reference where libm and NumPy differ in the last double bit
template <UnaryOp kOp>
inline float apply(float x) {
  if (kOp == UnaryOp::Neg) return -x;
  if (kOp == UnaryOp::Relu) return x != x || x > 0.0f ? x : 0.0f;  // np.maximum(x, 0): NaN kept, -0 -> 0
  const double d = x;
  if (kOp == UnaryOp::Exp) return static_cast<float>(std::exp(d));
  if (kOp == UnaryOp::Sin) return static_cast<float>(std::sin(d));
  if (kOp == UnaryOp::Tanh) return static_cast<float>(std::tanh(d));
  if (kOp == UnaryOp::Log) return static_cast<float>(std::log(d));
  if (kOp == UnaryOp::Sigmoid) {  // the reference's form: exp of a non-positive argument
    const double e = std::exp(-std::fabs(d));
    return static_cast<float>(d >= 0 ? 1.0 / (1.0 + e) : e / (1.0 + e));
  }
  return static_cast<float>(std::cos(d));
}

template <UnaryOp kOp>
void run(const float* x, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = apply<kOp>(x[i]);
}

}  // namespace

void unary(UnaryOp op, const float* x, float* out, int64_t n) {
  switch (op) {
    case UnaryOp::Neg: return run<UnaryOp::Neg>(x, out, n);
    case UnaryOp::Exp: return run<UnaryOp::Exp>(x, out, n);
    case UnaryOp::Sin: return run<UnaryOp::Sin>(x, out, n);
    case UnaryOp::Cos: return run<UnaryOp::Cos>(x, out, n);
    case UnaryOp::Tanh: return run<UnaryOp::Tanh>(x, out, n);
    case UnaryOp::Log: return run<UnaryOp::Log>(x, out, n);
    case UnaryOp::Sigmoid: return run<UnaryOp::Sigmoid>(x, out, n);
    case UnaryOp::Relu: return run<UnaryOp::Relu>(x, out, n);
  }
}

void clip(const float* x, float* out, int64_t n, bool has_lo, float lo, bool has_hi, float hi) {
  for (int64_t i = 0; i < n; ++i) {
    float v = x[i];
    if (has_lo) v = (v > lo || v != v) ? v : lo;
    if (has_hi) v = (v < hi || v != v) ? v : hi;
    out[i] = v;
  }
}

}  // namespace elementwise
}  // namespace pocketml
