// The portable convolution kernels: conv_impl.h over one float lane (the compiler may vectorize).
#include "kernels/conv/conv_impl.h"

namespace pocketml {
namespace conv {
namespace {

struct Scalar {
  using R = float;
  static constexpr int64_t kWidth = 1, kRows = 4, kVecs = 4;
  static constexpr bool kTranspose = false;
  static R zero() { return 0.0f; }
  static R set1(float v) { return v; }
  static R load(const float* p) { return *p; }
  static R loadu(const float* p) { return *p; }
  static R load_n(const float* p, int64_t n) { return n > 0 ? *p : 0.0f; }
  static void store(float* p, R v) { *p = v; }
  static void storeu(float* p, R v) { *p = v; }
  static void store_n(float* p, R v, int64_t n) { if (n > 0) *p = v; }
  static R add(R a, R b) { return a + b; }
  static float hsum(R v) { return v; }
  static R fma(R a, R b, R c) { return a * b + c; }
  static R max(R a, R b) { return a > b ? a : b; }  // b where either is NaN, as x86's maxps
  static R min(R a, R b) { return a < b ? a : b; }
};

}  // namespace

const Kernels& generic_kernels() { return Impl<Scalar>::kernels(); }

}  // namespace conv
}  // namespace pocketml
