#include "plan/buffers.h"

#include <algorithm>
#include <iterator>
#include <stdexcept>

namespace pocketml {
namespace plan {

namespace {
constexpr size_t kAlign = 64;
}

Tensor BufferPool::allocate(DType dtype, int itemsize, int rank, const int64_t* shape) {
  Tensor t;
  t.dtype = dtype;
  t.itemsize = itemsize;
  t.rank = rank;
  int64_t n = 1;
  for (int i = 0; i < rank; ++i) {
    if (shape[i] < 0) throw std::invalid_argument("negative dimension");
    t.shape[i] = shape[i];
    n *= shape[i];
  }
  t.set_contiguous_strides();
  const size_t size = std::max<size_t>(kAlign, (static_cast<size_t>(n) * itemsize + kAlign - 1) /
                                                   kAlign * kAlign);
  std::shared_ptr<Block> b;
  PoolState& st = *state_;
  uint64_t epoch;
  {
    std::lock_guard<std::mutex> lock(st.mu);
    epoch = st.epoch;
    // the block of this size freed last (the likeliest still in cache): equal keys keep their
    // insertion order
    const auto range = st.free.equal_range(size);
    if (range.first != range.second) {
      const auto it = std::prev(range.second);
      b = std::move(it->second);
      st.free.erase(it);
      b->epoch = epoch;
    }
  }
  if (!b) {
    b = std::make_shared<Block>();
    b->bytes = pocketml::allocate<uint8_t>(static_cast<int64_t>(size));
    b->size = size;
    b->epoch = epoch;
    b->home = state_;
  }
  t.data = b->bytes.get();
  t.block = b.get();
  t.owner = std::move(b);
  return t;
}

void BufferPool::release(Tensor& t) {
  if (t.block && t.owner.use_count() == 1) {
    std::shared_ptr<Block> b = std::static_pointer_cast<Block>(std::move(t.owner));
    const size_t size = b->size;
    std::lock_guard<std::mutex> lock(state_->mu);
    state_->free.emplace(size, std::move(b));
  }
  t = Tensor();
}

void BufferPool::recycle(std::shared_ptr<void> owner, Block* block) noexcept {
  if (!block || owner.use_count() != 1) return;  // (others still hold it)
  const std::shared_ptr<PoolState> st = block->home.lock();
  if (!st) return;
  std::shared_ptr<Block> b = std::static_pointer_cast<Block>(std::move(owner));
  try {
    std::lock_guard<std::mutex> lock(st->mu);
    st->free.emplace(b->size, std::move(b));
  } catch (...) {  // (no memory for the map's node: the buffer is freed instead)
  }
}

void BufferPool::begin_call() {
  std::lock_guard<std::mutex> lock(state_->mu);
  ++state_->epoch;
}

void BufferPool::end_call() {
  std::lock_guard<std::mutex> lock(state_->mu);
  for (auto it = state_->free.begin(); it != state_->free.end();)
    it = it->second->epoch < state_->epoch ? state_->free.erase(it) : std::next(it);
}

}  // namespace plan
}  // namespace pocketml
