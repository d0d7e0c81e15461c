// A value of a running plan: a strided view of memory (NumPy's model: byte strides, any dtype)
// and what keeps that memory alive. Values are cheap to copy (a shared owner), so a view op
// makes a new Tensor over the same bytes; only the kernels look at the dtype.
#pragma once

#include <cstdint>
#include <memory>

namespace pocketml {
namespace plan {

constexpr int kMaxRank = 8;

enum class DType : uint8_t { F32, F64, F16, I64, I32, I16, I8, U64, U32, U16, U8, Bool, C64, C128, Other };

struct Block;  // a pooled buffer (buffers.h)

struct Tensor {
  void* data = nullptr;
  DType dtype = DType::Other;
  int itemsize = 0;  // bytes per element
  int rank = 0;
  int64_t shape[kMaxRank] = {};
  int64_t strides[kMaxRank] = {};  // in bytes; 0 on broadcast axes
  std::shared_ptr<void> owner;     // what keeps data alive (a Block, or a foreign object)
  Block* block = nullptr;          // owner as a pooled Block (returned to the pool when last)
  bool foreign = false;            // owner is exactly the caller's object data came from (no view)
  bool readonly = false;           // data must not be written (a memory-mapped weight)

  bool present() const { return owner != nullptr || data != nullptr; }

  int64_t numel() const {
    int64_t n = 1;
    for (int i = 0; i < rank; ++i) n *= shape[i];
    return n;
  }

  // C-contiguous (size-1 axes may have any stride; an empty tensor always is).
  bool contiguous() const {
    int64_t expected = itemsize;
    for (int i = rank; i-- > 0;) {
      if (shape[i] == 0) return true;
      if (shape[i] != 1 && strides[i] != expected) return false;
      expected *= shape[i];
    }
    return true;
  }

  void set_contiguous_strides() {
    int64_t s = itemsize;
    for (int i = rank; i-- > 0;) {
      strides[i] = s;
      s *= shape[i];
    }
  }

  template <class T>
  T* as() const {
    return static_cast<T*>(data);
  }
};

inline int itemsize_of(DType t) {
  switch (t) {
    case DType::C128: return 16;
    case DType::F64:
    case DType::I64:
    case DType::U64:
    case DType::C64: return 8;
    case DType::F32:
    case DType::I32:
    case DType::U32: return 4;
    case DType::F16:
    case DType::I16:
    case DType::U16: return 2;
    case DType::I8:
    case DType::U8:
    case DType::Bool: return 1;
    default: return 0;
  }
}

}  // namespace plan
}  // namespace pocketml
