// What every binding checks at the boundary: dtypes, shapes, and the Python exceptions it raises
// (ValueError / TypeError) when a caller or a package gives numbers a kernel must not trust.
#pragma once

#include <nanobind/ndarray.h>

#include <cstdint>
#include <string>

namespace pocketml::bindings {

namespace nb = nanobind;
using Array = nb::ndarray<nb::ro, nb::device::cpu>;    // any read-only input (mapped weights too)
using OutArray = nb::ndarray<nb::device::cpu>;         // a preallocated output
using Code = nb::dlpack::dtype_code;

[[noreturn]] inline void value_error(const std::string& msg) { throw nb::value_error(msg.c_str()); }
[[noreturn]] inline void type_error(const std::string& msg) { throw nb::type_error(msg.c_str()); }

inline bool is(const nb::dlpack::dtype& d, Code code, int bits) {
  return d.code == static_cast<uint8_t>(code) && d.bits == bits && d.lanes == 1;
}

// Whether a is C-contiguous (size-1 axes may have any stride; an empty array always is).
template <class A>
bool c_contiguous(const A& a) {
  if (a.size() == 0) return true;  // nothing to read: strides say nothing
  int64_t expected = 1;
  for (size_t i = a.ndim(); i-- > 0;) {
    if (a.shape(i) != 1 && a.stride(i) != expected) return false;
    expected *= static_cast<int64_t>(a.shape(i));
  }
  return true;
}

template <class A>
std::string shape_of(const A& a) {
  std::string s = "[";
  for (size_t i = 0; i < a.ndim(); ++i) s += (i ? ", " : "") + std::to_string(a.shape(i));
  return s + "]";
}

}  // namespace pocketml::bindings
