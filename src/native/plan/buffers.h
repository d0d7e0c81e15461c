// The buffers of a running plan's values: kept between calls and reused by size, so a decode step
// that needs the same few hundred buffers as the last one allocates none. A buffer goes back to
// the pool when the last value holding it is released, an output's when the caller drops it
// (`recycle`: the next call writes it again rather than fresh pages, which the C library may
// have returned to the OS, faulting in again); whatever the last call did not take again is freed
// after it (a prefill's big buffers do not outlive the first decode step).
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

struct PoolState {
  std::mutex mu;
  std::multimap<size_t, std::shared_ptr<Block>> free;
  uint64_t epoch = 0;
};

struct Block {
  Buffer<uint8_t> bytes;
  size_t size = 0;
  uint64_t epoch = 0;              // the call that last took it
  std::weak_ptr<PoolState> home;  // its pool, while that lives
};

class BufferPool {
 public:
  BufferPool() : state_(std::make_shared<PoolState>()) {}
  // A C-contiguous tensor of a fresh or reused buffer (contents undefined).
  Tensor allocate(DType dtype, int itemsize, int rank, const int64_t* shape);
  // t's buffer back to the pool if t holds its last reference; t is cleared either way.
  void release(Tensor& t);
  // Starts a call: buffers not taken during it are freed by end_call().
  void begin_call();
  void end_call();
  // An output's buffer (owner, its Block) dropped by the caller: back to its pool if owner was
  // the last reference and the pool lives (then freed by the first end_call that does not take
  // it), else simply released.
  static void recycle(std::shared_ptr<void> owner, Block* block) noexcept;

 private:
  std::shared_ptr<PoolState> state_;
};

}  // namespace plan
}  // namespace pocketml
