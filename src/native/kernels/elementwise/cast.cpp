// Dtype conversion as NumPy's astype does it, bit for bit: each element is read as an int64 (the
// integer dtypes and bool) or a float (float32, float16, exact), then written to the target.
// Where NumPy leaves the result to the platform (a float out of an integer type's range, a NaN
// payload through float16) cast() returns false, so the caller runs the reference instead.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

#include "formats/half.h"
#include "kernels/elementwise/elementwise.h"

namespace pocketml {
namespace elementwise {
namespace {

// how the dtypes without a C++ arithmetic type are stored
struct Half {
  uint16_t bits;
};
struct Bool {
  uint8_t v;
};

int64_t read(int64_t x) { return x; }
int64_t read(int32_t x) { return x; }
int64_t read(int16_t x) { return x; }
int64_t read(int8_t x) { return x; }
int64_t read(uint8_t x) { return x; }
int64_t read(Bool x) { return x.v != 0; }
float read(float x) { return x; }
float read(Half x) { return half_to_float(x.bits); }

// integers: two's complement wrap, like C's conversions NumPy uses
template <class D>
bool put(int64_t v, D* o) {
  *o = static_cast<D>(v);
  return true;
}
bool put(int64_t v, Half* o) {  // |v| < 65520 is exact as a float; above, both give infinity
  o->bits = float_to_half(static_cast<float>(v));
  return true;
}
bool put(int64_t v, Bool* o) {
  o->v = v != 0;
  return true;
}

// a float truncated toward zero, false where that is no value of D
template <class D>
bool put(float v, D* o) {
  static_assert(std::is_integral<D>::value, "integer targets only");
  const double t = std::trunc(static_cast<double>(v));
  const double lo = static_cast<double>(std::numeric_limits<D>::min());
  const double hi = static_cast<double>(std::numeric_limits<D>::max()) + 1.0;  // a power of two
  if (!(t >= lo && t < hi)) return false;
  *o = static_cast<D>(t);
  return true;
}
// a float16 read as float: only its NaNs are left to the reference (payloads, quieting)
bool put(float v, float* o) {
  *o = v;
  return !std::isnan(v);
}
bool put(float v, Half* o) {
  if (std::isnan(v)) return false;
  o->bits = float_to_half(v);
  return true;
}
bool put(float v, Bool* o) {
  o->v = v != 0;  // NaN is true
  return true;
}

// f(static_cast<T*>(nullptr)) for the C++ type T storing t
template <class F>
bool visit(Type t, F&& f) {
  switch (t) {
    case Type::F32: return f(static_cast<float*>(nullptr));
    case Type::F16: return f(static_cast<Half*>(nullptr));
    case Type::I64: return f(static_cast<int64_t*>(nullptr));
    case Type::I32: return f(static_cast<int32_t*>(nullptr));
    case Type::I16: return f(static_cast<int16_t*>(nullptr));
    case Type::I8: return f(static_cast<int8_t*>(nullptr));
    case Type::U8: return f(static_cast<uint8_t*>(nullptr));
    case Type::Bool: return f(static_cast<Bool*>(nullptr));
  }
  return false;
}

template <class S, class D>
bool convert(const S* x, D* out, int64_t n) {
  if constexpr (std::is_same<S, D>::value) {  // astype to the same dtype copies
    std::memcpy(out, x, static_cast<size_t>(n) * sizeof(S));
    return true;
  } else {
    for (int64_t i = 0; i < n; ++i)
      if (!put(read(x[i]), out + i)) return false;
    return true;
  }
}

}  // namespace

bool cast(Type from, const void* x, Type to, void* out, int64_t n) {
  return visit(from, [&](auto* s) {
    return visit(to, [&](auto* d) {
      using S = std::remove_pointer_t<decltype(s)>;
      using D = std::remove_pointer_t<decltype(d)>;
      return convert(static_cast<const S*>(x), static_cast<D*>(out), n);
    });
  });
}

void arange(int64_t start, int64_t step, int64_t n, Type to, void* out) {
  visit(to, [&](auto* d) {
    using D = std::remove_pointer_t<decltype(d)>;
    D* o = static_cast<D*>(out);
    for (int64_t i = 0; i < n; ++i) put(start + i * step, o + i);
    return true;
  });
}

}  // namespace elementwise
}  // namespace pocketml
