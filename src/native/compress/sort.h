// Radix sort of floats through order-preserving unsigned keys: stable, multi-threaded.
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>

namespace pocketml {

template <class T>
using key_of = std::conditional_t<std::is_same_v<T, float>, uint32_t, uint64_t>;

// Unsigned keys ordered like the floats (for finite values); -0.0 gets +0.0's key.
inline uint32_t float_key(float v) {
  uint32_t b;
  v += 0.0f;  // -0.0 + 0.0 = +0.0
  std::memcpy(&b, &v, 4);
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}
inline uint64_t float_key(double v) {
  uint64_t b;
  v += 0.0;
  std::memcpy(&b, &v, 8);
  return (b & 0x8000000000000000ull) ? ~b : (b | 0x8000000000000000ull);
}
inline float key_float(uint32_t k) {
  uint32_t b = (k & 0x80000000u) ? (k & 0x7fffffffu) : ~k;
  float v;
  std::memcpy(&v, &b, 4);
  return v;
}
inline double key_float(uint64_t k) {
  uint64_t b = (k & 0x8000000000000000ull) ? (k & 0x7fffffffffffffffull) : ~k;
  double v;
  std::memcpy(&v, &b, 8);
  return v;
}

// keys[i] = the sorted float_key(x[...]); with `index` (may be null), index[i] is the position
// in x of keys[i], equal keys in the order of x (a stable sort). Returns false, leaving the
// outputs undefined, when x holds NaN or infinity. Uses up to `threads` threads.
bool sort_float_keys(const float* x, int64_t n, uint32_t* keys, uint32_t* index, int threads);
bool sort_float_keys(const double* x, int64_t n, uint64_t* keys, uint32_t* index, int threads);

}  // namespace pocketml
