// Uninitialised buffers; big ones are backed by huge pages where the OS offers them (Linux
// transparent huge pages), which saves most of the cost of first touching fresh memory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <new>
#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace pocketml {

struct FreeDeleter {
  void operator()(void* p) const noexcept { std::free(p); }
};

template <class T>
using Buffer = std::unique_ptr<T[], FreeDeleter>;

// n uninitialised values of a trivial type T (at least one), released with std::free.
template <class T>
Buffer<T> allocate(int64_t n) {
  size_t bytes = sizeof(T) * static_cast<size_t>(n > 0 ? n : 1);
  void* p = nullptr;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  constexpr size_t huge = size_t(2) << 20;
  if (bytes >= 2 * huge) {
    bytes = (bytes + huge - 1) / huge * huge;
    p = std::aligned_alloc(huge, bytes);
    if (p) madvise(p, bytes, MADV_HUGEPAGE);  // a hint: failure is harmless
  }
#endif
  if (!p) p = std::malloc(bytes);
  if (!p) throw std::bad_alloc();
  return Buffer<T>(static_cast<T*>(p));
}

}  // namespace pocketml
