// The buffers of a running plan's values: kept between calls and reused by size, so a decode step
// that needs the same few hundred buffers as the last one allocates none. A buffer goes back to
// the pool when the last value holding it is released; whatever the last call did not take again
// is freed after it (a prefill's big buffers do not outlive the first decode step).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>

#include "core/buffer.h"
#include "plan/tensor.h"

namespace pocketml {
namespace plan {

struct Block {
  Buffer<uint8_t> bytes;
  size_t size = 0;
  uint64_t epoch = 0;  // the call that last took it
};

class BufferPool {
 public:
  // A C-contiguous tensor of a fresh or reused buffer (contents undefined).
  Tensor allocate(DType dtype, int itemsize, int rank, const int64_t* shape);
  // t's buffer back to the pool if t holds its last reference; t is cleared either way.
  void release(Tensor& t);
  // Starts a call: buffers not taken during it are freed by end_call().
  void begin_call();
  void end_call();

 private:
  std::mutex mu_;
  std::multimap<size_t, std::shared_ptr<Block>> free_;
  uint64_t epoch_ = 0;
};

}  // namespace plan
}  // namespace pocketml
