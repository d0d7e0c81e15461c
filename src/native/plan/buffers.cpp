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
  {
    std::lock_guard<std::mutex> lock(mu_);
    // the block of this size freed last (the likeliest still in cache): equal keys keep their
    // insertion order
    const auto range = free_.equal_range(size);
    if (range.first != range.second) {
      const auto it = std::prev(range.second);
      b = std::move(it->second);
      free_.erase(it);
      b->epoch = epoch_;
    }
  }
  if (!b) {
    b = std::make_shared<Block>();
    b->bytes = pocketml::allocate<uint8_t>(static_cast<int64_t>(size));
    b->size = size;
    b->epoch = epoch_;
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
    std::lock_guard<std::mutex> lock(mu_);
    free_.emplace(size, std::move(b));
  }
  t = Tensor();
}

void BufferPool::begin_call() {
  std::lock_guard<std::mutex> lock(mu_);
  ++epoch_;
}

void BufferPool::end_call() {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto it = free_.begin(); it != free_.end();)
    it = it->second->epoch < epoch_ ? free_.erase(it) : std::next(it);
}

}  // namespace plan
}  // namespace pocketml
